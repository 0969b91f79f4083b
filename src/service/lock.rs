//! The single-instance lock: `flock(LOCK_EX|LOCK_NB)` on `service.lock_file`.
//!
//! Rules learned from the bot this replaces:
//! - the file is never truncated or written before the lock is held, so a refused
//!   second instance cannot erase the holder's details;
//! - the file is never unlinked: with flock+unlink two processes can each hold a
//!   lock on a different inode of the same name;
//! - a crashed holder's lock is released by the kernel, so there is no stale-lock
//!   or PID-reuse heuristic; the PID written inside is for diagnostics only.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use super::process::{ProcessInfo, Supervisor};
use crate::timefmt;

/// Why the lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("{}", held_message(.path, .holder))]
    Held { path: PathBuf, holder: Box<Holder> },
    #[error("cannot create the lock directory {dir}: {source}. Create it (mkdir -p {dir}) or set service.lock_file to a writable path")]
    CreateDir {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open the lock file {path}: {source}. Check its permissions, or set service.lock_file to a path this user can open")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot lock {path}: {errno}")]
    Flock { path: PathBuf, errno: Errno },
}

/// What is known about the process holding the lock.
#[derive(Debug, Clone, Default)]
pub struct Holder {
    /// The lock file's `key=value` lines, as the holder wrote them.
    pub recorded: Vec<(String, String)>,
    /// The live process named by the file's `pid`, when visible and it is the
    /// same process (same start time) that wrote the file.
    pub live: Option<ProcessInfo>,
}

impl Holder {
    fn get(&self, key: &str) -> Option<&str> {
        self.recorded
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The holder's PID as recorded in the lock file.
    pub fn pid(&self) -> Option<i32> {
        self.get("pid").and_then(|p| p.parse().ok())
    }

    /// What runs the holder: from the live process, else from the recorded cgroup.
    pub fn supervisor(&self) -> Supervisor {
        match &self.live {
            Some(p) => p.supervisor.clone(),
            None => self
                .get("cgroup")
                .map(super::process::classify_cgroup)
                .unwrap_or(Supervisor::Unknown),
        }
    }

    /// Reads the holder's details from the lock file's contents.
    pub fn from_contents(text: &str) -> Self {
        let recorded: Vec<(String, String)> = text
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            .collect();
        let mut holder = Self {
            recorded,
            live: None,
        };
        if let Some(pid) = holder.pid() {
            let recorded_start: Option<u64> =
                holder.get("start_ticks").and_then(|s| s.parse().ok());
            holder.live = ProcessInfo::read(pid)
                .filter(|p| recorded_start.is_none_or(|s| s == p.start_ticks));
        }
        holder
    }
}

fn held_message(path: &Path, holder: &Holder) -> String {
    let Some(pid) = holder.pid() else {
        return format!(
            "another cryptosat instance holds the lock {} but has not written its details yet; \
             find it with: fuser -v {} (or lsof {})",
            path.display(),
            path.display(),
            path.display()
        );
    };
    let cmdline = holder
        .live
        .as_ref()
        .map(|p| p.cmdline.clone())
        .or_else(|| holder.get("cmdline").map(str::to_owned))
        .unwrap_or_else(|| "?".into());
    let started = holder
        .get("started_at")
        .map(str::to_owned)
        .unwrap_or_else(|| "at an unknown time".into());
    let supervisor = holder.supervisor();
    let visibility = if holder.live.is_none() {
        " (its /proc entry is not visible from here, e.g. another PID namespace; details are from the lock file)"
    } else {
        ""
    };
    format!(
        "another cryptosat instance is already running on this host: PID {pid} ({cmdline}), started {started}, \
         run by {supervisor}{visibility}. Only one instance may poll a bot token. \
         To stop it: {}. Lock file: {}",
        supervisor.stop_hint(pid),
        path.display()
    )
}

/// The held lock. Dropping it (or exiting, or crashing) releases it; the file
/// stays in place.
#[derive(Debug)]
pub struct InstanceLock {
    _lock: Flock<File>,
    path: PathBuf,
}

impl InstanceLock {
    /// Takes the lock or explains who holds it. Never blocks.
    pub fn acquire(path: &Path) -> Result<Self, LockError> {
        if let Some(dir) = path.parent() {
            if !dir.as_os_str().is_empty() && !dir.exists() {
                std::fs::create_dir_all(dir).map_err(|source| LockError::CreateDir {
                    dir: dir.to_owned(),
                    source,
                })?;
            }
        }
        let file = open_without_truncating(path)?;
        let mut locked = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(l) => l,
            Err((file, Errno::EWOULDBLOCK)) => {
                return Err(LockError::Held {
                    path: path.to_owned(),
                    holder: Box::new(read_holder(file)),
                })
            }
            Err((_, errno)) => {
                return Err(LockError::Flock {
                    path: path.to_owned(),
                    errno,
                })
            }
        };
        // Only now, holding the lock, may the file be rewritten. A failure here
        // (read-only file opened by another user) costs diagnostics, not safety.
        if let Err(e) = write_details(&mut locked) {
            tracing::warn!(
                lock_file = %path.display(),
                "holding the lock, but could not record this process in the lock file: {e}"
            );
        }
        Ok(Self {
            _lock: locked,
            path: path.to_owned(),
        })
    }

