//! CryptoSat: a systemd-native Telegram bot that answers with and alerts on
//! crypto futures market data (liquidations, funding rates, whale positions).
//!
//! The modules follow the service's concerns:
//! - [`cli`]: the command line (`run`, `check-config`, `doctor`);
//! - [`config`] and [`secrets`]: the configuration file and the credentials;
//! - [`service`]: lifecycle, single-instance lock, systemd notify/watchdog,
//!   signals, logging, health;
//! - [`telegram`]: the Bot API poller and inbox, dispatcher, command handlers,
//!   pacer and sender;
//! - [`market`]: the CoinGlass v4 client (rate limit, retries, plan state, cache);
//! - [`monitor`]: the liquidation, whale and funding monitors;
//! - [`alerts`]: alert kinds and the delivery task;
//! - [`store`]: SQLite persistence (offset and inbox, subscriptions, outbox);
//! - [`doctor`]: `cryptosat doctor`, the diagnosis of config, secrets, lock,
//!   local pollers, systemd, Telegram (409 conflicts) and CoinGlass.

pub mod alerts;
pub mod cli;
pub mod config;
pub mod doctor;
pub mod exit;
pub mod market;
pub mod monitor;
pub mod secrets;
pub mod service;
pub mod store;
pub mod telegram;
pub mod timefmt;
