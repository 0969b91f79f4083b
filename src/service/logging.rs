//! Logging: journald with structured fields when stderr is connected to the
//! journal, a human-readable stderr format otherwise. `log` records (teloxide,
//! reqwest) are bridged into tracing. The filter comes from `RUST_LOG`, else from
//! `service.log_level`, and can be changed on reload.

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Layer, Registry};

/// Changes the log filter of the running process.
pub struct LogControl {
    handle: reload::Handle<EnvFilter, Registry>,
    from_env: bool,
}

/// Which sink was chosen, for the first log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sink {
    Journald,
    Stderr,
}

/// Installs the global subscriber. `level` is the configured filter; `RUST_LOG`
/// wins over it when set.
pub fn init(level: &str) -> (LogControl, Sink) {
    let env = std::env::var("RUST_LOG")
        .ok()
        .filter(|v| !v.trim().is_empty());
    let filter = env
        .as_deref()
        .and_then(|v| make_filter(v).ok())
        .unwrap_or_else(|| make_filter(level).unwrap_or_else(|_| EnvFilter::new("info")));
    let (filter, handle) = reload::Layer::new(filter);

    let journald = if libsystemd::logging::connected_to_journal() {
        // Falls back to stderr when the journald socket is missing (e.g. a
        // container that passed JOURNAL_STREAM through without the socket).
        tracing_journald::layer().ok().map(|l| {
            l.with_syslog_identifier("cryptosat".into())
                // Fields appear as CHAT_ID, SYMBOL, … rather than F_CHAT_ID.
                .with_field_prefix(None)
        })
    } else {
        None
    };
    let sink = if journald.is_some() {
        Sink::Journald
    } else {
        Sink::Stderr
    };
    let stderr = journald.is_none().then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_target(false)
            .boxed()
    });
    let registry = tracing_subscriber::registry()
        .with(filter)
        .with(journald)
        .with(stderr);
    // `try_init` also installs the `log` → tracing bridge (tracing-log feature);
    // it only fails if a subscriber already exists (tests calling init twice).
    let _ = registry.try_init();
    (
        LogControl {
            handle,
            from_env: env.is_some(),
        },
        sink,
    )
}

impl LogControl {
    /// Applies a new configured level, unless `RUST_LOG` pins the filter.
    pub fn set_level(&self, level: &str) -> Result<(), String> {
        if self.from_env {
            return Ok(());
        }
        let filter = make_filter(level).map_err(|e| e.to_string())?;
        self.handle.reload(filter).map_err(|e| e.to_string())
    }
}

/// HTTP client crates log request URLs at debug and trace level, and every
/// Telegram URL contains the bot token. They are capped at `info` whatever the
/// configured level, so that `log_level = "trace"` cannot leak the token.
const CAPPED_TARGETS: [&str; 5] = ["reqwest", "hyper", "hyper_util", "h2", "teloxide_core"];

fn make_filter(level: &str) -> Result<EnvFilter, tracing_subscriber::filter::ParseError> {
    let mut directives = level.to_owned();
    for target in CAPPED_TARGETS {
        directives.push_str(&format!(",{target}=info"));
    }
    EnvFilter::try_new(directives)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_crates_are_capped_even_at_trace() {
        let f = make_filter("trace").unwrap().to_string();
        assert!(
            f.contains("reqwest=info") && f.contains("hyper=info"),
            "{f}"
        );
        assert!(make_filter("nonsense=[").is_err());
    }
}
