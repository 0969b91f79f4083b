//! This host: who holds the single-instance lock, and which other local
//! processes look like bot instances.

use std::fs::File;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use serde_json::json;

use super::netstat;
use super::Check;
use crate::config::Config;
use crate::service::lock::Holder;
use crate::service::process::{ProcessInfo, Supervisor};
use crate::timefmt;

/// The unit the package installs.
pub(super) const SERVICE_UNIT: &str = "cryptosat.service";

/// What the lock check found.
#[derive(Debug)]
pub(super) struct LockState {
    pub path: PathBuf,
    /// `Some` when the lock is held.
    pub holder: Option<LockHolder>,
}

/// The process holding the lock.
#[derive(Debug)]
pub(super) struct LockHolder {
    /// From the live process, else `/proc/locks`, else the lock file.
    pub pid: Option<i32>,
    pub supervisor: Supervisor,
    pub cmdline: String,
}

impl LockState {
    pub fn holder_pid(&self) -> Option<i32> {
        self.holder.as_ref().and_then(|h| h.pid)
    }
}

/// Holders of flock locks on (device, inode) according to `/proc/locks`;
/// `None` when the table cannot be read. Waiters (`->` lines) are skipped.
fn proc_locks_holders(text: &str, major: u64, minor: u64, inode: u64) -> Vec<i32> {
    let want = format!("{major:02x}:{minor:02x}:{inode}");
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.get(1) == Some(&"->") || fields.get(1) != Some(&"FLOCK") {
                return None;
            }
            if !fields.get(5)?.eq_ignore_ascii_case(&want) {
                return None;
            }
            // The PID is 0 or -1 when the holder is in a PID namespace we cannot see.
            fields.get(4)?.parse().ok().filter(|pid| *pid > 0)
        })
        .collect()
}

/// Whether the lock is held, without taking it for more than an instant.
/// `/proc/locks` answers without touching the lock at all and names the
/// holder's PID; only when it is unreadable does doctor try
/// `flock(LOCK_SH|LOCK_NB)` and, if that succeeds, release it at once (a
/// service starting in that very microsecond would be refused with exit 75).
fn is_held(file: &File, path: &Path) -> Result<(bool, Option<i32>), String> {
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot stat {}: {e}", path.display()))?;
    let dev = meta.dev();
    if let Ok(text) = std::fs::read_to_string("/proc/locks") {
        let holders = proc_locks_holders(
            &text,
            nix::sys::stat::major(dev),
            nix::sys::stat::minor(dev),
            meta.ino(),
        );
        // An entry with an invisible PID still proves the lock is held.
        let held = !holders.is_empty() || text_mentions_inode(&text, meta.ino());
        return Ok((held, holders.first().copied()));
    }
    let probe = file
        .try_clone()
        .map_err(|e| format!("cannot reopen {}: {e}", path.display()))?;
    match Flock::lock(probe, FlockArg::LockSharedNonblock) {
        Ok(lock) => {
            drop(lock);
            Ok((false, None))
        }
        Err((_, Errno::EWOULDBLOCK)) => Ok((true, None)),
        Err((_, errno)) => Err(format!(
            "cannot test the lock on {}: {errno}",
            path.display()
        )),
    }
}

fn text_mentions_inode(text: &str, inode: u64) -> bool {
    let suffix = format!(":{inode}");
    text.lines().any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.get(1) == Some(&"FLOCK") && f.get(5).is_some_and(|d| d.ends_with(&suffix))
    })
}

fn recorded<'a>(holder: &'a Holder, key: &str) -> Option<&'a str> {
    holder
        .recorded
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

