//! The systemd notify protocol (`sd_notify`). Only `service::lifecycle` uses it.
//!
//! Always the plain `sd_notify::notify()`: the `_and_unset_env` variants remove
//! `NOTIFY_SOCKET` from the environment, after which every later STATUS,
//! WATCHDOG and STOPPING would be silently dropped. Without `NOTIFY_SOCKET`
//! (not started by systemd) every call is a silent no-op.

use std::time::Duration;

use sd_notify::NotifyState;

/// Sends notify messages to the service manager.
#[derive(Debug, Clone, Default)]
pub struct Notifier {
    watchdog: Option<Duration>,
}

impl Notifier {
    /// Reads `WATCHDOG_USEC`/`WATCHDOG_PID` once (they do not change).
    pub fn from_env() -> Self {
        Self {
            watchdog: sd_notify::watchdog_enabled(),
        }
    }

    /// The watchdog interval systemd expects pings within, if enabled.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog
    }

    /// `READY=1` with a STATUS line.
    pub fn ready(&self, status: &str) {
        self.send(&[
            NotifyState::Ready,
            NotifyState::MainPid(std::process::id()),
            NotifyState::Status(status),
        ]);
    }

    /// `STATUS=…`.
    pub fn status(&self, status: &str) {
        self.send(&[NotifyState::Status(status)]);
    }

    /// `WATCHDOG=1`.
    pub fn watchdog(&self) {
        self.send(&[NotifyState::Watchdog]);
    }

    /// `RELOADING=1` with `MONOTONIC_USEC`, as systemd ≥ 253 requires and
    /// earlier versions ignore.
    pub fn reloading(&self) {
        match NotifyState::monotonic_usec_now() {
            Ok(now) => self.send(&[
                NotifyState::Reloading,
                now,
                NotifyState::Status("reloading configuration"),
            ]),
            Err(_) => self.send(&[NotifyState::Reloading]),
        }
    }

    /// `STOPPING=1` with a STATUS line.
    pub fn stopping(&self, status: &str) {
        self.send(&[NotifyState::Stopping, NotifyState::Status(status)]);
    }

    fn send(&self, states: &[NotifyState]) {
        if let Err(e) = sd_notify::notify(states) {
            // Losing a notification is not fatal, but an operator should know.
            tracing::warn!("could not send a notification to systemd: {e}");
        }
    }
}
