//! Storage faults at start: an unusable db path, a full disk, a corrupt file,
//! a db from a newer release. Each must stop the real binary with exit 74
//! (EX_IOERR) and a message that says what to do, and must never overwrite,
//! delete or "repair" the operator's database. Also: subscriptions survive a
//! start and a stop.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;
use cryptosat::alerts::AlertKind;
use cryptosat::exit;
use cryptosat::store::{Store, Subscription};
use nix::sys::signal::Signal;

/// A config like [`Scratch::config`] but with the database at `db`.
fn config_with_db(s: &Scratch, telegram_url: &str, db: &Path) -> PathBuf {
    let config = s.config(telegram_url, "");
    let default_db = format!("{:?}", s.path("cryptosat.db").display().to_string());
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(
        text.contains(&default_db),
        "unexpected config layout:\n{text}"
    );
    let text = text.replace(&default_db, &format!("{:?}", db.display().to_string()));
    std::fs::write(&config, text).unwrap();
    config
}

/// Runs `cryptosat run` against an unreachable Telegram and expects exit 74.
fn expect_storage_exit(config: &Path) -> String {
    let (code, out) = run_to_end(config, &["run"], &[]);
    assert_eq!(
        code,
        i32::from(exit::STORAGE),
        "expected exit 74 (storage):\n{out}"
    );
    assert_no_secret(&out);
    out
}

/// A database with the current schema and two subscriptions of chat 42.
fn make_db(path: &Path) {
    let store = Store::open(path).expect("create db");
    store.upsert_chat(42, "private", "alice").unwrap();
    store
        .subscribe(42, "BTC", &[AlertKind::Liquidations, AlertKind::Whales])
        .unwrap();
    store.close().unwrap();
}

fn subscriptions_of_42(path: &Path) -> Vec<Subscription> {
    let store = Store::open(path).expect("reopen db");
    let mut subs = store.subscriptions(42).unwrap();
    subs.sort_by_key(|s| s.kind.as_str());
    subs
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

#[test]
fn db_path_under_a_regular_file_is_a_clear_error() {
    // Works as root too (permissions would not stop root; ENOTDIR does).
    let s = Scratch::new();
    let afile = s.path("afile");
    std::fs::write(&afile, "not a directory").unwrap();
    let config = config_with_db(&s, &refused_url(), &afile.join("cryptosat.db"));
    let out = expect_storage_exit(&config);
    assert!(out.contains("cannot open database"), "{out}");
    assert!(out.contains("afile/cryptosat.db"), "{out}");
    assert!(out.contains("storage.path"), "says what to fix:\n{out}");
    assert_eq!(std::fs::read(&afile).unwrap(), b"not a directory");
}

#[test]
fn db_in_a_missing_directory_is_a_clear_error() {
    let s = Scratch::new();
    let config = config_with_db(&s, &refused_url(), &s.path("no/such/dir/cryptosat.db"));
    let out = expect_storage_exit(&config);
    assert!(
        out.contains("directory exists") && out.contains("storage.path"),
        "{out}"
    );
}

#[test]
fn unwritable_directory_is_a_clear_error() {
    // Root bypasses mode bits, so as root use a read-only bind mount instead.
    let s = Scratch::new();
    let dir = s.path("ro");
    std::fs::create_dir(&dir).unwrap();
    let _mount = if is_root() {
        match Mount::bind_read_only(&dir) {
            Ok(m) => Some(m),
            Err(why) => {
                eprintln!("SKIP unwritable_directory_is_a_clear_error: {why}");
                return;
            }
        }
    } else {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o500)).unwrap();
        None
    };
    let config = config_with_db(&s, &refused_url(), &dir.join("cryptosat.db"));
    let out = expect_storage_exit(&config);
    assert!(out.contains("cannot open database"), "{out}");
    assert!(out.contains("writable by the service user"), "{out}");
    if !is_root() {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    }
}

#[test]
fn garbage_db_is_reported_corrupt_and_left_untouched() {
    let s = Scratch::new();
    let db = s.path("cryptosat.db");
    let garbage: Vec<u8> = (0..16384u32).map(|i| (i * 7 + 13) as u8).collect();
    std::fs::write(&db, &garbage).unwrap();
    let config = config_with_db(&s, &refused_url(), &db);
    let out = expect_storage_exit(&config);
    assert!(out.contains("corrupt"), "{out}");
    assert!(
        out.contains("restore it from a backup"),
        "says what to do:\n{out}"
    );
    assert_eq!(std::fs::read(&db).unwrap(), garbage, "db file was modified");
    assert!(!s.path("cryptosat.db-wal").exists() || wal_is_empty(&s));
}

