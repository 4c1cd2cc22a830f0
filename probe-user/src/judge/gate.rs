//! `nolock-probe compare BASE NEW`: per metric, the change and its spread,
//! and a gate that fails when a gated metric regresses beyond its relative
//! threshold and beyond the noise: the band the repeats' spread allows
//! (a two-sample t test at 0.5%, `noise::band`) and the noise floor of the
//! metric's kind. Without a spread to weigh a change against (a base of one
//! run, a bench's pooled percentiles, a path some repeats lack) a metric is
//! refused, with the reason; only failure counts (premature, lost) are
//! gated without one.

use anyhow::{Context, Result};
use probe_result::Document;

use super::{
    metrics::{self, Better, Metric},
    noise,
};

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

/// What the gate made of one metric.
#[derive(Debug, Clone, PartialEq)]
pub enum Gate {
    /// No threshold matches: shown, not gated.
    Ungated,
    /// Within its threshold, or within the noise.
    Ok,
    Regressed,
    /// A threshold matches but the change cannot be weighed; why.
    Refused(Refusal),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Refusal {
    /// A percentile with few samples beyond it, or a path missing, in some
    /// repeat of either run.
    FewSamples,
    /// The base is one run: its run-to-run noise is unknown.
    SingleRunBase,
    /// A bench's call percentiles pool all its samples.
    Pooled,
}

impl Refusal {
    /// The gate column's word.
    fn short(self) -> &'static str {
        match self {
            Refusal::FewSamples => "few samples",
            Refusal::SingleRunBase | Refusal::Pooled => "no spread",
        }
    }

