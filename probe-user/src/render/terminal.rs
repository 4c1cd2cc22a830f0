//! The terminal view of a result: the end-of-run summary, `nolock-probe
//! report`, the bench's summary and the progress line. Rendered from the
//! typed result, so a saved result looks exactly like the run that made it.

use std::collections::BTreeMap;

use probe_common::{Stage, Trigger, TriggerCounters, hist};
use probe_result::{
    BenchReport, CutShort, Document, RunReport, Verdict,
    bench::Spread,
    dist::{Bucket, Distribution, StageReport},
    run::Observe,
};

pub use probe_result::dist::human_ns;

/// 1234567.8 -> "1,234,568".
pub fn thousands(v: f64) -> String {
    let digits = format!("{:.0}", v.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// bpftrace-style histogram of one distribution: one row per power of two
/// (the JSON keeps the finer buckets), from the first to the last
/// non-empty row.
pub fn histogram(title: &str, all: &Distribution, buckets: &[Bucket]) -> String {
    const WIDTH: u64 = 50;
    let mut s = format!(
        "@{title}: count {} p50 {} p99 {} max {}\n",
        all.count,
        human_ns(all.p50_ns),
        human_ns(all.p99_ns),
        human_ns(all.max_ns)
    );
    // Rows keyed by their lower bound: a power of two, or 0 below 64 ns.
    let mut rows: BTreeMap<u64, u64> = BTreeMap::new();
    for b in buckets {
        let low = if b.low_ns == 0 { 0 } else { 1u64 << hist::msb(b.low_ns) };
        *rows.entry(low).or_default() += b.count;
    }
    let peak = rows.values().copied().max().unwrap_or(1).max(1);
    for (&low, &count) in &rows {
        let high = match low {
            0 => human_ns(hist::bounds(0).1),
            l if l >= 1 << hist::MAX_POW => "inf".to_string(),
            l => human_ns(l * 2),
        };
        let bar = "@".repeat((count * WIDTH).div_ceil(peak) as usize);
        s.push_str(&format!("[{:>9}, {:>9}) {:>9} |{:<50}|\n", human_ns(low), high, count, bar));
    }
    s
}

/// Any result: a run's or a bench's summary, or a stub's verdict.
pub fn document(doc: &Document) -> String {
    match doc {
        Document::Run(r) => run(r),
        Document::Bench(b) => bench(b),
        Document::CutShort(c) => cut_short(c),
        Document::Incomplete(i) => verdict(&i.verdict),
    }
}

/// The heading of [`counters_row`]'s columns.
fn counters_header(first: &str) -> String {
    format!(
        "{:<28} {:>4} {:>10} {:>8} {:>10} {:>10} {:>8} {:>8}  contexts (task/softirq/hardirq/nmi)\n",
        first, "cpu", "calls", "fail", "sheaf", "fallback", "sheaves", "deferred"
    )
}

fn counters_row(name: &str, cpu: &str, c: &TriggerCounters) -> String {
    let ctx = c.alloc_ctx.map(|n| n.to_string()).join("/");
    format!(
        "{:<28} {:>4} {:>10} {:>8} {:>10} {:>10} {:>8} {:>8}  {ctx}\n",
        name,
        cpu,
        c.calls,
        c.alloc_fail,
        c.sheaf,
        c.fallback,
        c.sheaf_call_rcu + c.sheaf_call_rcu_deferred,
        c.sheaf_call_rcu_deferred,
    )
}

/// The machine line, when the result says what it ran on, and the
/// loader's own footprint, when measured.
/// `watched`: the loader's samples come once a second (a run's watch),
/// so a long gap between them means it was starved; a bench's come once a
/// sample, with a warm-up and a drain between free functions.
fn machine_line(
    m: Option<&probe_result::run::Machine>,
    loader: Option<&probe_result::run::LoaderFootprint>,
    watched: bool,
) -> String {
    let mut s = m.map(|m| format!("machine: {}\n", crate::kernel::machine::describe(m))).unwrap_or_default();
    if let Some(l) = loader {
        s.push_str(&format!(
            "loader: {:.2}% of a CPU ({:.3} s in {:.0} s), {:.1} MiB resident at most while measuring, {:.1} MiB peak\n",
            l.cpu_pct,
            l.cpu_s,
            l.window_s,
            l.rss_peak_bytes as f64 / 1048576.0,
            l.rss_hwm_bytes as f64 / 1048576.0
        ));
        if !l.cpu_by_activity_s.is_empty() {
            let parts: Vec<String> =
                l.cpu_by_activity_s.iter().map(|(k, v)| format!("{k} {v:.3} s")).collect();
            s.push_str(&format!("loader: its CPU time by activity: {}\n", parts.join(", ")));
        }
        if watched && l.max_sample_gap_s > crate::footprint::STARVED_GAP_S {
            s.push_str(&format!(
                "loader: starved: {:.1} s between two of its once-a-second looks (the guest was overloaded)\n",
                l.max_sample_gap_s
            ));
        }
    }
    s
}

/// Triggers per CPU, call times, latency histograms per path, in-flight,
/// cost, verdict.
pub fn run(r: &RunReport) -> String {
    let mut s = machine_line(r.run.machine.as_ref(), r.run.loader.as_ref(), true);
    s.push_str(&counters_header("trigger (intended)"));
    for t in &r.triggers {
        let name = format!("{} ({})", t.name.name(), t.intended.name());
        for c in &t.per_cpu {
            s.push_str(&counters_row(&name, &c.cpu.to_string(), &c.counters));
        }
        s.push_str(&counters_row(&name, "all", &t.total));
    }
    s.push_str(&match r.plan.observe {
        Observe::Cheap => "paths: the sheaf counted by each call's caller where the fallback's observer saw \
                           nothing (--observe cheap; --observe full checks it independently)\n"
            .to_string(),
        Observe::Full => format!(
            "paths: the sheaf counted by the observers on __kfree_rcu_sheaf() (--observe full): {}; by the \
             callers, as the cheap mode counts it: {}\n",
            thousands(r.totals.sheaf as f64),
            thousands(r.totals.sheaf_by_caller as f64)
        ),
    });
    s.push_str("\ncall times (p50 / p99 / max, calls), by what the call did:\n");
    for t in r.triggers.iter().filter(|t| !t.call_ns.is_empty()) {
        let parts: Vec<String> = t
            .call_ns
            .iter()
            .map(|(kind, d)| {
                let d = &d.all;
                format!(
                    "{kind} {} / {} / {} ({})",
                    human_ns(d.p50_ns),
                    human_ns(d.p99_ns),
                    human_ns(d.max_ns),
                    d.count
                )
            })
            .collect();
        s.push_str(&format!("  {:<26} {}\n", t.name.name(), parts.join(", ")));
    }
    if let Some(t) = r.trigger(Trigger::LockedKprobe) {
        let c = &t.total;
        let (sheaves, unknown) = (c.calls_sheaves_lock, c.calls_site_unknown);
        s.push_str(&format!(
            "locked_kprobe calls by lock held: node list_lock {}, per-CPU sheaves lock {sheaves}{}\n",
            c.calls.saturating_sub(sheaves + unknown),
            if unknown > 0 { format!(", site unknown {unknown}") } else { String::new() }
        ));
    }
    let nested: Vec<String> = r
        .triggers
        .iter()
        .filter(|t| t.total.calls_nested > 0)
        .map(|t| format!("{} {} of {}", t.name.name(), t.total.calls_nested, t.total.calls))
        .collect();
    if !nested.is_empty() {
        s.push_str(&format!("calls inside the tool's own allocations and frees: {}\n", nested.join(", ")));
    }
    for x in &r.unsupported {
        s.push_str(&format!("{:<28} unsupported: {}\n", x.trigger.name(), x.reason));
    }
    for p in &r.latency.paths {
        s.push_str(&format!("\npath {}: {} reclaimed, {} premature\n", p.path, p.reclaimed, p.premature));
        if let (Some(q), Some(g)) = (p.stage(Stage::Queued), p.stage(Stage::Grace)) {
            let what = if p.path == "fallback" { "deferred work" } else { "sheaf fill" };
            s.push_str(&format!(
                "  wait = {what} (p50 {}, p99 {}) + grace period (p50 {}, p99 {})\n",
                human_ns(q.all.p50_ns),
                human_ns(q.all.p99_ns),
                human_ns(g.all.p50_ns),
                human_ns(g.all.p99_ns)
            ));
        }
        if let Some(total) = p.stage(Stage::Total) {
            s.push_str(&histogram(&format!("{}_total", p.path), &total.all, &total.histogram));
        }
    }
    let f = &r.in_flight;
    s.push_str(&format!(
        "\nin flight: peak {}, lost after drain {}, untracked {}\n",
        f.peak, f.lost, f.untracked
    ));
    if let Some(b) = &r.batching {
        s.push_str(&batching(b));
    }
    if let Some(c) = &r.bpf_cost {
        let per_run = |ns: u64, runs: u64| human_ns(ns.checked_div(runs).unwrap_or(0));
        s.push_str(&format!(
            "BPF run time (kernel.bpf_stats): triggers {} runs, {} per run, {:.2}% of the CPUs' time (the \
             allocator work and observers inside them included); observers {} runs, {} per run, {:.2}%\n",
            c.trigger_runs,
            per_run(c.trigger_run_time_ns, c.trigger_runs),
            c.trigger_cpu_pct,
            c.observer_runs,
            per_run(c.observer_run_time_ns, c.observer_runs),
            c.observer_cpu_pct,
        ));
    }
    if let Some(e) = &r.expedited_gps {
        s.push_str(&format!("expedited grace periods: {} asked for ({}/s)\n", e.requested, e.rate_hz));
    }
    if let Some(n) = r.nmi_source.as_ref().filter(|n| n.kind != "pmu") {
        s.push_str(&format!("NMIs: {} sent by {} ({}/s)\n", n.sent, n.kind, n.rate_hz));
    }
    if r.slub_stats.available {
        s.push_str(&format!("SLUB_STATS: {}\n", r.slub_stats.explanation));
    }
    if let Some(c) = &r.coverage {
        s.push_str(&coverage(c));
    }
    s.push_str(&verdict(&r.verdict));
    s
}

/// Per listed function the lines and branches reached, then every line
/// no trigger reached, with its source, for a reviewer to see which
/// branch no scenario took.
pub fn coverage(c: &probe_result::coverage::Coverage) -> String {
    let mut s = format!(
        "\ncoverage of the nolock machinery ({}; {}):\n  {:<26} {:>14} {:>15} {:>10}\n",
        c.gcov, c.window, "function", "lines", "branches", "calls"
    );
    let row = |name: &str, hit: u32, of: u32, bhit: u32, bof: u32, calls: String| {
        // No branches (a straight-line function) is no share at all.
        let pct = |h: u32, o: u32| {
            if o == 0 { "-".to_string() } else { format!("{:.1}%", 100.0 * f64::from(h) / f64::from(o)) }
        };
        format!(
            "  {name:<26} {:>7} {:>6} {:>8} {:>6} {calls:>10}\n",
            format!("{hit}/{of}"),
            pct(hit, of),
            format!("{bhit}/{bof}"),
            pct(bhit, bof)
        )
    };
    for f in &c.functions {
        let calls = f.calls.map_or("inlined".to_string(), |n| n.to_string());
        s.push_str(&row(&f.name, f.lines_hit, f.lines, f.branches_hit, f.branches, calls));
    }
    s.push_str(&row("all", c.lines_hit, c.lines, c.branches_hit, c.branches, String::new()));
    let unreached: usize = c.functions.iter().map(|f| f.unreached.len()).sum();
    if unreached > 0 {
        s.push_str(&format!("lines never reached ({unreached}):\n"));
        for f in &c.functions {
            for l in &f.unreached {
                s.push_str(&format!("  {}:{:<5} {:<24} {}\n", f.file, l.line, f.name, l.text.trim()));
            }
        }
    }
    s
}

/// Batching: grace periods, and per path the callbacks per object and
/// the objects per batch and grace period.
fn batching(b: &probe_result::batching::Batching) -> String {
    let mut s = format!(
        "batching: {} grace periods ({:.1}/s), {:.1} objects each; in flight {:.1} KiB at most, {:.1} KiB on average \
         ({:.0}-byte objects)\n",
        b.grace_periods,
        b.grace_periods_per_s,
        b.objects_per_grace_period,
        b.in_flight_bytes_peak as f64 / 1024.0,
        b.in_flight_bytes_mean / 1024.0,
        b.object_bytes
    );
    for p in &b.paths {
        let callbacks = match (p.callbacks, p.callbacks_per_object, p.objects_per_callback) {
            (Some(n), Some(per_object), Some(full)) => {
                format!("{n} RCU callbacks, {per_object:.4} per object, {full:.1} objects each")
            }
            _ => "callbacks not counted (kvfree_rcu batches)".to_string(),
        };
        s.push_str(&format!(
            "  {:<16} {} objects: {callbacks}; {:.1} per grace period, {:.1} in flight on average\n",
            p.path, p.objects, p.objects_per_grace_period, p.mean_in_flight
        ));
    }
    s
}

/// Per free function the rate with its spread, and bpftrace-style
/// histograms of the calls' times.
pub fn bench(b: &BenchReport) -> String {
    let mut s = machine_line(b.run.machine.as_ref(), b.run.loader.as_ref(), false);
    if b.frees.iter().any(|f| f.native_ratio.is_some()) {
        let observed = b.frees.iter().any(|f| f.observed.is_some());
        let ratio =
            |q: Option<&Spread>| q.map_or("-".into(), |q| format!("{:.2} ± {:.2}", q.median, q.stddev));
        s.push_str(&format!(
            "{:<24} {:<44} {:>20} {:>10} {:>14}{}\n",
            "loop",
            "pair",
            "pairs/s (mean ± sd)",
            "median",
            "x C (median)",
            if observed {
                match b.plan.run_observers {
                    true => format!("  x bare with run's observers, {} (median)", b.plan.observe.name()),
                    false => format!("  x bare with {} observers (median)", b.plan.observe.name()),
                }
            } else {
                String::new()
            }
        ));
        for f in &b.frees {
            let r = &f.ops_per_s;
            let with = ratio(f.observed.as_ref().map(|o| &o.bare_ratio));
            s.push_str(&format!(
                "{:<24} {:<44} {:>20} {:>10} {:>14}{}\n",
                f.free,
                f.pair,
                format!("{} ± {}", thousands(r.mean), thousands(r.stddev)),
                thousands(r.median),
                ratio(f.native_ratio.as_ref()),
                if observed { format!("  {with:>31}") } else { String::new() }
            ));
        }
    }
    for f in &b.frees {
        let name = &f.free;
        let r = &f.ops_per_s;
        s.push_str(&format!(
            "{name}: {} ± {} pairs/s over {} samples ({:.0} ns per pair and CPU), {} allocation failures\n",
            thousands(r.mean),
            thousands(r.stddev),
            r.samples.len(),
            f.ns_per_op,
            f.alloc_failures,
        ));
        let alloc = if name == "bpf_obj_drop" { "bpf_obj_new" } else { "kmalloc_nolock" };
        for (d, title) in [(&f.alloc, alloc), (&f.free_call, name.as_str()), (&f.clock, "clock")] {
            if let Some(d) = d {
                s.push_str(&histogram(&format!("{name}_{title}_ns"), &d.all, &d.histogram));
            }
        }
        if let Some(o) = &f.observed {
            let p = |d: &Option<StageReport>| {
                d.as_ref().map_or("-".into(), |d| {
                    format!("{} / {}", human_ns(d.all.p50_ns), human_ns(d.all.p99_ns))
                })
            };
            if o.alloc.is_some() || o.free_call.is_some() {
                s.push_str(&format!(
                    "{name} with {}: alloc p50 / p99 {}, free {}\n",
                    match b.plan.run_observers {
                        true => format!("run's observers ({} path observers)", b.plan.observe.name()),
                        false => format!("the {} path observers", b.plan.observe.name()),
                    },
                    p(&o.alloc),
                    p(&o.free_call)
                ));
            }
            if let Some(f) = &o.followed {
                s.push_str(&format!(
                    "{name} with run's observers: {} objects followed ({} not: the map was full), {} into the \
                     rcu sheaf and {} to the fallback, {} seen reclaimed, {} early\n",
                    thousands(f.freed as f64),
                    f.untracked,
                    thousands(f.sheaf as f64),
                    thousands(f.fallback as f64),
                    thousands(f.reclaimed as f64),
                    f.premature
                ));
            }
        }
    }
    if let Some(ns) = b.run.drain_ns {
        s.push_str(&format!("drain: every object given back {} after the last sample\n", human_ns(ns)));
    }
    s.push_str(&verdict(&b.verdict));
    s
}

/// The verdict line and one line per reason.
pub fn verdict(v: &Verdict) -> String {
    let mut s = format!("verdict: {}\n", if v.pass { "pass" } else { "FAIL" });
    for r in &v.reasons {
        s.push_str(&format!("  {r}\n"));
    }
    s
}

/// A run the guest cut short: the counters of its last progress line and
/// the verdict (how it ended and what the tool had seen).
fn cut_short(c: &CutShort) -> String {
    let p = &c.last_progress;
    let mut s = format!(
        "cut short: scenario {}, run {}, last progress line at {:.0}/{}s ({} lines came)\n",
        p.scenario, p.repeat, p.elapsed_s, p.duration_s, c.progress_lines
    ) + &counters_header("trigger");
    for (t, counters) in &p.triggers {
        s.push_str(&counters_row(t.name(), "all", counters));
    }
    s + &verdict(&c.verdict)
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
    use probe_common::Intended;
    use probe_result::{
        bench::FreeReport,
        dist::{CallTimes, StageReport},
        kernel::BpfCost,
        run::{ExpeditedReport, PathReport, TriggerReport, Unsupported},
    };

    use super::*;
    use crate::testing;

    #[test]
    fn a_coverage_run_shows_its_table_and_the_lines_never_reached() {
        let r = testing::committed_run("coverage/coverage-debug.json");
        let c = r.coverage.as_ref().expect("the committed coverage run has coverage");
        let text = run(&r);
        assert!(text.contains("coverage of the nolock machinery (gcov"), "{text}");
        for f in &c.functions {
            assert!(text.contains(&format!("  {:<26} ", f.name)), "{} missing:\n{text}", f.name);
            for l in &f.unreached {
                assert!(text.contains(&format!("{}:{:<5} {:<24} {}", f.file, l.line, f.name, l.text.trim())));
            }
        }
        let all = format!("{}/{}", c.lines_hit, c.lines);
        assert!(text.lines().any(|l| l.trim_start().starts_with("all") && l.contains(&all)), "{text}");
    }

    #[test]
    fn a_result_renders_with_its_triggers_paths_and_verdict() {
        let mut r = testing::committed_run("vm-debug-20s.json");
        let nmi = TriggerCounters { calls: 7, freed_rcu: 7, alloc_ctx: [0, 0, 0, 7], ..Default::default() };
        let mut t = TriggerReport::new(
            Trigger::Nmi,
            "tp_btf:nmi_handler".into(),
            &[1],
            &[TriggerCounters::default(), nmi],
        );
        t.call_ns.insert(
            "alloc".into(),
            CallTimes {
                all: Distribution {
                    count: 7,
                    p50_ns: 1500,
                    p99_ns: 9000,
                    max_ns: 12000,
                    ..Default::default()
                },
                histogram: vec![],
            },
        );
        let locked =
            TriggerCounters { calls: 10, calls_sheaves_lock: 3, calls_nested: 4, ..Default::default() };
        let mut l = TriggerReport::new(Trigger::LockedKprobe, "kprobe:x".into(), &[], &[locked]);
        l.intended = Intended::Any;
        r.triggers = vec![t, l];
        r.unsupported = vec![Unsupported {
            trigger: Trigger::Syscall,
            reason: "the kernel has no sys_enter tracepoint".into(),
        }];
        let total = StageReport {
            all: Distribution {
                count: 7,
                min_ns: 1000,
                p50_ns: 2000,
                p99_ns: 3000,
                max_ns: 3000,
                ..Default::default()
            },
            histogram: vec![Bucket { low_ns: 1024, high_ns: 1152, count: 7 }],
            per_cpu: vec![],
        };
        r.latency.paths = vec![PathReport {
            path: "fallback".into(),
            reclaimed: 7,
            stages: [("total".to_string(), total)].into_iter().collect(),
            ..Default::default()
        }];
        r.in_flight.peak = 3;
        r.slub_stats.available = false;
        r.expedited_gps = Some(ExpeditedReport { rate_hz: 50, requested: 480 });
        r.bpf_cost = Some(BpfCost {
            trigger_runs: 10,
            trigger_run_time_ns: 25000,
            trigger_cpu_pct: 0.5,
            observer_runs: 4,
            observer_run_time_ns: 2000,
            observer_cpu_pct: 0.25,
        });
        r.verdict = Verdict { pass: false, reasons: vec!["lost_objects: 1".into()] };
        let text = run(&r);
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
        assert!(text.contains("|@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|"), "{text}");
        assert!(text.contains("expedited grace periods: 480 asked for (50/s)"), "{text}");
        assert!(text.contains("triggers 10 runs, 2.500us per run, 0.50%"), "{text}");
        assert!(text.contains("observers 4 runs, 500ns per run, 0.25%"), "{text}");
        assert!(text.contains("verdict: FAIL\n  lost_objects: 1"), "{text}");
    }

    #[test]
    fn a_bench_renders_rates_and_histograms() {
        let mut b = testing::committed_bench("bench-debug.json");
        let d = StageReport {
            all: Distribution { count: 400, p50_ns: 1000, p99_ns: 1000, max_ns: 1000, ..Default::default() },
            histogram: vec![Bucket { low_ns: 1024, high_ns: 1152, count: 400 }],
            per_cpu: vec![],
        };
        b.frees = vec![FreeReport {
            free: "kfree_nolock".into(),
            alloc_failures: 4,
            ops_per_s: Spread::of(vec![200.0, 200.0]),
            ns_per_op: 1e7,
            alloc: Some(d.clone()),
            free_call: Some(d),
            ..Default::default()
        }];
        b.verdict = Verdict { pass: true, reasons: vec![] };
        // The machine and loader lines are machine_line's (tested with runs).
        (b.run.machine, b.run.loader) = (None, None);
        let text = bench(&b);
        assert!(text.starts_with("kfree_nolock: 200 ± 0 pairs/s over 2 samples"), "{text}");
        assert!(text.contains("@kfree_nolock_kmalloc_nolock_ns: count 400 p50 1.000us"), "{text}");
        assert!(text.ends_with("verdict: pass\n"), "{text}");
        // With the loop in C benched too, a table with the ratios leads.
        b.frees[0].pair = "BPF: kmalloc_nolock() + kfree_nolock()".into();
        b.frees[0].native_ratio = Some(Spread::of(vec![2.5, 2.7, 2.6]));
        b.run.drain_ns = Some(1_500_000_000);
        let text = bench(&b);
        let row = text.lines().nth(1).unwrap();
        assert!(row.starts_with("kfree_nolock             BPF: kmalloc_nolock() + kfree_nolock()"), "{text}");
        assert!(row.ends_with("200 ± 0        200    2.60 ± 0.10"), "{text}");
        assert!(text.contains("drain: every object given back 1.500s after the last sample"), "{text}");
    }

    #[test]
    fn big_numbers_get_separators() {
        assert_eq!(thousands(1234567.8), "1,234,568");
        assert_eq!(thousands(999.0), "999");
    }

    #[test]
    fn progress_line_shows_rate_and_paths() {
        let c = |calls, sheaf, fallback| TriggerCounters { calls, sheaf, fallback, ..Default::default() };
        let line = progress_line(3, 20, &c(300, 200, 100), &c(200, 150, 50), Some(1234.4));
        assert_eq!(
            line,
            "[   3/20s] calls 300 (+100/s) alloc-fail 0 | sheaf 200 fallback 100 | full sheaves 0 deferred 0 | load 1234 ops/s"
        );
    }
}
