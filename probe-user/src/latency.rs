//! Latency distributions from the per-CPU histograms: percentiles for the
//! JSON and bpftrace-style histograms for the terminal.

use std::collections::BTreeMap;

use probe_common::{LatencyStats, Path, PathCounters, Stage, call_kind, hist};
use serde::{Deserialize, Serialize};

/// Raw per-CPU data as read from the maps, indexed like them.
pub struct Raw {
    pub cpus: Vec<u32>,
    /// Per CPU (same order as `cpus`): `HIST` values.
    pub hist: Vec<Vec<u64>>,
    /// Per CPU: `LATENCY` values.
    pub stats: Vec<Vec<LatencyStats>>,
    /// Per CPU: `PATH_COUNTERS` values.
    pub paths: Vec<Vec<PathCounters>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Distribution {
    pub count: u64,
    pub min_ns: u64,
    pub p50_ns: u64,
    pub p90_ns: u64,
    pub p99_ns: u64,
    pub p999_ns: u64,
    pub max_ns: u64,
    pub mean_ns: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Bucket {
    pub low_ns: u64,
    pub high_ns: u64,
    pub count: u64,
}

#[derive(Debug, Serialize)]
pub struct StageReport {
    #[serde(flatten)]
    pub all: Distribution,
    /// The non-empty buckets of the histogram over all CPUs.
    pub histogram: Vec<Bucket>,
    pub per_cpu: Vec<CpuDistribution>,
}

#[derive(Debug, Serialize)]
pub struct CpuDistribution {
    pub cpu: u32,
    #[serde(flatten)]
    pub dist: Distribution,
}

#[derive(Debug, Serialize)]
pub struct PathReport {
    pub path: &'static str,
    pub reclaimed: u64,
    pub premature: u64,
    /// Premature objects freed after their sheaf's call_rcu().
    pub premature_after_call_rcu: u64,
    /// By stage name: total, queued, grace.
    pub stages: BTreeMap<&'static str, StageReport>,
}

/// The histogram's layout, so the JSON can be read without this code.
#[derive(Debug, Serialize)]
pub struct HistogramLayout {
    pub buckets_per_power_of_two: u32,
    pub lowest_resolved_ns: u64,
    pub highest_resolved_ns: u64,
    pub max_relative_width: f64,
}

impl HistogramLayout {
    pub fn this() -> Self {
        HistogramLayout {
            buckets_per_power_of_two: hist::SUB,
            lowest_resolved_ns: hist::bounds(1).0,
            highest_resolved_ns: hist::bounds(hist::BUCKETS - 1).0,
            max_relative_width: 1.0 / hist::SUB as f64,
        }
    }
}

/// Percentile `q` (0..1) of a histogram: the upper bound of the bucket that
/// holds it, kept within the exact min and max.
pub fn percentile(buckets: &[u64], q: f64, min: u64, max: u64) -> u64 {
    let total: u64 = buckets.iter().sum();
    if total == 0 {
        return 0;
    }
    let rank = ((q * total as f64).ceil() as u64).max(1);
    let mut seen = 0;
    for (i, n) in buckets.iter().enumerate() {
        seen += n;
        if seen >= rank {
            let high = hist::bounds(i as u32).1.saturating_sub(1);
            return high.clamp(min, max);
        }
    }
    max
}

pub fn distribution(buckets: &[u64], stats: &LatencyStats) -> Distribution {
    let (min, max) = (stats.min_ns, stats.max_ns);
    Distribution {
        count: stats.count,
        min_ns: min,
        p50_ns: percentile(buckets, 0.50, min, max),
        p90_ns: percentile(buckets, 0.90, min, max),
        p99_ns: percentile(buckets, 0.99, min, max),
        p999_ns: percentile(buckets, 0.999, min, max),
        max_ns: max,
        mean_ns: stats.sum_ns.checked_div(stats.count).unwrap_or(0),
    }
}

/// The distribution of histogram slot `slot` (`hist::BUCKETS` values of
/// each CPU's `hist`, one value of its `stats`) over all CPUs and per CPU,
/// or None without a sample. `hist` and `stats` are per CPU, in the order
/// of `cpus`.
pub fn slot_report(
    cpus: &[u32],
    hist: &[Vec<u64>],
    stats: &[Vec<LatencyStats>],
    slot: usize,
) -> Option<StageReport> {
    let range = slot * hist::BUCKETS as usize..(slot + 1) * hist::BUCKETS as usize;
    let mut all_hist = vec![0u64; hist::BUCKETS as usize];
    let mut all_stats = LatencyStats::default();
    let mut per_cpu = Vec::new();
    for (i, &cpu) in cpus.iter().enumerate() {
        let h = hist.get(i).and_then(|h| h.get(range.clone())).unwrap_or(&[]);
        let s = stats.get(i).and_then(|s| s.get(slot)).copied().unwrap_or_default();
        for (a, b) in all_hist.iter_mut().zip(h) {
            *a += b;
        }
        all_stats.merge(&s);
        if s.count > 0 {
            per_cpu.push(CpuDistribution { cpu, dist: distribution(h, &s) });
        }
    }
    if all_stats.count == 0 {
        return None;
    }
    let histogram = all_hist
        .iter()
        .enumerate()
        .filter(|(_, n)| **n > 0)
        .map(|(b, n)| {
            let (low_ns, high_ns) = hist::bounds(b as u32);
            Bucket { low_ns, high_ns, count: *n }
        })
        .collect();
    Some(StageReport { all: distribution(&all_hist, &all_stats), histogram, per_cpu })
}

/// How long one kind of a trigger's calls took, over all CPUs.
#[derive(Debug, Serialize)]
pub struct CallTimes {
    #[serde(flatten)]
    pub all: Distribution,
    pub histogram: Vec<Bucket>,
}

/// A trigger's call times by `call_kind` name, for the kinds that
/// occurred; `hist` and `stats` are per CPU in the order of `cpus`, with
/// the trigger's kinds at slots 0..`call_kind::COUNT`.
pub fn call_times(
    cpus: &[u32],
    hist: &[Vec<u64>],
    stats: &[Vec<LatencyStats>],
) -> BTreeMap<&'static str, CallTimes> {
    call_kind::NAMES
        .iter()
        .enumerate()
        .filter_map(|(kind, name)| {
            let r = slot_report(cpus, hist, stats, kind)?;
            Some((*name, CallTimes { all: r.all, histogram: r.histogram }))
        })
        .collect()
}

/// Per path that occurred, per stage: the distribution over all CPUs and
/// per CPU.
pub fn reports(raw: &Raw) -> Vec<PathReport> {
    let mut out = Vec::new();
    for path in Path::ALL {
        let mut counters = PathCounters::default();
        for per_cpu in &raw.paths {
            if let Some(c) = per_cpu.get(path as usize) {
                counters.reclaimed += c.reclaimed;
                counters.premature += c.premature;
                counters.premature_after_call_rcu += c.premature_after_call_rcu;
            }
        }
        let mut stages = BTreeMap::new();
        for stage in Stage::ALL {
            let slot = probe_common::latency_slot(path as u32, stage as u32) as usize;
            if let Some(r) = slot_report(&raw.cpus, &raw.hist, &raw.stats, slot) {
                stages.insert(stage.name(), r);
            }
        }
        if counters.reclaimed > 0 || !stages.is_empty() {
            out.push(PathReport {
                path: path.name(),
                reclaimed: counters.reclaimed,
                premature: counters.premature,
                premature_after_call_rcu: counters.premature_after_call_rcu,
                stages,
            });
        }
    }
    out
}

/// 1234 -> "1.23us".
pub fn human_ns(ns: u64) -> String {
    let v = ns as f64;
    match ns {
        0..1_000 => format!("{ns}ns"),
        1_000..1_000_000 => format!("{:.3}us", v / 1e3),
        1_000_000..1_000_000_000 => format!("{:.3}ms", v / 1e6),
        _ => format!("{:.3}s", v / 1e9),
    }
}

/// [`render()`] of a distribution as the JSON has it (a stage, a call
/// time, a bench call): None if `v` is not one.
pub fn render_json(title: &str, v: &serde_json::Value) -> Option<String> {
    let all: Distribution = serde_json::from_value(v.clone()).ok()?;
    let histogram: Vec<Bucket> = serde_json::from_value(v["histogram"].clone()).ok()?;
    Some(render(title, &all, &histogram))
}

/// bpftrace-style histogram of one stage: one row per power of two (the
/// JSON keeps the finer buckets), from the first to the last non-empty row.
pub fn render(title: &str, all: &Distribution, histogram: &[Bucket]) -> String {
    const WIDTH: u64 = 50;
    let mut s = format!(
        "@{title}: count {} p50 {} p99 {} max {}\n",
        all.count,
        human_ns(all.p50_ns),
        human_ns(all.p99_ns),
        human_ns(all.max_ns)
    );
    // Rows keyed by their lower bound: a power of two, or 0 below 64 ns.
    let mut rows: BTreeMap<u64, u64> = BTreeMap::new();
    for b in histogram {
        let low = if b.low_ns == 0 { 0 } else { 1u64 << hist::msb(b.low_ns) };
        *rows.entry(low).or_default() += b.count;
    }
    let peak = rows.values().copied().max().unwrap_or(1).max(1);
    for (&low, &count) in &rows {
        let high = match low {
            0 => human_ns(hist::bounds(0).1),
            l if l >= 1 << hist::MAX_POW => "inf".to_string(),
            l => human_ns(l * 2),
        };
        let bar = "@".repeat((count * WIDTH).div_ceil(peak) as usize);
        s.push_str(&format!("[{:>9}, {:>9}) {:>9} |{:<50}|\n", human_ns(low), high, count, bar));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_cpu(samples: &[(Path, Stage, u64)]) -> Raw {
        let mut hist_v = vec![0u64; Path::COUNT * Stage::COUNT * hist::BUCKETS as usize];
        let mut stats = vec![LatencyStats::default(); Path::COUNT * Stage::COUNT];
        let mut paths = vec![PathCounters::default(); Path::COUNT];
        for &(p, st, ns) in samples {
            let slot = probe_common::latency_slot(p as u32, st as u32) as usize;
            hist_v[slot * hist::BUCKETS as usize + hist::bucket(ns) as usize] += 1;
            let s = &mut stats[slot];
            s.min_ns = if s.count == 0 { ns } else { s.min_ns.min(ns) };
            s.max_ns = s.max_ns.max(ns);
            s.count += 1;
            s.sum_ns += ns;
            if st == Stage::Total {
                paths[p as usize].reclaimed += 1;
            }
        }
        Raw { cpus: vec![0], hist: vec![hist_v], stats: vec![stats], paths: vec![paths] }
    }

    #[test]
    fn percentiles_land_within_one_bucket_of_the_truth() {
        // 1..=1000 us: p50 is 500 us, p99 990 us.
        let samples: Vec<_> = (1..=1000).map(|i| (Path::SheafImmediate, Stage::Total, i * 1000)).collect();
        let reports = reports(&one_cpu(&samples));
        let d = &reports[0].stages["total"].all;
        assert_eq!(d.count, 1000);
        assert_eq!((d.min_ns, d.max_ns), (1000, 1_000_000));
        for (got, want) in [(d.p50_ns, 500_000), (d.p90_ns, 900_000), (d.p99_ns, 990_000)] {
            assert!(got >= want && got as f64 <= want as f64 * 1.125, "{got} vs {want}");
        }
        assert_eq!(d.mean_ns, 500_500);
    }

    #[test]
    fn only_paths_and_stages_that_occurred_are_reported() {
        let r = reports(&one_cpu(&[
            (Path::Fallback, Stage::Total, 20_000_000),
            (Path::Fallback, Stage::Queued, 10_000),
            (Path::Fallback, Stage::Grace, 19_990_000),
        ]));
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].path, "fallback");
        assert_eq!(r[0].reclaimed, 1);
        assert_eq!(r[0].stages.keys().copied().collect::<Vec<_>>(), ["grace", "queued", "total"]);
        let total = &r[0].stages["total"];
        let text = render("fallback_total", &total.all, &total.histogram);
        assert!(text.starts_with("@fallback_total: count 1 p50 20.000ms"), "{text}");
        assert!(text.contains("|@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|"), "{text}");
    }
}
