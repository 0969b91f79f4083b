//! The delivery task: sends due outbox rows one at a time through the paced
//! sender and records each outcome right after Telegram answers.
//!
//! One message in flight at a time is deliberate: a crash or `kill -9` can
//! then duplicate at most that one message. The shared pacer keeps the pace at
//! `telegram.messages_per_second`; replies to commands share it, so they wait
//! behind at most one alert, never behind a whole fan-out.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::service::watchdog::Heartbeat;
use crate::store::Store;
use crate::telegram::sender::{Reply, SendError, Sender};

/// How many due rows are read per round.
const BATCH: usize = 200;
/// Longest wait between looks at the outbox when nobody wakes the task.
const IDLE: Duration = Duration::from_secs(5);

/// Everything the delivery task needs.
pub struct Delivery {
    pub store: Arc<Store>,
    pub sender: Sender,
    pub heartbeat: Heartbeat,
    pub shutdown: CancellationToken,
    /// Monitors notify this after queueing an alert.
    pub wake: Arc<Notify>,
    pub max_attempts: u32,
    /// How long one send may take (pacer wait included) before it counts as hung.
    pub send_budget: Duration,
}

/// Delay before retry number `attempt` (1-based): 5 s, 10 s, 20 s … capped at 10 min.
pub fn retry_delay(attempt: u32) -> i64 {
    (5i64 << attempt.saturating_sub(1).min(7)).min(600)
}

impl Delivery {
    /// Runs until shutdown.
    pub async fn run(self) {
        loop {
            self.heartbeat.expect_within(IDLE + self.send_budget);
            self.heartbeat.hang_point().await;
            let due = match self.store.due_deliveries(BATCH) {
                Ok(d) => d,
                Err(e) => {
                    tracing::error!("cannot read the alert outbox: {e}");
                    Vec::new()
                }
            };
            if due.is_empty() {
                let idle = self
                    .store
                    .next_delivery_in()
                    .ok()
                    .flatten()
                    .map_or(IDLE, |s| {
                        Duration::from_secs(s as u64).clamp(Duration::from_millis(200), IDLE)
                    });
                tokio::select! {
                    _ = self.shutdown.cancelled() => return,
                    _ = self.wake.notified() => {}
                    _ = tokio::time::sleep(idle) => {}
                }
                continue;
            }
            let mut sent_any = false;
            let mut earliest_ready: Option<std::time::Instant> = None;
            for d in due {
                if self.shutdown.is_cancelled() {
                    return;
                }
                // A chat that just got a message waits its gap; the others
                // go ahead meanwhile and it is picked up again next round.
                if let Some(at) = self.sender.pacer().chat_ready_at(d.chat_id) {
                    earliest_ready = Some(earliest_ready.map_or(at, |e| e.min(at)));
                    continue;
                }
                sent_any = true;
                self.heartbeat.expect_within(self.send_budget);
                let outcome = self
                    .sender
                    .send(d.chat_id, &Reply::text(d.text.clone()))
                    .await;
                let recorded = match outcome {
                    Ok(to) => self.store.delivery_sent(d.alert_id, d.chat_id, to),
                    Err(SendError::ChatGone(e)) => self
                        .store
                        .delivery_failed(d.alert_id, d.chat_id, &e, None, "skipped"),
                    Err(SendError::Rejected(e)) => {
                        tracing::warn!(
                            chat_id = d.chat_id,
                            alert_id = d.alert_id,
                            "alert rejected by Telegram: {e}"
                        );
                        self.store
                            .delivery_failed(d.alert_id, d.chat_id, &e, None, "failed")
                    }
                    Err(SendError::Transient(e)) => {
                        let attempt = d.attempts + 1;
                        if attempt >= self.max_attempts {
                            tracing::warn!(
                                chat_id = d.chat_id,
                                alert_id = d.alert_id,
                                attempts = attempt,
                                "giving up on an alert delivery: {e}"
                            );
                            self.store
                                .delivery_failed(d.alert_id, d.chat_id, &e, None, "failed")
                        } else {
                            tracing::info!(
                                chat_id = d.chat_id,
                                alert_id = d.alert_id,
                                attempt,
                                "alert delivery will be retried: {e}"
                            );
                            self.store.delivery_failed(
                                d.alert_id,
                                d.chat_id,
                                &e,
                                Some(retry_delay(attempt)),
                                "failed",
                            )
                        }
                    }
                };
                if let Err(e) = recorded {
                    // The message may have gone out; the row stays pending and
                    // is sent again after the database recovers (a duplicate,
                    // never a loss).
                    tracing::error!(
                        chat_id = d.chat_id,
                        alert_id = d.alert_id,
                        "cannot record an alert delivery: {e}"
                    );
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
            if !sent_any {
                if let Some(at) = earliest_ready {
                    tokio::select! {
                        _ = self.shutdown.cancelled() => return,
                        _ = tokio::time::sleep_until(at.into()) => {}
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delays_grow_and_cap() {
        assert_eq!(retry_delay(1), 5);
        assert_eq!(retry_delay(2), 10);
        assert_eq!(retry_delay(4), 40);
        assert_eq!(retry_delay(30), 600);
    }
}
