//! Facts about a process from `/proc`: command line, start time, and what runs it
//! (a systemd unit, PM2, a container or a login shell). Used to tell an operator
//! exactly which process holds the lock and how to stop it.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What supervises a process, as far as `/proc` can tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Supervisor {
    /// A systemd system service, e.g. `cryptosat.service`.
    SystemdService(String),
    /// A PM2 God daemon is among its ancestors (PID of the daemon).
    Pm2 { daemon_pid: i32 },
    /// A container runtime's cgroup (docker, containerd, podman, lxc…).
    Container(String),
    /// A login session or user manager scope: somebody started it from a shell.
    Shell(String),
    /// Nothing recognisable.
    Unknown,
}

impl Supervisor {
    /// The command an operator runs to stop a process run this way.
    pub fn stop_hint(&self, pid: i32) -> String {
        match self {
            Supervisor::SystemdService(unit) if unit.starts_with("user@") || unit.is_empty() => {
                format!("kill {pid}")
            }
            Supervisor::SystemdService(unit) => {
                let name = unit.strip_suffix(".service").unwrap_or(unit);
                format!("systemctl stop {name}")
            }
            Supervisor::Pm2 { .. } => format!(
                "pm2 list, then pm2 delete <name> for the app with pid {pid} (a plain kill makes PM2 restart it)"
            ),
            Supervisor::Container(id) => format!(
                "stop the container ({id}), e.g. docker ps / docker stop <container>"
            ),
            Supervisor::Shell(_) | Supervisor::Unknown => format!("kill {pid}"),
        }
    }
}

impl fmt::Display for Supervisor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Supervisor::SystemdService(u) => write!(f, "systemd unit {u}"),
            Supervisor::Pm2 { daemon_pid } => write!(f, "PM2 (God daemon PID {daemon_pid})"),
            Supervisor::Container(c) => write!(f, "a container ({c})"),
            Supervisor::Shell(scope) => write!(f, "an interactive shell ({scope})"),
            Supervisor::Unknown => f.write_str("an unknown parent"),
        }
    }
}

/// A snapshot of one process.
#[derive(Debug, Clone)]
pub struct ProcessInfo {
    pub pid: i32,
    pub cmdline: String,
    /// Start time in clock ticks since boot (field 22 of `/proc/PID/stat`): with
    /// the PID it identifies a process without PID-reuse ambiguity.
    pub start_ticks: u64,
    pub started_at: Option<SystemTime>,
    pub cgroup: String,
    pub supervisor: Supervisor,
}

impl ProcessInfo {
    /// Reads `/proc/PID`; `None` when the process is gone or not visible to us.
    pub fn read(pid: i32) -> Option<Self> {
        let (_, start_ticks) = stat_fields(pid)?;
        let cgroup = cgroup_path(pid).unwrap_or_default();
        Some(Self {
            pid,
            cmdline: cmdline(pid).unwrap_or_default(),
            start_ticks,
            started_at: ticks_to_time(start_ticks),
            supervisor: supervisor(pid, &cgroup),
            cgroup,
        })
    }
}

/// The command line of PID with arguments joined by spaces.
pub fn cmdline(pid: i32) -> Option<String> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let parts: Vec<String> = raw
        .split(|b| *b == 0)
        .filter(|p| !p.is_empty())
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect();
    if parts.is_empty() {
        // Kernel threads and zombies have an empty cmdline; fall back to comm.
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
        return Some(format!("[{}]", comm.trim()));
    }
    Some(parts.join(" "))
}

/// `(ppid, start_ticks)` from `/proc/PID/stat`.
pub fn stat_fields(pid: i32) -> Option<(i32, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // comm (field 2) may contain spaces and parentheses: split after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): ppid is field 4, starttime field 22.
    let ppid = fields.get(1)?.parse().ok()?;
    let start = fields.get(19)?.parse().ok()?;
    Some((ppid, start))
}

/// The process's cgroup path (cgroup v2 `0::` line, else v1 `name=systemd`).
pub fn cgroup_path(pid: i32) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    parse_cgroup(&text)
}

