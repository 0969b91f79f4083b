//! Sending messages at Telegram's pace (see [`Pacer`]): a 429 `retry_after`
//! freezes the pace for everyone and the caller retries; chat-level outcomes
//! are applied to storage: a chat that blocked the bot is marked inactive, a
//! group that became a supergroup is followed.
//!
//! Not teloxide's `Throttle`: its worker sleeps 250 ms after every release
//! round, which put 0–250 ms on every reply under load (p99 250 ms measured in
//! BENCHMARKS.md, 2 ms without it), and its default per-chat limit of 20 a
//! minute silently held back replies to an active user for up to a minute.
//! The pacer enforces the same limits without either.

use std::sync::Arc;

use teloxide::payloads::{AnswerCallbackQuerySetters, EditMessageTextSetters, SendMessageSetters};
use teloxide::requests::Requester;
use teloxide::types::{ChatId, InlineKeyboardMarkup, MessageId, ParseMode};
use teloxide::Bot;

use super::errors::describe;
use super::errors::Failure;
use super::pacer::Pacer;
use crate::secrets::Redactor;
use crate::store::Store;

/// A reply: HTML text and an optional inline keyboard.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub text: String,
    pub keyboard: Option<InlineKeyboardMarkup>,
}

impl Reply {
    /// Text without a keyboard.
    pub fn text(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            keyboard: None,
        }
    }

    /// Text with a keyboard.
    pub fn with_keyboard(text: impl Into<String>, keyboard: InlineKeyboardMarkup) -> Self {
        Self {
            text: text.into(),
            keyboard: Some(keyboard),
        }
    }
}

/// Why a message was not delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// The chat blocked the bot or removed it; it has been marked inactive.
    ChatGone(String),
    /// Worth retrying later (network, 5xx, 429 Too Many Requests).
    Transient(String),
    /// Telegram refused the message itself (e.g. `chat not found`).
    Rejected(String),
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::ChatGone(t) => write!(f, "chat gone: {t}"),
            SendError::Transient(t) => write!(f, "temporary failure: {t}"),
            SendError::Rejected(t) => write!(f, "rejected: {t}"),
        }
    }
}

/// The shared sender.
#[derive(Clone)]
pub struct Sender {
    bot: Bot,
    pacer: Arc<Pacer>,
    store: Arc<Store>,
    redactor: Redactor,
}

impl Sender {
    /// `pacer` is shared by everything that sends.
    pub fn new(bot: Bot, pacer: Arc<Pacer>, store: Arc<Store>, redactor: Redactor) -> Self {
        Self {
            bot,
            pacer,
            store,
            redactor,
        }
    }

    /// The shared pace (the alert sender skips chats that are not ready).
    pub fn pacer(&self) -> &Pacer {
        &self.pacer
    }

    /// Sends a message to `chat`, following one group→supergroup migration.
    /// Returns the chat id it was delivered to.
    pub async fn send(&self, chat: i64, reply: &Reply) -> Result<i64, SendError> {
        self.deliver(chat, reply).await
    }

    async fn deliver(&self, chat: i64, reply: &Reply) -> Result<i64, SendError> {
        match self.send_once(chat, reply).await {
            Err(Failure::Migrated(new)) => {
                if let Err(e) = self.store.migrate_chat(chat, new) {
                    tracing::error!(
                        chat_id = chat,
                        new_chat_id = new,
                        "could not record a chat migration: {e}"
                    );
                }
                tracing::info!(
                    chat_id = chat,
                    new_chat_id = new,
                    "group upgraded to a supergroup; following it"
                );
                self.send_once(new, reply)
                    .await
                    .map_err(|f| self.outcome(new, f))?;
                Ok(new)
            }
            Err(f) => Err(self.outcome(chat, f)),
            Ok(()) => Ok(chat),
        }
    }

    async fn send_once(&self, chat: i64, reply: &Reply) -> Result<(), Failure> {
        self.pacer.wait(chat).await;
        let mut req = self
            .bot
            .send_message(ChatId(chat), reply.text.clone())
            .parse_mode(ParseMode::Html);
        if let Some(k) = &reply.keyboard {
            req = req.reply_markup(k.clone());
        }
        let result = req.await.map(|_| ());
        result.map_err(|e| {
            let f = Failure::classify(&e, &self.redactor);
            if let Failure::RetryAfter(d) = f {
                self.pacer.freeze(d);
            }
            f
        })
    }

    /// Replaces the text (and keyboard) of a message the bot sent.
    pub async fn edit(&self, chat: i64, message_id: i32, reply: &Reply) -> Result<(), SendError> {
        self.pacer.wait(chat).await;
        let mut req = self
            .bot
            .edit_message_text(ChatId(chat), MessageId(message_id), reply.text.clone())
            .parse_mode(ParseMode::Html);
        if let Some(k) = &reply.keyboard {
            req = req.reply_markup(k.clone());
        }
        match req.await {
            Ok(_) => Ok(()),
            Err(e) => {
                let f = Failure::classify(&e, &self.redactor);
                // Pressing the same button twice edits to the same text: fine.
                if matches!(&f, Failure::Other(t) if t.contains("message is not modified")) {
                    return Ok(());
                }
                Err(self.outcome(chat, f))
            }
        }
    }

    /// Answers a button press (stops the client's spinner), optionally with a toast.
    pub async fn answer_callback(&self, id: &str, text: Option<&str>) {
        let mut req = self
            .bot
            .answer_callback_query(teloxide::types::CallbackQueryId(id.to_owned()));
        if let Some(t) = text {
            req = req.text(t.to_owned());
        }
        if let Err(e) = req.await {
            // "query is too old": the user waited too long; nothing to do.
            tracing::debug!(
                "answerCallbackQuery failed: {}",
                describe(&Failure::classify(&e, &self.redactor))
            );
        }
    }

    fn outcome(&self, chat: i64, failure: Failure) -> SendError {
        match failure {
            Failure::Forbidden(t) => {
                if let Err(e) = self.store.deactivate_chat(chat) {
                    tracing::error!(chat_id = chat, "could not mark the chat inactive: {e}");
                }
                tracing::info!(
                    chat_id = chat,
                    "chat blocked or removed the bot ({t}); marked inactive"
                );
                SendError::ChatGone(t)
            }
            Failure::Transient(_) | Failure::RetryAfter(_) | Failure::Conflict { .. } => {
                SendError::Transient(describe(&failure))
            }
            other => SendError::Rejected(describe(&other)),
        }
    }
}
