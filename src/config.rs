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
    pub monitors: MonitorsConfig,
    pub alerts: AlertsConfig,
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

/// Who may use the bot.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    /// Everyone.
    Open,
    /// Only `allowed_users` and `admins`.
    Allowlist,
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
    /// `open` or `allowlist`.
    pub access: Access,
    /// Telegram user ids allowed in `allowlist` mode.
    pub allowed_users: Vec<i64>,
    /// Telegram user ids that see admin details in `/status` (always allowed).
    pub admins: Vec<i64>,
    /// Commands one user may send per minute; more get one "slow down" reply.
    pub commands_per_minute: u32,
    /// How long one command may take before the user is told to try again.
    pub handler_timeout_secs: u64,
    /// Overall message rate towards Telegram (its bulk limit is about 30/s).
    pub messages_per_second: u32,
    /// Chats (e.g. a channel) that receive every alert, subscribed or not.
    pub alert_chat_ids: Vec<i64>,
}

impl Default for TelegramConfig {
    fn default() -> Self {
        Self {
            api_url: "https://api.telegram.org".into(),
            poll_timeout_secs: 25,
            delete_webhook: true,
            on_conflict: OnConflict::Wait,
            conflict_exit_after_secs: 300,
            access: Access::Open,
            allowed_users: Vec::new(),
            admins: Vec::new(),
            commands_per_minute: 20,
            handler_timeout_secs: 20,
            messages_per_second: 30,
            alert_chat_ids: Vec::new(),
        }
    }
}

/// `[coinglass]`: the market-data API.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CoinGlassConfig {
    /// Base URL of the CoinGlass v4 API.
    pub base_url: String,
    /// Request budget of the API plan (Hobbyist 30, Startup 80, Standard 300,
    /// Professional 1200). Corrected at run time from `API-KEY-MAX-LIMIT`.
    pub requests_per_minute: u32,
    /// How long command answers are served from cache, in seconds.
    pub cache_secs: u64,
    /// Timeout of one request, in seconds.
    pub request_timeout_secs: u64,
}

impl Default for CoinGlassConfig {
    fn default() -> Self {
        Self {
            base_url: "https://open-api-v4.coinglass.com".into(),
            requests_per_minute: 30,
            cache_secs: 30,
            request_timeout_secs: 10,
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

/// `[monitors]`: the background market monitors and their thresholds.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MonitorsConfig {
    pub liquidations: LiquidationMonitorConfig,
    pub whales: WhaleMonitorConfig,
    pub funding: FundingMonitorConfig,
    /// Thresholds by symbol group (`[[monitors.groups]]`); the first group that
    /// lists a symbol applies. Setting any group replaces all the defaults.
    pub groups: Vec<SymbolGroup>,
    /// Thresholds for symbols in no group.
    pub others: Thresholds,
}

/// Alert thresholds and cooldown of a symbol group.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SymbolGroup {
    pub name: String,
    pub symbols: Vec<String>,
    #[serde(flatten)]
    pub thresholds: Thresholds,
}

/// Minimum sizes that trigger an alert, and the quiet time after one.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Thresholds {
    /// A single liquidation order at or above this many USD.
    pub liquidation_usd: f64,
    /// A whale position at or above this many USD.
    pub whale_usd: f64,
    /// After an alert, the same (kind, symbol, direction) stays quiet this long.
    pub cooldown_secs: u64,
}

impl Default for MonitorsConfig {
    fn default() -> Self {
        let group = |name: &str, symbols: &[&str], liq: f64, whale: f64, cooldown| SymbolGroup {
            name: name.into(),
            symbols: symbols.iter().map(|s| (*s).to_owned()).collect(),
            thresholds: Thresholds {
                liquidation_usd: liq,
                whale_usd: whale,
                cooldown_secs: cooldown,
            },
        };
        Self {
            liquidations: LiquidationMonitorConfig::default(),
            whales: WhaleMonitorConfig::default(),
            funding: FundingMonitorConfig::default(),
            groups: vec![
                group(
                    "majors",
                    &["BTC", "ETH", "SOL"],
                    500_000.0,
                    1_000_000.0,
                    300,
                ),
                group(
                    "large caps",
                    &["BNB", "XRP", "ADA", "DOGE", "AVAX", "DOT"],
                    200_000.0,
                    500_000.0,
                    450,
                ),
            ],
            others: Thresholds {
                liquidation_usd: 100_000.0,
                whale_usd: 200_000.0,
                cooldown_secs: 600,
            },
        }
    }
}

impl MonitorsConfig {
    /// The thresholds that apply to `symbol`.
    pub fn thresholds(&self, symbol: &str) -> Thresholds {
        self.groups
            .iter()
            .find(|g| g.symbols.iter().any(|s| s.eq_ignore_ascii_case(symbol)))
            .map_or(self.others, |g| g.thresholds)
    }
}

/// `[monitors.liquidations]`: large single liquidation orders.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LiquidationMonitorConfig {
    pub enabled: bool,
    pub interval_secs: u64,
    /// Exchanges to query (one request per exchange and symbol per interval).
    pub exchanges: Vec<String>,
    /// Symbols always watched; symbols with subscribers are watched too.
    pub symbols: Vec<String>,
    /// At most this many symbols are watched (protects the request budget).
    pub max_symbols: usize,
}

