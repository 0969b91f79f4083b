//! `cryptosat doctor`: finds out why the bot is not working, or who else polls
//! its token, and says how to fix it.
//!
//! Safe to run at any time by root or the service user: it only reads (the
//! config, the secrets, `/proc`, `systemctl show`, the lock file without taking
//! the lock) and sends read-only API requests. The one request with an effect
//! is the conflict probe, a long `getUpdates` without an offset (it confirms
//! nothing), and it is sent only when no local instance polls this token,
//! because it would knock that instance's own long poll off.
//!
//! # Checks, in order
//!
//! | id | what |
//! | --- | --- |
//! | `config` | the configuration file parses and validates |
//! | `token` | the bot token is present and well-formed (only its bot id is shown) |
//! | `api_key` | the CoinGlass API key is present and well-formed |
//! | `secret_files` | the secret files are not readable by other users |
//! | `lock` | whether the single-instance lock is held, by which process, run by what |
//! | `processes` | other local `cryptosat` processes and processes connected to the Bot API host |
//! | `systemd` | `cryptosat.service`: ActiveState/SubState, StatusText, NRestarts, Result |
//! | `telegram` | `getMe`: the token works, which bot |
//! | `webhook` | `getWebhookInfo`: a webhook makes every `getUpdates` fail with 409 |
//! | `conflict` | the conflict probe, or the running service's own conflict report |
//! | `coinglass` | the API key works; the plan's rate limit (`API-KEY-MAX-LIMIT`) |
//! | `coinglass_plan` | which monitors the plan allows |
//!
//! # Output
//!
//! Text: one line per check, `ok`, `warn`, `FAIL` or `skip` (not applicable or
//! not possible), the id and a summary; indented notes; for every problem a
//! `fix:` line with the exact command or file.
//!
//! Exit code: 0 when no check failed (warnings allowed), 1 when one did; 2 for
//! a command-line usage error.
//!
//! `--json` prints one JSON object instead (schema version 1, stable: fields
//! may be added, never renamed or removed without bumping `version`):
//!
//! ```json
//! {
//!   "version": 1,
//!   "config": "/etc/cryptosat/cryptosat.toml",
//!   "ok": false,
//!   "checks": [
//!     {
//!       "id": "conflict",
//!       "status": "fail",
//!       "summary": "another poller is using this bot token: …",
//!       "fix": "find and stop it: …",
//!       "notes": [],
//!       "details": { "probe_seconds": 15, "conflict_after_secs": 4 }
//!     }
//!   ]
//! }
//! ```
//!
//! `ok` is true when no check has status `fail` (the exit code is 0 then).
//! `status` is one of `ok`, `warn`, `fail`, `skip`; `fix` is a string or
//! null; `notes` are extra lines (e.g. one per suspicious process); `details`
//! is an object whose keys depend on the check (documented on each check's
//! function). No field ever contains the bot token or the API key.

mod coinglass;
mod host;
pub mod netstat;
mod setup;
mod systemd;
mod telegram;

use std::io::Write;
use std::path::Path;

use serde_json::{json, Value};

use crate::exit;
use crate::secrets::Redactor;

/// The fix for a poller elsewhere, shared by the checks that can prove one.
pub(crate) const CONFLICT_FIX: &str = "find and stop the other poller of this token: other hosts or containers (docker ps, pm2 list, systemctl status there), CI jobs, developers' laptops, an old deployment of the Python bot; the processes check lists suspects on this host. The certain fix: revoke the token with @BotFather (/revoke), put the new one into /etc/cryptosat/telegram-token, then: systemctl restart cryptosat";

/// Version of the `--json` schema.
pub const JSON_VERSION: u32 = 1;

/// Command-line options of `cryptosat doctor`.
#[derive(Debug, Clone)]
pub struct Options {
    /// Print JSON instead of text.
    pub json: bool,
    /// Length of the conflict probe in seconds; 0 skips it.
    pub probe_seconds: u64,
}

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    Warn,
    Fail,
    /// Not applicable here, or not possible because an earlier check failed.
    Skip,
}

