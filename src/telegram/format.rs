//! Market data as short, scannable HTML messages. Every string that comes from
//! outside (exchange names, symbols, addresses) is escaped.

use super::commands::escape_html;
use crate::market::{FundingSnapshot, LiquidationSummary, Margin, WhaleAction, WhalePosition};
use crate::timefmt;

/// `$1.23B`, `$4.56M`, `$789.0K`, `$512`.
pub fn usd(v: f64) -> String {
    let a = v.abs();
    let sign = if v < 0.0 { "-" } else { "" };
    if a >= 1e9 {
        format!("{sign}${:.2}B", a / 1e9)
    } else if a >= 1e6 {
        format!("{sign}${:.2}M", a / 1e6)
    } else if a >= 1e3 {
        format!("{sign}${:.1}K", a / 1e3)
    } else {
        format!("{sign}${a:.0}")
    }
}

/// A price with sensible precision.
pub fn price(p: f64) -> String {
    if p >= 1000.0 {
        format!("${p:.0}")
    } else if p >= 1.0 {
        format!("${p:.2}")
    } else {
        format!("${p:.6}")
    }
}

fn pct_of(part: f64, total: f64) -> String {
    if total > 0.0 {
        format!("{:.0}%", part / total * 100.0)
    } else {
        "–".into()
    }
}

/// `/liq SYMBOL`.
pub fn liquidations(s: &LiquidationSummary) -> String {
    let mut t = format!(
        "<b>{} liquidations, last {}</b>\nTotal: <b>{}</b>\nLongs: {} ({})\nShorts: {} ({})",
        escape_html(&s.symbol),
        escape_html(&s.range),
        usd(s.total_usd),
        usd(s.long_usd),
        pct_of(s.long_usd, s.total_usd),
        usd(s.short_usd),
        pct_of(s.short_usd, s.total_usd),
    );
    if !s.exchanges.is_empty() {
        t.push_str("\n\n<b>Top exchanges</b>");
        for e in s.exchanges.iter().take(5) {
            t.push_str(&format!(
                "\n{}: {} (L {} / S {})",
                escape_html(&e.exchange),
                usd(e.total_usd),
                usd(e.long_usd),
                usd(e.short_usd)
            ));
        }
    }
    t
}

/// `/funding SYMBOL`.
pub fn funding(f: &FundingSnapshot) -> String {
    let mut t = format!(
        "<b>{} funding rates</b>\nAverage (USDT/USDC-margined): <b>{:+.4}%</b>",
        escape_html(&f.symbol),
        f.average_pct
    );
    if let Some(next) = f.next_funding_time_ms {
        t.push_str(&format!(
            "\nNext funding: {}",
            timefmt::utc_from_unix(next / 1000)
        ));
    }
    let mut rates: Vec<_> = f
        .rates
        .iter()
        .filter(|r| r.margin == Margin::Stablecoin)
        .collect();
    rates.sort_by(|a, b| b.rate_pct.abs().total_cmp(&a.rate_pct.abs()));
    if !rates.is_empty() {
        t.push('\n');
        for r in rates.iter().take(10) {
            let interval = r
                .interval_hours
                .map(|h| format!(" / {h}h"))
                .unwrap_or_default();
            t.push_str(&format!(
                "\n{}: {:+.4}%{}",
                escape_html(&r.exchange),
                r.rate_pct,
                interval
            ));
        }
    }
    t
}

/// `/whale [SYMBOL]`: the latest positions, newest first.
pub fn whales(symbol: Option<&str>, positions: &[WhalePosition]) -> String {
    let title = match symbol {
        Some(s) => format!(
            "<b>Latest Hyperliquid whale positions: {}</b>",
            escape_html(s)
        ),
        None => "<b>Latest Hyperliquid whale positions</b>".to_owned(),
    };
    let mut rows: Vec<&WhalePosition> = positions
        .iter()
        .filter(|p| symbol.is_none_or(|s| p.symbol.eq_ignore_ascii_case(s)))
        .collect();
    rows.sort_by_key(|p| std::cmp::Reverse(p.create_time_ms));
    if rows.is_empty() {
        return format!("{title}\nNo large positions reported recently.");
    }
    let mut t = title;
    for p in rows.iter().take(8) {
        t.push_str(&format!("\n\n{}", whale_line(p)));
    }
    t
}

/// One whale position, also used by alerts.
pub fn whale_line(p: &WhalePosition) -> String {
    let side = if p.is_long() {
        "LONG 🟢"
    } else {
        "SHORT 🔴"
    };
    let action = match p.action {
        WhaleAction::Open => "opened",
        WhaleAction::Close => "closed",
    };
    let liq = p
        .liq_price
        .map(|l| format!(", liq. {}", price(l)))
        .unwrap_or_default();
    format!(
        "{} {side} {action}: <b>{}</b> at {}{liq}\n{} · {}",
        escape_html(&p.symbol),
        usd(p.position_value_usd),
        price(p.entry_price),
        escape_html(&short_address(&p.user)),
        timefmt::utc_from_unix(p.create_time_ms / 1000)
    )
}

fn short_address(a: &str) -> String {
    if a.len() > 14 && a.is_ascii() {
        format!("{}…{}", &a[..6], &a[a.len() - 4..])
    } else {
        a.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::market::ExchangeLiq;

    #[test]
    fn money() {
        assert_eq!(usd(1_234_567.0), "$1.23M");
        assert_eq!(usd(999.0), "$999");
        assert_eq!(usd(2_500_000_000.0), "$2.50B");
        assert_eq!(usd(45_600.0), "$45.6K");
    }

    #[test]
    fn liquidation_summary_escapes_names() {
        let s = LiquidationSummary {
            symbol: "BTC".into(),
            range: "24h".into(),
            total_usd: 10e6,
            long_usd: 6e6,
            short_usd: 4e6,
            exchanges: vec![ExchangeLiq {
                exchange: "<Evil&Co>".into(),
                total_usd: 10e6,
                long_usd: 6e6,
                short_usd: 4e6,
            }],
        };
        let t = liquidations(&s);
        assert!(t.contains("Total: <b>$10.00M</b>"), "{t}");
        assert!(t.contains("Longs: $6.00M (60%)"), "{t}");
        assert!(t.contains("&lt;Evil&amp;Co&gt;"), "{t}");
    }
}