fn wal_is_empty(s: &Scratch) -> bool {
    std::fs::metadata(s.path("cryptosat.db-wal"))
        .map(|m| m.len() == 0)
        .unwrap_or(true)
}

#[test]
fn corrupted_page_is_found_by_the_startup_integrity_check() {
    // A valid header and schema, but the pages of a table's b-tree are
    // overwritten: only reading the tree (quick_check) notices.
    let s = Scratch::new();
    let db = s.path("cryptosat.db");
    make_db(&db);
    {
        let c = rusqlite_open(&db);
        // Enough rows that `subscriptions` spans interior and leaf pages.
        for i in 0..2000 {
            c.execute(
                "INSERT INTO subscriptions (chat_id, symbol, kind, created_at) VALUES (42, ?1, 'whales', 0)",
                [format!("SYM{i}")],
            )
            .unwrap();
        }
        // Everything into the main file, so the corruption below is all there is.
        c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);").unwrap();
    }
    let root: i64 = rusqlite_open(&db)
        .query_row(
            "SELECT rootpage FROM sqlite_schema WHERE name = 'subscriptions'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let mut bytes = std::fs::read(&db).unwrap();
    let page_size = u16::from_be_bytes([bytes[16], bytes[17]]) as usize;
    let page_size = if page_size == 1 { 65536 } else { page_size };
    // Smash the root page of `subscriptions` (not page 1: the header stays valid).
    let start = (root as usize - 1) * page_size;
    assert!(root > 1 && start + page_size <= bytes.len());
    for b in &mut bytes[start..start + page_size] {
        *b = 0xa5;
    }
    std::fs::write(&db, &bytes).unwrap();

    let config = config_with_db(&s, &refused_url(), &db);
    let out = expect_storage_exit(&config);
    assert!(out.contains("corrupt"), "{out}");
    assert!(out.contains("restore it from a backup"), "{out}");
    assert_eq!(std::fs::read(&db).unwrap(), bytes, "db file was modified");
}

#[test]
fn db_from_a_newer_release_is_refused_and_left_untouched() {
    let s = Scratch::new();
    let db = s.path("cryptosat.db");
    make_db(&db);
    rusqlite_open(&db)
        .execute_batch("PRAGMA wal_checkpoint(TRUNCATE); PRAGMA user_version = 999;")
        .unwrap();
    let before = std::fs::read(&db).unwrap();
    let config = config_with_db(&s, &refused_url(), &db);
    let out = expect_storage_exit(&config);
    assert!(out.contains("schema version 999"), "{out}");
    assert!(
        out.contains("supports at most"),
        "names both versions:\n{out}"
    );
    assert!(out.contains("Upgrade cryptosat"), "says what to do:\n{out}");
    assert_eq!(std::fs::read(&db).unwrap(), before, "db file was modified");
}

#[test]
fn subscriptions_survive_a_start_and_a_stop() {
    let rt = runtime();
    let tg = fake_telegram(&rt);
    let s = Scratch::new();
    let db = s.path("cryptosat.db");
    make_db(&db);
    let want = subscriptions_of_42(&db);
    assert_eq!(want.len(), 2);

    for round in 0..2 {
        let config = config_with_db(&s, &tg.base_url(), &db);
        let notify = NotifySocket::bind(&s.path(&format!("notify{round}")));
        let mut inst = Instance::run(&config, &notify, None, &[]);
        notify
            .wait_for(Duration::from_secs(20), |l| l == "READY=1")
            .unwrap_or_else(|| panic!("no READY=1:\n{}", inst.output()));
        inst.signal(Signal::SIGTERM);
        let status = inst
            .wait_timeout(Duration::from_secs(10))
            .expect("no exit within 10 s of SIGTERM");
        assert_eq!(status.code(), Some(0), "{}", inst.output());
        assert_eq!(subscriptions_of_42(&db), want, "round {round}");
    }
}

