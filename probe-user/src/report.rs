//! The JSON document, its checks and the lines printed on the terminal.

use std::collections::BTreeMap;

use probe_common::{Trigger, TriggerCounters};
use serde::Serialize;

use crate::{
    expedite::ExpeditedReport,
    kernel::KernelInfo,
    kmsg::Finding,
    latency::{CallTimes, HistogramLayout, PathReport},
    nmi::NmiSourceReport,
    plan::Plan,
    probes::{self, ProgramStats},
    slub_stats::CrossCheck,
};

/// Bumped whenever a field changes meaning or goes away.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Serialize)]
pub struct Report {
    pub schema_version: u32,
    pub tool: Tool,
    pub kernel: KernelInfo,
    /// What the run did: scenario, triggers and parameters.
    pub plan: Plan,
    /// Triggers the scenario asked for that this kernel cannot run.
    pub unsupported: Vec<Unsupported>,
    /// Where NMIs came from when the nmi trigger ran.
    pub nmi_source: Option<NmiSourceReport>,
    /// With --expedited-rate: the expedited grace periods asked for.
    pub expedited_gps: Option<ExpeditedReport>,
    pub run: RunInfo,
    pub load: LoadInfo,
    pub triggers: Vec<TriggerReport>,
    /// Sum over all triggers and CPUs.
    pub totals: TriggerCounters,
    pub latency: Latency,
    pub in_flight: InFlightReport,
    pub slub_stats: CrossCheck,
    pub kernel_log: KernelLogReport,
    /// Per BPF program: times the kernel skipped it because it was already
    /// running on that CPU. Observations those runs would have made are
    /// missing from the counts.
    pub recursion_misses: BTreeMap<String, u64>,
    /// What the kernel counted for each program (kernel.bpf_stats).
    pub programs: BTreeMap<String, ProgramStats>,
    pub bpf_cost: BpfCost,
    pub checks: Vec<Check>,
    pub verdict: Verdict,
}

#[derive(Debug, Serialize)]
pub struct Latency {
    pub histogram: HistogramLayout,
    /// Per path that occurred: reclaimed and premature counts, and per
    /// stage (total, queued, grace) the distribution in ns.
    pub paths: Vec<PathReport>,
}

#[derive(Debug, Serialize)]
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

#[derive(Debug, Serialize)]
pub struct KernelLogReport {
    /// False when /dev/kmsg could not be read.
    pub scanned: bool,
    pub findings: Vec<Finding>,
}

#[derive(Debug, Serialize)]
pub struct Tool {
    pub name: &'static str,
    pub version: &'static str,
}

impl Tool {
    pub const THIS: Tool = Tool { name: "nolock-probe", version: env!("CARGO_PKG_VERSION") };
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Unsupported {
    pub trigger: &'static str,
    pub reason: String,
}

#[derive(Debug, Serialize)]
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
    pub sheaves_lock_functions: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct LoadInfo {
    pub enabled: bool,
    /// Load operations (a /proc file opened, read and closed, and a burst
    /// of 128 pipes opened and closed).
    pub ops: u64,
    pub ops_per_s: f64,
}

#[derive(Debug, Serialize)]
pub struct TriggerReport {
    pub name: &'static str,
    /// Where it was attached, e.g. `kprobe:slab_attach_kprobe_locked`.
    pub attach: String,
    /// The context it is meant to run in; `total.alloc_ctx` and each CPU's
    /// say where the kernel saw it run.
    pub intended: &'static str,
    pub per_cpu: Vec<CpuCounters>,
    pub total: TriggerCounters,
    /// How long the trigger's calls took, in ns, by what they did
    /// (`probe_common::call_kind`), over all CPUs.
    pub call_ns: BTreeMap<&'static str, CallTimes>,
}

#[derive(Debug, Serialize)]
pub struct CpuCounters {
    pub cpu: u32,
    #[serde(flatten)]
    pub counters: TriggerCounters,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Check {
    pub name: &'static str,
    pub pass: bool,
    pub detail: String,
}

#[derive(Debug, Serialize)]
pub struct Verdict {
    pub pass: bool,
    /// One line per failed check.
    pub reasons: Vec<String>,
}

/// What the BPF programs cost, from the kernel's run-time statistics.
#[derive(Debug, Serialize, PartialEq)]
pub struct BpfCost {
    /// The trigger programs. Their time includes the allocator's work they
    /// cause and the observers that run inside it.
    pub trigger_runs: u64,
    pub trigger_run_time_ns: u64,
    /// The path and reclaim observers (not the drain or the map driver).
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
        let (observer_runs, observer_run_time_ns) = sum(&|n| probes::observer_programs().any(|o| o == n));
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
            name: trigger.name(),
            attach,
            intended: trigger.intended().name(),
            per_cpu,
            total,
            call_ns: BTreeMap::new(),
        }
    }
}

