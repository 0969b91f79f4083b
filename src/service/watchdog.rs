//! Liveness of the essential tasks, which gates the systemd watchdog.
//!
//! Each essential task (update polling, each monitor, the alert sender) holds a
//! [`Heartbeat`] and promises, before every wait, when it will beat next
//! ([`Heartbeat::expect_within`]). The lifecycle pings `WATCHDOG=1` only while no
//! task has broken its promise. A task that deadlocks or dies stops the pings and
//! systemd restarts the service; a task that waits for an upstream that is down
//! keeps beating (its waits are bounded by timeouts), because an outage is not a
//! hang.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Added to every promise: scheduling delays must not look like hangs.
const SLACK: Duration = Duration::from_secs(5);

#[derive(Debug)]
struct Entry {
    name: String,
    last_beat: Instant,
    deadline: Instant,
    alive: bool,
}

/// The registry of essential tasks.
#[derive(Debug, Clone, Default)]
pub struct Liveness {
    entries: Arc<Mutex<Vec<Entry>>>,
}

/// A task that has stopped making progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stall {
    pub task: String,
    /// Time since its last beat.
    pub silent_for: Duration,
    /// `false` when the task has ended (its heartbeat was dropped).
    pub alive: bool,
}

impl Liveness {
    fn lock(&self) -> MutexGuard<'_, Vec<Entry>> {
        // A panic while holding this lock cannot leave the entries inconsistent
        // (every update is a single field store), so poisoning is ignored.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers an essential task that will beat at least every `first_within`.
    pub fn register(&self, name: &str, first_within: Duration) -> Heartbeat {
        let now = Instant::now();
        let mut entries = self.lock();
        entries.push(Entry {
            name: name.to_owned(),
            last_beat: now,
            deadline: now + first_within + SLACK,
            alive: true,
        });
        Heartbeat {
            liveness: self.clone(),
            index: entries.len() - 1,
            #[cfg(debug_assertions)]
            name: name.to_owned(),
        }
    }

    /// The tasks that broke their promise (or ended) as of `now`.
    pub fn stalled(&self, now: Instant) -> Vec<Stall> {
        self.lock()
            .iter()
            .filter(|e| !e.alive || now > e.deadline)
            .map(|e| Stall {
                task: e.name.clone(),
                silent_for: now.saturating_duration_since(e.last_beat),
                alive: e.alive,
            })
            .collect()
    }

    /// Names of the registered tasks.
    pub fn tasks(&self) -> Vec<String> {
        self.lock().iter().map(|e| e.name.clone()).collect()
    }
}

/// A task's handle for reporting progress. Dropping it marks the task ended.
#[derive(Debug)]
pub struct Heartbeat {
    liveness: Liveness,
    index: usize,
    #[cfg(debug_assertions)]
    name: String,
}

impl Heartbeat {
    /// Reports progress and promises the next beat within `within`.
    pub fn expect_within(&self, within: Duration) {
        let now = Instant::now();
        if let Some(e) = self.liveness.lock().get_mut(self.index) {
            e.last_beat = now;
            e.deadline = now + within + SLACK;
        }
    }

    /// Test hook (debug builds only): when the file named by
    /// `CRYPTOSAT_TEST_HANG_FILE` contains this task's name, the task hangs here
    /// for good, as a deadlocked task would. Release builds compile this away.
    pub async fn hang_point(&self) {
        #[cfg(debug_assertions)]
        if let Some(path) = std::env::var_os("CRYPTOSAT_TEST_HANG_FILE") {
            if std::fs::read_to_string(path).is_ok_and(|t| t.trim() == self.name) {
                tracing::warn!(task = %self.name, "test hook: hanging this task on purpose");
                std::future::pending::<()>().await;
            }
        }
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        if let Some(e) = self.liveness.lock().get_mut(self.index) {
            e.alive = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_that_keeps_its_promise_is_live() {
        let l = Liveness::default();
        let hb = l.register("poller", Duration::from_secs(1));
        let now = Instant::now();
        assert!(l.stalled(now).is_empty());
        hb.expect_within(Duration::from_secs(30));
        assert!(l.stalled(now + Duration::from_secs(34)).is_empty());
        let stalls = l.stalled(now + Duration::from_secs(36));
        assert_eq!(stalls.len(), 1);
        assert_eq!(stalls[0].task, "poller");
        assert!(stalls[0].alive);
    }

    #[test]
    fn an_ended_task_is_reported_at_once() {
        let l = Liveness::default();
        let keep = l.register("sender", Duration::from_secs(60));
        drop(l.register("monitor:funding", Duration::from_secs(60)));
        let stalls = l.stalled(Instant::now());
        assert_eq!(stalls.len(), 1);
        assert_eq!(stalls[0].task, "monitor:funding");
        assert!(!stalls[0].alive);
        drop(keep);
    }
}
