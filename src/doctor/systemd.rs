//! The systemd view: `systemctl show` of the service unit.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use super::host::{LockState, SERVICE_UNIT};
use super::{Check, CONFLICT_FIX};
use crate::service::process::Supervisor;

/// What `systemctl show` says about the unit.
#[derive(Debug, Clone, Default)]
pub(super) struct Unit {
    pub name: String,
    pub active: String,
    pub sub: String,
    pub status_text: String,
    pub n_restarts: u64,
    pub result: String,
    pub main_pid: Option<i32>,
}

impl Unit {
    /// Running (or reloading): its poller is polling the token.
    pub fn is_running(&self) -> bool {
        matches!(self.active.as_str(), "active" | "reloading" | "activating")
            && self.main_pid.is_some()
    }

    /// The service's own conflict report, from its STATUS line.
    pub fn conflict(&self) -> Option<&str> {
        self.status_text
            .starts_with("CONFLICT:")
            .then_some(self.status_text.as_str())
    }

    /// N from `… (since …, N conflicts): …` in a CONFLICT status.
    pub fn conflict_count(&self) -> Option<u64> {
        let text = self.conflict()?;
        let end = text.find(" conflicts)")?;
        text[..end].rsplit([' ', ',']).next()?.parse().ok()
    }
}

const PROPERTIES: [&str; 7] = [
    "LoadState",
    "ActiveState",
    "SubState",
    "StatusText",
    "NRestarts",
    "Result",
    "MainPID",
];

/// Runs `systemctl show`, bounded to a few seconds (a hung D-Bus must not hang
/// doctor). `Err` says why it could not.
fn systemctl_show(unit: &str) -> Result<String, String> {
    let mut cmd = Command::new("systemctl");
    cmd.args(["show", unit, "--no-pager"]);
    for p in PROPERTIES {
        cmd.args(["-p", p]);
    }
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                "systemctl not found: not a systemd host".to_owned()
            } else {
                format!("cannot run systemctl: {e}")
            }
        })?;
    let deadline = Instant::now() + Duration::from_secs(5);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err("systemctl show did not answer within 5 s".into());
            }
            Err(e) => return Err(format!("cannot wait for systemctl: {e}")),
        }
    };
    // The output is a handful of short lines: it fits the pipe buffer, so
    // reading after the exit cannot deadlock.
    let mut out = String::new();
    let mut err = String::new();
    if let Some(mut s) = child.stdout.take() {
        let _ = s.read_to_string(&mut out);
    }
    if let Some(mut s) = child.stderr.take() {
        let _ = s.read_to_string(&mut err);
    }
    if !status.success() {
        let first = err.lines().next().unwrap_or("").trim().to_owned();
        return Err(format!("systemctl cannot query systemd: {first}"));
    }
    Ok(out)
}

fn parse(name: &str, text: &str) -> (String, Unit) {
    let get = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
            .unwrap_or("")
            .to_owned()
    };
    let unit = Unit {
        name: name.to_owned(),
        active: get("ActiveState"),
        sub: get("SubState"),
        status_text: get("StatusText"),
        n_restarts: get("NRestarts").parse().unwrap_or(0),
        result: get("Result"),
        main_pid: get("MainPID").parse().ok().filter(|p: &i32| *p > 0),
    };
    (get("LoadState"), unit)
}

/// `systemd`: the unit holding the lock (else `cryptosat.service`). Details:
/// `unit`, `active_state`, `sub_state`, `status_text`, `n_restarts`,
/// `result`, `main_pid`, `conflicts` (from a CONFLICT status, else null).
pub(super) fn check(lock: &LockState) -> (Check, Option<Unit>) {
    let name = match lock.holder.as_ref().map(|h| &h.supervisor) {
        Some(Supervisor::SystemdService(u)) if !u.starts_with("user@") => u.clone(),
        _ => SERVICE_UNIT.to_owned(),
    };
    let text = match systemctl_show(&name) {
        Ok(t) => t,
        Err(why) => return (Check::skip("systemd", why), None),
    };
    let (load, unit) = parse(&name, &text);
    if load == "not-found" {
        return (
            Check::skip("systemd", format!("{name} is not installed on this host")),
            None,
        );
    }
    let details = json!({
        "unit": unit.name,
        "active_state": unit.active,
        "sub_state": unit.sub,
        "status_text": unit.status_text,
        "n_restarts": unit.n_restarts,
        "result": unit.result,
        "main_pid": unit.main_pid,
        "conflicts": unit.conflict_count(),
    });
    let state = format!(
        "{name} is {} ({}), NRestarts={}, Result={}",
        unit.active, unit.sub, unit.n_restarts, unit.result
    );
    let status = if unit.status_text.is_empty() {
        String::new()
    } else {
        format!(": \"{}\"", unit.status_text)
    };
    let journal = format!(
        "journalctl -u {} -n 50 --no-pager",
        name.trim_end_matches(".service")
    );
    let short = name.trim_end_matches(".service");
    let check = match unit.active.as_str() {
        "active" | "reloading" if unit.conflict().is_some() => {
            Check::fail("systemd", format!("{state}{status}")).fix(CONFLICT_FIX)
        }
        "active" | "reloading" if unit.status_text.starts_with("failed:") => {
            Check::fail("systemd", format!("{state}{status}"))
                .fix(format!("see why in: {journal}"))
        }
        "active" | "reloading" if unit.status_text.starts_with("degraded:") => {
            Check::warn("systemd", format!("{state}{status}")).fix(format!(
                "an upstream is unreachable; the bot keeps retrying. Check the network from this host, and: {journal}"
            ))
        }
        "active" | "reloading" => Check::ok("systemd", format!("{state}{status}")),
        "failed" => Check::fail("systemd", format!("{state}{status}")).fix(format!(
            "see why in: {journal}; after fixing it: systemctl restart {short}"
        )),
        "inactive" => Check::warn("systemd", format!("{state}: the bot is not running"))
            .fix(format!("systemctl start {short}")),
        _ => Check::warn("systemd", format!("{state}{status}"))
            .fix(format!("wait a few seconds and run doctor again; see: {journal}")),
    };
    (check.details(details), Some(unit))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_show_output_and_conflict_count() {
        let text = "LoadState=loaded\nActiveState=active\nSubState=running\n\
            StatusText=CONFLICT: another poller uses this bot token elsewhere (since 2026-11-29 23:10:05 UTC, 17 conflicts): Conflict: terminated by other getUpdates request; backing off. Run: cryptosat doctor\n\
            NRestarts=2\nResult=success\nMainPID=812\n";
        let (load, unit) = parse("cryptosat.service", text);
        assert_eq!(load, "loaded");
        assert!(unit.is_running());
        assert_eq!(unit.main_pid, Some(812));
        assert_eq!(unit.n_restarts, 2);
        assert_eq!(unit.conflict_count(), Some(17));
        let (_, idle) = parse("x.service", "ActiveState=inactive\nMainPID=0\n");
        assert!(!idle.is_running());
        assert_eq!(idle.conflict_count(), None);
    }
}
