//! The result documents of nolock-probe, typed: what `run` and `bench`
//! write, what `report`, `export`, `compare` and `validate` read, and what
//! xtask's end-to-end tests hold a guest's result to. Nothing outside this
//! crate reads a result by its JSON keys: a renamed field fails to load
//! here, with the file and the field, instead of reading as 0 somewhere.
//!
//! Fields that results written by older versions lack carry
//! `#[serde(default)]`, and the test at the end of this file loads every
//! result committed to results/.

pub mod batching;
pub mod bench;
pub mod checks;
pub mod coverage;
pub mod cut_short;
pub mod dist;
pub mod kernel;
pub mod progress;
pub mod run;
pub mod verdict;

use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

pub use crate::{
    bench::BenchReport,
    cut_short::CutShort,
    progress::Progress,
    run::{Plan, RunReport},
    verdict::{Check, Verdict},
};

/// Bumped whenever a field changes meaning or goes away. 2: `plan.latency`
/// became `plan.follow` (objects followed to their reclaim); version 1
/// documents still load.
pub const SCHEMA_VERSION: u32 = 2;
pub const OLDEST_SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tool {
    pub name: String,
    pub version: String,
}

impl Tool {
    /// This tool, at `version` (the loader's CARGO_PKG_VERSION).
    pub fn nolock_probe(version: &str) -> Tool {
        Tool { name: "nolock-probe".into(), version: version.into() }
    }
}

/// What `cargo xtask vm` found on the guest's whole console, added to the
/// guest's result.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConsoleReport {
    /// The console log's path on the host.
    pub log: String,
    pub findings: Vec<kernel::Finding>,
}

/// What `cargo xtask vm` writes when the guest stopped before nolock-probe
/// wrote its result and before it streamed any progress: the console's
/// findings and a failed verdict. With progress it writes a [`CutShort`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incomplete {
    pub schema_version: u32,
    /// Always true: tells this document from a run's or a bench's.
    pub incomplete: bool,
    pub verdict: Verdict,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub console: Option<ConsoleReport>,
}

/// Any result document.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Document {
    Run(Box<RunReport>),
    Bench(Box<BenchReport>),
    /// A run the guest stopped after it streamed progress.
    CutShort(Box<CutShort>),
    Incomplete(Incomplete),
}

impl Document {
    /// Reads a document, telling a bench (it has `benchmark`), a run cut
    /// short (`cut_short`) and a stub (`incomplete`) from a run, and refusing schema versions this tool
    /// does not know, in one sentence.
    pub fn from_json(text: &str) -> Result<Document> {
        let value: serde_json::Value = serde_json::from_str(text).context("it is not a JSON document")?;
        let version = value.get("schema_version").and_then(serde_json::Value::as_u64);
        match version {
            Some(v) if (OLDEST_SCHEMA_VERSION as u64..=SCHEMA_VERSION as u64).contains(&v) => {}
            Some(v) => bail!(
                "it has schema version {v}; this nolock-probe reads versions {OLDEST_SCHEMA_VERSION} to \
                 {SCHEMA_VERSION}"
            ),
            None => bail!("it is not a nolock-probe result (no schema_version)"),
        }
        Ok(if value.get("cut_short").is_some() {
            Document::CutShort(serde_json::from_value(value).context("it is not a valid cut-short result")?)
        } else if value.get("incomplete").is_some() {
            Document::Incomplete(serde_json::from_value(value).context("it is not a valid stub result")?)
        } else if value.get("benchmark").is_some() {
            Document::Bench(serde_json::from_value(value).context("it is not a valid bench result")?)
        } else {
            Document::Run(serde_json::from_value(value).context("it is not a valid run result")?)
        })
    }

