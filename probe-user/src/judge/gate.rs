//! `nolock-probe compare BASE NEW`: per metric, the change and its spread,
//! and a gate that fails when a gated metric regresses beyond its
//! threshold and beyond the noise the repeats show.

use anyhow::{Context, Result};
use probe_result::Document;

use super::metrics::{self, Better, Metric};

/// Samples a latency percentile needs beyond it, in every repeat of both
/// runs, to be gated: p99 needs 1000 samples, p50 20.
const MIN_TAIL_SAMPLES: f64 = 10.0;

/// The repository's default thresholds.
pub const DEFAULT_THRESHOLDS: &str = include_str!("../../../results/thresholds.toml");

pub fn parse_thresholds(text: &str) -> Result<Vec<(String, f64)>> {
    let table: toml::Table = toml::from_str(text).context("the thresholds file is not valid TOML")?;
    table
        .into_iter()
        .map(|(k, v)| {
            let t = v.as_float().or_else(|| v.as_integer().map(|i| i as f64));
            t.map(|t| (k.clone(), t)).with_context(|| format!("threshold {k} is not a number"))
        })
        .collect()
}

/// `*` matches any run of characters.
fn matches(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let mut rest = name;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            let Some(r) = rest.strip_prefix(part) else { return false };
            rest = r;
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            let Some(pos) = rest.find(part) else { return false };
            rest = &rest[pos + part.len()..];
        }
    }
    true
}

#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub name: String,
    pub unit: &'static str,
    pub base: f64,
    pub new: f64,
    /// (new - base) / base; for a zero base, 0 or infinite.
    pub change: f64,
    /// Twice the combined standard deviation of the repeats.
    pub noise: f64,
    pub threshold: Option<f64>,
    /// Too few samples beyond the percentile to gate it.
    pub few_samples: bool,
    pub regressed: bool,
}

pub fn compare(base: &Document, new: &Document, thresholds: &[(String, f64)]) -> Vec<Row> {
    let new_metrics = metrics::of(new);
    let mut rows = Vec::new();
    for b in metrics::of(base) {
        let Some(n) = new_metrics.iter().find(|m| m.name == b.name) else { continue };
        rows.push(row(&b, n, thresholds));
    }
    rows
}

fn row(b: &Metric, n: &Metric, thresholds: &[(String, f64)]) -> Row {
    let delta = n.value - b.value;
    let change = if b.value != 0.0 {
        delta / b.value.abs()
    } else if delta == 0.0 {
        0.0
    } else {
        f64::INFINITY.copysign(delta)
    };
    let worse = match b.better {
        Better::Smaller => change,
        Better::Bigger => -change,
    };
    let noise = 2.0 * (b.stddev.powi(2) + n.stddev.powi(2)).sqrt();
    let threshold = thresholds.iter().find(|(p, _)| matches(p, &b.name)).map(|(_, t)| *t);
    // A percentile with few samples beyond it is one outlier, not a trend.
    let few_samples = b.tail_samples.min(n.tail_samples) < MIN_TAIL_SAMPLES;
    let regressed = !few_samples && threshold.is_some_and(|t| worse > t && delta.abs() > noise);
    Row {
        name: b.name.clone(),
        unit: b.unit,
        base: b.value,
        new: n.value,
        change,
        noise,
        threshold,
        few_samples,
        regressed,
    }
}

