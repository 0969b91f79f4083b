//! `cryptosat-fakes`: run the fake Telegram and CoinGlass servers plus a
//! control API for shell-driven system tests.
//!
//! ```text
//! cryptosat-fakes --telegram-port P --coinglass-port Q --token T --api-key K [--control-port C]
//! ```
//!
//! Prints `READY telegram=… coinglass=… control=…` once listening, then
//! serves until SIGTERM or SIGINT. Port 0 picks a free port.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use cryptosat_fakes::{
    ChatSpec, ExchangeLiquidation, FakeCoinGlass, FakeTelegram, Fault, FundingEntry,
    LiquidationOrder, RandomFaults, RateLimits, WhaleAlert,
};
use serde::Deserialize;
use serde_json::json;

const USAGE: &str = "usage: cryptosat-fakes --telegram-port P --coinglass-port Q --token T --api-key K [--control-port C]";

struct Args {
    telegram_port: u16,
    coinglass_port: u16,
    control_port: u16,
    token: String,
    api_key: String,
}

fn parse_args() -> Result<Args, String> {
    let mut map = HashMap::new();
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            return Err(USAGE.to_owned());
        }
        let (name, value) = match flag.split_once('=') {
            Some((n, v)) => (n.to_owned(), v.to_owned()),
            None => (
                flag.clone(),
                it.next().ok_or_else(|| format!("{flag} needs a value"))?,
            ),
        };
        map.insert(name, value);
    }
    let port = |name: &str, default: Option<u16>| -> Result<u16, String> {
        match map.get(name) {
            Some(v) => v.parse().map_err(|_| format!("{name}: bad port {v:?}")),
            None => default.ok_or_else(|| format!("{name} is required\n{USAGE}")),
        }
    };
    let text = |name: &str| -> Result<String, String> {
        map.get(name)
            .cloned()
            .ok_or_else(|| format!("{name} is required\n{USAGE}"))
    };
    let args = Args {
        telegram_port: port("--telegram-port", None)?,
        coinglass_port: port("--coinglass-port", None)?,
        control_port: port("--control-port", Some(0))?,
        token: text("--token")?,
        api_key: text("--api-key")?,
    };
    let known = [
        "--telegram-port",
        "--coinglass-port",
        "--control-port",
        "--token",
        "--api-key",
    ];
    if let Some(unknown) = map.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(format!("unknown option {unknown}\n{USAGE}"));
    }
    Ok(args)
}

struct Fakes {
    telegram: FakeTelegram,
    coinglass: FakeCoinGlass,
}

type Ctl = State<Arc<Fakes>>;

fn bad_request(msg: impl Into<String>) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({"error": msg.into()}))).into_response()
}

fn done() -> Response {
    Json(json!({"ok": true})).into_response()
}

#[derive(Deserialize)]
struct MessageReq {
    chat_id: i64,
    user_id: Option<i64>,
    text: String,
    /// `private`, `group`, `supergroup` or `channel`; guessed from the id if absent.
    chat_type: Option<String>,
    title: Option<String>,
}

fn chat_spec(
    chat_id: i64,
    chat_type: Option<&str>,
    title: Option<String>,
) -> Result<ChatSpec, String> {
    let title = title.unwrap_or_else(|| format!("Chat {chat_id}"));
    let kind = chat_type.unwrap_or(if chat_id > 0 {
        "private"
    } else if chat_id <= -1_000_000_000_000 {
        "supergroup"
    } else {
        "group"
    });
    Ok(match kind {
        "private" => ChatSpec::Private(chat_id),
        "group" => ChatSpec::Group(chat_id, title),
        "supergroup" => ChatSpec::Supergroup(chat_id, title),
        "channel" => ChatSpec::Channel(chat_id, title),
        other => return Err(format!("unknown chat_type {other:?}")),
    })
}

async fn tg_message(State(f): Ctl, Json(r): Json<MessageReq>) -> Response {
    let chat = match chat_spec(r.chat_id, r.chat_type.as_deref(), r.title) {
        Ok(c) => c,
        Err(e) => return bad_request(e),
    };
    let user = r.user_id.unwrap_or(r.chat_id);
    let id = f.telegram.push_message(chat, user, &r.text);
    Json(json!({ "update_id": id })).into_response()
}

#[derive(Deserialize)]
struct ChatReq {
    chat_id: i64,
    chat_type: Option<String>,
    title: Option<String>,
}

async fn tg_chat(State(f): Ctl, Json(r): Json<ChatReq>) -> Response {
    match chat_spec(r.chat_id, r.chat_type.as_deref(), r.title) {
        Ok(c) => {
            f.telegram.register_chat(c);
            done()
        }
        Err(e) => bad_request(e),
    }
}

#[derive(Deserialize)]
struct ButtonReq {
    chat_id: i64,
    user_id: i64,
    message_id: i64,
    data: String,
}

async fn tg_button(State(f): Ctl, Json(r): Json<ButtonReq>) -> Response {
    let id = f
        .telegram
        .press_button(r.chat_id, r.user_id, r.message_id, &r.data);
    Json(json!({ "update_id": id })).into_response()
}

