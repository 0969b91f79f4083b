//! A fake Telegram Bot API server.
//!
//! URLs are `{base_url}/bot{TOKEN}/{method}`; method names are
//! case-insensitive; parameters come from the query string and a JSON (or
//! form-encoded) body. Answers use the Bot API's JSON shapes.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use serde::Serialize;
use serde_json::{json, Map, Value};
use tokio::sync::Notify;

use crate::faults::{self, Fault, FaultPlan, RandomFaults};
use crate::server::ServerHandle;

/// Id of the fake bot's own user.
pub const BOT_USER_ID: i64 = 7_000_000_001;
/// Username of the fake bot.
pub const BOT_USERNAME: &str = "cryptosat_test_bot";
/// First update id handed out.
const FIRST_UPDATE_ID: i64 = 10_000;
/// Updates kept at most (oldest unconfirmed ones are dropped beyond that).
const MAX_PENDING: usize = 10_000;

/// Text of the 409 sent to an older long poll knocked out by a newer one.
pub const CONFLICT_OTHER_GET_UPDATES: &str = "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running";
/// Text of the 409 for `getUpdates` while a webhook is set.
pub const CONFLICT_WEBHOOK_ACTIVE: &str = "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first";
/// Text of the 409 sent to a waiting long poll when a webhook gets set.
pub const CONFLICT_SET_WEBHOOK: &str = "Conflict: terminated by setWebhook request";

/// The chat an incoming update comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatSpec {
    /// A private chat with a user; the chat id equals the user id.
    Private(i64),
    /// A basic group (negative id).
    Group(i64, String),
    /// A supergroup (id like `-100…`).
    Supergroup(i64, String),
    /// A channel (id like `-100…`); pushed messages become `channel_post`s.
    Channel(i64, String),
}

impl ChatSpec {
    /// A private chat with `user_id`.
    pub fn private(user_id: i64) -> Self {
        Self::Private(user_id)
    }

    /// A basic group.
    pub fn group(id: i64, title: &str) -> Self {
        Self::Group(id, title.to_owned())
    }

    /// A supergroup.
    pub fn supergroup(id: i64, title: &str) -> Self {
        Self::Supergroup(id, title.to_owned())
    }

    /// A channel.
    pub fn channel(id: i64, title: &str) -> Self {
        Self::Channel(id, title.to_owned())
    }

    /// The chat id.
    pub fn id(&self) -> i64 {
        match self {
            Self::Private(id) | Self::Group(id, _) | Self::Supergroup(id, _) => *id,
            Self::Channel(id, _) => *id,
        }
    }

    /// The Bot API `Chat` object.
    pub fn to_json(&self) -> Value {
        match self {
            Self::Private(id) => json!({
                "id": id, "type": "private",
                "first_name": format!("User{id}"), "username": format!("user{id}"),
            }),
            Self::Group(id, title) => json!({"id": id, "type": "group", "title": title}),
            Self::Supergroup(id, title) => {
                json!({"id": id, "type": "supergroup", "title": title})
            }
            Self::Channel(id, title) => json!({"id": id, "type": "channel", "title": title}),
        }
    }
}

/// A Bot API `User` object for a (human) test user.
fn user_json(user_id: i64) -> Value {
    json!({
        "id": user_id, "is_bot": false,
        "first_name": format!("User{user_id}"), "username": format!("user{user_id}"),
        "language_code": "en",
    })
}

