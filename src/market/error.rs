//! What can go wrong talking to CoinGlass. Every `Display` is safe to log and
//! to show users: it never contains the API key (the key only ever travels in
//! the `CG-API-KEY` header, and server texts are scrubbed before they land here).

use std::time::Duration;

use super::models::Feature;

/// A failed CoinGlass call.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MarketError {
    /// No API key is configured: market data is off, no request was made.
    #[error("no CoinGlass API key configured (credential coinglass-api-key or $CRYPTOSAT_COINGLASS_API_KEY)")]
    NoApiKey,
    /// CoinGlass rejected the API key (HTTP 401 with a key message).
    #[error("CoinGlass rejected the API key; check the coinglass-api-key credential")]
    InvalidKey,
    /// The API plan does not include this feature; no request is made until
    /// the periodic re-check.
    #[error("{feature} not available on this CoinGlass API plan: {message}")]
    PlanRestricted {
        /// The disabled feature.
        feature: Feature,
        /// CoinGlass' `msg`, e.g. `Upgrade plan`.
        message: String,
    },
    /// Out of request budget: a 429, or the local limiter would have had to
    /// wait longer than allowed.
    #[error("CoinGlass rate limit reached{}", retry_hint(.retry_after))]
    RateLimited {
        /// When a retry may succeed, if known.
        retry_after: Option<Duration>,
    },
    /// 5xx, timeout or network failure, after the retries.
    #[error("CoinGlass unavailable: {0}")]
    Upstream(String),
    /// CoinGlass answered with an error `code` (or an unexpected HTTP status).
    #[error("CoinGlass error {code}: {message}")]
    Api {
        /// The envelope `code` (or the HTTP status).
        code: String,
        /// The envelope `msg`.
        message: String,
    },
    /// The answer did not have the expected shape.
    #[error("malformed answer from CoinGlass: {0}")]
    Malformed(String),
    /// Not a coin symbol we can ask about.
    #[error("unknown symbol {0:?}")]
    UnknownSymbol(String),
    /// The client could not be built from the configuration.
    #[error("CoinGlass client configuration: {0}")]
    Config(String),
}

fn retry_hint(retry_after: &Option<Duration>) -> String {
    match retry_after {
        Some(d) => format!("; retry in {} s", d.as_secs_f64().ceil() as u64),
        None => String::new(),
    }
}

impl MarketError {
    /// Whether trying again later may help (as opposed to a configuration or
    /// plan problem that needs a person).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            MarketError::RateLimited { .. } | MarketError::Upstream(_) | MarketError::Malformed(_)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays() {
        let e = MarketError::RateLimited {
            retry_after: Some(Duration::from_millis(4500)),
        };
        assert_eq!(e.to_string(), "CoinGlass rate limit reached; retry in 5 s");
        let e = MarketError::PlanRestricted {
            feature: Feature::Whales,
            message: "Upgrade plan".into(),
        };
        assert_eq!(
            e.to_string(),
            "whale alerts not available on this CoinGlass API plan: Upgrade plan"
        );
        assert!(!e.is_transient());
        assert!(MarketError::Upstream("x".into()).is_transient());
    }
}
