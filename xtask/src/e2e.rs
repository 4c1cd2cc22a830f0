//! What the end-to-end test demands of a VM run's JSON.

use serde_json::Value;

pub const TRIGGERS: [&str; 3] = ["locked_kprobe", "perf_event", "fentry_deferred_work"];

/// Every problem with a foundation run's report; empty means it passed.
pub fn foundation_problems(report: &Value, cpus: u32) -> Vec<String> {
    let mut problems = Vec::new();
    if report["verdict"]["pass"] != Value::Bool(true) {
        problems.push(format!("the verdict is not pass: {}", report["verdict"]["reasons"]));
    }
    let triggers = report["triggers"].as_array().cloned().unwrap_or_default();
    let path_misses: u64 =
        probe_common::PATH_OBSERVERS.iter().filter_map(|p| report["recursion_misses"][*p].as_u64()).sum();
    for name in TRIGGERS {
        let Some(t) = triggers.iter().find(|t| t["name"] == name) else {
            problems.push(format!("trigger {name} is missing from the report"));
            continue;
        };
        for cpu in 0..cpus {
            let calls = t["per_cpu"]
                .as_array()
                .and_then(|v| v.iter().find(|c| c["cpu"] == cpu))
                .and_then(|c| c["calls"].as_u64())
                .unwrap_or(0);
            if calls == 0 {
                problems.push(format!("trigger {name} made no calls on CPU {cpu}"));
            }
        }
        let total = &t["total"];
        let n = |k: &str| total[k].as_u64().unwrap_or(0);
        // A trigger in an interrupt that lands inside a path observer on the
        // same CPU makes the kernel skip that observer for its own free (the
        // run counts those skips): such a call is timed as "free_unseen" and
        // has no path. Every other call must have exactly one.
        let unseen = t["call_ns"]["free_unseen"]["count"].as_u64().unwrap_or(0);
        let paths = n("sheaf") + n("fallback");
        if paths + unseen != n("freed_rcu") || unseen > path_misses {
            problems.push(format!(
                "trigger {name}: sheaf {} + fallback {} + unseen {unseen} != kfree_rcu_nolock() calls {} \
                 or more unseen than the {path_misses} skipped path observers",
                n("sheaf"),
                n("fallback"),
                n("freed_rcu")
            ));
        }
    }
    if let Some(t) = triggers.iter().find(|t| t["name"] == "locked_kprobe") {
        let n = |k: &str| t["total"][k].as_u64().unwrap_or(0);
        if n("fallback") == 0 {
            problems.push("the locked-slab kprobe never fell back to defer_kfree_rcu()".into());
        }
        // Each fallback was timed as one, inside its kfree_rcu_nolock() call.
        let timed = t["call_ns"]["free_fallback"]["count"].as_u64().unwrap_or(0);
        if timed != n("fallback") {
            problems.push(format!(
                "the locked-slab kprobe fell back {} times, but {timed} kfree_rcu_nolock() calls were timed as fallbacks",
                n("fallback")
            ));
        }
        // The fentry_deferred_work trigger's own allocations take slab locks
        // inside the irq_work: the locked-slab kprobe fires there (nearly all
        // its fallbacks), and the run must say it was the tool's call.
        if n("calls_nested") == 0 {
            problems.push(
                "the locked-slab kprobe never fired inside the tool's own allocations (calls_nested 0)"
                    .into(),
            );
        }
        // Both kinds of slab_attach_kprobe_locked() site: a node's list_lock
        // and this CPU's sheaves lock.
        let sheaves = n("calls_sheaves_lock");
        let list_lock = n("calls").saturating_sub(sheaves + n("calls_site_unknown"));
        if sheaves == 0 || list_lock == 0 || n("calls_site_unknown") != 0 {
            problems.push(format!(
                "the locked-slab kprobe must call at both kinds of site, and know each: list_lock \
                 {list_lock}, sheaves lock {sheaves}, unknown {} (sheaves-lock functions found: {})",
                n("calls_site_unknown"),
                report["run"]["sheaves_lock_functions"]
            ));
        }
    }
    problems
}