    /// [`Document::from_json`] of a file; errors name the file.
    pub fn read(path: &Path) -> Result<Document> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        Document::from_json(&text)
            .with_context(|| format!("{} is not a result nolock-probe can read", path.display()))
    }

    /// A run's result, or a sentence saying what `path` is instead.
    pub fn read_run(path: &Path) -> Result<RunReport> {
        match Document::read(path)? {
            Document::Run(r) => Ok(*r),
            Document::Bench(_) => bail!("{} is a bench result, not a run's", path.display()),
            Document::Incomplete(_) | Document::CutShort(_) => {
                bail!("{} is what was left of a run that never wrote its result", path.display())
            }
        }
    }

    pub fn to_json_pretty(&self) -> Result<String> {
        Ok(serde_json::to_string_pretty(self)? + "\n")
    }

    pub fn verdict(&self) -> &Verdict {
        match self {
            Document::Run(r) => &r.verdict,
            Document::Bench(b) => &b.verdict,
            Document::CutShort(c) => &c.verdict,
            Document::Incomplete(i) => &i.verdict,
        }
    }

    /// Adds the guest console's findings; each fails the verdict.
    pub fn add_console(&mut self, console: ConsoleReport) {
        let (verdict, slot) = match self {
            Document::Run(r) => (&mut r.verdict, &mut r.console),
            Document::Bench(b) => (&mut b.verdict, &mut b.console),
            Document::CutShort(c) => (&mut c.verdict, &mut c.console),
            Document::Incomplete(i) => (&mut i.verdict, &mut i.console),
        };
        for f in &console.findings {
            verdict.fail(format!("console: [{}] {}", f.category, f.line));
        }
        *slot = Some(console);
    }

    /// The stub for a guest that stopped before nolock-probe wrote its
    /// result.
    pub fn incomplete(console: ConsoleReport) -> Document {
        let mut doc = Document::Incomplete(Incomplete {
            schema_version: SCHEMA_VERSION,
            incomplete: true,
            verdict: Verdict {
                pass: false,
                reasons: vec!["the guest stopped before nolock-probe wrote its report".into()],
            },
            console: None,
        });
        doc.add_console(console);
        doc
    }

    /// What is left of a run whose guest stopped before nolock-probe wrote
    /// its result: a [`CutShort`] from the last complete line of `stream`
    /// (what `run --stream` wrote) and how the guest ended (`first`, the
    /// console's first finding with its printk timestamp, and nolock-probe's
    /// `exit` status), or the stub when no progress line came; `logged` is
    /// the first failure the tool put in the kernel log, named when the
    /// last line has none.
    pub fn stopped(
        stream: &str,
        first: Option<(kernel::Finding, Option<f64>)>,
        exit: Option<i32>,
        console: ConsoleReport,
        logged: Option<progress::FirstFailure>,
    ) -> Document {
        let Some((last, lines)) = progress::last_complete(stream) else {
            return Document::incomplete(console);
        };
        let crash = cut_short::Crash::new(first, exit, &last);
        let mut doc = Document::CutShort(Box::new(CutShort::new(last, lines, crash, logged)));
        doc.add_console(console);
        doc
    }
}

#[cfg(test)]
pub(crate) mod testing {
    use probe_common::TriggerCounters;

    pub fn repo_path(rel: &str) -> std::path::PathBuf {
        // Read at run time: cargo may reuse a test binary built in another
        // checkout (freshness by content), and `env!` would point into it.
        let dir = std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo test sets CARGO_MANIFEST_DIR");
        std::path::PathBuf::from(dir).join("..").join(rel)
    }

