//! The gcov counters of a coverage kernel (`--kernel-config coverage`):
//! reset when the stress starts, so what `cargo xtask coverage` reads back
//! after the run is what the triggers, the drain and the unload reached,
//! not the boot or the BPF verifier.

use std::{fs, path::Path};

use anyhow::{Context, Result};

const RESET: &str = "/sys/kernel/debug/gcov/reset";

/// Zeroes every gcov counter; false on a kernel without gcov.
pub fn reset() -> Result<bool> {
    if !Path::new(RESET).exists() {
        return Ok(false);
    }
    fs::write(RESET, "1")
        .with_context(|| format!("cannot reset the kernel's coverage counters ({RESET})"))?;
    Ok(true)
}
