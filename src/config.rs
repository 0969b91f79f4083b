//! The configuration file (`/etc/cryptosat/cryptosat.toml` by default).
//!
//! Every key has a default, so an empty file is a valid configuration. Unknown keys
//! are rejected with their name and line: a typo must not silently fall back to a
//! default. Secrets are deliberately *not* configurable here; see [`crate::secrets`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Where the configuration is read from when neither `--config` nor
/// `CRYPTOSAT_CONFIG` says otherwise.
pub const DEFAULT_PATH: &str = "/etc/cryptosat/cryptosat.toml";

/// Why a configuration could not be loaded. The messages are meant for an
/// operator: they name the file and say what to change.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source} (create it, or point --config / CRYPTOSAT_CONFIG at the right file)")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid config file {path}: {key}: {problem}")]
    Invalid {
        path: PathBuf,
        key: &'static str,
        problem: String,
    },
}

/// The whole configuration.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub service: ServiceConfig,
    pub telegram: TelegramConfig,
    pub coinglass: CoinGlassConfig,
    pub storage: StorageConfig,
}

/// `[service]`: process lifecycle.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ServiceConfig {
    /// The single-instance lock file. Never deleted; see `service::lock`.
    pub lock_file: PathBuf,
    /// Log filter (`error`, `warn`, `info`, `debug`, `trace`, or a tracing
    /// directive list). `RUST_LOG` overrides it. Reloadable with SIGHUP.
    pub log_level: String,
    /// How long a graceful shutdown may take before the process gives up on
    /// in-flight work and exits. Keep it below the unit's `TimeoutStopSec=`.
    pub shutdown_timeout_secs: u64,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        Self {
            lock_file: PathBuf::from("/run/cryptosat/cryptosat.lock"),
            log_level: "info".into(),
            shutdown_timeout_secs: 20,
        }
    }
}

/// What to do when Telegram says another poller uses this bot token.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum OnConflict {
    /// Back off and keep trying, reporting `CONFLICT` in STATUS.
    Wait,
    /// Exit with [`crate::exit::TELEGRAM_CONFLICT`] once the conflict has lasted
    /// `conflict_exit_after_secs`.
    Exit,
}

/// `[telegram]`: the Bot API.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TelegramConfig {
    /// Base URL of the Bot API server (tests point it at a fake).
    pub api_url: String,
    /// Long-poll timeout of `getUpdates`, in seconds.
    pub poll_timeout_secs: u64,
    /// Delete a webhook found at startup (it would make every `getUpdates` fail
    /// with 409). With `false` the service refuses to start instead.
    pub delete_webhook: bool,
    /// Policy when another poller uses the same token.
    pub on_conflict: OnConflict,
    /// With `on_conflict = "exit"`: how long a conflict may last before exiting.
    pub conflict_exit_after_secs: u64,
}

impl Default for TelegramConfig {
    fn default() -> Self {
        Self {
            api_url: "https://api.telegram.org".into(),
            poll_timeout_secs: 25,
            delete_webhook: true,
            on_conflict: OnConflict::Wait,
            conflict_exit_after_secs: 300,
        }
    }
}

/// `[coinglass]`: the market-data API.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CoinGlassConfig {
    /// Base URL of the CoinGlass v4 API.
    pub base_url: String,
}

impl Default for CoinGlassConfig {
    fn default() -> Self {
        Self {
            base_url: "https://open-api-v4.coinglass.com".into(),
        }
    }
}

/// `[storage]`: the SQLite database.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Path of the SQLite database file.
    pub path: PathBuf,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            path: PathBuf::from("/var/lib/cryptosat/cryptosat.db"),
        }
    }
}