/// Every problem with the verification part of a healthy run: latency for
/// the paths that occurred, nothing early, nothing lost, the kernel's own
/// counters read.
pub fn verification_problems(report: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let n = |v: &Value| v.as_u64().unwrap_or(0);
    if n(&report["totals"]["premature"]) != 0 {
        problems.push(format!("{} premature frees on a healthy kernel", report["totals"]["premature"]));
    }
    if n(&report["in_flight"]["lost"]) != 0 {
        problems.push(format!("{} objects lost on a healthy kernel", report["in_flight"]["lost"]));
    }
    let paths = report["latency"]["paths"].as_array().cloned().unwrap_or_default();
    for want in ["sheaf_immediate", "sheaf_deferred", "fallback"] {
        match paths.iter().find(|p| p["path"] == want) {
            None => problems.push(format!("no latency for path {want}")),
            Some(p) => {
                for stage in ["total", "queued", "grace"] {
                    if n(&p["stages"][stage]["count"]) == 0 {
                        problems.push(format!("path {want} has no {stage} samples"));
                    }
                }
            }
        }
    }
    let reclaimed: u64 = paths.iter().map(|p| n(&p["reclaimed"])).sum();
    if reclaimed == 0 {
        problems.push("no object was seen reclaimed".into());
    }
    if report["slub_stats"]["available"] != Value::Bool(true) {
        problems.push("the SLUB_STATS cross-check is missing".into());
    }
    problems
}

/// Every problem with a run of the `all` scenario: each trigger either ran
/// (calls on some CPU, and objects allocated in its intended context) or is
/// listed as unsupported with a reason; at least `min_kinds` ran. On
/// PREEMPT_RT, kmalloc_nolock() fails in hardirq and NMI context, so no
/// object shows where such a trigger ran: there, allocation failures of a
/// hardirq or NMI trigger count instead.
pub fn all_problems(report: &Value, names: &[&str], min_kinds: usize, rt: bool) -> Vec<String> {
    let mut problems = Vec::new();
    let triggers = report["triggers"].as_array().cloned().unwrap_or_default();
    let unsupported = report["unsupported"].as_array().cloned().unwrap_or_default();
    let mut ran = 0;
    for name in names {
        if let Some(u) = unsupported.iter().find(|u| u["trigger"] == *name) {
            if u["reason"].as_str().unwrap_or("").is_empty() {
                problems.push(format!("trigger {name} is unsupported without a reason"));
            }
            continue;
        }
        let Some(t) = triggers.iter().find(|t| t["name"] == *name) else {
            problems.push(format!("trigger {name} is neither in the report nor listed as unsupported"));
            continue;
        };
        let n = |k: &str| t["total"][k].as_u64().unwrap_or(0);
        let ctx = |k: &str| t["total"]["alloc_ctx"][k].as_u64().unwrap_or(0);
        if n("calls") == 0 {
            problems.push(format!("trigger {name} never fired"));
            continue;
        }
        ran += 1;
        let intended = t["intended"].as_str().unwrap_or("");
        let in_intended = match intended {
            "nmi_or_hardirq" => ctx("nmi") + ctx("hardirq"),
            "any" => n("calls") - n("alloc_fail"),
            c => ctx(c),
        };
        let rt_refused =
            rt && matches!(intended, "hardirq" | "nmi" | "nmi_or_hardirq") && n("alloc_fail") > 0;
        if in_intended == 0 && !rt_refused {
            problems.push(format!("trigger {name} never allocated in its intended context ({intended})"));
        }
    }
    if ran < min_kinds {
        problems.push(format!("only {ran} trigger kinds fired, fewer than {min_kinds}"));
    }
    problems
}