#[test]
fn full_disk_at_start_is_a_clear_error_and_keeps_subscriptions() {
    if !is_root() {
        eprintln!("SKIP full_disk_at_start: needs root to mount a tmpfs");
        return;
    }
    let s = Scratch::new();
    let dir = s.path("tiny");
    std::fs::create_dir(&dir).unwrap();
    let mount = match Mount::tmpfs(&dir, "256k") {
        Ok(m) => m,
        Err(why) => {
            eprintln!("SKIP full_disk_at_start: {why}");
            return;
        }
    };

    // 1. A new database on a full disk: exit 74 naming the cause.
    fill(&dir.join("filler-new"));
    let config = config_with_db(&s, &refused_url(), &dir.join("new.db"));
    let out = expect_storage_exit(&config);
    assert!(
        out.to_ascii_lowercase().contains("full"),
        "names the full disk:\n{out}"
    );
    std::fs::remove_file(dir.join("filler-new")).unwrap();
    for f in ["new.db", "new.db-wal", "new.db-shm"] {
        let _ = std::fs::remove_file(dir.join(f));
    }

    // 2. An existing database with subscriptions, then the disk fills up.
    let db = dir.join("cryptosat.db");
    make_db(&db);
    let want = subscriptions_of_42(&db);
    let before = std::fs::read(&db).unwrap();
    fill(&dir.join("filler"));
    let rt = runtime();
    let tg = fake_telegram(&rt);
    let config = config_with_db(&s, &tg.base_url(), &db);
    let notify = NotifySocket::bind(&s.path("notify"));
    let mut inst = Instance::run(&config, &notify, None, &[]);
    // Either a clear storage exit, or it runs; it must not crash or lose data.
    let early = inst.wait_timeout(Duration::from_secs(10));
    let out = match early {
        Some(status) => {
            let out = inst.output();
            assert_eq!(
                status.code(),
                Some(i32::from(exit::STORAGE)),
                "on a full disk: exit 74 or keep running, nothing else:\n{out}"
            );
            // SQLite reports ENOSPC on the -wal/-shm files as a generic
            // "disk I/O error"; the bot asks the filesystem and says it is full.
            assert!(out.contains("cryptosat.db"), "{out}");
            assert!(
                out.contains("is full") && out.contains("Free space"),
                "{out}"
            );
            out
        }
        None => {
            inst.signal(Signal::SIGTERM);
            let status = inst
                .wait_timeout(Duration::from_secs(10))
                .expect("no exit within 10 s of SIGTERM");
            let out = inst.output();
            assert!(
                matches!(status.code(), Some(0) | Some(74)),
                "{status:?}:\n{out}"
            );
            out
        }
    };
    assert_no_secret(&out);
    std::fs::remove_file(dir.join("filler")).unwrap();
    assert_eq!(std::fs::read(&db).unwrap().len(), before.len());
    assert_eq!(subscriptions_of_42(&db), want, "subscriptions lost:\n{out}");
    drop(mount);
}

/// Fills the filesystem of `path` until writes fail with ENOSPC.
fn fill(path: &Path) {
    use std::io::Write;
    let mut f = std::fs::File::create(path).expect("create filler");
    let chunk = [0u8; 4096];
    while f.write_all(&chunk).is_ok() {}
    let _ = f.sync_all();
    // Single bytes, for the last partial block.
    while f.write_all(&[0]).is_ok() {}
}

fn rusqlite_open(path: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(path).unwrap()
}

/// A mount made by the test, unmounted (lazily) on drop.
struct Mount(PathBuf);

impl Mount {
    fn tmpfs(dir: &Path, size: &str) -> Result<Self, String> {
        run_mount(
            &[
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ],
            dir,
        )
    }

    fn bind_read_only(dir: &Path) -> Result<Self, String> {
        let m = run_mount(&["--bind"], dir)?;
        // Read-only needs a remount of the bind.
        let out = Command::new("mount")
            .args(["-o", "remount,bind,ro"])
            .arg(dir)
            .output()
            .map_err(|e| format!("mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "remount ro failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(m)
    }
}

fn run_mount(args: &[&str], dir: &Path) -> Result<Mount, String> {
    let mut cmd = Command::new("mount");
    cmd.args(args);
    if args == ["--bind"] {
        cmd.arg(dir);
    }
    let out = cmd
        .arg(dir)
        .output()
        .map_err(|e| format!("cannot run mount: {e}"))?;
    if out.status.success() {
        Ok(Mount(dir.to_owned()))
    } else {
        Err(format!(
            "mount {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}
