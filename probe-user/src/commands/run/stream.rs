//! `run --stream PATH`: one JSON progress line a second
//! (`probe_result::Progress`), flushed at once, so that what the tool has
//! seen leaves the machine before the kernel can take it down. In the VM
//! PATH is a serial port whose host side is a file.

use std::{fs::OpenOptions, io::Write, os::unix::fs::OpenOptionsExt, path::Path};

use anyhow::{Context, Result, bail};
use probe_result::progress::{Latch, Progress};

/// Where the lines go, and the first failure seen so far.
pub struct Stream {
    out: Box<dyn Write>,
    name: String,
    /// The kernel log, where the first failure goes too: the kernel flushes
    /// it to the console when it panics, while the bytes of a line still in
    /// the stream port's buffer are lost. None where it cannot be written.
    kmsg: Option<std::fs::File>,
    latch: Latch,
    /// A write failed: said once, and no more lines are tried.
    broken: bool,
}

impl Stream {
    /// Opens `path` to append to (`-` is stdout, which the result must
    /// then not use), in one sentence when it cannot.
    pub fn open(path: &Path, output: Option<&Path>) -> Result<Stream> {
        let (out, name): (Box<dyn Write>, String) = if path == Path::new("-") {
            if output.is_none() {
                bail!("--stream - needs --output: the result goes to stdout otherwise");
            }
            (Box::new(std::io::stdout()), "stdout".into())
        } else {
            let file = OpenOptions::new()
                .append(true)
                .create(true)
                // A serial port must not become the tool's controlling tty.
                .custom_flags(libc::O_NOCTTY)
                .open(path)
                .with_context(|| format!("cannot open --stream {} to write progress to", path.display()))?;
            (Box::new(file), path.display().to_string())
        };
        let kmsg = OpenOptions::new().write(true).open("/dev/kmsg").ok();
        Ok(Stream { out, name, kmsg, latch: Latch::default(), broken: false })
    }

    /// Writes the line for `p`, with the first failure latched, and flushes
    /// it. A failure seen for the first time goes first into the kernel log
    /// (a short write the kernel keeps through a panic, where the line may
    /// be lost: a double-queued object crashes the kernel one grace period
    /// later) and to stderr. A write that fails is said once and streaming
    /// stops: the run goes on, its result is what counts.
    pub fn write(&mut self, mut p: Progress) {
        // Milliseconds are all a second's line can tell; more digits are noise.
        let ms = |s: f64| (s * 1e3).round() / 1e3;
        p.elapsed_s = ms(p.elapsed_s);
        p.uptime_s = p.uptime_s.map(ms);
        let (line, fresh) = self.latch.line(p);
        if let (true, Some(f)) = (fresh, &line.first_failure) {
            if let Some(kmsg) = &mut self.kmsg {
                // One write() is one record; the console shows it as a line.
                let _ = kmsg.write_all(f.log_line().as_bytes());
            }
            eprintln!("nolock-probe: at {:.0}s: {}", f.at_s, f.reason);
        }
        if self.broken {
            return;
        }
        let written = serde_json::to_string(&line)
            .map_err(std::io::Error::other)
            .and_then(|text| writeln!(self.out, "{text}"))
            .and_then(|()| self.out.flush());
        if let Err(e) = written {
            eprintln!("nolock-probe: cannot write progress to {} ({e}); no more lines go there", self.name);
            self.broken = true;
        }
    }
}

/// The kernel's boot-time clock, in seconds: the clock of printk's
/// timestamps, which places a console line in the run.
pub fn uptime_s() -> Option<f64> {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec into the value we own.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    (rc == 0).then(|| ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9)
}

#[cfg(test)]
mod tests {
    use probe_common::{Trigger, TriggerCounters};

    use super::*;

    #[test]
    fn lines_are_appended_one_json_object_each() {
        let path = std::env::temp_dir().join(format!("nolock-probe-stream-{}.jsonl", std::process::id()));
        let _ = std::fs::remove_file(&path);
        std::fs::write(&path, "earlier\n").unwrap();
        let mut s = Stream::open(&path, None).unwrap();
        for elapsed in [1.0, 2.0] {
            let calls =
                TriggerCounters { calls: 5, premature: u64::from(elapsed > 1.0), ..Default::default() };
            s.write(Progress {
                schema_version: probe_result::SCHEMA_VERSION,
                elapsed_s: elapsed,
                triggers: [(Trigger::Syscall, calls)].into(),
                ..Default::default()
            });
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0], "earlier");
        let (last, n) = probe_result::progress::last_complete(&text).unwrap();
        assert_eq!(n, 2);
        assert_eq!(last.first_failure.unwrap().at_s, 2.0);
    }

    #[test]
    fn stdout_is_refused_when_the_result_goes_there() {
        let e = Stream::open(Path::new("-"), None).err().unwrap();
        assert_eq!(e.to_string(), "--stream - needs --output: the result goes to stdout otherwise");
        assert!(Stream::open(Path::new("-"), Some(Path::new("r.json"))).is_ok());
        let e = Stream::open(Path::new("/nonexistent/dir/x"), None).err().unwrap();
        assert!(format!("{e:#}").starts_with("cannot open --stream /nonexistent/dir/x"), "{e:#}");
    }

    #[test]
    fn the_boot_clock_reads() {
        assert!(uptime_s().is_some_and(|u| u > 0.0));
    }
}
