//! An NMI source for machines without a PMU (QEMU TCG among them): sysrq-l
//! sends an NMI backtrace IPI to every other CPU, and the NMI handlers it
//! runs fire the `nmi_handler` tracepoint in NMI context.

use std::{fs::OpenOptions, io::Write, path::Path};

use anyhow::{Context, Result};

use super::pacer::Pacer;

const SYSRQ: &str = "/proc/sysrq-trigger";

pub fn available() -> bool {
    Path::new(SYSRQ).exists()
}

pub struct SysrqNmi(Pacer);

impl SysrqNmi {
    pub fn start(rate_hz: u32) -> Result<Self> {
        let mut file =
            OpenOptions::new().write(true).open(SYSRQ).with_context(|| format!("cannot open {SYSRQ}"))?;
        Ok(SysrqNmi(Pacer::start("nmi-source", rate_hz, move || file.write_all(b"l").is_ok())?))
    }

    /// Stops sending; returns the requests made.
    pub fn stop(&mut self) -> u64 {
        self.0.stop()
    }
}
