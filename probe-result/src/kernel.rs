//! What a result says about the kernel it ran on and what the tool cost it.

use std::collections::BTreeMap;

use probe_common::{Trigger, programs};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct KernelInfo {
    pub release: String,
    /// Where the config was read from, or null if it could not be found.
    pub config_source: Option<String>,
    /// The relevant options; an option that is not set maps to "n".
    pub config: BTreeMap<String, String>,
}

/// A report in a kernel log (lockdep, KASAN, WARN, stalls...).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub category: String,
    pub line: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct KernelLogReport {
    /// False when /dev/kmsg could not be read.
    pub scanned: bool,
    pub findings: Vec<Finding>,
}

/// The kernel's SLUB_STATS rcu-sheaf counters against the tool's own.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CrossCheck {
    pub cache: String,
    /// False when the kernel has no CONFIG_SLUB_STATS (or no such cache).
    pub available: bool,
    /// The kernel's counts over the run (after minus before).
    pub kernel_free_rcu_sheaf: u64,
    pub kernel_free_rcu_sheaf_fail: u64,
    /// The tool's: first attempts (kfree_rcu_nolock()) and second attempts
    /// (fallen-back objects from the deferred work).
    pub tool_free_rcu_sheaf: u64,
    pub tool_free_rcu_sheaf_fail: u64,
    /// The kernel's counts minus the tool's: other kfree_rcu() users of the
    /// same cache. Negative would mean the tool saw more than happened.
    pub others_free_rcu_sheaf: i64,
    pub others_free_rcu_sheaf_fail: i64,
    pub explanation: String,
}

/// What the kernel counted for one program while the tool ran it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgramStats {
    /// Runs, and the time they took in all (kernel.bpf_stats, which the
    /// loader turns on while it runs: two clock reads per run).
    pub runs: u64,
    pub run_time_ns: u64,
    /// Times the kernel skipped the program because it was already running
    /// on that CPU (an NMI or interrupt landed inside it, or it re-entered
    /// itself).
    pub recursion_misses: u64,
    /// How long loading it took (BPF_PROG_LOAD: mostly the verifier), and
    /// how many instructions the verifier processed; absent in older
    /// results.
    #[serde(default)]
    pub load_ns: u64,
    #[serde(default)]
    pub verified_insns: u64,
}

/// What the BPF programs cost, from the kernel's run-time statistics.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BpfCost {
    /// The trigger programs. Their time includes the allocator's work they
    /// cause and the observers that run inside it.
    pub trigger_runs: u64,
    pub trigger_run_time_ns: u64,
    /// The observers of the catalogue (not the drain or the map driver).
    pub observer_runs: u64,
    pub observer_run_time_ns: u64,
    /// Run time over the CPU time the run had (elapsed time x online CPUs),
    /// in percent.
    pub trigger_cpu_pct: f64,
    pub observer_cpu_pct: f64,
}

impl BpfCost {
    pub fn new(programs: &BTreeMap<String, ProgramStats>, elapsed_s: f64, cpus: usize) -> Self {
        let sum = |pick: &dyn Fn(&str) -> bool| {
            programs
                .iter()
                .filter(|(n, _)| pick(n))
                .fold((0, 0), |(runs, ns), (_, s)| (runs + s.runs, ns + s.run_time_ns))
        };
        let (trigger_runs, trigger_run_time_ns) = sum(&|n| Trigger::ALL.iter().any(|t| t.program() == n));
        let (observer_runs, observer_run_time_ns) =
            sum(&|n| programs::OBSERVERS.iter().any(|o| o.program == n));
        let cpu_ns = elapsed_s * 1e9 * cpus.max(1) as f64;
        let pct = |ns: u64| if cpu_ns > 0.0 { ns as f64 * 100.0 / cpu_ns } else { 0.0 };
        BpfCost {
            trigger_runs,
            trigger_run_time_ns,
            observer_runs,
            observer_run_time_ns,
            trigger_cpu_pct: pct(trigger_run_time_ns),
            observer_cpu_pct: pct(observer_run_time_ns),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bpf_cost_splits_triggers_from_observers_and_leaves_helpers_out() {
        let stats = |runs, ns| ProgramStats { runs, run_time_ns: ns, ..Default::default() };
        let programs: BTreeMap<String, ProgramStats> = [
            ("trigger_locked_kprobe", stats(10, 4_000)),
            ("trigger_syscall", stats(30, 6_000)),
            ("rcu_free_sheaf", stats(5, 5_000)),
            ("kfree_rcu_sheaf_exit", stats(15, 15_000)),
            ("drain", stats(1, 1_000_000)),
            ("map_update_driver", stats(3, 30_000)),
        ]
        .into_iter()
        .map(|(n, s)| (n.to_string(), s))
        .collect();
        let cost = BpfCost::new(&programs, 1e-3, 2);
        assert_eq!((cost.trigger_runs, cost.trigger_run_time_ns), (40, 10_000));
        assert_eq!((cost.observer_runs, cost.observer_run_time_ns), (20, 20_000));
        // 2 CPUs for 1 ms: 2,000,000 ns of CPU time.
        assert!((cost.trigger_cpu_pct - 0.5).abs() < 1e-9 && (cost.observer_cpu_pct - 1.0).abs() < 1e-9);
    }
}
