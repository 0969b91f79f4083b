//! The whole life of `cryptosat run`: start-up order, READY, the watchdog tick,
//! signals, reload and graceful shutdown. The only module that talks to systemd.
//!
//! Start-up order matters: the configuration first (nothing else is known
//! without it), then the single-instance lock (before anything talks to
//! Telegram, and before secrets, so that a second copy started by hand is told
//! about the running one rather than about its own missing token), then secrets,
//! storage, the tasks, and only then `READY=1`.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::health::Health;
use super::lock::{InstanceLock, LockError};
use super::logging::{self, LogControl};
use super::notify::Notifier;
use super::signals::{Request, Signals};
use super::watchdog::Liveness;
use crate::alerts::delivery::Delivery;
use crate::config::{Config, TelegramConfig};
use crate::exit;
use crate::market::CoinGlass;
use crate::monitor::funding::Funding;
use crate::monitor::liquidations::Liquidations;
use crate::monitor::whales::Whales;
use crate::monitor::{Monitors, Runner, Shared};
use crate::secrets::Secrets;
use crate::store::Store;
use crate::telegram::access::{AccessControl, UserRateLimit};
use crate::telegram::dispatch::{Context, Dispatcher};
use crate::telegram::pacer::Pacer;
use crate::telegram::poller::{Poller, PollerError};
use crate::telegram::sender::Sender;
use tokio::sync::Notify;
use tokio::task::JoinSet;

/// How often STATUS is refreshed when systemd's watchdog is off.
const STATUS_REFRESH: Duration = Duration::from_secs(5);
/// How often old alert records are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Runs the service until it is stopped; returns the process exit code.
pub fn run(config_path: &Path) -> u8 {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("cryptosat")
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cryptosat: cannot start the async runtime: {e}");
            return exit::FATAL;
        }
    };
    let code = runtime.block_on(run_async(config_path));
    // Do not wait for blocking work that outlived the shutdown budget.
    runtime.shutdown_timeout(Duration::from_secs(1));
    code
}