pub fn sum<'a>(it: impl IntoIterator<Item = &'a TriggerCounters>) -> TriggerCounters {
    it.into_iter().fold(TriggerCounters::default(), |mut acc, c| {
        acc.accumulate(c);
        acc
    })
}

/// Invariants that hold whatever the kernel does, if the kernel keeps its
/// promises. `path_misses` is how often the kernel skipped the path
/// observers because they were already running on that CPU (a trigger in
/// an interrupt landed inside one): that many objects may lack a path, and
/// no more. A failure is a finding.
pub fn checks(triggers: &[TriggerReport], path_misses: u64) -> Vec<Check> {
    let mut out = Vec::new();
    for t in triggers {
        let c = &t.total;
        let paths = c.sheaf + c.fallback;
        let missing = c.freed_rcu as i128 - paths as i128;
        out.push(Check {
            name: "paths_add_up",
            pass: missing == 0 || (missing > 0 && missing as u64 <= path_misses),
            detail: format!(
                "{}: sheaf {} + fallback {} = {paths}, kfree_rcu_nolock() calls {} \
                 (the path observers were skipped {path_misses} times)",
                t.name, c.sheaf, c.fallback, c.freed_rcu
            ),
        });
        let handled = c.alloc_fail + c.freed_rcu + c.freed_nolock;
        out.push(Check {
            name: "calls_accounted",
            pass: handled == c.calls,
            detail: format!(
                "{}: allocation failures {} + freed {} = {handled}, calls {}",
                t.name,
                c.alloc_fail,
                c.freed_rcu + c.freed_nolock,
                c.calls
            ),
        });
        let timed = |kinds: &[&str]| -> u64 {
            kinds.iter().filter_map(|k| t.call_ns.get(k)).map(|d| d.all.count).sum()
        };
        let (allocs, frees, nolock) = (
            timed(&["alloc", "alloc_failed"]),
            timed(&["free_sheaf", "free_sheaf_call_rcu", "free_fallback", "free_unseen"]),
            timed(&["free_nolock"]),
        );
        out.push(Check {
            name: "calls_timed",
            pass: allocs == c.calls && frees == c.freed_rcu && nolock == c.freed_nolock,
            detail: format!(
                "{}: timed {allocs} allocations, {frees} kfree_rcu_nolock() and {nolock} kfree_nolock() calls; \
                 counted {}, {} and {}",
                t.name, c.calls, c.freed_rcu, c.freed_nolock
            ),
        });
        let by_ctx: u64 = c.alloc_ctx.iter().sum();
        out.push(Check {
            name: "contexts_add_up",
            pass: by_ctx == c.freed_rcu + c.freed_nolock,
            detail: format!(
                "{}: objects by context {by_ctx}, objects {}",
                t.name,
                c.freed_rcu + c.freed_nolock
            ),
        });
    }
    out
}

/// What the kernel promised: no object given back early, none lost, no
/// report in the kernel log. A failure here means the kernel is wrong.
pub fn kernel_checks(
    totals: &TriggerCounters,
    in_flight: &InFlightReport,
    kernel_log: &KernelLogReport,
    paths: &[PathReport],
) -> Vec<Check> {
    let by_path: Vec<String> = paths
        .iter()
        .filter(|p| p.premature > 0)
        .map(|p| match p.premature_after_call_rcu {
            0 => format!("{} {}", p.path, p.premature),
            late => format!("{} {}, {late} freed after their sheaf's call_rcu()", p.path, p.premature),
        })
        .collect();
    let mut out = vec![
        Check {
            name: "premature_free",
            pass: totals.premature == 0,
            detail: format!(
                "{} objects given back before their grace period ended{}",
                totals.premature,
                if by_path.is_empty() { String::new() } else { format!(" ({})", by_path.join(", ")) }
            ),
        },
        Check {
            name: "lost_objects",
            pass: in_flight.lost == 0,
            detail: format!(
                "{} objects handed to kfree_rcu_nolock() were not given back after the drain",
                in_flight.lost
            ),
        },
    ];
    out.extend(kernel_log_checks(kernel_log));
    out
}