/// `lock`: is `service.lock_file` held, and by whom. Details: `path`, `held`,
/// and when held `pid`, `cmdline`, `started_at`, `run_by`, `cgroup`, `stop`.
pub(super) fn lock(path: &Path) -> (Check, LockState) {
    let mut state = LockState {
        path: path.to_owned(),
        holder: None,
    };
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let check = Check::ok(
                "lock",
                format!(
                    "{} does not exist: no instance has run with this config on this host",
                    path.display()
                ),
            )
            .details(json!({ "path": path.display().to_string(), "held": false }));
            return (check, state);
        }
        Err(e) => {
            let check = Check::warn("lock", format!("cannot open {}: {e}", path.display()))
                .fix("run doctor as root (sudo cryptosat doctor) or as the service user")
                .details(json!({ "path": path.display().to_string(), "held": null }));
            return (check, state);
        }
    };
    let contents = std::fs::read_to_string(path).unwrap_or_default();
    let holder = Holder::from_contents(&contents);
    let (held, locks_pid) = match is_held(&file, path) {
        Ok(x) => x,
        Err(e) => {
            let check = Check::warn("lock", e)
                .fix("run doctor as root (sudo cryptosat doctor)")
                .details(json!({ "path": path.display().to_string(), "held": null }));
            return (check, state);
        }
    };
    if !held {
        let last = match (holder.pid(), recorded(&holder, "started_at")) {
            (Some(pid), Some(at)) => format!(" (last holder: PID {pid}, started {at}, gone)"),
            (Some(pid), None) => format!(" (last holder: PID {pid}, gone)"),
            _ => String::new(),
        };
        let check = Check::ok(
            "lock",
            format!(
                "{} is not held: no instance with this config runs on this host{last}",
                path.display()
            ),
        )
        .details(json!({ "path": path.display().to_string(), "held": false }));
        return (check, state);
    }

    let info = holder
        .live
        .clone()
        .or_else(|| locks_pid.and_then(ProcessInfo::read));
    let pid = info.as_ref().map(|p| p.pid).or(locks_pid).or(holder.pid());
    let supervisor = info
        .as_ref()
        .map(|p| p.supervisor.clone())
        .unwrap_or_else(|| holder.supervisor());
    let cmdline = info
        .as_ref()
        .map(|p| p.cmdline.clone())
        .or_else(|| recorded(&holder, "cmdline").map(str::to_owned))
        .unwrap_or_else(|| "?".into());
    let started = info
        .as_ref()
        .and_then(|p| p.started_at)
        .map(timefmt::utc)
        .or_else(|| recorded(&holder, "started_at").map(str::to_owned))
        .unwrap_or_else(|| "at an unknown time".into());
    let cgroup = info
        .as_ref()
        .map(|p| p.cgroup.clone())
        .or_else(|| recorded(&holder, "cgroup").map(str::to_owned));
    let stop = pid.map(|p| supervisor.stop_hint(p));
    let who = match pid {
        Some(pid) => format!("PID {pid} ({cmdline})"),
        None => "a process this user cannot see".to_owned(),
    };
    let summary = format!(
        "{} is held by {who}, started {started}, run by {supervisor}",
        path.display()
    );
    let details = json!({
        "path": path.display().to_string(),
        "held": true,
        "pid": pid,
        "cmdline": cmdline,
        "started_at": started,
        "run_by": supervisor.to_string(),
        "cgroup": cgroup,
        "stop": stop,
    });
    let by_service = matches!(&supervisor, Supervisor::SystemdService(u) if u == SERVICE_UNIT);
    let check = if by_service {
        Check::ok("lock", summary).details(details)
    } else {
        let mut check = Check::warn("lock", format!("{summary}, not by {SERVICE_UNIT}"));
        check = match &stop {
            Some(stop) => check.fix(format!(
                "if this instance is not meant to run, stop it ({stop}) and run the service instead: systemctl start cryptosat"
            )),
            None => check.fix(format!(
                "find it with: fuser -v {} (as root)",
                path.display()
            )),
        };
        check.details(details)
    };
    state.holder = Some(LockHolder {
        pid,
        supervisor,
        cmdline,
    });
    (check, state)
}

/// A local process that may poll Telegram.
#[derive(Debug, Clone)]
pub(super) struct Suspect {
    pub pid: i32,
    pub cmdline: String,
    pub run_by: Supervisor,
    /// Connections to the Bot API host.
    pub remotes: Vec<SocketAddr>,
    /// Is it a `cryptosat` binary.
    pub cryptosat: bool,
}

impl Suspect {
    fn line(&self) -> String {
        let mut line = format!("PID {}: {}; run by {}", self.pid, self.cmdline, self.run_by);
        if !self.remotes.is_empty() {
            let r: Vec<String> = self.remotes.iter().map(|a| a.to_string()).collect();
            line.push_str(&format!("; connected to the Bot API at {}", r.join(", ")));
        }
        line.push_str(&format!("; stop: {}", self.run_by.stop_hint(self.pid)));
        line
    }
}

/// The addresses of the Bot API host (`telegram.api_url`).
fn api_addresses(api_url: &str) -> Result<(String, Vec<SocketAddr>), String> {
    let url = reqwest::Url::parse(api_url).map_err(|e| format!("{api_url:?}: {e}"))?;
    let port = url
        .port_or_known_default()
        .ok_or_else(|| format!("{api_url:?} has no port"))?;
    let label = format!("{}:{port}", url.host_str().unwrap_or("?"));
    let host = url
        .host_str()
        .ok_or_else(|| format!("{api_url:?} has no host"))?;
    // IPv6 literals come bracketed ("[::1]").
    let literal = host.trim_start_matches('[').trim_end_matches(']');
    let addrs = match literal.parse::<std::net::IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => (host, port)
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve {host}: {e}"))?
            .collect(),
    };
    Ok((label, addrs))
}