async fn run_async(config_path: &Path) -> u8 {
    let (log, sink) = logging::init("info");
    let config = match Config::load(config_path) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("{e}");
            return exit::CONFIG;
        }
    };
    if let Err(e) = log.set_level(&config.service.log_level) {
        tracing::warn!("service.log_level: {e}");
    }
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        config = %config_path.display(),
        log_sink = ?sink,
        "cryptosat starting"
    );

    let lock = match InstanceLock::acquire(&config.service.lock_file) {
        Ok(l) => l,
        Err(e @ LockError::Held { .. }) => {
            tracing::error!("{e}");
            return exit::LOCKED;
        }
        Err(e) => {
            tracing::error!("{e}");
            return exit::CONFIG;
        }
    };
    tracing::debug!(lock_file = %lock.path().display(), "single-instance lock taken");

    let secrets = match Secrets::load() {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("{e}");
            return exit::CONFIG;
        }
    };
    let redactor = secrets.redactor();
    if secrets.coinglass_api_key.is_none() {
        tracing::warn!(
            "no CoinGlass API key (credential coinglass-api-key or $CRYPTOSAT_COINGLASS_API_KEY): market data is disabled"
        );
    }

    let store = match Store::open(&config.storage.path) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            tracing::error!("{e}");
            return exit::STORAGE;
        }
    };

    let mut signals = match Signals::install() {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("cannot install signal handlers: {e}");
            return exit::FATAL;
        }
    };
    let bot = match crate::telegram::client(&config.telegram, &secrets.telegram_token) {
        Ok(b) => b,
        Err(e) => {
            tracing::error!("{}", redactor.redact(&e));
            return exit::CONFIG;
        }
    };

    let market = match secrets.coinglass_api_key.clone() {
        Some(key) => match CoinGlass::new(&config.coinglass, Some(key)) {
            Ok(m) => Some(Arc::new(m)),
            Err(e) => {
                tracing::error!("{}", redactor.redact(&e.to_string()));
                return exit::CONFIG;
            }
        },
        None => None,
    };

    let notifier = Notifier::from_env();
    let health = Health::new();
    let liveness = Liveness::default();
    let shutdown = CancellationToken::new();

    let monitors = Monitors::default();
    let sender = Sender::new(
        bot.clone(),
        Arc::new(Pacer::new(config.telegram.messages_per_second)),
        store.clone(),
        redactor.clone(),
    );
    let context = Arc::new(Context {
        monitors: monitors.clone(),
        sender: sender.clone(),
        store: store.clone(),
        market: market.clone(),
        health: health.clone(),
        access: AccessControl::new(&config.telegram),
        limiter: UserRateLimit::new(config.telegram.commands_per_minute),
        handler_timeout: Duration::from_secs(config.telegram.handler_timeout_secs),
        started: Instant::now(),
    });
    let dispatcher = Dispatcher::new(context.clone());
    refresh_counts(&store, &health);

    let poller = Poller {
        dispatcher: dispatcher.clone(),
        bot,
        config: config.telegram.clone(),
        store: store.clone(),
        health: health.clone(),
        redactor: redactor.clone(),
        heartbeat: liveness.register("telegram-poller", Duration::from_secs(30)),
        shutdown: shutdown.clone(),
    };
    let mut poller_task: JoinHandle<Result<(), PollerError>> = tokio::spawn(poller.run());

    // The other essential tasks: alert delivery and the market monitors. They
    // only end on shutdown; one that ends otherwise has crashed, which the
    // watchdog reports (its heartbeat is dropped) and systemd then restarts us.
    let mut tasks = JoinSet::new();
    let wake = Arc::new(Notify::new());
    let send_budget = crate::telegram::request_budget(&config.telegram) * 3;
    tasks.spawn(
        Delivery {
            store: store.clone(),
            sender,
            heartbeat: liveness.register("alert-sender", send_budget),
            shutdown: shutdown.clone(),
            wake: wake.clone(),
            max_attempts: config.alerts.max_attempts,
            send_budget,
        }
        .run(),
    );
    match &market {
        Some(market) => spawn_monitors(
            &mut tasks, &config, market, &store, &wake, &monitors, &liveness, &shutdown,
        ),
        None => tracing::warn!("market monitors are not running: no CoinGlass API key"),
    }
    health.set_monitors_running(monitors.running());

    let mut last_status = health.status_line();
    notifier.ready(&last_status);
    tracing::info!(
        tasks = ?liveness.tasks(),
        watchdog = ?notifier.watchdog_interval(),
        "ready"
    );

    let tick_every = notifier
        .watchdog_interval()
        .map(|w| w / 2)
        .unwrap_or(STATUS_REFRESH);
    let mut tick = tokio::time::interval(tick_every);
    let mut stalled_reported = false;
    let mut last_prune = Instant::now() - PRUNE_EVERY;
    let mut poller_done = false;

    let mut code = loop {
        tokio::select! {
            request = signals.next() => match request {
                Request::Shutdown(signal) => {
                    tracing::info!(signal, "shutdown requested");
                    break exit::OK;
                }
                Request::Reload => {
                    notifier.reloading();
                    reload(config_path, &config, &log, &context);
                    last_status = health.status_line();
                    notifier.ready(&last_status);
                }
            },
            _ = tick.tick() => {
                let stalls = liveness.stalled(Instant::now());
                if stalls.is_empty() {
                    if stalled_reported {
                        tracing::info!("all essential tasks make progress again");
                        stalled_reported = false;
                    }
                    if notifier.watchdog_interval().is_some() {
                        notifier.watchdog();
                    }
                    refresh_counts(&store, &health);
                    health.set_monitors_running(monitors.running());
                    health.set_monitor_notes(monitors.notes());
                    if last_prune.elapsed() >= PRUNE_EVERY {
                        last_prune = Instant::now();
                        match store.prune(config.alerts.retention_days) {
                            Ok(n) => tracing::debug!(rows = n, "pruned old alert records"),
                            Err(e) => tracing::warn!("pruning old alert records failed: {e}"),
                        }
                    }
                    let status = health.status_line();
                    if status != last_status {
                        notifier.status(&status);
                        last_status = status;
                    }
                } else if !stalled_reported {
                    // No WATCHDOG=1 from now on: systemd will restart us.
                    let list: Vec<String> = stalls
                        .iter()
                        .map(|s| format!("{} ({} for {} s)", s.task, if s.alive { "no progress" } else { "ended" }, s.silent_for.as_secs()))
                        .collect();
                    let status = format!("watchdog: essential task stalled: {}", list.join(", "));
                    tracing::error!("{status}; withholding watchdog pings so that systemd restarts the service");
                    notifier.status(&status);
                    last_status = status;
                    stalled_reported = true;
                }
            },
            result = &mut poller_task, if !poller_done => {
                poller_done = true;
                let code = match result {
                    Ok(Ok(())) => {
                        tracing::error!("the Telegram poller stopped unexpectedly");
                        exit::FATAL
                    }
                    Ok(Err(e)) => {
                        tracing::error!("{e}");
                        health.set_fatal(e.to_string());
                        match e {
                            PollerError::InvalidToken | PollerError::WebhookSet(_) => exit::CONFIG,
                            PollerError::Conflict(..) => exit::TELEGRAM_CONFLICT,
                            PollerError::Storage(_) => exit::STORAGE,
                        }
                    }
                    Err(join) => {
                        tracing::error!("the Telegram poller crashed: {join}");
                        exit::FATAL
                    }
                };
                break code;
            }
        }
    };

    notifier.stopping("stopping: finishing in-flight work");
    shutdown.cancel();
    let budget = config.shutdown_timeout();
    let drain = async {
        if !poller_done {
            match (&mut poller_task).await {
                Ok(Err(e)) => {
                    tracing::error!("{e}");
                    code = exit::FATAL;
                }
                Err(join) => tracing::error!("the Telegram poller crashed while stopping: {join}"),
                Ok(Ok(())) => {}
            }
        }
    };
    let drain = async {
        drain.await;
        while tasks.join_next().await.is_some() {}
        if !dispatcher.drain(budget).await {
            tracing::warn!(
                in_flight = dispatcher.in_flight(),
                "handlers still running at the end of the shutdown budget; their updates stay in the inbox and are handled after the next start"
            );
        }
    };
    tokio::select! {
        _ = drain => {}
        _ = tokio::time::sleep(budget) => {
            tracing::warn!(seconds = budget.as_secs(), "graceful shutdown budget exceeded; exiting anyway");
        }
        request = signals.next() => {
            if let Request::Shutdown(signal) = request {
                tracing::warn!(signal, "second signal: exiting at once");
                return exit::FATAL;
            }
        }
    }
    match Arc::try_unwrap(store) {
        Ok(store) => {
            if let Err(e) = store.close() {
                tracing::warn!("closing the database: {e}");
            }
        }
        Err(_) => tracing::warn!("database still in use at exit; SQLite's WAL keeps it consistent"),
    }
    drop(lock);
    tracing::info!(exit_code = code, "stopped");
    code
}

