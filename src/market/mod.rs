//! Market data: the CoinGlass v4 client and its models.
//!
//! [`CoinGlass`] is the one way the bot and the monitors reach CoinGlass. It
//! owns one HTTP client (reqwest with rustls) and, for all callers together:
//! - the request budget (`ratelimit`): at most the plan's requests per
//!   minute, learnt from `API-KEY-MAX-LIMIT`/`API-KEY-USE-LIMIT`; callers wait
//!   for a token, boundedly, and get [`MarketError::RateLimited`] instead of
//!   hanging;
//! - retries with exponential backoff and jitter on 5xx, timeouts and network
//!   errors (each attempt spends a token), and 429 handling;
//! - per-feature plan state: an endpoint outside the plan disables just that
//!   [`Feature`], logged once, re-checked hourly, visible in [`CoinGlass::health`];
//! - a short-lived cache (`cache`) for command answers, so concurrent
//!   identical questions cost one request.
//!
//! The API key goes into the `CG-API-KEY` header and nowhere else: not into
//! URLs, logs, errors or `Debug` output.

mod cache;
mod client;
mod error;
mod models;
mod ratelimit;

#[doc(hidden)]
pub use client::parse_body_for_fuzzing;
pub use client::{ClientOptions, CoinGlass, FeatureHealth, MarketHealth};
pub use error::MarketError;
pub use models::{
    AggregatedQuery, ExchangeLiq, Feature, FundingRate, FundingSnapshot, LiqSide,
    LiquidationBucket, LiquidationOrder, LiquidationSummary, Margin, OrderQuery, WhaleAction,
    WhalePosition,
};

/// Quote and contract suffixes stripped from pairs, longest first where one is
/// a suffix of another (`BUSD` before `USD`).
const QUOTE_SUFFIXES: [&str; 5] = ["USDT", "USDC", "BUSD", "FDUSD", "USD"];

/// The coin in what a user or an exchange calls a market: `btc`, `BTCUSDT`,
/// `BTC/USDT`, `BTC-PERP`, `$eth`, `ETH-USDT-SWAP` → `BTC`/`ETH`.
///
/// Uppercases, keeps the part before the first separator (`/ - _ : .`), strips a `PERP` and then one quote suffix (`USDT`, `USDC`, `BUSD`,
/// `FDUSD`, `USD`) unless nothing would remain. The result must be 1–15 of
/// `A-Z0-9`; anything else is `None`.
pub fn normalize_symbol(input: &str) -> Option<String> {
    let upper = input.trim().trim_start_matches('$').to_ascii_uppercase();
    let first = upper
        .split(['/', '-', '_', ':', '.'])
        .next()
        .unwrap_or_default();
    let mut coin = first;
    if let Some(rest) = coin.strip_suffix("PERP").filter(|r| !r.is_empty()) {
        coin = rest;
    }
    for quote in QUOTE_SUFFIXES {
        if let Some(rest) = coin.strip_suffix(quote).filter(|r| !r.is_empty()) {
            coin = rest;
            break;
        }
    }
    let valid = (1..=15).contains(&coin.len())
        && coin
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
    valid.then(|| coin.to_owned())
}

#[cfg(test)]
mod tests {
    use super::normalize_symbol;

    #[test]
    fn normalizes_user_and_exchange_spellings() {
        for (input, want) in [
            ("btc", "BTC"),
            (" BTC ", "BTC"),
            ("BTCUSDT", "BTC"),
            ("btcusdt", "BTC"),
            ("BTC/USDT", "BTC"),
            ("BTC-PERP", "BTC"),
            ("BTCPERP", "BTC"),
            ("BTC-USDT-SWAP", "BTC"),
            ("BTC/USDT:USDT", "BTC"),
            ("ETH_USDC", "ETH"),
            ("ETHBUSD", "ETH"),
            ("SOLUSD", "SOL"),
            ("$eth", "ETH"),
            ("1000PEPEUSDT", "1000PEPE"),
            ("USDT", "USDT"),
            ("USDC", "USDC"),
            ("PERP", "PERP"),
            ("SUSDT", "S"),
        ] {
            assert_eq!(normalize_symbol(input).as_deref(), Some(want), "{input}");
        }
    }

    #[test]
    fn rejects_what_is_not_a_symbol() {
        for input in [
            "",
            "  ",
            "/USDT",
            "-PERP",
            "BTC!",
            "ÄBC",
            "ABCDEFGHIJKLMNOP",
            "drop table",
            "BT C",
        ] {
            assert_eq!(normalize_symbol(input), None, "{input:?}");
        }
        assert_eq!(
            normalize_symbol("ABCDEFGHIJKLMNO").as_deref(),
            Some("ABCDEFGHIJKLMNO")
        );
    }
}
