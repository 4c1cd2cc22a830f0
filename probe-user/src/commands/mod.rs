//! One module per subcommand, each with its Args, and what `run` and
//! `bench` share: start-up checks and writing the result.

pub mod bench;
pub mod compare;
pub mod export;
pub mod list;
pub mod report;
pub mod run;
mod session;
pub mod validate;

use std::io::{ErrorKind, Write};

use anyhow::{Context, Result};

/// Writes `text` to stdout. A reader that went away (`| head`) is no
/// error: it has what it wanted, and the command still exits as it would.
pub fn print(text: &str) -> Result<()> {
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() == ErrorKind::BrokenPipe => Ok(()),
        r => r.context("cannot write to stdout"),
    }
}