/// The bot's own `User` object (as in `from` of sent messages).
fn bot_user_json() -> Value {
    json!({"id": BOT_USER_ID, "is_bot": true, "first_name": "CryptoSat Test", "username": BOT_USERNAME})
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A message the bot sent (`sendMessage`) or edited (`editMessage*`).
#[derive(Debug, Clone, Serialize)]
pub struct SentMessage {
    /// Lower-case method that produced it: `sendmessage`, `editmessagetext`, `editmessagereplymarkup`.
    pub method: String,
    /// Target chat.
    pub chat_id: i64,
    /// Message id (fresh for `sendMessage`, the edited one for edits).
    pub message_id: i64,
    /// Text (for `editMessageReplyMarkup`, the unchanged current text).
    pub text: String,
    /// `parse_mode`, if given.
    pub parse_mode: Option<String>,
    /// `reply_markup` as sent (`Value::Null` when absent).
    pub reply_markup: Value,
    /// Unix seconds when received.
    pub date: i64,
    /// When the fake received it.
    #[serde(skip)]
    pub at: Instant,
}

/// Optional send rate limits, enforced with 429 + `retry_after` over sliding windows.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize, Serialize)]
#[serde(default)]
pub struct RateLimits {
    /// Messages per second over all chats (Telegram: about 30).
    pub global_per_sec: Option<u32>,
    /// Messages per second to one chat (Telegram: about 1).
    pub per_chat_per_sec: Option<u32>,
    /// Messages per minute to one group/supergroup/channel (Telegram: about 20).
    pub group_per_min: Option<u32>,
}

/// An error answer: `{"ok":false,"error_code":N,"description":…,"parameters":…}`.
#[derive(Debug)]
struct ApiError {
    code: u16,
    description: String,
    parameters: Option<Value>,
}

impl ApiError {
    fn new(code: u16, description: impl Into<String>) -> Self {
        Self {
            code,
            description: description.into(),
            parameters: None,
        }
    }

    fn bad_request(what: &str) -> Self {
        Self::new(400, format!("Bad Request: {what}"))
    }

    fn too_many(retry_after: u32) -> Self {
        Self {
            code: 429,
            description: format!("Too Many Requests: retry after {retry_after}"),
            parameters: Some(json!({ "retry_after": retry_after })),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body =
            json!({"ok": false, "error_code": self.code, "description": self.description});
        if let Some(p) = self.parameters {
            body["parameters"] = p;
        }
        let status = StatusCode::from_u16(self.code).unwrap_or(StatusCode::BAD_REQUEST);
        (status, axum::Json(body)).into_response()
    }
}

type ApiResult = Result<Value, ApiError>;

#[derive(Debug)]
struct Update {
    id: i64,
    body: Value,
}

#[derive(Debug, Default)]
struct TgState {
    updates: VecDeque<Update>,
    next_update_id: i64,
    offset: i64,
    poll_gen: u64,
    webhook_url: Option<String>,
    stopped: bool,
    chats: HashMap<i64, ChatSpec>,
    next_message_id: HashMap<i64, i64>,
    /// Messages by (chat, message_id) as `Message` JSON, for edits and button presses.
    messages: HashMap<(i64, i64), Value>,
    sent: Vec<SentMessage>,
    edits: Vec<SentMessage>,
    requests: HashMap<String, u64>,
    conflicts_sent: u64,
    too_many_sent: u64,
    commands: Value,
    callback_ids: HashSet<String>,
    callback_answers: Vec<Value>,
    next_callback_id: u64,
    blocked: HashSet<i64>,
    migrated: HashMap<i64, i64>,
    faults: FaultPlan,
    limits: RateLimits,
    global_window: VecDeque<Instant>,
    chat_windows: HashMap<i64, VecDeque<Instant>>,
    group_windows: HashMap<i64, VecDeque<Instant>>,
}

#[derive(Debug)]
struct Shared {
    token: String,
    state: Mutex<TgState>,
    /// Woken on new updates, new long polls, webhook changes and stop.
    updates_changed: Notify,
    /// Woken when a message is sent or edited.
    sent_changed: Notify,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, TgState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The fake Telegram Bot API server. Stops when dropped.
#[derive(Debug)]
pub struct FakeTelegram {
    shared: Arc<Shared>,
    server: ServerHandle,
}

impl FakeTelegram {
    /// Start on `127.0.0.1:0` for bot token `token`.
    ///
    /// # Panics
    /// If binding a loopback port fails.
    pub async fn start(token: &str) -> FakeTelegram {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), token)
            .await
            .expect("bind fake Telegram on 127.0.0.1")
    }

    /// Start on `addr` for bot token `token`.
    pub async fn start_on(addr: SocketAddr, token: &str) -> std::io::Result<FakeTelegram> {
        let state = TgState {
            next_update_id: FIRST_UPDATE_ID,
            commands: json!([]),
            ..TgState::default()
        };
        let shared = Arc::new(Shared {
            token: token.to_owned(),
            state: Mutex::new(state),
            updates_changed: Notify::new(),
            sent_changed: Notify::new(),
        });
        let router = Router::new()
            .route("/{bot}/{method}", any(handle))
            .fallback(|| async { ApiError::new(404, "Not Found") })
            .with_state(shared.clone());
        let server = ServerHandle::spawn(addr, router).await?;
        Ok(FakeTelegram { shared, server })
    }

    /// `http://127.0.0.1:PORT` (the bot appends `/bot{TOKEN}/{Method}`).
    pub fn base_url(&self) -> String {
        self.server.base_url()
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// The token this fake accepts.
    pub fn token(&self) -> &str {
        &self.shared.token
    }

    /// Stop serving: waiting long polls return empty, idle connections close.
    pub async fn stop(&self) {
        self.shared.lock().stopped = true;
        self.shared.updates_changed.notify_waiters();
        self.server.stop().await;
    }

    fn push_update(&self, st: &mut TgState, mut body: Value) -> i64 {
        let id = st.next_update_id;
        st.next_update_id += 1;
        body["update_id"] = json!(id);
        st.updates.push_back(Update { id, body });
        while st.updates.len() > MAX_PENDING {
            st.updates.pop_front();
        }
        id
    }

    /// Make a chat known without an update (e.g. an alert channel); `sendMessage`
    /// to chats never seen answers `Bad Request: chat not found`.
    pub fn register_chat(&self, chat: ChatSpec) {
        self.shared.lock().chats.insert(chat.id(), chat);
    }

    /// Queue a text message from `from_user_id` in `chat`; returns its update id.
    /// Text starting with `/` gets a `bot_command` entity. Channel chats produce a
    /// `channel_post` without `from`.
    pub fn push_message(&self, chat: ChatSpec, from_user_id: i64, text: &str) -> i64 {
        let id = {
            let mut st = self.shared.lock();
            let chat_id = chat.id();
            st.chats.insert(chat_id, chat.clone());
            let message_id = next_message_id(&mut st, chat_id);
            let mut msg = json!({
                "message_id": message_id,
                "date": unix_now(),
                "chat": chat.to_json(),
                "text": text,
            });
            if text.starts_with('/') {
                let len = text
                    .split_whitespace()
                    .next()
                    .map(|w| w.encode_utf16().count())
                    .unwrap_or(1);
                msg["entities"] = json!([{"offset": 0, "length": len, "type": "bot_command"}]);
            }
            let kind = if let ChatSpec::Channel(..) = chat {
                msg["sender_chat"] = chat.to_json();
                "channel_post"
            } else {
                msg["from"] = user_json(from_user_id);
                "message"
            };
            st.messages.insert((chat_id, message_id), msg.clone());
            self.push_update(&mut st, json!({ kind: msg }))
        };
        self.shared.updates_changed.notify_waiters();
        id
    }

    /// Queue a `callback_query` for a press of an inline button carrying `data`
    /// on message `message_id` in `chat_id`; returns its update id.
    pub fn press_button(&self, chat_id: i64, user_id: i64, message_id: i64, data: &str) -> i64 {
        let id = {
            let mut st = self.shared.lock();
            let chat = st
                .chats
                .entry(chat_id)
                .or_insert_with(|| ChatSpec::Private(chat_id))
                .to_json();
            let message = st
                .messages
                .get(&(chat_id, message_id))
                .cloned()
                .unwrap_or_else(|| {
                    json!({"message_id": message_id, "date": unix_now(), "chat": chat,
                           "from": bot_user_json(), "text": ""})
                });
            st.next_callback_id += 1;
            let cb_id = format!("{}", 4_000_000_000_000_000_000u64 + st.next_callback_id);
            st.callback_ids.insert(cb_id.clone());
            let cb = json!({
                "id": cb_id,
                "from": user_json(user_id),
                "message": message,
                "chat_instance": format!("{}", 1_000_000 + chat_id.unsigned_abs()),
                "data": data,
            });
            self.push_update(&mut st, json!({ "callback_query": cb }))
        };
        self.shared.updates_changed.notify_waiters();
        id
    }

    /// Every `sendMessage` accepted so far, in order.
    pub fn sent_messages(&self) -> Vec<SentMessage> {
        self.shared.lock().sent.clone()
    }

    /// Every accepted `editMessageText` / `editMessageReplyMarkup`, in order.
    pub fn edits(&self) -> Vec<SentMessage> {
        self.shared.lock().edits.clone()
    }

    /// Wait (event-driven) until some sent message — including ones sent before
    /// this call — matches `predicate`; `None` after `timeout`.
    pub async fn wait_for_sent<F>(&self, predicate: F, timeout: Duration) -> Option<SentMessage>
    where
        F: Fn(&SentMessage) -> bool,
    {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.shared.sent_changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(m) = self.shared.lock().sent.iter().find(|m| predicate(m)) {
                return Some(m.clone());
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return None;
            }
        }
    }

    /// Wait until at least `n` messages were sent; returns them all, or `None` on timeout.
    pub async fn wait_for_sent_count(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Option<Vec<SentMessage>> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.shared.sent_changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let st = self.shared.lock();
                if st.sent.len() >= n {
                    return Some(st.sent.clone());
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return None;
            }
        }
    }

    /// Number of requests for `method` (case-insensitive), faulted ones included.
    pub fn requests(&self, method: &str) -> u64 {
        let st = self.shared.lock();
        st.requests
            .get(&method.to_ascii_lowercase())
            .copied()
            .unwrap_or(0)
    }

    /// Request counts per lower-case method name.
    pub fn request_counts(&self) -> HashMap<String, u64> {
        self.shared.lock().requests.clone()
    }

    /// Set (`Some`) or delete (`None`) the webhook, as if by `setWebhook`/`deleteWebhook`.
    pub fn set_webhook(&self, url: Option<&str>) {
        self.shared.lock().webhook_url = url.map(str::to_owned);
        self.shared.updates_changed.notify_waiters();
    }

    /// The current webhook URL, if set.
    pub fn webhook(&self) -> Option<String> {
        self.shared.lock().webhook_url.clone()
    }

    /// The `commands` array of the last `setMyCommands` (`[]` before any).
    pub fn commands(&self) -> Value {
        self.shared.lock().commands.clone()
    }

    /// Parameters of every `answerCallbackQuery`, in order.
    pub fn callback_answers(&self) -> Vec<Value> {
        self.shared.lock().callback_answers.clone()
    }

    /// The highest `offset` the bot sent with `getUpdates` (0 before any):
    /// every update with a smaller id is confirmed and gone.
    pub fn current_offset(&self) -> i64 {
        self.shared.lock().offset
    }

    /// The highest confirmed update id (`current_offset() - 1`), if any.
    pub fn confirmed_update_id(&self) -> Option<i64> {
        let offset = self.current_offset();
        (offset > 0).then_some(offset - 1)
    }

    /// Updates not yet confirmed.
    pub fn pending_updates(&self) -> usize {
        self.shared.lock().updates.len()
    }

    /// How many 409 "terminated by other getUpdates request" answers were sent.
    pub fn conflicts_sent(&self) -> u64 {
        self.shared.lock().conflicts_sent
    }

    /// How many 429 answers were sent (injected, random or rate limits).
    pub fn too_many_requests_sent(&self) -> u64 {
        self.shared.lock().too_many_sent
    }

    /// `sendMessage` to `chat_id` answers 403 `Forbidden: bot was blocked by the user`.
    pub fn block_chat(&self, chat_id: i64) {
        self.shared.lock().blocked.insert(chat_id);
    }

    /// Undo [`block_chat`](Self::block_chat).
    pub fn unblock_chat(&self, chat_id: i64) {
        self.shared.lock().blocked.remove(&chat_id);
    }

    /// The group `old` was upgraded: `sendMessage` to it answers 400 with
    /// `parameters.migrate_to_chat_id = new`; `new` becomes a known supergroup.
    pub fn migrate_chat(&self, old: i64, new: i64) {
        let mut st = self.shared.lock();
        let title = match st.chats.get(&old) {
            Some(ChatSpec::Group(_, t)) | Some(ChatSpec::Supergroup(_, t)) => t.clone(),
            _ => format!("Group {old}"),
        };
        st.migrated.insert(old, new);
        st.chats.insert(new, ChatSpec::Supergroup(new, title));
    }

    /// Fail the next `times` calls of `method` (case-insensitive; `None` = any method) with `fault`.
    pub fn inject(&self, method: Option<&str>, fault: Fault, times: u32) {
        self.shared.lock().faults.add(method, fault, times);
    }

    /// Next `times` calls of `method` answer 429 with `retry_after` seconds.
    pub fn fail_429(&self, method: Option<&str>, times: u32, retry_after: u32) {
        self.inject(method, Fault::TooManyRequests { retry_after }, times);
    }

    /// Next `times` calls of `method` answer 502 `Bad Gateway`.
    pub fn fail_5xx(&self, method: Option<&str>, times: u32) {
        self.inject(method, Fault::ServerError { status: 502 }, times);
    }

    /// Next `times` calls of `method` are answered only after `delay`.
    pub fn delay(&self, method: Option<&str>, times: u32, delay: Duration) {
        let ms = delay.as_millis() as u64;
        self.inject(method, Fault::Delay { ms }, times);
    }

    /// Enable (or with `None` disable) seeded random faults for every call.
    pub fn set_random_faults(&self, random: Option<RandomFaults>) {
        self.shared.lock().faults.set_random(random);
    }

    /// Drop every queued and random fault.
    pub fn clear_faults(&self) {
        self.shared.lock().faults.clear();
    }

    /// Set send rate limits (default: none).
    pub fn set_rate_limits(&self, limits: RateLimits) {
        let mut st = self.shared.lock();
        st.limits = limits;
        st.global_window.clear();
        st.chat_windows.clear();
        st.group_windows.clear();
    }
}