impl Status {
    fn json(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Fail => "fail",
            Status::Skip => "skip",
        }
    }

    fn text(self) -> &'static str {
        match self {
            Status::Ok => "ok  ",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
            Status::Skip => "skip",
        }
    }
}

/// One check's result.
#[derive(Debug, Clone)]
pub struct Check {
    pub id: &'static str,
    pub status: Status,
    pub summary: String,
    /// The command or file that fixes the problem.
    pub fix: Option<String>,
    /// Extra lines, e.g. one per process found.
    pub notes: Vec<String>,
    pub details: Value,
}

impl Check {
    fn new(id: &'static str, status: Status, summary: impl Into<String>) -> Self {
        Self {
            id,
            status,
            summary: summary.into(),
            fix: None,
            notes: Vec::new(),
            details: json!({}),
        }
    }

    fn ok(id: &'static str, summary: impl Into<String>) -> Self {
        Self::new(id, Status::Ok, summary)
    }

    fn warn(id: &'static str, summary: impl Into<String>) -> Self {
        Self::new(id, Status::Warn, summary)
    }

    fn fail(id: &'static str, summary: impl Into<String>) -> Self {
        Self::new(id, Status::Fail, summary)
    }

    fn skip(id: &'static str, summary: impl Into<String>) -> Self {
        Self::new(id, Status::Skip, summary)
    }

    fn fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = Some(fix.into());
        self
    }

    fn details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }

    fn notes(mut self, notes: Vec<String>) -> Self {
        self.notes = notes;
        self
    }
}

/// All checks of one run.
#[derive(Debug, Default)]
pub struct Report {
    pub checks: Vec<Check>,
}

impl Report {
    /// True when no check failed.
    pub fn ok(&self) -> bool {
        !self.checks.iter().any(|c| c.status == Status::Fail)
    }

    fn push(&mut self, check: Check) {
        self.checks.push(check);
    }

    /// The text report.
    pub fn to_text(&self, config: &Path) -> String {
        let width = self.checks.iter().map(|c| c.id.len()).max().unwrap_or(0);
        let mut out = format!("cryptosat doctor (config {})\n", config.display());
        for c in &self.checks {
            out.push_str(&format!(
                "{} {:width$}  {}\n",
                c.status.text(),
                c.id,
                c.summary
            ));
            for n in &c.notes {
                out.push_str(&format!("     {:width$}  {n}\n", ""));
            }
            if let Some(fix) = &c.fix {
                out.push_str(&format!("     {:width$}  fix: {fix}\n", ""));
            }
        }
        let count = |s| self.checks.iter().filter(|c| c.status == s).count();
        let (fails, warns) = (count(Status::Fail), count(Status::Warn));
        out.push_str(&match (fails, warns) {
            (0, 0) => "all checks passed\n".to_owned(),
            (0, w) => format!("no failures, {w} warning(s): see above\n"),
            (f, w) => format!("{f} check(s) FAILED, {w} warning(s): apply the fixes above\n"),
        });
        out
    }

    /// The `--json` document (see the module documentation for the schema).
    pub fn to_json(&self, config: &Path) -> Value {
        json!({
            "version": JSON_VERSION,
            "config": config.display().to_string(),
            "ok": self.ok(),
            "checks": self.checks.iter().map(|c| json!({
                "id": c.id,
                "status": c.status.json(),
                "summary": c.summary,
                "fix": c.fix,
                "notes": c.notes,
                "details": c.details,
            })).collect::<Vec<_>>(),
        })
    }
}

/// Runs every check, prints the report, returns the exit code (0 no failure,
/// 1 otherwise).
pub fn run(config_path: &Path, options: &Options) -> u8 {
    // Before any thread exists: may point CREDENTIALS_DIRECTORY at the
    // packaged secret files (see `setup::use_packaged_secrets`).
    let secrets_note = setup::use_packaged_secrets();
    let report = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(collect(config_path, options, secrets_note)),
        Err(e) => {
            let mut r = Report::default();
            r.push(Check::fail(
                "doctor",
                format!("cannot start the async runtime: {e}"),
            ));
            (r, Redactor::default())
        }
    };
    let (report, redactor) = report;
    let text = if options.json {
        let json = serde_json::to_string_pretty(&report.to_json(config_path))
            .unwrap_or_else(|e| format!("{{\"version\":1,\"error\":\"{e}\"}}"));
        format!("{json}\n")
    } else {
        report.to_text(config_path)
    };
    // A closed pipe (`cryptosat doctor | head`) is not worth a panic.
    let mut stdout = std::io::stdout().lock();
    let _ = stdout
        .write_all(redactor.redact(&text).as_bytes())
        .and_then(|()| stdout.flush());
    if report.ok() {
        exit::OK
    } else {
        exit::FATAL
    }
}

