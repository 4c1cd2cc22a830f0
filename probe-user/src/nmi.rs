//! An NMI source for machines without a PMU (QEMU TCG among them): sysrq-l
//! sends an NMI backtrace IPI to every other CPU, and the NMI handlers it
//! runs fire the `nmi_handler` tracepoint in NMI context.

use std::{
    fs::OpenOptions,
    io::Write,
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread::JoinHandle,
    time::Duration,
};

use anyhow::{Context, Result};
use serde::Serialize;

const SYSRQ: &str = "/proc/sysrq-trigger";

pub fn available() -> bool {
    Path::new(SYSRQ).exists()
}

pub struct SysrqNmi {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

#[derive(Debug, Serialize)]
pub struct NmiSourceReport {
    /// "sysrq-l" (NMI backtrace IPIs) or "pmu" (perf overflows).
    pub kind: &'static str,
    pub rate_hz: u32,
    /// sysrq-l requests made.
    pub sent: u64,
}

impl SysrqNmi {
    pub fn start(rate_hz: u32) -> Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let mut file =
            OpenOptions::new().write(true).open(SYSRQ).with_context(|| format!("cannot open {SYSRQ}"))?;
        let (s, n) = (stop.clone(), sent.clone());
        let period = Duration::from_millis(1000 / rate_hz.max(1) as u64);
        let thread = std::thread::Builder::new()
            .name("nmi-source".into())
            .spawn(move || {
                while !s.load(Ordering::Relaxed) {
                    if file.write_all(b"l").is_ok() {
                        n.fetch_add(1, Ordering::Relaxed);
                    }
                    std::thread::sleep(period);
                }
            })
            .context("cannot start the NMI source thread")?;
        Ok(SysrqNmi { stop, sent, thread: Some(thread) })
    }

    pub fn stop(&mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.sent.load(Ordering::Relaxed)
    }
}

impl Drop for SysrqNmi {
    fn drop(&mut self) {
        self.stop();
    }
}
