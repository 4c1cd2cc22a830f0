//! `nolock-probe export`: a result in the formats CI dashboards ingest.

use anyhow::{Result, bail};
use serde_json::{Value, json};

use crate::metrics::{Better, metrics};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// github-action-benchmark's custom JSON (customSmallerIsBetter /
    /// customBiggerIsBetter): an array of {name, unit, value, range, extra}.
    GithubActionBenchmark,
    /// Bencher Metric Format: {benchmark: {measure: {value, lower_value,
    /// upper_value}}}, measures `latency` (ns) and `throughput` (ops/s).
    Bencher,
    /// KernelCI KCIDB v5: a document with `tests` entries.
    Kcidb,
}

/// github-action-benchmark takes one direction per file: `bigger` selects
/// the rates (customBiggerIsBetter), otherwise the latencies and failure
/// counts (customSmallerIsBetter).
pub fn github_action_benchmark(report: &Value, bigger: bool) -> Value {
    let scenario = report["plan"]["scenario"].as_str().unwrap_or("default");
    let want = if bigger { Better::Bigger } else { Better::Smaller };
    let entries: Vec<Value> = metrics(report)
        .into_iter()
        .filter(|m| m.better == want)
        .map(|m| {
            json!({
                "name": format!("{scenario}/{}", m.name),
                "unit": m.unit,
                "value": m.value,
                "range": format!("± {:.3}", m.stddev),
                "extra": format!("min {:.3} max {:.3} over the repeats", m.low, m.high),
            })
        })
        .collect();
    Value::Array(entries)
}

pub fn bencher(report: &Value) -> Value {
    let scenario = report["plan"]["scenario"].as_str().unwrap_or("default");
    let mut out = serde_json::Map::new();
    for m in metrics(report) {
        let measure = match m.unit {
            "ns" => "latency",
            "calls/s" | "ops/s" => "throughput",
            _ => continue,
        };
        out.insert(
            format!("nolock-probe/{scenario}/{}", m.name),
            json!({measure: {"value": m.value, "lower_value": m.low, "upper_value": m.high}}),
        );
    }
    Value::Object(out)
}

/// KCIDB v5: one test entry per check (PASS/FAIL) under the run's origin,
/// and one per metric (status DONE, with `number`).
pub fn kcidb(report: &Value) -> Value {
    let release = report["kernel"]["release"].as_str().unwrap_or("unknown");
    let started = report["run"]["started_unix_s"].as_u64().unwrap_or(0);
    let scenario = report["plan"]["scenario"].as_str().unwrap_or("default");
    let build_id = format!("nolock-probe:{release}");
    let mut tests = Vec::new();
    let base = format!("nolock-probe:{release}:{scenario}:{started}");
    tests.push(json!({
        "id": format!("{base}:verdict"),
        "build_id": build_id,
        "origin": "nolock-probe",
        "path": format!("nolock_probe.{scenario}"),
        "status": if report["verdict"]["pass"] == Value::Bool(true) { "PASS" } else { "FAIL" },
        "misc": {"reasons": report["verdict"]["reasons"].clone()},
    }));
    for (i, c) in report["checks"].as_array().into_iter().flatten().enumerate() {
        tests.push(json!({
            "id": format!("{base}:check:{i}"),
            "build_id": build_id,
            "origin": "nolock-probe",
            "path": format!("nolock_probe.{scenario}.{}", c["name"].as_str().unwrap_or("check")),
            "status": if c["pass"] == Value::Bool(true) { "PASS" } else { "FAIL" },
            "log_excerpt": c["detail"].clone(),
        }));
    }
    for m in metrics(report) {
        tests.push(json!({
            "id": format!("{base}:metric:{}", m.name),
            "build_id": build_id,
            "origin": "nolock-probe",
            "path": format!("nolock_probe.{scenario}.{}", m.name.replace('-', "_")),
            "status": "DONE",
            "number": {"value": m.value, "unit": m.unit, "prefix": "metric"},
        }));
    }
    json!({"version": {"major": 5, "minor": 0}, "tests": tests})
}

