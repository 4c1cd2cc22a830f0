//! What each fault kernel (kernel-patches/faults/) must make a run show:
//! the check of its class failing with its whole reason, rebuilt here from
//! the run's own counts, and those counts within what the fault can cause.
//! A reason that only starts right (or names the wrong class beside the
//! right one) is a problem: the suite tells a sensitive detector from a
//! blunt one.

use probe_common::{Path, Trigger, TriggerCounters, violation};
use probe_result::{Document, RunReport, run::ViolationReport};

/// One fault patch and what its run must show.
pub struct Fault {
    /// File stem under kernel-patches/faults/.
    pub name: &'static str,
    /// What it breaks, for the test's name.
    pub class: &'static str,
    /// `nolock-probe run` options the detector needs beyond the defaults.
    pub run_args: &'static [&'static str],
    expect: fn(&Document) -> Vec<String>,
}

impl Fault {
    /// Every problem with the result of a run on this fault's kernel.
    pub fn problems(&self, doc: &Document) -> Vec<String> {
        let mut problems = Vec::new();
        if doc.verdict().pass {
            problems.push("the verdict is not fail".into());
        }
        problems.extend((self.expect)(doc));
        problems
    }
}

pub const FAULTS: [Fault; 7] = [
    Fault {
        name: "premature-free",
        class: "premature free at reclaim (deferred sheaves only)",
        run_args: &[],
        expect: premature_at_reclaim,
    },
    Fault {
        name: "free-early",
        class: "premature free at the free side (1 object in 128)",
        run_args: &[],
        expect: free_early,
    },
    Fault {
        name: "barn-early",
        class: "premature free by reuse (1 full rcu sheaf in 128)",
        run_args: &[],
        expect: barn_early,
    },
    Fault {
        name: "lose-deferred",
        class: "lost objects (the fallback path only)",
        run_args: &[],
        expect: lose_deferred,
    },
    // Caught as it is queued only by the independent observers on
    // __kfree_rcu_sheaf(): the cheap mode takes the caller's word for
    // the path, and the caller sees the fallback alone.
    Fault {
        name: "double-queue",
        class: "double free (1 object in 128)",
        run_args: &["--observe", "full"],
        expect: double_queue,
    },
    Fault {
        name: "call-rcu-irqs-off",
        class: "context violation (call_rcu() with interrupts off)",
        run_args: &[],
        expect: call_rcu_irqs_off,
    },
    Fault { name: "spin-on-nolock", class: "lockdep report", run_args: &[], expect: lockdep },
];

/// The result as a finished run's, or why it is not one.
fn run(doc: &Document) -> Result<&RunReport, String> {
    match doc {
        Document::Run(r) => Ok(r),
        Document::CutShort(c) => Err(format!("the run was cut short: {:?}", c.verdict.reasons)),
        _ => Err("the result is not a run's".into()),
    }
}

/// The run's reason for check `check`, whole, against `expected`.
fn reason_is(r: &RunReport, check: &str, expected: String) -> Vec<String> {
    let prefix = format!("{check}: ");
    match r.verdict.reasons.iter().find(|x| x.starts_with(&prefix)) {
        Some(found) if found[prefix.len()..] == expected => Vec::new(),
        Some(found) => {
            vec![format!("the {check} reason is\n    {found}\n  expected\n    {prefix}{expected}")]
        }
        None => vec![format!("no {check} reason among {:?}", r.verdict.reasons)],
    }
}

/// `name n` for each trigger with a non-zero count.
fn by_trigger(r: &RunReport, count: fn(&TriggerCounters) -> u64) -> String {
    let parts: Vec<String> = r
        .triggers
        .iter()
        .filter(|t| count(&t.total) > 0)
        .map(|t| format!("{} {}", t.name.name(), count(&t.total)))
        .collect();
    parts.join(", ")
}

fn split(v: &ViolationReport) -> String {
    v.by.iter().map(|(k, n)| format!("{k} {n}")).collect::<Vec<_>>().join(", ")
}

