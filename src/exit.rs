//! Process exit codes. They are part of the service's interface: the unit file's
//! `RestartPreventExitStatus=` and the README's table rely on them.

/// Clean stop (SIGTERM/SIGINT, or a command that succeeded).
pub const OK: u8 = 0;
/// A fatal runtime error that a restart may cure.
pub const FATAL: u8 = 1;
/// The command line could not be parsed (clap's own code).
pub const USAGE: u8 = 2;
/// `telegram.on_conflict = "exit"` gave up: another poller uses this bot token
/// elsewhere. A restart would only fight it again, so the unit does not restart.
pub const TELEGRAM_CONFLICT: u8 = 69;
/// The database could not be opened, migrated or written (EX_IOERR).
pub const STORAGE: u8 = 74;
/// Another instance on this host holds the single-instance lock (EX_TEMPFAIL).
pub const LOCKED: u8 = 75;
/// Bad configuration or a missing/malformed secret (EX_CONFIG). Restarting cannot
/// help until an operator edits something, so the unit does not restart on it.
pub const CONFIG: u8 = 78;
