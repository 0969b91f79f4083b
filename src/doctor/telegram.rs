//! Telegram: the token (`getMe`), the webhook (`getWebhookInfo`) and the
//! conflict probe.

use std::time::{Duration, Instant};

use serde_json::json;
use teloxide::payloads::GetUpdatesSetters;
use teloxide::requests::{Request, Requester};
use teloxide::Bot;

use super::host::{LockState, Suspect};
use super::systemd::Unit;
use super::{Check, CONFLICT_FIX};
use crate::config::TelegramConfig;
use crate::secrets::{self, Redactor, Secret, PACKAGED_TOKEN_FILE};
use crate::telegram::errors::describe;
use crate::telegram::errors::Failure;

/// Bound on `getMe` and `getWebhookInfo` (teloxide itself waits 10 s after a 5xx).
const CALL_TIMEOUT: Duration = Duration::from_secs(25);

/// Shared inputs of the Telegram checks.
pub(super) struct Checks<'a> {
    pub config: &'a TelegramConfig,
    pub redactor: &'a Redactor,
}

/// What is known about local instances, to decide whether to probe.
pub(super) struct Local<'a> {
    pub lock: &'a LockState,
    pub unit: Option<&'a Unit>,
    pub suspects: &'a [Suspect],
}

fn token_fix() -> String {
    format!(
        "get the current token from @BotFather (/mybots → the bot → API Token), put it into {PACKAGED_TOKEN_FILE} (one line), then: systemctl restart cryptosat"
    )
}