/// Starts the enabled monitors as essential tasks.
#[allow(clippy::too_many_arguments)]
fn spawn_monitors(
    tasks: &mut JoinSet<()>,
    config: &Config,
    market: &Arc<CoinGlass>,
    store: &Arc<Store>,
    wake: &Arc<Notify>,
    monitors: &Monitors,
    liveness: &Liveness,
    shutdown: &CancellationToken,
) {
    let m = &config.monitors;
    let shared = Shared {
        market: market.clone(),
        store: store.clone(),
        config: Arc::new(m.clone()),
        alert_chats: Arc::new(config.telegram.alert_chat_ids.clone()),
        wake: wake.clone(),
    };
    // The longest one CoinGlass request can take: three attempts with their
    // timeouts and backoff, plus waiting for the rate limiter.
    let per_request = Duration::from_secs(3 * config.coinglass.request_timeout_secs + 40);
    let runner = |name: &'static str, interval: u64, requests: usize| {
        let interval = Duration::from_secs(interval);
        let poll_budget = per_request * requests.max(1) as u32;
        Runner {
            name,
            interval,
            shared: shared.clone(),
            monitors: monitors.clone(),
            heartbeat: liveness.register(&format!("monitor:{name}"), poll_budget),
            shutdown: shutdown.clone(),
            poll_budget,
        }
    };
    if m.liquidations.enabled {
        let r = runner(
            "liquidations",
            m.liquidations.interval_secs,
            m.liquidations.max_symbols * m.liquidations.exchanges.len(),
        );
        tasks.spawn(r.run(Liquidations {
            config: m.liquidations.clone(),
            since_ms: None,
        }));
    }
    if m.whales.enabled {
        let r = runner("whales", m.whales.interval_secs, 1);
        tasks.spawn(r.run(Whales {
            config: m.whales.clone(),
        }));
    }
    if m.funding.enabled {
        let r = runner("funding", m.funding.interval_secs, 20);
        tasks.spawn(r.run(Funding {
            config: m.funding.clone(),
        }));
    }
}

/// Updates the subscriber count shown in STATUS.
fn refresh_counts(store: &Store, health: &Health) {
    match store.subscriber_counts() {
        Ok(c) => health.set_subscribers(c.chats),
        Err(e) => tracing::warn!("cannot count subscribers: {e}"),
    }
}

/// Re-reads the configuration on SIGHUP and applies what can change without a
/// restart. A broken file is reported and the running configuration kept.
fn reload(path: &Path, running: &Config, log: &LogControl, context: &Context) {
    let new = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("configuration NOT reloaded, keeping the running one: {e}");
            return;
        }
    };
    if let Err(e) = log.set_level(&new.service.log_level) {
        tracing::error!("service.log_level not applied: {e}");
    }
    context.access.reload(&new.telegram);
    context
        .limiter
        .set_per_minute(new.telegram.commands_per_minute);
    // Everything in [telegram] except the access lists and the command rate is
    // fixed for the life of the process.
    let live_telegram = TelegramConfig {
        access: running.telegram.access,
        allowed_users: running.telegram.allowed_users.clone(),
        admins: running.telegram.admins.clone(),
        commands_per_minute: running.telegram.commands_per_minute,
        ..new.telegram.clone()
    };
    let needs_restart: Vec<&str> = [
        ("telegram", running.telegram != live_telegram),
        ("coinglass", running.coinglass != new.coinglass),
        ("storage", running.storage != new.storage),
        (
            "service.lock_file",
            running.service.lock_file != new.service.lock_file,
        ),
    ]
    .into_iter()
    .filter_map(|(k, changed)| changed.then_some(k))
    .collect();
    if !needs_restart.is_empty() {
        tracing::warn!(
            "changes to {} take effect only after: systemctl restart cryptosat",
            needs_restart.join(", ")
        );
    }
    tracing::info!(log_level = %new.service.log_level, "configuration reloaded");
}