/// Every problem with a run of the `bursts` scenario: it passed (so every
/// call was accounted for after the drain freed unfinished bursts, and
/// nothing was lost), and every trigger that made a burst's worth of calls
/// freed whole bursts, which filled rcu sheaves.
pub fn burst_problems(report: &Value, burst: u64) -> Vec<String> {
    let mut problems = Vec::new();
    if report["verdict"]["pass"] != Value::Bool(true) {
        problems.push(format!("the verdict is not pass: {}", report["verdict"]["reasons"]));
    }
    let n = |v: &Value| v.as_u64().unwrap_or(0);
    let (mut bursts, mut full_sheaves) = (0, 0);
    for t in report["triggers"].as_array().into_iter().flatten() {
        let total = &t["total"];
        let handled = n(&total["alloc_fail"]) + n(&total["freed_rcu"]) + n(&total["freed_nolock"]);
        if handled != n(&total["calls"]) {
            problems.push(format!(
                "trigger {}: {} calls, but only {handled} failed or freed (held objects left behind?)",
                t["name"],
                n(&total["calls"])
            ));
        }
        // Per CPU a burst needs `burst` calls; the total is a loose bound.
        if n(&total["calls"]) >= 2 * burst * 64 && n(&total["bursts"]) == 0 {
            problems.push(format!("trigger {} made {} calls but no burst", t["name"], n(&total["calls"])));
        }
        bursts += n(&total["bursts"]);
        full_sheaves += n(&total["sheaf_call_rcu"]) + n(&total["sheaf_call_rcu_deferred"]);
    }
    if bursts == 0 {
        problems.push("no trigger freed a burst".into());
    }
    if full_sheaves == 0 {
        problems.push("no burst filled an rcu sheaf".into());
    }
    problems
}

