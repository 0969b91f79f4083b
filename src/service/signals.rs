//! Unix signals the service reacts to.

use tokio::signal::unix::{signal, Signal, SignalKind};

/// What a received signal asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// SIGTERM or SIGINT: graceful shutdown (a second one forces exit).
    Shutdown(&'static str),
    /// SIGHUP: reload the configuration.
    Reload,
}

/// The signal streams, installed once at startup.
pub struct Signals {
    term: Signal,
    int: Signal,
    hup: Signal,
}

impl Signals {
    /// Installs handlers for SIGTERM, SIGINT and SIGHUP.
    pub fn install() -> std::io::Result<Self> {
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    /// Waits for the next signal.
    pub async fn next(&mut self) -> Request {
        tokio::select! {
            _ = self.term.recv() => Request::Shutdown("SIGTERM"),
            _ = self.int.recv() => Request::Shutdown("SIGINT"),
            _ = self.hup.recv() => Request::Reload,
        }
    }
}
