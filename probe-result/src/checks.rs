//! The checks that make up a verdict: functions over the collected data,
//! used by `run` and `bench` to judge, and by xtask's end-to-end tests,
//! which hold a guest's result to the same functions instead of copies.

use probe_common::{TriggerCounters, call_kind, programs};

pub use crate::verdict::{Check, Verdict};
use crate::{
    kernel::{CrossCheck, KernelLogReport},
    run::{InFlightReport, PathReport, RunReport, TriggerReport},
};

/// Every check of a run, from what it collected (everything in `r` but
/// its checks and verdict). Without following objects (`--no-follow`)
/// nothing can be said about early or lost objects: those checks are not
/// made, and the plan says so.
pub fn of_run(r: &RunReport) -> Vec<Check> {
    let mut checks = if r.plan.follow {
        let mut c = kernel_checks(&r.totals, &r.in_flight, &r.latency.paths);
        c.extend(follow_checks(&r.totals, r.in_flight.lost, reclaim_misses(r)));
        c
    } else {
        Vec::new()
    };
    checks.extend(kernel_log_checks(&r.kernel_log));
    checks.extend(trigger_checks(&r.triggers, r.path_misses()));
    checks.extend(slub_stats_check(&r.slub_stats));
    checks
}

/// Recursion misses of the observers that follow objects to their reclaim.
pub fn reclaim_misses(r: &RunReport) -> u64 {
    programs::observer_programs(programs::Role::Follow).filter_map(|p| r.recursion_misses.get(p)).sum()
}

/// Each trigger's kfree_rcu_nolock() calls took exactly one path: into
/// the rcu sheaf or the fallback, or none the observers saw, which is a
/// call timed as `free_unseen` and no more of them than the kernel skipped
/// the observers that decide a path (`path_misses`: a trigger in an
/// interrupt that landed inside one).
pub fn paths_add_up(t: &TriggerReport, path_misses: u64) -> Check {
    let c = &t.total;
    let unseen = t.timed(&[call_kind::FREE_UNSEEN]);
    let paths = c.sheaf + c.fallback;
    Check::new(
        "paths_add_up",
        paths + unseen == c.freed_rcu && unseen <= path_misses,
        format!(
            "{}: sheaf {} + fallback {} + unseen {unseen} = {}, kfree_rcu_nolock() calls {} \
             (the path observers were skipped {path_misses} times)",
            t.name.name(),
            c.sheaf,
            c.fallback,
            paths + unseen,
            c.freed_rcu
        ),
    )
}

/// Invariants that hold whatever the kernel does, if the kernel keeps its
/// promises and the tool counts right. A failure is a finding.
pub fn trigger_checks(triggers: &[TriggerReport], path_misses: u64) -> Vec<Check> {
    let mut out = Vec::new();
    for t in triggers {
        let c = &t.total;
        let name = t.name.name();
        out.push(paths_add_up(t, path_misses));
        let handled = c.alloc_fail + c.freed_rcu + c.freed_nolock;
        out.push(Check::new(
            "calls_accounted",
            handled == c.calls,
            format!(
                "{name}: allocation failures {} + freed {} = {handled}, calls {}",
                c.alloc_fail,
                c.freed_rcu + c.freed_nolock,
                c.calls
            ),
        ));
        let (allocs, frees, nolock) = (
            t.timed(&[call_kind::ALLOC, call_kind::ALLOC_FAILED]),
            t.timed(&[
                call_kind::FREE_SHEAF,
                call_kind::FREE_SHEAF_CALL_RCU,
                call_kind::FREE_FALLBACK,
                call_kind::FREE_UNSEEN,
            ]),
            t.timed(&[call_kind::FREE_NOLOCK]),
        );
        out.push(Check::new(
            "calls_timed",
            allocs == c.calls && frees == c.freed_rcu && nolock == c.freed_nolock,
            format!(
                "{name}: timed {allocs} allocations, {frees} kfree_rcu_nolock() and {nolock} kfree_nolock() calls; \
                 counted {}, {} and {}",
                c.calls, c.freed_rcu, c.freed_nolock
            ),
        ));
        let by_ctx: u64 = c.alloc_ctx.iter().sum();
        out.push(Check::new(
            "contexts_add_up",
            by_ctx == c.freed_rcu + c.freed_nolock,
            format!("{name}: objects by context {by_ctx}, objects {}", c.freed_rcu + c.freed_nolock),
        ));
    }
    out
}

