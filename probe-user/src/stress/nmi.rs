//! NMIs for the nmi trigger (tp_btf `nmi_handler`) on machines without a
//! PMU (QEMU TCG among them). Two sources, best first:
//!
//! - NMI IPIs from the kernel (patch 0004): writing a rate to
//!   `<debugfs>/slab_nolock/nmi_ipi_rate` makes every online CPU send that
//!   many NMIs a second to the next one; the kernel's handler claims them,
//!   and the tracepoint fires in NMI for each. Thousands a second are fine.
//! - sysrq-l, on kernels without it: an NMI backtrace IPI to every other
//!   CPU, each of which prints its stack to the console, so a few rounds a
//!   second at most (`SYSRQ_MAX_HZ`).

use std::{
    fs::{self, OpenOptions},
    io::Write,
    path::Path,
};

use anyhow::{Context, Result};

use super::pacer::Pacer;

const SYSRQ: &str = "/proc/sysrq-trigger";
const IPI_RATE: &str = "/sys/kernel/debug/slab_nolock/nmi_ipi_rate";
const IPI_SENT: &str = "/sys/kernel/debug/slab_nolock/nmi_ipi_sent";

/// sysrq-l rounds a second at most, whatever the plan asks for: each one
/// prints every CPU's backtrace to the console.
pub const SYSRQ_MAX_HZ: u32 = 10;

/// Where NMIs come from, in the result's `nmi_source.kind` words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The kernel's NMI IPIs (patch 0004).
    Ipi,
    /// sysrq-l NMI backtraces.
    Sysrq,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Ipi => "nmi-ipi",
            Kind::Sysrq => "sysrq-l",
        }
    }
}

/// The best NMI source of the running kernel, if it has one.
pub fn source() -> Option<Kind> {
    if Path::new(IPI_RATE).exists() {
        Some(Kind::Ipi)
    } else if Path::new(SYSRQ).exists() {
        Some(Kind::Sysrq)
    } else {
        None
    }
}

pub fn available() -> bool {
    source().is_some()
}

/// A running NMI source; stopped by `stop` or when dropped.
pub struct NmiSource {
    kind: Kind,
    rate_hz: u32,
    run: Running,
}

enum Running {
    /// `nmi_ipi_sent` when it started; `None` once stopped.
    Ipi(Option<u64>),
    Sysrq(Pacer),
}

impl NmiSource {
    /// Starts the best source at `rate_hz` NMIs a second per CPU (sysrq-l:
    /// at most `SYSRQ_MAX_HZ` rounds); `None` when there is none.
    pub fn start(rate_hz: u32) -> Result<Option<Self>> {
        match source() {
            Some(Kind::Ipi) => {
                let before = read_u64(IPI_SENT)?;
                set_ipi_rate(rate_hz)?;
                Ok(Some(NmiSource { kind: Kind::Ipi, rate_hz, run: Running::Ipi(Some(before)) }))
            }
            Some(Kind::Sysrq) => {
                let rate_hz = rate_hz.min(SYSRQ_MAX_HZ);
                let mut file = OpenOptions::new()
                    .write(true)
                    .open(SYSRQ)
                    .with_context(|| format!("cannot open {SYSRQ}"))?;
                let pacer = Pacer::start("nmi-source", rate_hz, move || file.write_all(b"l").is_ok())?;
                Ok(Some(NmiSource { kind: Kind::Sysrq, rate_hz, run: Running::Sysrq(pacer) }))
            }
            None => Ok(None),
        }
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The rate it runs at: NMIs a second per CPU, or sysrq-l rounds.
    pub fn rate_hz(&self) -> u32 {
        self.rate_hz
    }

    /// Stops sending; returns the NMIs sent (sysrq-l: the requests made).
    pub fn stop(&mut self) -> u64 {
        match &mut self.run {
            Running::Ipi(before) => match before.take() {
                Some(before) => {
                    if let Err(e) = set_ipi_rate(0) {
                        eprintln!("nolock-probe: cannot stop the NMI IPIs: {e:#}");
                    }
                    read_u64(IPI_SENT).map_or(0, |after| after.saturating_sub(before))
                }
                None => 0,
            },
            Running::Sysrq(pacer) => pacer.stop(),
        }
    }
}

impl Drop for NmiSource {
    fn drop(&mut self) {
        // The IPIs go on in the kernel until told to stop (the pacer stops
        // itself).
        if let Running::Ipi(Some(_)) = self.run {
            self.stop();
        }
    }
}

fn set_ipi_rate(rate_hz: u32) -> Result<()> {
    fs::write(IPI_RATE, format!("{rate_hz}\n"))
        .with_context(|| format!("cannot set the NMI IPI rate to {rate_hz} in {IPI_RATE}"))
}

fn read_u64(path: &str) -> Result<u64> {
    let text = fs::read_to_string(path).with_context(|| format!("cannot read {path}"))?;
    text.trim().parse().with_context(|| format!("{path} holds {text:?}, not a number"))
}
