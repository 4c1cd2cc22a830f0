//! Latency distributions as the result has them: percentiles, the
//! histogram's non-empty buckets, per CPU.

use probe_common::hist;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
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

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Bucket {
    pub low_ns: u64,
    pub high_ns: u64,
    pub count: u64,
}

/// One stage of a path (or one bench call): over all CPUs, and per CPU.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StageReport {
    #[serde(flatten)]
    pub all: Distribution,
    /// The non-empty buckets of the histogram over all CPUs.
    pub histogram: Vec<Bucket>,
    pub per_cpu: Vec<CpuDistribution>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CpuDistribution {
    pub cpu: u32,
    #[serde(flatten)]
    pub dist: Distribution,
}

/// How long one kind of a trigger's calls took, over all CPUs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CallTimes {
    #[serde(flatten)]
    pub all: Distribution,
    pub histogram: Vec<Bucket>,
}

/// The histogram's layout, so the JSON can be read without this code.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistogramLayout {
    pub buckets_per_power_of_two: u32,
    pub lowest_resolved_ns: u64,
    pub highest_resolved_ns: u64,
    pub max_relative_width: f64,
}

impl Default for HistogramLayout {
    /// The layout of `probe_common::hist`, which the BPF side fills.
    fn default() -> Self {
        HistogramLayout {
            buckets_per_power_of_two: hist::SUB,
            lowest_resolved_ns: hist::bounds(1).0,
            highest_resolved_ns: hist::bounds(hist::BUCKETS - 1).0,
            max_relative_width: 1.0 / hist::SUB as f64,
        }
    }
}

/// 1234 -> "1.234us".
pub fn human_ns(ns: u64) -> String {
    let v = ns as f64;
    match ns {
        0..1_000 => format!("{ns}ns"),
        1_000..1_000_000 => format!("{:.3}us", v / 1e3),
        1_000_000..1_000_000_000 => format!("{:.3}ms", v / 1e6),
        _ => format!("{:.3}s", v / 1e9),
    }
}