/// What the kernel promised: no object given back early, none lost. A
/// failure here means the kernel is wrong.
pub fn kernel_checks(
    totals: &TriggerCounters,
    in_flight: &InFlightReport,
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
    vec![
        Check::new(
            "premature_free",
            totals.premature == 0,
            format!(
                "{} objects given back before their grace period ended{}",
                totals.premature,
                if by_path.is_empty() { String::new() } else { format!(" ({})", by_path.join(", ")) }
            ),
        ),
        Check::new(
            "lost_objects",
            in_flight.lost == 0,
            format!(
                "{} objects handed to kfree_rcu_nolock() were not given back after the drain",
                in_flight.lost
            ),
        ),
    ]
}

/// Whether the observers followed every object, without which the
/// premature and lost counts cannot be trusted: each object handed to
/// kfree_rcu_nolock() ends in exactly one of reclaimed, untracked, stale
/// (its reclaim went unseen) or lost, and the kernel never skipped a
/// reclaim observer (`reclaim_misses`, its recursion protection).
pub fn follow_checks(totals: &TriggerCounters, lost: u64, reclaim_misses: u64) -> Vec<Check> {
    let ends = totals.reclaimed + totals.untracked + totals.stale + lost;
    vec![
        Check::new(
            "objects_accounted",
            ends == totals.freed_rcu,
            format!(
                "reclaimed {} + untracked {} + stale {} + lost {lost} = {ends}, kfree_rcu_nolock() calls {}",
                totals.reclaimed, totals.untracked, totals.stale, totals.freed_rcu
            ),
        ),
        Check::new(
            "reclaims_followed",
            totals.stale == 0 && reclaim_misses == 0,
            format!(
                "{} objects' reclaims went unseen and the kernel skipped the reclaim observers {reclaim_misses} \
                 times, so the premature and lost counts may be off",
                totals.stale
            ),
        ),
    ]
}

/// One failed check per report in the kernel log.
pub fn kernel_log_checks(kernel_log: &KernelLogReport) -> Vec<Check> {
    kernel_log
        .findings
        .iter()
        .map(|f| Check::new("kernel_log", false, format!("[{}] {}", f.category, f.line)))
        .collect()
}

