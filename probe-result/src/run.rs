//! A run's result (`nolock-probe run`): what was planned, what each
//! trigger did per CPU, where the objects went, and the verdict.

use std::collections::BTreeMap;

use probe_common::{
    Intended, Stage, Trigger, TriggerCounters, ViolationStats, alloc_flags, call_kind, violation,
};
use serde::{Deserialize, Serialize};

use crate::{
    ConsoleReport, Tool,
    dist::{CallTimes, HistogramLayout, StageReport},
    kernel::{BpfCost, CrossCheck, KernelInfo, KernelLogReport, ProgramStats},
    verdict::{Check, Verdict},
};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    pub schema_version: u32,
    pub tool: Tool,
    pub kernel: KernelInfo,
    /// What the run did: scenario, triggers and parameters.
    pub plan: Plan,
    /// Triggers the scenario asked for that this kernel cannot run.
    pub unsupported: Vec<Unsupported>,
    /// Where NMIs came from when the nmi trigger ran.
    #[serde(default)]
    pub nmi_source: Option<NmiSourceReport>,
    /// With --expedited-rate: the expedited grace periods asked for.
    #[serde(default)]
    pub expedited_gps: Option<ExpeditedReport>,
    pub run: RunInfo,
    pub load: LoadInfo,
    pub triggers: Vec<TriggerReport>,
    /// Sum over all triggers and CPUs.
    pub totals: TriggerCounters,
    pub latency: Latency,
    pub in_flight: InFlightReport,
    /// How well the frees were batched; absent without following, and in
    /// older results.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batching: Option<crate::batching::Batching>,
    /// What the observers caught as it happened, by kind
    /// (`probe_common::violation::NAMES`).
    #[serde(default)]
    pub violations: BTreeMap<String, ViolationReport>,
    pub slub_stats: CrossCheck,
    pub kernel_log: KernelLogReport,
    /// Per BPF program: times the kernel skipped it because it was already
    /// running on that CPU. Observations those runs would have made are
    /// missing from the counts.
    pub recursion_misses: BTreeMap<String, u64>,
    /// What the kernel counted for each program (kernel.bpf_stats).
    #[serde(default)]
    pub programs: BTreeMap<String, ProgramStats>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bpf_cost: Option<BpfCost>,
    pub checks: Vec<Check>,
    pub verdict: Verdict,
    /// With --repeat: every run, this one (the last) included; their
    /// spread is what `compare` weighs changes against.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub repeats: Vec<RunReport>,
    /// Added by `cargo xtask vm`: the whole guest console's findings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub console: Option<ConsoleReport>,
    /// Added by `cargo xtask vm` on the coverage kernel: the lines and
    /// branches of the nolock machinery the run reached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coverage: Option<crate::coverage::Coverage>,
}

impl RunReport {
    pub fn trigger(&self, t: Trigger) -> Option<&TriggerReport> {
        self.triggers.iter().find(|r| r.name == t)
    }

    /// The runs whose spread a metric has: the repeats, or this run alone.
    pub fn runs(&self) -> Vec<&RunReport> {
        if self.repeats.is_empty() { vec![self] } else { self.repeats.iter().collect() }
    }

    /// One run, or with --repeat the last run with every run under
    /// `repeats` and a verdict that fails if any run failed, each reason
    /// saying which.
    pub fn combine(runs: Vec<RunReport>) -> Option<RunReport> {
        let mut last = runs.last()?.clone();
        if runs.len() > 1 {
            let reasons: Vec<String> = runs
                .iter()
                .enumerate()
                .flat_map(|(i, r)| r.verdict.reasons.iter().map(move |x| format!("repeat {}: {x}", i + 1)))
                .collect();
            last.verdict = Verdict { pass: reasons.is_empty(), reasons };
            last.repeats = runs;
        }
        Some(last)
    }

    /// Recursion misses of the observers that decide a free's path.
    pub fn path_misses(&self) -> u64 {
        path_misses(&self.recursion_misses)
    }
}

