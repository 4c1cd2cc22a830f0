//! The loader's own footprint while it measures: the CPU time of the
//! thread that watches (the current-thread runtime runs on the main
//! thread; the stress runs on threads of its own, which are the load, not
//! the loader's cost) and the resident memory of the process.

use std::time::Instant;

use probe_result::run::LoaderFootprint;

/// Started when the triggers are attached; sampled once a second.
pub struct Footprint {
    started: Instant,
    cpu_at_start_s: f64,
    rss_peak_bytes: u64,
}

impl Footprint {
    /// Must be called on the thread that will do the watching.
    pub fn start() -> Footprint {
        Footprint { started: Instant::now(), cpu_at_start_s: thread_cpu_s(), rss_peak_bytes: rss_bytes() }
    }

    /// Records the resident set now.
    pub fn sample(&mut self) {
        self.rss_peak_bytes = self.rss_peak_bytes.max(rss_bytes());
    }

    /// The footprint from `start()` to now, on the same thread.
    pub fn finish(mut self) -> LoaderFootprint {
        self.sample();
        let window_s = self.started.elapsed().as_secs_f64();
        let cpu_s = (thread_cpu_s() - self.cpu_at_start_s).max(0.0);
        LoaderFootprint {
            window_s,
            cpu_s,
            cpu_pct: if window_s > 0.0 { cpu_s * 100.0 / window_s } else { 0.0 },
            rss_peak_bytes: self.rss_peak_bytes,
            rss_hwm_bytes: status_kib("VmHWM:").map_or(self.rss_peak_bytes, |k| k * 1024),
        }
    }
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
        assert!(r.cpu_pct > 10.0, "{r:?}");
        assert!(r.rss_peak_bytes > 0 && r.rss_hwm_bytes >= r.rss_peak_bytes / 2, "{r:?}");
    }
}
