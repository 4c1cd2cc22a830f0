//! The kernel log of the machine the tool runs on, scanned for reports
//! (lockdep, KASAN, WARN, stalls...) printed while the tool ran.

use std::{fs::File, io::Read, os::unix::fs::OpenOptionsExt};

use probe_common::console;
use probe_result::kernel::{Finding, KernelLogReport};

pub struct KernelLog {
    file: Option<File>,
}

impl KernelLog {
    /// Opens /dev/kmsg positioned after the last record: only what the
    /// kernel prints from now on is scanned.
    pub fn open_at_end() -> Self {
        let file =
            std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open("/dev/kmsg").ok();
        if let Some(f) = &file {
            use std::os::fd::AsRawFd;
            // SAFETY: lseek on a descriptor this value owns.
            unsafe { libc::lseek(f.as_raw_fd(), 0, libc::SEEK_END) };
        }
        KernelLog { file }
    }

    pub fn scanned(&self) -> bool {
        self.file.is_some()
    }

    /// What the log held since it was opened: a report for the result.
    pub fn report(&mut self) -> KernelLogReport {
        KernelLogReport { scanned: self.scanned(), findings: self.findings() }
    }

    /// Reads every record printed since the last call.
    pub fn findings(&mut self) -> Vec<Finding> {
        let Some(f) = &mut self.file else { return Vec::new() };
        let mut out = Vec::new();
        let mut buf = vec![0u8; 8192];
        loop {
            match f.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    if let Some(finding) = classify_record(&String::from_utf8_lossy(&buf[..n])) {
                        out.push(finding);
                    }
                }
                // A record overwritten before it was read: go on.
                Err(e) if e.raw_os_error() == Some(libc::EPIPE) => continue,
                Err(_) => break,
            }
        }
        out
    }
}

/// `prio,seq,usec,flags;message\n key=value...` -> a finding.
pub fn classify_record(record: &str) -> Option<Finding> {
    let message = record.split_once(';').map_or(record, |(_, m)| m).lines().next()?;
    console::classify(message).map(|c| Finding { category: c.into(), line: message.trim().into() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_classified_by_their_message() {
        let f = classify_record("4,812,3045123,-;WARNING: inconsistent lock state\n SUBSYSTEM=x\n").unwrap();
        assert_eq!(
            f,
            Finding { category: "lockdep".into(), line: "WARNING: inconsistent lock state".into() }
        );
        assert_eq!(classify_record("6,1,2,-;Linux version 7.3.4"), None);
    }
}
