//! The update poller: our own `getUpdates` loop.
//!
//! Not teloxide's `Polling`: that confirms a batch before its handlers run, so a
//! `kill -9` loses it. Here the offset is persisted only after an update has been
//! handled, so a crash re-handles at most the update that was in flight.
//!
//! It also owns conflict handling. The local lock guarantees no other instance on
//! this host, so a 409 "terminated by other getUpdates request" means a poller
//! *elsewhere* uses the token. Fighting it makes both bots lose updates; the
//! poller logs it loudly once, reports `CONFLICT` in STATUS, backs off with
//! jitter, and (with `on_conflict = "exit"`) gives up after a while.

use std::sync::Arc;
use std::time::{Duration, Instant};

use teloxide::payloads::{DeleteWebhookSetters, GetUpdatesSetters};
use teloxide::requests::{Request, Requester};
use teloxide::types::{AllowedUpdate, BotCommand, Update};
use teloxide::Bot;
use tokio_util::sync::CancellationToken;

use super::commands;
use super::dispatch::Dispatcher;
use super::errors::{describe, Failure};
use crate::config::{OnConflict, TelegramConfig};
use crate::secrets::Redactor;
use crate::service::health::Health;
use crate::service::watchdog::Heartbeat;
use crate::store::Store;

/// Why the poller stopped for good (other than a requested shutdown).
#[derive(Debug, thiserror::Error)]
pub enum PollerError {
    #[error("Telegram rejected the bot token (401 Unauthorized): it is mistyped or was revoked with @BotFather. Put the current token in place and restart")]
    InvalidToken,
    #[error("a webhook is set for this bot ({0}) and telegram.delete_webhook = false, so getUpdates cannot work. Remove the webhook (set telegram.delete_webhook = true, or call deleteWebhook) and restart")]
    WebhookSet(String),
    #[error("another poller has used this bot token for {0} s (telegram.on_conflict = \"exit\"): {1}. Find it with: cryptosat doctor")]
    Conflict(u64, String),
    #[error("cannot record the update offset in the database: {0}")]
    Storage(#[from] crate::store::StoreError),
}

/// Everything the poller needs.
pub struct Poller {
    pub bot: Bot,
    pub config: TelegramConfig,
    pub store: Arc<Store>,
    pub health: Health,
    pub redactor: Redactor,
    pub heartbeat: Heartbeat,
    pub shutdown: CancellationToken,
    pub dispatcher: Dispatcher,
}

/// Backoff bounds for transient failures and for conflicts.
const TRANSIENT_BACKOFF: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(30));
const CONFLICT_BACKOFF: (Duration, Duration) = (Duration::from_secs(5), Duration::from_secs(60));
/// Two pollers alternate: each wins some rounds. A conflict is over only after
/// this long without a 409, not at the first successful poll.
const CONFLICT_QUIET: Duration = Duration::from_secs(90);

/// A conflict in progress: when it began and when the last 409 came.
#[derive(Debug, Clone, Copy)]
struct ConflictEpisode {
    since: Instant,
    last: Instant,
}

