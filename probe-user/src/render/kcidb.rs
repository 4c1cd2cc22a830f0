//! A KernelCI KCIDB v5 submission: the checkout (the kernel source the
//! results came from), a build per kernel configuration, and a test per
//! verdict, check and measurement. KCIDB ids start with the submitting
//! origin and a colon; origins are `[a-z0-9_]+`, so the tool's is
//! `nolock_probe`, not its name. One submission can hold several results
//! (`cargo xtask matrix`: one scenario on each kernel flavor).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use anyhow::Result;
use probe_result::{Check, Document, kernel::KernelInfo};
use serde_json::{Value, json};

use crate::judge::metrics;

/// The tool's KCIDB origin.
pub const ORIGIN: &str = "nolock_probe";

/// KCIDB asks for log excerpts of at most 16 KiB.
const MAX_EXCERPT: usize = 16 * 1024;

/// What one result adds to a submission.
struct Entry<'a> {
    scenario: &'a str,
    kernel: &'a KernelInfo,
    started_unix_s: u64,
    elapsed_s: f64,
    cpus: usize,
    checks: &'a [Check],
    pass: bool,
    reasons: &'a [String],
}

fn entry(doc: &Document) -> Result<Entry<'_>> {
    Ok(match doc {
        Document::Run(r) => Entry {
            scenario: &r.plan.scenario,
            kernel: &r.kernel,
            started_unix_s: r.run.started_unix_s,
            elapsed_s: r.run.elapsed_s,
            cpus: r.run.cpus.len(),
            checks: &r.checks,
            pass: r.verdict.pass,
            reasons: &r.verdict.reasons,
        },
        Document::Bench(b) => Entry {
            scenario: &b.plan.scenario,
            kernel: &b.kernel,
            started_unix_s: b.run.started_unix_s,
            elapsed_s: b.run.elapsed_s,
            cpus: 0,
            checks: &b.checks,
            pass: b.verdict.pass,
            reasons: &b.verdict.reasons,
        },
        Document::Incomplete(_) | Document::CutShort(_) => {
            anyhow::bail!("this result is what was left of a run that never finished: nothing to export")
        }
    })
}

/// The kernel flavor a config is, by the options the tool records: the
/// `cargo xtask vm --kernel-config` names for the project's kernels.
pub fn flavor(kernel: &KernelInfo) -> &'static str {
    let on = |k: &str| kernel.config.get(k).is_some_and(|v| v == "y");
    match () {
        _ if on("CONFIG_PREEMPT_RT") => "rt",
        _ if on("CONFIG_KASAN") => "kasan",
        _ if on("CONFIG_PROVE_LOCKING") => "debug",
        _ => "custom",
    }
}

/// A KCIDB path component: letters, digits, `_` and `-`.
fn component(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect()
}

fn rfc3339(unix_s: u64) -> String {
    humantime::format_rfc3339_seconds(SystemTime::UNIX_EPOCH + Duration::from_secs(unix_s)).to_string()
}

fn excerpt(s: &str) -> String {
    if s.len() <= MAX_EXCERPT {
        return s.to_string();
    }
    let mut end = MAX_EXCERPT;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

fn status(pass: bool) -> &'static str {
    if pass { "PASS" } else { "FAIL" }
}