fn parse_cgroup(text: &str) -> Option<String> {
    let mut v2 = None;
    let mut v1 = None;
    for line in text.lines() {
        if let Some(path) = line.strip_prefix("0::") {
            v2 = Some(path.to_owned());
        }
        let mut parts = line.splitn(3, ':');
        if let (Some(_), Some("name=systemd"), Some(path)) =
            (parts.next(), parts.next(), parts.next())
        {
            v1 = Some(path.to_owned());
        }
    }
    // On a hybrid host the unified hierarchy may only say "/": the systemd one
    // then carries the real placement.
    match (v2, v1) {
        (Some(v2), _) if v2 != "/" => Some(v2),
        (v2, Some(v1)) => Some(v1).or(v2),
        (v2, None) => v2,
    }
}

/// What runs a process with this cgroup path (and these ancestors).
fn supervisor(pid: i32, cgroup: &str) -> Supervisor {
    if let Some(daemon_pid) = pm2_ancestor(pid) {
        return Supervisor::Pm2 { daemon_pid };
    }
    classify_cgroup(cgroup)
}

/// Classifies a cgroup path such as `/system.slice/cryptosat.service`.
pub fn classify_cgroup(cgroup: &str) -> Supervisor {
    const CONTAINER_MARKERS: [&str; 6] = [
        "docker",
        "containerd",
        "libpod",
        "lxc",
        "kubepods",
        "machine.slice",
    ];
    if let Some(m) = CONTAINER_MARKERS.iter().find(|m| cgroup.contains(*m)) {
        return Supervisor::Container(format!("{m}: {cgroup}"));
    }
    let components: Vec<&str> = cgroup.split('/').filter(|c| !c.is_empty()).collect();
    // The innermost unit is the one that owns the process.
    if let Some(scope) = components.iter().rev().find(|c| c.ends_with(".scope")) {
        if scope.starts_with("session-") || cgroup.contains("user.slice") {
            return Supervisor::Shell((*scope).to_owned());
        }
    }
    if let Some(unit) = components.iter().rev().find(|c| c.ends_with(".service")) {
        if cgroup.contains("user.slice") {
            return Supervisor::Shell((*unit).to_owned());
        }
        return Supervisor::SystemdService((*unit).to_owned());
    }
    Supervisor::Unknown
}

/// The PID of a PM2 God daemon among the ancestors of `pid`, if any.
fn pm2_ancestor(pid: i32) -> Option<i32> {
    let mut current = pid;
    for _ in 0..64 {
        let (ppid, _) = stat_fields(current)?;
        if ppid <= 1 {
            return None;
        }
        if cmdline(ppid).is_some_and(|c| c.contains("PM2") && c.contains("God Daemon")) {
            return Some(ppid);
        }
        current = ppid;
    }
    None
}

/// Converts a `/proc` start time in clock ticks to wall-clock time.
fn ticks_to_time(ticks: u64) -> Option<SystemTime> {
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .filter(|hz| *hz > 0)? as u64;
    let btime: u64 = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime ").and_then(|v| v.trim().parse().ok()))?;
    let millis = ticks.checked_mul(1000)? / hz;
    Some(UNIX_EPOCH + Duration::from_secs(btime) + Duration::from_millis(millis))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_process() {
        let me = ProcessInfo::read(std::process::id() as i32).unwrap();
        assert!(me.start_ticks > 0);
        assert!(!me.cmdline.is_empty());
        let started = me.started_at.unwrap();
        let age = SystemTime::now()
            .duration_since(started)
            .unwrap_or_default();
        assert!(age < Duration::from_secs(3600), "{age:?}");
    }

    #[test]
    fn classifies_cgroups() {
        assert_eq!(
            classify_cgroup("/system.slice/cryptosat.service"),
            Supervisor::SystemdService("cryptosat.service".into())
        );
        assert!(matches!(
            classify_cgroup("/user.slice/user-0.slice/session-3.scope"),
            Supervisor::Shell(_)
        ));
        assert!(matches!(
            classify_cgroup("/system.slice/docker-0123abcd.scope"),
            Supervisor::Container(_)
        ));
        assert_eq!(classify_cgroup("/"), Supervisor::Unknown);
        assert_eq!(
            Supervisor::SystemdService("cryptosat.service".into()).stop_hint(7),
            "systemctl stop cryptosat"
        );
    }

    #[test]
    fn parses_v2_and_hybrid_cgroup_files() {
        assert_eq!(
            parse_cgroup("0::/system.slice/cryptosat.service\n").as_deref(),
            Some("/system.slice/cryptosat.service")
        );
        let hybrid = "12:cpu:/\n1:name=systemd:/system.slice/x.service\n0::/\n";
        assert_eq!(
            parse_cgroup(hybrid).as_deref(),
            Some("/system.slice/x.service")
        );
    }
}
