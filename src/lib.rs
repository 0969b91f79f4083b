//! CryptoSat: a systemd-native Telegram bot that answers with and alerts on
//! crypto futures market data (liquidations, funding rates, whale positions).
//!
//! The modules follow the service's concerns:
//! - [`cli`]: the command line (`run`, `check-config`);
//! - [`config`] and [`secrets`]: the configuration file and the credentials;
//! - [`service`]: lifecycle, single-instance lock, systemd notify/watchdog,
//!   signals, logging;
//! - [`telegram`]: the Bot API poller and command handlers;
//! - [`store`]: SQLite persistence.

pub mod cli;
pub mod config;
pub mod exit;
pub mod secrets;
pub mod service;
pub mod store;
pub mod telegram;
pub mod timefmt;