/// The kernel counts every rcu-sheaf attempt in the objects' caches, the
/// tool only its own: seeing more than the kernel is a tool bug. No check
/// without CONFIG_SLUB_STATS.
pub fn slub_stats_check(s: &CrossCheck) -> Option<Check> {
    s.available.then(|| {
        Check::new(
            "slub_stats_consistent",
            s.others_free_rcu_sheaf >= 0 && s.others_free_rcu_sheaf_fail >= 0,
            s.explanation.clone(),
        )
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use probe_common::Trigger;

    use super::*;
    use crate::{
        dist::{CallTimes, Distribution},
        testing::counters,
    };

    fn times(kinds: &[(&str, u64)]) -> BTreeMap<String, CallTimes> {
        kinds
            .iter()
            .map(|&(k, count)| {
                (
                    k.to_string(),
                    CallTimes { all: Distribution { count, ..Default::default() }, histogram: vec![] },
                )
            })
            .collect()
    }

    fn trigger(c: TriggerCounters, kinds: &[(&str, u64)]) -> TriggerReport {
        let mut t = TriggerReport::new(Trigger::PerfEvent, "p".into(), &[0], &[c]);
        t.call_ns = times(kinds);
        t
    }

    fn failed(checks: Vec<Check>) -> Vec<String> {
        checks.into_iter().filter(|c| !c.pass).map(|c| c.name).collect()
    }

    #[test]
    fn consistent_counters_pass_and_a_lost_path_fails() {
        let good = trigger(counters(10, 6, 4), &[("alloc", 10), ("free_sheaf", 6), ("free_fallback", 4)]);
        let v = Verdict::of(&trigger_checks(&[good], 0));
        assert!(v.pass, "{:?}", v.reasons);

        let bad = trigger(counters(10, 6, 3), &[("alloc", 10), ("free_sheaf", 6), ("free_fallback", 4)]);
        let v = Verdict::of(&trigger_checks(&[bad], 0));
        assert_eq!(
            v.reasons,
            ["paths_add_up: perf_event: sheaf 6 + fallback 3 + unseen 0 = 9, kfree_rcu_nolock() calls 10 \
              (the path observers were skipped 0 times)"]
        );
    }

    /// A free whose path observer the kernel skipped has no path; allowed
    /// as long as it was timed as unseen and the skips account for it.
    #[test]
    fn unseen_frees_need_skipped_path_observers() {
        let t = trigger(counters(6, 5, 0), &[("alloc", 6), ("free_sheaf", 5), ("free_unseen", 1)]);
        assert!(paths_add_up(&t, 1).pass);
        assert!(!paths_add_up(&t, 0).pass);
        // Skips excuse no free that was not timed as unseen.
        let t = trigger(counters(6, 5, 0), &[("alloc", 6), ("free_sheaf", 6)]);
        assert!(!paths_add_up(&t, 3).pass);
    }

    #[test]
    fn calls_not_timed_fail() {
        let mut t = trigger(
            counters(10, 6, 4),
            &[("alloc", 10), ("free_sheaf", 5), ("free_sheaf_call_rcu", 1), ("free_fallback", 4)],
        );
        assert!(failed(trigger_checks(std::slice::from_ref(&t), 0)).is_empty());
        t.call_ns = times(&[("alloc", 10), ("free_sheaf", 5), ("free_fallback", 4)]);
        assert_eq!(failed(trigger_checks(&[t], 0)), ["calls_timed"]);
    }

    #[test]
    fn unaccounted_calls_and_contexts_fail() {
        let mut c = counters(10, 6, 4);
        c.calls = 11;
        c.alloc_ctx = [1, 0, 8, 0];
        let t = trigger(c, &[("alloc", 11), ("free_sheaf", 6), ("free_fallback", 4)]);
        assert_eq!(failed(trigger_checks(&[t], 0)), ["calls_accounted", "contexts_add_up"]);
    }

    #[test]
    fn objects_not_followed_to_the_end_fail() {
        let mut t = counters(10, 6, 4);
        t.reclaimed = 9;
        assert!(failed(follow_checks(&t, 1, 0)).is_empty());
        assert_eq!(failed(follow_checks(&t, 0, 0)), ["objects_accounted"]);
        t.stale = 1;
        assert_eq!(failed(follow_checks(&t, 0, 0)), ["reclaims_followed"]);
        assert_eq!(failed(follow_checks(&t, 0, 2)), ["reclaims_followed"]);
    }

    #[test]
    fn early_and_lost_objects_fail_with_their_path() {
        let mut totals = counters(10, 10, 0);
        totals.premature = 3;
        let path = PathReport {
            path: "sheaf_immediate".into(),
            reclaimed: 10,
            premature: 3,
            premature_after_call_rcu: 1,
            ..Default::default()
        };
        let in_flight = InFlightReport { lost: 2, ..Default::default() };
        let v = Verdict::of(&kernel_checks(&totals, &in_flight, &[path]));
        assert_eq!(
            v.reasons,
            [
                "premature_free: 3 objects given back before their grace period ended (sheaf_immediate 3, 1 freed \
                 after their sheaf's call_rcu())",
                "lost_objects: 2 objects handed to kfree_rcu_nolock() were not given back after the drain",
            ]
        );
    }

    #[test]
    fn each_kernel_log_report_fails() {
        let log = KernelLogReport {
            scanned: true,
            findings: vec![crate::kernel::Finding {
                category: "kasan".into(),
                line: "BUG: KASAN: use-after-free".into(),
            }],
        };
        assert_eq!(
            Verdict::of(&kernel_log_checks(&log)).reasons,
            ["kernel_log: [kasan] BUG: KASAN: use-after-free"]
        );
    }

    #[test]
    fn the_tool_seeing_more_than_slub_stats_fails() {
        let mut s = CrossCheck { available: true, others_free_rcu_sheaf: -1, ..Default::default() };
        assert!(!slub_stats_check(&s).unwrap().pass);
        s.others_free_rcu_sheaf = 0;
        assert!(slub_stats_check(&s).unwrap().pass);
        s.available = false;
        assert!(slub_stats_check(&s).is_none());
    }
}
