//! The numbers a dashboard tracks, taken from a result document: what
//! `export` publishes and `compare` gates on. Read from JSON values, so any
//! result of this schema version can be compared with any other.

use serde_json::Value;

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
    /// "ns", "calls/s", "ops/s" or "objects".
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
}

fn num(v: &Value) -> Option<f64> {
    v.as_f64()
}

/// One metric of one run: name, unit, value, direction, tail samples.
type Single = (String, &'static str, f64, Better, f64);

/// The p50 and p99 of a distribution (`count`, `p50_ns`, `p99_ns`) as
/// `<prefix>.p50_ns` and `<prefix>.p99_ns`, with the samples beyond each.
fn percentiles(prefix: &str, d: &Value) -> Vec<Single> {
    let count = num(&d["count"]).unwrap_or(0.0);
    [("p50_ns", 0.5), ("p99_ns", 0.01)]
        .into_iter()
        .filter_map(|(q, beyond)| {
            Some((format!("{prefix}.{q}"), "ns", num(&d[q])?, Better::Smaller, count * beyond))
        })
        .collect()
}

/// The metrics of one run document (without its repeats).
fn single(report: &Value) -> Vec<Single> {
    let mut out = Vec::new();
    let elapsed = num(&report["run"]["elapsed_s"]).unwrap_or(0.0).max(1e-9);
    let t = &report["totals"];
    if let Some(calls) = num(&t["calls"]) {
        out.push(("calls_per_s".into(), "calls/s", calls / elapsed, Better::Bigger, f64::INFINITY));
    }
    for trig in report["triggers"].as_array().into_iter().flatten() {
        if let (Some(name), Some(calls)) = (trig["name"].as_str(), num(&trig["total"]["calls"])) {
            out.push((
                format!("trigger.{name}.calls_per_s"),
                "calls/s",
                calls / elapsed,
                Better::Bigger,
                f64::INFINITY,
            ));
        }
    }
    // How long each trigger's calls took, by what they did.
    for trig in report["triggers"].as_array().into_iter().flatten() {
        let Some(name) = trig["name"].as_str() else { continue };
        for (kind, d) in trig["call_ns"].as_object().into_iter().flatten() {
            out.extend(percentiles(&format!("trigger.{name}.{kind}"), d));
        }
    }
    for (key, name) in [("alloc_fail", "alloc_fail"), ("premature", "premature"), ("untracked", "untracked")]
    {
        if let Some(v) = num(&t[key]) {
            out.push((name.into(), "objects", v, Better::Smaller, f64::INFINITY));
        }
    }
    if let Some(v) = num(&report["in_flight"]["lost"]) {
        out.push(("lost".into(), "objects", v, Better::Smaller, f64::INFINITY));
    }
    if let Some(v) = num(&report["in_flight"]["peak"]) {
        out.push(("in_flight_peak".into(), "objects", v, Better::Smaller, f64::INFINITY));
    }
    // What the BPF programs cost (results before kernel.bpf_stats had none).
    for (key, name) in
        [("trigger_cpu_pct", "bpf.trigger_cpu_pct"), ("observer_cpu_pct", "bpf.observer_cpu_pct")]
    {
        if let Some(v) = num(&report["bpf_cost"][key]) {
            out.push((name.into(), "%", v, Better::Smaller, f64::INFINITY));
        }
    }
    if report["load"]["enabled"] == Value::Bool(true) {
        if let Some(v) = num(&report["load"]["ops_per_s"]) {
            out.push(("load_ops_per_s".into(), "ops/s", v, Better::Bigger, f64::INFINITY));
        }
    }
    for p in report["latency"]["paths"].as_array().into_iter().flatten() {
        let Some(path) = p["path"].as_str() else { continue };
        let Some(stages) = p["stages"].as_object() else { continue };
        for (stage, d) in stages {
            out.extend(percentiles(&format!("latency.{path}.{stage}"), d));
        }
    }
    out
}

/// The metrics of a `nolock-probe bench` document, per free function: the
/// rate with the spread of its samples, and the calls' percentiles.
fn bench(report: &Value) -> Vec<Metric> {
    let mut out = Vec::new();
    for f in report["frees"].as_array().into_iter().flatten() {
        let Some(free) = f["free"].as_str() else { continue };
        let r = &f["ops_per_s"];
        if let Some(mean) = num(&r["mean"]) {
            out.push(Metric {
                name: format!("{free}.ops_per_s"),
                unit: "ops/s",
                value: mean,
                low: num(&r["min"]).unwrap_or(mean),
                high: num(&r["max"]).unwrap_or(mean),
                stddev: num(&r["stddev"]).unwrap_or(0.0),
                better: Better::Bigger,
                tail_samples: f64::INFINITY,
            });
        }
        let fixed = |name: String, unit, value, better, tail_samples| Metric {
            name,
            unit,
            value,
            low: value,
            high: value,
            stddev: 0.0,
            better,
            tail_samples,
        };
        if let Some(v) = num(&f["alloc_failures"]) {
            out.push(fixed(format!("{free}.alloc_failures"), "objects", v, Better::Smaller, f64::INFINITY));
        }
        for call in ["alloc", "free_call"] {
            for (name, unit, v, better, tail) in percentiles(&format!("{free}.{call}"), &f[call]) {
                out.push(fixed(name, unit, v, better, tail));
            }
        }
    }
    out
}

/// Every metric of a result; with `repeats`, mean and spread over them.
/// A bench document's spread comes from its samples.
pub fn metrics(report: &Value) -> Vec<Metric> {
    if report.get("benchmark").is_some() {
        return bench(report);
    }
    let runs: Vec<&Value> = match report["repeats"].as_array() {
        Some(r) if !r.is_empty() => r.iter().collect(),
        _ => vec![report],
    };
    let per_run: Vec<Vec<Single>> = runs.iter().map(|r| single(r)).collect();
    let mut out = Vec::new();
    for (name, unit, _, better, _) in &per_run[0] {
        let found: Vec<&Single> = per_run.iter().filter_map(|m| m.iter().find(|x| &x.0 == name)).collect();
        let values: Vec<f64> = found.iter().map(|x| x.2).collect();
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let var = if values.len() > 1 {
            values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)
        } else {
            0.0
        };
        out.push(Metric {
            name: name.clone(),
            unit,
            value: mean,
            low: values.iter().copied().fold(f64::INFINITY, f64::min),
            high: values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            stddev: var.sqrt(),
            better: *better,
            tail_samples: found.iter().map(|x| x.4).fold(f64::INFINITY, f64::min),
        });
    }
    out
}