    /// Why, in one line.
    pub fn why(self) -> String {
        match self {
            Refusal::FewSamples => format!(
                "few samples: a path missing, or fewer than {MIN_TAIL_SAMPLES} samples beyond the percentile, in \
                 some repeat of either run (one outlier, not a trend)"
            ),
            Refusal::SingleRunBase => {
                "no spread: the base is a single run, so how much runs differ is unknown \
                 and a change cannot be told from noise (make the base with `run --repeat 3`)"
                    .to_string()
            }
            Refusal::Pooled => "no spread: a bench's call percentiles pool all its samples (its rate, \
                 ops_per_s, is gated against the samples' spread)"
                .to_string(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub name: String,
    pub unit: &'static str,
    pub base: f64,
    pub new: f64,
    /// (new - base) / base; for a zero base, 0 or infinite.
    pub change: f64,
    /// The change the metric must exceed to count: the band the repeats'
    /// spread allows (`noise::band`) or the kind's floor, whichever is
    /// larger. None when there is no spread to say.
    pub noise: Option<f64>,
    pub threshold: Option<f64>,
    pub gate: Gate,
}

impl Row {
    pub fn regressed(&self) -> bool {
        self.gate == Gate::Regressed
    }

    /// For a stage latency, `path X, stage Y`; else the metric's name.
    pub fn subject(&self) -> String {
        match self.name.split('.').collect::<Vec<_>>().as_slice() {
            ["latency", path, stage, q] => {
                format!("path {path}, stage {stage} ({})", q.trim_end_matches("_ns"))
            }
            _ => self.name.clone(),
        }
    }
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
    let threshold = thresholds.iter().find(|(p, _)| matches(p, &b.name)).map(|(_, t)| *t);
    let floor = b.kind.floor();
    let noise = if b.kind.needs_spread() {
        noise::band(b.spread(), n.spread()).map(|band| band.max(floor))
    } else {
        // A failure count: healthy kernels have none, so any is real.
        Some(floor)
    };
    let refusal = refusal(b, n);
    let gate = match (threshold, refusal, noise) {
        (None, _, _) => Gate::Ungated,
        (Some(_), Some(r), _) => Gate::Refused(r),
        (Some(_), None, None) => Gate::Refused(Refusal::SingleRunBase),
        (Some(t), None, Some(noise)) if worse > t && delta.abs() > noise => Gate::Regressed,
        (Some(_), None, Some(_)) => Gate::Ok,
    };
    Row { name: b.name.clone(), unit: b.unit, base: b.value, new: n.value, change, noise, threshold, gate }
}

/// Why a metric cannot be gated, if it cannot.
fn refusal(b: &Metric, n: &Metric) -> Option<Refusal> {
    if !b.kind.needs_spread() {
        return None;
    }
    // A percentile with few samples beyond it is one outlier, not a trend;
    // a path that some repeats lack (fallbacks come in some runs only) has
    // no spread that stands for those runs.
    let short = |m: &Metric| m.tail_samples < MIN_TAIL_SAMPLES || m.runs < m.of_runs;
    if short(b) || short(n) {
        Some(Refusal::FewSamples)
    } else if b.pooled || n.pooled {
        Some(Refusal::Pooled)
    } else if b.runs < 2 {
        Some(Refusal::SingleRunBase)
    } else {
        None
    }
}

pub fn render(rows: &[Row]) -> String {
    let mut s = format!(
        "{:<48} {:>14} {:>14} {:>9} {:>12} {:>11}\n",
        "metric", "base", "new", "change", "± noise", "gate"
    );
    for r in rows {
        let gate = match (&r.gate, r.threshold) {
            (Gate::Regressed, _) => "REGRESSED".to_string(),
            (Gate::Refused(why), _) => why.short().to_string(),
            (Gate::Ok, Some(t)) => format!("ok ({:.0}%)", t * 100.0),
            (Gate::Ok | Gate::Ungated, _) => "-".to_string(),
        };
        let noise = r.noise.map_or("?".to_string(), |n| format!("{n:.1}"));
        s.push_str(&format!(
            "{:<48} {:>14.1} {:>14.1} {:>8.1}% {:>12} {:>11}\n",
            r.name,
            r.base,
            r.new,
            r.change * 100.0,
            noise,
            gate
        ));
    }
    s.push_str(&refusals(rows));
    s
}

/// One line per reason the gate refused metrics, naming them.
fn refusals(rows: &[Row]) -> String {
    let mut by_reason: Vec<(Refusal, Vec<&str>)> = Vec::new();
    for r in rows {
        let Gate::Refused(why) = r.gate else { continue };
        match by_reason.iter_mut().find(|(w, _)| *w == why) {
            Some((_, names)) => names.push(r.name.as_str()),
            None => by_reason.push((why, vec![r.name.as_str()])),
        }
    }
    by_reason.sort();
    by_reason.iter().map(|(why, names)| format!("not gated, {}: {}\n", why.why(), names.join(", "))).collect()
}

/// One line per regressed metric: what moved, by how much, against what.
pub fn describe_regressions(rows: &[Row]) -> String {
    rows.iter()
        .filter(|r| r.regressed())
        .map(|r| {
            format!(
                "regressed: {}: {:.1} -> {:.1} {} ({:+.0}%), beyond its {:.0}% threshold and the noise ± {:.1}\n",
                r.subject(),
                r.base,
                r.new,
                r.unit,
                r.change * 100.0,
                r.threshold.unwrap_or(0.0) * 100.0,
                r.noise.unwrap_or(0.0)
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use probe_result::{RunReport, run::PathReport};

    use super::*;
    use crate::{judge::metrics::tests::report, testing};

    /// One jiffy at HZ=250, the debug kernel's tick.
    const TICK_NS: u64 = 4_000_000;

    fn run(r: RunReport) -> Document {
        Document::Run(Box::new(r))
    }

    fn defaults() -> Vec<(String, f64)> {
        parse_thresholds(DEFAULT_THRESHOLDS).unwrap()
    }

    fn get<'a>(rows: &'a [Row], name: &str) -> &'a Row {
        rows.iter().find(|r| r.name == name).unwrap_or_else(|| panic!("no row {name}: {rows:?}"))
    }

    /// `report(calls, p99)` once per value, as the repeats of one run.
    fn repeated(p99s: &[u64]) -> RunReport {
        let mut r = report(1000, p99s[p99s.len() - 1]);
        r.repeats = p99s.iter().map(|&p| report(1000, p)).collect();
        r
    }

    /// Every run of `r`: the repeats, or `r` alone.
    fn each_run(r: &mut RunReport, f: impl Fn(usize, &mut RunReport)) {
        if r.repeats.is_empty() {
            f(0, r);
        } else {
            r.repeats.iter_mut().enumerate().for_each(|(i, x)| f(i, x));
        }
    }

    fn stage_mut<'a>(
        r: &'a mut RunReport,
        path: &str,
        stage: &str,
    ) -> &'a mut probe_result::dist::StageReport {
        let p = r.latency.paths.iter_mut().find(|p| p.path == path).unwrap();
        p.stages.get_mut(stage).unwrap()
    }

    /// Delays `path`'s `stage` by `ns` in every run: the median moves by it,
    /// and so does the total's.
    fn delay(r: &mut RunReport, path: &str, stage: &str, ns: u64) {
        each_run(r, |_, x| {
            stage_mut(x, path, stage).all.p50_ns += ns;
            stage_mut(x, path, "total").all.p50_ns += ns;
        });
    }

    /// The fallback path of baseline.json's first repeat (1,488 objects) in
    /// every run of `r`, its queued median the run's value of `queued_ns`.
    fn with_fallback(r: &mut RunReport, queued_ns: &[u64]) {
        let fallback: PathReport =
            testing::committed_run("baseline.json").repeats[0].latency.path("fallback").unwrap().clone();
        each_run(r, |i, x| {
            let mut f = fallback.clone();
            f.stages.get_mut("queued").unwrap().all.p50_ns = queued_ns[i % queued_ns.len()];
            x.latency.paths.retain(|p| p.path != "fallback");
            x.latency.paths.push(f);
        });
    }

    #[test]
    fn patterns_match_with_stars() {
        assert!(matches("latency.*.p50_ns", "latency.fallback.queued.p50_ns"));
        assert!(!matches("latency.*.p50_ns", "latency.fallback.grace.p99_ns"));
        assert!(matches("lost", "lost"));
        assert!(!matches("lost", "lost_x"));
    }

    #[test]
    fn the_default_thresholds_gate_every_stage_median_and_no_tail() {
        let t = defaults();
        assert!(t.iter().any(|(p, v)| p == "premature" && *v == 0.0));
        let gated = |name: &str| t.iter().any(|(p, _)| matches(p, name));
        for path in ["sheaf_immediate", "sheaf_deferred", "sheaf_flushed", "fallback"] {
            for stage in ["queued", "grace", "total"] {
                assert!(gated(&format!("latency.{path}.{stage}.p50_ns")), "{path} {stage}");
                assert!(!gated(&format!("latency.{path}.{stage}.p99_ns")), "{path} {stage}");
            }
        }
    }

    #[test]
    fn a_regression_beyond_threshold_and_noise_fires_the_gate() {
        let t = defaults();
        // Total medians 1.0, 1.05, 0.95 ms against 2.5, 2.6, 2.4 ms.
        let base = || run(repeated(&[2_000_000, 2_100_000, 1_900_000]));
        let rows = compare(&base(), &run(repeated(&[5_000_000, 5_200_000, 4_800_000])), &t);
        let p50 = get(&rows, "latency.fallback.total.p50_ns");
        assert_eq!(p50.gate, Gate::Regressed, "{p50:?}");
        assert!((p50.change - 1.5).abs() < 1e-9);
        // The same numbers: nothing regressed.
        assert!(compare(&base(), &base(), &t).iter().all(|r| !r.regressed()));
        // Faster is never a regression.
        let faster = run(repeated(&[1_000_000, 1_100_000, 900_000]));
        assert!(compare(&base(), &faster, &t).iter().all(|r| !r.regressed()));
        // Any premature free is one (threshold 0, base 0), single runs too.
        let mut bad = report(1000, 2_000_000);
        bad.totals.premature = 3;
        let rows = compare(&run(report(1000, 2_000_000)), &run(bad), &t);
        assert_eq!(get(&rows, "premature").gate, Gate::Regressed);
    }

    /// Two real repeated runs of one scenario (results/README.md says how
    /// they were made) pass the default gate, either way round, with their
    /// stage medians gated; the same base against them with a premature
    /// free in every repeat does not.
    #[test]
    fn two_committed_repeated_runs_pass_the_default_gate() {
        let (base, new) =
            (testing::committed_run("baseline.json"), testing::committed_run("vm-debug-repeat3.json"));
        assert!(base.repeats.len() >= 3, "baseline.json has its repeats");
        let t = defaults();
        for (b, n) in [(&base, &new), (&new, &base)] {
            let rows = compare(&run(b.clone()), &run(n.clone()), &t);
            let regressed: Vec<&Row> = rows.iter().filter(|r| r.regressed()).collect();
            assert!(regressed.is_empty(), "{regressed:?}");
            for stage in ["queued", "grace", "total"] {
                let r = get(&rows, &format!("latency.sheaf_deferred.{stage}.p50_ns"));
                assert_eq!(r.gate, Gate::Ok, "{r:?}");
            }
            // Fallbacks came in one repeat of vm-debug-repeat3.json only,
            // and four objects in two of baseline.json's.
            assert_eq!(get(&rows, "latency.fallback.queued.p50_ns").gate, Gate::Refused(Refusal::FewSamples));
        }

        let mut broken = new;
        broken.totals.premature = 1;
        for r in &mut broken.repeats {
            r.totals.premature = 1;
        }
        assert!(compare(&run(base), &run(broken), &t).iter().any(|r| r.name == "premature" && r.regressed()));
    }

    /// The false-alarm measurement (results/gate-false-alarms/summary.json):
    /// ten clean runs of `--repeat 3 --duration 10` on the healthy debug
    /// kernel, compared in five disjoint pairs, stay silent with their stage
    /// medians gated.
    #[test]
    fn five_clean_compares_stay_silent() {
        let t = defaults();
        for pair in 0..5 {
            let name = |i: usize| format!("gate-false-alarms/clean-{:02}.json", 2 * pair + i);
            let (base, new) = (testing::committed_run(&name(1)), testing::committed_run(&name(2)));
            assert_eq!((base.repeats.len(), new.repeats.len()), (3, 3), "{}", name(1));
            let rows = compare(&run(base), &run(new), &t);
            assert!(
                rows.iter().all(|r| !r.regressed()),
                "{} against {}:\n{}",
                name(1),
                name(2),
                render(&rows)
            );
            let gated = rows.iter().filter(|r| r.name.starts_with("latency.") && r.gate == Gate::Ok).count();
            assert!(gated >= 6, "{}: only {gated} stage medians gated:\n{}", name(1), render(&rows));
        }
    }

    /// The deferred stage one tick later (the irq_work that hands a full
    /// sheaf to call_rcu() runs a jiffy late) fires the gate, named by path
    /// and stage, against the run-to-run noise of two committed repeated
    /// runs.
    #[test]
    fn a_one_tick_shift_of_the_deferred_stage_fires_naming_path_and_stage() {
        let base = testing::committed_run("baseline.json");
        let mut new = testing::committed_run("vm-debug-repeat3.json");
        delay(&mut new, "sheaf_deferred", "queued", TICK_NS);
        let rows = compare(&run(base), &run(new), &defaults());
        let regressed: Vec<&str> = rows.iter().filter(|r| r.regressed()).map(|r| r.name.as_str()).collect();
        assert_eq!(regressed, ["latency.sheaf_deferred.queued.p50_ns"], "{}", render(&rows));
        let text = describe_regressions(&rows);
        assert!(text.contains("path sheaf_deferred, stage queued (p50)"), "{text}");
    }

    /// The fallback's queued stage (the irq_work until kvfree_call_rcu()),
    /// with the spread seen between healthy runs (53, 131 and 123 us: the
    /// committed runs with over 600 fallbacks), fires one tick later.
    #[test]
    fn a_one_tick_shift_of_the_fallback_queue_fires() {
        let healthy = [53_247, 131_071, 122_879];
        let mut base = testing::committed_run("vm-debug-repeat3.json");
        with_fallback(&mut base, &healthy);
        let mut new = base.clone();
        // The same healthy figures again (other runs, same noise): silent.
        let rows = compare(&run(base.clone()), &run(new.clone()), &defaults());
        assert_eq!(get(&rows, "latency.fallback.queued.p50_ns").gate, Gate::Ok);
        delay(&mut new, "fallback", "queued", TICK_NS);
        let rows = compare(&run(base), &run(new), &defaults());
        assert_eq!(get(&rows, "latency.fallback.queued.p50_ns").gate, Gate::Regressed, "{}", render(&rows));
        assert!(describe_regressions(&rows).contains("path fallback, stage queued (p50)"));
    }

    /// The figures, 37 us to 115 us (+211%), fire when the repeats
    /// agree to within 10%; with the healthy spread above, so small a shift
    /// is within the noise of three repeats, and the gate stays silent.
    #[test]
    fn the_fallback_queue_from_37_to_115_us() {
        let t = defaults();
        let (mut base, mut new) = (
            testing::committed_run("vm-debug-repeat3.json"),
            testing::committed_run("vm-debug-repeat3.json"),
        );
        with_fallback(&mut base, &[37_000, 34_000, 40_000]);
        with_fallback(&mut new, &[115_000, 105_000, 125_000]);
        let rows = compare(&run(base), &run(new), &t);
        assert_eq!(get(&rows, "latency.fallback.queued.p50_ns").gate, Gate::Regressed, "{}", render(&rows));

        let (mut base, mut new) = (
            testing::committed_run("vm-debug-repeat3.json"),
            testing::committed_run("vm-debug-repeat3.json"),
        );
        with_fallback(&mut base, &[53_247, 131_071, 122_879]);
        with_fallback(&mut new, &[131_071, 209_000, 201_000]);
        let rows = compare(&run(base), &run(new), &t);
        assert_eq!(get(&rows, "latency.fallback.queued.p50_ns").gate, Gate::Ok, "{}", render(&rows));
    }

    /// Two healthy single runs (20 s and 60 s): the base has no spread, so
    /// no latency or rate is gated, each refusal says why in one line, and
    /// the failure counts still are.
    #[test]
    fn a_single_run_base_refuses_and_says_why() {
        let (base, new) =
            (testing::committed_run("vm-debug-20s.json"), testing::committed_run("vm-debug-60s.json"));
        assert!(base.repeats.is_empty() && new.repeats.is_empty());
        let t = defaults();
        let rows = compare(&run(base.clone()), &run(new), &t);
        assert!(rows.iter().all(|r| !r.regressed()), "{}", render(&rows));
        for name in ["latency.sheaf_deferred.queued.p50_ns", "latency.fallback.queued.p50_ns", "calls_per_s"]
        {
            let r = get(&rows, name);
            assert_eq!((&r.gate, r.noise), (&Gate::Refused(Refusal::SingleRunBase), None), "{r:?}");
        }
        assert_eq!(get(&rows, "premature").gate, Gate::Ok);
        let text = render(&rows);
        let line: Vec<&str> = text.lines().filter(|l| l.contains("the base is a single run")).collect();
        assert_eq!(line.len(), 1, "{text}");
        assert!(line[0].contains("latency.sheaf_deferred.queued.p50_ns") && line[0].contains("--repeat"));

        // Even a tick's shift is not called a regression without a spread,
        let mut late = base.clone();
        delay(&mut late, "fallback", "queued", TICK_NS);
        let rows = compare(&run(base.clone()), &run(late), &t);
        assert!(rows.iter().all(|r| !r.regressed()), "{}", render(&rows));
        // but a premature free is.
        let mut bad = base.clone();
        bad.totals.premature = 1;
        assert!(get(&compare(&run(base), &run(bad), &t), "premature").regressed());
    }

    /// The case: one long grace period took sheaf p99 from 75 ms
    /// to 436 ms. Tails are shown, never gated.
    #[test]
    fn a_long_grace_period_in_the_tail_is_not_a_regression() {
        let rows = compare(
            &run(repeated(&[75_000_000, 80_000_000, 70_000_000])),
            &run(repeated(&[436_000_000, 80_000_000, 70_000_000])),
            &defaults(),
        );
        let p99 = get(&rows, "latency.fallback.total.p99_ns");
        assert_eq!(p99.gate, Gate::Ungated);
        assert!(rows.iter().all(|r| !r.regressed()), "{}", render(&rows));
    }

    #[test]
    fn a_percentile_of_few_samples_is_not_gated() {
        let t = vec![("latency.*".to_string(), 0.5)];
        let few = |p99s: &[u64]| {
            let mut r = repeated(p99s);
            each_run(&mut r, |_, x| stage_mut(x, "fallback", "total").all.count = 80);
            run(r)
        };
        // 80 samples: the p99 is the largest of them; 1.2 s against 81 ms.
        let rows = compare(&few(&[81_000_000; 3]), &few(&[1_200_000_000, 1_100_000_000, 1_300_000_000]), &t);
        let p99 = get(&rows, "latency.fallback.total.p99_ns");
        assert_eq!(p99.gate, Gate::Refused(Refusal::FewSamples), "{p99:?}");
        // Its median has 40 samples beyond it and is still gated.
        assert_eq!(get(&rows, "latency.fallback.total.p50_ns").gate, Gate::Regressed);
        // A path that one repeat lacks is not gated either.
        let mut gap = repeated(&[81_000_000; 3]);
        gap.repeats[1].latency.paths.clear();
        let rows = compare(&run(gap), &few(&[1_200_000_000; 3]), &t);
        assert_eq!(get(&rows, "latency.fallback.total.p50_ns").gate, Gate::Refused(Refusal::FewSamples));
    }

    #[test]
    fn noise_from_repeats_keeps_the_gate_quiet() {
        let t = vec![("latency.*.total.p50_ns".to_string(), 0.1)];
        // Means 1.0 ms and 1.25 ms (+25% > 10%), but the repeats spread by 0.5 ms.
        let rows = compare(
            &run(repeated(&[1_000_000, 2_000_000, 3_000_000])),
            &run(repeated(&[1_500_000, 2_500_000, 3_500_000])),
            &t,
        );
        assert!(rows.iter().all(|r| !r.regressed()), "{rows:?}");
        let rows = compare(
            &run(repeated(&[1_900_000, 2_000_000, 2_100_000])),
            &run(repeated(&[2_400_000, 2_500_000, 2_600_000])),
            &t,
        );
        assert!(rows.iter().any(|r| r.regressed()), "{rows:?}");
    }

    /// Repeats whose medians all fall in one histogram bucket have a
    /// spread of 0: the stage's floor still holds a change of less than
    /// 20 us back.
    #[test]
    fn identical_repeats_leave_the_floor() {
        let t = vec![("latency.*.p50_ns".to_string(), 0.1)];
        let rows = compare(&run(repeated(&[100_000; 3])), &run(repeated(&[130_000; 3])), &t);
        let r = get(&rows, "latency.fallback.total.p50_ns");
        assert_eq!((r.gate.clone(), r.noise), (Gate::Ok, Some(noise::STAGE_FLOOR_NS)), "{r:?}");
        let rows = compare(&run(repeated(&[100_000; 3])), &run(repeated(&[150_000; 3])), &t);
        assert!(get(&rows, "latency.fallback.total.p50_ns").regressed());
    }

    /// A bench's rate is gated against its samples' spread; its call
    /// percentiles pool every sample and are refused.
    #[test]
    fn a_bench_gates_its_rate_and_refuses_its_percentiles() {
        let b = testing::committed_bench("bench-debug.json");
        let doc = Document::Bench(Box::new(b));
        let rows = compare(&doc, &doc, &defaults());
        assert_eq!(get(&rows, "kfree_rcu_nolock.ops_per_s").gate, Gate::Ok);
        assert_eq!(get(&rows, "kfree_rcu_nolock.alloc.p50_ns").gate, Gate::Refused(Refusal::Pooled));
        assert!(render(&rows).contains("pool all its samples"));
    }

    /// A coverage run: `hit` of 100 lines of one function reached, the
    /// rest listed as unreached.
    fn covered(hit: u32) -> RunReport {
        use probe_result::coverage::{Coverage, FunctionCoverage, SourceLine};
        let mut r = report(1000, 1_000_000);
        let unreached =
            (hit + 1..=100).map(|line| SourceLine { line, text: format!("line {line}") }).collect();
        let f = FunctionCoverage {
            name: "kfree_nolock".into(),
            file: "mm/slub.c".into(),
            start_line: 1,
            end_line: 100,
            calls: Some(5),
            lines: 100,
            lines_hit: hit,
            unreached,
            ..Default::default()
        };
        r.coverage = Some(Coverage { lines: 100, lines_hit: hit, functions: vec![f], ..Default::default() });
        r
    }

    #[test]
    fn coverage_that_went_down_regresses_from_one_run() {
        // Exact counts: one run on each side is enough, and a line or two
        // (within 3%) is the rare branch that comes and goes.
        let rows = compare(&run(covered(95)), &run(covered(80)), &defaults());
        assert_eq!(get(&rows, "coverage.lines_pct").gate, Gate::Regressed);
        assert_eq!(get(&rows, "coverage.kfree_nolock.lines_pct").gate, Gate::Ungated);
        let rows = compare(&run(covered(95)), &run(covered(93)), &defaults());
        assert_eq!(get(&rows, "coverage.lines_pct").gate, Gate::Ok);
        let rows = compare(&run(covered(80)), &run(covered(95)), &defaults());
        assert_eq!(get(&rows, "coverage.lines_pct").gate, Gate::Ok);
        // And compare names the lines lost.
        let lost = covered(80).coverage.unwrap().lost_since(&covered(95).coverage.unwrap());
        assert_eq!(lost[0].1.iter().map(|l| l.line).collect::<Vec<_>>(), (81..=95).collect::<Vec<_>>());
    }
}
