//! Market monitors: independent tasks that poll CoinGlass on their own
//! interval, turn upstream events into alerts (deduplicated and cooled down in
//! the store), and report their health to `/status` and the watchdog.

pub mod funding;
pub mod liquidations;
pub mod whales;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::config::MonitorsConfig;
use crate::market::{CoinGlass, MarketError};
use crate::service::watchdog::Heartbeat;
use crate::store::{NewAlert, Recorded, Store, StoreError};

/// The health of one monitor.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MonitorState {
    pub last_success: Option<SystemTime>,
    pub next_poll: Option<SystemTime>,
    pub last_error: Option<String>,
    /// Set while the CoinGlass plan does not include the monitor's data.
    pub disabled: Option<String>,
    pub alerts_queued: u64,
}

/// Shared monitor health, by monitor name.
#[derive(Debug, Clone, Default)]
pub struct Monitors {
    states: Arc<Mutex<BTreeMap<&'static str, MonitorState>>>,
}

impl Monitors {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<&'static str, MonitorState>> {
        self.states.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A snapshot of every monitor's state.
    pub fn snapshot(&self) -> Vec<(&'static str, MonitorState)> {
        self.lock().iter().map(|(k, v)| (*k, v.clone())).collect()
    }

    /// Monitors that are running and not disabled by the plan.
    pub fn running(&self) -> usize {
        self.lock()
            .values()
            .filter(|s| s.disabled.is_none())
            .count()
    }

    /// One line per disabled monitor, e.g. for STATUS.
    pub fn notes(&self) -> Vec<String> {
        self.lock()
            .iter()
            .filter_map(|(name, s)| {
                s.disabled
                    .as_ref()
                    .map(|why| format!("{name} monitor disabled: {why}"))
            })
            .collect()
    }

    fn update(&self, name: &'static str, f: impl FnOnce(&mut MonitorState)) {
        f(self.lock().entry(name).or_default());
    }
}

/// Why one poll failed.
#[derive(Debug, thiserror::Error)]
pub enum PollError {
    #[error("{0}")]
    Market(#[from] MarketError),
    #[error("database: {0}")]
    Store(#[from] StoreError),
}

/// What a monitor needs besides its own configuration.
#[derive(Clone)]
pub struct Shared {
    pub market: Arc<CoinGlass>,
    pub store: Arc<Store>,
    pub config: Arc<MonitorsConfig>,
    /// Chats that get every alert (`telegram.alert_chat_ids`).
    pub alert_chats: Arc<Vec<i64>>,
    /// Wakes the delivery task.
    pub wake: Arc<Notify>,
}

impl Shared {
    /// Records an alert; returns whether it was queued.
    pub fn emit(&self, alert: NewAlert) -> Result<bool, StoreError> {
        let outcome = self.store.record_alert(&alert, &self.alert_chats)?;
        match outcome {
            Recorded::Queued {
                alert_id,
                recipients,
            } => {
                tracing::info!(
                    kind = alert.kind.as_str(),
                    symbol = %alert.symbol,
                    alert_id,
                    recipients,
                    "alert queued"
                );
                self.wake.notify_one();
                Ok(true)
            }
            Recorded::CoolingDown => {
                tracing::debug!(kind = alert.kind.as_str(), symbol = %alert.symbol, "alert suppressed by cooldown");
                Ok(false)
            }
            Recorded::Duplicate => Ok(false),
        }
    }

    /// The symbols to watch for `kind`: the configured ones first, then those
    /// with subscribers, at most `max`.
    pub fn watched(
        &self,
        configured: &[String],
        kind: crate::alerts::AlertKind,
        max: usize,
    ) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let subscribed = self.store.subscribed_symbols(kind).unwrap_or_else(|e| {
            tracing::warn!("cannot read subscribed symbols: {e}");
            Vec::new()
        });
        for s in configured
            .iter()
            .map(|s| s.to_ascii_uppercase())
            .chain(subscribed)
        {
            if !out.contains(&s) {
                out.push(s);
            }
        }
        out.truncate(max);
        out
    }
}

/// One poll of a monitor: returns the number of alerts queued.
pub trait Poll: Send + 'static {
    fn poll(
        &mut self,
        shared: &Shared,
    ) -> impl std::future::Future<Output = Result<u64, PollError>> + Send;
}

/// A monitor task: its name, schedule and plumbing.
pub struct Runner {
    pub name: &'static str,
    pub interval: Duration,
    pub shared: Shared,
    pub monitors: Monitors,
    pub heartbeat: Heartbeat,
    pub shutdown: CancellationToken,
    /// Longest one poll may take (requests, retries, rate-limit waits).
    pub poll_budget: Duration,
}

impl Runner {
    /// Polls until shutdown: poll, record health, sleep, repeat.
    pub async fn run<P: Poll>(self, mut poller: P) {
        let Runner {
            name,
            interval,
            shared,
            monitors,
            heartbeat,
            shutdown,
            poll_budget,
        } = self;
        monitors.update(name, |_| {});
        loop {
            heartbeat.expect_within(poll_budget);
            heartbeat.hang_point().await;
            let result = tokio::select! {
                _ = shutdown.cancelled() => return,
                r = poller.poll(&shared) => r,
            };
            let now = SystemTime::now();
            match result {
                Ok(n) => monitors.update(name, |s| {
                    if s.disabled.take().is_some() {
                        tracing::info!(monitor = name, "monitor enabled again: the CoinGlass plan now includes its data");
                    }
                    s.last_success = Some(now);
                    s.last_error = None;
                    s.alerts_queued += n;
                }),
                Err(PollError::Market(MarketError::PlanRestricted { feature, message })) => {
                    monitors.update(name, |s| {
                        if s.disabled.is_none() {
                            tracing::warn!(
                                monitor = name,
                                "monitor disabled: the CoinGlass plan does not include {feature} ({message}); the other monitors go on"
                            );
                        }
                        s.disabled = Some(format!("CoinGlass plan does not include {feature}: {message}"));
                    })
                }
                Err(e) => {
                    tracing::warn!(monitor = name, "poll failed: {e}");
                    monitors.update(name, |s| s.last_error = Some(e.to_string()));
                }
            }
            monitors.update(name, |s| s.next_poll = Some(now + interval));
            heartbeat.expect_within(interval + poll_budget);
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(interval) => {}
            }
        }
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
