//! The Telegram side: the Bot API client, the update poller with conflict
//! handling and the inbox, the dispatcher (access control, rate limits,
//! concurrency), the command handlers, and the paced sender.

pub mod access;
pub mod callback;
pub mod commands;
pub mod dispatch;
pub mod errors;
pub mod format;
pub mod handlers;
pub mod pacer;
pub mod poller;
pub mod sender;

use std::time::Duration;

use teloxide::Bot;

use crate::config::TelegramConfig;
use crate::secrets::Secret;

/// Builds the Bot API client for `config.api_url`. The URL was validated when
/// the configuration was loaded.
pub fn client(config: &TelegramConfig, token: &Secret) -> Result<Bot, String> {
    let url = reqwest::Url::parse(&config.api_url)
        .map_err(|e| format!("telegram.api_url {:?}: {e}", config.api_url))?;
    // teloxide does not extend the client timeout for long polls (the code
    // that would is commented out in teloxide-core 0.13), so the client's own
    // timeout must cover the longest `getUpdates`.
    let http = teloxide::net::default_reqwest_settings()
        .timeout(request_timeout(config))
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {}", e.without_url()))?;
    Ok(Bot::with_client(token.expose(), http).set_api_url(url))
}

/// Time a Bot API request may take before the client gives up: the long-poll
/// timeout plus a margin for the network.
pub fn request_timeout(config: &TelegramConfig) -> Duration {
    Duration::from_secs(config.poll_timeout_secs) + Duration::from_secs(10)
}

/// How long one Bot API call may take as seen by the watchdog: the client
/// timeout plus the 10 s teloxide sleeps after every 5xx answer before
/// returning the error.
pub fn request_budget(config: &TelegramConfig) -> Duration {
    request_timeout(config) + Duration::from_secs(10)
}
