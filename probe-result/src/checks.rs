//! The checks that make up a verdict: functions over the collected data,
//! used by `run` and `bench` to judge, and by xtask's end-to-end tests,
//! which hold a guest's result to the same functions instead of copies.

use probe_common::{TriggerCounters, call_kind, ctx, programs, violation};

// The invariants judged while a run runs (`run --stream`): checks/live.rs.
mod live;

pub use self::live::live;
pub use crate::verdict::{Check, Verdict};
use crate::{
    kernel::{CrossCheck, KernelLogReport},
    run::{InFlightReport, RunReport, TriggerReport, ViolationReport},
};

/// Every check of a run, from what it collected (everything in `r` but
/// its checks and verdict). Without following objects (`--no-follow`)
/// nothing can be said about early, doubled or lost objects: those checks
/// are not made, and the plan says so.
pub fn of_run(r: &RunReport) -> Vec<Check> {
    let mut checks = if r.plan.follow {
        let misses = reclaim_misses(r);
        let mut c = vec![premature_free(r, misses), double_free(r)];
        c.push(lost_objects(&r.in_flight));
        c.extend(follow_checks(&r.totals, r.in_flight.lost, misses));
        c
    } else {
        Vec::new()
    };
    checks.extend(context_rules(r));
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
/// interrupt that landed inside one). An object the kernel freed or
/// handed out again on no path at all is a premature free, which
/// `premature_free` names: counted here too, the consequence would be
/// reported beside its cause as the tool's miscount.
pub fn paths_add_up(t: &TriggerReport, path_misses: u64) -> Check {
    let c = &t.total;
    let unseen = t.timed(&[call_kind::FREE_UNSEEN]);
    let paths = c.sheaf + c.fallback;
    let escaped = c.freed_in_flight + c.reused_in_flight + c.stale;
    let escaped_note =
        if escaped > 0 { format!("; {escaped} caught as premature frees") } else { String::new() };
    Check::new(
        "paths_add_up",
        paths + unseen == c.freed_rcu && unseen <= path_misses + escaped,
        format!(
            "{}: sheaf {} + fallback {} + unseen {unseen} = {}, kfree_rcu_nolock() calls {} \
             (the path observers were skipped {path_misses} times{escaped_note})",
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

/// What the kernel promised: no object of the tool's leaves the allocator's
/// care before its grace period ends, by any route. Four ways to see one
/// that did: its reclaim came before the grace period its cookie names; it
/// reached one of the slab's free entry points in flight, before its grace
/// period (`freed_in_flight`); kmalloc_nolock() handed its memory out again
/// while it was in flight; its reclaim found the memory holding another
/// owner's object (`stale`).
/// The last two also follow from a reclaim the tool missed: with the
/// reclaim observers skipped (`reclaim_misses`) they are the tool's, and
/// `reclaims_followed` says so instead.
pub fn premature_free(r: &RunReport, reclaim_misses: u64) -> Check {
    let t = &r.totals;
    let mut found = Vec::new();
    if t.premature > 0 {
        let by_path: Vec<String> = r
            .latency
            .paths
            .iter()
            .filter(|p| p.premature > 0)
            .map(|p| match p.premature_after_call_rcu {
                0 => format!("{} {}", p.path, p.premature),
                late => format!("{} {}, {late} freed after their sheaf's call_rcu()", p.path, p.premature),
            })
            .collect();
        // Reclaimed from a sheaf whose call_rcu() the tool never saw (the
        // `unattributed` objects): no path to name.
        let mut by_path = by_path;
        let pathless =
            t.premature - r.latency.paths.iter().map(|p| p.premature).sum::<u64>().min(t.premature);
        if pathless > 0 {
            by_path.push(format!("no recorded path {pathless}"));
        }
        let by_path = if by_path.is_empty() { String::new() } else { format!(" ({})", by_path.join(", ")) };
        found.push(format!("{} given back before their grace period ended{by_path}", t.premature));
    }
    // Never the tool's: a missed reclaim frees after the grace period.
    if t.freed_in_flight > 0 {
        let freed = r.violation(violation::FREED_IN_FLIGHT);
        found.push(format!(
            "{} reached the slab allocator's free side while in flight, without a reclaim ({}); {}",
            t.freed_in_flight,
            split(&freed.by, "freed by"),
            age_and_grace(&freed)
        ));
    }
    if reclaim_misses == 0 {
        let reused = r.violation(violation::REUSED);
        if t.reused_in_flight > 0 {
            found.push(format!(
                "{} handed out again by kmalloc_nolock() while in flight, without a reclaim ({}); {}",
                t.reused_in_flight,
                split(&reused.by, "queued on"),
                age_and_grace(&reused)
            ));
        }
        if t.stale > 0 {
            found.push(format!(
                "{} whose memory held another owner's object (or a free pointer) when a reclaim path gave it \
                 back or after the drain",
                t.stale
            ));
        }
    }
    let early =
        t.premature + t.freed_in_flight + if reclaim_misses == 0 { t.reused_in_flight + t.stale } else { 0 };
    Check::new(
        "premature_free",
        early == 0,
        if found.is_empty() {
            "no object was freed before its grace period ended".into()
        } else {
            format!("premature free: {}", found.join("; "))
        },
    )
}

/// Queue names and counts: "queued on rcu sheaf 3, fallback 1".
fn split(by: &std::collections::BTreeMap<String, u64>, what: &str) -> String {
    let parts: Vec<String> = by.iter().map(|(k, n)| format!("{k} {n}")).collect();
    format!("{what} {}", if parts.is_empty() { "unknown".into() } else { parts.join(", ") })
}

/// "4 us to 1.2 ms after kfree_rcu_nolock(), grace period over for 0 of 12".
fn age_and_grace(v: &ViolationReport) -> String {
    format!(
        "{} to {} after kfree_rcu_nolock(), grace period over for {} of {}",
        crate::dist::human_ns(v.age_min_ns),
        crate::dist::human_ns(v.age_max_ns),
        v.grace_period_over,
        v.count
    )
}

/// One kfree_rcu_nolock() is one reclaim: an object the kernel queued twice
/// (caught when it is queued, before it can be reclaimed twice) or
/// reclaimed twice (caught at the second reclaim) is a double free.
pub fn double_free(r: &RunReport) -> Check {
    let t = &r.totals;
    let mut found = Vec::new();
    if t.double_queued > 0 {
        let v = r.violation(violation::DOUBLE_QUEUED);
        found.push(format!(
            "{} kfree_rcu_nolock() calls queued twice ({}; {})",
            t.double_queued,
            split(&v.by, "queued on"),
            by_trigger(r, |c| c.double_queued)
        ));
    }
    if t.double_reclaimed > 0 {
        let v = r.violation(violation::DOUBLE_RECLAIMED);
        found.push(format!(
            "{} objects reclaimed twice ({}; {})",
            t.double_reclaimed,
            split(&v.by, "first queued on"),
            by_trigger(r, |c| c.double_reclaimed)
        ));
    }
    Check::new(
        "double_free",
        found.is_empty(),
        if found.is_empty() {
            "no object was queued or reclaimed twice".into()
        } else {
            format!("double free: {}", found.join("; "))
        },
    )
}

/// "perf_event 3, hrtimer 1": the triggers with a non-zero `count`.
fn by_trigger(r: &RunReport, count: impl Fn(&TriggerCounters) -> u64) -> String {
    let parts: Vec<String> = r
        .triggers
        .iter()
        .filter(|t| count(&t.total) > 0)
        .map(|t| format!("{} {}", t.name.name(), count(&t.total)))
        .collect();
    parts.join(", ")
}

/// No object is still in flight once the drain's kvfree_rcu_barrier() is
/// over.
pub fn lost_objects(in_flight: &InFlightReport) -> Check {
    Check::new(
        "lost_objects",
        in_flight.lost == 0,
        format!(
            "{} objects handed to kfree_rcu_nolock() were not given back after the drain",
            in_flight.lost
        ),
    )
}

/// The context rules of the series that the counters can judge, one check
/// each (README: "Context rules"). The lockdep rule is the console's and
/// the kernel log's (`kernel_log_checks`).
pub fn context_rules(r: &RunReport) -> Vec<Check> {
    let mut out = Vec::new();
    if r.plan.follow {
        let t = &r.totals;
        let v = r.violation(violation::CALL_RCU_UNSAFE);
        out.push(Check::new(
            "context_rule_call_rcu_deferred",
            t.call_rcu_unsafe == 0,
            if t.call_rcu_unsafe == 0 {
                "no full rcu sheaf of a no-spin call with interrupts off or in NMI reached call_rcu() inside the call"
                    .into()
            } else {
                format!(
                    "context violation: rule \"a full rcu sheaf filled by a no-spin call with interrupts off or in NMI \
                     reaches call_rcu() only through the deferred irq_work\" broken {} times ({}; {})",
                    t.call_rcu_unsafe,
                    split(&v.by, "in"),
                    by_trigger(r, |c| c.call_rcu_unsafe)
                )
            },
        ));
    }
    if r.kernel.config.get("CONFIG_PREEMPT_RT").is_some_and(|v| v == "y") {
        let hard = |c: &TriggerCounters| c.alloc_ctx[ctx::HARDIRQ as usize] + c.alloc_ctx[ctx::NMI as usize];
        let n = hard(&r.totals);
        out.push(Check::new(
            "context_rule_rt_no_alloc_in_hardirq",
            n == 0,
            if n == 0 {
                "on PREEMPT_RT kmalloc_nolock() returned no object in hardirq or NMI".into()
            } else {
                format!(
                    "context violation: rule \"on PREEMPT_RT kmalloc_nolock() fails in hardirq and NMI \
                     (can_spin_trylock())\" broken {n} times ({})",
                    by_trigger(r, hard)
                )
            },
        ));
    }
    out
}

/// Whether the observers followed every object, without which the
/// premature and lost counts cannot be trusted: each object handed to
/// kfree_rcu_nolock() ends in exactly one of reclaimed, untracked, stale
/// (its memory held another object at the reclaim), reused in flight,
/// freed at the free side (in flight, or after its grace period but unseen
/// by a reclaim observer) or lost, and the kernel never skipped a reclaim
/// observer
/// (`reclaim_misses`, its recursion protection). With skips, stale and
/// reused objects are the tool's missed reclaims, and this check names
/// them; without, `premature_free` does.
pub fn follow_checks(totals: &TriggerCounters, lost: u64, reclaim_misses: u64) -> Vec<Check> {
    let freed = totals.freed_in_flight + totals.freed_unwatched;
    let ends = totals.reclaimed + totals.untracked + totals.stale + totals.reused_in_flight + freed + lost;
    vec![
        Check::new(
            "objects_accounted",
            ends == totals.freed_rcu,
            format!(
                "reclaimed {} + untracked {} + stale {} + reused in flight {} + freed unseen {freed} + lost {lost} \
                 = {ends}, kfree_rcu_nolock() calls {}",
                totals.reclaimed, totals.untracked, totals.stale, totals.reused_in_flight, totals.freed_rcu
            ),
        ),
        Check::new(
            "reclaims_followed",
            reclaim_misses == 0,
            format!(
                "the tool's bookkeeping: the kernel skipped the reclaim observers {reclaim_misses} times, so \
                 {} objects whose memory came back while in flight ({} stale, {} reused) may be missed reclaims, \
                 and the premature and lost counts may be off",
                totals.stale + totals.reused_in_flight,
                totals.stale,
                totals.reused_in_flight
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
        // One freed on no path, caught as a premature free, is that
        // check's; here it only accounts for the unseen call.
        let mut escaped = t.clone();
        escaped.total.freed_in_flight = 1;
        assert!(paths_add_up(&escaped, 0).pass);
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
        // A stale object ends the object too (premature_free judges it).
        t.stale = 1;
        assert!(failed(follow_checks(&t, 0, 0)).is_empty());
        assert_eq!(failed(follow_checks(&t, 0, 2)), ["reclaims_followed"]);
    }

    /// A committed healthy run (vm-debug-20s.json, the debug kernel, every
    /// check passing) to break one way at a time.
    fn healthy() -> RunReport {
        let r = crate::Document::read_run(&crate::testing::repo_path("results/vm-debug-20s.json")).unwrap();
        assert!(of_run(&r).iter().all(|c| c.pass), "the committed run passes");
        r
    }

    fn violation(count: u64, by: &[(&str, u64)], over: u64, ages: (u64, u64)) -> ViolationReport {
        ViolationReport {
            count,
            by: by.iter().map(|(k, n)| (k.to_string(), *n)).collect(),
            grace_period_over: over,
            age_min_ns: ages.0,
            age_max_ns: ages.1,
        }
    }

    fn reasons(r: &RunReport) -> Vec<String> {
        Verdict::of(&of_run(r)).reasons
    }

    #[test]
    fn early_and_lost_objects_fail_with_their_path() {
        let mut r = healthy();
        r.totals.premature = 3;
        let p = r.latency.paths.iter_mut().find(|p| p.path == "sheaf_immediate").unwrap();
        p.premature = 3;
        p.premature_after_call_rcu = 1;
        r.in_flight.lost = 2;
        r.totals.reclaimed -= 2;
        assert_eq!(
            reasons(&r),
            [
                "premature_free: premature free: 3 given back before their grace period ended (sheaf_immediate 3, \
                 1 freed after their sheaf's call_rcu())",
                "lost_objects: 2 objects handed to kfree_rcu_nolock() were not given back after the drain",
            ]
        );
    }

    /// Memory handed out again while its object was in flight is the
    /// kernel's premature free, named with the object's queue, age and
    /// grace period; unless the reclaim observers were skipped, when it is
    /// the tool's missed reclaim and named as such.
    #[test]
    fn reuse_in_flight_is_a_premature_free_unless_the_tool_missed_reclaims() {
        let mut r = healthy();
        r.totals.reused_in_flight = 12;
        r.totals.reclaimed -= 12;
        r.violations.insert(
            "reused_in_flight".into(),
            violation(12, &[("no path", 9), ("rcu sheaf", 3)], 0, (4_000, 1_200_000)),
        );
        assert_eq!(
            reasons(&r),
            [
                "premature_free: premature free: 12 handed out again by kmalloc_nolock() while in flight, without a \
              reclaim (queued on no path 9, rcu sheaf 3); 4.000us to 1.200ms after kfree_rcu_nolock(), grace \
              period over for 0 of 12"
            ]
        );
        r.recursion_misses.insert("rcu_free_sheaf".into(), 1);
        assert_eq!(
            reasons(&r),
            [
                "reclaims_followed: the tool's bookkeeping: the kernel skipped the reclaim observers 1 times, so 12 \
              objects whose memory came back while in flight (0 stale, 12 reused) may be missed reclaims, and the \
              premature and lost counts may be off"
            ]
        );
    }

    /// An object that reaches a free entry point in flight, before its
    /// grace period, is the kernel's premature free, named with the entry
    /// point and the age, skipped reclaim observers or not; one freed
    /// unseen after its grace period only ends the object.
    #[test]
    fn a_free_in_flight_is_a_premature_free_whatever_the_tool_missed() {
        let mut r = healthy();
        r.totals.freed_in_flight = 7;
        r.totals.freed_unwatched = 2;
        r.totals.reclaimed -= 9;
        r.violations.insert(
            "freed_in_flight".into(),
            violation(7, &[("kfree_nolock()", 6), ("a bulk free or __slab_free()", 1)], 0, (2_000, 90_000)),
        );
        let expected = "premature_free: premature free: 7 reached the slab allocator's free side while in flight, \
                        without a reclaim (freed by a bulk free or __slab_free() 1, kfree_nolock() 6); 2.000us to \
                        90.000us after kfree_rcu_nolock(), grace period over for 0 of 7";
        assert_eq!(reasons(&r), [expected]);
        r.recursion_misses.insert("rcu_free_sheaf".into(), 1);
        let with_misses = reasons(&r);
        assert!(with_misses.iter().any(|x| x == expected), "{with_misses:#?}");
        // Unseen frees after the grace period end objects, nothing more.
        r.recursion_misses.clear();
        r.totals.freed_in_flight = 0;
        r.totals.reclaimed += 7;
        r.violations.clear();
        assert!(reasons(&r).is_empty(), "{:#?}", reasons(&r));
    }

    #[test]
    fn stale_memory_at_reclaim_is_a_premature_free() {
        let mut r = healthy();
        r.totals.stale = 2;
        r.totals.reclaimed -= 2;
        assert_eq!(
            reasons(&r),
            [
                "premature_free: premature free: 2 whose memory held another owner's object (or a free pointer) \
                 when a reclaim path gave it back or after the drain"
            ]
        );
    }

    #[test]
    fn objects_queued_or_reclaimed_twice_are_a_double_free() {
        let mut r = healthy();
        let t = r.triggers.iter_mut().find(|t| t.name == Trigger::PerfEvent).unwrap();
        t.total.double_queued = 5;
        t.total.double_reclaimed = 2;
        r.totals.double_queued = 5;
        r.totals.double_reclaimed = 2;
        r.violations
            .insert("double_queued".into(), violation(5, &[("rcu sheaf and fallback", 5)], 0, (0, 0)));
        r.violations.insert("double_reclaimed".into(), violation(2, &[("rcu sheaf", 2)], 2, (0, 0)));
        assert_eq!(
            reasons(&r),
            [
                "double_free: double free: 5 kfree_rcu_nolock() calls queued twice (queued on rcu sheaf and fallback \
              5; perf_event 5); 2 objects reclaimed twice (first queued on rcu sheaf 2; perf_event 2)"
            ]
        );
    }

    #[test]
    fn broken_context_rules_name_rule_trigger_and_count() {
        let mut r = healthy();
        let t = r.triggers.iter_mut().find(|t| t.name == Trigger::PerfEvent).unwrap();
        t.total.call_rcu_unsafe = 7;
        r.totals.call_rcu_unsafe = 7;
        r.violations.insert("call_rcu_unsafe".into(), violation(7, &[("hardirq", 7)], 0, (0, 0)));
        assert_eq!(
            reasons(&r),
            [
                "context_rule_call_rcu_deferred: context violation: rule \"a full rcu sheaf filled by a no-spin call \
              with interrupts off or in NMI reaches call_rcu() only through the deferred irq_work\" broken 7 times \
              (in hardirq 7; perf_event 7)"
            ]
        );

        // The debug kernel allocates in hardirq; on PREEMPT_RT that breaks
        // can_spin_trylock()'s rule.
        let mut r = healthy();
        let hard: u64 = r.totals.alloc_ctx[ctx::HARDIRQ as usize];
        assert!(hard > 0);
        assert!(context_rules(&r).iter().all(|c| c.pass));
        r.kernel.config.insert("CONFIG_PREEMPT_RT".into(), "y".into());
        let failed: Vec<_> = context_rules(&r).into_iter().filter(|c| !c.pass).collect();
        assert_eq!(failed.len(), 1);
        assert!(
            failed[0].detail.starts_with(&format!(
                "context violation: rule \"on PREEMPT_RT kmalloc_nolock() fails in hardirq and NMI \
                 (can_spin_trylock())\" broken {hard} times ("
            )),
            "{}",
            failed[0].detail
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