pub fn render(rows: &[Row]) -> String {
    let mut s = format!(
        "{:<48} {:>14} {:>14} {:>9} {:>12} {:>9}\n",
        "metric", "base", "new", "change", "± noise", "gate"
    );
    for r in rows {
        let gate = match (r.threshold, r.regressed) {
            (None, _) => "-".to_string(),
            (Some(_), true) => "REGRESSED".to_string(),
            (Some(_), false) if r.few_samples => "few samples".to_string(),
            (Some(t), false) => format!("ok ({:.0}%)", t * 100.0),
        };
        s.push_str(&format!(
            "{:<48} {:>14.1} {:>14.1} {:>8.1}% {:>12.1} {:>9}\n",
            r.name,
            r.base,
            r.new,
            r.change * 100.0,
            r.noise,
            gate
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use probe_result::RunReport;

    use super::*;
    use crate::{judge::metrics::tests::report, testing};

    fn run(r: RunReport) -> Document {
        Document::Run(Box::new(r))
    }

    #[test]
    fn patterns_match_with_stars() {
        assert!(matches("latency.*.total.p99_ns", "latency.fallback.total.p99_ns"));
        assert!(!matches("latency.*.total.p99_ns", "latency.fallback.grace.p99_ns"));
        assert!(matches("lost", "lost"));
        assert!(!matches("lost", "lost_x"));
    }

    #[test]
    fn the_default_thresholds_parse() {
        let t = parse_thresholds(DEFAULT_THRESHOLDS).unwrap();
        assert!(t.iter().any(|(p, v)| p == "premature" && *v == 0.0));
    }

    #[test]
    fn a_regression_beyond_threshold_and_noise_fires_the_gate() {
        let t = parse_thresholds(DEFAULT_THRESHOLDS).unwrap();
        let rows = compare(&run(report(1000, 2_000_000)), &run(report(1000, 5_000_000)), &t);
        let p99 = rows.iter().find(|r| r.name == "latency.fallback.total.p99_ns").unwrap();
        assert!(p99.regressed, "{p99:?}");
        assert!((p99.change - 1.5).abs() < 1e-9);
        // The same numbers: nothing regressed.
        assert!(
            compare(&run(report(1000, 2_000_000)), &run(report(1000, 2_000_000)), &t)
                .iter()
                .all(|r| !r.regressed)
        );
        // Faster is never a regression.
        assert!(
            compare(&run(report(1000, 2_000_000)), &run(report(1000, 1_000_000)), &t)
                .iter()
                .all(|r| !r.regressed)
        );
        // Any premature free is one (threshold 0, base 0).
        let mut bad = report(1000, 2_000_000);
        bad.totals.premature = 3;
        assert!(
            compare(&run(report(1000, 2_000_000)), &run(bad), &t)
                .iter()
                .any(|r| r.name == "premature" && r.regressed)
        );
    }

    /// Two real repeated runs of one scenario (results/README.md says how
    /// they were made) pass the default gate; the same base against them with
    /// a premature free in every repeat does not.
    #[test]
    fn two_committed_repeated_runs_pass_the_default_gate() {
        let (base, new) =
            (testing::committed_run("baseline.json"), testing::committed_run("vm-debug-repeat3.json"));
        assert!(base.repeats.len() >= 3, "baseline.json has its repeats");
        let t = parse_thresholds(DEFAULT_THRESHOLDS).unwrap();
        let rows = compare(&run(base.clone()), &run(new.clone()), &t);
        assert!(rows.iter().filter(|r| r.threshold.is_some()).count() >= 4, "{rows:?}");
        let regressed: Vec<&Row> = rows.iter().filter(|r| r.regressed).collect();
        assert!(regressed.is_empty(), "{regressed:?}");

        let mut broken = new;
        broken.totals.premature = 1;
        for r in &mut broken.repeats {
            r.totals.premature = 1;
        }
        assert!(compare(&run(base), &run(broken), &t).iter().any(|r| r.name == "premature" && r.regressed));
    }

    #[test]
    fn a_percentile_of_few_samples_is_not_gated() {
        let t = parse_thresholds(DEFAULT_THRESHOLDS).unwrap();
        let few = |p99: u64| {
            let mut r = report(1000, p99);
            r.latency.paths[0].stages.get_mut("total").unwrap().all.count = 80;
            run(r)
        };
        // 80 samples: the p99 is the largest of them; 1.2 s against 81 ms.
        let rows = compare(&few(81_000_000), &few(1_200_000_000), &t);
        let p99 = rows.iter().find(|r| r.name == "latency.fallback.total.p99_ns").unwrap();
        assert!(p99.few_samples && !p99.regressed, "{p99:?}");
        // Its median has 40 samples beyond it and is still gated.
        let p50 = rows.iter().find(|r| r.name == "latency.fallback.total.p50_ns").unwrap();
        assert!(!p50.few_samples && p50.regressed, "{p50:?}");
    }

    #[test]
    fn noise_from_repeats_keeps_the_gate_quiet() {
        let t = vec![("latency.*.total.p99_ns".to_string(), 0.1)];
        let noisy = |a: u64, b: u64| {
            let mut r = report(1000, (a + b) / 2);
            r.repeats = vec![report(1000, a), report(1000, b)];
            run(r)
        };
        // Means 2.0 ms and 2.5 ms (+25% > 10%), but the repeats spread by 2 ms.
        let rows = compare(&noisy(1_000_000, 3_000_000), &noisy(1_500_000, 3_500_000), &t);
        assert!(rows.iter().all(|r| !r.regressed), "{rows:?}");
        let rows = compare(&noisy(1_900_000, 2_100_000), &noisy(2_400_000, 2_600_000), &t);
        assert!(rows.iter().any(|r| r.regressed), "{rows:?}");
    }
}
