//! Secrets: the Telegram bot token and the CoinGlass API key.
//!
//! They never live in the config file. Under systemd they come from
//! `LoadCredential=` (`$CREDENTIALS_DIRECTORY/<name>`), otherwise from an
//! environment variable. [`Secret`] has no `Display` and a redacting `Debug`, and
//! [`Redactor`] scrubs them out of any text (Telegram puts the token in every URL,
//! and HTTP client errors print URLs).

use std::fmt;
use std::path::{Path, PathBuf};

/// Where the packaged unit loads the Telegram token from (`LoadCredential=`).
pub const PACKAGED_TOKEN_FILE: &str = "/etc/cryptosat/telegram-token";
/// Where the packaged unit loads the CoinGlass API key from.
pub const PACKAGED_API_KEY_FILE: &str = "/etc/cryptosat/coinglass-api-key";

/// A secret value. Deliberately not `Display`; `Debug` prints `[redacted]`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// A secret made from a literal, for tests of redaction.
    #[cfg(test)]
    pub(crate) fn new_for_tests(value: &str) -> Self {
        Secret(value.to_owned())
    }

    /// The secret itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// Why a secret could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("no {what}: looked for {searched}. {fix}")]
    Missing {
        what: &'static str,
        searched: String,
        fix: String,
    },
    #[error("{what} from {source_name} is empty. {fix}")]
    Empty {
        what: &'static str,
        source_name: String,
        fix: String,
    },
    #[error("{what} from {source_name} is malformed: {problem}. {fix}")]
    Malformed {
        what: &'static str,
        source_name: String,
        problem: &'static str,
        fix: String,
    },
    #[error("cannot read {what} from {path}: {error}")]
    Unreadable {
        what: &'static str,
        path: PathBuf,
        error: std::io::Error,
    },
}

/// A kind of secret: its credential name, environment variable and format.
struct Spec {
    what: &'static str,
    credential: &'static str,
    env: &'static str,
    packaged_file: &'static str,
    validate: fn(&str) -> Result<(), &'static str>,
}

const TELEGRAM: Spec = Spec {
    what: "Telegram bot token",
    credential: "telegram-token",
    env: "CRYPTOSAT_TELEGRAM_TOKEN",
    packaged_file: PACKAGED_TOKEN_FILE,
    validate: validate_token,
};

const COINGLASS: Spec = Spec {
    what: "CoinGlass API key",
    credential: "coinglass-api-key",
    env: "CRYPTOSAT_COINGLASS_API_KEY",
    packaged_file: PACKAGED_API_KEY_FILE,
    validate: validate_api_key,
};

/// The secrets the service runs with.
#[derive(Debug, Clone)]
pub struct Secrets {
    pub telegram_token: Secret,
    /// `None` when no key is configured: market features are then disabled.
    pub coinglass_api_key: Option<Secret>,
}

impl Secrets {
    /// Loads both secrets from the process environment.
    pub fn load() -> Result<Self, SecretError> {
        let env = Env::from_process();
        Ok(Self {
            telegram_token: env.require(&TELEGRAM)?,
            coinglass_api_key: env.optional(&COINGLASS)?,
        })
    }

    /// A redactor that scrubs every loaded secret out of text.
    pub fn redactor(&self) -> Redactor {
        let mut secrets = vec![self.telegram_token.clone()];
        secrets.extend(self.coinglass_api_key.clone());
        Redactor { secrets }
    }
}

/// The bot id: the part of a token before the colon. Safe to print.
pub fn bot_id(token: &Secret) -> &str {
    token.0.split(':').next().unwrap_or("")
}

/// The process environment as far as secrets are concerned (separate so tests
/// need not mutate the real environment).
pub(crate) struct Env {
    pub credentials_dir: Option<PathBuf>,
    pub vars: Vec<(String, String)>,
}

impl Env {
    fn from_process() -> Self {
        Self {
            credentials_dir: std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from),
            vars: [TELEGRAM.env, COINGLASS.env]
                .iter()
                .filter_map(|k| std::env::var(k).ok().map(|v| ((*k).to_owned(), v)))
                .collect(),
        }
    }

    fn var(&self, name: &str) -> Option<&str> {
        self.vars
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn require(&self, spec: &Spec) -> Result<Secret, SecretError> {
        self.optional(spec)?.ok_or_else(|| SecretError::Missing {
            what: spec.what,
            searched: self.searched(spec),
            fix: fix_hint(spec, self.credentials_dir.is_some()),
        })
    }

    /// `Ok(None)` when the secret is configured nowhere.
    fn optional(&self, spec: &Spec) -> Result<Option<Secret>, SecretError> {
        let (raw, source_name) = match self.read_credential(spec)? {
            Some((raw, path)) => (raw, path.display().to_string()),
            None => match self.var(spec.env) {
                Some(v) => (v.to_owned(), format!("${}", spec.env)),
                None => return Ok(None),
            },
        };
        let value = raw.trim();
        let fix = fix_hint(spec, self.credentials_dir.is_some());
        if value.is_empty() {
            return Err(SecretError::Empty {
                what: spec.what,
                source_name,
                fix,
            });
        }
        (spec.validate)(value).map_err(|problem| SecretError::Malformed {
            what: spec.what,
            source_name,
            problem,
            fix,
        })?;
        Ok(Some(Secret(value.to_owned())))
    }

    fn read_credential(&self, spec: &Spec) -> Result<Option<(String, PathBuf)>, SecretError> {
        let Some(dir) = &self.credentials_dir else {
            return Ok(None);
        };
        let path = dir.join(spec.credential);
        match std::fs::read_to_string(&path) {
            Ok(raw) => Ok(Some((raw, path))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(SecretError::Unreadable {
                what: spec.what,
                path,
                error,
            }),
        }
    }

    fn searched(&self, spec: &Spec) -> String {
        match &self.credentials_dir {
            Some(dir) => format!(
                "credential {} and ${}",
                Path::new(dir).join(spec.credential).display(),
                spec.env
            ),
            None => format!(
                "$CREDENTIALS_DIRECTORY/{} (not set: not started by systemd) and ${}",
                spec.credential, spec.env
            ),
        }
    }
}

fn fix_hint(spec: &Spec, under_systemd: bool) -> String {
    if under_systemd {
        format!(
            "Put it into {} (one line, mode 0600, owner root), then run: systemctl restart cryptosat",
            spec.packaged_file
        )
    } else {
        format!(
            "Set {} in the environment, or run the packaged service (systemctl start cryptosat) with the secret in {}",
            spec.env, spec.packaged_file
        )
    }
}

/// Telegram tokens look like `123456789:AA…` (bot id, colon, 30+ url-safe chars).
fn validate_token(token: &str) -> Result<(), &'static str> {
    let (id, rest) = token
        .split_once(':')
        .ok_or("expected <bot id>:<secret> as given by @BotFather")?;
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        return Err("the part before ':' must be the numeric bot id");
    }
    if rest.len() < 30 {
        return Err("the part after ':' is too short");
    }
    if !rest
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err("the part after ':' may only contain letters, digits, '_' and '-'");
    }
    Ok(())
}

