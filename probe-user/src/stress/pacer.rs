//! A thread that does one thing at a steady rate until it is stopped, and
//! counts the times it worked: the NMI source and the expedited grace
//! periods.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread::JoinHandle,
    time::Duration,
};

use anyhow::{Context, Result};

pub struct Pacer {
    stop: Arc<AtomicBool>,
    done: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl Pacer {
    /// Runs `action` `rate_hz` times a second on a thread named `name`;
    /// `action` says whether it worked.
    pub fn start(
        name: &str,
        rate_hz: u32,
        mut action: impl FnMut() -> bool + Send + 'static,
    ) -> Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicU64::new(0));
        let (s, n) = (stop.clone(), done.clone());
        let period = Duration::from_secs(1) / rate_hz.max(1);
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                while !s.load(Ordering::Relaxed) {
                    if action() {
                        n.fetch_add(1, Ordering::Relaxed);
                    }
                    std::thread::sleep(period);
                }
            })
            .with_context(|| format!("cannot start the {name} thread"))?;
        Ok(Pacer { stop, done, thread: Some(thread) })
    }

    /// Stops the thread; returns how many times the action worked.
    pub fn stop(&mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.done.load(Ordering::Relaxed)
    }
}

impl Drop for Pacer {
    fn drop(&mut self) {
        self.stop();
    }
}