impl Drop for FakeTelegram {
    fn drop(&mut self) {
        self.shared.lock().stopped = true;
        self.shared.updates_changed.notify_waiters();
    }
}

fn next_message_id(st: &mut TgState, chat_id: i64) -> i64 {
    let n = st.next_message_id.entry(chat_id).or_insert(0);
    *n += 1;
    *n
}

/// Parse a query-string or form value: JSON if it parses, else a string.
fn loose_value(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.to_owned()))
}

fn parse_params(uri: &Uri, body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    let mut params = Map::new();
    if let Ok(Query(pairs)) = Query::<Vec<(String, String)>>::try_from_uri(uri) {
        for (k, v) in pairs {
            params.insert(k, loose_value(&v));
        }
    }
    let text = std::str::from_utf8(body).map_err(|_| ApiError::bad_request("invalid UTF-8"))?;
    if text.trim().is_empty() {
        return Ok(params);
    }
    if let Ok(Value::Object(obj)) = serde_json::from_str::<Value>(text) {
        params.extend(obj);
        return Ok(params);
    }
    let form_uri: Uri = format!("/?{}", text.trim())
        .parse()
        .map_err(|_| ApiError::bad_request("can't parse request body"))?;
    let Query(pairs) = Query::<Vec<(String, String)>>::try_from_uri(&form_uri)
        .map_err(|_| ApiError::bad_request("can't parse request body"))?;
    for (k, v) in pairs {
        params.insert(k, loose_value(&v));
    }
    Ok(params)
}