fn validate_api_key(key: &str) -> Result<(), &'static str> {
    if key.len() < 8 {
        return Err("too short");
    }
    if !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("contains spaces or control characters");
    }
    Ok(())
}

/// Scrubs secrets out of text before it is logged, shown in STATUS or sent.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    secrets: Vec<Secret>,
}

impl Redactor {
    /// A redactor for the given secrets.
    pub fn new(secrets: Vec<Secret>) -> Self {
        Self { secrets }
    }

    /// `text` with every secret replaced by `[REDACTED]`. A bot token's
    /// secret half (after the colon) is scrubbed on its own too: it can
    /// appear without the bot id, e.g. percent-encoded or echoed in pieces.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for s in &self.secrets {
            let half =
                s.0.split_once(':')
                    .map(|(_, h)| h)
                    .filter(|h| h.len() >= 16);
            for pattern in std::iter::once(s.0.as_str()).chain(half) {
                if !pattern.is_empty() && out.contains(pattern) {
                    out = out.replace(pattern, "[REDACTED]");
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw";

    fn env(dir: Option<&Path>, vars: &[(&str, &str)]) -> Env {
        Env {
            credentials_dir: dir.map(Path::to_owned),
            vars: vars
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    #[test]
    fn credential_file_wins_over_env() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("telegram-token"), format!("{TOKEN}\n")).unwrap();
        let e = env(Some(dir.path()), &[("CRYPTOSAT_TELEGRAM_TOKEN", "1:short")]);
        assert_eq!(e.require(&TELEGRAM).unwrap().expose(), TOKEN);
    }

    #[test]
    fn env_is_used_without_credentials() {
        let e = env(None, &[("CRYPTOSAT_TELEGRAM_TOKEN", TOKEN)]);
        assert_eq!(e.require(&TELEGRAM).unwrap().expose(), TOKEN);
    }

    #[test]
    fn missing_token_names_every_place_looked() {
        let err = env(None, &[]).require(&TELEGRAM).unwrap_err().to_string();
        assert!(
            err.contains("CREDENTIALS_DIRECTORY/telegram-token"),
            "{err}"
        );
        assert!(err.contains("CRYPTOSAT_TELEGRAM_TOKEN"), "{err}");
    }

    #[test]
    fn empty_credential_says_which_file_to_edit() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("telegram-token"), "\n").unwrap();
        let err = env(Some(dir.path()), &[])
            .require(&TELEGRAM)
            .unwrap_err()
            .to_string();
        assert!(err.contains("is empty"), "{err}");
        assert!(err.contains("/etc/cryptosat/telegram-token"), "{err}");
        assert!(err.contains("systemctl restart cryptosat"), "{err}");
    }

    #[test]
    fn malformed_token_is_rejected_without_echoing_it() {
        let bad = "123:this has spaces and is long enough to pass";
        let err = env(None, &[("CRYPTOSAT_TELEGRAM_TOKEN", bad)])
            .require(&TELEGRAM)
            .unwrap_err()
            .to_string();
        assert!(err.contains("malformed"), "{err}");
        assert!(!err.contains("this has spaces"), "{err}");
        for bad in [
            "nocolon",
            "abc:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw",
            "1:short",
        ] {
            assert!(validate_token(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn api_key_is_optional() {
        assert!(env(None, &[]).optional(&COINGLASS).unwrap().is_none());
    }

    #[test]
    fn debug_and_redactor_hide_secrets() {
        let s = Secret(TOKEN.into());
        assert!(!format!("{s:?}").contains("AAHdq"));
        let r = Redactor::new(vec![s]);
        let line = format!("error sending request for url (http://x/bot{TOKEN}/GetMe)");
        let red = r.redact(&line);
        assert!(
            !red.contains(TOKEN) && red.contains("bot[REDACTED]/GetMe"),
            "{red}"
        );
        let half = r.redact("Too Many AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw Requests");
        assert_eq!(half, "Too Many [REDACTED] Requests");
    }
}
