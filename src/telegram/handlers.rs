//! The commands and buttons. Each returns the reply; sending, access control,
//! rate limiting and timeouts are the dispatcher's job.

use std::fmt::Write as _;

use teloxide::types::{InlineKeyboardButton, InlineKeyboardMarkup};

use super::callback::Action;
use super::commands::{self, escape_html};
use super::dispatch::Context;
use super::format;
use super::sender::Reply;
use crate::alerts::AlertKind;
use crate::market::{normalize_symbol, MarketError};
use crate::service::health::Upstream;
use crate::timefmt;

/// Symbols offered by the subscribe keyboard (the old bot's majors and large caps).
const MENU_SYMBOLS: [&str; 9] = [
    "BTC", "ETH", "SOL", "BNB", "XRP", "ADA", "DOGE", "AVAX", "DOT",
];

/// Runs a command for `chat` on behalf of `user`.
pub async fn command(
    ctx: &Context,
    chat: i64,
    user: Option<i64>,
    first_name: Option<&str>,
    name: &str,
    args: &[&str],
) -> Reply {
    match name {
        "start" => Reply::with_keyboard(commands::start_text(first_name), main_keyboard()),
        "help" => Reply::text(commands::help_text()),
        "liq" => match args.first() {
            Some(raw) => liquidations(ctx, raw).await,
            None => Reply::text("Which coin? For example: /liq BTC"),
        },
        "funding" => match args.first() {
            Some(raw) => funding(ctx, raw).await,
            None => Reply::text("Which coin? For example: /funding ETH"),
        },
        "whale" => whales(ctx, args.first().copied()).await,
        "subscribe" => subscribe(ctx, chat, args).await,
        "unsubscribe" => unsubscribe(ctx, chat, args),
        "alerts" => alerts(ctx, chat),
        "status" => status(ctx, user),
        other => Reply::text(commands::unknown_text(other)),
    }
}

/// What to do after a button press.
pub struct ButtonOutcome {
    pub reply: Reply,
    /// Replace the message with the buttons (flows) rather than send a new one.
    pub edit: bool,
    /// A short toast shown by the client.
    pub toast: Option<String>,
}

/// Handles a pressed button in `chat`.
pub async fn button(ctx: &Context, chat: i64, action: Action) -> ButtonOutcome {
    let new = |reply| ButtonOutcome {
        reply,
        edit: false,
        toast: None,
    };
    match action {
        Action::SubscribeMenu => new(symbol_menu()),
        Action::PickSymbol(symbol) => ButtonOutcome {
            reply: kind_menu(&symbol),
            edit: true,
            toast: None,
        },
        Action::Subscribe(symbol, kind) => {
            let kinds = kind.map_or(AlertKind::ALL.to_vec(), |k| vec![k]);
            let reply = match validate_symbol(ctx, &symbol).await {
                Ok(symbol) => do_subscribe(ctx, chat, &symbol, &kinds),
                Err(r) => r,
            };
            ButtonOutcome {
                reply,
                edit: true,
                toast: Some("Saved".into()),
            }
        }
        Action::Unsubscribe(symbol, kind) => ButtonOutcome {
            reply: do_unsubscribe(ctx, chat, Some(&symbol), kind),
            edit: true,
            toast: Some("Removed".into()),
        },
        Action::Liquidations(s) => new(liquidations(ctx, &s).await),
        Action::Funding(s) => new(funding(ctx, &s).await),
        Action::Whales => new(whales(ctx, None).await),
        Action::Alerts => new(alerts(ctx, chat)),
    }
}

fn main_keyboard() -> InlineKeyboardMarkup {
    let b = |label: &str, a: Action| InlineKeyboardButton::callback(label, a.encode());
    InlineKeyboardMarkup::new([
        vec![
            b("BTC liquidations", Action::Liquidations("BTC".into())),
            b("BTC funding", Action::Funding("BTC".into())),
        ],
        vec![b("Whales", Action::Whales), b("My alerts", Action::Alerts)],
        vec![b("Subscribe to alerts", Action::SubscribeMenu)],
    ])
}