#[derive(Deserialize)]
struct SentQuery {
    chat_id: Option<i64>,
    contains: Option<String>,
    timeout_ms: Option<u64>,
}

impl SentQuery {
    fn matches(&self, m: &cryptosat_fakes::SentMessage) -> bool {
        self.chat_id.is_none_or(|c| m.chat_id == c)
            && self
                .contains
                .as_ref()
                .is_none_or(|t| m.text.contains(t.as_str()))
    }
}

async fn tg_sent(State(f): Ctl, Query(q): Query<SentQuery>) -> Response {
    let list: Vec<_> = f
        .telegram
        .sent_messages()
        .into_iter()
        .filter(|m| q.matches(m))
        .collect();
    Json(list).into_response()
}

async fn tg_edits(State(f): Ctl, Query(q): Query<SentQuery>) -> Response {
    let list: Vec<_> = f
        .telegram
        .edits()
        .into_iter()
        .filter(|m| q.matches(m))
        .collect();
    Json(list).into_response()
}

async fn tg_wait_sent(State(f): Ctl, Query(q): Query<SentQuery>) -> Response {
    let timeout = Duration::from_millis(q.timeout_ms.unwrap_or(5_000).min(600_000));
    match f.telegram.wait_for_sent(|m| q.matches(m), timeout).await {
        Some(m) => Json(m).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({"error": "no matching message before timeout"})),
        )
            .into_response(),
    }
}

#[derive(Deserialize)]
struct WebhookReq {
    url: Option<String>,
}

async fn tg_webhook(State(f): Ctl, Json(r): Json<WebhookReq>) -> Response {
    let url = r.url.filter(|u| !u.is_empty());
    f.telegram.set_webhook(url.as_deref());
    done()
}

async fn tg_stats(State(f): Ctl) -> Response {
    let t = &f.telegram;
    Json(json!({
        "requests": t.request_counts(),
        "conflicts_sent": t.conflicts_sent(),
        "too_many_requests_sent": t.too_many_requests_sent(),
        "current_offset": t.current_offset(),
        "pending_updates": t.pending_updates(),
        "sent": t.sent_messages().len(),
        "edits": t.edits().len(),
        "webhook": t.webhook(),
        "commands": t.commands(),
        "callback_answers": t.callback_answers(),
    }))
    .into_response()
}

#[derive(Deserialize)]
struct FaultReq {
    /// Method (Telegram) or path (CoinGlass); absent = all.
    target: Option<String>,
    times: Option<u32>,
    fault: Option<Fault>,
    /// Seeded random faults instead (`null` disables).
    random: Option<RandomFaults>,
    /// Drop all queued and random faults first.
    #[serde(default)]
    clear: bool,
}

async fn tg_fault(State(f): Ctl, Json(r): Json<FaultReq>) -> Response {
    if r.clear {
        f.telegram.clear_faults();
    }
    if let Some(fault) = r.fault {
        f.telegram
            .inject(r.target.as_deref(), fault, r.times.unwrap_or(1));
    }
    if let Some(random) = r.random {
        f.telegram.set_random_faults(Some(random));
    }
    done()
}

#[derive(Deserialize)]
struct ChatIdReq {
    chat_id: i64,
    #[serde(default)]
    unblock: bool,
}

async fn tg_block(State(f): Ctl, Json(r): Json<ChatIdReq>) -> Response {
    if r.unblock {
        f.telegram.unblock_chat(r.chat_id);
    } else {
        f.telegram.block_chat(r.chat_id);
    }
    done()
}

#[derive(Deserialize)]
struct MigrateReq {
    from: i64,
    to: i64,
}

async fn tg_migrate(State(f): Ctl, Json(r): Json<MigrateReq>) -> Response {
    f.telegram.migrate_chat(r.from, r.to);
    done()
}

async fn tg_rate_limits(State(f): Ctl, Json(r): Json<RateLimits>) -> Response {
    f.telegram.set_rate_limits(r);
    done()
}

async fn cg_whale(State(f): Ctl, Json(r): Json<WhaleAlert>) -> Response {
    f.coinglass.push_whale(r);
    done()
}

async fn cg_liquidation(State(f): Ctl, Json(r): Json<LiquidationOrder>) -> Response {
    f.coinglass.push_liquidation_order(r);
    done()
}

#[derive(Deserialize)]
struct FundingReq {
    symbol: String,
    rows: Vec<FundingEntry>,
}

async fn cg_funding(State(f): Ctl, Json(r): Json<FundingReq>) -> Response {
    f.coinglass.set_funding(&r.symbol, r.rows);
    done()
}

#[derive(Deserialize)]
struct ExchangeReq {
    symbol: String,
    rows: Vec<ExchangeLiquidation>,
}

async fn cg_exchange(State(f): Ctl, Json(r): Json<ExchangeReq>) -> Response {
    f.coinglass.set_exchange_liquidations(&r.symbol, r.rows);
    done()
}

