//! Expedited RCU grace periods during a run (--expedited-rate). Since 7.3
//! RCU callbacks wait for a normal or an expedited grace period, whichever
//! ends first, so an rcu sheaf can be given back after an expedited one:
//! this makes that happen often. With /sys/kernel/rcu_expedited set,
//! synchronize_rcu() runs an expedited grace period, and
//! membarrier(MEMBARRIER_CMD_GLOBAL) is a synchronize_rcu() that any
//! process may ask for.

use std::fs;

use super::pacer::Pacer;
use anyhow::{Context, Result, bail};

const RCU_EXPEDITED: &str = "/sys/kernel/rcu_expedited";
/// From <linux/membarrier.h>; the libc crate does not carry it.
const MEMBARRIER_CMD_QUERY: libc::c_long = 0;
const MEMBARRIER_CMD_GLOBAL: libc::c_long = 1;

pub struct ExpeditedGps {
    pacer: Pacer,
    /// What /sys/kernel/rcu_expedited held before, written back at the end.
    previous: Option<String>,
}

fn membarrier(cmd: libc::c_long) -> libc::c_long {
    // SAFETY: membarrier() takes plain integers and touches no memory of ours.
    unsafe { libc::syscall(libc::SYS_membarrier, cmd, 0 as libc::c_long, 0 as libc::c_long) }
}

impl ExpeditedGps {
    pub fn start(rate_hz: u32) -> Result<Self> {
        let previous = fs::read_to_string(RCU_EXPEDITED).with_context(|| {
            format!(
                "--expedited-rate needs {RCU_EXPEDITED}, which this kernel does not have (tree RCU and sysfs)"
            )
        })?;
        let supported = membarrier(MEMBARRIER_CMD_QUERY);
        if supported < 0 || supported & MEMBARRIER_CMD_GLOBAL == 0 {
            bail!(
                "--expedited-rate needs membarrier(MEMBARRIER_CMD_GLOBAL), which this kernel refuses \
                 (CONFIG_MEMBARRIER off, or nohz_full CPUs)"
            );
        }
        fs::write(RCU_EXPEDITED, "1").with_context(|| format!("cannot write {RCU_EXPEDITED}"))?;
        match Pacer::start("expedited-gp", rate_hz, || membarrier(MEMBARRIER_CMD_GLOBAL) == 0) {
            Ok(pacer) => Ok(ExpeditedGps { pacer, previous: Some(previous) }),
            Err(e) => {
                let _ = fs::write(RCU_EXPEDITED, previous.trim());
                Err(e)
            }
        }
    }

    /// Stops asking and puts rcu_expedited back; returns the grace periods
    /// asked for.
    pub fn stop(&mut self) -> u64 {
        let n = self.pacer.stop();
        if let Some(p) = self.previous.take() {
            let _ = fs::write(RCU_EXPEDITED, p.trim());
        }
        n
    }
}

impl Drop for ExpeditedGps {
    fn drop(&mut self) {
        self.stop();
    }
}
