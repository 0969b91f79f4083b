//! Config and secrets checks.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde_json::json;

use super::Check;
use crate::config::Config;
use crate::secrets::{self, SecretError, Secrets, PACKAGED_API_KEY_FILE, PACKAGED_TOKEN_FILE};

const TOKEN_ENV: &str = "CRYPTOSAT_TELEGRAM_TOKEN";
const CREDENTIALS_ENV: &str = "CREDENTIALS_DIRECTORY";

/// An operator running `sudo cryptosat doctor` has neither the service's
/// `$CREDENTIALS_DIRECTORY` nor the token variable. The packaged unit loads
/// its credentials from `/etc/cryptosat/<name>`, which has the layout of a
/// credentials directory, so doctor reads the secrets from there: what the
/// service would get. Must run before any thread exists (it sets a variable of
/// this process). Returns a note for the report when it did so.
pub(super) fn use_packaged_secrets() -> Option<String> {
    if std::env::var_os(CREDENTIALS_ENV).is_some() || std::env::var_os(TOKEN_ENV).is_some() {
        return None;
    }
    let dir = Path::new(PACKAGED_TOKEN_FILE).parent()?;
    if !dir.is_dir() {
        return None;
    }
    std::env::set_var(CREDENTIALS_ENV, dir);
    Some(format!(
        "read from {} (the files the packaged unit loads as credentials)",
        dir.display()
    ))
}

/// `config`: the file parses and validates. Details: `path`, and when it
/// parsed `telegram_api_url`, `coinglass_base_url`, `lock_file`, `storage_path`.
pub(super) fn config(path: &Path) -> (Check, Option<Config>) {
    match Config::load(path) {
        Ok(c) => {
            let check = Check::ok(
                "config",
                format!(
                    "{} is valid: telegram.api_url = {}, lock {}",
                    path.display(),
                    c.telegram.api_url,
                    c.service.lock_file.display()
                ),
            )
            .details(json!({
                "path": path.display().to_string(),
                "telegram_api_url": c.telegram.api_url,
                "coinglass_base_url": c.coinglass.base_url,
                "lock_file": c.service.lock_file.display().to_string(),
                "storage_path": c.storage.path.display().to_string(),
            }));
            (check, Some(c))
        }
        Err(e) => {
            let check = Check::fail("config", e.to_string())
                .fix(format!(
                    "edit {} (see the packaged /etc/cryptosat/cryptosat.toml for every key), then run: cryptosat check-config --config {}",
                    path.display(),
                    path.display()
                ))
                .details(json!({ "path": path.display().to_string() }));
            (check, None)
        }
    }
}

/// Where a secret was read from, for the report (never its value).
fn source_of(credential: &str, env: &str) -> String {
    if let Some(dir) = std::env::var_os(CREDENTIALS_ENV) {
        let file = PathBuf::from(dir).join(credential);
        if file.exists() {
            return file.display().to_string();
        }
    }
    format!("${env}")
}

/// The pieces of a [`SecretError`]: which secret, what is wrong, the fix.
fn split_error(e: &SecretError) -> (&'static str, String, String) {
    match e {
        SecretError::Missing {
            what,
            searched,
            fix,
        } => (what, format!("no {what}: looked for {searched}"), fix.clone()),
        SecretError::Empty {
            what,
            source_name,
            fix,
        } => (what, format!("{what} from {source_name} is empty"), fix.clone()),
        SecretError::Malformed {
            what,
            source_name,
            problem,
            fix,
        } => (
            what,
            format!("{what} from {source_name} is malformed: {problem}"),
            fix.clone(),
        ),
        SecretError::Unreadable { what, path, error } => (
            what,
            format!("cannot read {what} from {}: {error}", path.display()),
            format!(
                "run doctor as root (sudo cryptosat doctor): the file is readable by root only, as it should be; or fix the path {}",
                path.display()
            ),
        ),
    }
}

