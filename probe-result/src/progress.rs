//! The progress a run streams while it runs (`nolock-probe run --stream
//! PATH`): one JSON line a second with the counters so far and the first
//! live invariant that failed. It is evidence kept outside the machine
//! under test: when the kernel dies mid-run, the last complete line is
//! what the tool had seen, and `cargo xtask vm` builds a cut-short result
//! from it.

use std::collections::BTreeMap;

use probe_common::{Trigger, TriggerCounters};
use serde::{Deserialize, Serialize};

use crate::checks;

/// One streamed line.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// The result schema version the line belongs to ([`crate::SCHEMA_VERSION`]).
    pub schema_version: u32,
    /// The scenario's name, as the result would file it.
    pub scenario: String,
    /// Which run of `--repeat N` this is, from 1.
    pub repeat: u32,
    /// Seconds since the stress of this run started, and how long it is
    /// planned to go on.
    pub elapsed_s: f64,
    pub duration_s: u64,
    /// The kernel's boot-time clock when the line was made (CLOCK_BOOTTIME,
    /// the clock of the console's printk timestamps): places a console line
    /// in the run. None where it could not be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uptime_s: Option<f64>,
    /// Each trigger's counters so far, summed over the CPUs; a line leaves
    /// out those that are zero ([`sparse`]).
    #[serde(with = "sparse")]
    pub triggers: BTreeMap<Trigger, TriggerCounters>,
    /// Objects handed to kfree_rcu_nolock() and not yet seen reclaimed
    /// (untracked ones left out); None without following (`--no-follow`).
    pub in_flight: Option<u64>,
    /// The first live invariant that failed, latched when first seen: it
    /// stays in every later line, also of later repeats.
    pub first_failure: Option<FirstFailure>,
}

/// A live invariant that failed, and when.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FirstFailure {
    /// Seconds into the stress of the run it was seen in.
    pub at_s: f64,
    pub reason: String,
}

/// What a first failure's line in the kernel log starts with.
const LOG_PREFIX: &str = "nolock-probe: first failure at ";

impl FirstFailure {
    /// The failure as one line for the kernel log (/dev/kmsg). The kernel
    /// flushes its log to the console when it panics, where a stream port's
    /// pending bytes are lost: the line gets out even when the kernel dies
    /// within milliseconds of the violation the tool caught.
    pub fn log_line(&self) -> String {
        format!("{LOG_PREFIX}{:.3} s: {}", self.at_s, self.reason)
    }

    /// The failure a console line holds, if it is one of [`log_line`]'s
    /// (with or without the kernel's timestamp before it).
    ///
    /// [`log_line`]: FirstFailure::log_line
    pub fn from_log_line(line: &str) -> Option<FirstFailure> {
        let rest = &line[line.find(LOG_PREFIX)? + LOG_PREFIX.len()..];
        let (at, reason) = rest.split_once(" s: ")?;
        Some(FirstFailure { at_s: at.trim().parse().ok()?, reason: reason.trim_end().to_string() })
    }
}

/// Makes the lines of one stream, latching the first failure across runs.
#[derive(Debug, Clone, Default)]
pub struct Latch {
    first_failure: Option<FirstFailure>,
}

impl Latch {
    /// The line for counters `triggers` seen `elapsed_s` into the stress;
    /// `fresh` is true when this line is the first to show a failure (the
    /// caller says so once, where a person reads).
    pub fn line(&mut self, mut p: Progress) -> (Progress, bool) {
        let fresh = self.first_failure.is_none()
            && match checks::live(&p.triggers) {
                Some(reason) => {
                    self.first_failure = Some(FirstFailure { at_s: p.elapsed_s, reason });
                    true
                }
                None => false,
            };
        p.first_failure = self.first_failure.clone();
        (p, fresh)
    }
}

/// A line's counters without their zeros, which are most of them in a run
/// of many triggers: the line goes through a serial port in the VM, which
/// the loader pays for byte by byte (a 10-s `all` run spent 0.30 s of its
/// CPU on output with every counter written). Read back, a counter that is
/// not there is zero.
pub mod sparse {
    use std::collections::BTreeMap;

    use probe_common::{Trigger, TriggerCounters};
    use serde::{Deserialize, Deserializer, Serializer, de, ser, ser::SerializeMap};
    use serde_json::{Map, Value};

    fn is_zero(v: &Value) -> bool {
        match v {
            Value::Number(n) => n.as_u64() == Some(0),
            Value::Object(o) => o.values().all(is_zero),
            _ => false,
        }
    }

