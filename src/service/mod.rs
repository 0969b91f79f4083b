//! Service lifecycle: the single-instance lock, systemd notify and watchdog,
//! signals, logging and health reporting.

pub mod health;
pub mod lifecycle;
pub mod lock;
pub mod logging;
pub mod notify;
pub mod process;
pub mod signals;
pub mod watchdog;