    /// The lock file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Opens the file for writing (creating it 0644 so that any user can inspect
/// and lock it), or read-only when it belongs to somebody else: `flock` works on
/// a read-only descriptor too.
fn open_without_truncating(path: &Path) -> Result<File, LockError> {
    let rw = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o644)
        .open(path);
    let file = match rw {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => OpenOptions::new()
            .read(true)
            .open(path)
            .map_err(|source| LockError::Open {
                path: path.to_owned(),
                source,
            })?,
        Err(source) => {
            return Err(LockError::Open {
                path: path.to_owned(),
                source,
            })
        }
    };
    Ok(file)
}

/// Reads the holder's details. The holder writes them right after locking, so
/// an empty file means it is in that instant: look again briefly.
fn read_holder(mut file: File) -> Holder {
    let mut text = String::new();
    for _ in 0..20 {
        text.clear();
        if file.seek(SeekFrom::Start(0)).is_ok()
            && file.read_to_string(&mut text).is_ok()
            && text.contains("pid=")
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Holder::from_contents(&text)
}

fn write_details(file: &mut File) -> std::io::Result<()> {
    let pid = std::process::id() as i32;
    let me = ProcessInfo::read(pid);
    let started_at = me
        .as_ref()
        .and_then(|p| p.started_at)
        .unwrap_or_else(SystemTime::now);
    let mut text = format!(
        "# cryptosat single-instance lock; details for diagnostics only, never delete this file\n\
         pid={pid}\nstarted_at={}\n",
        timefmt::utc(started_at)
    );
    if let Some(me) = &me {
        text.push_str(&format!(
            "start_ticks={}\ncmdline={}\ncgroup={}\nunit={}\n",
            me.start_ticks,
            me.cmdline.replace('\n', " "),
            me.cgroup,
            match &me.supervisor {
                Supervisor::SystemdService(u) => u.as_str(),
                _ => "",
            }
        ));
    }
    file.set_len(0)?;
    file.seek(SeekFrom::Start(0))?;
    file.write_all(text.as_bytes())?;
    file.sync_data()?;
    // Keep the file readable by other users (e.g. `cryptosat doctor` run by an
    // operator) whatever the umask was.
    let _ = file.set_permissions(std::fs::Permissions::from_mode(0o644));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_in_same_process_is_refused_with_details() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/dir/cryptosat.lock");
        let held = InstanceLock::acquire(&path).unwrap();
        let before = std::fs::read_to_string(&path).unwrap();
        assert!(before.contains(&format!("pid={}", std::process::id())));
        // flock locks belong to the open file description: a second open in the
        // same process conflicts too, which is what makes this testable here.
        let err = InstanceLock::acquire(&path).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("PID {}", std::process::id())),
            "{msg}"
        );
        assert!(msg.contains("To stop it:"), "{msg}");
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            before,
            "refused instance changed the file"
        );
        drop(held);
        assert!(path.exists(), "lock file must never be unlinked");
        InstanceLock::acquire(&path).unwrap();
    }

    #[test]
    fn unwritable_lock_directory_is_a_clear_error() {
        let err = InstanceLock::acquire(Path::new("/proc/cryptosat-test/x.lock")).unwrap_err();
        assert!(matches!(err, LockError::CreateDir { .. }), "{err}");
        assert!(err.to_string().contains("service.lock_file"), "{err}");
    }

    #[test]
    fn holder_without_details_is_explained() {
        let holder = Holder::from_contents("");
        let msg = held_message(Path::new("/run/x.lock"), &holder);
        assert!(msg.contains("fuser -v /run/x.lock"), "{msg}");
    }
}
