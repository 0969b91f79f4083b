//! CoinGlass v4 wire models and the domain types the bot and monitors use.
//!
//! Wire structs (`Raw*`) mirror the JSON: unknown fields are ignored, the fields
//! we use are required, and numbers are accepted both as JSON numbers and as
//! numeric strings (CoinGlass sends either, depending on the endpoint). They
//! are converted into the domain types, which carry our units and decisions
//! (sides, margins, the `All` row) so callers never see the wire quirks.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

/// A CoinGlass feature: one endpoint, disabled on its own when the plan lacks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Feature {
    /// Single liquidation orders (`/api/futures/liquidation/order`, Standard+).
    LiquidationOrders,
    /// Aggregated liquidation history (`/api/futures/liquidation/aggregated-history`).
    AggregatedLiquidations,
    /// Liquidations per exchange (`/api/futures/liquidation/exchange-list`).
    ExchangeLiquidations,
    /// Hyperliquid whale positions (`/api/hyperliquid/whale-alert`, Startup+).
    Whales,
    /// Funding rates per exchange (`/api/futures/funding-rate/exchange-list`).
    Funding,
    /// Supported coins (`/api/futures/supported-coins`).
    SupportedCoins,
}

impl Feature {
    /// Every feature, in a stable order (for `/status`).
    pub const ALL: [Feature; 6] = [
        Feature::LiquidationOrders,
        Feature::AggregatedLiquidations,
        Feature::ExchangeLiquidations,
        Feature::Whales,
        Feature::Funding,
        Feature::SupportedCoins,
    ];

    /// The endpoint path of this feature.
    pub fn path(self) -> &'static str {
        match self {
            Feature::LiquidationOrders => "/api/futures/liquidation/order",
            Feature::AggregatedLiquidations => "/api/futures/liquidation/aggregated-history",
            Feature::ExchangeLiquidations => "/api/futures/liquidation/exchange-list",
            Feature::Whales => "/api/hyperliquid/whale-alert",
            Feature::Funding => "/api/futures/funding-rate/exchange-list",
            Feature::SupportedCoins => "/api/futures/supported-coins",
        }
    }

    /// A short human name, e.g. `whale alerts`.
    pub fn name(self) -> &'static str {
        match self {
            Feature::LiquidationOrders => "liquidation orders",
            Feature::AggregatedLiquidations => "aggregated liquidations",
            Feature::ExchangeLiquidations => "exchange liquidations",
            Feature::Whales => "whale alerts",
            Feature::Funding => "funding rates",
            Feature::SupportedCoins => "supported coins",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Feature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

// ---------------------------------------------------------------------------
// Domain types
// ---------------------------------------------------------------------------

/// Liquidations of one coin over a range, per exchange and in total.
#[derive(Debug, Clone, PartialEq)]
pub struct LiquidationSummary {
    /// Coin, e.g. `BTC`.
    pub symbol: String,
    /// Range asked for, e.g. `24h`.
    pub range: String,
    /// Total in USD (from the `All` row, or the sum of the rows without one).
    pub total_usd: f64,
    /// Long liquidations in USD.
    pub long_usd: f64,
    /// Short liquidations in USD.
    pub short_usd: f64,
    /// Per exchange, largest total first; the `All` row is not among them.
    pub exchanges: Vec<ExchangeLiq>,
}

/// One exchange's liquidations.
#[derive(Debug, Clone, PartialEq)]
pub struct ExchangeLiq {
    /// Exchange name as CoinGlass spells it, e.g. `Binance`.
    pub exchange: String,
    /// Total in USD.
    pub total_usd: f64,
    /// Long liquidations in USD.
    pub long_usd: f64,
    /// Short liquidations in USD.
    pub short_usd: f64,
}

/// How a perpetual contract is margined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Margin {
    /// USDT/USD(C)-margined (`stablecoin_margin_list`).
    Stablecoin,
    /// Coin-margined (`token_margin_list`).
    Token,
}

/// One exchange's current funding rate.
#[derive(Debug, Clone, PartialEq)]
pub struct FundingRate {
    /// Exchange name, e.g. `Binance`.
    pub exchange: String,
    /// The rate per funding interval **in percent**, as CoinGlass reports it:
    /// `0.01` means 0.01 % (the usual 8-hour baseline), not 1 %.
    pub rate_pct: f64,
    /// Funding interval in hours, when reported (token-margined rows often omit it).
    pub interval_hours: Option<f64>,
    /// Next funding time, Unix milliseconds, when reported.
    pub next_funding_time_ms: Option<i64>,
    /// Stablecoin- or coin-margined.
    pub margin: Margin,
}