/// Of `recursion_misses` (program to runs the kernel skipped), those of
/// the observers that decide a free's path.
pub fn path_misses(recursion_misses: &BTreeMap<String, u64>) -> u64 {
    probe_common::programs::path_deciders().filter_map(|p| recursion_misses.get(p)).sum()
}

/// What a run does: the command line over the scenario over the defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub scenario: String,
    pub triggers: Vec<Trigger>,
    pub duration_s: u64,
    pub payload_sizes_bytes: Vec<u32>,
    pub gfp_zero: bool,
    pub gfp_account: bool,
    pub perf_frequency_hz: u64,
    pub every_nth: u32,
    /// Calls a second per trigger and CPU at most; 0: no limit.
    #[serde(default)]
    pub rate_per_cpu_hz: u32,
    /// Empty: every online CPU.
    pub cpus: Vec<u32>,
    pub nolock_share_pct: u32,
    pub burst: u32,
    pub nmi_rate_hz: u32,
    /// 0: no expedited grace periods asked for.
    #[serde(default)]
    pub expedited_rate_hz: u32,
    pub load: bool,
    /// Objects are followed to their reclaim (latency, premature-free and
    /// lost-object checks); false with --no-follow. `latency` before
    /// schema version 2.
    #[serde(alias = "latency")]
    pub follow: bool,
    /// How each call's path was told (`--observe`); full in results from
    /// before the cheap mode.
    #[serde(default)]
    pub observe: Observe,
}

/// How the path of each kfree_rcu_nolock() is told (`--observe`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Observe {
    /// The caller marks its call for the call_rcu() observer and counts
    /// the sheaf path where the fallback's observer saw nothing: no
    /// trampoline on `__kfree_rcu_sheaf()`.
    Cheap,
    /// Independent observers on `__kfree_rcu_sheaf()` (entry and exit)
    /// tell each call's path, and catch a double free as it is queued.
    #[default]
    Full,
}

impl Observe {
    pub fn name(self) -> &'static str {
        match self {
            Observe::Cheap => "cheap",
            Observe::Full => "full",
        }
    }
}

impl std::str::FromStr for Observe {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "cheap" => Ok(Observe::Cheap),
            "full" => Ok(Observe::Full),
            _ => Err(format!("there is no observation mode {s}: use cheap or full")),
        }
    }
}

impl Plan {
    pub fn alloc_flags(&self) -> u32 {
        (if self.gfp_zero { alloc_flags::ZERO } else { 0 })
            | (if self.gfp_account { alloc_flags::ACCOUNT } else { 0 })
    }

    /// The gap `--rate` leaves between two calls, in ns (0: no limit).
    pub fn min_interval_ns(&self) -> u64 {
        if self.rate_per_cpu_hz == 0 { 0 } else { 1_000_000_000 / u64::from(self.rate_per_cpu_hz) }
    }

    /// The observers this plan loads and attaches.
    pub fn observers(&self) -> probe_common::programs::ObserverSet {
        probe_common::programs::ObserverSet { follow: self.follow, full: self.observe == Observe::Full }
    }