fn bound(problems: &mut Vec<String>, what: &str, n: u64, low: u64, high: u64) {
    if n < low || n > high {
        problems.push(format!("{what} is {n}, not within {low}..={high}"));
    }
}

/// Deferred rcu sheaves go to rcu_free_sheaf() without a grace period, and
/// without the call_rcu() the tool records a sheaf's path by: their
/// objects are premature with no recorded path, or on the fallback path
/// for fallen-back objects that rode in them; no sheaf path has one.
fn premature_at_reclaim(doc: &Document) -> Vec<String> {
    let r = match run(doc) {
        Ok(r) => r,
        Err(e) => return vec![e],
    };
    let n = r.totals.premature;
    let on = |path: Path| r.latency.paths.iter().find(|p| p.path == path.name()).map_or(0, |p| p.premature);
    let fallback = on(Path::Fallback);
    let pathless = n.saturating_sub(fallback);
    let mut parts = Vec::new();
    if fallback > 0 {
        parts.push(format!("fallback {fallback}"));
    }
    parts.push(format!("no recorded path {pathless}"));
    let mut problems = reason_is(
        r,
        "premature_free",
        format!("premature free: {n} given back before their grace period ended ({})", parts.join(", ")),
    );
    // A deferred sheaf's first objects may have waited a grace period
    // already: not every object of one is premature.
    bound(&mut problems, "premature objects without a path", pathless, 1, r.totals.unattributed);
    for path in [Path::SheafImmediate, Path::SheafDeferred, Path::SheafFlushed] {
        bound(&mut problems, &format!("premature objects on {}", path.name()), on(path), 0, 0);
    }
    problems
}

/// The clauses of a premature_free reason for objects caught outside the
/// reclaim paths: at the slab allocator's free side, handed out again while
/// in flight, and found stale (their memory another owner's, or on the
/// slab's free list) at a reclaim or after the drain. Empty for counts of 0.
fn outside_reclaim_clauses(r: &RunReport) -> Vec<String> {
    let mut clauses = Vec::new();
    let age = |v: &probe_result::run::ViolationReport, n: u64| {
        format!(
            "{} to {} after kfree_rcu_nolock(), grace period over for {} of {n}",
            probe_result::dist::human_ns(v.age_min_ns),
            probe_result::dist::human_ns(v.age_max_ns),
            v.grace_period_over
        )
    };
    let n = r.totals.freed_in_flight;
    if n > 0 {
        let v = r.violation(violation::FREED_IN_FLIGHT);
        clauses.push(format!(
            "{n} reached the slab allocator's free side while in flight, without a reclaim (freed by {}); {}",
            split(&v),
            age(&v, n)
        ));
    }
    let n = r.totals.reused_in_flight;
    if n > 0 {
        let v = r.violation(violation::REUSED);
        clauses.push(format!(
            "{n} handed out again by kmalloc_nolock() while in flight, without a reclaim (queued on {}); {}",
            split(&v),
            age(&v, n)
        ));
    }
    if r.totals.stale > 0 {
        clauses.push(format!(
            "{} whose memory held another owner's object (or a free pointer) when a reclaim path gave it back or \
             after the drain",
            r.totals.stale
        ));
    }
    clauses
}

/// One kfree_rcu_nolock() in 128 is kfree_nolock()ed at once, inside the
/// call: the free-side observer of kfree_nolock() catches each, within
/// microseconds and with no grace period over. The kernel may skip that
/// observer (an interrupt inside another of the tool's programs): those
/// few are caught later, by reuse or after the drain.
fn free_early(doc: &Document) -> Vec<String> {
    let r = match run(doc) {
        Ok(r) => r,
        Err(e) => return vec![e],
    };
    let n = r.totals.freed_in_flight;
    let v = r.violation(violation::FREED_IN_FLIGHT);
    let clauses = outside_reclaim_clauses(r);
    let mut problems = reason_is(r, "premature_free", format!("premature free: {}", clauses.join("; ")));
    let early = r.totals.freed_rcu / 128;
    let later = r.totals.reused_in_flight + r.totals.stale;
    bound(
        &mut problems,
        "objects freed early (at the free side or later)",
        n + later,
        early * 9 / 10,
        early + 1,
    );
    bound(&mut problems, "of those, caught only after the free", later, 0, early / 10 + 1);
    bound(
        &mut problems,
        "of those at the free side, with their grace period over",
        v.grace_period_over,
        0,
        0,
    );
    if v.by.keys().any(|k| k != "kfree_nolock()") {
        problems.push(format!("objects freed early at another entry point than kfree_nolock(): {:?}", v.by));
    }
    problems
}