/// Whether the observers followed every object, without which the
/// premature and lost counts cannot be trusted: each object handed to
/// kfree_rcu_nolock() ends in exactly one of reclaimed, untracked, stale
/// (its reclaim went unseen) or lost, and the kernel never skipped a
/// reclaim observer (`reclaim_misses`, its recursion protection).
pub fn follow_checks(totals: &TriggerCounters, lost: u64, reclaim_misses: u64) -> Vec<Check> {
    let ends = totals.reclaimed + totals.untracked + totals.stale + lost;
    vec![
        Check {
            name: "objects_accounted",
            pass: ends == totals.freed_rcu,
            detail: format!(
                "reclaimed {} + untracked {} + stale {} + lost {lost} = {ends}, kfree_rcu_nolock() calls {}",
                totals.reclaimed, totals.untracked, totals.stale, totals.freed_rcu
            ),
        },
        Check {
            name: "reclaims_followed",
            pass: totals.stale == 0 && reclaim_misses == 0,
            detail: format!(
                "{} objects' reclaims went unseen and the kernel skipped the reclaim observers {reclaim_misses} \
                 times, so the premature and lost counts may be off",
                totals.stale
            ),
        },
    ]
}

/// One failed check per report in the kernel log.
pub fn kernel_log_checks(kernel_log: &KernelLogReport) -> Vec<Check> {
    kernel_log
        .findings
        .iter()
        .map(|f| Check { name: "kernel_log", pass: false, detail: format!("[{}] {}", f.category, f.line) })
        .collect()
}

pub fn verdict(checks: &[Check]) -> Verdict {
    let reasons: Vec<String> =
        checks.iter().filter(|c| !c.pass).map(|c| format!("{}: {}", c.name, c.detail)).collect();
    Verdict { pass: reasons.is_empty(), reasons }
}

