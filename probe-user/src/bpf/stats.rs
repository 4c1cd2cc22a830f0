//! What the kernel counted for each loaded program (kernel.bpf_stats):
//! runs, run time and recursion misses.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use probe_result::kernel::ProgramStats;

use super::Probes;

/// `BPF_OBJ_GET_INFO_BY_FD`'s part of `union bpf_attr`.
#[repr(C)]
struct InfoByFd {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
}

fn program_stats(fd: std::os::fd::BorrowedFd<'_>) -> Result<ProgramStats> {
    use std::os::fd::AsRawFd;
    // SAFETY: bpf_prog_info is plain data; zero is a valid value.
    let mut info: aya_obj::generated::bpf_prog_info = unsafe { std::mem::zeroed() };
    let mut attr = InfoByFd {
        bpf_fd: fd.as_raw_fd() as u32,
        info_len: size_of::<aya_obj::generated::bpf_prog_info>() as u32,
        info: &raw mut info as u64,
    };
    // SAFETY: BPF_OBJ_GET_INFO_BY_FD writes at most info_len bytes to `info`.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            aya_obj::generated::bpf_cmd::BPF_OBJ_GET_INFO_BY_FD as libc::c_long,
            &raw mut attr,
            size_of::<InfoByFd>(),
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error()).context("cannot read a BPF program's statistics");
    }
    Ok(ProgramStats {
        runs: info.run_cnt,
        run_time_ns: info.run_time_ns,
        recursion_misses: info.recursion_misses,
        load_ns: 0,
        verified_insns: u64::from(info.verified_insns),
    })
}

impl Probes {
    /// The kernel's statistics of every loaded program, by program name.
    pub fn program_stats(&self) -> Result<BTreeMap<String, ProgramStats>> {
        use std::os::fd::AsFd;
        let mut out = BTreeMap::new();
        for (name, p) in self.ebpf.programs() {
            if let Ok(fd) = p.fd() {
                let mut stats = program_stats(fd.as_fd())?;
                stats.load_ns = self.load.programs.get(name).copied().unwrap_or(0);
                out.insert(name.to_string(), stats);
            }
        }
        Ok(out)
    }
}