    pub fn cpu_mask(&self) -> u64 {
        self.cpus.iter().fold(0, |m, c| m | 1 << c)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unsupported {
    pub trigger: Trigger,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NmiSourceReport {
    /// "nmi-ipi" (the kernel's NMI IPI source, patch 0004), "sysrq-l" (NMI
    /// backtrace IPIs) or "pmu" (perf overflows).
    pub kind: String,
    /// NMIs a second per CPU (nmi-ipi) or sysrq-l rounds a second.
    pub rate_hz: u32,
    /// NMI IPIs sent, or sysrq-l requests made.
    pub sent: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExpeditedReport {
    pub rate_hz: u32,
    /// synchronize_rcu() calls made, each an expedited grace period.
    pub requested: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    /// Seconds since the Unix epoch when the triggers were attached.
    pub started_unix_s: u64,
    /// Time the triggers were attached, in seconds.
    pub elapsed_s: f64,
    /// True when a signal cut the run short.
    pub interrupted: bool,
    pub cpus: Vec<u32>,
    /// How long the drain (kvfree_rcu_barrier()) took after detaching, in ns.
    pub drain_ns: u64,
    /// The functions found in /proc/kallsyms whose calls of
    /// `slab_attach_kprobe_locked()` count as sheaves-lock sites
    /// (`calls_sheaves_lock`).
    #[serde(default)]
    pub sheaves_lock_functions: Vec<String>,
    /// What the run ran on; absent in older results.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine: Option<Machine>,
    /// What the loader itself cost while the triggers were attached;
    /// absent in older results.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loader: Option<LoaderFootprint>,
}

/// The loader's own cost at steady state: its main thread (the watch:
/// reading the maps, the progress line, the stream), without the threads
/// that make the stress, and its memory.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LoaderFootprint {
    /// The window measured: from the first attach to the end of the stress
    /// (the drain and the unload are left out), in seconds.
    pub window_s: f64,
    /// CPU time of the main thread in the window, user and system. BPF
    /// programs that fire in its system calls are in it too; `bpf_cost`
    /// has their time.
    pub cpu_s: f64,
    /// `cpu_s` over `window_s`, in percent of one CPU.
    pub cpu_pct: f64,
    /// Largest resident set seen in the window (sampled once a second).
    pub rss_peak_bytes: u64,
    /// The process's resident high-water mark (VmHWM), loading included.
    pub rss_hwm_bytes: u64,
    /// The longest time between two of the watch's once-a-second samples:
    /// about 1 s, more when the loader got no CPU (an overloaded guest),
    /// which stretches the run and its per-second figures. 0 in older
    /// results.
    #[serde(default)]
    pub max_sample_gap_s: f64,
    /// `cpu_s` by what the loader did: reading maps, writing output,
    /// attaching, reading SLUB_STATS, and the rest ("other"). Empty in
    /// older results.
    #[serde(default)]
    pub cpu_by_activity_s: std::collections::BTreeMap<String, f64>,
}

/// The machine a run or bench ran on, as far as the guest can tell.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Machine {
    /// `kvm` or `tcg` (the accelerator `cargo xtask vm` booted the guest
    /// with, from the kernel command line), `none` (no hypervisor) or
    /// `unknown` (a hypervisor that did not say).
    pub accelerator: String,
    /// A hardware PMU was found (a CPU-cycles perf event opens): the perf
    /// trigger's overflow is then an NMI, else an hrtimer (hardirq).
    pub pmu: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LoadInfo {
    pub enabled: bool,
    /// Load operations (a /proc file opened, read and closed, and a burst
    /// of 128 pipes opened and closed).
    pub ops: u64,
    pub ops_per_s: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TriggerReport {
    pub name: Trigger,
    /// Where it was attached, e.g. `kprobe:slab_attach_kprobe_locked`.
    pub attach: String,
    /// The context it is meant to run in; `total.alloc_ctx` and each CPU's
    /// say where the kernel saw it run.
    pub intended: Intended,
    pub per_cpu: Vec<CpuCounters>,
    pub total: TriggerCounters,
    /// How long the trigger's calls took, in ns, by what they did
    /// (`probe_common::call_kind::NAMES`), over all CPUs.
    #[serde(default)]
    pub call_ns: BTreeMap<String, CallTimes>,
}

impl TriggerReport {
    /// `per_cpu_values` is indexed by CPU id, as the per-CPU map returns
    /// them. The CPUs in `cpus` are reported, and any other CPU where the
    /// kernel or the drain did work for the trigger's objects (an RCU
    /// callback, a burst freed after the run), so that nothing is left out
    /// of the totals when `--cpus` names fewer CPUs.
    pub fn new(trigger: Trigger, attach: String, cpus: &[u32], per_cpu_values: &[TriggerCounters]) -> Self {
        let per_cpu: Vec<CpuCounters> = per_cpu_values
            .iter()
            .zip(0u32..)
            .filter(|&(c, cpu)| cpus.contains(&cpu) || *c != TriggerCounters::default())
            .map(|(c, cpu)| CpuCounters { cpu, counters: *c })
            .collect();
        let total = sum(per_cpu.iter().map(|c| &c.counters));
        TriggerReport {
            name: trigger,
            attach,
            intended: trigger.intended(),
            per_cpu,
            total,
            call_ns: BTreeMap::new(),
        }
    }

    /// Calls of `kinds` (`probe_common::call_kind`) that were timed.
    pub fn timed(&self, kinds: &[u32]) -> u64 {
        kinds
            .iter()
            .filter_map(|&k| self.call_ns.get(call_kind::NAMES[k as usize]))
            .map(|d| d.all.count)
            .sum()
    }

    pub fn calls_on(&self, cpu: u32) -> u64 {
        self.per_cpu.iter().find(|c| c.cpu == cpu).map_or(0, |c| c.counters.calls)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CpuCounters {
    pub cpu: u32,
    #[serde(flatten)]
    pub counters: TriggerCounters,
}

pub fn sum<'a>(it: impl IntoIterator<Item = &'a TriggerCounters>) -> TriggerCounters {
    it.into_iter().fold(TriggerCounters::default(), |mut acc, c| {
        acc.accumulate(c);
        acc
    })
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    pub histogram: HistogramLayout,
    /// Per path that occurred: reclaimed and premature counts, and per
    /// stage (total, queued, grace) the distribution in ns.
    pub paths: Vec<PathReport>,
}

impl Latency {
    pub fn path(&self, name: &str) -> Option<&PathReport> {
        self.paths.iter().find(|p| p.path == name)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PathReport {
    /// `probe_common::Path` name.
    pub path: String,
    pub reclaimed: u64,
    pub premature: u64,
    /// Premature objects freed after their sheaf's call_rcu().
    #[serde(default)]
    pub premature_after_call_rcu: u64,
    /// Rcu sheaves of the triggers' caches handed to call_rcu() on this
    /// path (one RCU callback each) and every object in them; absent in
    /// older results, 0 on the fallback path.
    #[serde(default)]
    pub batches: u64,
    #[serde(default)]
    pub batch_objects: u64,
    /// Sheaves whose last object, one of the triggers', had a
    /// grace-period cookie, and the smallest and largest normal gp_seq
    /// among those cookies.
    #[serde(default)]
    pub gp_objects: u64,
    #[serde(default)]
    pub gp_seq_min: i64,
    #[serde(default)]
    pub gp_seq_max: i64,
    /// By `probe_common::Stage` name: total, queued, grace.
    pub stages: BTreeMap<String, StageReport>,
}

impl PathReport {
    pub fn stage(&self, stage: Stage) -> Option<&StageReport> {
        self.stages.get(stage.name())
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InFlightReport {
    /// Objects handed to kfree_rcu_nolock() and not yet reclaimed, sampled
    /// once a second.
    pub per_second: Vec<u64>,
    pub peak: u64,
    /// Still not reclaimed after the drain, in total and by trigger.
    pub lost: u64,
    pub lost_by_trigger: BTreeMap<String, u64>,
    /// Objects not followed because the in-flight map was full.
    pub untracked: u64,
}

/// One kind of violation, over all CPUs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ViolationReport {
    pub count: u64,
    /// The count split by what the kind names
    /// (`probe_common::violation::by_names`): the object's queue (`no
    /// path`, `rcu sheaf`, `fallback`, both), for `call_rcu_unsafe` the
    /// context of the call, for `freed_in_flight` the free entry point.
    pub by: BTreeMap<String, u64>,
    /// Of `count`, objects whose grace period had ended when it was caught.
    pub grace_period_over: u64,
    /// Time from kfree_rcu_nolock() to the violation.
    pub age_min_ns: u64,
    pub age_max_ns: u64,
}

impl ViolationReport {
    /// The report of violation `kind` from its per-CPU values.
    pub fn new(kind: u32, per_cpu: &[ViolationStats]) -> ViolationReport {
        let mut s = ViolationStats::default();
        for v in per_cpu {
            s.merge(v);
        }
        let names = violation::by_names(kind);
        ViolationReport {
            count: s.count,
            by: names.iter().zip(s.by).filter(|(_, n)| *n > 0).map(|(k, n)| (k.to_string(), n)).collect(),
            grace_period_over: s.gp_passed,
            age_min_ns: s.age_min_ns,
            age_max_ns: s.age_max_ns,
        }
    }
}

impl RunReport {
    /// The report of violation `kind` (`violation::*`); empty when the run
    /// has none (older results too).
    pub fn violation(&self, kind: u32) -> ViolationReport {
        let name = violation::NAMES.get(kind as usize).copied().unwrap_or_default();
        self.violations.get(name).cloned().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::counters;

    #[test]
    fn per_cpu_values_are_summed_over_the_reported_cpus() {
        // The map returns one value per possible CPU; CPU 2 is not online,
        // CPU 3 is not in the run but reclaimed two of its objects there.
        let elsewhere = TriggerCounters { reclaimed: 2, ..Default::default() };
        let values = [counters(10, 7, 3), counters(5, 5, 0), TriggerCounters::default(), elsewhere];
        let t = TriggerReport::new(Trigger::LockedKprobe, "kprobe:x".into(), &[0, 1], &values);
        assert_eq!(t.per_cpu.iter().map(|c| c.cpu).collect::<Vec<_>>(), [0, 1, 3]);
        assert_eq!((t.total.calls, t.total.sheaf, t.total.fallback, t.total.reclaimed), (15, 12, 3, 2));
        assert_eq!(t.total.alloc_ctx, [0, 0, 15, 0]);
        assert_eq!(sum([&t.total, &t.total]).calls, 30);
        assert_eq!((t.calls_on(1), t.calls_on(2)), (5, 0));
    }

    #[test]
    fn json_shape_names_counters_and_contexts() {
        let t = TriggerReport::new(
            Trigger::FentryDeferredWork,
            "fentry:f".into(),
            &[1],
            &[counters(0, 0, 0), counters(4, 4, 0)],
        );
        let v = serde_json::to_value(&t).unwrap();
        assert_eq!(v["name"], "fentry_deferred_work");
        assert_eq!(v["intended"], "any");
        assert_eq!(v["per_cpu"][0]["cpu"], 1);
        assert_eq!(v["per_cpu"][0]["calls"], 4);
        assert_eq!(v["per_cpu"][0]["alloc_ctx"]["hardirq"], 4);
        assert_eq!(v["total"]["sheaf"], 4);
        let back: TriggerReport = serde_json::from_value(v).unwrap();
        assert_eq!(back, t);
    }

    #[test]
    fn old_plans_read_latency_as_follow() {
        let text = r#"{"scenario": "default", "triggers": ["nmi"], "duration_s": 1, "payload_sizes_bytes": [0],
            "gfp_zero": false, "gfp_account": false, "perf_frequency_hz": 1000, "every_nth": 1, "cpus": [],
            "nolock_share_pct": 0, "burst": 1, "nmi_rate_hz": 2, "load": true, "latency": false}"#;
        let p: Plan = serde_json::from_str(text).unwrap();
        assert!(!p.follow);
        assert_eq!(p.triggers, [Trigger::Nmi]);
        assert_eq!(serde_json::to_value(&p).unwrap()["follow"], false);
        let bad = text.replace("\"nmi\"", "\"nmj\"");
        assert!(serde_json::from_str::<Plan>(&bad).unwrap_err().to_string().contains("nmj"));
    }
}