fn symbol_menu() -> Reply {
    let rows: Vec<Vec<InlineKeyboardButton>> = MENU_SYMBOLS
        .chunks(3)
        .map(|row| {
            row.iter()
                .map(|s| {
                    InlineKeyboardButton::callback(*s, Action::PickSymbol((*s).into()).encode())
                })
                .collect()
        })
        .collect();
    Reply::with_keyboard(
        "Alerts for which coin? (Any other: /subscribe SYMBOL)",
        InlineKeyboardMarkup::new(rows),
    )
}

fn kind_menu(symbol: &str) -> Reply {
    let b = |k: Option<AlertKind>| {
        let label = k.map_or("All", AlertKind::label);
        InlineKeyboardButton::callback(label, Action::Subscribe(symbol.to_owned(), k).encode())
    };
    Reply::with_keyboard(
        format!("Which <b>{}</b> alerts?", escape_html(symbol)),
        InlineKeyboardMarkup::new([
            vec![b(Some(AlertKind::Liquidations)), b(Some(AlertKind::Whales))],
            vec![b(Some(AlertKind::Funding)), b(None)],
        ]),
    )
}

/// Normalises and validates a user-typed symbol against CoinGlass' list.
async fn validate_symbol(ctx: &Context, raw: &str) -> Result<String, Reply> {
    let not_a_symbol = || {
        Reply::text(format!(
            "“{}” is not a coin symbol. Use the coin's ticker, for example BTC or ETH.",
            escape_html(&raw.chars().take(32).collect::<String>())
        ))
    };
    let Some(market) = &ctx.market else {
        return normalize_symbol(raw).ok_or_else(not_a_symbol);
    };
    // Checked against CoinGlass' list when it can be had; a well-formed
    // symbol is accepted when it cannot (the list only guards against typos).
    market.resolve_symbol(raw).await.map_err(|e| match e {
        MarketError::UnknownSymbol(s) if normalize_symbol(raw).is_some() => Reply::text(format!(
            "I don't know {}: CoinGlass lists no futures for it. Check the ticker (e.g. BTC, ETH, SOL).",
            escape_html(&s)
        )),
        _ => not_a_symbol(),
    })
}

fn no_market() -> Reply {
    Reply::text(
        "Market data is not configured on this bot (no CoinGlass API key). Ask its operator.",
    )
}

fn market_error(what: &str, e: &MarketError) -> Reply {
    let text = match e {
        MarketError::PlanRestricted { .. } => format!(
            "{what} is not available: this bot's CoinGlass plan does not include it."
        ),
        MarketError::RateLimited { .. } => format!(
            "Too many requests to the market data service right now; please try {what} again in a minute."
        ),
        MarketError::NoApiKey | MarketError::InvalidKey => {
            "Market data is not available: the bot's CoinGlass API key is missing or invalid. Ask its operator.".to_owned()
        }
        _ => format!("The market data service did not answer properly; please try {what} again in a minute."),
    };
    tracing::warn!(what, "market data request failed: {e}");
    Reply::text(text)
}

async fn liquidations(ctx: &Context, raw: &str) -> Reply {
    let symbol = match validate_symbol(ctx, raw).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let Some(market) = &ctx.market else {
        return no_market();
    };
    match market.exchange_liquidations(&symbol, "24h").await {
        Ok(s) => Reply::text(format::liquidations(&s)),
        Err(e) => market_error("/liq", &e),
    }
}

async fn funding(ctx: &Context, raw: &str) -> Reply {
    let symbol = match validate_symbol(ctx, raw).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let Some(market) = &ctx.market else {
        return no_market();
    };
    match market.funding_rates(&symbol).await {
        Ok(f) => Reply::text(format::funding(&f)),
        Err(e) => market_error("/funding", &e),
    }
}

async fn whales(ctx: &Context, raw: Option<&str>) -> Reply {
    let symbol = match raw {
        Some(raw) => match validate_symbol(ctx, raw).await {
            Ok(s) => Some(s),
            Err(r) => return r,
        },
        None => None,
    };
    let Some(market) = &ctx.market else {
        return no_market();
    };
    match market.whale_alerts().await {
        Ok(w) => Reply::text(format::whales(symbol.as_deref(), &w)),
        Err(e) => market_error("/whale", &e),
    }
}