/// The arguments of a process (NUL-separated `/proc/PID/cmdline`).
fn argv(pid: i32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|raw| {
            raw.split(|b| *b == 0)
                .filter(|p| !p.is_empty())
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// A `cryptosat` process that may poll (not a `doctor` or `check-config` run).
fn is_cryptosat_bot(pid: i32) -> bool {
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    let args = argv(pid);
    let named = comm.trim() == "cryptosat"
        || args
            .first()
            .and_then(|a| Path::new(a).file_name())
            .is_some_and(|n| n == "cryptosat");
    named
        && !args
            .iter()
            .skip(1)
            .any(|a| a == "doctor" || a == "check-config" || a == "--version" || a == "--help")
}

/// `processes`: other local processes that look like bot instances: other
/// `cryptosat` processes and any process connected to the Bot API host (the
/// lock holder and doctor itself excluded). Details: `api_host`,
/// `api_addresses`, `uninspectable` (processes whose files this user may not
/// read), `processes` (`[{pid, cmdline, run_by, cryptosat, connected_to, stop}]`).
pub(super) fn processes(
    config: &Config,
    config_path: &Path,
    lock_pid: Option<i32>,
) -> (Check, Vec<Suspect>) {
    let me = std::process::id() as i32;
    let pids = netstat::pids();
    let (label, targets, resolve_error) = match api_addresses(&config.telegram.api_url) {
        Ok((label, addrs)) => (label, addrs, None),
        Err(e) => (config.telegram.api_url.clone(), Vec::new(), Some(e)),
    };
    let scan = netstat::connections_to(&targets, &pids);
    let mut suspects: Vec<Suspect> = Vec::new();
    for &pid in &pids {
        if pid == me || Some(pid) == lock_pid {
            continue;
        }
        let remotes = scan.connected.get(&pid).cloned().unwrap_or_default();
        let cryptosat = is_cryptosat_bot(pid);
        if remotes.is_empty() && !cryptosat {
            continue;
        }
        let Some(info) = ProcessInfo::read(pid) else {
            continue;
        };
        suspects.push(Suspect {
            pid,
            cmdline: info.cmdline,
            run_by: info.supervisor,
            remotes,
            cryptosat,
        });
    }
    let mut notes: Vec<String> = suspects.iter().map(Suspect::line).collect();
    if let Some(e) = &resolve_error {
        notes.push(format!("connections to the Bot API not checked: {e}"));
    }
    if scan.hidden > 0 {
        notes.push(format!(
            "{} process(es) could not be inspected by this user; run doctor as root to see them all",
            scan.hidden
        ));
    }
    let details = json!({
        "api_host": label,
        "api_addresses": targets.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
        "uninspectable": scan.hidden,
        "processes": suspects.iter().map(|s| json!({
            "pid": s.pid,
            "cmdline": s.cmdline,
            "run_by": s.run_by.to_string(),
            "cryptosat": s.cryptosat,
            "connected_to": s.remotes.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
            "stop": s.run_by.stop_hint(s.pid),
        })).collect::<Vec<_>>(),
    });
    let check = if let (true, Some(e)) = (suspects.is_empty(), &resolve_error) {
        notes.pop_if(|n| n.starts_with("connections to the Bot API"));
        Check::warn(
            "processes",
            format!("no other cryptosat process on this host; connections to the Bot API not checked: {e}"),
        )
        .fix("check DNS on this host (see the telegram check)")
    } else if suspects.is_empty() {
        Check::ok(
            "processes",
            format!(
                "no other cryptosat process and no other process connected to {label} on this host"
            ),
        )
    } else {
        let cs = suspects.iter().filter(|s| s.cryptosat).count();
        let others = suspects.len() - cs;
        let mut what = Vec::new();
        if cs > 0 {
            what.push(format!(
                "{cs} other cryptosat process(es) not holding this config's lock"
            ));
        }
        if others > 0 {
            what.push(format!("{others} other process(es) connected to {label}"));
        }
        Check::warn(
            "processes",
            format!("{} on this host: each may poll Telegram", what.join(" and ")),
        )
        .fix(format!(
            "if one of them uses this bot token, stop it with the command shown (a cryptosat started with a config other than {} bypasses this config's lock: it is a second poller when it has the same token)",
            config_path.display()
        ))
    };
    (check.notes(notes).details(details), suspects)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_locks_lines_are_matched_by_device_and_inode() {
        let text = "1: FLOCK  ADVISORY  WRITE 30921 fe:00:10068065 0 EOF\n\
                    2: FLOCK  ADVISORY  WRITE 812 fe:00:4242 0 EOF\n\
                    2: -> FLOCK  ADVISORY  WRITE 999 fe:00:4242 0 EOF\n\
                    3: POSIX  ADVISORY  WRITE 777 fe:00:4242 0 EOF\n";
        assert_eq!(proc_locks_holders(text, 0xfe, 0, 4242), vec![812]);
        assert!(proc_locks_holders(text, 8, 1, 4242).is_empty());
    }

    #[test]
    fn held_lock_is_seen_with_its_holder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.lock");
        let held = crate::service::lock::InstanceLock::acquire(&path).unwrap();
        let (check, state) = lock(&path);
        assert_eq!(
            state.holder_pid(),
            Some(std::process::id() as i32),
            "{check:?}"
        );
        assert!(check.summary.contains("is held by PID"), "{check:?}");
        drop(held);
        let (check, state) = lock(&path);
        assert!(state.holder.is_none(), "{check:?}");
        assert!(check.summary.contains("not held"), "{check:?}");
    }

    #[test]
    fn api_address_of_an_ip_url() {
        let (label, addrs) = api_addresses("http://127.0.0.1:8081").unwrap();
        assert_eq!(label, "127.0.0.1:8081");
        assert_eq!(addrs, vec!["127.0.0.1:8081".parse().unwrap()]);
    }
}
