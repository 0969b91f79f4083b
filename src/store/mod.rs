//! Durable state in SQLite: the Telegram update offset and inbox, chats and
//! their subscriptions.
//!
//! The rest of the program sees only [`Store`]'s methods, never SQL, so that a
//! second backend (PostgreSQL for active/standby deployments) can replace it.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension};

mod chats;
mod inbox;
mod migrations;
mod outbox;

pub use chats::{SubscriberCounts, Subscription};
pub use outbox::{Due, NewAlert, OutboxStats, Recorded};

/// Why the database could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open database {path}: {source}. Check that the directory exists and is writable by the service user (storage.path)")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("the filesystem holding database {path} is full ({source}). Free space there and restart; nothing in the database was changed")]
    Full {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("database {path} is corrupt ({detail}). Stop the service, move the file aside and restore it from a backup, or start with an empty database")]
    Corrupt { path: PathBuf, detail: String },
    #[error("database {path} has schema version {found}, but this cryptosat supports at most {supported}: it was written by a newer release. Upgrade cryptosat, or restore a backup made before the downgrade")]
    NewerSchema {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    #[error("database error: {0}")]
    Sql(#[from] rusqlite::Error),
}

/// The database handle. Operations are short; callers on the async runtime may
/// call them directly.
pub struct Store {
    conn: Mutex<Connection>,
    path: PathBuf,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

impl Store {
    /// Opens (creating if needed) and migrates the database at `path`, after a
    /// quick integrity check.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let open_err = |source| StoreError::Open {
            path: path.to_owned(),
            source,
        };
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(open_err)?;
        conn.busy_timeout(Duration::from_secs(5))
            .map_err(open_err)?;
        // The first statements touch the file: a non-database file fails here.
        let journal: String = conn
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .map_err(|e| classify(path, e))?;
        if !journal.eq_ignore_ascii_case("wal") {
            tracing::warn!(path = %path.display(), journal, "SQLite did not switch to WAL mode");
        }
        conn.execute_batch("PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;")
            .map_err(|e| classify(path, e))?;
        let check: String = conn
            .query_row("PRAGMA quick_check", [], |r| r.get(0))
            .map_err(|e| classify(path, e))?;
        if check != "ok" {
            return Err(StoreError::Corrupt {
                path: path.to_owned(),
                detail: check,
            });
        }
        migrations::migrate(&conn, path)?;
        Ok(Self {
            conn: Mutex::new(conn),
            path: path.to_owned(),
        })
    }

    pub(crate) fn conn(&self) -> MutexGuard<'_, Connection> {
        // rusqlite leaves the connection usable after a panic in another thread.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The next `getUpdates` offset: one past the last update fully handled.
    pub fn update_offset(&self) -> Result<i64, StoreError> {
        let v: Option<i64> = self
            .conn()
            .query_row(
                "SELECT value FROM state WHERE key = 'telegram_update_offset'",
                [],
                |r| r.get(0),
            )
            .optional()?;
        Ok(v.unwrap_or(0))
    }

    /// Flushes the WAL into the main file; called on a clean shutdown.
    pub fn close(self) -> Result<(), StoreError> {
        let conn = self.conn.into_inner().unwrap_or_else(|p| p.into_inner());
        conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")?;
        conn.close().map_err(|(_, e)| StoreError::Sql(e))
    }
}

/// Seconds since the Unix epoch (0 if the clock is before 1970).
pub(crate) fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn classify(path: &Path, e: rusqlite::Error) -> StoreError {
    use rusqlite::ffi::ErrorCode;
    match e.sqlite_error_code() {
        Some(ErrorCode::NotADatabase) | Some(ErrorCode::DatabaseCorrupt) => StoreError::Corrupt {
            path: path.to_owned(),
            detail: e.to_string(),
        },
        // SQLite reports ENOSPC on its -wal/-shm files as a plain I/O error:
        // ask the filesystem whether it is full before blaming permissions.
        Some(ErrorCode::DiskFull) => StoreError::Full {
            path: path.to_owned(),
            source: e,
        },
        Some(ErrorCode::SystemIoFailure) if filesystem_full(path) => StoreError::Full {
            path: path.to_owned(),
            source: e,
        },
        _ => StoreError::Open {
            path: path.to_owned(),
            source: e,
        },
    }
}

/// Whether the filesystem holding `path` has no room left for a new page.
fn filesystem_full(path: &Path) -> bool {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    nix::sys::statvfs::statvfs(dir)
        .is_ok_and(|s| s.blocks_available().saturating_mul(s.fragment_size()) < 64 * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        let s = Store::open(&path).unwrap();
        assert_eq!(s.update_offset().unwrap(), 0);
        s.inbox_put(&[(41, "{}".into())], 42).unwrap();
        s.close().unwrap();
        assert_eq!(Store::open(&path).unwrap().update_offset().unwrap(), 42);
    }

    #[test]
    fn garbage_file_is_reported_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        std::fs::write(&path, vec![0x5a; 8192]).unwrap();
        let err = Store::open(&path).unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
        assert!(err.to_string().contains("restore"), "{err}");
    }

    #[test]
    fn newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        Store::open(&path).unwrap().close().unwrap();
        let c = Connection::open(&path).unwrap();
        c.execute_batch("PRAGMA user_version = 999").unwrap();
        drop(c);
        let err = Store::open(&path).unwrap_err().to_string();
        assert!(err.contains("schema version 999"), "{err}");
    }

    #[test]
    fn unwritable_location_is_a_clear_error() {
        let err = Store::open(Path::new("/proc/cryptosat/c.db")).unwrap_err();
        assert!(matches!(err, StoreError::Open { .. }), "{err}");
        assert!(err.to_string().contains("storage.path"), "{err}");
    }
}
