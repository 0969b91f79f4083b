//! Runs handlers for updates taken from the inbox: concurrently (one slow
//! CoinGlass call never blocks other chats), each with a timeout, behind access
//! control and a per-user rate limit. An update leaves the inbox only after its
//! handler finished (or timed out and the user was told).

use std::sync::Arc;
use std::time::{Duration, Instant};

use teloxide::types::{
    CallbackQuery, ChatKind, ChatMemberKind, Message, PublicChatKind, Update, UpdateKind,
};
use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;

use super::access::{AccessControl, Rate, UserRateLimit, Verdict};
use super::callback::Action;
use super::commands::{self, Parsed};
use super::handlers;
use super::sender::{Reply, SendError, Sender};
use crate::market::CoinGlass;
use crate::service::health::Health;
use crate::store::Store;

/// Handlers running at once; beyond this the poller waits (back-pressure).
const MAX_IN_FLIGHT: usize = 256;

/// What every handler may use.
pub struct Context {
    pub sender: Sender,
    pub store: Arc<Store>,
    /// `None` when no CoinGlass API key is configured.
    pub market: Option<Arc<CoinGlass>>,
    pub health: Health,
    pub access: AccessControl,
    pub limiter: UserRateLimit,
    pub handler_timeout: Duration,
    pub started: Instant,
    /// Health of the market monitors, for `/status`.
    pub monitors: crate::monitor::Monitors,
}

/// Spawns handlers and tracks them for a graceful shutdown.
#[derive(Clone)]
pub struct Dispatcher {
    ctx: Arc<Context>,
    permits: Arc<Semaphore>,
    tracker: TaskTracker,
}

impl Dispatcher {
    pub fn new(ctx: Arc<Context>) -> Self {
        Self {
            ctx,
            permits: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
            tracker: TaskTracker::new(),
        }
    }

    /// Handlers currently running.
    pub fn in_flight(&self) -> usize {
        MAX_IN_FLIGHT - self.permits.available_permits()
    }

    /// Starts handling `update` (stored in the inbox as `update_id`); waits only
    /// when [`MAX_IN_FLIGHT`] handlers are already running.
    pub async fn dispatch(&self, update_id: i64, update: Update, username: Arc<str>) {
        let Ok(permit) = self.permits.clone().acquire_owned().await else {
            return; // the semaphore is never closed
        };
        let ctx = self.ctx.clone();
        self.tracker.spawn(async move {
            let _permit = permit;
            let chat = reply_chat(&update);
            match tokio::time::timeout(ctx.handler_timeout, handle(&ctx, update, &username)).await {
                Ok(()) => {}
                Err(_) => {
                    tracing::warn!(
                        chat_id = chat,
                        update_id,
                        "handler timed out after {} s",
                        ctx.handler_timeout.as_secs()
                    );
                    if let Some(chat) = chat {
                        // Retried like any reply, within one more handler timeout.
                        let sorry = Reply::text("Sorry, that took too long (the market data service is slow right now). Please try again in a minute.");
                        let _ = tokio::time::timeout(
                            ctx.handler_timeout,
                            reply(&ctx, chat, "timeout", sorry),
                        )
                        .await;
                    }
                }
            }
            if let Err(e) = ctx.store.inbox_done(update_id) {
                tracing::error!(update_id, "could not mark the update handled: {e}");
            }
            ctx.health.update_handled();
        });
    }

    /// Waits up to `budget` for running handlers to finish.
    pub async fn drain(&self, budget: Duration) -> bool {
        self.tracker.close();
        tokio::time::timeout(budget, self.tracker.wait())
            .await
            .is_ok()
    }
}

/// The chat a reply to this update would go to.
fn reply_chat(update: &Update) -> Option<i64> {
    match &update.kind {
        UpdateKind::Message(m) | UpdateKind::ChannelPost(m) => Some(m.chat.id.0),
        UpdateKind::CallbackQuery(q) => q.message.as_ref().map(|m| m.chat().id.0),
        _ => None,
    }
}

async fn handle(ctx: &Context, update: Update, username: &str) {
    match update.kind {
        UpdateKind::Message(m) | UpdateKind::ChannelPost(m) => {
            handle_message(ctx, &m, username).await
        }
        UpdateKind::CallbackQuery(q) => handle_callback(ctx, &q).await,
        UpdateKind::MyChatMember(change) => {
            let chat = change.chat.id.0;
            match change.new_chat_member.kind {
                ChatMemberKind::Left | ChatMemberKind::Banned(_) => {
                    if let Err(e) = ctx.store.deactivate_chat(chat) {
                        tracing::error!(chat_id = chat, "could not mark the chat inactive: {e}");
                    }
                    tracing::info!(chat_id = chat, "bot removed from the chat; marked inactive");
                }
                _ => {}
            }
        }
        _ => {}
    }
}

fn chat_kind(m: &Message) -> (&'static str, String) {
    match &m.chat.kind {
        ChatKind::Private(_) => ("private", String::new()),
        ChatKind::Public(p) => (
            match p.kind {
                PublicChatKind::Channel(_) => "channel",
                PublicChatKind::Group => "group",
                PublicChatKind::Supergroup(_) => "supergroup",
            },
            p.title.clone().unwrap_or_default(),
        ),
    }
}