/// The first full rcu sheaf of a no-spin call with IRQs on, and one in 128
/// after it, goes back to the barn instead of to call_rcu(): its objects
/// come back from the cache's next allocations while in flight (the
/// tool's, mostly), reach a free entry point in another owner's hands
/// with the tool's header intact, or are found stale after the drain.
fn barn_early(doc: &Document) -> Vec<String> {
    let r = match run(doc) {
        Ok(r) => r,
        Err(e) => return vec![e],
    };
    let n = r.totals.reused_in_flight;
    let stale = r.totals.stale;
    let mut problems =
        reason_is(r, "premature_free", format!("premature free: {}", outside_reclaim_clauses(r).join("; ")));
    let v = r.violation(violation::REUSED);
    if v.by.keys().any(|k| k != "rcu sheaf") {
        problems.push(format!("objects reused in flight not from the rcu sheaf: {:?}", v.by));
    }
    // The first diverted sheaf, and one in 128 of the rest; the rest are
    // those the tool saw go to call_rcu() at once and the diverted ones:
    // at most 2 + 1 in 127 of the former, each holding fewer than
    // MAX_SHEAF_OBJECTS.
    let sheaves = 2 + r.totals.sheaf_call_rcu / 127;
    let most = sheaves * probe_common::MAX_SHEAF_OBJECTS as u64;
    let caught = n + stale + r.totals.freed_in_flight;
    bound(&mut problems, "objects caught outside the reclaim paths", caught, 1, most);
    // The tool allocates most from the cache it frees to: some of the
    // diverted objects come back to it, which no other fault causes.
    bound(&mut problems, "objects handed out again from a diverted sheaf", n, 1, most);
    problems
}

/// The deferred work drops every fallen-back object.
fn lose_deferred(doc: &Document) -> Vec<String> {
    let r = match run(doc) {
        Ok(r) => r,
        Err(e) => return vec![e],
    };
    let n = r.in_flight.lost;
    let mut problems = reason_is(
        r,
        "lost_objects",
        format!("{n} objects handed to kfree_rcu_nolock() were not given back after the drain"),
    );
    let fallback = r.totals.fallback;
    bound(&mut problems, "lost objects", n, fallback.min(1), fallback);
    if fallback == 0 {
        problems.push("no object fell back, so the fault was not reached".into());
    }
    problems
}

