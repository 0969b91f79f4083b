//! Large single liquidation orders, per configured exchange and symbol.

use super::{now_ms, Poll, PollError, Shared};
use crate::alerts::AlertKind;
use crate::config::{LiquidationMonitorConfig, Thresholds};
use crate::market::{LiqSide, LiquidationOrder, OrderQuery};
use crate::store::NewAlert;
use crate::telegram::commands::escape_html;
use crate::telegram::format;
use crate::timefmt;

/// The liquidation monitor. Remembers where the last successful poll ended
/// so that each poll asks only for new orders (with an overlap that the
/// deduplication absorbs).
pub struct Liquidations {
    pub config: LiquidationMonitorConfig,
    pub since_ms: Option<i64>,
}

/// The alert for one order at or above the threshold.
pub fn alert(o: &LiquidationOrder, t: &Thresholds) -> Option<NewAlert> {
    if o.usd_value < t.liquidation_usd {
        return None;
    }
    let (side, emoji) = match o.side {
        LiqSide::Long => ("long", "🔴"),
        LiqSide::Short => ("short", "🟢"),
    };
    let symbol = o.coin.to_ascii_uppercase();
    Some(NewAlert {
        kind: AlertKind::Liquidations,
        symbol: symbol.clone(),
        direction: side.into(),
        event_key: format!("liq|{}", o.dedup_key()),
        text: format!(
            "{emoji} <b>{} {side} liquidated</b>: <b>{}</b> on {} at {}\n{}\nWhy: single liquidation ≥ {}\n/unsubscribe {} liquidations",
            escape_html(&symbol),
            format::usd(o.usd_value),
            escape_html(&o.exchange),
            format::price(o.price),
            timefmt::utc_from_unix(o.time_ms / 1000),
            format::usd(t.liquidation_usd),
            escape_html(&symbol)
        ),
        cooldown_secs: t.cooldown_secs,
    })
}

impl Poll for Liquidations {
    async fn poll(&mut self, shared: &Shared) -> Result<u64, PollError> {
        let now = now_ms();
        // Overlap one interval: orders can be published late.
        let window = self.config.interval_secs as i64 * 1000 * 2;
        let start = self.since_ms.map_or(now - window, |s| s - window / 2);
        let symbols = shared.watched(
            &self.config.symbols,
            AlertKind::Liquidations,
            self.config.max_symbols,
        );
        let mut queued = 0;
        for symbol in &symbols {
            let t = shared.config.thresholds(symbol);
            for exchange in &self.config.exchanges {
                let q = OrderQuery {
                    exchange: exchange.clone(),
                    symbol: symbol.clone(),
                    min_usd: t.liquidation_usd,
                    start_ms: Some(start),
                    end_ms: None,
                };
                let mut orders = shared.market.liquidation_orders(&q).await?;
                orders.sort_by_key(|o| o.time_ms);
                for o in &orders {
                    if let Some(a) = alert(o, &t) {
                        queued += u64::from(shared.emit(a)?);
                    }
                }
            }
        }
        self.since_ms = Some(now);
        Ok(queued)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_orders_at_or_above_the_threshold_alert() {
        let t = Thresholds {
            liquidation_usd: 500_000.0,
            whale_usd: 1.0,
            cooldown_secs: 300,
        };
        let mut o = LiquidationOrder {
            exchange: "Binance".into(),
            pair: "BTCUSDT".into(),
            coin: "BTC".into(),
            price: 95_000.0,
            usd_value: 499_999.0,
            side: LiqSide::Long,
            time_ms: 1_800_000_000_000,
        };
        assert!(alert(&o, &t).is_none());
        o.usd_value = 500_000.0;
        let a = alert(&o, &t).unwrap();
        assert_eq!(a.direction, "long");
        assert!(
            a.text.contains("BTC long liquidated") && a.text.contains("<b>$500.0K</b> on Binance"),
            "{}",
            a.text
        );
        assert!(a.text.contains("/unsubscribe BTC liquidations"));
    }
}
