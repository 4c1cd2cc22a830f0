//! Latency distributions from the per-CPU histograms: percentiles within
//! one bucket of the truth, over all CPUs and per CPU.

use std::collections::BTreeMap;

use probe_common::{LatencyStats, Path, PathCounters, Stage, call_kind, hist};
use probe_result::{
    dist::{Bucket, CallTimes, CpuDistribution, Distribution, StageReport},
    run::PathReport,
};

use crate::bpf::maps::{CallRaw, LatencyRaw};

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

/// A trigger's call times by `call_kind` name, for the kinds that
/// occurred.
pub fn call_times(raw: &CallRaw) -> BTreeMap<String, CallTimes> {
    call_kind::NAMES
        .iter()
        .enumerate()
        .filter_map(|(kind, name)| {
            let r = slot_report(&raw.cpus, &raw.hist, &raw.stats, kind)?;
            Some((name.to_string(), CallTimes { all: r.all, histogram: r.histogram }))
        })
        .collect()
}

/// Per path that occurred, per stage: the distribution over all CPUs and
/// per CPU.
pub fn path_reports(raw: &LatencyRaw) -> Vec<PathReport> {
    let mut out = Vec::new();
    for path in Path::ALL {
        let mut counters = PathCounters::default();
        for per_cpu in &raw.paths {
            if let Some(c) = per_cpu.get(path as usize) {
                counters.merge(c);
            }
        }
        let mut stages = BTreeMap::new();
        for stage in Stage::ALL {
            let slot = probe_common::latency_slot(path as u32, stage as u32) as usize;
            if let Some(r) = slot_report(&raw.cpus, &raw.hist, &raw.stats, slot) {
                stages.insert(stage.name().to_string(), r);
            }
        }
        if counters.reclaimed > 0 || !stages.is_empty() {
            out.push(PathReport {
                path: path.name().to_string(),
                reclaimed: counters.reclaimed,
                premature: counters.premature,
                premature_after_call_rcu: counters.premature_after_call_rcu,
                batches: counters.batches,
                batch_objects: counters.batch_objects,
                gp_objects: counters.gp_objects,
                gp_seq_min: counters.gp_min,
                gp_seq_max: counters.gp_max,
                stages,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_cpu(samples: &[(Path, Stage, u64)]) -> LatencyRaw {
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
        LatencyRaw { cpus: vec![0], hist: vec![hist_v], stats: vec![stats], paths: vec![paths] }
    }

    #[test]
    fn percentiles_land_within_one_bucket_of_the_truth() {
        // 1..=1000 us: p50 is 500 us, p99 990 us.
        let samples: Vec<_> = (1..=1000).map(|i| (Path::SheafImmediate, Stage::Total, i * 1000)).collect();
        let reports = path_reports(&one_cpu(&samples));
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
        let r = path_reports(&one_cpu(&[
            (Path::Fallback, Stage::Total, 20_000_000),
            (Path::Fallback, Stage::Queued, 10_000),
            (Path::Fallback, Stage::Grace, 19_990_000),
        ]));
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].path, "fallback");
        assert_eq!(r[0].reclaimed, 1);
        assert_eq!(r[0].stages.keys().map(String::as_str).collect::<Vec<_>>(), ["grace", "queued", "total"]);
        assert_eq!(r[0].stages["total"].all.p50_ns, 20_000_000);
    }
}
