//! What the crash test demands of the result a guest leaves when its
//! kernel dies mid-run: a run cut short, made from the progress it
//! streamed, whose verdict names the crash, when it came, and what the
//! tool had seen before it.

use probe_result::CutShort;

/// Every problem with the result of a run whose kernel crashed after it
/// streamed progress; empty means it shows what it must.
pub fn cut_short_problems(c: &CutShort) -> Vec<String> {
    let mut problems = Vec::new();
    if c.verdict.pass {
        problems.push("the verdict of a run cut short passes".into());
    }
    match &c.crash.finding {
        None => problems.push(format!("no console finding names the crash: {}", c.crash.what)),
        Some(f) if !matches!(f.category.as_str(), "panic" | "oops") => {
            problems.push(format!("the first console finding is no crash: [{}] {}", f.category, f.line));
        }
        Some(f) => {
            let named =
                c.verdict.reasons.first().is_some_and(|r| r.starts_with("cut short") && r.contains(&f.line));
            if !named {
                problems.push(format!("the first reason does not name the crash: {:?}", c.verdict.reasons));
            }
        }
    }
    if c.crash.run_s.is_none() {
        problems
            .push("the crash is not placed in the run (no printk timestamp or no uptime streamed)".into());
    }
    if !c.verdict.reasons.get(1).is_some_and(|r| r.starts_with("before it")) {
        problems
            .push(format!("no reason says what the tool had seen before the crash: {:?}", c.verdict.reasons));
    }
    let calls: u64 = c.last_progress.triggers.values().map(|t| t.calls).sum();
    if calls == 0 {
        problems.push(format!(
            "the last of {} progress lines (at {:.0} s) carries no calls",
            c.progress_lines, c.last_progress.elapsed_s
        ));
    }
    problems
}

#[cfg(test)]
mod tests {
    use probe_common::{Trigger, TriggerCounters};
    use probe_result::{ConsoleReport, Document, Progress, SCHEMA_VERSION, kernel::Finding};

    use super::*;

    fn cut(category: &str, calls: u64, uptime: Option<f64>) -> CutShort {
        let line = Progress {
            schema_version: SCHEMA_VERSION,
            scenario: "default".into(),
            repeat: 1,
            elapsed_s: 10.0,
            duration_s: 60,
            uptime_s: Some(30.0),
            triggers: [(Trigger::Syscall, TriggerCounters { calls, ..Default::default() })].into(),
            in_flight: Some(1),
            first_failure: None,
        };
        let f = Finding {
            category: category.into(),
            line: "Kernel panic - not syncing: sysrq triggered crash".into(),
        };
        let stream = serde_json::to_string(&line).unwrap() + "\n";
        match Document::stopped(&stream, Some((f, uptime)), None, ConsoleReport::default(), None) {
            Document::CutShort(c) => *c,
            other => panic!("not cut short: {other:?}"),
        }
    }

    /// The result a real crash left (`cargo xtask vm --crash-after 30 --
    /// run --duration 60`) shows what the crash test demands.
    #[test]
    fn the_committed_crash_passes() {
        let dir = std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo test sets CARGO_MANIFEST_DIR");
        let path = std::path::PathBuf::from(dir).join("../results/vm-debug-crash-cut-short.json");
        let Document::CutShort(c) = Document::read(&path).unwrap() else { panic!("not cut short") };
        assert_eq!(cut_short_problems(&c), Vec::<String>::new());
    }

    #[test]
    fn a_crash_with_streamed_counters_passes_and_the_rest_fire() {
        assert_eq!(cut_short_problems(&cut("panic", 5, Some(31.0))), Vec::<String>::new());
        assert_eq!(
            cut_short_problems(&cut("panic", 0, None)),
            [
                "the crash is not placed in the run (no printk timestamp or no uptime streamed)",
                "the last of 1 progress lines (at 10 s) carries no calls",
            ]
        );
        assert_eq!(
            cut_short_problems(&cut("warn", 5, Some(31.0))),
            [
                "the first console finding is no crash: [warn] Kernel panic - not syncing: sysrq triggered crash"
            ]
        );
    }
}
