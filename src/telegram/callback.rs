//! Inline-keyboard callback data: a compact, strictly parsed format.
//!
//! Callback data comes from the client and can be forged: it is parsed into a
//! closed set of actions, symbols are re-validated, and an action only ever
//! applies to the chat the button was pressed in.

use crate::alerts::AlertKind;

/// Telegram's limit on callback data.
pub const MAX_LEN: usize = 64;

/// What a button asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Subscribe flow, step 1 done: symbol chosen, show the kinds.
    PickSymbol(String),
    /// Subscribe flow, step 2: subscribe to these kinds (`None` = all).
    Subscribe(String, Option<AlertKind>),
    /// Remove a subscription (`None` = all kinds of the symbol).
    Unsubscribe(String, Option<AlertKind>),
    /// Shortcuts of the main keyboard.
    Liquidations(String),
    Funding(String),
    Whales,
    Alerts,
    SubscribeMenu,
}

/// A symbol in callback data: 1–15 upper-case letters or digits.
fn symbol(s: &str) -> Option<String> {
    (!s.is_empty()
        && s.len() <= 15
        && s.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()))
    .then(|| s.to_owned())
}

fn kind(s: &str) -> Option<Option<AlertKind>> {
    match s {
        "all" => Some(None),
        k => AlertKind::ALL
            .into_iter()
            .find(|x| x.as_str() == k)
            .map(Some),
    }
}

impl Action {
    /// Parses callback data; `None` for anything not produced by [`Action::encode`].
    pub fn parse(data: &str) -> Option<Self> {
        if data.len() > MAX_LEN {
            return None;
        }
        let parts: Vec<&str> = data.split(':').collect();
        Some(match parts.as_slice() {
            ["sub", "s", s] => Action::PickSymbol(symbol(s)?),
            ["sub", "k", s, k] => Action::Subscribe(symbol(s)?, kind(k)?),
            ["unsub", s, k] => Action::Unsubscribe(symbol(s)?, kind(k)?),
            ["cmd", "liq", s] => Action::Liquidations(symbol(s)?),
            ["cmd", "funding", s] => Action::Funding(symbol(s)?),
            ["cmd", "whale"] => Action::Whales,
            ["cmd", "alerts"] => Action::Alerts,
            ["cmd", "sub"] => Action::SubscribeMenu,
            _ => return None,
        })
    }

    /// The callback data for this action.
    pub fn encode(&self) -> String {
        let k = |k: &Option<AlertKind>| k.map_or("all", AlertKind::as_str);
        match self {
            Action::PickSymbol(s) => format!("sub:s:{s}"),
            Action::Subscribe(s, kd) => format!("sub:k:{s}:{}", k(kd)),
            Action::Unsubscribe(s, kd) => format!("unsub:{s}:{}", k(kd)),
            Action::Liquidations(s) => format!("cmd:liq:{s}"),
            Action::Funding(s) => format!("cmd:funding:{s}"),
            Action::Whales => "cmd:whale".into(),
            Action::Alerts => "cmd:alerts".into(),
            Action::SubscribeMenu => "cmd:sub".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for a in [
            Action::PickSymbol("BTC".into()),
            Action::Subscribe("ETH".into(), None),
            Action::Subscribe("ETH".into(), Some(AlertKind::Whales)),
            Action::Unsubscribe("SOL".into(), Some(AlertKind::Funding)),
            Action::Liquidations("BTC".into()),
            Action::Funding("BTC".into()),
            Action::Whales,
            Action::Alerts,
            Action::SubscribeMenu,
        ] {
            assert_eq!(Action::parse(&a.encode()), Some(a.clone()), "{a:?}");
        }
    }

    #[test]
    fn forged_data_is_rejected() {
        for bad in [
            "",
            "sub:k:btc:all",
            "sub:k:BTC:everything",
            "unsub:BTC",
            "unsub:BTC:all:-100123",
            "sub:s:<b>",
            "sub:s:AAAAAAAAAAAAAAAAAAAAAAAA",
            "cmd:liq:",
            "drop table",
        ] {
            assert_eq!(Action::parse(bad), None, "{bad}");
        }
        assert_eq!(Action::parse(&"x".repeat(65)), None);
    }
}