/// One object in 128 is queued on the fallback after the rcu sheaf took it.
/// The kernel may crash on the second reclaim before the run ends: then
/// the result is cut short, and what the tool streamed must already say
/// "double free". The count is the fault's one in 128 of the sheaf's
/// calls, plus at most as many again: an object reclaimed twice sits on
/// the freelist twice, and its two next owners queue it twice once more
/// (214 against 211 in one CI run).
fn double_queue(doc: &Document) -> Vec<String> {
    match doc {
        Document::Run(r) => {
            let n = r.totals.double_queued;
            let v = r.violation(violation::DOUBLE_QUEUED);
            let mut expected = format!(
                "double free: {n} kfree_rcu_nolock() calls queued twice (queued on {}; {})",
                split(&v),
                by_trigger(r, |c| c.double_queued)
            );
            if r.totals.double_reclaimed > 0 {
                let again = r.violation(violation::DOUBLE_RECLAIMED);
                expected += &format!(
                    "; {} objects reclaimed twice (first queued on {}; {})",
                    r.totals.double_reclaimed,
                    split(&again),
                    by_trigger(r, |c| c.double_reclaimed)
                );
            }
            let mut problems = reason_is(r, "double_free", expected);
            // The fallback's copy may take its second chance through an
            // rcu sheaf the object already sits in: "rcu sheaf" twice.
            if !v.by.contains_key("rcu sheaf and fallback")
                || v.by.keys().any(|k| k != "rcu sheaf and fallback" && k != "rcu sheaf")
            {
                problems
                    .push(format!("objects queued twice not on the rcu sheaf and the fallback: {:?}", v.by));
            }
            bound(&mut problems, "calls queued twice", n, 1, double_queue_most(r.totals.sheaf));
            problems
        }
        Document::CutShort(c) => {
            let mut problems = Vec::new();
            let before = c.verdict.reasons.get(1).map_or("", String::as_str);
            if !before.contains("double free: ") {
                problems.push(format!("the verdict does not name the double free: {:?}", c.verdict.reasons));
            }
            match c.last_progress.first_failure.as_ref() {
                Some(f) if f.reason.starts_with("double free: ") => {
                    let queued: u64 = c.last_progress.triggers.values().map(|t| t.double_queued).sum();
                    let sheaf: u64 = c.last_progress.triggers.values().map(|t| t.sheaf).sum();
                    bound(&mut problems, "streamed calls queued twice", queued, 1, double_queue_most(sheaf));
                }
                // The kernel died before the stream's line with the failure
                // got out; the line the tool put in the kernel log did.
                None if before.contains("(from the kernel log") => {
                    let n = before
                        .split_once("double free: ")
                        .and_then(|(_, rest)| rest.split_whitespace().next()?.parse::<u64>().ok());
                    if !n.is_some_and(|n| n >= 1) {
                        problems.push(format!("the logged double free has no count: {before}"));
                    }
                }
                other => problems.push(format!("the streamed first failure is not a double free: {other:?}")),
            }
            problems
        }
        _ => {
            vec!["the guest stopped before the tool streamed anything: no evidence of the double free".into()]
        }
    }
}

/// The most calls double-queue may queue twice, of `sheaf` taken by the
/// rcu sheaf: see [`double_queue`].
fn double_queue_most(sheaf: u64) -> u64 {
    2 * (sheaf / 128 + 1)
}

/// Full rcu sheaves of no-spin calls with interrupts off go to call_rcu()
/// directly (NMI still defers, and has no traffic here): none is deferred,
/// and each of those the healthy kernel defers is a violation.
fn call_rcu_irqs_off(doc: &Document) -> Vec<String> {
    let r = match run(doc) {
        Ok(r) => r,
        Err(e) => return vec![e],
    };
    let n = r.totals.call_rcu_unsafe;
    let v = r.violation(violation::CALL_RCU_UNSAFE);
    let mut problems = reason_is(
        r,
        "context_rule_call_rcu_deferred",
        format!(
            "context violation: rule \"a full rcu sheaf filled by a no-spin call with interrupts off or in NMI \
             reaches call_rcu() only through the deferred irq_work\" broken {n} times (in {}; {})",
            split(&v),
            by_trigger(r, |c| c.call_rcu_unsafe)
        ),
    );
    bound(&mut problems, "full sheaves given to call_rcu() against the rule", n, 1, r.totals.sheaf_call_rcu);
    bound(&mut problems, "deferred full sheaves", r.totals.sheaf_call_rcu_deferred, 0, 0);
    if v.by.contains_key("nmi") {
        problems.push("a violation in NMI, which the fault still defers".into());
    }
    // The interrupt-off callers of the default scenario.
    for t in [Trigger::PerfEvent, Trigger::LockedKprobe] {
        if r.trigger(t).is_some_and(|x| x.total.call_rcu_unsafe == 0) {
            problems.push(format!("no violation counted for {}", t.name()));
        }
    }
    problems
}

