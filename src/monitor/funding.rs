//! Funding rates entering an extreme zone, per symbol, averaged over exchanges.
//! Alerts fire on entering the zone (or flipping sides), not on every poll.

use super::{now_ms, Poll, PollError, Shared};
use crate::alerts::AlertKind;
use crate::config::FundingMonitorConfig;
use crate::market::FundingSnapshot;
use crate::store::NewAlert;
use crate::telegram::commands::escape_html;
use crate::timefmt;

/// The funding monitor.
pub struct Funding {
    pub config: FundingMonitorConfig,
}

/// The zone of an average rate: 1 above `extreme`, -1 below `-extreme`, else 0.
pub fn zone(average_pct: f64, extreme_pct: f64) -> i64 {
    if average_pct >= extreme_pct {
        1
    } else if average_pct <= -extreme_pct {
        -1
    } else {
        0
    }
}

/// The alert for entering `zone` (non-zero) from `previous`.
pub fn alert(
    f: &FundingSnapshot,
    zone: i64,
    previous: i64,
    extreme_pct: f64,
    cooldown_secs: u64,
    now_ms: i64,
) -> Option<NewAlert> {
    if zone == 0 || zone == previous {
        return None;
    }
    let (direction, who) = if zone > 0 {
        ("positive", "longs pay shorts: crowded longs")
    } else {
        ("negative", "shorts pay longs: crowded shorts")
    };
    let symbol = f.symbol.to_ascii_uppercase();
    Some(NewAlert {
        kind: AlertKind::Funding,
        symbol: symbol.clone(),
        direction: direction.into(),
        event_key: format!("funding|{symbol}|{zone}|{now_ms}"),
        text: format!(
            "📈 <b>{} funding extreme</b>: average <b>{:+.4}%</b> over {} exchanges ({who})\n{}\nWhy: |average| ≥ {:.4}% per funding interval\n/unsubscribe {} funding",
            escape_html(&symbol),
            f.average_pct,
            f.stablecoin_count(),
            timefmt::utc_from_unix(now_ms / 1000),
            extreme_pct,
            escape_html(&symbol)
        ),
        cooldown_secs,
    })
}

impl Poll for Funding {
    async fn poll(&mut self, shared: &Shared) -> Result<u64, PollError> {
        let symbols = shared.watched(&self.config.symbols, AlertKind::Funding, 20);
        let mut queued = 0;
        for symbol in symbols {
            let snap = match shared.market.funding_rates(&symbol).await {
                Ok(s) => s,
                // A subscribed symbol CoinGlass has no funding for: skip it.
                Err(crate::market::MarketError::UnknownSymbol(_)) => continue,
                Err(e) => return Err(e.into()),
            };
            if snap.stablecoin_count() == 0 {
                continue;
            }
            let z = zone(snap.average_pct, self.config.extreme_pct);
            let previous = shared.store.funding_zone(&symbol)?;
            let cooldown = shared.config.thresholds(&symbol).cooldown_secs;
            if let Some(a) = alert(
                &snap,
                z,
                previous,
                self.config.extreme_pct,
                cooldown,
                now_ms(),
            ) {
                queued += u64::from(shared.emit(a)?);
            }
            if z != previous {
                shared.store.set_funding_zone(&symbol, z)?;
            }
        }
        Ok(queued)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::market::{FundingRate, Margin};

    fn snap(avg: f64) -> FundingSnapshot {
        FundingSnapshot {
            symbol: "ETH".into(),
            rates: vec![FundingRate {
                exchange: "Binance".into(),
                rate_pct: avg,
                interval_hours: Some(8.0),
                next_funding_time_ms: None,
                margin: Margin::Stablecoin,
            }],
            average_pct: avg,
            next_funding_time_ms: None,
        }
    }

    #[test]
    fn alerts_on_entering_the_zone_only() {
        assert_eq!(zone(0.12, 0.1), 1);
        assert_eq!(zone(-0.1, 0.1), -1);
        assert_eq!(zone(0.05, 0.1), 0);
        assert!(alert(&snap(0.12), 1, 0, 0.1, 300, 1).is_some(), "entering");
        assert!(alert(&snap(0.15), 1, 1, 0.1, 300, 2).is_none(), "staying");
        assert!(alert(&snap(-0.2), -1, 1, 0.1, 300, 3).is_some(), "flipping");
        assert!(alert(&snap(0.01), 0, 1, 0.1, 300, 4).is_none(), "leaving");
        let a = alert(&snap(0.12), 1, 0, 0.1, 300, 5).unwrap();
        assert!(
            a.text.contains("+0.1200%") && a.text.contains("/unsubscribe ETH funding"),
            "{}",
            a.text
        );
    }
}
