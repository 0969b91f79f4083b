//! New large Hyperliquid whale positions.

use super::{now_ms, Poll, PollError, Shared};
use crate::alerts::AlertKind;
use crate::config::WhaleMonitorConfig;
use crate::market::{WhaleAction, WhalePosition};
use crate::store::NewAlert;
use crate::telegram::commands::escape_html;
use crate::telegram::format;

/// The whale monitor.
pub struct Whales {
    pub config: WhaleMonitorConfig,
}

/// The alerts for a whale list: new positions at or above their symbol's
/// threshold and younger than `max_age_ms` (the list is a rolling window).
pub fn alerts(
    positions: &[WhalePosition],
    shared_cfg: &crate::config::MonitorsConfig,
    max_age_ms: i64,
    now_ms: i64,
) -> Vec<NewAlert> {
    positions
        .iter()
        .filter(|p| now_ms - p.create_time_ms <= max_age_ms)
        .filter_map(|p| {
            let t = shared_cfg.thresholds(&p.symbol);
            (p.position_value_usd >= t.whale_usd).then(|| {
                let side = if p.is_long() { "long" } else { "short" };
                let action = match p.action {
                    WhaleAction::Open => "open",
                    WhaleAction::Close => "close",
                };
                NewAlert {
                    kind: AlertKind::Whales,
                    symbol: p.symbol.to_ascii_uppercase(),
                    direction: format!("{side}-{action}"),
                    event_key: format!("whale|{}", p.dedup_key()),
                    text: format!(
                        "🐋 <b>Whale alert</b>\n{}\nWhy: position ≥ {}\n/unsubscribe {} whales",
                        format::whale_line(p),
                        format::usd(t.whale_usd),
                        escape_html(&p.symbol.to_ascii_uppercase())
                    ),
                    cooldown_secs: t.cooldown_secs,
                }
            })
        })
        .collect()
}

impl Poll for Whales {
    async fn poll(&mut self, shared: &Shared) -> Result<u64, PollError> {
        let positions = shared.market.whale_alerts_fresh().await?;
        let mut queued = 0;
        for a in alerts(
            &positions,
            &shared.config,
            self.config.max_age_secs as i64 * 1000,
            now_ms(),
        ) {
            queued += u64::from(shared.emit(a)?);
        }
        Ok(queued)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(symbol: &str, size: f64, value: f64, age_ms: i64, now: i64) -> WhalePosition {
        WhalePosition {
            user: "0xabcdef0123456789abcdef".into(),
            symbol: symbol.into(),
            position_size: size,
            entry_price: 100.0,
            liq_price: Some(80.0),
            position_value_usd: value,
            action: WhaleAction::Open,
            create_time_ms: now - age_ms,
        }
    }

    #[test]
    fn thresholds_by_group_and_age() {
        let cfg = crate::config::MonitorsConfig::default();
        let now = 1_800_000_000_000;
        let list = [
            pos("BTC", 10.0, 1_500_000.0, 1000, now), // major, above $1M
            pos("BTC", -10.0, 900_000.0, 1000, now),  // major, below $1M
            pos("PEPE", -5.0, 250_000.0, 1000, now),  // other, above $200k
            pos("ETH", 5.0, 5_000_000.0, 3_600_000, now), // too old
        ];
        let a = alerts(&list, &cfg, 900_000, now);
        assert_eq!(a.len(), 2);
        assert_eq!(a[0].direction, "long-open");
        assert!(
            a[0].text.contains("LONG") && a[0].text.contains("/unsubscribe BTC whales"),
            "{}",
            a[0].text
        );
        assert_eq!(a[1].symbol, "PEPE");
        assert_eq!(a[1].direction, "short-open");
        assert_eq!(a[1].cooldown_secs, 600);
    }
}