/// A spinning lock in kfree_rcu_nolock()'s no-spin path: lockdep's report
/// reaches the console (the line varies with the lock).
fn lockdep(doc: &Document) -> Vec<String> {
    let v = doc.verdict();
    if v.reasons.iter().any(|r| r.starts_with("console: [lockdep] ")) {
        Vec::new()
    } else {
        vec![format!("no lockdep report among {:?}", v.reasons)]
    }
}

#[cfg(test)]
mod tests {
    use probe_result::{Verdict, checks};

    use super::*;

    /// A committed result, judged again by today's checks (the verdict
    /// texts may be older than them).
    fn judged(name: &str) -> Document {
        let dir = std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo test sets CARGO_MANIFEST_DIR");
        let path = std::path::PathBuf::from(dir).join("../results").join(name);
        let mut r = Document::read_run(&path).unwrap();
        r.checks = checks::of_run(&r);
        r.verdict = Verdict::of(&r.checks);
        Document::Run(Box::new(r))
    }

    fn fault(name: &str) -> &'static Fault {
        FAULTS.iter().find(|f| f.name == name).unwrap()
    }

    /// Each committed fault run shows its fault, and a healthy run shows
    /// none of them.
    #[test]
    fn fault_runs_show_their_class_and_a_healthy_run_none() {
        for name in ["premature-free", "free-early", "barn-early", "lose-deferred", "call-rcu-irqs-off"] {
            let problems = fault(name).problems(&judged(&format!("fault-{name}.json")));
            assert!(problems.is_empty(), "{name}: {problems:#?}");
        }
        // The double free's kernel oopsed: the result is cut short, and
        // what the tool streamed before it names the double free.
        let dir = std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo test sets CARGO_MANIFEST_DIR");
        let crashed =
            Document::read(&std::path::PathBuf::from(dir).join("../results/fault-double-queue.json"))
                .unwrap();
        assert!(matches!(crashed, Document::CutShort(_)));
        let problems = fault("double-queue").problems(&crashed);
        assert!(problems.is_empty(), "double-queue: {problems:#?}");
        let healthy = judged("vm-debug-20s.json");
        for f in &FAULTS {
            assert!(!f.problems(&healthy).is_empty(), "{} finds its fault in a healthy run", f.name);
        }
    }

    /// A kernel that died before the stream's line with the double free got
    /// out: the line the tool put in the kernel log is the evidence.
    #[test]
    fn a_double_free_only_the_kernel_log_kept_still_shows() {
        let dir = std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo test sets CARGO_MANIFEST_DIR");
        let Document::CutShort(c) =
            Document::read(&std::path::PathBuf::from(dir).join("../results/fault-double-queue.json"))
                .unwrap()
        else {
            panic!("the committed double-queue run is not cut short")
        };
        let mut early = c.last_progress.clone();
        let logged = early.first_failure.take().unwrap();
        early.triggers.values_mut().for_each(|t| *t = Default::default());
        let cut = |logged| {
            Document::CutShort(Box::new(probe_result::CutShort::new(
                early.clone(),
                1,
                c.crash.clone(),
                logged,
            )))
        };
        let problems = fault("double-queue").problems(&cut(Some(logged)));
        assert!(problems.is_empty(), "{problems:#?}");
        let problems = fault("double-queue").problems(&cut(None));
        assert_eq!(problems.len(), 2, "{problems:#?}");
    }

    /// Another class's reason, or counts beyond the fault's reach, fail.
    #[test]
    fn the_wrong_class_or_count_is_a_problem() {
        let doc = judged("fault-free-early.json");
        assert!(!fault("call-rcu-irqs-off").problems(&doc).is_empty());
        assert!(!fault("barn-early").problems(&doc).is_empty());
        let Document::Run(mut r) = doc else { unreachable!() };
        r.totals.freed_in_flight *= 3;
        r.checks = checks::of_run(&r);
        r.verdict = Verdict::of(&r.checks);
        let problems = fault("free-early").problems(&Document::Run(r));
        assert!(
            problems.iter().any(|p| p.starts_with("objects freed early (at the free side or later) is ")),
            "{problems:#?}"
        );
    }
}