async fn subscribe(ctx: &Context, chat: i64, args: &[&str]) -> Reply {
    let Some(raw) = args.first() else {
        return symbol_menu();
    };
    let symbol = match validate_symbol(ctx, raw).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let kinds = match args.get(1) {
        None => return kind_menu(&symbol),
        Some(k) if k.eq_ignore_ascii_case("all") => AlertKind::ALL.to_vec(),
        Some(k) => match k.parse::<AlertKind>() {
            Ok(k) => vec![k],
            Err(()) => {
                return Reply::text(format!(
                    "“{}” is not an alert kind. Use liquidations, whales, funding or all, e.g. /subscribe {} whales",
                    escape_html(&k.chars().take(32).collect::<String>()),
                    escape_html(&symbol)
                ))
            }
        },
    };
    do_subscribe(ctx, chat, &symbol, &kinds)
}

fn do_subscribe(ctx: &Context, chat: i64, symbol: &str, kinds: &[AlertKind]) -> Reply {
    match ctx.store.subscribe(chat, symbol, kinds) {
        Ok(added) => {
            let names: Vec<&str> = kinds.iter().map(|k| k.label()).collect();
            let verb = if added.is_empty() {
                "already had"
            } else {
                "subscribed to"
            };
            tracing::info!(chat_id = chat, symbol, kinds = ?kinds, "subscribed");
            Reply::text(format!(
                "✅ This chat {verb} <b>{}</b> alerts: {}.\nSee /alerts; stop with /unsubscribe {} or /unsubscribe all.",
                escape_html(symbol),
                names.join(", "),
                escape_html(symbol)
            ))
        }
        Err(e) => storage_error(chat, &e),
    }
}

fn storage_error(chat: i64, e: &crate::store::StoreError) -> Reply {
    tracing::error!(chat_id = chat, "storage error: {e}");
    Reply::text("Sorry, I could not save that right now. Please try again later.")
}

fn unsubscribe(ctx: &Context, chat: i64, args: &[&str]) -> Reply {
    let Some(raw) = args.first() else {
        return Reply::text(
            "Unsubscribe from what? /unsubscribe BTC, /unsubscribe BTC whales, or /unsubscribe all",
        );
    };
    if raw.eq_ignore_ascii_case("all") {
        return do_unsubscribe(ctx, chat, None, None);
    }
    let Some(symbol) = normalize_symbol(raw) else {
        return Reply::text(format!(
            "“{}” is not a coin symbol. See your subscriptions with /alerts.",
            escape_html(&raw.chars().take(32).collect::<String>())
        ));
    };
    let kind = match args.get(1) {
        None => None,
        Some(k) if k.eq_ignore_ascii_case("all") => None,
        Some(k) => match k.parse::<AlertKind>() {
            Ok(k) => Some(k),
            Err(()) => {
                return Reply::text(
                    "Use liquidations, whales, funding or all, e.g. /unsubscribe BTC whales",
                )
            }
        },
    };
    do_unsubscribe(ctx, chat, Some(&symbol), kind)
}

fn do_unsubscribe(
    ctx: &Context,
    chat: i64,
    symbol: Option<&str>,
    kind: Option<AlertKind>,
) -> Reply {
    match ctx.store.unsubscribe(chat, symbol, kind) {
        Ok(0) => Reply::text("There was no such subscription. See /alerts."),
        Ok(n) => {
            tracing::info!(chat_id = chat, symbol, removed = n, "unsubscribed");
            let what = match (symbol, kind) {
                (None, _) => "all alerts".to_owned(),
                (Some(s), None) => format!("all {} alerts", escape_html(s)),
                (Some(s), Some(k)) => format!("{} {} alerts", escape_html(s), k.label()),
            };
            Reply::text(format!(
                "🔕 Unsubscribed from {what} ({n} removed). See /alerts."
            ))
        }
        Err(e) => storage_error(chat, &e),
    }
}