/// One submission holding every result in `docs`.
pub fn submission(docs: &[Document]) -> Result<Value> {
    let entries = docs.iter().map(entry).collect::<Result<Vec<_>>>()?;
    let mut checkouts = BTreeMap::new();
    let mut builds = BTreeMap::new();
    let mut tests = Vec::new();
    for e in &entries {
        // The release names the source (with the series applied); the
        // recorded options name the configuration built from it.
        let release = &e.kernel.release;
        let checkout_id = format!("{ORIGIN}:{release}");
        checkouts.entry(checkout_id.clone()).or_insert_with(|| {
            json!({
                "id": checkout_id,
                "origin": ORIGIN,
                "tree_name": "linux",
                "comment": format!("Linux {release} with the nolock-probe kfunc series (kernel-patches/)"),
                "valid": true,
            })
        });
        let flavor = flavor(e.kernel);
        let build_id = format!("{checkout_id}:{flavor}");
        builds.entry(build_id.clone()).or_insert_with(|| {
            json!({
                "id": build_id,
                "checkout_id": checkout_id,
                "origin": ORIGIN,
                "architecture": std::env::consts::ARCH,
                "config_name": flavor,
                // The tests ran on it: it built and booted.
                "status": "PASS",
                "misc": {"config": e.kernel.config},
            })
        });
        let scenario = component(e.scenario);
        let base = format!("{build_id}:{scenario}:{}", e.started_unix_s);
        let start_time = rfc3339(e.started_unix_s);
        let environment = json!({"comment": format!("{} CPUs", e.cpus), "misc": {"cpus": e.cpus}});
        let mut verdict = json!({
            "id": format!("{base}:verdict"),
            "build_id": build_id,
            "origin": ORIGIN,
            "path": format!("nolock_probe.{scenario}"),
            "status": status(e.pass),
            "start_time": start_time,
            "duration": e.elapsed_s,
            "environment": environment,
            "misc": {"reasons": e.reasons},
        });
        // The reasons quote the kernel's reports (kernel_log and console
        // lines) where KCIDB shows a log.
        if !e.reasons.is_empty() {
            verdict["log_excerpt"] = excerpt(&e.reasons.join("\n")).into();
        }
        tests.push(verdict);
        // A check name repeats (one kernel_log check a report): the index
        // keeps the ids apart.
        for (i, c) in e.checks.iter().enumerate() {
            tests.push(json!({
                "id": format!("{base}:check:{i}:{}", c.name),
                "build_id": build_id,
                "origin": ORIGIN,
                "path": format!("nolock_probe.{scenario}.{}", component(&c.name)),
                "status": status(c.pass),
                "start_time": start_time,
                "log_excerpt": excerpt(&c.detail),
            }));
        }
    }
    for (doc, e) in docs.iter().zip(&entries) {
        let build_id = format!("{ORIGIN}:{}:{}", e.kernel.release, flavor(e.kernel));
        let scenario = component(e.scenario);
        let base = format!("{build_id}:{scenario}:{}", e.started_unix_s);
        for m in metrics::of(doc) {
            let path: Vec<String> = m.name.split('.').map(component).collect();
            tests.push(json!({
                "id": format!("{base}:metric:{}", m.name),
                "build_id": build_id,
                "origin": ORIGIN,
                "path": format!("nolock_probe.{scenario}.{}", path.join(".")),
                "status": "DONE",
                "start_time": rfc3339(e.started_unix_s),
                "number": {"value": m.value, "unit": m.unit, "prefix": "metric"},
            }));
        }
    }
    Ok(json!({
        "version": {"major": 5, "minor": 3},
        "checkouts": checkouts.into_values().collect::<Vec<_>>(),
        "builds": builds.into_values().collect::<Vec<_>>(),
        "tests": tests,
    }))
}

#[cfg(test)]
mod tests {
    use probe_result::Verdict;

    use super::*;
    use crate::judge::metrics::tests::report;

    fn sample(rt: bool, started: u64) -> Document {
        let mut r = report(1000, 2_000_000);
        r.plan.scenario = "default".into();
        r.kernel.release = "7.3.4+".into();
        r.kernel.config.insert("CONFIG_PROVE_LOCKING".into(), "y".into());
        r.kernel.config.insert("CONFIG_PREEMPT_RT".into(), if rt { "y" } else { "n" }.into());
        r.run.started_unix_s = started;
        r.checks = vec![
            Check { name: "lost_objects".into(), pass: true, detail: "0 lost".into() },
            Check {
                name: "kernel_log".into(),
                pass: false,
                detail: "[lockdep] WARNING: possible recursive locking".into(),
            },
            Check { name: "kernel_log".into(), pass: false, detail: "[warn] WARNING: at mm/slub.c".into() },
        ];
        r.verdict = Verdict {
            pass: false,
            reasons: vec![
                "kernel_log: [lockdep] WARNING: possible recursive locking".into(),
                "kernel_log: [warn] WARNING: at mm/slub.c".into(),
            ],
        };
        Document::Run(Box::new(r))
    }

    fn is_id(s: &str) -> bool {
        s.split_once(':').is_some_and(|(o, _)| {
            !o.is_empty() && o.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        })
    }