async fn handle_message(ctx: &Context, msg: &Message, username: &str) {
    let Some(text) = msg.text() else { return };
    let chat = msg.chat.id.0;
    let private = matches!(msg.chat.kind, ChatKind::Private(_));
    // What deserves an answer at all. In groups and channels the bot stays
    // silent about chatter, unknown commands and other bots' commands.
    let (cmd, hint) = match commands::parse(text, username) {
        Parsed::Command(c) if commands::is_known(&c.name) => (c, None),
        Parsed::Command(c) if private => {
            let hint = commands::unknown_text(&c.name);
            (c, Some(hint))
        }
        Parsed::NotCommand if private => {
            let none = commands::Command {
                name: String::new(),
                args: Vec::new(),
            };
            (none, Some(commands::not_command_text()))
        }
        _ => return,
    };
    // Channel posts have no user; a channel admin posted it.
    let user = msg.from.as_ref().map(|u| u.id.0 as i64);
    // Every answer, hints included, is behind access control and the rate
    // limit: a flood of chatter must not buy a flood of replies.
    if !admitted(ctx, chat, user, &cmd.name).await {
        return;
    }
    if let Some(hint) = hint {
        return reply(ctx, chat, "unknown", Reply::text(hint)).await;
    }
    if text.len() > commands::MAX_INPUT {
        return reply(ctx, chat, &cmd.name, Reply::text(commands::too_long_text())).await;
    }
    let (kind, title) = chat_kind(msg);
    if let Err(e) = ctx.store.upsert_chat(chat, kind, &title) {
        tracing::error!(chat_id = chat, "could not record the chat: {e}");
    }
    let first_name = msg.from.as_ref().map(|u| u.first_name.as_str());
    let r = handlers::command(ctx, chat, user, first_name, &cmd.name, &cmd.args).await;
    reply(ctx, chat, &cmd.name, r).await;
}

/// Access control and rate limiting; sends the refusal when one is due.
async fn admitted(ctx: &Context, chat: i64, user: Option<i64>, command: &str) -> bool {
    let verdict = match user {
        Some(u) => ctx.access.check(u),
        None if ctx.access.is_open() => Verdict::Allowed,
        None => Verdict::Denied { first: false },
    };
    match verdict {
        Verdict::Allowed => {}
        Verdict::Denied { first } => {
            tracing::info!(
                chat_id = chat,
                user_id = user,
                command,
                "refused: not on the allowlist"
            );
            if first {
                reply(ctx, chat, command, Reply::text(commands::denied_text())).await;
            }
            return false;
        }
    }
    let key = user.unwrap_or(chat);
    match ctx.limiter.check(key, Instant::now()) {
        Rate::Ok => true,
        Rate::SlowDown => {
            let wait = ctx.limiter.retry_in(key).as_secs().max(1);
            tracing::info!(chat_id = chat, user_id = user, command, "rate limited");
            reply(
                ctx,
                chat,
                command,
                Reply::text(commands::slow_down_text(wait)),
            )
            .await;
            false
        }
        Rate::Drop => false,
    }
}

/// Sends a reply; a transient failure (network, 5xx, malformed answer) is
/// retried with backoff until it goes through or the handler's timeout ends
/// the attempt, so a Telegram hiccup does not swallow the answer. Replies are
/// at-least-once: a request that timed out may have arrived.
async fn reply(ctx: &Context, chat: i64, command: &str, reply: Reply) {
    let mut backoff = Duration::from_secs(1);
    loop {
        match ctx.sender.send(chat, &reply).await {
            Ok(_) => return tracing::info!(chat_id = chat, command, "handled command"),
            Err(SendError::Transient(e)) => {
                tracing::info!(
                    chat_id = chat,
                    command,
                    "could not reply, retrying in {} s: {e}",
                    backoff.as_secs()
                );
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(8));
            }
            Err(e) => return tracing::warn!(chat_id = chat, command, "could not reply: {e}"),
        }
    }
}

async fn handle_callback(ctx: &Context, q: &CallbackQuery) {
    let id = q.id.0.as_str();
    let Some(message) = &q.message else {
        return ctx.sender.answer_callback(id, None).await;
    };
    let chat = message.chat().id.0;
    let Some(action) = q.data.as_deref().and_then(Action::parse) else {
        tracing::info!(
            chat_id = chat,
            user_id = q.from.id.0,
            "ignored a button with unknown data"
        );
        return ctx
            .sender
            .answer_callback(id, Some("This button is no longer valid."))
            .await;
    };
    let user = Some(q.from.id.0 as i64);
    if !admitted(ctx, chat, user, "button").await {
        return ctx.sender.answer_callback(id, None).await;
    }
    // The action applies to the chat the button is in, never to one named in
    // the data: forged data cannot touch another chat's subscriptions.
    let outcome = handlers::button(ctx, chat, action).await;
    ctx.sender
        .answer_callback(id, outcome.toast.as_deref())
        .await;
    let result = if outcome.edit {
        ctx.sender.edit(chat, message.id().0, &outcome.reply).await
    } else {
        ctx.sender.send(chat, &outcome.reply).await.map(|_| ())
    };
    match result {
        Ok(()) => tracing::info!(chat_id = chat, command = "button", "handled button"),
        Err(e) => tracing::warn!(
            chat_id = chat,
            command = "button",
            "could not answer a button: {e}"
        ),
    }
}
