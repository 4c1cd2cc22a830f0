//! A result in the formats CI dashboards ingest (`nolock-probe export`,
//! `run --export`).

use anyhow::{Result, bail};
use probe_result::Document;
use serde_json::{Value, json};

use super::kcidb;
use crate::judge::metrics::{self, Better};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// github-action-benchmark's custom JSON (customSmallerIsBetter /
    /// customBiggerIsBetter): an array of {name, unit, value, range, extra}.
    GithubActionBenchmark,
    /// Bencher Metric Format: {benchmark: {measure: {value, lower_value,
    /// upper_value}}}, measures `latency` (ns) and `throughput` (ops/s).
    Bencher,
    /// KernelCI KCIDB v5: a whole submission (checkout, builds, tests);
    /// several results merge into one.
    Kcidb,
}

/// The scenario a result names its entries by; a run that never finished
/// has nothing to export.
fn scenario(doc: &Document) -> Result<&str> {
    Ok(match doc {
        Document::Run(r) => &r.plan.scenario,
        Document::Bench(b) => &b.plan.scenario,
        Document::Incomplete(_) | Document::CutShort(_) => {
            bail!("this result is what was left of a run that never finished: nothing to export")
        }
    })
}

/// github-action-benchmark takes one direction per file: `bigger` selects
/// the rates (customBiggerIsBetter), otherwise the latencies and failure
/// counts (customSmallerIsBetter).
fn github_action_benchmark(doc: &Document, scenario: &str, bigger: bool) -> Value {
    let want = if bigger { Better::Bigger } else { Better::Smaller };
    let entries: Vec<Value> = metrics::of(doc)
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

fn bencher(doc: &Document, scenario: &str) -> Value {
    let mut out = serde_json::Map::new();
    for m in metrics::of(doc) {
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

/// The export of `doc` in `format`; github-action-benchmark gives two
/// documents (smaller, then bigger is better).
pub fn export(doc: &Document, format: Format) -> Result<Vec<(&'static str, Value)>> {
    let scenario = scenario(doc)?;
    Ok(match format {
        Format::GithubActionBenchmark => vec![
            ("smaller-is-better", github_action_benchmark(doc, scenario, false)),
            ("bigger-is-better", github_action_benchmark(doc, scenario, true)),
        ],
        Format::Bencher => vec![("bmf", bencher(doc, scenario))],
        Format::Kcidb => vec![("kcidb", kcidb::submission(std::slice::from_ref(doc))?)],
    })
}

/// Writes each exported document as `<prefix>.<kind>.json`.
pub fn write(exported: Vec<(&'static str, Value)>, prefix: &std::path::Path) -> Result<()> {
    use anyhow::Context;
    for (kind, value) in exported {
        let path = prefix.with_extension(format!("{kind}.json"));
        std::fs::write(&path, serde_json::to_string_pretty(&value)? + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("nolock-probe: wrote {}", path.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use probe_result::{Check, Verdict};

    use super::*;
    use crate::judge::metrics::tests::report;

    fn sample() -> Document {
        let mut r = report(1000, 2_000_000);
        r.plan.scenario = "default".into();
        r.kernel.release = "7.3.4+".into();
        r.run.started_unix_s = 1_800_000_000;
        r.checks = vec![Check { name: "lost_objects".into(), pass: true, detail: "0 lost".into() }];
        r.verdict = Verdict { pass: true, reasons: vec![] };
        Document::Run(Box::new(r))
    }

    fn only(doc: &Document, format: Format) -> Value {
        export(doc, format).unwrap().remove(0).1
    }

    /// github-action-benchmark's custom tools: an array of objects with a
    /// string name and unit and a number value; range and extra strings.
    #[test]
    fn github_action_benchmark_shape() {
        let docs = export(&sample(), Format::GithubActionBenchmark).unwrap();
        assert_eq!(docs.iter().map(|d| d.0).collect::<Vec<_>>(), ["smaller-is-better", "bigger-is-better"]);
        for (kind, doc) in docs {
            let bigger = kind == "bigger-is-better";
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
        let doc = only(&sample(), Format::Bencher);
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

    #[test]
    fn stubs_are_refused() {
        let stub = Document::incomplete(probe_result::ConsoleReport::default());
        assert!(export(&stub, Format::Bencher).unwrap_err().to_string().contains("never finished"));
    }
}