/// The reasons of a run's verdict.
pub fn reasons(report: &Value) -> Vec<&str> {
    report["verdict"]["reasons"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// What a fault kernel's run must show: a failed verdict with a reason
/// that starts with `reason`.
pub fn fault_problems(report: &Value, reason: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if report["verdict"]["pass"] != Value::Bool(false) {
        problems.push("the verdict is not fail".into());
    }
    let reasons = reasons(report);
    if !reasons.iter().any(|r| r.starts_with(reason)) {
        problems.push(format!("no reason starts with `{reason}`: {reasons:?}"));
    }
    problems
}

/// Every problem with a run limited to `rate` calls a second per trigger
/// and CPU: no CPU of any trigger above it (a tenth and two calls of
/// slack for the clocks), and `busy`, hit far more often, near it.
pub fn rate_problems(report: &Value, rate: u64, busy: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if report["plan"]["rate_per_cpu_hz"].as_u64() != Some(rate) {
        problems.push(format!("the run's plan says rate {}, not {rate}", report["plan"]["rate_per_cpu_hz"]));
    }
    let elapsed = report["run"]["elapsed_s"].as_f64().unwrap_or(0.0);
    let most = (rate as f64 * elapsed * 1.1) as u64 + 2;
    for t in report["triggers"].as_array().into_iter().flatten() {
        let name = t["name"].as_str().unwrap_or("?");
        for c in t["per_cpu"].as_array().into_iter().flatten() {
            let calls = c["calls"].as_u64().unwrap_or(0);
            if calls > most {
                problems.push(format!(
                    "trigger {name} made {calls} calls on CPU {} in {elapsed:.1} s, more than {most}",
                    c["cpu"]
                ));
            }
            if name == busy && (calls as f64) < rate as f64 * elapsed / 2.0 {
                problems.push(format!(
                    "trigger {name} made only {calls} calls on CPU {} in {elapsed:.1} s",
                    c["cpu"]
                ));
            }
        }
    }
    problems
}

/// Every problem with a run of `duration` seconds that a signal cut
/// short: it says so, stopped early, drained, and still passed (every
/// object followed to its reclaim, the counters adding up).
pub fn interrupted_problems(report: &Value, duration: f64) -> Vec<String> {
    let mut problems = Vec::new();
    if report["run"]["interrupted"] != Value::Bool(true) {
        problems.push("the report does not say the run was interrupted".into());
    }
    let elapsed = report["run"]["elapsed_s"].as_f64().unwrap_or(f64::INFINITY);
    if elapsed >= duration / 2.0 {
        problems.push(format!("the run went on for {elapsed:.1} s of its {duration} s after the signal"));
    }
    if report["verdict"]["pass"] != Value::Bool(true) {
        problems.push(format!("the verdict is not pass: {}", report["verdict"]["reasons"]));
    }
    let calls = report["totals"]["calls"].as_u64().unwrap_or(0);
    let reclaimed = report["totals"]["reclaimed"].as_u64().unwrap_or(0);
    if calls == 0 || reclaimed == 0 || report["run"]["drain_ns"].as_u64().unwrap_or(0) == 0 {
        problems.push(format!(
            "an interrupted run must still report what it did and drain: {calls} calls, {reclaimed} \
             reclaimed, drain {} ns",
            report["run"]["drain_ns"]
        ));
    }
    problems
}

/// Every problem with a `nolock-probe bench` report on `cpus` CPUs with
/// `samples` samples: both free functions timed on every CPU, each pair
/// timed once per call, and the kernel's slab statistics agree that the
/// frees went where the function sends them.
pub fn bench_problems(report: &Value, cpus: u64, samples: usize) -> Vec<String> {
    let mut problems = Vec::new();
    if report["verdict"]["pass"] != Value::Bool(true) {
        problems.push(format!("the verdict is not pass: {}", report["verdict"]["reasons"]));
    }
    for name in ["kfree_rcu_nolock", "kfree_nolock"] {
        let Some(f) = report["frees"].as_array().into_iter().flatten().find(|f| f["free"] == name) else {
            problems.push(format!("{name} was not benched"));
            continue;
        };
        let n = |v: &Value| v.as_u64().unwrap_or(0);
        let ops = n(&f["ops"]);
        for cpu in 0..cpus {
            let on_cpu = f["per_cpu"].as_array().into_iter().flatten().find(|c| c["cpu"] == cpu);
            if on_cpu.map_or(0, |c| n(&c["ops"])) == 0 {
                problems.push(format!("{name}: no pair timed on CPU {cpu}"));
            }
        }
        let rates = f["ops_per_s"]["samples"].as_array().cloned().unwrap_or_default();
        if rates.len() != samples || rates.iter().any(|r| r.as_f64().unwrap_or(0.0) <= 0.0) {
            problems.push(format!("{name}: {samples} samples with pairs in each expected, got {rates:?}"));
        }
        for call in ["alloc", "free_call"] {
            let d = &f[call];
            let (count, p50, p99, max) = (n(&d["count"]), n(&d["p50_ns"]), n(&d["p99_ns"]), n(&d["max_ns"]));
            if count != ops || ops == 0 {
                problems.push(format!("{name}: {count} {call} times for {ops} pairs"));
            }
            if !(n(&d["min_ns"]) <= p50 && p50 <= p99 && p99 <= max && max > 0) {
                problems.push(format!("{name}: {call} percentiles out of order: {d}"));
            }
        }
        if n(&f["clock"]["count"]) == 0 {
            problems.push(format!("{name}: the clock's own cost was not timed"));
        }
        // Every kfree_rcu_nolock() tries an rcu sheaf first; every
        // kfree_nolock() frees to the slab at once. The kernel counts all
        // users of the caches, so it may see more, never fewer.
        let stat = |k: &str| n(&f["slub_stats"][k]);
        let seen = match name {
            "kfree_rcu_nolock" => stat("free_rcu_sheaf") + stat("free_rcu_sheaf_fail"),
            _ => stat("free_fastpath") + stat("free_slowpath"),
        };
        if seen < ops {
            problems.push(format!(
                "{name}: the kernel's slab statistics saw {seen} such frees for {ops} pairs: {}",
                f["slub_stats"]
            ));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn bench_free(name: &str, ops: u64, slub: Value) -> Value {
        let d = json!({"count": ops, "min_ns": 100, "p50_ns": 900, "p99_ns": 5000, "max_ns": 90000});
        json!({
            "free": name, "ops": ops,
            "per_cpu": [{"cpu": 0, "ops": ops / 2}, {"cpu": 1, "ops": ops - ops / 2}],
            "ops_per_s": {"samples": [10.0, 12.0]},
            "alloc": d, "free_call": d, "clock": {"count": 3},
            "slub_stats": slub,
        })
    }

    #[test]
    fn interruption_requirements_fire() {
        let run = |interrupted: bool, elapsed: f64, calls: u64| {
            json!({
                "run": {"interrupted": interrupted, "elapsed_s": elapsed, "drain_ns": 5},
                "verdict": {"pass": true, "reasons": []},
                "totals": {"calls": calls, "reclaimed": calls},
            })
        };
        assert_eq!(interrupted_problems(&run(true, 8.5, 100), 60.0), Vec::<String>::new());
        assert_eq!(
            interrupted_problems(&run(false, 60.0, 0), 60.0),
            [
                "the report does not say the run was interrupted",
                "the run went on for 60.0 s of its 60 s after the signal",
                "an interrupted run must still report what it did and drain: 0 calls, 0 reclaimed, drain 5 ns",
            ]
        );
    }

    #[test]
    fn bench_requirements_fire() {
        let rcu =
            bench_free("kfree_rcu_nolock", 100, json!({"free_rcu_sheaf": 90, "free_rcu_sheaf_fail": 10}));
        let nolock = bench_free("kfree_nolock", 100, json!({"free_fastpath": 101, "free_slowpath": 0}));
        let good = json!({"verdict": {"pass": true, "reasons": []}, "frees": [rcu, nolock.clone()]});
        assert_eq!(bench_problems(&good, 2, 2), Vec::<String>::new());
        let mut bad = json!({"verdict": {"pass": true, "reasons": []}, "frees": [nolock]});
        bad["frees"][0]["per_cpu"][1]["ops"] = json!(0);
        bad["frees"][0]["free_call"]["count"] = json!(99);
        bad["frees"][0]["slub_stats"]["free_fastpath"] = json!(50);
        assert_eq!(
            bench_problems(&bad, 2, 2),
            [
                "kfree_rcu_nolock was not benched",
                "kfree_nolock: no pair timed on CPU 1",
                "kfree_nolock: 99 free_call times for 100 pairs",
                "kfree_nolock: the kernel's slab statistics saw 50 such frees for 100 pairs: \
                 {\"free_fastpath\":50,\"free_slowpath\":0}",
            ]
        );
    }

    fn trigger(name: &str, calls: [u64; 2], sheaf: u64, fallback: u64) -> Value {
        json!({
            "name": name,
            "per_cpu": [{"cpu": 0, "calls": calls[0]}, {"cpu": 1, "calls": calls[1]}],
            "total": {"calls": calls[0] + calls[1], "freed_rcu": sheaf + fallback, "sheaf": sheaf, "fallback": fallback},
        })
    }

    fn locked(sheaf: u64, fallback: u64) -> Value {
        let mut t = trigger("locked_kprobe", [5, 5], sheaf, fallback);
        t["call_ns"]["free_fallback"]["count"] = json!(fallback);
        t["total"]["calls_sheaves_lock"] = json!(3);
        t["total"]["calls_site_unknown"] = json!(0);
        t["total"]["calls_nested"] = json!(2);
        t
    }

    fn good() -> Value {
        json!({
            "verdict": {"pass": true, "reasons": []},
            "run": {"sheaves_lock_functions": ["__pcs_replace_full_main"]},
            "triggers": [
                locked(4, 6),
                trigger("perf_event", [3, 3], 6, 0),
                trigger("fentry_deferred_work", [2, 1], 3, 0),
            ],
        })
    }

    fn verified() -> Value {
        let stages = json!({"total": {"count": 3}, "queued": {"count": 3}, "grace": {"count": 3}});
        json!({
            "totals": {"premature": 0},
            "in_flight": {"lost": 0},
            "slub_stats": {"available": true},
            "latency": {"paths": [
                {"path": "sheaf_immediate", "reclaimed": 3, "stages": stages},
                {"path": "sheaf_deferred", "reclaimed": 3, "stages": stages},
                {"path": "fallback", "reclaimed": 3, "stages": stages},
            ]},
        })
    }

    #[test]
    fn burst_requirements_fire() {
        let run = |calls: u64, freed: u64, bursts: u64, full: u64| {
            json!({
                "verdict": {"pass": true, "reasons": []},
                "triggers": [{"name": "hrtimer", "total": {
                    "calls": calls, "alloc_fail": 0, "freed_rcu": freed, "freed_nolock": 0,
                    "bursts": bursts, "sheaf_call_rcu": full, "sheaf_call_rcu_deferred": 0,
                }}],
            })
        };
        assert_eq!(burst_problems(&run(10_000, 10_000, 150, 3), 64), Vec::<String>::new());
        assert_eq!(
            burst_problems(&run(10_000, 9_990, 0, 0), 64),
            [
                "trigger \"hrtimer\": 10000 calls, but only 9990 failed or freed (held objects left behind?)",
                "trigger \"hrtimer\" made 10000 calls but no burst",
                "no trigger freed a burst",
                "no burst filled an rcu sheaf",
            ]
        );
    }

    #[test]
    fn verification_requirements_fire() {
        assert_eq!(verification_problems(&verified()), Vec::<String>::new());
        let mut r = verified();
        r["totals"]["premature"] = json!(2);
        r["in_flight"]["lost"] = json!(5);
        r["latency"]["paths"].as_array_mut().unwrap().remove(2);
        r["latency"]["paths"][0]["stages"]["grace"]["count"] = json!(0);
        assert_eq!(
            verification_problems(&r),
            [
                "2 premature frees on a healthy kernel",
                "5 objects lost on a healthy kernel",
                "path sheaf_immediate has no grace samples",
                "no latency for path fallback",
            ]
        );
    }

    #[test]
    fn the_all_scenario_needs_each_trigger_in_its_context_or_a_reason() {
        let t = |name: &str, intended: &str, calls: u64, fail: u64, ctx: &str| {
            json!({"name": name, "intended": intended,
                   "total": {"calls": calls, "alloc_fail": fail, "alloc_ctx": {ctx: calls - fail}}})
        };
        let r = json!({
            "triggers": [t("syscall", "task", 5, 0, "task"), t("hrtimer", "hardirq", 4, 3, "softirq")],
            "unsupported": [{"trigger": "nmi", "reason": "nothing raises NMIs"}],
        });
        let names = ["syscall", "hrtimer", "nmi"];
        assert_eq!(all_problems(&r, &names, 2, true), Vec::<String>::new());
        // Off RT, a hardirq trigger whose allocations all fail is a problem.
        assert_eq!(
            all_problems(&r, &names, 2, false),
            ["trigger hrtimer never allocated in its intended context (hardirq)"]
        );
        assert_eq!(all_problems(&r, &names, 3, true), ["only 2 trigger kinds fired, fewer than 3"]);
        let wrong = json!({"triggers": [t("syscall", "task", 5, 0, "softirq")], "unsupported": []});
        assert_eq!(
            all_problems(&wrong, &["syscall", "nmi"], 1, false),
            [
                "trigger syscall never allocated in its intended context (task)",
                "trigger nmi is neither in the report nor listed as unsupported"
            ]
        );
    }

    #[test]
    fn fault_runs_need_the_right_reason() {
        let r = json!({"verdict": {"pass": false, "reasons": ["lost_objects: 12 objects ..."]}});
        assert!(fault_problems(&r, "lost_objects:").is_empty());
        assert_eq!(fault_problems(&r, "premature_free:").len(), 1);
        let ok = json!({"verdict": {"pass": true, "reasons": []}});
        assert_eq!(fault_problems(&ok, "lost_objects:").len(), 2);
    }

    #[test]
    fn rate_requirements_fire() {
        let run = |calls: [u64; 2]| {
            json!({"plan": {"rate_per_cpu_hz": 100}, "run": {"elapsed_s": 5.0},
                   "triggers": [{"name": "syscall", "per_cpu": [{"cpu": 0, "calls": calls[0]}, {"cpu": 1, "calls": calls[1]}]}]})
        };
        assert_eq!(rate_problems(&run([500, 480]), 100, "syscall"), Vec::<String>::new());
        assert_eq!(
            rate_problems(&run([560, 100]), 100, "syscall"),
            [
                "trigger syscall made 560 calls on CPU 0 in 5.0 s, more than 552",
                "trigger syscall made only 100 calls on CPU 1 in 5.0 s",
            ]
        );
        assert_eq!(rate_problems(&run([500, 500]), 50, "syscall").len(), 3);
    }

    #[test]
    fn a_good_run_passes() {
        assert_eq!(foundation_problems(&good(), 2), Vec::<String>::new());
    }

    #[test]
    fn each_requirement_fires() {
        let mut r = good();
        r["triggers"][1]["per_cpu"][1]["calls"] = json!(0);
        assert_eq!(foundation_problems(&r, 2), ["trigger perf_event made no calls on CPU 1"]);

        let mut r = good();
        r["triggers"][0] = locked(10, 0);
        assert_eq!(
            foundation_problems(&r, 2),
            ["the locked-slab kprobe never fell back to defer_kfree_rcu()"]
        );

        let mut r = good();
        r["triggers"][0]["call_ns"]["free_fallback"]["count"] = json!(5);
        assert_eq!(
            foundation_problems(&r, 2),
            [
                "the locked-slab kprobe fell back 6 times, but 5 kfree_rcu_nolock() calls were timed as fallbacks"
            ]
        );

        let mut r = good();
        r["triggers"][0]["total"]["calls_nested"] = json!(0);
        assert_eq!(
            foundation_problems(&r, 2),
            ["the locked-slab kprobe never fired inside the tool's own allocations (calls_nested 0)"]
        );

        let mut r = good();
        r["triggers"][0]["total"]["calls_sheaves_lock"] = json!(0);
        assert_eq!(
            foundation_problems(&r, 2),
            ["the locked-slab kprobe must call at both kinds of site, and know each: list_lock 10, \
              sheaves lock 0, unknown 0 (sheaves-lock functions found: [\"__pcs_replace_full_main\"])"]
        );

        let mut r = good();
        r["triggers"][2]["total"]["sheaf"] = json!(2);
        assert_eq!(
            foundation_problems(&r, 2),
            ["trigger fentry_deferred_work: sheaf 2 + fallback 0 + unseen 0 != kfree_rcu_nolock() calls 3 \
              or more unseen than the 0 skipped path observers"]
        );

        // A call whose path observer the kernel skipped has no path, and
        // is allowed as long as the skips account for it.
        let mut r = good();
        r["triggers"][1]["total"]["sheaf"] = json!(5);
        r["triggers"][1]["call_ns"]["free_unseen"]["count"] = json!(1);
        r["recursion_misses"] = json!({"kfree_rcu_sheaf_exit": 1, "defer_kfree_rcu": 0});
        assert_eq!(foundation_problems(&r, 2), Vec::<String>::new());
        r["recursion_misses"]["kfree_rcu_sheaf_exit"] = json!(0);
        assert_eq!(
            foundation_problems(&r, 2),
            ["trigger perf_event: sheaf 5 + fallback 0 + unseen 1 != kfree_rcu_nolock() calls 6 \
              or more unseen than the 0 skipped path observers"]
        );

        let mut r = good();
        r["triggers"].as_array_mut().unwrap().remove(2);
        r["verdict"] = json!({"pass": false, "reasons": ["x"]});
        let p = foundation_problems(&r, 2);
        assert_eq!(p.len(), 2, "{p:?}");
    }
}