/// Funding rates of one coin across exchanges.
#[derive(Debug, Clone, PartialEq)]
pub struct FundingSnapshot {
    /// Coin, e.g. `BTC`.
    pub symbol: String,
    /// Every entry that has a rate; stablecoin-margined first, each group by exchange name.
    pub rates: Vec<FundingRate>,
    /// Plain mean of `rate_pct` over the stablecoin-margined entries, **in
    /// percent per interval** (no normalisation to 8 h: CoinGlass reports the
    /// rate per each exchange's own interval, and thresholds are set in the
    /// same unit). `0.0` when there is no stablecoin-margined rate; check
    /// [`FundingSnapshot::stablecoin_count`].
    pub average_pct: f64,
    /// The earliest next funding time over all entries, Unix milliseconds.
    pub next_funding_time_ms: Option<i64>,
}

impl FundingSnapshot {
    /// How many stablecoin-margined rates went into [`Self::average_pct`].
    pub fn stablecoin_count(&self) -> usize {
        self.rates
            .iter()
            .filter(|r| r.margin == Margin::Stablecoin)
            .count()
    }
}

/// Open or close of a whale position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WhaleAction {
    /// `position_action` 1.
    Open,
    /// `position_action` 2.
    Close,
}

/// One Hyperliquid whale position event.
#[derive(Debug, Clone, PartialEq)]
pub struct WhalePosition {
    /// Wallet address.
    pub user: String,
    /// Coin, e.g. `BTC`.
    pub symbol: String,
    /// Size in coins: positive long, negative short.
    pub position_size: f64,
    /// Entry price.
    pub entry_price: f64,
    /// Liquidation price; `None` when absent or not positive (CoinGlass sends 0
    /// for positions without one).
    pub liq_price: Option<f64>,
    /// Position value in USD (as reported; may be signed, use `.abs()` for size).
    pub position_value_usd: f64,
    /// Opened or closed.
    pub action: WhaleAction,
    /// Event time, Unix milliseconds.
    pub create_time_ms: i64,
}

impl WhalePosition {
    /// A long position (positive size).
    pub fn is_long(&self) -> bool {
        self.position_size > 0.0
    }

    /// Stable identity across polls of the rolling list: `user|symbol|create_time`.
    pub fn dedup_key(&self) -> String {
        format!("{}|{}|{}", self.user, self.symbol, self.create_time_ms)
    }
}

/// Which side was liquidated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LiqSide {
    /// A long was liquidated (CoinGlass `side` 2: a forced sell).
    Long,
    /// A short was liquidated (CoinGlass `side` 1: a forced buy).
    Short,
}

/// One liquidation order.
#[derive(Debug, Clone, PartialEq)]
pub struct LiquidationOrder {
    /// Exchange, e.g. `Binance`.
    pub exchange: String,
    /// Pair, e.g. `BTCUSDT`.
    pub pair: String,
    /// Coin, e.g. `BTC` (falls back to the normalised pair when `base_asset` is absent).
    pub coin: String,
    /// Price.
    pub price: f64,
    /// Value in USD.
    pub usd_value: f64,
    /// Liquidated side.
    pub side: LiqSide,
    /// Time, Unix milliseconds.
    pub time_ms: i64,
}

impl LiquidationOrder {
    /// Stable identity across polls: `exchange|pair|time|usd_value`.
    pub fn dedup_key(&self) -> String {
        format!(
            "{}|{}|{}|{}",
            self.exchange, self.pair, self.time_ms, self.usd_value
        )
    }
}

/// One bucket of the aggregated liquidation history.
#[derive(Debug, Clone, PartialEq)]
pub struct LiquidationBucket {
    /// Bucket start, Unix milliseconds.
    pub time_ms: i64,
    /// Long liquidations in USD.
    pub long_usd: f64,
    /// Short liquidations in USD.
    pub short_usd: f64,
}

/// Parameters of [`super::CoinGlass::liquidation_orders`].
#[derive(Debug, Clone, PartialEq)]
pub struct OrderQuery {
    /// Exchange, e.g. `Binance` (`All` for every exchange).
    pub exchange: String,
    /// Coin, e.g. `BTC`.
    pub symbol: String,
    /// Minimum order value in USD.
    pub min_usd: f64,
    /// Start of the window, Unix milliseconds.
    pub start_ms: Option<i64>,
    /// End of the window, Unix milliseconds.
    pub end_ms: Option<i64>,
}