/// One progress line: totals so far and the rate since the previous line.
pub fn progress_line(
    elapsed_s: u64,
    duration_s: u64,
    now: &TriggerCounters,
    prev: &TriggerCounters,
    load_ops_per_s: Option<f64>,
) -> String {
    let mut line = format!(
        "[{elapsed_s:>4}/{duration_s}s] calls {} (+{}/s) alloc-fail {} | sheaf {} fallback {} | full sheaves {} deferred {}",
        now.calls,
        now.calls.saturating_sub(prev.calls),
        now.alloc_fail,
        now.sheaf,
        now.fallback,
        now.sheaf_call_rcu + now.sheaf_call_rcu_deferred,
        now.sheaf_call_rcu_deferred,
    );
    if let Some(rate) = load_ops_per_s {
        line.push_str(&format!(" | load {rate:.0} ops/s"));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counters(calls: u64, sheaf: u64, fallback: u64) -> TriggerCounters {
        TriggerCounters {
            calls,
            freed_rcu: calls,
            sheaf,
            fallback,
            alloc_ctx: [0, 0, calls, 0],
            ..Default::default()
        }
    }

    #[test]
    fn bpf_cost_splits_triggers_from_observers_and_leaves_helpers_out() {
        let stats = |runs, ns| ProgramStats { runs, run_time_ns: ns, recursion_misses: 0 };
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

    #[test]
    fn per_cpu_values_are_summed_over_the_reported_cpus() {
        // The map returns one value per possible CPU; CPU 2 is not online,
        // CPU 3 is not in the run but reclaimed two of its objects there.
        let elsewhere = TriggerCounters { reclaimed: 2, ..Default::default() };
        let values = [counters(10, 7, 3), counters(5, 5, 0), TriggerCounters::default(), elsewhere];
        let t = TriggerReport::new(Trigger::LockedKprobe, "kprobe:x".into(), &[0, 1], &values);
        assert_eq!(t.per_cpu.iter().map(|c| c.cpu).collect::<Vec<_>>(), [0, 1, 3]);
        assert_eq!(t.total.calls, 15);
        assert_eq!(t.total.sheaf, 12);
        assert_eq!(t.total.fallback, 3);
        assert_eq!(t.total.reclaimed, 2);
        assert_eq!(t.total.alloc_ctx, [0, 0, 15, 0]);
        assert_eq!(sum([&t.total, &t.total]).calls, 30);
    }

    #[test]
    fn consistent_counters_pass_and_a_lost_path_fails() {
        let mut good = TriggerReport::new(Trigger::PerfEvent, "p".into(), &[0], &[counters(10, 6, 4)]);
        good.call_ns = times(&[("alloc", 10), ("free_sheaf", 6), ("free_fallback", 4)]);
        let v = verdict(&checks(&[good], 0));
        assert!(v.pass, "{:?}", v.reasons);

        let mut bad = TriggerReport::new(Trigger::PerfEvent, "p".into(), &[0], &[counters(10, 6, 3)]);
        bad.call_ns = times(&[("alloc", 10), ("free_sheaf", 6), ("free_fallback", 4)]);
        let v = verdict(&checks(&[bad], 0));
        assert!(!v.pass);
        assert_eq!(v.reasons.len(), 1);
        assert!(
            v.reasons[0].starts_with("paths_add_up: perf_event: sheaf 6 + fallback 3"),
            "{}",
            v.reasons[0]
        );
    }

    #[test]
    fn objects_not_followed_to_the_end_fail() {
        let mut t = counters(10, 6, 4);
        t.reclaimed = 9;
        let names = |c: Vec<Check>| c.into_iter().filter(|c| !c.pass).map(|c| c.name).collect::<Vec<_>>();
        assert!(names(follow_checks(&t, 1, 0)).is_empty());
        assert_eq!(names(follow_checks(&t, 0, 0)), ["objects_accounted"]);
        t.stale = 1;
        assert_eq!(names(follow_checks(&t, 0, 0)), ["reclaims_followed"]);
        assert_eq!(names(follow_checks(&t, 0, 2)), ["reclaims_followed"]);
    }

    fn times(kinds: &[(&'static str, u64)]) -> BTreeMap<&'static str, CallTimes> {
        let d = |count| crate::latency::Distribution {
            count,
            min_ns: 1,
            p50_ns: 1,
            p90_ns: 1,
            p99_ns: 1,
            p999_ns: 1,
            max_ns: 1,
            mean_ns: 1,
        };
        kinds.iter().map(|&(k, n)| (k, CallTimes { all: d(n), histogram: Vec::new() })).collect()
    }

    #[test]
    fn calls_not_timed_fail() {
        let mut t = TriggerReport::new(Trigger::PerfEvent, "p".into(), &[0], &[counters(10, 6, 4)]);
        t.call_ns =
            times(&[("alloc", 10), ("free_sheaf", 5), ("free_sheaf_call_rcu", 1), ("free_fallback", 4)]);
        let failed = |t: &TriggerReport| -> Vec<&str> {
            checks(std::slice::from_ref(t), 0).into_iter().filter(|c| !c.pass).map(|c| c.name).collect()
        };
        assert!(failed(&t).is_empty(), "{:?}", checks(&[t], 0));
        t.call_ns = times(&[("alloc", 10), ("free_sheaf", 5), ("free_fallback", 4)]);
        assert_eq!(failed(&t), ["calls_timed"]);
    }

    #[test]
    fn unaccounted_calls_and_contexts_fail() {
        let mut c = counters(10, 6, 4);
        c.calls = 11;
        c.alloc_ctx = [1, 0, 8, 0];
        let mut t = TriggerReport::new(Trigger::PerfEvent, "p".into(), &[0], &[c]);
        t.call_ns = times(&[("alloc", 11), ("free_sheaf", 10)]);
        let failed: Vec<&str> = checks(&[t], 0).into_iter().filter(|c| !c.pass).map(|c| c.name).collect();
        assert_eq!(failed, ["calls_accounted", "contexts_add_up"]);
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
        assert_eq!(v["per_cpu"][0]["cpu"], 1);
        assert_eq!(v["per_cpu"][0]["calls"], 4);
        assert_eq!(v["per_cpu"][0]["alloc_ctx"]["hardirq"], 4);
        assert_eq!(v["total"]["sheaf"], 4);
        for key in [
            "calls",
            "alloc_fail",
            "freed_rcu",
            "freed_nolock",
            "alloc_ctx",
            "alloc_irqs_off",
            "sheaf",
            "sheaf_fail",
            "fallback",
            "sheaf_call_rcu",
            "sheaf_call_rcu_deferred",
            "sheaf_call_rcu_flushed",
        ] {
            assert!(v["total"].get(key).is_some(), "missing {key}");
        }
    }

    #[test]
    fn progress_line_shows_rate_and_paths() {
        let line = progress_line(3, 20, &counters(300, 200, 100), &counters(200, 150, 50), Some(1234.4));
        assert_eq!(
            line,
            "[   3/20s] calls 300 (+100/s) alloc-fail 0 | sheaf 200 fallback 100 | full sheaves 0 deferred 0 | load 1234 ops/s"
        );
    }
}