#[cfg(test)]
pub mod tests {
    use serde_json::json;

    use super::*;

    pub fn report(calls: u64, p99: u64) -> Value {
        json!({
            "run": {"elapsed_s": 10.0},
            "totals": {"calls": calls, "alloc_fail": 0, "premature": 0, "untracked": 0},
            "triggers": [{"name": "perf_event", "total": {"calls": calls},
                          "call_ns": {"free_fallback": {"count": 100, "p50_ns": 3000, "p99_ns": 9000}}}],
            "in_flight": {"lost": 0, "peak": 100},
            "load": {"enabled": true, "ops_per_s": 500.0},
            "latency": {"paths": [{"path": "fallback", "stages": {"total": {"count": 5000, "p50_ns": p99 / 2, "p99_ns": p99}}}]},
            "verdict": {"pass": true, "reasons": []},
        })
    }

    #[test]
    fn metrics_have_names_units_and_directions() {
        let m = metrics(&report(1000, 2_000_000));
        let get = |n: &str| m.iter().find(|x| x.name == n).unwrap().clone();
        assert_eq!(get("calls_per_s").value, 100.0);
        assert_eq!(get("calls_per_s").better, Better::Bigger);
        assert_eq!(get("latency.fallback.total.p99_ns").value, 2_000_000.0);
        assert_eq!(get("latency.fallback.total.p99_ns").unit, "ns");
        assert_eq!(get("lost").better, Better::Smaller);
        assert_eq!(get("trigger.perf_event.calls_per_s").unit, "calls/s");
        let fallback = get("trigger.perf_event.free_fallback.p99_ns");
        assert_eq!((fallback.value, fallback.unit, fallback.tail_samples), (9000.0, "ns", 1.0));
    }

    #[test]
    fn a_bench_gives_rates_with_their_spread_and_call_percentiles() {
        let doc = json!({
            "benchmark": "kmalloc_nolock_free",
            "frees": [{
                "free": "kfree_rcu_nolock",
                "ops_per_s": {"mean": 90000.0, "stddev": 5000.0, "min": 80000.0, "max": 95000.0},
                "alloc_failures": 0,
                "alloc": {"count": 200000, "p50_ns": 9000, "p99_ns": 49000},
                "free_call": {"count": 200000, "p50_ns": 6000, "p99_ns": 22000},
            }],
        });
        let m = metrics(&doc);
        let get = |n: &str| m.iter().find(|x| x.name == n).unwrap().clone();
        let rate = get("kfree_rcu_nolock.ops_per_s");
        assert_eq!(
            (rate.value, rate.stddev, rate.low, rate.better),
            (90000.0, 5000.0, 80000.0, Better::Bigger)
        );
        assert_eq!(get("kfree_rcu_nolock.free_call.p99_ns").value, 22000.0);
        assert_eq!(get("kfree_rcu_nolock.alloc.p50_ns").tail_samples, 100000.0);
        assert_eq!(m.len(), 6);
    }

    #[test]
    fn repeats_give_mean_and_spread() {
        let mut r = report(1000, 10);
        r["repeats"] = json!([report(1000, 10), report(3000, 30)]);
        let m = metrics(&r);
        let c = m.iter().find(|x| x.name == "calls_per_s").unwrap();
        assert_eq!((c.value, c.low, c.high), (200.0, 100.0, 300.0));
        assert!((c.stddev - 141.42).abs() < 0.01, "{}", c.stddev);
    }
}