impl Checks<'_> {
    fn failure(&self, e: &teloxide::RequestError) -> Failure {
        Failure::classify(e, self.redactor)
    }

    /// `telegram`: `getMe`. Details: `bot_id`, `username` (when it worked),
    /// `api_url`.
    pub async fn get_me(&self, token: &Secret) -> (Check, Option<Bot>) {
        let api_url = &self.config.api_url;
        let bot_id = secrets::bot_id(token).to_owned();
        let bot = match crate::telegram::client(self.config, token) {
            Ok(b) => b,
            Err(e) => return (Check::fail("telegram", self.redactor.redact(&e)), None),
        };
        let result = tokio::time::timeout(CALL_TIMEOUT, bot.get_me().send()).await;
        let failure = match result {
            Ok(Ok(me)) => {
                let check = Check::ok(
                    "telegram",
                    format!(
                        "the token works: bot @{} (id {}) at {api_url}",
                        me.username(),
                        me.id
                    ),
                )
                .details(json!({
                    "bot_id": bot_id,
                    "username": me.username(),
                    "api_url": api_url,
                }));
                return (check, Some(bot));
            }
            Ok(Err(e)) => self.failure(&e),
            Err(_) => Failure::Transient(format!("no answer within {} s", CALL_TIMEOUT.as_secs())),
        };
        let details = json!({ "bot_id": bot_id, "username": null, "api_url": api_url });
        let check = match failure {
            Failure::InvalidToken => Check::fail(
                "telegram",
                format!(
                    "Telegram rejected the token of bot id {bot_id} (401 Unauthorized): it was revoked or mistyped"
                ),
            )
            .fix(token_fix()),
            Failure::Transient(why) => Check::fail(
                "telegram",
                format!("cannot reach the Bot API at {api_url}: {why}"),
            )
            .fix(format!(
                "check DNS, firewall and proxy from this host (e.g. curl -sS -o /dev/null -w '%{{http_code}}\\n' {api_url}); telegram.api_url is set in the config file"
            )),
            other => Check::fail("telegram", format!("getMe failed: {}", describe(&other)))
                .fix(format!("check telegram.api_url ({api_url}) and the token")),
        };
        (check.details(details), None)
    }

    /// `webhook`: `getWebhookInfo`. Details: `set`, `host` (scheme and host
    /// only: webhook URLs often embed secrets), `pending_update_count`,
    /// `last_error_message`.
    pub async fn webhook(&self, bot: &Bot) -> Check {
        let info = match tokio::time::timeout(CALL_TIMEOUT, bot.get_webhook_info().send()).await {
            Ok(Ok(info)) => info,
            Ok(Err(e)) => {
                return Check::warn(
                    "webhook",
                    format!("getWebhookInfo failed: {}", describe(&self.failure(&e))),
                )
            }
            Err(_) => return Check::warn("webhook", "getWebhookInfo did not answer in time"),
        };
        let last_error = info
            .last_error_message
            .as_deref()
            .map(|m| self.redactor.redact(m));
        let Some(url) = &info.url else {
            return Check::ok(
                "webhook",
                format!(
                    "no webhook set (getUpdates can work); {} update(s) waiting",
                    info.pending_update_count
                ),
            )
            .details(json!({
                "set": false,
                "host": null,
                "pending_update_count": info.pending_update_count,
                "last_error_message": last_error,
            }));
        };
        let host = self.redactor.redact(&format!(
            "{}://{}",
            url.scheme(),
            url.host_str().unwrap_or("?")
        ));
        let api_url = &self.config.api_url;
        let service_note = if self.config.delete_webhook {
            "the service deletes it when it starts (telegram.delete_webhook = true): systemctl restart cryptosat; or delete it now"
        } else {
            "the service refuses to start while it is set (telegram.delete_webhook = false); set telegram.delete_webhook = true, or delete it now"
        };
        Check::fail(
            "webhook",
            format!(
                "a webhook is set ({host}): while it is, every getUpdates fails with 409 Conflict{}",
                last_error
                    .as_deref()
                    .map(|e| format!("; its last delivery error: {e}"))
                    .unwrap_or_default()
            ),
        )
        .fix(format!(
            "{service_note} with: curl -sS \"{api_url}/bot$(cat {PACKAGED_TOKEN_FILE})/deleteWebhook\". Then find the deployment at {host} that set it, or it will set it again"
        ))
        .details(json!({
            "set": true,
            "host": host,
            "pending_update_count": info.pending_update_count,
            "last_error_message": last_error,
        }))
    }

    /// `conflict`: whether another poller uses this token. Details: `probed`
    /// (bool), `probe_seconds`, and after a probe `conflict_after_secs`
    /// (null when none) and `local_suspects` (PIDs); without a probe
    /// `service_conflicts` and `status_text` when the running service reported.
    pub async fn conflict(&self, token: &Secret, local: &Local<'_>, probe_seconds: u64) -> Check {
        if let Some(holder) = &local.lock.holder {
            let who = match holder.pid {
                Some(pid) => format!("PID {pid} ({})", holder.cmdline),
                None => "an instance".to_owned(),
            };
            let service = local
                .unit
                .filter(|u| u.is_running() && (holder.pid.is_none() || u.main_pid == holder.pid));
            if let Some(unit) = service {
                let details = json!({
                    "probed": false,
                    "probe_seconds": probe_seconds,
                    "service_conflicts": unit.conflict_count().unwrap_or(0),
                    "status_text": unit.status_text,
                });
                return match unit.conflict() {
                    Some(status) => Check::fail(
                        "conflict",
                        format!(
                            "not probing ({} {who} polls this token; a probe would knock its poll off). The service itself reports: {status}",
                            unit.name
                        ),
                    )
                    .fix(CONFLICT_FIX)
                    .details(details),
                    None => Check::ok(
                        "conflict",
                        format!(
                            "not probing ({} {who} polls this token; a probe would knock its poll off); the service reports no conflict",
                            unit.name
                        ),
                    )
                    .details(details),
                };
            }
            return Check::skip(
                "conflict",
                format!(
                    "not probing: the running instance {who} holds this host's lock and polls this token, and a probe would knock its poll off. A conflict shows in its own output as \"Telegram answered 409\" and in its STATUS; to probe, stop it first{}",
                    holder
                        .pid
                        .map(|p| format!(" ({})", holder.supervisor.stop_hint(p)))
                        .unwrap_or_default()
                ),
            )
            .details(json!({ "probed": false, "probe_seconds": probe_seconds }));
        }
        if let Some(unit) = local.unit.filter(|u| u.is_running()) {
            return Check::warn(
                "conflict",
                format!(
                    "not probing: {} is running (PID {}) but does not hold {}: doctor reads another config than the service",
                    unit.name,
                    unit.main_pid.unwrap_or(0),
                    local.lock.path.display()
                ),
            )
            .fix("run doctor with the service's config: cryptosat doctor --config <the path in: systemctl cat cryptosat>")
            .details(json!({ "probed": false, "probe_seconds": probe_seconds }));
        }
        if probe_seconds == 0 {
            return Check::skip("conflict", "not probing: --probe-seconds 0")
                .details(json!({ "probed": false, "probe_seconds": 0 }));
        }
        self.probe(token, local.suspects, probe_seconds).await
    }

    /// Long-polls `getUpdates` without an offset (confirming nothing) for
    /// `seconds`. Telegram answers the *older* of two waiting long polls with
    /// 409, so the probe sees one as soon as another poller starts its next
    /// poll. A poller that waits longer than the probe between polls (a
    /// CryptoSat elsewhere backs off 5–60 s once it saw a 409) can be missed.
    async fn probe(&self, token: &Secret, suspects: &[Suspect], seconds: u64) -> Check {
        let probe_config = TelegramConfig {
            // The client's timeout (poll timeout + margin) must cover the probe.
            poll_timeout_secs: seconds,
            ..self.config.clone()
        };
        let bot = match crate::telegram::client(&probe_config, token) {
            Ok(b) => b,
            Err(e) => return Check::warn("conflict", self.redactor.redact(&e)),
        };
        let local_pids: Vec<i32> = suspects.iter().map(|s| s.pid).collect();
        let start = Instant::now();
        let deadline = start + Duration::from_secs(seconds);
        let mut first_pending: Option<u32> = None;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining < Duration::from_millis(500) {
                break;
            }
            let wait = remaining.as_secs_f64().round().max(1.0) as u32;
            let sent = Instant::now();
            let result = bot.get_updates().timeout(wait).limit(1).send().await;
            match result {
                Ok(updates) => match updates.first().map(|u| u.id.0) {
                    None => {
                        // An early empty answer: do not spin.
                        if sent.elapsed() < Duration::from_millis(200) {
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                    }
                    Some(id) => {
                        // Pending updates come back at once, so the probe
                        // cannot wait; but if they disappear, someone else
                        // confirmed them: another poller.
                        if first_pending.is_some_and(|first| id > first) {
                            return self.conflict_found(
                                "pending updates were taken and confirmed by someone else during the probe".into(),
                                start.elapsed(),
                                seconds,
                                &local_pids,
                            );
                        }
                        first_pending.get_or_insert(id);
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                },
                Err(e) => match self.failure(&e) {
                    Failure::Conflict {
                        webhook: false,
                        description,
                    } => {
                        return self.conflict_found(
                            format!("Telegram answered 409 \"{description}\""),
                            start.elapsed(),
                            seconds,
                            &local_pids,
                        )
                    }
                    Failure::Conflict {
                        webhook: true,
                        description,
                    } => {
                        return Check::fail(
                            "conflict",
                            format!("getUpdates answered 409 \"{description}\": a webhook is active (see the webhook check)"),
                        )
                        .fix("delete the webhook as the webhook check says")
                        .details(json!({ "probed": true, "probe_seconds": seconds, "conflict_after_secs": start.elapsed().as_secs(), "local_suspects": local_pids }))
                    }
                    Failure::RetryAfter(d) => {
                        tokio::time::sleep(d.min(remaining)).await;
                    }
                    Failure::InvalidToken => {
                        return Check::fail("conflict", "the token was rejected during the probe")
                            .fix(token_fix())
                    }
                    other => {
                        return Check::warn(
                            "conflict",
                            format!(
                                "the probe was cut short after {} s: {}",
                                start.elapsed().as_secs(),
                                describe(&other)
                            ),
                        )
                        .fix("run doctor again; if it persists, check the network to the Bot API")
                        .details(json!({ "probed": true, "probe_seconds": seconds, "conflict_after_secs": null, "local_suspects": local_pids }))
                    }
                },
            }
        }
        let mut notes = vec![format!(
            "a poller that retries less often than every {seconds} s can be missed: to be sure, run doctor again with --probe-seconds 70"
        )];
        if first_pending.is_some() {
            notes
                .push("updates were pending throughout the probe and nobody else took them".into());
        }
        Check::ok(
            "conflict",
            format!("no other poller answered during a {seconds} s getUpdates probe"),
        )
        .notes(notes)
        .details(json!({
            "probed": true,
            "probe_seconds": seconds,
            "conflict_after_secs": null,
            "local_suspects": local_pids,
        }))
    }

    fn conflict_found(
        &self,
        evidence: String,
        after: Duration,
        seconds: u64,
        local_pids: &[i32],
    ) -> Check {
        let local = if local_pids.is_empty() {
            "No suspect process was found on this host, so it runs elsewhere".to_owned()
        } else {
            let pids: Vec<String> = local_pids.iter().map(|p| format!("PID {p}")).collect();
            format!(
                "Suspects on this host (see the processes check): {}",
                pids.join(", ")
            )
        };
        Check::fail(
            "conflict",
            format!(
                "another poller is using this bot token: {evidence} {} s into the probe, while no instance holds this host's lock. {local}",
                after.as_secs()
            ),
        )
        .fix(CONFLICT_FIX)
        .details(json!({
            "probed": true,
            "probe_seconds": seconds,
            "conflict_after_secs": after.as_secs(),
            "local_suspects": local_pids,
        }))
    }
}