/// Runs the checks in order; later ones use what earlier ones found.
async fn collect(
    config_path: &Path,
    options: &Options,
    secrets_note: Option<String>,
) -> (Report, Redactor) {
    let mut report = Report::default();

    let (check, config) = setup::config(config_path);
    report.push(check);
    let (checks, secrets) = setup::secrets(secrets_note);
    checks.into_iter().for_each(|c| report.push(c));
    report.push(setup::secret_files());
    let redactor = secrets.as_ref().map(|s| s.redactor()).unwrap_or_default();

    let Some(config) = config else {
        for id in [
            "lock",
            "processes",
            "systemd",
            "telegram",
            "webhook",
            "conflict",
            "coinglass",
            "coinglass_plan",
        ] {
            report.push(Check::skip(id, "needs a valid configuration file"));
        }
        return (report, redactor);
    };

    let (check, lock) = host::lock(&config.service.lock_file);
    report.push(check);
    let (check, suspects) = host::processes(&config, config_path, lock.holder_pid());
    report.push(check);
    let (check, unit) = systemd::check(&lock);
    report.push(check);

    let token = secrets.as_ref().map(|s| s.telegram_token.clone());
    let tg = telegram::Checks {
        config: &config.telegram,
        redactor: &redactor,
    };
    match &token {
        Some(token) => {
            let (check, bot) = tg.get_me(token).await;
            report.push(check);
            if let Some(bot) = bot {
                let webhook = tg.webhook(&bot).await;
                let webhook_set = webhook.details["set"] == true;
                report.push(webhook);
                let local = telegram::Local {
                    lock: &lock,
                    unit: unit.as_ref(),
                    suspects: &suspects,
                };
                report.push(if webhook_set {
                    // Every getUpdates fails with the webhook 409: one cause, one FAIL.
                    Check::skip(
                        "conflict",
                        "not probing: getUpdates cannot work while a webhook is set (see webhook)",
                    )
                    .details(json!({ "probed": false, "probe_seconds": options.probe_seconds }))
                } else {
                    tg.conflict(token, &local, options.probe_seconds).await
                });
            } else {
                report.push(Check::skip("webhook", "needs a working bot token"));
                report.push(Check::skip("conflict", "needs a working bot token"));
            }
        }
        None => {
            for id in ["telegram", "webhook", "conflict"] {
                report.push(Check::skip(id, "needs the bot token"));
            }
        }
    }

    let key = secrets.as_ref().and_then(|s| s.coinglass_api_key.clone());
    for check in coinglass::check(&config.coinglass, key.as_ref(), &redactor).await {
        report.push(check);
    }
    (report, redactor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_text_and_json_agree() {
        let mut r = Report::default();
        r.push(Check::ok("config", "parses"));
        r.push(
            Check::fail("webhook", "a webhook is set")
                .fix("deleteWebhook")
                .notes(vec!["note".into()]),
        );
        assert!(!r.ok());
        let text = r.to_text(Path::new("/etc/cryptosat/cryptosat.toml"));
        assert!(text.contains("ok   config   parses"), "{text}");
        assert!(text.contains("FAIL webhook  a webhook is set"), "{text}");
        assert!(text.contains("fix: deleteWebhook"), "{text}");
        let j = r.to_json(Path::new("/x"));
        assert_eq!(j["version"], 1);
        assert_eq!(j["ok"], false);
        assert_eq!(j["checks"][1]["status"], "fail");
        assert_eq!(j["checks"][0]["fix"], Value::Null);
        assert_eq!(j["checks"][1]["notes"][0], "note");
    }
}