impl Default for LiquidationMonitorConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval_secs: 60,
            exchanges: vec!["Binance".into(), "OKX".into(), "Bybit".into()],
            symbols: vec!["BTC".into(), "ETH".into(), "SOL".into()],
            max_symbols: 10,
        }
    }
}

/// `[monitors.whales]`: new large Hyperliquid positions.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct WhaleMonitorConfig {
    pub enabled: bool,
    pub interval_secs: u64,
    /// Positions older than this when first seen are not alerted (the list is
    /// a rolling window: after a restart it still holds old positions).
    pub max_age_secs: u64,
}

impl Default for WhaleMonitorConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval_secs: 60,
            max_age_secs: 900,
        }
    }
}

/// `[monitors.funding]`: funding rates entering an extreme zone.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct FundingMonitorConfig {
    pub enabled: bool,
    pub interval_secs: u64,
    /// Symbols always watched; symbols with subscribers are watched too.
    pub symbols: Vec<String>,
    /// The zone: |average funding rate| at or above this, in percent per
    /// funding interval (0.1 means 0.1 %, ten times the usual 0.01 %).
    pub extreme_pct: f64,
}

impl Default for FundingMonitorConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval_secs: 300,
            symbols: vec!["BTC".into(), "ETH".into(), "SOL".into()],
            extreme_pct: 0.1,
        }
    }
}

/// `[alerts]`: delivery of alerts to chats.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsConfig {
    /// Give up on one delivery after this many failed attempts (kept, marked failed).
    pub max_attempts: u32,
    /// Delivered alerts, seen-event keys and cooldowns are pruned after this many days.
    pub retention_days: u64,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        Self {
            max_attempts: 8,
            retention_days: 7,
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
        if self.telegram.access == Access::Allowlist
            && self.telegram.allowed_users.is_empty()
            && self.telegram.admins.is_empty()
        {
            return Err(invalid(
                "telegram.allowed_users",
                "access = \"allowlist\" with no allowed_users and no admins would lock everyone out",
            ));
        }
        if !(1..=600).contains(&self.telegram.commands_per_minute) {
            return Err(invalid(
                "telegram.commands_per_minute",
                "must be between 1 and 600",
            ));
        }
        if !(1..=300).contains(&self.telegram.handler_timeout_secs) {
            return Err(invalid(
                "telegram.handler_timeout_secs",
                "must be between 1 and 300 seconds",
            ));
        }
        if !(1..=1000).contains(&self.telegram.messages_per_second) {
            return Err(invalid(
                "telegram.messages_per_second",
                "must be between 1 and 1000",
            ));
        }
        let m = &self.monitors;
        for (key, secs) in [
            (
                "monitors.liquidations.interval_secs",
                m.liquidations.interval_secs,
            ),
            ("monitors.whales.interval_secs", m.whales.interval_secs),
            ("monitors.funding.interval_secs", m.funding.interval_secs),
        ] {
            if !(5..=86_400).contains(&secs) {
                return Err(invalid(key, "must be between 5 and 86400 seconds"));
            }
        }
        if m.liquidations.enabled && m.liquidations.exchanges.is_empty() {
            return Err(invalid(
                "monitors.liquidations.exchanges",
                "must list at least one exchange",
            ));
        }
        if !(m.funding.extreme_pct > 0.0 && m.funding.extreme_pct < 100.0) {
            return Err(invalid(
                "monitors.funding.extreme_pct",
                "must be above 0 and below 100 (percent)",
            ));
        }
        for g in m.groups.iter().map(|g| &g.thresholds).chain([&m.others]) {
            if !(g.liquidation_usd > 0.0 && g.whale_usd > 0.0) {
                return Err(invalid(
                    "monitors.groups",
                    "thresholds must be positive USD amounts",
                ));
            }
        }
        if self.alerts.max_attempts == 0 {
            return Err(invalid("alerts.max_attempts", "must be at least 1"));
        }
        if self.alerts.retention_days == 0 {
            return Err(invalid("alerts.retention_days", "must be at least 1"));
        }
        if !(1..=6000).contains(&self.coinglass.requests_per_minute) {
            return Err(invalid(
                "coinglass.requests_per_minute",
                "must be between 1 and 6000",
            ));
        }
        if !(1..=120).contains(&self.coinglass.request_timeout_secs) {
            return Err(invalid(
                "coinglass.request_timeout_secs",
                "must be between 1 and 120 seconds",
            ));
        }
        if self.coinglass.cache_secs > 3600 {
            return Err(invalid(
                "coinglass.cache_secs",
                "must be at most 3600 seconds",
            ));
        }
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
    fn symbol_groups_pick_thresholds() {
        let c = parse("").unwrap();
        assert_eq!(c.monitors.thresholds("btc").liquidation_usd, 500_000.0);
        assert_eq!(c.monitors.thresholds("DOGE").whale_usd, 500_000.0);
        assert_eq!(c.monitors.thresholds("PEPE").cooldown_secs, 600);
        let c = parse("[[monitors.groups]]\nname = \"mine\"\nsymbols = [\"PEPE\"]\nliquidation_usd = 1.0\nwhale_usd = 2.0\ncooldown_secs = 3\n").unwrap();
        assert_eq!(c.monitors.thresholds("PEPE").whale_usd, 2.0);
        assert_eq!(
            c.monitors.thresholds("BTC").whale_usd,
            200_000.0,
            "defaults replaced"
        );
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