/// The export of `report` in `format`; github-action-benchmark gives two
/// documents (smaller, then bigger is better).
pub fn export(report: &Value, format: Format) -> Result<Vec<(&'static str, Value)>> {
    if report["schema_version"] != json!(1) {
        bail!("this is not a nolock-probe result of schema version 1");
    }
    Ok(match format {
        Format::GithubActionBenchmark => vec![
            ("smaller-is-better", github_action_benchmark(report, false)),
            ("bigger-is-better", github_action_benchmark(report, true)),
        ],
        Format::Bencher => vec![("bmf", bencher(report))],
        Format::Kcidb => vec![("kcidb", kcidb(report))],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::tests::report;

    fn sample() -> Value {
        let mut r = report(1000, 2_000_000);
        r["schema_version"] = json!(1);
        r["plan"] = json!({"scenario": "default"});
        r["kernel"] = json!({"release": "7.3.4+"});
        r["run"]["started_unix_s"] = json!(1_800_000_000u64);
        r["checks"] = json!([{"name": "lost_objects", "pass": true, "detail": "0 lost"}]);
        r
    }

    /// github-action-benchmark's custom tools: an array of objects with a
    /// string name and unit and a number value; range and extra strings.
    #[test]
    fn github_action_benchmark_shape() {
        for bigger in [false, true] {
            let doc = github_action_benchmark(&sample(), bigger);
            let entries = doc.as_array().unwrap();
            assert!(!entries.is_empty());
            for e in entries {
                assert!(e["name"].as_str().unwrap().starts_with("default/"));
                assert!(e["unit"].is_string() && e["value"].is_number());
                assert!(e["range"].is_string() && e["extra"].is_string());
            }
            let names: Vec<&str> = entries.iter().map(|e| e["name"].as_str().unwrap()).collect();
            assert_eq!(names.contains(&"default/calls_per_s"), bigger, "{names:?}");
            assert_eq!(names.contains(&"default/latency.fallback.total.p99_ns"), !bigger, "{names:?}");
        }
    }

    /// Bencher Metric Format: benchmark name -> measure -> {value,
    /// lower_value, upper_value}, with `latency` and `throughput` only.
    #[test]
    fn bencher_shape() {
        let doc = bencher(&sample());
        let map = doc.as_object().unwrap();
        let p99 = &map["nolock-probe/default/latency.fallback.total.p99_ns"]["latency"];
        assert_eq!(p99["value"], 2_000_000.0);
        assert!(p99["lower_value"].is_number() && p99["upper_value"].is_number());
        assert!(map["nolock-probe/default/calls_per_s"]["throughput"]["value"].is_number());
        for (_, measures) in map {
            for (m, v) in measures.as_object().unwrap() {
                assert!(m == "latency" || m == "throughput");
                assert_eq!(v.as_object().unwrap().len(), 3);
            }
        }
    }

    /// KCIDB v5: version 5.x and `tests` whose entries carry id, build_id,
    /// origin, path and status (PASS/FAIL for checks, DONE with a number
    /// for measurements).
    #[test]
    fn kcidb_shape() {
        let doc = kcidb(&sample());
        assert_eq!(doc["version"]["major"], 5);
        let tests = doc["tests"].as_array().unwrap();
        assert_eq!(tests[0]["status"], "PASS");
        for t in tests {
            for k in ["id", "build_id", "origin", "path", "status"] {
                assert!(t[k].is_string(), "{k} in {t}");
            }
            assert!(t["id"].as_str().unwrap().starts_with("nolock-probe:"));
            match t["status"].as_str().unwrap() {
                "DONE" => assert!(t["number"]["value"].is_number()),
                "PASS" | "FAIL" => assert!(t.get("number").is_none()),
                s => panic!("status {s}"),
            }
        }
        let mut failing = sample();
        failing["verdict"] = json!({"pass": false, "reasons": ["lost_objects: 3"]});
        assert_eq!(kcidb(&failing)["tests"][0]["status"], "FAIL");
    }

    #[test]
    fn other_documents_are_refused() {
        assert!(export(&json!({"x": 1}), Format::Bencher).is_err());
    }
}
