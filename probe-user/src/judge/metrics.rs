//! The numbers a dashboard tracks, taken from a result: what `export`
//! publishes and `compare` gates on.

use probe_common::BenchFree;
use probe_result::{BenchReport, Document, RunReport, bench::Spread, dist::Distribution};

pub use super::noise::Kind;
use super::noise::Runs;

/// Which way is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Better {
    Smaller,
    Bigger,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    /// Dotted name, e.g. `latency.fallback.total.p99_ns`.
    pub name: String,
    /// "ns", "calls/s", "ops/s", "1/s", "objects", "callbacks/object",
    /// "bytes" or "%".
    pub unit: &'static str,
    /// The mean over the repeats (the one value without repeats).
    pub value: f64,
    /// Smallest and largest over the repeats.
    pub low: f64,
    pub high: f64,
    /// Standard deviation over the repeats (0 without repeats).
    pub stddev: f64,
    pub better: Better,
    /// For a latency percentile, the samples beyond it in the smallest of
    /// the repeats (count x (1 - q)): a p99 of 80 samples is just their
    /// maximum. Infinite for other metrics.
    pub tail_samples: f64,
    pub kind: Kind,
    /// The runs (repeats, or a bench's samples) that have the metric, of
    /// `of_runs` in the document: a path can occur in some repeats only.
    pub runs: usize,
    pub of_runs: usize,
    /// The value pools every sample of a bench (its call percentiles), so
    /// there is no spread to weigh a change against.
    pub pooled: bool,
}

impl Metric {
    /// Mean, spread and count of the runs that have the metric.
    pub fn spread(&self) -> Runs {
        Runs { mean: self.value, stddev: self.stddev, count: if self.pooled { 1 } else { self.runs } }
    }
}

/// One metric of one run, before the spread over repeats.
struct Single {
    name: String,
    unit: &'static str,
    value: f64,
    better: Better,
    tail_samples: f64,
    kind: Kind,
}

fn single(name: String, unit: &'static str, value: f64, better: Better, kind: Kind) -> Single {
    Single { name, unit, value, better, tail_samples: f64::INFINITY, kind }
}

/// The p50 and p99 of a distribution as `<prefix>.p50_ns` and
/// `<prefix>.p99_ns`, with the samples beyond each.
fn percentiles(prefix: &str, d: &Distribution, kind: Kind) -> [Single; 2] {
    let count = d.count as f64;
    [("p50_ns", d.p50_ns, 0.5), ("p99_ns", d.p99_ns, 0.01)].map(|(q, v, beyond)| Single {
        name: format!("{prefix}.{q}"),
        unit: "ns",
        value: v as f64,
        better: Better::Smaller,
        tail_samples: count * beyond,
        kind,
    })
}

/// The metrics of one run (without its repeats).
fn of_one_run(r: &RunReport) -> Vec<Single> {
    let elapsed = r.run.elapsed_s.max(1e-9);
    let mut out = vec![single(
        "calls_per_s".into(),
        "calls/s",
        r.totals.calls as f64 / elapsed,
        Better::Bigger,
        Kind::Rate,
    )];
    for t in &r.triggers {
        let name = t.name.name();
        out.push(single(
            format!("trigger.{name}.calls_per_s"),
            "calls/s",
            t.total.calls as f64 / elapsed,
            Better::Bigger,
            Kind::Rate,
        ));
    }
    // How long each trigger's calls took, by what they did.
    for t in &r.triggers {
        for (kind, d) in &t.call_ns {
            out.extend(percentiles(&format!("trigger.{}.{kind}", t.name.name()), &d.all, Kind::Call));
        }
    }
    for (name, v, kind) in [
        ("alloc_fail", r.totals.alloc_fail, Kind::Count),
        ("premature", r.totals.premature, Kind::Failure),
        ("untracked", r.totals.untracked, Kind::Count),
        ("lost", r.in_flight.lost, Kind::Failure),
        ("in_flight_peak", r.in_flight.peak, Kind::Count),
    ] {
        out.push(single(name.into(), "objects", v as f64, Better::Smaller, kind));
    }
    // What the BPF programs cost (results before kernel.bpf_stats had none).
    if let Some(c) = &r.bpf_cost {
        out.push(single("bpf.trigger_cpu_pct".into(), "%", c.trigger_cpu_pct, Better::Smaller, Kind::Share));
        out.push(single(
            "bpf.observer_cpu_pct".into(),
            "%",
            c.observer_cpu_pct,
            Better::Smaller,
            Kind::Share,
        ));
    }
    if r.load.enabled {
        out.push(single("load_ops_per_s".into(), "ops/s", r.load.ops_per_s, Better::Bigger, Kind::Rate));
    }
    if let Some(l) = &r.run.loader {
        out.push(single("loader.cpu_pct".into(), "%", l.cpu_pct, Better::Smaller, Kind::Share));
        out.push(single(
            "loader.rss_peak_bytes".into(),
            "bytes",
            l.rss_peak_bytes as f64,
            Better::Smaller,
            Kind::Count,
        ));
    }
    if let Some(b) = &r.batching {
        out.push(single(
            "batching.grace_periods_per_s".into(),
            "1/s",
            b.grace_periods_per_s,
            Better::Smaller,
            Kind::Rate,
        ));
        out.push(single(
            "batching.in_flight_bytes_peak".into(),
            "bytes",
            b.in_flight_bytes_peak as f64,
            Better::Smaller,
            Kind::Count,
        ));
        for p in &b.paths {
            if let Some(v) = p.callbacks_per_object {
                out.push(single(
                    format!("batching.{}.callbacks_per_object", p.path),
                    "callbacks/object",
                    v,
                    Better::Smaller,
                    Kind::Count,
                ));
            }
        }
    }
    for p in &r.latency.paths {
        for (stage, d) in &p.stages {
            out.extend(percentiles(&format!("latency.{}.{stage}", p.path), &d.all, Kind::Stage));
        }
    }
    out
}