/// `token` and `api_key`: present and well-formed. Details: `source` (a file
/// path or `$VARIABLE`), and for the token `bot_id`.
///
/// [`Secrets::load`] stops at the first bad secret; when the API key is the
/// bad one the token is not available either, so `token` is then `skip`.
pub(super) fn secrets(note: Option<String>) -> (Vec<Check>, Option<Secrets>) {
    let with_note = |mut c: Check| {
        if let Some(n) = &note {
            c.notes.push(format!("secrets {n}"));
        }
        c
    };
    match Secrets::load() {
        Ok(s) => {
            let token_source = source_of("telegram-token", TOKEN_ENV);
            let token = Check::ok(
                "token",
                format!(
                    "bot token present and well-formed (bot id {}, from {token_source})",
                    secrets::bot_id(&s.telegram_token)
                ),
            )
            .details(json!({
                "bot_id": secrets::bot_id(&s.telegram_token),
                "source": token_source,
            }));
            let key = match &s.coinglass_api_key {
                Some(_) => {
                    let source = source_of("coinglass-api-key", "CRYPTOSAT_COINGLASS_API_KEY");
                    Check::ok(
                        "api_key",
                        format!("CoinGlass API key present and well-formed (from {source})"),
                    )
                    .details(json!({ "source": source }))
                }
                None => Check::warn(
                    "api_key",
                    "no CoinGlass API key: market data (/liq, /whale, /funding, alerts) is disabled",
                )
                .fix(format!(
                    "put the key into {PACKAGED_API_KEY_FILE} (one line, chmod 600, owner root), then: systemctl restart cryptosat"
                )),
            };
            (vec![with_note(token), key], Some(s))
        }
        Err(e) => {
            let (what, summary, fix) = split_error(&e);
            let failed = Check::fail("", summary).fix(fix);
            if what.contains("CoinGlass") {
                let token = Check::skip(
                    "token",
                    "not checked: loading the secrets stopped at the CoinGlass API key",
                );
                (
                    vec![
                        with_note(token),
                        Check {
                            id: "api_key",
                            ..failed
                        },
                    ],
                    None,
                )
            } else {
                let key = Check::skip(
                    "api_key",
                    "not checked: loading the secrets stopped at the bot token",
                );
                (
                    vec![
                        with_note(Check {
                            id: "token",
                            ..failed
                        }),
                        key,
                    ],
                    None,
                )
            }
        }
    }
}

/// `secret_files`: the files holding secrets are not readable by other users.
/// Details: `files` (`[{path, mode}]`, mode in octal).
pub(super) fn secret_files() -> Check {
    let mut files: Vec<PathBuf> = vec![PACKAGED_TOKEN_FILE.into(), PACKAGED_API_KEY_FILE.into()];
    if let Some(dir) = std::env::var_os(CREDENTIALS_ENV) {
        for name in ["telegram-token", "coinglass-api-key"] {
            files.push(PathBuf::from(&dir).join(name));
        }
    }
    files.sort();
    files.dedup();
    let mut seen = Vec::new();
    let mut world = Vec::new();
    let mut group = Vec::new();
    for f in &files {
        let Ok(meta) = std::fs::metadata(f) else {
            continue;
        };
        let mode = meta.mode() & 0o7777;
        seen.push(json!({ "path": f.display().to_string(), "mode": format!("{mode:04o}") }));
        if mode & 0o004 != 0 {
            world.push(format!("{} (mode {mode:04o})", f.display()));
        } else if mode & 0o040 != 0 && meta.gid() != 0 {
            group.push(format!(
                "{} (mode {mode:04o}, group id {})",
                f.display(),
                meta.gid()
            ));
        }
    }
    let details = json!({ "files": seen });
    if !world.is_empty() {
        let paths: Vec<&str> = files
            .iter()
            .filter_map(|f| f.to_str())
            .filter(|f| world.iter().any(|w| w.starts_with(f)))
            .collect();
        return Check::fail(
            "secret_files",
            format!("readable by every user on this host: {}", world.join(", ")),
        )
        .fix(format!(
            "chmod 600 {} && chown root:root {} (and consider the secret leaked: revoke the token with @BotFather)",
            paths.join(" "),
            paths.join(" ")
        ))
        .details(details);
    }
    if !group.is_empty() {
        return Check::warn(
            "secret_files",
            format!("readable by a non-root group: {}", group.join(", ")),
        )
        .fix("chmod 600 the file(s) listed")
        .details(details);
    }
    if seen.is_empty() {
        Check::ok(
            "secret_files",
            "no secret files on this host (the secrets come from the environment)",
        )
        .details(details)
    } else {
        Check::ok(
            "secret_files",
            format!(
                "{} secret file(s), none readable by other users",
                seen.len()
            ),
        )
        .details(details)
    }
}