    pub fn serialize<S: Serializer>(t: &BTreeMap<Trigger, TriggerCounters>, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(t.len()))?;
        for (trigger, counters) in t {
            let mut v = serde_json::to_value(counters).map_err(ser::Error::custom)?;
            if let Value::Object(o) = &mut v {
                o.retain(|_, x| !is_zero(x));
            }
            map.serialize_entry(trigger, &v)?;
        }
        map.end()
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<Trigger, TriggerCounters>, D::Error> {
        let given = BTreeMap::<Trigger, Map<String, Value>>::deserialize(d)?;
        let zero = serde_json::to_value(TriggerCounters::default()).map_err(de::Error::custom)?;
        given
            .into_iter()
            .map(|(trigger, counters)| {
                let mut full = zero.clone();
                if let Value::Object(o) = &mut full {
                    o.extend(counters);
                }
                Ok((trigger, serde_json::from_value(full).map_err(de::Error::custom)?))
            })
            .collect()
    }
}

/// The last complete line of a stream that parses as progress, and how
/// many did. A line cut off by a crash, or noise on the port, is skipped.
pub fn last_complete(stream: &str) -> Option<(Progress, usize)> {
    let mut parsed = stream
        .lines()
        .map(|l| l.trim_end_matches('\r'))
        .filter_map(|l| serde_json::from_str::<Progress>(l).ok());
    let first = parsed.next()?;
    Some(parsed.fold((first, 1), |(_, n), p| (p, n + 1)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::counters;

    fn progress(elapsed_s: f64, calls: u64, premature: u64) -> Progress {
        let mut c = counters(calls, calls, 0);
        c.premature = premature;
        Progress {
            schema_version: crate::SCHEMA_VERSION,
            scenario: "default".into(),
            repeat: 1,
            elapsed_s,
            duration_s: 60,
            uptime_s: Some(20.0 + elapsed_s),
            triggers: [(Trigger::Hrtimer, c)].into(),
            in_flight: Some(3),
            first_failure: None,
        }
    }

    #[test]
    fn a_line_leaves_its_zeros_out_and_reads_back_whole() {
        let mut p = progress(2.0, 10, 0);
        p.triggers.insert(Trigger::Nmi, TriggerCounters::default());
        let line = serde_json::to_string(&p).unwrap();
        assert!(line.contains(r#""nmi":{}"#), "{line}");
        assert!(line.contains(r#""hrtimer":{"alloc_ctx":{"hardirq":10,"nmi":0,"softirq":0,"task":0},"calls":10,"freed_rcu":10,"sheaf":10}"#), "{line}");
        assert_eq!(serde_json::from_str::<Progress>(&line).unwrap(), p);
    }

    #[test]
    fn a_first_failure_goes_through_the_kernel_log_and_back() {
        let f = FirstFailure { at_s: 0.0291, reason: "double free: 3 kfree_rcu_nolock() calls: x".into() };
        let line = format!("[    9.987654] {}", f.log_line());
        assert_eq!(
            FirstFailure::from_log_line(&line),
            Some(FirstFailure { at_s: 0.029, reason: f.reason.clone() })
        );
        assert_eq!(FirstFailure::from_log_line("[ 1.0] nolock-probe: 3 triggers attached"), None);
        assert_eq!(FirstFailure::from_log_line("nolock-probe: first failure at soon s: x"), None);
    }

    #[test]
    fn the_first_failure_is_latched() {
        let mut latch = Latch::default();
        let (p, fresh) = latch.line(progress(1.0, 10, 0));
        assert!(!fresh && p.first_failure.is_none());
        let (p, fresh) = latch.line(progress(2.0, 20, 1));
        assert!(fresh);
        let first = p.first_failure.clone().unwrap();
        assert_eq!(first.at_s, 2.0);
        assert!(first.reason.starts_with("premature free:"), "{}", first.reason);
        // Still there, unchanged, when the counters no longer show it (a
        // later repeat starts from zero).
        let (p, fresh) = latch.line(progress(1.0, 5, 0));
        assert!(!fresh);
        assert_eq!(p.first_failure, Some(first));
    }

    #[test]
    fn the_last_complete_line_is_found_and_a_cut_line_skipped() {
        let mut stream = String::new();
        for s in 1..=3u32 {
            stream += &serde_json::to_string(&progress(f64::from(s), 10 * u64::from(s), 0)).unwrap();
            stream += "\r\n";
        }
        let cut = serde_json::to_string(&progress(4.0, 40, 0)).unwrap();
        stream += &cut[..cut.len() / 2];
        let (last, n) = last_complete(&stream).unwrap();
        assert_eq!((last.elapsed_s, n), (3.0, 3));
        assert_eq!(last.triggers[&Trigger::Hrtimer].calls, 30);
        assert!(last_complete("").is_none());
        assert!(last_complete("garbage\n{\"x\": 1}\n").is_none());
    }

    #[test]
    fn a_line_reads_back_as_written() {
        let (p, _) = Latch::default().line(progress(2.0, 20, 1));
        let text = serde_json::to_string(&p).unwrap();
        assert!(!text.contains('\n'));
        assert_eq!(serde_json::from_str::<Progress>(&text).unwrap(), p);
    }
}
