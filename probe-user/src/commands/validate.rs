//! `nolock-probe validate`: results against the repository's JSON Schema,
//! which describes the result for readers without this code; the typed
//! model (probe-result) must load them too.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use serde_json::Value;

pub const SCHEMA: &str = include_str!("../../../results/schema.json");
/// The schema of `nolock-probe bench` documents, which carry `benchmark`.
pub const BENCH_SCHEMA: &str = include_str!("../../../results/bench.schema.json");

#[derive(Debug, Clone, Args)]
pub struct ValidateArgs {
    #[arg(required = true)]
    pub results: Vec<PathBuf>,
}

/// Every way `result` breaks its schema (a run's or a bench's); empty when
/// it follows it. The document is read as plain JSON on purpose: a
/// document the typed model refuses must still get the schema's list of
/// what is wrong with it, so the two keys that pick the schema are looked
/// up here directly.
pub fn problems(result: &Value) -> Result<Vec<String>> {
    let (text, file) = if result.get("benchmark").is_some() {
        (BENCH_SCHEMA, "results/bench.schema.json")
    } else {
        (SCHEMA, "results/schema.json")
    };
    let schema: Value = serde_json::from_str(text).with_context(|| format!("{file} is not JSON"))?;
    let validator =
        jsonschema::validator_for(&schema).map_err(|e| anyhow::anyhow!("the schema is invalid: {e}"))?;
    let mut out: Vec<String> =
        validator.iter_errors(result).map(|e| format!("{}: {e}", e.instance_path())).collect();
    // Repeated runs are results of their own.
    for (i, run) in result["repeats"].as_array().into_iter().flatten().enumerate() {
        out.extend(validator.iter_errors(run).map(|e| format!("repeats/{i}{}: {e}", e.instance_path())));
    }
    Ok(out)
}

pub fn validate(files: &[impl AsRef<Path>]) -> Result<()> {
    let mut bad = 0;
    let mut out = String::new();
    for f in files {
        let f = f.as_ref();
        let text = std::fs::read_to_string(f).with_context(|| format!("cannot read {}", f.display()))?;
        let value: Value =
            serde_json::from_str(&text).with_context(|| format!("{} is not JSON", f.display()))?;
        let mut p = problems(&value)?;
        if let Err(e) = probe_result::Document::from_json(&text) {
            p.push(format!("{e:#}"));
        }
        if p.is_empty() {
            out += &format!("{}: valid\n", f.display());
        } else {
            bad += 1;
            out += &format!("{}: {} problems\n", f.display(), p.len());
            for x in p.iter().take(20) {
                out += &format!("  {x}\n");
            }
        }
    }
    super::print(&out)?;
    if bad > 0 {
        bail!("{bad} of {} results do not follow their schema in results/", files.len());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every result committed to results/ follows the schema.
    #[test]
    fn committed_results_follow_the_schema() {
        let dir = crate::testing::repo_path("results");
        let mut checked = 0;
        // And the coverage runs (cargo xtask coverage), beside their summary.
        let coverage = std::fs::read_dir(dir.join("coverage")).into_iter().flatten();
        for e in std::fs::read_dir(&dir).unwrap().chain(coverage) {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            // Results only: not the schema, exports or other documents.
            if !name.ends_with(".json")
                || name == "schema.json"
                || name == "summary.json"
                || name.matches('.').count() > 1
            {
                continue;
            }
            let v: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
            let problems = problems(&v).unwrap();
            assert!(problems.is_empty(), "{name}: {problems:#?}");
            checked += 1;
        }
        assert!(checked > 0, "no result in {}", dir.display());
    }

    /// The schema names every trigger the tool has, and only those.
    #[test]
    fn the_schema_knows_every_trigger() {
        let schema: Value = serde_json::from_str(SCHEMA).unwrap();
        let names: Vec<&str> = schema["$defs"]["trigger_name"]["enum"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let ours: Vec<&str> = probe_common::Trigger::ALL.iter().map(|t| t.name()).collect();
        assert_eq!(names, ours);
        assert_eq!(schema["properties"]["plan"]["properties"]["burst"]["maximum"], probe_common::MAX_BURST);
        let kinds: Vec<&str> =
            schema["properties"]["triggers"]["items"]["properties"]["call_ns"]["propertyNames"]["enum"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(Value::as_str)
                .collect();
        assert_eq!(kinds, probe_common::call_kind::NAMES);
    }

    #[test]
    fn a_bench_document_is_held_to_the_bench_schema() {
        let v = serde_json::json!({"schema_version": 1, "benchmark": "kmalloc_nolock_free", "frees": []});
        let p = problems(&v).unwrap();
        assert!(p.iter().any(|x| x.contains("\"plan\" is a required property")), "{p:?}");
        assert!(!p.iter().any(|x| x.contains("\"triggers\"")), "held to the run schema: {p:?}");
        let schema: Value = serde_json::from_str(BENCH_SCHEMA).unwrap();
        let names: Vec<&str> =
            schema["$defs"]["free"]["enum"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
        let ours: Vec<&str> = probe_common::BenchFree::ALL.iter().map(|f| f.name()).collect();
        assert_eq!(names, ours);
    }

    /// What `cargo xtask vm` writes for a guest that stopped without a
    /// result follows the schema: a run cut short (after progress came)
    /// and the stub (before); a cut-short document without its last
    /// progress line does not.
    #[test]
    fn what_a_stopped_guest_leaves_follows_the_schema() {
        use probe_result::{ConsoleReport, Document, Progress, kernel::Finding};
        let panic = Finding { category: "panic".into(), line: "Kernel panic - not syncing: sysrq".into() };
        let console = ConsoleReport { log: "c.log".into(), findings: vec![panic.clone()] };
        let line = Progress {
            schema_version: probe_result::SCHEMA_VERSION,
            scenario: "default".into(),
            repeat: 1,
            elapsed_s: 9.0,
            duration_s: 60,
            uptime_s: Some(31.0),
            triggers: [(
                probe_common::Trigger::Hrtimer,
                probe_common::TriggerCounters { calls: 9, ..Default::default() },
            )]
            .into(),
            in_flight: Some(2),
            first_failure: None,
        };
        let stream = serde_json::to_string(&line).unwrap() + "\n";
        let stopped = |stream: &str| {
            let doc =
                Document::stopped(stream, Some((panic.clone(), Some(32.0))), None, console.clone(), None);
            serde_json::to_value(&doc).unwrap()
        };
        let (cut, stub) = (stopped(&stream), stopped(""));
        assert_eq!(cut["cut_short"], true);
        assert_eq!(stub["incomplete"], true);
        for v in [&cut, &stub] {
            let p = problems(v).unwrap();
            assert!(p.is_empty(), "{v:#}: {p:#?}");
        }
        let mut broken = cut.clone();
        broken.as_object_mut().unwrap().remove("last_progress");
        let p = problems(&broken).unwrap();
        assert!(p.iter().any(|x| x.contains("\"last_progress\" is a required property")), "{p:?}");
        // A run's requirements are not asked of them, and still of a run.
        assert!(!problems(&cut).unwrap().iter().any(|x| x.contains("\"kernel\"")));
    }

    #[test]
    fn a_broken_result_is_caught() {
        let v = serde_json::json!({"schema_version": 1, "tool": {"name": "nolock-probe", "version": "0"}});
        let p = problems(&v).unwrap();
        assert!(p.iter().any(|x| x.contains("kernel")), "{p:?}");
    }
}
