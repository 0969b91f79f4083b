//! Shared health state: what each part of the service reports about itself, and
//! the one-line STATUS an operator sees in `systemctl status`.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime};

use crate::timefmt;

/// The state of an upstream API as seen by its client.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Upstream {
    /// Not contacted yet.
    #[default]
    Unknown,
    /// The last request succeeded.
    Ok,
    /// Failing since `since`; `reason` is already free of secrets.
    Down { since: SystemTime, reason: String },
}

/// A Telegram 409 conflict in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    pub since: SystemTime,
    pub description: String,
}

#[derive(Debug, Default)]
struct State {
    telegram: Upstream,
    bot_username: Option<String>,
    conflict: Option<Conflict>,
    conflicts_total: u64,
    updates_handled: u64,
    subscribers: u64,
    monitors_running: usize,
    /// Why monitors are not running (e.g. the CoinGlass plan lacks their data).
    monitor_notes: Vec<String>,
    fatal: Option<String>,
}

/// Cloneable handle to the shared health state.
#[derive(Debug, Clone)]
pub struct Health {
    state: Arc<Mutex<State>>,
    started: Instant,
}

impl Default for Health {
    fn default() -> Self {
        Self::new()
    }
}

impl Health {
    /// Fresh state; uptime counts from now.
    pub fn new() -> Self {
        Self {
            state: Arc::default(),
            started: Instant::now(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every update is a plain field store: a poisoned lock is still consistent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Time since start.
    pub fn uptime(&self) -> std::time::Duration {
        self.started.elapsed()
    }

    /// Telegram answered; clears an outage (a conflict ends separately, see
    /// [`Health::conflict_over`]).
    pub fn telegram_ok(&self) {
        self.lock().telegram = Upstream::Ok;
    }

    /// The conflict has ended.
    pub fn conflict_over(&self) {
        self.lock().conflict = None;
    }

    /// Telegram failed with `reason` (must be redacted already).
    pub fn telegram_down(&self, reason: String) {
        let mut s = self.lock();
        match &mut s.telegram {
            Upstream::Down { reason: r, .. } => *r = reason,
            other => {
                *other = Upstream::Down {
                    since: SystemTime::now(),
                    reason,
                }
            }
        }
    }

    /// Records a 409 conflict; returns the running total.
    pub fn telegram_conflict(&self, description: String) -> u64 {
        let mut s = self.lock();
        s.conflicts_total += 1;
        if s.conflict.is_none() {
            s.conflict = Some(Conflict {
                since: SystemTime::now(),
                description,
            });
        }
        s.conflicts_total
    }

    /// The conflict in progress, if any.
    pub fn conflict(&self) -> Option<Conflict> {
        self.lock().conflict.clone()
    }

    /// Total 409 conflicts since start.
    pub fn conflicts_total(&self) -> u64 {
        self.lock().conflicts_total
    }

    /// Records the bot's username from `getMe`.
    pub fn set_bot_username(&self, username: String) {
        self.lock().bot_username = Some(username);
    }

    /// Counts one handled update.
    pub fn update_handled(&self) {
        self.lock().updates_handled += 1;
    }

    /// Sets the number of chats with at least one subscription.
    pub fn set_subscribers(&self, n: u64) {
        self.lock().subscribers = n;
    }

    /// Sets the number of market monitors running.
    pub fn set_monitors_running(&self, n: usize) {
        self.lock().monitors_running = n;
    }

    /// Notes on monitors that are not running, shown at the end of STATUS.
    pub fn set_monitor_notes(&self, notes: Vec<String>) {
        self.lock().monitor_notes = notes;
    }

    /// The Telegram upstream state.
    pub fn telegram(&self) -> Upstream {
        self.lock().telegram.clone()
    }

    /// A part of the service failed for good; STATUS says so until exit.
    pub fn set_fatal(&self, reason: String) {
        self.lock().fatal = Some(reason);
    }

    /// The STATUS line for systemd: the most important fact first.
    pub fn status_line(&self) -> String {
        let s = self.lock();
        if let Some(f) = &s.fatal {
            return format!("failed: {f}");
        }
        if let Some(c) = &s.conflict {
            return format!(
                "CONFLICT: another poller uses this bot token elsewhere (since {}, {} conflicts): {}; backing off. Run: cryptosat doctor",
                timefmt::utc(c.since),
                s.conflicts_total,
                c.description
            );
        }
        let bot = s
            .bot_username
            .as_ref()
            .map(|u| format!(" as @{u}"))
            .unwrap_or_default();
        let mut tail = format!(
            "{} monitors running, {} subscribers, {} updates handled",
            s.monitors_running, s.subscribers, s.updates_handled
        );
        for note in &s.monitor_notes {
            tail.push_str("; ");
            tail.push_str(note);
        }
        match &s.telegram {
            Upstream::Down { since, reason } => format!(
                "degraded: Telegram unreachable since {} ({reason}); {tail}",
                timefmt::utc(*since)
            ),
            Upstream::Unknown => format!("starting: connecting to Telegram; {tail}"),
            Upstream::Ok => format!("polling Telegram{bot}, {tail}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_reflects_the_worst_condition() {
        let h = Health::new();
        assert!(h.status_line().starts_with("starting"));
        h.telegram_ok();
        h.set_bot_username("cryptosat_bot".into());
        h.set_subscribers(120);
        h.set_monitors_running(3);
        assert_eq!(
            h.status_line(),
            "polling Telegram as @cryptosat_bot, 3 monitors running, 120 subscribers, 0 updates handled"
        );
        h.telegram_down("connection refused".into());
        assert!(h
            .status_line()
            .starts_with("degraded: Telegram unreachable since "));
        assert_eq!(
            h.telegram_conflict("terminated by other getUpdates request".into()),
            1
        );
        assert!(
            h.status_line().starts_with("CONFLICT: "),
            "{}",
            h.status_line()
        );
        h.telegram_ok();
        assert!(
            h.status_line().starts_with("CONFLICT: "),
            "one good poll does not end a conflict"
        );
        h.conflict_over();
        assert!(h.status_line().starts_with("polling"));
        assert_eq!(h.conflicts_total(), 1);
    }
}
