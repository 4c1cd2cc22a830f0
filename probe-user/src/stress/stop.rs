//! Ctrl-C and SIGTERM: they end a run or a bench early, which still
//! detaches, drains and reports what it measured.

use std::time::Duration;

use anyhow::{Context, Result};
use tokio::signal::unix::{Signal, SignalKind, signal};

/// Registered before anything is loaded, so a signal that comes while
/// the programs load or attach is kept for the first wait, not lost or
/// left to kill the process halfway.
pub struct Stop {
    int: Signal,
    term: Signal,
}

impl Stop {
    /// Needs a tokio runtime entered (`Runtime::enter`).
    pub fn new() -> Result<Self> {
        Ok(Stop {
            int: signal(SignalKind::interrupt()).context("cannot handle SIGINT")?,
            term: signal(SignalKind::terminate()).context("cannot handle SIGTERM")?,
        })
    }

    /// Completes when SIGINT or SIGTERM arrives (or has arrived).
    pub async fn signalled(&mut self) {
        tokio::select! {
            _ = self.int.recv() => {}
            _ = self.term.recv() => {}
        }
    }

    /// Sleeps for `d`; true when a signal came first.
    pub async fn pause(&mut self, d: Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(d) => false,
            _ = self.signalled() => true,
        }
    }
}

/// The current-thread runtime the waits run on.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread().enable_all().build().context("cannot start tokio")
}
