//! The result of a run the guest cut short: the kernel panicked, oopsed or
//! hung (or nolock-probe died) before nolock-probe wrote its report, but
//! after it had streamed progress (`run --stream`). `cargo xtask vm` builds
//! it from the last complete progress line and the console's findings; its
//! verdict fails and names both how the run ended and what the tool had
//! seen until then.

use serde::{Deserialize, Serialize};

use crate::{
    ConsoleReport, SCHEMA_VERSION, Verdict,
    kernel::Finding,
    progress::{FirstFailure, Progress},
};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CutShort {
    pub schema_version: u32,
    /// Always true: tells this document from a run's, a bench's or a stub.
    pub cut_short: bool,
    /// How the run ended.
    pub crash: Crash,
    /// The last complete progress line the guest streamed.
    pub last_progress: Progress,
    /// Complete progress lines that came in all.
    pub progress_lines: u64,
    pub verdict: Verdict,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub console: Option<ConsoleReport>,
}

/// How a run that wrote no report ended.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Crash {
    /// One sentence: the console's first finding, or how the guest stopped
    /// without one.
    pub what: String,
    /// The console's first finding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finding: Option<Finding>,
    /// The guest's uptime at that finding (its printk timestamp).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uptime_s: Option<f64>,
    /// Seconds into the stress of the last progress line's run, from the
    /// uptime that line carried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_s: Option<f64>,
}

impl Crash {
    /// How the guest stopped: its console's first finding with the
    /// finding's printk timestamp, else nolock-probe's exit status if the
    /// guest printed one; placed in the run of `last`.
    pub fn new(first: Option<(Finding, Option<f64>)>, exit: Option<i32>, last: &Progress) -> Crash {
        let (finding, uptime_s) = first.map_or((None, None), |(f, t)| (Some(f), t));
        let what = match (&finding, exit) {
            (Some(f), _) => format!("[{}] {}", f.category, f.line),
            (None, Some(rc)) => format!("nolock-probe exited with status {rc} without writing its result"),
            (None, None) => "the guest stopped with no report in its console".into(),
        };
        // To the millisecond: the clocks' difference carries float noise.
        let run_s = uptime_s
            .zip(last.uptime_s)
            .map(|(at, then)| ((last.elapsed_s + (at - then).max(0.0)) * 1e3).round() / 1e3);
        Crash { what, finding, uptime_s, run_s }
    }
}

impl CutShort {
    /// The document for a run whose last complete progress line was
    /// `last` (of `lines`), ended by `crash`; `logged` is the first failure
    /// the tool put in the kernel log, which reaches the console when the
    /// stream's last lines do not. The console is added after.
    pub fn new(last: Progress, lines: usize, crash: Crash, logged: Option<FirstFailure>) -> CutShort {
        let when = match (crash.run_s, crash.uptime_s) {
            (Some(run_s), Some(up)) => {
                format!("at {run_s:.1} s of {} s (guest uptime {up:.1} s)", last.duration_s)
            }
            _ => format!("after {:.0} s of {} s (its last progress line)", last.elapsed_s, last.duration_s),
        };
        let before = match (&last.first_failure, logged) {
            (Some(f), _) => format!("before it, at {:.0} s: {}", f.at_s, f.reason),
            (None, Some(f)) => format!(
                "before it, at {:.0} s: {} (from the kernel log: the stream's last line came before it)",
                f.at_s, f.reason
            ),
            (None, None) => format!("before it: no invariant had failed after {:.0} s", last.elapsed_s),
        };
        let verdict =
            Verdict { pass: false, reasons: vec![format!("cut short {when}: {}", crash.what), before] };
        CutShort {
            schema_version: SCHEMA_VERSION,
            cut_short: true,
            crash,
            last_progress: last,
            progress_lines: lines as u64,
            verdict,
            console: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use probe_common::Trigger;

    use super::*;
    use crate::testing::counters;

    fn last(first_failure: Option<FirstFailure>) -> Progress {
        Progress {
            schema_version: SCHEMA_VERSION,
            scenario: "default".into(),
            repeat: 1,
            elapsed_s: 10.0,
            duration_s: 60,
            uptime_s: Some(30.5),
            triggers: [(Trigger::Hrtimer, counters(100, 100, 0))].into(),
            in_flight: Some(12),
            first_failure,
        }
    }

    fn panic_line() -> Finding {
        Finding { category: "panic".into(), line: "Kernel panic - not syncing: sysrq triggered crash".into() }
    }

    #[test]
    fn the_verdict_names_the_crash_and_when_and_what_came_before() {
        let crash = Crash::new(Some((panic_line(), Some(31.25))), None, &last(None));
        assert_eq!(crash.run_s, Some(10.75));
        let c = CutShort::new(last(None), 10, crash.clone(), None);
        assert!(!c.verdict.pass);
        assert_eq!(
            c.verdict.reasons,
            [
                "cut short at 10.8 s of 60 s (guest uptime 31.2 s): [panic] Kernel panic - not syncing: sysrq \
                 triggered crash",
                "before it: no invariant had failed after 10 s",
            ]
        );
        let failed = FirstFailure { at_s: 7.0, reason: "premature free: 3 objects (hrtimer 3)".into() };
        let logged = FirstFailure { at_s: 10.2, reason: "double free: 2 calls (hrtimer 2)".into() };
        let c = CutShort::new(last(None), 10, crash, Some(logged.clone()));
        assert_eq!(
            c.verdict.reasons[1],
            "before it, at 10 s: double free: 2 calls (hrtimer 2) (from the kernel log: the stream's last line \
             came before it)"
        );
        // The stream's own failure came first, so it is the one named.
        let c = CutShort::new(
            last(Some(failed.clone())),
            10,
            Crash::new(None, Some(2), &last(Some(failed.clone()))),
            Some(logged),
        );
        assert_eq!(
            c.verdict.reasons,
            [
                "cut short after 10 s of 60 s (its last progress line): nolock-probe exited with status 2 \
                 without writing its result",
                "before it, at 7 s: premature free: 3 objects (hrtimer 3)",
            ]
        );
    }
}