async fn cg_coins(State(f): Ctl, Json(r): Json<Vec<String>>) -> Response {
    f.coinglass.set_supported_coins(r);
    done()
}

#[derive(Deserialize)]
struct RestrictReq {
    path: String,
    status: Option<u16>,
    msg: Option<String>,
    #[serde(default)]
    lift: bool,
}

async fn cg_restrict(State(f): Ctl, Json(r): Json<RestrictReq>) -> Response {
    if r.lift {
        f.coinglass.unrestrict_endpoint(&r.path);
    } else {
        f.coinglass.restrict_endpoint_with(
            &r.path,
            r.status.unwrap_or(401),
            r.msg
                .as_deref()
                .unwrap_or(cryptosat_fakes::coinglass::MSG_UPGRADE_PLAN),
        );
    }
    done()
}

#[derive(Deserialize)]
struct RateLimitReq {
    per_minute: u32,
}

async fn cg_rate_limit(State(f): Ctl, Json(r): Json<RateLimitReq>) -> Response {
    f.coinglass.set_rate_limit(r.per_minute);
    done()
}

async fn cg_fault(State(f): Ctl, Json(r): Json<FaultReq>) -> Response {
    if r.clear {
        f.coinglass.clear_faults();
    }
    if let Some(fault) = r.fault {
        f.coinglass
            .inject(r.target.as_deref(), fault, r.times.unwrap_or(1));
    }
    if let Some(random) = r.random {
        f.coinglass.set_random_faults(Some(random));
    }
    done()
}

async fn cg_stats(State(f): Ctl) -> Response {
    Json(json!({
        "requests": f.coinglass.request_counts(),
        "too_many_requests_sent": f.coinglass.too_many_requests_sent(),
    }))
    .into_response()
}

fn control_router(fakes: Arc<Fakes>) -> Router {
    Router::new()
        .route("/telegram/message", post(tg_message))
        .route("/telegram/chat", post(tg_chat))
        .route("/telegram/button", post(tg_button))
        .route("/telegram/sent", get(tg_sent))
        .route("/telegram/edits", get(tg_edits))
        .route("/telegram/wait_sent", get(tg_wait_sent))
        .route("/telegram/webhook", post(tg_webhook))
        .route("/telegram/stats", get(tg_stats))
        .route("/telegram/fault", post(tg_fault))
        .route("/telegram/block", post(tg_block))
        .route("/telegram/migrate", post(tg_migrate))
        .route("/telegram/rate_limits", post(tg_rate_limits))
        .route("/coinglass/whale", post(cg_whale))
        .route("/coinglass/liquidation", post(cg_liquidation))
        .route("/coinglass/funding", post(cg_funding))
        .route("/coinglass/exchange_liquidations", post(cg_exchange))
        .route("/coinglass/supported_coins", post(cg_coins))
        .route("/coinglass/restrict", post(cg_restrict))
        .route("/coinglass/rate_limit", post(cg_rate_limit))
        .route("/coinglass/fault", post(cg_fault))
        .route("/coinglass/stats", get(cg_stats))
        .route("/health", get(|| async { "ok" }))
        .with_state(fakes)
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("install SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let local = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
    let telegram = match FakeTelegram::start_on(local(args.telegram_port), &args.token).await {
        Ok(t) => t,
        Err(e) => {
            eprintln!("telegram port {}: {e}", args.telegram_port);
            return ExitCode::FAILURE;
        }
    };
    let coinglass = match FakeCoinGlass::start_on(local(args.coinglass_port), &args.api_key).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("coinglass port {}: {e}", args.coinglass_port);
            return ExitCode::FAILURE;
        }
    };
    let fakes = Arc::new(Fakes {
        telegram,
        coinglass,
    });
    let listener = match tokio::net::TcpListener::bind(local(args.control_port)).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("control port {}: {e}", args.control_port);
            return ExitCode::FAILURE;
        }
    };
    let control = listener.local_addr().expect("local addr");
    println!(
        "READY telegram={} coinglass={} control=http://{control}",
        fakes.telegram.base_url(),
        fakes.coinglass.base_url()
    );
    {
        use std::io::Write;
        let _ = std::io::stdout().flush();
    }
    let router = control_router(fakes.clone());
    let server = tokio::spawn(async move { axum::serve(listener, router).await });
    tokio::select! {
        () = shutdown_signal() => {}
        res = server => {
            eprintln!("control server ended: {res:?}");
            return ExitCode::FAILURE;
        }
    }
    // Waiting control calls (wait_sent) are not waited for.
    fakes.telegram.stop().await;
    fakes.coinglass.stop().await;
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_type_is_guessed_from_id() {
        assert_eq!(chat_spec(5, None, None), Ok(ChatSpec::Private(5)));
        assert!(matches!(
            chat_spec(-5, None, None),
            Ok(ChatSpec::Group(-5, _))
        ));
        assert!(matches!(
            chat_spec(-1_001_234_567_890, None, None),
            Ok(ChatSpec::Supergroup(..))
        ));
        assert!(chat_spec(1, Some("bogus"), None).is_err());
    }
}
