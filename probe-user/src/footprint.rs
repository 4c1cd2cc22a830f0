//! The loader's own footprint while it measures: the CPU time of the
//! thread that watches (the current-thread runtime runs on the main
//! thread; the stress runs on threads of its own, which are the load, not
//! the loader's cost) and the resident memory of the process.

use std::{collections::BTreeMap, time::Instant};

use probe_result::run::LoaderFootprint;

/// Started when the triggers are attached; sampled once a second.
pub struct Footprint {
    started: Instant,
    cpu_at_start_s: f64,
    rss_peak_bytes: u64,
    last_sample: Instant,
    max_sample_gap_s: f64,
    /// CPU time charged to what the loader did (`charge()`), in seconds.
    activities: BTreeMap<&'static str, f64>,
}

/// A sample this late says the loader was starved, not busy.
pub const STARVED_GAP_S: f64 = 3.0;

impl Footprint {
    /// Must be called on the thread that will do the watching.
    pub fn start() -> Footprint {
        let now = Instant::now();
        Footprint {
            started: now,
            cpu_at_start_s: thread_cpu_s(),
            rss_peak_bytes: rss_bytes(),
            last_sample: now,
            max_sample_gap_s: 0.0,
            activities: BTreeMap::new(),
        }
    }

    /// Runs `f` on this thread and charges the CPU time it took to `what`
    /// (`activity::*`), so that the report says where the loader's own
    /// time goes.
    pub fn charge<T>(&mut self, what: &'static str, f: impl FnOnce() -> T) -> T {
        let before = thread_cpu_s();
        let out = f();
        *self.activities.entry(what).or_default() += (thread_cpu_s() - before).max(0.0);
        out
    }

    /// Records the resident set now, and how long since the last sample;
    /// returns that gap when it says the loader was starved.
    pub fn sample(&mut self) -> Option<f64> {
        self.rss_peak_bytes = self.rss_peak_bytes.max(rss_bytes());
        self.gap_to(Instant::now())
    }

    fn gap_to(&mut self, now: Instant) -> Option<f64> {
        let gap = now.saturating_duration_since(self.last_sample).as_secs_f64();
        self.last_sample = now;
        self.max_sample_gap_s = self.max_sample_gap_s.max(gap);
        (gap > STARVED_GAP_S).then_some(gap)
    }

    /// The footprint from `start()` to now, on the same thread.
    pub fn finish(mut self) -> LoaderFootprint {
        self.rss_peak_bytes = self.rss_peak_bytes.max(rss_bytes());
        let window_s = self.started.elapsed().as_secs_f64();
        let cpu_s = (thread_cpu_s() - self.cpu_at_start_s).max(0.0);
        let mut cpu_by_activity_s: BTreeMap<String, f64> =
            self.activities.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        let charged: f64 = cpu_by_activity_s.values().sum();
        cpu_by_activity_s.insert(activity::OTHER.into(), (cpu_s - charged).max(0.0));
        LoaderFootprint {
            cpu_by_activity_s,
            window_s,
            cpu_s,
            cpu_pct: if window_s > 0.0 { cpu_s * 100.0 / window_s } else { 0.0 },
            rss_peak_bytes: self.rss_peak_bytes,
            rss_hwm_bytes: status_kib("VmHWM:").map_or(self.rss_peak_bytes, |k| k * 1024),
            max_sample_gap_s: self.max_sample_gap_s,
        }
    }
}

/// What the loader's CPU time is charged to.
pub mod activity {
    /// Reading the BPF maps (counters, the bench's pairs).
    pub const MAPS: &str = "maps";
    /// Progress lines and the stream: under QEMU every byte goes through
    /// an emulated serial port.
    pub const OUTPUT: &str = "output";
    /// Attaching and detaching programs while measuring (the bench's
    /// observers, each round).
    pub const ATTACH: &str = "attach";
    /// Reading the kernel's SLUB_STATS files.
    pub const SLUB_STATS: &str = "slub_stats";
    /// The rest: the runtime, timers, the footprint's own samples, and BPF
    /// programs that fire in the loader's system calls.
    pub const OTHER: &str = "other";
}

/// User and system CPU time of the calling thread, in seconds.
fn thread_cpu_s() -> f64 {
    // SAFETY: getrusage() fills the struct it is given; zeroed is a valid
    // value of it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above; RUSAGE_THREAD is the calling thread.
    if unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut usage) } != 0 {
        return 0.0;
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// The process's resident set now (VmRSS), in bytes.
fn rss_bytes() -> u64 {
    status_kib("VmRSS:").map_or(0, |k| k * 1024)
}

/// A `kB` field of /proc/self/status.
fn status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_kib(&status, field)
}

fn parse_kib(status: &str, field: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(field))?;
    line[field.len()..].trim().strip_suffix("kB")?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_late_sample_says_the_loader_was_starved() {
        use std::time::Duration;
        let mut f = Footprint::start();
        let t0 = f.last_sample;
        assert_eq!(f.gap_to(t0 + Duration::from_secs(1)), None);
        let late = f.gap_to(t0 + Duration::from_millis(5500)).expect("4.5 s late is starved");
        assert!((late - 4.5).abs() < 1e-9, "{late}");
        assert_eq!(f.gap_to(t0 + Duration::from_millis(6500)), None);
        assert!((f.finish().max_sample_gap_s - 4.5).abs() < 1e-9);
    }

    #[test]
    fn status_fields_are_read_in_kib() {
        let status = "Name:\tnolock-probe\nVmHWM:\t   40960 kB\nVmRSS:\t   12288 kB\n";
        assert_eq!(parse_kib(status, "VmHWM:"), Some(40960));
        assert_eq!(parse_kib(status, "VmRSS:"), Some(12288));
        assert_eq!(parse_kib(status, "VmSwap:"), None);
        assert_eq!(parse_kib("VmRSS:\tmany\n", "VmRSS:"), None);
    }

    /// The thread's own CPU time grows with work on it, and a footprint of
    /// this process reports a resident set.
    #[test]
    fn a_busy_thread_shows_cpu_time_and_memory() {
        let f = Footprint::start();
        let mut x = 0u64;
        let until = Instant::now() + std::time::Duration::from_millis(50);
        while Instant::now() < until {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        let r = f.finish();
        assert!(r.cpu_s > 0.0 && r.cpu_s <= r.window_s * 1.5, "{r:?}");
        assert_eq!(r.cpu_by_activity_s[activity::OTHER], r.cpu_s, "{r:?}");
        assert!(r.cpu_pct > 10.0, "{r:?}");
        assert!(r.rss_peak_bytes > 0 && r.rss_hwm_bytes >= r.rss_peak_bytes / 2, "{r:?}");
    }

    /// Work done inside charge() is charged to its activity, the rest to
    /// "other", and the parts add up to the whole.
    #[test]
    fn charged_work_is_told_apart() {
        let mut f = Footprint::start();
        // Spins for CPU time, not wall time: a loaded machine must not matter.
        let spin = |s: f64| {
            let until = thread_cpu_s() + s;
            let mut x = 0u64;
            while thread_cpu_s() < until {
                x = std::hint::black_box(x.wrapping_add(1));
            }
        };
        f.charge(activity::MAPS, || spin(0.06));
        spin(0.02);
        let r = f.finish();
        let maps = r.cpu_by_activity_s[activity::MAPS];
        let sum: f64 = r.cpu_by_activity_s.values().sum();
        assert!(maps >= 0.06 && maps > r.cpu_by_activity_s[activity::OTHER], "{r:?}");
        assert!((sum - r.cpu_s).abs() < 1e-6, "{r:?}");
    }
}