fn get_i64(p: &Map<String, Value>, key: &str) -> Option<i64> {
    match p.get(key)? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn get_str(p: &Map<String, Value>, key: &str) -> Option<String> {
    match p.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

fn get_bool(p: &Map<String, Value>, key: &str) -> bool {
    match p.get(key) {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s == "true" || s == "1",
        Some(Value::Number(n)) => n.as_i64() == Some(1),
        _ => false,
    }
}

/// `reply_markup` may arrive as an object or as a JSON string.
fn get_markup(p: &Map<String, Value>) -> Value {
    match p.get("reply_markup") {
        Some(Value::String(s)) => loose_value(s),
        Some(v) => v.clone(),
        None => Value::Null,
    }
}

fn ok(result: Value) -> Response {
    axum::Json(json!({"ok": true, "result": result})).into_response()
}

async fn handle(
    State(sh): State<Arc<Shared>>,
    Path((bot, method)): Path<(String, String)>,
    uri: Uri,
    body: Bytes,
) -> Response {
    if bot.strip_prefix("bot") != Some(sh.token.as_str()) {
        return ApiError::new(401, "Unauthorized").into_response();
    }
    let method = method.to_ascii_lowercase();
    let fault = {
        let mut st = sh.lock();
        *st.requests.entry(method.clone()).or_insert(0) += 1;
        st.faults.next(&method)
    };
    match fault {
        None => {}
        Some(Fault::Delay { ms }) => faults::sleep_ms(ms).await,
        Some(Fault::TooManyRequests { retry_after }) => {
            sh.lock().too_many_sent += 1;
            return ApiError::too_many(retry_after).into_response();
        }
        Some(Fault::ServerError { status }) => {
            return ApiError::new(status, Fault::server_error_text(status)).into_response()
        }
        Some(Fault::DropConnection) => return faults::dropped_connection(),
        Some(Fault::MalformedJson) => {
            return faults::malformed_json("{\"ok\":true,\"result\":[{\"upd")
        }
    }
    let params = match parse_params(&uri, &body) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let result = match method.as_str() {
        "getme" => Ok(json!({
            "id": BOT_USER_ID, "is_bot": true, "first_name": "CryptoSat Test",
            "username": BOT_USERNAME, "can_join_groups": true,
            "can_read_all_group_messages": false, "supports_inline_queries": false,
            "can_connect_to_business": false, "has_main_web_app": false,
        })),
        "getupdates" => get_updates(&sh, &params).await,
        "sendmessage" => send_message(&sh, &params),
        "editmessagetext" => edit_message(&sh, &params, true),
        "editmessagereplymarkup" => edit_message(&sh, &params, false),
        "answercallbackquery" => answer_callback(&sh, &params),
        "setmycommands" => {
            let commands = match params.get("commands") {
                Some(Value::String(s)) => loose_value(s),
                Some(v) => v.clone(),
                None => {
                    return ApiError::bad_request("parameter \"commands\" is required")
                        .into_response()
                }
            };
            sh.lock().commands = commands;
            Ok(json!(true))
        }
        "deletemycommands" => {
            sh.lock().commands = json!([]);
            Ok(json!(true))
        }
        "getmycommands" => Ok(sh.lock().commands.clone()),
        "getwebhookinfo" => {
            let st = sh.lock();
            Ok(json!({
                "url": st.webhook_url.clone().unwrap_or_default(),
                "has_custom_certificate": false,
                "pending_update_count": st.updates.len(),
            }))
        }
        "setwebhook" => {
            let url = get_str(&params, "url").unwrap_or_default();
            {
                let mut st = sh.lock();
                if get_bool(&params, "drop_pending_updates") {
                    st.updates.clear();
                }
                st.webhook_url = (!url.is_empty()).then_some(url.clone());
            }
            sh.updates_changed.notify_waiters();
            let text = if url.is_empty() {
                "Webhook was deleted"
            } else {
                "Webhook was set"
            };
            return axum::Json(json!({"ok": true, "result": true, "description": text}))
                .into_response();
        }
        "deletewebhook" => {
            let was_set = {
                let mut st = sh.lock();
                if get_bool(&params, "drop_pending_updates") {
                    st.updates.clear();
                }
                st.webhook_url.take().is_some()
            };
            sh.updates_changed.notify_waiters();
            let text = if was_set {
                "Webhook was deleted"
            } else {
                "Webhook is already deleted"
            };
            return axum::Json(json!({"ok": true, "result": true, "description": text}))
                .into_response();
        }
        _ => Err(ApiError::new(404, "Not Found: method not found")),
    };
    match result {
        Ok(v) => ok(v),
        Err(e) => {
            if e.code == 429 {
                sh.lock().too_many_sent += 1;
            }
            e.into_response()
        }
    }
}

/// Confirm updates below `offset` and return those from `offset` on (≤ `limit`).
fn take_updates(st: &mut TgState, offset: i64, limit: usize) -> Vec<Value> {
    if offset > 0 {
        while st.updates.front().is_some_and(|u| u.id < offset) {
            st.updates.pop_front();
        }
        st.offset = st.offset.max(offset);
    } else if offset < 0 {
        let keep = offset.unsigned_abs() as usize;
        while st.updates.len() > keep {
            st.updates.pop_front();
        }
    }
    st.updates
        .iter()
        .filter(|u| u.id >= offset)
        .take(limit)
        .map(|u| u.body.clone())
        .collect()
}

async fn get_updates(sh: &Shared, p: &Map<String, Value>) -> ApiResult {
    let offset = get_i64(p, "offset").unwrap_or(0);
    let limit = get_i64(p, "limit").unwrap_or(100).clamp(1, 100) as usize;
    let timeout = get_i64(p, "timeout").unwrap_or(0).clamp(0, 3600) as u64;
    let my_gen = {
        let mut st = sh.lock();
        if st.webhook_url.is_some() {
            return Err(ApiError::new(409, CONFLICT_WEBHOOK_ACTIVE));
        }
        let my_gen = if timeout > 0 {
            st.poll_gen += 1;
            Some(st.poll_gen)
        } else {
            None
        };
        let ups = take_updates(&mut st, offset, limit);
        if !ups.is_empty() || timeout == 0 || st.stopped {
            if my_gen.is_some() {
                drop(st);
                sh.updates_changed.notify_waiters();
            }
            return Ok(Value::Array(ups));
        }
        my_gen
    };
    // Knock out an older waiting long poll.
    sh.updates_changed.notify_waiters();
    // After a negative offset the first remaining update is the new start.
    let offset = offset.max(0);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(timeout);
    loop {
        let notified = sh.updates_changed.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        {
            let mut st = sh.lock();
            if st.stopped {
                return Ok(json!([]));
            }
            if st.webhook_url.is_some() {
                return Err(ApiError::new(409, CONFLICT_SET_WEBHOOK));
            }
            if Some(st.poll_gen) != my_gen {
                st.conflicts_sent += 1;
                return Err(ApiError::new(409, CONFLICT_OTHER_GET_UPDATES));
            }
            let ups: Vec<Value> = st
                .updates
                .iter()
                .filter(|u| u.id >= offset)
                .take(limit)
                .map(|u| u.body.clone())
                .collect();
            if !ups.is_empty() {
                return Ok(Value::Array(ups));
            }
        }
        if tokio::time::timeout_at(deadline, notified).await.is_err() {
            return Ok(json!([]));
        }
    }
}

/// Check the sliding windows; on success record the send.
fn check_rate_limits(st: &mut TgState, chat_id: i64, now: Instant) -> Result<(), ApiError> {
    fn retry_after(window: &VecDeque<Instant>, span: Duration, now: Instant) -> u32 {
        let oldest = window.front().copied().unwrap_or(now);
        let wait = span.saturating_sub(now.duration_since(oldest));
        (wait.as_secs_f64().ceil() as u32).max(1)
    }
    fn prune(window: &mut VecDeque<Instant>, span: Duration, now: Instant) {
        while window
            .front()
            .is_some_and(|t| now.duration_since(*t) >= span)
        {
            window.pop_front();
        }
    }
    let sec = Duration::from_secs(1);
    let min = Duration::from_secs(60);
    let limits = st.limits.clone();
    let is_group = chat_id < 0;
    prune(&mut st.global_window, sec, now);
    if let Some(l) = limits.global_per_sec {
        if st.global_window.len() >= l as usize {
            return Err(ApiError::too_many(retry_after(&st.global_window, sec, now)));
        }
    }
    let chat_w = st.chat_windows.entry(chat_id).or_default();
    prune(chat_w, sec, now);
    if let Some(l) = limits.per_chat_per_sec {
        if chat_w.len() >= l as usize {
            return Err(ApiError::too_many(retry_after(chat_w, sec, now)));
        }
    }
    let group_w = st.group_windows.entry(chat_id).or_default();
    prune(group_w, min, now);
    if let (Some(l), true) = (limits.group_per_min, is_group) {
        if group_w.len() >= l as usize {
            return Err(ApiError::too_many(retry_after(group_w, min, now)));
        }
    }
    st.global_window.push_back(now);
    st.chat_windows.entry(chat_id).or_default().push_back(now);
    if is_group {
        st.group_windows.entry(chat_id).or_default().push_back(now);
    }
    Ok(())
}

fn send_message(sh: &Shared, p: &Map<String, Value>) -> ApiResult {
    let chat_id = match p.get("chat_id") {
        None => return Err(ApiError::bad_request("chat_id is empty")),
        Some(_) => get_i64(p, "chat_id").ok_or_else(|| ApiError::bad_request("chat not found"))?,
    };
    let text = get_str(p, "text").unwrap_or_default();
    if text.is_empty() {
        return Err(ApiError::bad_request("message text is empty"));
    }
    if text.chars().count() > 4096 {
        return Err(ApiError::bad_request("message is too long"));
    }
    let parse_mode = get_str(p, "parse_mode");
    let reply_markup = get_markup(p);
    let now = Instant::now();
    let mut st = sh.lock();
    if let Some(new) = st.migrated.get(&chat_id).copied() {
        return Err(ApiError {
            code: 400,
            description: "Bad Request: group chat was upgraded to a supergroup chat".into(),
            parameters: Some(json!({ "migrate_to_chat_id": new })),
        });
    }
    if st.blocked.contains(&chat_id) {
        return Err(ApiError::new(403, "Forbidden: bot was blocked by the user"));
    }
    let Some(chat) = st.chats.get(&chat_id).cloned() else {
        return Err(ApiError::bad_request("chat not found"));
    };
    check_rate_limits(&mut st, chat_id, now)?;
    let message_id = next_message_id(&mut st, chat_id);
    let date = unix_now();
    let mut msg = json!({
        "message_id": message_id,
        "from": bot_user_json(),
        "chat": chat.to_json(),
        "date": date,
        "text": text,
    });
    if let ChatSpec::Channel(..) = chat {
        msg.as_object_mut().map(|m| m.remove("from"));
        msg["sender_chat"] = chat.to_json();
    }
    if !reply_markup.is_null() {
        msg["reply_markup"] = reply_markup.clone();
    }
    st.messages.insert((chat_id, message_id), msg.clone());
    st.sent.push(SentMessage {
        method: "sendmessage".into(),
        chat_id,
        message_id,
        text,
        parse_mode,
        reply_markup,
        date,
        at: now,
    });
    drop(st);
    sh.sent_changed.notify_waiters();
    Ok(msg)
}

fn edit_message(sh: &Shared, p: &Map<String, Value>, with_text: bool) -> ApiResult {
    let method = if with_text {
        "editmessagetext"
    } else {
        "editmessagereplymarkup"
    };
    let reply_markup = get_markup(p);
    let parse_mode = get_str(p, "parse_mode");
    if p.contains_key("inline_message_id") {
        return Ok(json!(true));
    }
    let chat_id = get_i64(p, "chat_id").ok_or_else(|| ApiError::bad_request("chat not found"))?;
    let message_id = get_i64(p, "message_id")
        .ok_or_else(|| ApiError::bad_request("message identifier is not specified"))?;
    let mut st = sh.lock();
    if !st.chats.contains_key(&chat_id) {
        return Err(ApiError::bad_request("chat not found"));
    }
    let Some(msg) = st.messages.get(&(chat_id, message_id)).cloned() else {
        return Err(ApiError::bad_request("message to edit not found"));
    };
    if msg["from"]["id"] != json!(BOT_USER_ID) && msg.get("sender_chat").is_none() {
        return Err(ApiError::bad_request("message can't be edited"));
    }
    let mut new = msg.clone();
    let text = if with_text {
        let t = get_str(p, "text").unwrap_or_default();
        if t.is_empty() {
            return Err(ApiError::bad_request("message text is empty"));
        }
        new["text"] = json!(t);
        t
    } else {
        msg["text"].as_str().unwrap_or_default().to_owned()
    };
    match new.as_object_mut() {
        Some(obj) if reply_markup.is_null() => {
            obj.remove("reply_markup");
        }
        Some(obj) => {
            obj.insert("reply_markup".into(), reply_markup.clone());
        }
        None => {}
    }
    if new == msg {
        return Err(ApiError::bad_request(
            "message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message",
        ));
    }
    new["edit_date"] = json!(unix_now());
    st.messages.insert((chat_id, message_id), new.clone());
    st.edits.push(SentMessage {
        method: method.into(),
        chat_id,
        message_id,
        text,
        parse_mode,
        reply_markup,
        date: unix_now(),
        at: Instant::now(),
    });
    drop(st);
    sh.sent_changed.notify_waiters();
    Ok(new)
}

fn answer_callback(sh: &Shared, p: &Map<String, Value>) -> ApiResult {
    let id = get_str(p, "callback_query_id").unwrap_or_default();
    let mut st = sh.lock();
    if !st.callback_ids.remove(&id) {
        return Err(ApiError::bad_request(
            "query is too old and response timeout expired or query ID is invalid",
        ));
    }
    st.callback_answers.push(Value::Object(p.clone()));
    Ok(json!(true))
}