impl Poller {
    /// Runs until shutdown (Ok) or a condition that needs an operator (Err).
    pub async fn run(self) -> Result<(), PollerError> {
        let Some(username) = self.startup().await? else {
            return Ok(());
        };
        let username: Arc<str> = username.into();
        // Updates stored before a crash or stop: handle them first.
        for (id, payload) in self.store.inbox_pending()? {
            self.heartbeat
                .expect_within(super::request_budget(&self.config));
            match serde_json::from_str::<Update>(&payload) {
                Ok(update) => {
                    tracing::info!(
                        update_id = id,
                        "handling an update received before the last stop"
                    );
                    self.dispatcher.dispatch(id, update, username.clone()).await;
                }
                Err(e) => {
                    tracing::error!(update_id = id, "dropping an unreadable stored update: {e}");
                    self.store.inbox_done(id)?;
                }
            }
        }
        let mut backoff = Backoff::new(TRANSIENT_BACKOFF);
        let mut conflict_backoff = Backoff::new(CONFLICT_BACKOFF);
        let mut episode: Option<ConflictEpisode> = None;
        let request_budget = super::request_budget(&self.config);
        loop {
            let offset = self.store.update_offset()?;
            self.heartbeat.expect_within(request_budget);
            self.heartbeat.hang_point().await;
            let request = self
                .bot
                .get_updates()
                .offset(offset as i32)
                .timeout(self.config.poll_timeout_secs as u32)
                .limit(100)
                .allowed_updates([
                    AllowedUpdate::Message,
                    AllowedUpdate::ChannelPost,
                    AllowedUpdate::CallbackQuery,
                    AllowedUpdate::MyChatMember,
                ]);
            let result = tokio::select! {
                _ = self.shutdown.cancelled() => break,
                r = request.send() => r,
            };
            match result {
                Ok(updates) => {
                    self.health.telegram_ok();
                    backoff.reset();
                    if let Some(ep) = episode.filter(|ep| ep.last.elapsed() >= CONFLICT_QUIET) {
                        tracing::info!(
                            conflicts = self.health.conflicts_total(),
                            "Telegram conflict is over after {} s: no 409 for {} s, this instance polls alone again",
                            ep.since.elapsed().as_secs(),
                            CONFLICT_QUIET.as_secs()
                        );
                        self.health.conflict_over();
                        conflict_backoff.reset();
                        episode = None;
                    }
                    self.accept(updates, &username).await?;
                }
                Err(e) => match Failure::classify(&e, &self.redactor) {
                    Failure::Conflict {
                        webhook,
                        description,
                    } => {
                        let now = Instant::now();
                        let new_episode = episode.is_none();
                        let ep = episode.get_or_insert(ConflictEpisode {
                            since: now,
                            last: now,
                        });
                        ep.last = now;
                        let since = ep.since;
                        let total = self.health.telegram_conflict(description.clone());
                        if new_episode {
                            tracing::error!(
                                conflicts = total,
                                "Telegram answered 409 \"{description}\". This host's lock is ours, so the other user of this bot token is \
                                 elsewhere: another host, a container, a laptop{} or a process that ignores the lock. \
                                 Backing off instead of fighting it; run `cryptosat doctor` to find it",
                                if webhook { ", or a webhook set by another deployment" } else { "" }
                            );
                        } else {
                            tracing::debug!(conflicts = total, "Telegram conflict continues");
                        }
                        if self.config.on_conflict == OnConflict::Exit
                            && since.elapsed()
                                >= Duration::from_secs(self.config.conflict_exit_after_secs)
                        {
                            return Err(PollerError::Conflict(
                                since.elapsed().as_secs(),
                                description,
                            ));
                        }
                        if !self.pause(conflict_backoff.next_delay()).await {
                            break;
                        }
                    }
                    Failure::InvalidToken => return Err(PollerError::InvalidToken),
                    Failure::RetryAfter(d) => {
                        tracing::warn!(seconds = d.as_secs(), "Telegram asked to slow down (429)");
                        if !self.pause(d).await {
                            break;
                        }
                    }
                    failure => {
                        let reason = describe(&failure);
                        tracing::warn!("getUpdates failed: {reason}");
                        self.health.telegram_down(reason);
                        if !self.pause(backoff.next_delay()).await {
                            break;
                        }
                    }
                },
            }
        }
        self.confirm_on_exit().await;
        Ok(())
    }

    /// `getMe`, the webhook check and command registration, retried until
    /// Telegram answers. `Ok(None)` when shut down meanwhile.
    async fn startup(&self) -> Result<Option<String>, PollerError> {
        let mut backoff = Backoff::new(TRANSIENT_BACKOFF);
        loop {
            self.heartbeat
                .expect_within(super::request_budget(&self.config) * 3);
            self.heartbeat.hang_point().await;
            let attempt = async {
                let me = self.bot.get_me().await?;
                let webhook = self.bot.get_webhook_info().await?;
                Ok::<_, teloxide::RequestError>((me, webhook))
            };
            let result = tokio::select! {
                _ = self.shutdown.cancelled() => return Ok(None),
                r = attempt => r,
            };
            match result {
                Ok((me, webhook)) => {
                    let username = me.username().to_owned();
                    self.health.set_bot_username(username.clone());
                    self.health.telegram_ok();
                    if let Some(url) = webhook.url {
                        let shown = self.redactor.redact(&format!(
                            "{}://{}",
                            url.scheme(),
                            url.host_str().unwrap_or("?")
                        ));
                        if !self.config.delete_webhook {
                            return Err(PollerError::WebhookSet(shown));
                        }
                        tracing::warn!(webhook = %shown, "a webhook was set for this bot (it makes getUpdates fail with 409); deleting it as telegram.delete_webhook = true");
                        if let Err(e) = self.bot.delete_webhook().drop_pending_updates(false).await
                        {
                            tracing::warn!(
                                "deleteWebhook failed: {}",
                                describe(&Failure::classify(&e, &self.redactor))
                            );
                        }
                    }
                    let commands: Vec<BotCommand> = commands::COMMANDS
                        .iter()
                        .map(|(n, d)| BotCommand::new(*n, *d))
                        .collect();
                    if let Err(e) = self.bot.set_my_commands(commands).await {
                        tracing::warn!(
                            "setMyCommands failed: {}",
                            describe(&Failure::classify(&e, &self.redactor))
                        );
                    }
                    tracing::info!(bot = %username, "connected to Telegram");
                    return Ok(Some(username));
                }
                Err(e) => match Failure::classify(&e, &self.redactor) {
                    Failure::InvalidToken => return Err(PollerError::InvalidToken),
                    failure => {
                        let reason = describe(&failure);
                        tracing::warn!("Telegram is not reachable yet: {reason}");
                        self.health.telegram_down(reason);
                        let delay = match failure {
                            Failure::RetryAfter(d) => d,
                            _ => backoff.next_delay(),
                        };
                        if !self.pause(delay).await {
                            return Ok(None);
                        }
                    }
                },
            }
        }
    }