fn alerts(ctx: &Context, chat: i64) -> Reply {
    let subs = match ctx.store.subscriptions(chat) {
        Ok(s) => s,
        Err(e) => return storage_error(chat, &e),
    };
    if subs.is_empty() {
        return Reply::with_keyboard(
            "This chat has no alert subscriptions.",
            InlineKeyboardMarkup::new([vec![InlineKeyboardButton::callback(
                "Subscribe",
                Action::SubscribeMenu.encode(),
            )]]),
        );
    }
    let mut text = String::from("<b>Alert subscriptions of this chat</b>");
    let mut buttons = Vec::new();
    let mut symbols: Vec<&str> = subs.iter().map(|s| s.symbol.as_str()).collect();
    symbols.dedup();
    for symbol in symbols {
        let kinds: Vec<&str> = subs
            .iter()
            .filter(|s| s.symbol == symbol)
            .map(|s| s.kind.label())
            .collect();
        let _ = write!(text, "\n{}: {}", escape_html(symbol), kinds.join(", "));
        buttons.push(vec![InlineKeyboardButton::callback(
            format!("Unsubscribe {symbol}"),
            Action::Unsubscribe(symbol.to_owned(), None).encode(),
        )]);
    }
    Reply::with_keyboard(text, InlineKeyboardMarkup::new(buttons))
}

fn status(ctx: &Context, user: Option<i64>) -> Reply {
    let up = ctx.started.elapsed().as_secs();
    let mut t = format!(
        "<b>CryptoSat status</b>\nVersion {}, up {}",
        env!("CARGO_PKG_VERSION"),
        duration_text(up)
    );
    let telegram = match ctx.health.telegram() {
        Upstream::Ok => "ok".to_owned(),
        Upstream::Unknown => "connecting".to_owned(),
        Upstream::Down { since, reason } => format!(
            "unreachable since {} ({})",
            timefmt::utc(since),
            escape_html(&reason)
        ),
    };
    let _ = write!(t, "\nTelegram: {telegram}");
    if let Some(c) = ctx.health.conflict() {
        let _ = write!(
            t,
            "\n⚠️ CONFLICT since {}: another bot instance uses this token",
            timefmt::utc(c.since)
        );
    }
    let _ = write!(
        t,
        "\nTelegram conflicts since start: {}",
        ctx.health.conflicts_total()
    );
    match &ctx.market {
        None => t.push_str("\nCoinGlass: not configured (no API key)"),
        Some(m) => {
            let _ = write!(t, "\nCoinGlass: {}", escape_html(&m.health().summary()));
        }
    }
    let monitors = ctx.monitors.snapshot();
    if monitors.is_empty() {
        t.push_str("\nMonitors: not running (no CoinGlass API key)");
    }
    for (name, m) in monitors {
        let state = match (&m.disabled, &m.last_error) {
            (Some(reason), _) => format!("disabled: {}", escape_html(reason)),
            (None, Some(err)) => format!("failing: {}", escape_html(err)),
            (None, None) => "ok".to_owned(),
        };
        let last = m.last_success.map_or("never".to_owned(), timefmt::utc);
        let next = m.next_poll.map_or("now".to_owned(), timefmt::utc);
        let _ = write!(
            t,
            "\nMonitor {name}: {state}; last good poll {last}; next {next}"
        );
    }
    let outbox = ctx.store.outbox_stats();
    if let Ok(o) = &outbox {
        let _ = write!(t, "\nAlerts sent in the last 24 h: {}", o.sent_24h);
    }
    if user.is_some_and(|u| ctx.access.is_admin(u)) {
        match ctx.store.subscriber_counts() {
            Ok(c) => {
                let _ = write!(
                    t,
                    "\n\n<b>Admin</b>\nSubscribed chats: {} ({} subscriptions), inactive chats: {}",
                    c.chats, c.subscriptions, c.inactive_chats
                );
            }
            Err(e) => tracing::error!("subscriber counts: {e}"),
        }
        if let Ok(o) = &outbox {
            let _ = write!(
                t,
                "\nAlert queue: {} pending, {} failed",
                o.pending, o.failed
            );
        }
        if let Ok(n) = ctx.store.inbox_len() {
            let _ = write!(t, "\nUpdate queue: {n}");
        }
    }
    Reply::text(t)
}

fn duration_text(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s} s"),
        s if s < 3600 => format!("{} min", s / 60),
        s if s < 86_400 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        s => format!("{} d {} h", s / 86_400, s % 86_400 / 3600),
    }
}