/// Every metric of a run; with repeats, mean and spread over the repeats
/// that have it. A metric is kept when the first run has it.
pub fn of_run(r: &RunReport) -> Vec<Metric> {
    let per_run: Vec<Vec<Single>> = r.runs().into_iter().map(of_one_run).collect();
    let mut out = Vec::new();
    let Some(first_run) = per_run.first() else { return out };
    for first in first_run {
        let found: Vec<&Single> =
            per_run.iter().filter_map(|m| m.iter().find(|x| x.name == first.name)).collect();
        let values: Vec<f64> = found.iter().map(|x| x.value).collect();
        let runs = Runs::of(&values);
        out.push(Metric {
            name: first.name.clone(),
            unit: first.unit,
            value: runs.mean,
            low: values.iter().copied().fold(f64::INFINITY, f64::min),
            high: values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            stddev: runs.stddev,
            better: first.better,
            tail_samples: found.iter().map(|x| x.tail_samples).fold(f64::INFINITY, f64::min),
            kind: first.kind,
            runs: found.len(),
            of_runs: per_run.len(),
            pooled: false,
        });
    }
    // Coverage is the whole document's (cargo xtask vm adds it once).
    if let Some(c) = &r.coverage {
        let functions = c.functions.iter().map(|f| (format!("coverage.{}.lines_pct", f.name), f.line_pct()));
        for (name, value) in
            std::iter::once(("coverage.lines_pct".to_string(), c.line_pct())).chain(functions)
        {
            out.push(Metric {
                name,
                unit: "%",
                value,
                low: value,
                high: value,
                stddev: 0.0,
                better: Better::Bigger,
                tail_samples: f64::INFINITY,
                kind: Kind::Coverage,
                runs: 1,
                of_runs: 1,
                pooled: false,
            });
        }
    }
    out
}

/// A bench figure with the spread of its rounds (`samples` of them): bigger
/// is better, gated against that spread.
fn rounds(name: String, unit: &'static str, q: &Spread, samples: usize) -> Metric {
    Metric {
        name,
        unit,
        value: q.mean,
        low: q.min,
        high: q.max,
        stddev: q.stddev,
        better: Better::Bigger,
        tail_samples: f64::INFINITY,
        kind: Kind::Rate,
        runs: samples,
        of_runs: samples,
        pooled: false,
    }
}

/// The metrics of a bench, per loop: the rate with the spread of its
/// samples, its ratio to the loop in C round by round, and the calls'
/// percentiles.
pub fn of_bench(b: &BenchReport) -> Vec<Metric> {
    let fixed = |s: Single| Metric {
        name: s.name,
        unit: s.unit,
        value: s.value,
        low: s.value,
        high: s.value,
        stddev: 0.0,
        better: s.better,
        tail_samples: s.tail_samples,
        kind: s.kind,
        runs: 1,
        of_runs: 1,
        pooled: true,
    };
    let mut out = Vec::new();
    for f in &b.frees {
        let r = &f.ops_per_s;
        // Older benches may lack the samples themselves; the plan says how many.
        let samples = if r.samples.is_empty() { b.plan.samples as usize } else { r.samples.len() };
        out.push(rounds(format!("{}.ops_per_s", f.free), "ops/s", r, samples));
        // The loop in C's own ratio is 1 by construction.
        if let Some(q) = f.native_ratio.as_ref().filter(|_| f.free != BenchFree::BASELINE.name()) {
            out.push(rounds(format!("{}.native_ratio", f.free), "x", q, q.samples.len()));
        }
        if let Some(q) = f.observed.as_ref().map(|o| &o.bare_ratio) {
            out.push(rounds(format!("{}.observed_ratio", f.free), "x", q, q.samples.len()));
        }
        out.push(fixed(single(
            format!("{}.alloc_failures", f.free),
            "objects",
            f.alloc_failures as f64,
            Better::Smaller,
            Kind::Count,
        )));
        for (call, d) in [("alloc", &f.alloc), ("free_call", &f.free_call)] {
            if let Some(d) = d {
                out.extend(percentiles(&format!("{}.{call}", f.free), &d.all, Kind::Call).map(fixed));
            }
        }
    }
    out
}