    /// Sleeps `d` (keeping the watchdog informed); `false` if shut down meanwhile.
    async fn pause(&self, d: Duration) -> bool {
        self.heartbeat
            .expect_within(d + super::request_timeout(&self.config));
        tokio::select! {
            _ = self.shutdown.cancelled() => false,
            _ = tokio::time::sleep(d) => true,
        }
    }

    /// On shutdown, tells Telegram which updates were handled, so that the next
    /// start (or a standby) does not receive them again. `timeout = 0` does not
    /// knock out another poller.
    async fn confirm_on_exit(&self) {
        let Ok(offset) = self.store.update_offset() else {
            return;
        };
        if offset == 0 {
            return;
        }
        let confirm = self
            .bot
            .get_updates()
            .offset(offset as i32)
            .timeout(0)
            .limit(1);
        match tokio::time::timeout(Duration::from_secs(3), confirm.send()).await {
            Ok(Ok(_)) => tracing::info!(offset, "confirmed handled updates to Telegram"),
            Ok(Err(e)) => tracing::info!(
                offset,
                "could not confirm handled updates to Telegram ({}); the next start skips them by the stored offset",
                describe(&Failure::classify(&e, &self.redactor))
            ),
            Err(_) => tracing::info!(offset, "confirming handled updates timed out; the stored offset covers them"),
        }
    }

    /// Stores a batch in the inbox together with the next offset (so the next
    /// `getUpdates` confirms it to Telegram only once it is safe on disk), then
    /// hands each update to the dispatcher.
    async fn accept(&self, updates: Vec<Update>, username: &Arc<str>) -> Result<(), PollerError> {
        let Some(last) = updates.last().map(|u| i64::from(u.id.0)) else {
            return Ok(());
        };
        let mut rows = Vec::with_capacity(updates.len());
        for u in &updates {
            match serde_json::to_string(u) {
                Ok(json) => rows.push((i64::from(u.id.0), json)),
                Err(e) => tracing::error!(update_id = u.id.0, "cannot store an update: {e}"),
            }
        }
        self.store.inbox_put(&rows, last + 1)?;
        for u in updates {
            let id = i64::from(u.id.0);
            if rows.iter().any(|(r, _)| *r == id) {
                self.heartbeat
                    .expect_within(super::request_budget(&self.config));
                self.dispatcher.dispatch(id, u, username.clone()).await;
            }
        }
        Ok(())
    }
}

/// Exponential backoff with full jitter between `min` and the current ceiling.
struct Backoff {
    min: Duration,
    max: Duration,
    ceiling: Duration,
}

impl Backoff {
    fn new((min, max): (Duration, Duration)) -> Self {
        Self {
            min,
            max,
            ceiling: min,
        }
    }

    fn reset(&mut self) {
        self.ceiling = self.min;
    }

    fn next_delay(&mut self) -> Duration {
        let span = self.ceiling.saturating_sub(self.min).as_millis() as u64;
        let delay = self.min + Duration::from_millis(fastrand::u64(0..=span));
        self.ceiling = (self.ceiling * 2).min(self.max);
        delay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_its_ceiling_with_jitter() {
        let mut b = Backoff::new((Duration::from_secs(1), Duration::from_secs(8)));
        assert_eq!(b.next_delay(), Duration::from_secs(1));
        for _ in 0..10 {
            let d = b.next_delay();
            assert!(
                d >= Duration::from_secs(1) && d <= Duration::from_secs(8),
                "{d:?}"
            );
        }
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_secs(1));
    }
}
