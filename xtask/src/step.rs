//! Progress: one line per step with its duration.

use std::time::Instant;

use anyhow::Result;

/// Runs `f` as a named step and prints `name ... done in 12.3s` (or the
/// failure) when it ends.
pub fn step<T>(name: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    eprintln!("xtask: {name} ...");
    let start = Instant::now();
    let out = f();
    let secs = start.elapsed().as_secs_f64();
    match &out {
        Ok(_) => eprintln!("xtask: {name}: done in {}", human(secs)),
        Err(_) => eprintln!("xtask: {name}: FAILED after {}", human(secs)),
    }
    out
}

/// A step whose result was already cached.
pub fn cached(name: &str, what: &str) {
    eprintln!("xtask: {name}: cached ({what})");
}

pub fn human(secs: f64) -> String {
    if secs < 60.0 {
        format!("{secs:.1}s")
    } else {
        format!("{}m{:02}s", (secs / 60.0) as u64, secs as u64 % 60)
    }
}