/// Every metric of a result document (none for a stub or a run cut short).
pub fn of(doc: &Document) -> Vec<Metric> {
    match doc {
        Document::Run(r) => of_run(r),
        Document::Bench(b) => of_bench(b),
        Document::Incomplete(_) | Document::CutShort(_) => Vec::new(),
    }
}

#[cfg(test)]
pub mod tests {
    use probe_result::{
        bench::{FreeReport, Spread},
        dist::{CallTimes, StageReport},
        run::PathReport,
    };

    use super::*;
    use crate::testing;

    /// A committed run, made to have `calls` calls in 10 s and a fallback
    /// path whose total p50 is half `p99` and its p99 `p99`, from 5000
    /// objects.
    pub fn report(calls: u64, p99: u64) -> RunReport {
        let mut r = testing::committed_run("vm-debug-20s.json");
        r.run.elapsed_s = 10.0;
        r.totals.calls = calls;
        r.triggers.truncate(1);
        r.triggers[0].total.calls = calls;
        r.triggers[0].call_ns.clear();
        r.triggers[0].call_ns.insert(
            "free_fallback".into(),
            CallTimes {
                all: Distribution { count: 100, p50_ns: 3000, p99_ns: 9000, ..Default::default() },
                histogram: vec![],
            },
        );
        r.load.ops_per_s = 500.0;
        let total = StageReport {
            all: Distribution { count: 5000, p50_ns: p99 / 2, p99_ns: p99, ..Default::default() },
            ..Default::default()
        };
        r.latency.paths = vec![PathReport {
            path: "fallback".into(),
            reclaimed: 5000,
            stages: [("total".to_string(), total)].into_iter().collect(),
            ..Default::default()
        }];
        r.repeats.clear();
        r
    }

    #[test]
    fn metrics_have_names_units_and_directions() {
        let m = of_run(&report(1000, 2_000_000));
        let get = |n: &str| m.iter().find(|x| x.name == n).unwrap_or_else(|| panic!("no {n}")).clone();
        assert_eq!(get("calls_per_s").value, 100.0);
        assert_eq!(get("calls_per_s").better, Better::Bigger);
        assert_eq!(get("latency.fallback.total.p99_ns").value, 2_000_000.0);
        assert_eq!(get("latency.fallback.total.p99_ns").unit, "ns");
        assert_eq!(get("lost").better, Better::Smaller);
        assert_eq!(get("trigger.locked_kprobe.calls_per_s").unit, "calls/s");
        let fallback = get("trigger.locked_kprobe.free_fallback.p99_ns");
        assert_eq!((fallback.value, fallback.unit, fallback.tail_samples), (9000.0, "ns", 1.0));
        assert_eq!(get("load_ops_per_s").value, 500.0);
    }

    #[test]
    fn a_bench_gives_rates_with_their_spread_and_call_percentiles() {
        let mut b = testing::committed_bench("bench-debug.json");
        let d = |count, p50_ns, p99_ns| StageReport {
            all: Distribution { count, p50_ns, p99_ns, ..Default::default() },
            ..Default::default()
        };
        b.frees = vec![FreeReport {
            free: "kfree_rcu_nolock".into(),
            ops_per_s: Spread {
                mean: 90000.0,
                stddev: 5000.0,
                min: 80000.0,
                max: 95000.0,
                median: 90000.0,
                samples: vec![],
            },
            alloc: Some(d(200000, 9000, 49000)),
            free_call: Some(d(200000, 6000, 22000)),
            ..Default::default()
        }];
        let m = of_bench(&b);
        let get = |n: &str| m.iter().find(|x| x.name == n).unwrap().clone();
        let rate = get("kfree_rcu_nolock.ops_per_s");
        assert_eq!(
            (rate.value, rate.stddev, rate.low, rate.better),
            (90000.0, 5000.0, 80000.0, Better::Bigger)
        );
        assert_eq!(get("kfree_rcu_nolock.free_call.p99_ns").value, 22000.0);
        assert_eq!(get("kfree_rcu_nolock.alloc.p50_ns").tail_samples, 100000.0);
        assert_eq!(m.len(), 6);
        // The committed bench's ratios, round by round; the loop in C has
        // none of its own.
        let m = of_bench(&testing::committed_bench("bench-debug.json"));
        let get = |n: &str| m.iter().find(|x| x.name == n);
        let native = get("kfree_rcu_nolock.native_ratio").unwrap();
        assert_eq!((native.unit, native.runs, native.better), ("x", 10, Better::Bigger));
        assert!(native.value > 0.5 && native.value < 1.5, "{native:?}");
        assert_eq!(get("native_kfree_rcu.observed_ratio").unwrap().runs, 10);
        assert!(get("native_kfree_rcu_nolock.native_ratio").is_none());
    }

    #[test]
    fn repeats_give_mean_and_spread() {
        let mut r = report(1000, 10);
        r.repeats = vec![report(1000, 10), report(3000, 30)];
        let m = of_run(&r);
        let c = m.iter().find(|x| x.name == "calls_per_s").unwrap();
        assert_eq!((c.value, c.low, c.high), (200.0, 100.0, 300.0));
        assert!((c.stddev - 141.42).abs() < 0.01, "{}", c.stddev);
    }
}