    fn is_path(s: &str) -> bool {
        s.split('.')
            .all(|c| !c.is_empty() && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'))
    }

    /// The KCIDB v5 rules a submission must follow (kcidb-io's schema
    /// checks them too, in `cargo xtask test`): the required fields of each
    /// object, ids with an origin prefix, origins `[a-z0-9_]+`, dotted
    /// paths, the status values, and builds and tests that point at
    /// objects in the submission.
    fn problems(doc: &Value) -> Vec<String> {
        let mut p = Vec::new();
        if doc["version"]["major"] != 5 {
            p.push("version is not 5.x".into());
        }
        let ids = |kind: &str| -> Vec<String> {
            doc[kind].as_array().unwrap().iter().map(|o| o["id"].as_str().unwrap_or("").to_string()).collect()
        };
        for (kind, required) in [
            ("checkouts", &["id", "origin"][..]),
            ("builds", &["id", "origin", "checkout_id"][..]),
            ("tests", &["id", "origin", "build_id"][..]),
        ] {
            for o in doc[kind].as_array().unwrap() {
                for k in required {
                    match o[k].as_str() {
                        None => p.push(format!("{kind}: no {k} in {o}")),
                        Some(v) if *k == "origin" && v != ORIGIN => p.push(format!("{kind}: origin {v}")),
                        Some(v) if *k != "origin" && !is_id(v) => p.push(format!("{kind}: {k} {v}")),
                        _ => {}
                    }
                }
            }
        }
        let checkouts = ids("checkouts");
        let builds = ids("builds");
        for b in doc["builds"].as_array().unwrap() {
            if !checkouts.iter().any(|c| b["checkout_id"] == c.as_str()) {
                p.push(format!("build {} of no checkout here", b["id"]));
            }
        }
        let tests = ids("tests");
        let mut unique = tests.clone();
        unique.sort();
        unique.dedup();
        if unique.len() != tests.len() {
            p.push("test ids repeat".into());
        }
        for t in doc["tests"].as_array().unwrap() {
            if !builds.iter().any(|b| t["build_id"] == b.as_str()) {
                p.push(format!("test {} of no build here", t["id"]));
            }
            if !t["path"].as_str().is_some_and(is_path) {
                p.push(format!("test path {}", t["path"]));
            }
            match t["status"].as_str() {
                Some("DONE") if !t["number"]["value"].is_number() => {
                    p.push(format!("{} DONE without a number", t["id"]))
                }
                Some("DONE" | "PASS" | "FAIL") => {}
                s => p.push(format!("status {s:?}")),
            }
        }
        p
    }

    #[test]
    fn a_submission_has_checkout_builds_and_tests_by_the_rules() {
        let doc = submission(&[sample(false, 1_800_000_000)]).unwrap();
        assert_eq!(problems(&doc), Vec::<String>::new());
        assert_eq!(doc["checkouts"].as_array().unwrap().len(), 1);
        assert_eq!(doc["builds"][0]["id"], "nolock_probe:7.3.4+:debug");
        let tests = doc["tests"].as_array().unwrap();
        assert_eq!(tests[0]["status"], "FAIL");
        assert_eq!(tests[0]["start_time"], "2027-01-15T08:00:00Z");
        // The kernel's report is quoted where KCIDB shows it.
        let log = tests[0]["log_excerpt"].as_str().unwrap();
        assert!(log.contains("[lockdep] WARNING: possible recursive locking"), "{log}");
        let check = tests.iter().find(|t| t["path"] == "nolock_probe.default.kernel_log").unwrap();
        assert_eq!(check["status"], "FAIL");
        assert!(check["log_excerpt"].as_str().unwrap().contains("possible recursive locking"));
        let metric = tests.iter().find(|t| t["status"] == "DONE").unwrap();
        assert!(metric["number"]["unit"].is_string());
    }

    /// Results of one scenario on two flavors: one checkout, two builds,
    /// no id twice.
    #[test]
    fn results_merge_into_one_submission() {
        let doc = submission(&[sample(false, 1_800_000_000), sample(true, 1_800_000_100)]).unwrap();
        assert_eq!(problems(&doc), Vec::<String>::new());
        assert_eq!(doc["checkouts"].as_array().unwrap().len(), 1);
        let builds: Vec<&str> =
            doc["builds"].as_array().unwrap().iter().map(|b| b["config_name"].as_str().unwrap()).collect();
        assert_eq!(builds, ["debug", "rt"]);
    }

    /// The rules above can fail: a bad origin, a dangling build and an
    /// unknown status are each named.
    #[test]
    fn the_rules_catch_what_kcidb_refuses() {
        let mut doc = submission(&[sample(false, 1_800_000_000)]).unwrap();
        doc["tests"][0]["origin"] = "nolock-probe".into();
        doc["tests"][1]["build_id"] = "nolock_probe:elsewhere".into();
        doc["tests"][2]["status"] = "OK".into();
        doc["builds"][0]["id"] = "nolock-probe:7.3.4+".into();
        let p = problems(&doc);
        assert!(p.iter().any(|x| x == "tests: origin nolock-probe"), "{p:#?}");
        assert!(p.iter().any(|x| x.starts_with("builds: id nolock-probe:")), "{p:#?}");
        assert!(p.iter().any(|x| x.contains("of no build here")), "{p:#?}");
        assert!(p.iter().any(|x| x == "status Some(\"OK\")"), "{p:#?}");
    }

    #[test]
    fn flavors_by_config() {
        let Document::Run(mut r) = sample(false, 0) else { unreachable!() };
        assert_eq!(flavor(&r.kernel), "debug");
        r.kernel.config.insert("CONFIG_KASAN".into(), "y".into());
        assert_eq!(flavor(&r.kernel), "kasan");
        r.kernel.config.clear();
        assert_eq!(flavor(&r.kernel), "custom");
    }
}