impl Config {
    /// Reads and validates the configuration file at `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses and validates configuration text; `path` is only used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: describe_toml_error(text, &e),
        })?;
        config.validate(path)?;
        Ok(config)
    }

    fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |key, problem: &str| ConfigError::Invalid {
            path: path.to_owned(),
            key,
            problem: problem.to_owned(),
        };
        check_url(&self.telegram.api_url).map_err(|p| invalid("telegram.api_url", &p))?;
        check_url(&self.coinglass.base_url).map_err(|p| invalid("coinglass.base_url", &p))?;
        if !(1..=50).contains(&self.telegram.poll_timeout_secs) {
            return Err(invalid(
                "telegram.poll_timeout_secs",
                "must be between 1 and 50 seconds",
            ));
        }
        if self.telegram.conflict_exit_after_secs == 0 {
            return Err(invalid(
                "telegram.conflict_exit_after_secs",
                "must be at least 1 second",
            ));
        }
        if !(1..=600).contains(&self.service.shutdown_timeout_secs) {
            return Err(invalid(
                "service.shutdown_timeout_secs",
                "must be between 1 and 600 seconds",
            ));
        }
        if !self.service.lock_file.is_absolute() {
            return Err(invalid("service.lock_file", "must be an absolute path"));
        }
        if self.storage.path.as_os_str().is_empty() {
            return Err(invalid("storage.path", "must not be empty"));
        }
        tracing_subscriber::EnvFilter::try_new(&self.service.log_level).map_err(|e| {
            invalid(
                "service.log_level",
                &format!("{e} (use error, warn, info, debug or trace)"),
            )
        })?;
        Ok(())
    }

    /// The graceful-shutdown budget.
    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_secs(self.service.shutdown_timeout_secs)
    }
}

fn check_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| format!("{url:?} must start with https:// or http://"))?;
    if rest.is_empty() || rest.starts_with('/') {
        return Err(format!("{url:?} has no host"));
    }
    reqwest::Url::parse(url).map_err(|e| format!("{url:?} is not a valid URL: {e}"))?;
    Ok(())
}

/// Turns toml's multi-line error into one line an operator can act on:
/// `line 3: unknown field `pol_timeout_secs`, expected one of …`.
fn describe_toml_error(text: &str, err: &toml::de::Error) -> String {
    let message = err.message().trim().to_owned();
    match err.span() {
        Some(span) => {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            format!("line {line}: {message}")
        }
        None => message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("/etc/cryptosat/cryptosat.toml"))
    }

    #[test]
    fn empty_file_gives_documented_defaults() {
        let c = parse("").unwrap();
        assert_eq!(c.telegram.api_url, "https://api.telegram.org");
        assert_eq!(c.coinglass.base_url, "https://open-api-v4.coinglass.com");
        assert_eq!(c.storage.path, Path::new("/var/lib/cryptosat/cryptosat.db"));
        assert_eq!(
            c.service.lock_file,
            Path::new("/run/cryptosat/cryptosat.lock")
        );
        assert_eq!(c.telegram.on_conflict, OnConflict::Wait);
    }

    #[test]
    fn unknown_key_is_named_with_its_line() {
        let err = parse("[telegram]\napi_url = \"http://127.0.0.1:1\"\npol_timeout_secs = 3\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 3"), "{err}");
        assert!(err.contains("pol_timeout_secs"), "{err}");
        assert!(err.contains("/etc/cryptosat/cryptosat.toml"), "{err}");
    }

    #[test]
    fn unknown_section_is_rejected() {
        let err = parse("\n[telegarm]\n").unwrap_err().to_string();
        assert!(err.contains("line 2") && err.contains("telegarm"), "{err}");
    }

    #[test]
    fn bad_values_name_the_key() {
        let err = parse("[telegram]\npoll_timeout_secs = 0\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("telegram.poll_timeout_secs"), "{err}");
        let err = parse("[coinglass]\nbase_url = \"ftp://x\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("coinglass.base_url"), "{err}");
        let err = parse("[service]\nlock_file = \"relative.lock\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("service.lock_file"), "{err}");
        let err = parse("[service]\nlog_level = \"loud=[\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("service.log_level"), "{err}");
        let err = parse("[telegram]\non_conflict = \"fight\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 2") && err.contains("fight"), "{err}");
    }

    #[test]
    fn wrong_type_is_reported_with_line() {
        let err = parse("[telegram]\n\npoll_timeout_secs = \"ten\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 3"), "{err}");
    }

    #[test]
    fn shipped_example_config_is_valid() {
        let text = include_str!("../packaging/cryptosat.toml");
        let c = parse(text).unwrap();
        assert_eq!(
            c,
            Config::default(),
            "the shipped file documents the defaults"
        );
    }
}