/// Parameters of [`super::CoinGlass::aggregated_liquidations`].
#[derive(Debug, Clone, PartialEq)]
pub struct AggregatedQuery {
    /// Coin, e.g. `BTC`.
    pub symbol: String,
    /// Exchanges to aggregate, e.g. `["Binance", "OKX", "Bybit"]`.
    pub exchanges: Vec<String>,
    /// Bucket size, e.g. `4h` (Hobbyist plans need at least 4h).
    pub interval: String,
    /// Number of buckets (newest last).
    pub limit: u32,
}

// ---------------------------------------------------------------------------
// Wire models
// ---------------------------------------------------------------------------

/// The response envelope. `data` stays untyped until `code` says success, so a
/// failure envelope is never mistaken for malformed data.
#[derive(Debug, Deserialize)]
pub(crate) struct Envelope {
    pub code: Code,
    #[serde(default)]
    pub msg: Option<String>,
    #[serde(default)]
    pub data: Option<serde_json::Value>,
}

/// The envelope `code`: a string (`"0"`), tolerated as a number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Code(pub String);

impl Code {
    pub fn is_success(&self) -> bool {
        self.0 == "0"
    }
}

impl<'de> Deserialize<'de> for Code {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Code;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or integer code")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Code, E> {
                Ok(Code(v.trim().to_owned()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Code, E> {
                Ok(Code(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Code, E> {
                Ok(Code(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// A float sent as a JSON number or a numeric string; NaN/inf rejected.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Num(pub f64);

impl<'de> Deserialize<'de> for Num {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Num;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number or a numeric string")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Num, E> {
                if v.is_finite() {
                    Ok(Num(v))
                } else {
                    Err(E::custom("non-finite number"))
                }
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Num, E> {
                Ok(Num(v as f64))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Num, E> {
                Ok(Num(v as f64))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Num, E> {
                match v.trim().parse::<f64>() {
                    Ok(n) if n.is_finite() => Ok(Num(n)),
                    _ => Err(E::invalid_value(de::Unexpected::Str(v), &self)),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// An integer (times in ms, codes) sent as a number, an integral float or a numeric string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Int(pub i64);

impl<'de> Deserialize<'de> for Int {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        fn from_f64<E: de::Error>(v: f64) -> Result<Int, E> {
            if v.is_finite() && v.fract() == 0.0 && v.abs() < 9.0e15 {
                Ok(Int(v as i64))
            } else {
                Err(E::custom("not an integer"))
            }
        }
        impl Visitor<'_> for V {
            type Value = Int;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an integer or an integer string")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Int, E> {
                Ok(Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Int, E> {
                i64::try_from(v)
                    .map(Int)
                    .map_err(|_| E::custom("integer out of range"))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Int, E> {
                from_f64(v)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Int, E> {
                let t = v.trim();
                match t.parse::<i64>() {
                    Ok(n) => Ok(Int(n)),
                    Err(_) => match t.parse::<f64>() {
                        Ok(f) => from_f64(f),
                        Err(_) => Err(E::invalid_value(de::Unexpected::Str(v), &self)),
                    },
                }
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct RawExchangeLiq {
    pub exchange: String,
    /// Some answers omit the total; it is then long + short.
    #[serde(default)]
    pub liquidation_usd: Option<Num>,
    pub long_liquidation_usd: Num,
    pub short_liquidation_usd: Num,
}

#[derive(Debug, Deserialize)]
pub(crate) struct RawFundingCoin {
    pub symbol: String,
    #[serde(default)]
    pub stablecoin_margin_list: Vec<RawFundingEntry>,
    #[serde(default)]
    pub token_margin_list: Vec<RawFundingEntry>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct RawFundingEntry {
    pub exchange: String,
    /// Missing for exchanges that list the contract without a current rate.
    #[serde(default)]
    pub funding_rate: Option<Num>,
    #[serde(default)]
    pub funding_rate_interval: Option<Num>,
    #[serde(default)]
    pub next_funding_time: Option<Int>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct RawWhale {
    pub user: String,
    pub symbol: String,
    pub position_size: Num,
    pub entry_price: Num,
    #[serde(default)]
    pub liq_price: Option<Num>,
    pub position_value_usd: Num,
    pub position_action: Int,
    pub create_time: Int,
}

#[derive(Debug, Deserialize)]
pub(crate) struct RawLiqOrder {
    pub exchange_name: String,
    pub symbol: String,
    #[serde(default)]
    pub base_asset: Option<String>,
    pub price: Num,
    pub usd_value: Num,
    pub side: Int,
    pub time: Int,
}

#[derive(Debug, Deserialize)]
pub(crate) struct RawAggregated {
    pub time: Int,
    pub aggregated_long_liquidation_usd: Num,
    pub aggregated_short_liquidation_usd: Num,
}

// ---------------------------------------------------------------------------
// Conversions (errors are plain strings; the client wraps them as Malformed)
// ---------------------------------------------------------------------------

/// Builds the summary; the `All` row (any case) gives the totals and is not listed.
pub(crate) fn liquidation_summary(
    symbol: &str,
    range: &str,
    rows: Vec<RawExchangeLiq>,
) -> LiquidationSummary {
    let mut total_row = None;
    let mut exchanges = Vec::with_capacity(rows.len());
    for r in rows {
        let long_usd = r.long_liquidation_usd.0;
        let short_usd = r.short_liquidation_usd.0;
        let total_usd = r.liquidation_usd.map_or(long_usd + short_usd, |n| n.0);
        let row = ExchangeLiq {
            exchange: r.exchange,
            total_usd,
            long_usd,
            short_usd,
        };
        if row.exchange.trim().eq_ignore_ascii_case("all") {
            total_row = Some(row);
        } else {
            exchanges.push(row);
        }
    }
    exchanges.sort_by(|a, b| b.total_usd.total_cmp(&a.total_usd));
    let (total_usd, long_usd, short_usd) = match total_row {
        Some(t) => (t.total_usd, t.long_usd, t.short_usd),
        None => exchanges.iter().fold((0.0, 0.0, 0.0), |acc, e| {
            (acc.0 + e.total_usd, acc.1 + e.long_usd, acc.2 + e.short_usd)
        }),
    };
    LiquidationSummary {
        symbol: symbol.to_owned(),
        range: range.to_owned(),
        total_usd,
        long_usd,
        short_usd,
        exchanges,
    }
}

/// Picks `symbol` out of the funding list; `None` when it is not listed.
pub(crate) fn funding_snapshot(
    symbol: &str,
    coins: Vec<RawFundingCoin>,
) -> Option<FundingSnapshot> {
    let coin = coins
        .into_iter()
        .find(|c| c.symbol.eq_ignore_ascii_case(symbol))?;
    let convert = |list: Vec<RawFundingEntry>, margin: Margin| {
        let mut out: Vec<FundingRate> = list
            .into_iter()
            .filter_map(|e| {
                Some(FundingRate {
                    exchange: e.exchange,
                    rate_pct: e.funding_rate?.0,
                    interval_hours: e.funding_rate_interval.map(|n| n.0).filter(|h| *h > 0.0),
                    next_funding_time_ms: e.next_funding_time.map(|n| n.0).filter(|t| *t > 0),
                    margin,
                })
            })
            .collect();
        out.sort_by(|a, b| a.exchange.cmp(&b.exchange));
        out
    };
    let mut rates = convert(coin.stablecoin_margin_list, Margin::Stablecoin);
    rates.extend(convert(coin.token_margin_list, Margin::Token));
    let stable: Vec<f64> = rates
        .iter()
        .filter(|r| r.margin == Margin::Stablecoin)
        .map(|r| r.rate_pct)
        .collect();
    let average_pct = if stable.is_empty() {
        0.0
    } else {
        stable.iter().sum::<f64>() / stable.len() as f64
    };
    let next_funding_time_ms = rates.iter().filter_map(|r| r.next_funding_time_ms).min();
    Some(FundingSnapshot {
        symbol: coin.symbol.to_ascii_uppercase(),
        rates,
        average_pct,
        next_funding_time_ms,
    })
}

pub(crate) fn whale(raw: RawWhale) -> Result<WhalePosition, String> {
    let action = match raw.position_action.0 {
        1 => WhaleAction::Open,
        2 => WhaleAction::Close,
        other => return Err(format!("unknown position_action {other}")),
    };
    Ok(WhalePosition {
        user: raw.user,
        symbol: raw.symbol.to_ascii_uppercase(),
        position_size: raw.position_size.0,
        entry_price: raw.entry_price.0,
        liq_price: raw.liq_price.map(|n| n.0).filter(|p| *p > 0.0),
        position_value_usd: raw.position_value_usd.0,
        action,
        create_time_ms: raw.create_time.0,
    })
}

pub(crate) fn liquidation_order(raw: RawLiqOrder) -> Result<LiquidationOrder, String> {
    let side = match raw.side.0 {
        1 => LiqSide::Short,
        2 => LiqSide::Long,
        other => return Err(format!("unknown side {other}")),
    };
    let coin = raw
        .base_asset
        .filter(|b| !b.trim().is_empty())
        .map(|b| b.trim().to_ascii_uppercase())
        .or_else(|| super::normalize_symbol(&raw.symbol))
        .unwrap_or_else(|| raw.symbol.clone());
    Ok(LiquidationOrder {
        exchange: raw.exchange_name,
        pair: raw.symbol,
        coin,
        price: raw.price.0,
        usd_value: raw.usd_value.0,
        side,
        time_ms: raw.time.0,
    })
}

pub(crate) fn bucket(raw: RawAggregated) -> LiquidationBucket {
    LiquidationBucket {
        time_ms: raw.time.0,
        long_usd: raw.aggregated_long_liquidation_usd.0,
        short_usd: raw.aggregated_short_liquidation_usd.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> Result<T, String> {
        serde_json::from_value(v).map_err(|e| e.to_string())
    }

    #[test]
    fn numbers_as_numbers_or_strings() {
        let n: Vec<Num> = parse(json!([1, 2.5, "3.25", " -4 ", 1e3])).unwrap();
        assert_eq!(
            n.iter().map(|n| n.0).collect::<Vec<_>>(),
            vec![1.0, 2.5, 3.25, -4.0, 1000.0]
        );
        assert!(parse::<Num>(json!("abc")).is_err());
        assert!(parse::<Num>(json!("NaN")).is_err());
        assert!(parse::<Num>(json!(null)).is_err());
        assert!(parse::<Num>(json!(true)).is_err());
        let i: Vec<Int> = parse(json!([1700000000000_i64, "1700000000001", 1.7e12])).unwrap();
        assert_eq!(i[0].0, 1_700_000_000_000);
        assert_eq!(i[1].0, 1_700_000_000_001);
        assert_eq!(i[2].0, 1_700_000_000_000);
        assert!(parse::<Int>(json!(1.5)).is_err());
        assert!(parse::<Int>(json!("1.5")).is_err());
    }

    #[test]
    fn envelope_code_string_or_number() {
        let e: Envelope = parse(json!({"code": "0", "msg": "success", "data": [1]})).unwrap();
        assert!(e.code.is_success());
        let e: Envelope = parse(json!({"code": 401, "msg": "Upgrade plan"})).unwrap();
        assert_eq!(e.code.0, "401");
        assert!(e.data.is_none());
        assert!(parse::<Envelope>(json!({"msg": "no code"})).is_err());
    }

    #[test]
    fn exchange_list_uses_all_row_for_totals_and_drops_it() {
        let rows: Vec<RawExchangeLiq> = parse(json!([
            {"exchange": "All", "liquidation_usd": 3000.0, "long_liquidation_usd": 1800, "short_liquidation_usd": "1200", "extra": 1},
            {"exchange": "OKX", "liquidation_usd": "1000", "long_liquidation_usd": 600, "short_liquidation_usd": 400},
            {"exchange": "Binance", "liquidation_usd": 2000, "long_liquidation_usd": 1200, "short_liquidation_usd": 800, "logo": "x.png"}
        ]))
        .unwrap();
        let s = liquidation_summary("BTC", "24h", rows);
        assert_eq!(s.total_usd, 3000.0);
        assert_eq!(s.long_usd, 1800.0);
        assert_eq!(s.short_usd, 1200.0);
        let names: Vec<&str> = s.exchanges.iter().map(|e| e.exchange.as_str()).collect();
        assert_eq!(names, ["Binance", "OKX"]);
    }

    #[test]
    fn exchange_list_without_all_row_sums_rows() {
        let rows: Vec<RawExchangeLiq> = parse(json!([
            {"exchange": "OKX", "long_liquidation_usd": 600, "short_liquidation_usd": 400},
            {"exchange": "Bybit", "liquidation_usd": 50, "long_liquidation_usd": 20, "short_liquidation_usd": 30}
        ]))
        .unwrap();
        let s = liquidation_summary("ETH", "1h", rows);
        assert_eq!(s.total_usd, 1050.0);
        assert_eq!(s.long_usd, 620.0);
        assert_eq!(s.short_usd, 430.0);
        assert_eq!(s.exchanges[0].exchange, "OKX");
    }

    #[test]
    fn exchange_list_missing_field_is_an_error() {
        let r =
            parse::<Vec<RawExchangeLiq>>(json!([{"exchange": "OKX", "long_liquidation_usd": 1}]));
        assert!(r.unwrap_err().contains("short_liquidation_usd"));
    }

    #[test]
    fn funding_average_over_stablecoin_entries_with_a_rate() {
        let coins: Vec<RawFundingCoin> = parse(json!([
            {"symbol": "ETH", "stablecoin_margin_list": []},
            {"symbol": "BTC",
             "stablecoin_margin_list": [
                {"exchange": "OKX", "funding_rate": "0.02", "funding_rate_interval": 8, "next_funding_time": 1700000600000_i64},
                {"exchange": "Binance", "funding_rate": 0.01, "funding_rate_interval": 8, "next_funding_time": "1700000000000", "extra": "x"},
                {"exchange": "Nowhere"}
             ],
             "token_margin_list": [
                {"exchange": "Binance", "funding_rate": 0.5}
             ]}
        ]))
        .unwrap();
        let f = funding_snapshot("btc", coins).unwrap();
        assert_eq!(f.symbol, "BTC");
        assert_eq!(f.rates.len(), 3);
        assert_eq!(f.rates[0].exchange, "Binance");
        assert_eq!(f.rates[2].margin, Margin::Token);
        assert_eq!(f.rates[2].interval_hours, None);
        assert!((f.average_pct - 0.015).abs() < 1e-12);
        assert_eq!(f.stablecoin_count(), 2);
        assert_eq!(f.next_funding_time_ms, Some(1_700_000_000_000));
    }

    #[test]
    fn funding_unknown_symbol_is_none() {
        let coins: Vec<RawFundingCoin> = parse(json!([{"symbol": "ETH"}])).unwrap();
        assert!(funding_snapshot("BTC", coins).is_none());
    }

    #[test]
    fn whale_parsing() {
        let raw: RawWhale = parse(json!({
            "user": "0xabc", "symbol": "BTC", "position_size": "-12.5", "entry_price": 100000,
            "liq_price": 0, "position_value_usd": 1250000.0, "position_action": 1,
            "create_time": 1700000000000_i64, "unknown": {"nested": true}
        }))
        .unwrap();
        let w = whale(raw).unwrap();
        assert!(!w.is_long());
        assert_eq!(w.liq_price, None);
        assert_eq!(w.action, WhaleAction::Open);
        assert_eq!(w.dedup_key(), "0xabc|BTC|1700000000000");

        let raw: RawWhale = parse(json!({
            "user": "0xabc", "symbol": "ETH", "position_size": 1, "entry_price": 1,
            "position_value_usd": 1, "position_action": 3, "create_time": 1
        }))
        .unwrap();
        assert!(whale(raw).is_err());
        assert!(parse::<RawWhale>(json!({"user": "0xabc", "symbol": "ETH"})).is_err());
    }

    #[test]
    fn order_parsing_and_sides() {
        let raw: RawLiqOrder = parse(json!({
            "exchange_name": "Binance", "symbol": "BTCUSDT", "base_asset": "BTC",
            "price": "65000.5", "usd_value": 750000, "side": 2, "time": 1700000000000_i64, "x": null
        }))
        .unwrap();
        let o = liquidation_order(raw).unwrap();
        assert_eq!(o.side, LiqSide::Long);
        assert_eq!(o.coin, "BTC");
        assert_eq!(o.dedup_key(), "Binance|BTCUSDT|1700000000000|750000");

        let raw: RawLiqOrder = parse(json!({
            "exchange_name": "OKX", "symbol": "ETH-USDT-SWAP", "price": 1, "usd_value": 1,
            "side": "1", "time": 1
        }))
        .unwrap();
        let o = liquidation_order(raw).unwrap();
        assert_eq!(o.side, LiqSide::Short);
        assert_eq!(o.coin, "ETH");

        let missing = parse::<RawLiqOrder>(
            json!({"exchange_name": "OKX", "symbol": "X", "price": 1, "side": 1, "time": 1}),
        );
        assert!(missing.unwrap_err().contains("usd_value"));
    }
}
