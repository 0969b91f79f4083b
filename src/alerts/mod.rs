//! Alerts: what a chat can subscribe to, and how queued alerts are delivered
//! ([`delivery`]). The monitors decide what alerts; the outbox in the store
//! keeps them durable.

pub mod delivery;

use std::fmt;
use std::str::FromStr;

/// A kind of market alert a chat can subscribe to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AlertKind {
    /// Large single liquidation orders.
    Liquidations,
    /// New large Hyperliquid whale positions.
    Whales,
    /// Funding rates entering an extreme zone.
    Funding,
}

impl AlertKind {
    /// Every kind, in display order.
    pub const ALL: [AlertKind; 3] = [
        AlertKind::Liquidations,
        AlertKind::Whales,
        AlertKind::Funding,
    ];

    /// The stable name used in commands, callback data and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::Liquidations => "liquidations",
            AlertKind::Whales => "whales",
            AlertKind::Funding => "funding",
        }
    }

    /// A human label.
    pub fn label(self) -> &'static str {
        match self {
            AlertKind::Liquidations => "Liquidations",
            AlertKind::Whales => "Whales",
            AlertKind::Funding => "Funding rates",
        }
    }
}

impl fmt::Display for AlertKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AlertKind {
    type Err = ();

    /// Accepts the names and a few obvious synonyms (`liq`, `whale`, `fund`).
    fn from_str(s: &str) -> Result<Self, ()> {
        match s.to_ascii_lowercase().as_str() {
            "liquidations" | "liquidation" | "liq" | "liqs" => Ok(AlertKind::Liquidations),
            "whales" | "whale" => Ok(AlertKind::Whales),
            "funding" | "fund" | "funding-rates" | "fundingrates" => Ok(AlertKind::Funding),
            _ => Err(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip() {
        for k in AlertKind::ALL {
            assert_eq!(k.as_str().parse::<AlertKind>(), Ok(k));
        }
        assert_eq!("LIQ".parse::<AlertKind>(), Ok(AlertKind::Liquidations));
        assert!("all".parse::<AlertKind>().is_err());
    }
}
