//! The terminal view of a result: the end-of-run summary and `nolock-probe
//! report`. Rendered from the JSON document itself, so a saved result looks
//! exactly like the run that made it.

use serde_json::Value;

use crate::latency::{self, Distribution};

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

/// Triggers per CPU, latency histograms per path, in-flight, verdict.
pub fn render(report: &Value) -> String {
    let mut s = format!(
        "{:<28} {:>4} {:>10} {:>8} {:>10} {:>10} {:>8} {:>8}  contexts (task/softirq/hardirq/nmi)\n",
        "trigger (intended)", "cpu", "calls", "fail", "sheaf", "fallback", "sheaves", "deferred"
    );
    for t in report["triggers"].as_array().into_iter().flatten() {
        let name =
            format!("{} ({})", t["name"].as_str().unwrap_or("?"), t["intended"].as_str().unwrap_or("?"));
        let per_cpu = t["per_cpu"].as_array().cloned().unwrap_or_default();
        let rows =
            per_cpu.iter().map(|c| (c["cpu"].to_string(), c)).chain([("all".to_string(), &t["total"])]);
        for (cpu, c) in rows {
            let ctx =
                ["task", "softirq", "hardirq", "nmi"].map(|k| u(&c["alloc_ctx"][k]).to_string()).join("/");
            s.push_str(&format!(
                "{:<28} {:>4} {:>10} {:>8} {:>10} {:>10} {:>8} {:>8}  {ctx}\n",
                name,
                cpu,
                u(&c["calls"]),
                u(&c["alloc_fail"]),
                u(&c["sheaf"]),
                u(&c["fallback"]),
                u(&c["sheaf_call_rcu"]) + u(&c["sheaf_call_rcu_deferred"]),
                u(&c["sheaf_call_rcu_deferred"]),
            ));
        }
    }
    s.push_str("\ncall times (p50 / p99 / max, calls), by what the call did:\n");
    for t in report["triggers"].as_array().into_iter().flatten() {
        let Some(kinds) = t["call_ns"].as_object().filter(|k| !k.is_empty()) else { continue };
        let parts: Vec<String> = kinds
            .iter()
            .map(|(kind, d)| {
                format!(
                    "{kind} {} / {} / {} ({})",
                    latency::human_ns(u(&d["p50_ns"])),
                    latency::human_ns(u(&d["p99_ns"])),
                    latency::human_ns(u(&d["max_ns"])),
                    u(&d["count"])
                )
            })
            .collect();
        s.push_str(&format!("  {:<26} {}\n", t["name"].as_str().unwrap_or("?"), parts.join(", ")));
    }
    for t in report["triggers"].as_array().into_iter().flatten().filter(|t| t["name"] == "locked_kprobe") {
        let c = &t["total"];
        let (sheaves, unknown) = (u(&c["calls_sheaves_lock"]), u(&c["calls_site_unknown"]));
        s.push_str(&format!(
            "locked_kprobe calls by lock held: node list_lock {}, per-CPU sheaves lock {sheaves}{}\n",
            u(&c["calls"]).saturating_sub(sheaves + unknown),
            if unknown > 0 { format!(", site unknown {unknown}") } else { String::new() }
        ));
    }
    let nested: Vec<String> = report["triggers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| u(&t["total"]["calls_nested"]) > 0)
        .map(|t| {
            format!(
                "{} {} of {}",
                t["name"].as_str().unwrap_or("?"),
                u(&t["total"]["calls_nested"]),
                u(&t["total"]["calls"])
            )
        })
        .collect();
    if !nested.is_empty() {
        s.push_str(&format!("calls inside the tool's own allocations and frees: {}\n", nested.join(", ")));
    }
    for x in report["unsupported"].as_array().into_iter().flatten() {
        s.push_str(&format!(
            "{:<28} unsupported: {}\n",
            x["trigger"].as_str().unwrap_or("?"),
            x["reason"].as_str().unwrap_or("")
        ));
    }
    for p in report["latency"]["paths"].as_array().into_iter().flatten() {
        let path = p["path"].as_str().unwrap_or("?");
        s.push_str(&format!(
            "\npath {path}: {} reclaimed, {} premature\n",
            u(&p["reclaimed"]),
            u(&p["premature"])
        ));
        let stage = |k: &str| serde_json::from_value::<Distribution>(p["stages"].get(k)?.clone()).ok();
        if let (Some(q), Some(g)) = (stage("queued"), stage("grace")) {
            let what = if path == "fallback" { "deferred work" } else { "sheaf fill" };
            s.push_str(&format!(
                "  wait = {what} (p50 {}, p99 {}) + grace period (p50 {}, p99 {})\n",
                latency::human_ns(q.p50_ns),
                latency::human_ns(q.p99_ns),
                latency::human_ns(g.p50_ns),
                latency::human_ns(g.p99_ns)
            ));
        }
        s.push_str(
            &latency::render_json(&format!("{path}_total"), &p["stages"]["total"]).unwrap_or_default(),
        );
    }
    let f = &report["in_flight"];
    s.push_str(&format!(
        "\nin flight: peak {}, lost after drain {}, untracked {}\n",
        u(&f["peak"]),
        u(&f["lost"]),
        u(&f["untracked"])
    ));
    if let Some(c) = report.get("bpf_cost") {
        let per_run = |ns: &Value, runs: &Value| latency::human_ns(u(ns).checked_div(u(runs)).unwrap_or(0));
        s.push_str(&format!(
            "BPF run time (kernel.bpf_stats): triggers {} runs, {} per run, {:.2}% of the CPUs' time (the \
             allocator work and observers inside them included); observers {} runs, {} per run, {:.2}%\n",
            u(&c["trigger_runs"]),
            per_run(&c["trigger_run_time_ns"], &c["trigger_runs"]),
            c["trigger_cpu_pct"].as_f64().unwrap_or(0.0),
            u(&c["observer_runs"]),
            per_run(&c["observer_run_time_ns"], &c["observer_runs"]),
            c["observer_cpu_pct"].as_f64().unwrap_or(0.0),
        ));
    }
    if let Some(e) = report.get("expedited_gps").filter(|e| !e.is_null()) {
        s.push_str(&format!(
            "expedited grace periods: {} asked for ({}/s)\n",
            u(&e["requested"]),
            u(&e["rate_hz"])
        ));
    }
    if report["slub_stats"]["available"] == Value::Bool(true) {
        s.push_str(&format!("SLUB_STATS: {}\n", report["slub_stats"]["explanation"].as_str().unwrap_or("")));
    }
    s.push_str(&verdict(report));
    s
}

/// The verdict line and one line per reason, for a run or a bench.
pub fn verdict(report: &Value) -> String {
    let pass = report["verdict"]["pass"] == Value::Bool(true);
    let mut s = format!("verdict: {}\n", if pass { "pass" } else { "FAIL" });
    for r in report["verdict"]["reasons"].as_array().into_iter().flatten() {
        s.push_str(&format!("  {}\n", r.as_str().unwrap_or("")));
    }
    s
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_result_renders_with_its_triggers_paths_and_verdict() {
        let r = json!({
            "triggers": [{"name": "nmi", "intended": "nmi", "per_cpu": [{"cpu": 1, "calls": 7, "alloc_ctx": {"nmi": 7}}],
                          "total": {"calls": 7, "alloc_ctx": {"nmi": 7}},
                          "call_ns": {"alloc": {"count": 7, "p50_ns": 1500, "p99_ns": 9000, "max_ns": 12000}}},
                         {"name": "locked_kprobe", "intended": "any", "per_cpu": [],
                          "total": {"calls": 10, "calls_sheaves_lock": 3, "calls_site_unknown": 0, "calls_nested": 4}}],
            "unsupported": [{"trigger": "syscall", "reason": "the kernel has no sys_enter tracepoint"}],
            "latency": {"paths": [{"path": "fallback", "reclaimed": 7, "premature": 0, "stages": {"total": {
                "count": 7, "min_ns": 1000, "p50_ns": 2000, "p90_ns": 3000, "p99_ns": 3000, "p999_ns": 3000,
                "max_ns": 3000, "mean_ns": 2000, "histogram": [{"low_ns": 1024, "high_ns": 1152, "count": 7}]}}}]},
            "in_flight": {"peak": 3, "lost": 0, "untracked": 0},
            "slub_stats": {"available": false},
            "expedited_gps": {"rate_hz": 50, "requested": 480},
            "bpf_cost": {"trigger_runs": 10, "trigger_run_time_ns": 25000, "trigger_cpu_pct": 0.5,
                         "observer_runs": 4, "observer_run_time_ns": 2000, "observer_cpu_pct": 0.25},
            "verdict": {"pass": false, "reasons": ["lost_objects: 1"]},
        });
        let text = render(&r);
        assert!(text.contains("nmi (nmi)"), "{text}");
        assert!(text.contains("0/0/0/7"), "{text}");
        assert!(
            text.contains("  nmi                        alloc 1.500us / 9.000us / 12.000us (7)\n"),
            "{text}"
        );
        assert!(
            text.contains("locked_kprobe calls by lock held: node list_lock 7, per-CPU sheaves lock 3\n"),
            "{text}"
        );
        assert!(
            text.contains("calls inside the tool's own allocations and frees: locked_kprobe 4 of 10\n"),
            "{text}"
        );
        assert!(
            text.contains("syscall                      unsupported: the kernel has no sys_enter tracepoint"),
            "{text}"
        );
        assert!(text.contains("@fallback_total: count 7 p50 2.000us"), "{text}");
        assert!(text.contains("expedited grace periods: 480 asked for (50/s)"), "{text}");
        assert!(text.contains("triggers 10 runs, 2.500us per run, 0.50%"), "{text}");
        assert!(text.contains("observers 4 runs, 500ns per run, 0.25%"), "{text}");
        assert!(text.contains("verdict: FAIL\n  lost_objects: 1"), "{text}");
    }
}