    /// One trigger's counters: `calls` objects allocated in hardirq and
    /// handed to kfree_rcu_nolock(), `sheaf` into the rcu sheaf and
    /// `fallback` to the fallback.
    pub fn counters(calls: u64, sheaf: u64, fallback: u64) -> TriggerCounters {
        TriggerCounters {
            calls,
            freed_rcu: calls,
            sheaf,
            fallback,
            alloc_ctx: [0, 0, calls, 0],
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every result committed to results/ loads, as what its name says it
    /// is, and writes back to the same document (nothing it holds is lost
    /// or invented by the model, beyond fields older versions lacked).
    #[test]
    fn every_committed_result_loads() {
        let mut loaded = 0;
        let coverage = std::fs::read_dir(testing::repo_path("results/coverage")).into_iter().flatten();
        for e in std::fs::read_dir(testing::repo_path("results")).unwrap().chain(coverage) {
            let path = e.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            // Results only: not the schemas, summaries or exports (`x.kind.json`).
            if !name.ends_with(".json")
                || name.contains("schema")
                || name == "summary.json"
                || name.matches('.').count() > 1
            {
                continue;
            }
            let doc = Document::read(&path).unwrap_or_else(|e| panic!("{e:#}"));
            match &doc {
                Document::Bench(_) => assert!(name.starts_with("bench"), "{name} read as a bench"),
                Document::Run(r) => {
                    assert!(!name.starts_with("bench"), "{name} read as a run");
                    assert!(!r.triggers.is_empty(), "{name} has no triggers");
                }
                Document::Incomplete(_) => panic!("{name} is a stub"),
                Document::CutShort(c) => {
                    // The crash test's, and fault kernels that crash.
                    let crashed = name.contains("cut-short") || name.starts_with("fault-");
                    assert!(crashed, "{name} read as a run cut short");
                    assert!(!c.last_progress.triggers.is_empty(), "{name} streamed no triggers");
                }
            }
            let again = Document::from_json(&doc.to_json_pretty().unwrap()).unwrap();
            assert_eq!(again, doc, "{name} does not survive a write and a read");
            loaded += 1;
        }
        assert!(loaded >= 10, "only {loaded} results in results/");
    }

    #[test]
    fn unknown_versions_and_other_documents_are_refused() {
        let err = |text: &str| format!("{:#}", Document::from_json(text).unwrap_err());
        assert!(
            err(r#"{"schema_version": 99}"#).contains("schema version 99"),
            "{}",
            err(r#"{"schema_version": 99}"#)
        );
        assert!(err(r#"{"x": 1}"#).contains("not a nolock-probe result"));
        assert!(err("[").contains("not a JSON document"));
        // A run whose field was renamed fails to load, naming the field.
        let text = std::fs::read_to_string(testing::repo_path("results/vm-debug-20s.json")).unwrap();
        let renamed = text.replacen("\"totals\"", "\"total_counts\"", 1);
        assert!(err(&renamed).contains("totals"), "{}", err(&renamed));
    }

    #[test]
    fn console_findings_fail_the_verdict_or_make_a_stub() {
        let finding =
            kernel::Finding { category: "lockdep".into(), line: "WARNING: inconsistent lock state".into() };
        let console = ConsoleReport { log: "c.log".into(), findings: vec![finding] };
        let stub = Document::incomplete(console.clone());
        assert!(!stub.verdict().pass);
        assert_eq!(stub.verdict().reasons.len(), 2);
        assert_eq!(stub.verdict().reasons[1], "console: [lockdep] WARNING: inconsistent lock state");
        let again = Document::from_json(&stub.to_json_pretty().unwrap()).unwrap();
        assert!(matches!(again, Document::Incomplete(_)));
    }

    /// A guest that died after streaming progress leaves a cut-short
    /// result from the last complete line; one that died before leaves the
    /// stub.
    #[test]
    fn a_stopped_guest_is_cut_short_after_progress_and_a_stub_before() {
        let panic =
            kernel::Finding { category: "panic".into(), line: "Kernel panic - not syncing: sysrq".into() };
        let console = ConsoleReport { log: "c.log".into(), findings: vec![panic.clone()] };
        let stub = Document::stopped("", Some((panic.clone(), Some(40.0))), None, console.clone(), None);
        assert!(matches!(stub, Document::Incomplete(_)));

        let mut latch = progress::Latch::default();
        let mut stream = String::new();
        for s in 1..=2u64 {
            let p = Progress {
                schema_version: SCHEMA_VERSION,
                scenario: "default".into(),
                repeat: 1,
                elapsed_s: s as f64,
                duration_s: 60,
                uptime_s: Some(30.0 + s as f64),
                triggers: [(probe_common::Trigger::Syscall, testing::counters(10 * s, 10 * s, 0))].into(),
                in_flight: Some(1),
                first_failure: None,
            };
            stream += &(serde_json::to_string(&latch.line(p).0).unwrap() + "\n");
        }
        stream += "{\"schema_version\": 2, \"scen";
        let doc = Document::stopped(&stream, Some((panic, Some(33.5))), None, console, None);
        let Document::CutShort(c) = &doc else { panic!("not cut short: {doc:?}") };
        assert_eq!((c.progress_lines, c.last_progress.elapsed_s), (2, 2.0));
        assert_eq!(
            doc.verdict().reasons,
            [
                "cut short at 3.5 s of 60 s (guest uptime 33.5 s): [panic] Kernel panic - not syncing: sysrq",
                "before it: no invariant had failed after 2 s",
                "console: [panic] Kernel panic - not syncing: sysrq",
            ]
        );
        let again = Document::from_json(&doc.to_json_pretty().unwrap()).unwrap();
        assert_eq!(again, doc);
        assert!(Document::read_run(std::path::Path::new("/nonexistent")).is_err());
    }
}
