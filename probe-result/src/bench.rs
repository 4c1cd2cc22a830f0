//! A bench's result (`nolock-probe bench`): per pair loop, pairs per
//! second with the spread of the samples, its ratio to the same loop in C,
//! and each call's own time.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{
    ConsoleReport, Tool,
    dist::StageReport,
    kernel::{KernelInfo, KernelLogReport, ProgramStats},
    verdict::{Check, Verdict},
};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchReport {
    pub schema_version: u32,
    /// Tells a bench document from a run's (`results/bench.schema.json`).
    pub benchmark: String,
    pub tool: Tool,
    pub kernel: KernelInfo,
    pub plan: BenchPlan,
    /// The kmalloc caches the objects come from.
    pub caches: Vec<String>,
    pub run: BenchRun,
    pub frees: Vec<FreeReport>,
    pub kernel_log: KernelLogReport,
    pub programs: BTreeMap<String, ProgramStats>,
    pub checks: Vec<Check>,
    pub verdict: Verdict,
    /// Added by `cargo xtask vm`: the whole guest console's findings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub console: Option<ConsoleReport>,
}

impl BenchReport {
    pub fn free(&self, name: &str) -> Option<&FreeReport> {
        self.frees.iter().find(|f| f.free == name)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BenchPlan {
    /// "bench": the name dashboards file the figures under.
    pub scenario: String,
    pub frees: Vec<String>,
    pub samples: u32,
    pub sample_s: u64,
    pub warmup_s: u64,
    pub cpus: Vec<u32>,
    pub payload_size_bytes: u32,
    pub gfp_zero: bool,
    pub gfp_account: bool,
    /// Allocations and frees per system call of a bench thread.
    pub batch: u32,
    /// The path observers were attached (`--observers`).
    #[serde(default)]
    pub observers: bool,
    /// Which path observers (`--observe`); full in results from before
    /// the cheap mode.
    #[serde(default)]
    pub observe: crate::run::Observe,
    /// The observed samples had run's whole set attached (the following
    /// and free-side observers too), and their kfree_rcu_nolock() pairs
    /// were made as a trigger makes them (followed in `IN_FLIGHT`); false
    /// in results from before, which had the path observers only.
    #[serde(default)]
    pub run_observers: bool,
    /// One batch in this many timed each call (0 in older results: every
    /// call was timed, and the loops ran one after the other).
    #[serde(default)]
    pub timed_every: u64,
    /// Each sample came after this long of its loop unmeasured, in ms
    /// (0 in older results).
    #[serde(default)]
    pub settle_ms: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BenchRun {
    pub started_unix_s: u64,
    pub elapsed_s: f64,
    /// True when a signal cut the bench short; what was measured is kept.
    pub interrupted: bool,
    /// What the bench ran on; absent in older results.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine: Option<crate::run::Machine>,
    /// The loader's own cost over the samples (see schema.json,
    /// run.loader); absent in older results.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loader: Option<crate::run::LoaderFootprint>,
    /// How long kvfree_rcu_barrier() took after the last sample: until
    /// every object freed so far was given back (older results have it
    /// per loop).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain_ns: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FreeReport {
    /// `probe_common::BenchFree` name.
    pub free: String,
    /// What one pair is, and where it runs (`BenchFree::pair`); absent in
    /// older results.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pair: String,
    /// Allocation and free pairs in the samples, all CPUs.
    pub ops: u64,
    pub alloc_failures: u64,
    /// Pairs per second over all CPUs, one value per sample, and their
    /// mean and spread.
    pub ops_per_s: Spread,
    /// The rate over the same loop in C's (`native_kfree_rcu_nolock`) in
    /// the same round of samples, one value per round; null when that
    /// loop was not benched.
    #[serde(default)]
    pub native_ratio: Option<Spread>,
    /// With `--observers`: the rate with the observers attached (run's
    /// whole set when `plan.run_observers`), and its ratio to the bare
    /// rate of the same round.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed: Option<ObservedRate>,
    pub per_cpu: Vec<CpuOps>,
    /// Wall time of one pair on one CPU, from the mean rate: the calls,
    /// the clock reads around them, and the bench thread's system call
    /// shared by `batch` pairs.
    pub ns_per_op: f64,
    /// Each call's own time, in ns: bpf_kmalloc_nolock(), the free, and
    /// an empty call (the timing's own cost, which each of the other two
    /// includes once).
    pub alloc: Option<StageReport>,
    pub free_call: Option<StageReport>,
    pub clock: Option<StageReport>,
    /// The kernel's slab statistics over the samples (after minus before,
    /// every user of the caches), or null without CONFIG_SLUB_STATS.
    pub slub_stats: Option<BTreeMap<String, u64>>,
    /// Older results: kvfree_rcu_barrier() after this loop's samples
    /// (now `run.drain_ns`, once for all loops).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain_ns: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ObservedRate {
    /// Pairs per second over all CPUs, one sample per round.
    pub ops_per_s: Spread,
    /// Over the bare rate of the same round, one value per round.
    pub bare_ratio: Spread,
    /// The calls' own times with the observers attached, timed on the
    /// bare samples' schedule (absent in older results, whose observed
    /// samples were not timed, nor for the loops in C).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alloc: Option<StageReport>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub free_call: Option<StageReport>,
    /// With run's observers, for the kfree_rcu_nolock() loop: what they
    /// did with its objects over the whole bench, which shows that they
    /// followed them (absent in older results and for the other loops).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub followed: Option<FollowedObjects>,
}

/// The bench's observed kfree_rcu_nolock() objects, as run counts a
/// trigger's (`probe_common::BENCH_TAG`), after the last drain.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FollowedObjects {
    /// Handed to kfree_rcu_nolock().
    pub freed: u64,
    /// Seen reclaimed by the reclaim observers.
    pub reclaimed: u64,
    /// Not followed: `IN_FLIGHT` was full.
    pub untracked: u64,
    /// Into the rcu sheaf and to the fallback, as the path observers told.
    pub sheaf: u64,
    pub fallback: u64,
    /// Reclaimed before their grace period ended.
    pub premature: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    pub mean: f64,
    pub stddev: f64,
    pub min: f64,
    pub max: f64,
    /// 0 in older results.
    #[serde(default)]
    pub median: f64,
    pub samples: Vec<f64>,
}

impl Spread {
    pub fn of(samples: Vec<f64>) -> Spread {
        let n = samples.len() as f64;
        let mean = if samples.is_empty() { 0.0 } else { samples.iter().sum::<f64>() / n };
        let var = if samples.len() > 1 {
            samples.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)
        } else {
            0.0
        };
        Spread {
            mean,
            stddev: var.sqrt(),
            min: samples.iter().copied().fold(f64::INFINITY, f64::min).min(mean),
            max: samples.iter().copied().fold(f64::NEG_INFINITY, f64::max).max(mean),
            median: median(&samples),
            samples,
        }
    }
}

/// The middle value (the mean of the two middle ones), 0 for none.
fn median(samples: &[f64]) -> f64 {
    let mut v = samples.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CpuOps {
    pub cpu: u32,
    pub ops: u64,
    pub ops_per_s: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spread_is_the_sample_standard_deviation() {
        let s = Spread::of(vec![10.0, 20.0, 30.0]);
        assert_eq!((s.mean, s.min, s.max), (20.0, 10.0, 30.0));
        assert!((s.stddev - 10.0).abs() < 1e-9, "{}", s.stddev);
        assert_eq!(Spread::of(vec![5.0]).stddev, 0.0);
        assert_eq!((s.median, Spread::of(vec![4.0, 1.0, 3.0, 2.0]).median), (20.0, 2.5));
        assert_eq!(Spread::of(vec![]).median, 0.0);
    }
}
