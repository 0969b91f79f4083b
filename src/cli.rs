//! The command line.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::{Config, DEFAULT_PATH};
use crate::exit;
use crate::secrets::{self, Secrets};

/// CryptoSat: Telegram bot for crypto market alerts (liquidations, funding, whales).
///
/// Exit codes: 0 ok, 1 fatal error, 2 usage, 69 Telegram conflict (on_conflict =
/// "exit"), 74 database error, 75 another instance holds the lock, 78 bad
/// configuration or secret.
#[derive(Debug, Parser)]
#[command(name = "cryptosat", version, about, long_about = None)]
pub struct Cli {
    /// Configuration file.
    #[arg(long, short = 'c', global = true, env = "CRYPTOSAT_CONFIG", default_value = DEFAULT_PATH)]
    pub config: PathBuf,

    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the service (what the systemd unit's ExecStart runs).
    Run,
    /// Validate the configuration file and the secrets, then exit (0 ok, 78 not).
    CheckConfig {
        /// Check only the configuration file, not the secrets (used by the unit's
        /// ExecReload=: a reload cannot change secrets, and on systemd 252 the
        /// reload command cannot read the service's credentials).
        #[arg(long)]
        no_secrets: bool,
    },
    /// Diagnose: config, secrets, lock holder, other local pollers, systemd,
    /// Telegram (token, webhook, 409 conflict probe), CoinGlass key and plan.
    /// Exit 0 when no check failed (warnings allowed), 1 otherwise.
    Doctor {
        /// Print the report as JSON (schema version 1, see the README).
        #[arg(long)]
        json: bool,
        /// Length of the Telegram conflict probe in seconds (0 = no probe). It
        /// runs only when no local instance polls this token.
        #[arg(long, value_name = "N", default_value_t = 15,
              value_parser = clap::value_parser!(u64).range(0..=300))]
        probe_seconds: u64,
    },
}

impl Cli {
    /// Runs the chosen command; returns the exit code.
    pub fn execute(self) -> u8 {
        match self.command {
            Command::Run => crate::service::lifecycle::run(&self.config),
            Command::CheckConfig { no_secrets } => check_config(&self.config, !no_secrets),
            Command::Doctor {
                json,
                probe_seconds,
            } => crate::doctor::run(
                &self.config,
                &crate::doctor::Options {
                    json,
                    probe_seconds,
                },
            ),
        }
    }
}

fn check_config(path: &std::path::Path, with_secrets: bool) -> u8 {
    let mut ok = true;
    match Config::load(path) {
        Ok(c) => println!(
            "ok   config {}: telegram.api_url = {}, coinglass.base_url = {}, storage.path = {}",
            path.display(),
            c.telegram.api_url,
            c.coinglass.base_url,
            c.storage.path.display()
        ),
        Err(e) => {
            println!("FAIL {e}");
            ok = false;
        }
    }
    match with_secrets.then(Secrets::load) {
        None => {}
        Some(Ok(s)) => {
            println!(
                "ok   Telegram bot token present (bot id {})",
                secrets::bot_id(&s.telegram_token)
            );
            match s.coinglass_api_key {
                Some(_) => println!("ok   CoinGlass API key present"),
                None => println!(
                    "warn no CoinGlass API key: market data is disabled (put it into {} or $CRYPTOSAT_COINGLASS_API_KEY)",
                    secrets::PACKAGED_API_KEY_FILE
                ),
            }
        }
        Some(Err(e)) => {
            println!("FAIL {e}");
            ok = false;
        }
    }
    if ok {
        exit::OK
    } else {
        exit::CONFIG
    }
}
