//! How well kfree_rcu_nolock() batched what it freed, as rcuscale reports
//! batches and memory footprint: RCU callbacks per object, grace periods
//! per second, objects per grace period, and the memory that waited in
//! flight.

use serde::{Deserialize, Serialize};

use crate::run::{InFlightReport, PathReport};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Batching {
    /// Per path that reclaimed objects.
    pub paths: Vec<PathBatching>,
    /// Normal grace periods between the smallest and the largest cookie of
    /// the triggers' objects that filled a sheaf (expedited ones advance
    /// another counter and are not in it); 0 when no cookie was read.
    pub grace_periods: u64,
    pub grace_periods_per_s: f64,
    /// Objects reclaimed, all paths, per grace period.
    pub objects_per_grace_period: f64,
    /// The slab object size of the run's objects: the kmalloc size class
    /// of each planned payload plus the header, averaged (the triggers pick
    /// a size at random per call).
    pub object_bytes: f64,
    /// Objects in flight (sampled once a second) times `object_bytes`.
    pub in_flight_bytes_peak: u64,
    pub in_flight_bytes_mean: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PathBatching {
    pub path: String,
    /// The triggers' objects reclaimed on the path.
    pub objects: u64,
    /// RCU callbacks queued on the path: rcu sheaves of the triggers'
    /// caches handed to call_rcu(), one callback each. None on the fallback
    /// path, whose kvfree_rcu batches are not counted.
    pub callbacks: Option<u64>,
    /// Callbacks per object freed through them (every object in those
    /// sheaves, the triggers' and everyone else's): the sheaf's promise is
    /// one callback per sheaf, so one over the sheaf's capacity when full.
    pub callbacks_per_object: Option<f64>,
    /// Objects per callback: how full the sheaves were when queued.
    pub objects_per_callback: Option<f64>,
    /// `objects` over the run's grace periods.
    pub objects_per_grace_period: f64,
    /// Objects of this path in flight on average, by Little's law: the
    /// reclaim rate times the mean time from kfree_rcu_nolock() to reclaim.
    pub mean_in_flight: f64,
}

impl Batching {
    /// From the reclaim observers' per-path counts over `elapsed_s`.
    pub fn new(
        paths: &[PathReport],
        in_flight: &InFlightReport,
        elapsed_s: f64,
        object_bytes: f64,
    ) -> Batching {
        let with_cookies: Vec<&PathReport> = paths.iter().filter(|p| p.gp_objects > 0).collect();
        let grace_periods = match (
            with_cookies.iter().map(|p| p.gp_seq_min).min(),
            with_cookies.iter().map(|p| p.gp_seq_max).max(),
        ) {
            (Some(lo), Some(hi)) => (hi.wrapping_sub(lo) / probe_common::GP_SEQ_STEP).max(0) as u64,
            _ => 0,
        };
        let per = |n: f64, d: f64| if d > 0.0 { n / d } else { 0.0 };
        let reclaimed: u64 = paths.iter().map(|p| p.reclaimed).sum();
        let samples = &in_flight.per_second;
        let mean_objects = per(samples.iter().sum::<u64>() as f64, samples.len() as f64);
        Batching {
            paths: paths
                .iter()
                .filter(|p| p.reclaimed > 0)
                .map(|p| {
                    let mean_total_ns = p.stages.get("total").map_or(0.0, |s| s.all.mean_ns as f64);
                    let counted = p.batches > 0;
                    PathBatching {
                        path: p.path.clone(),
                        objects: p.reclaimed,
                        callbacks: counted.then_some(p.batches),
                        callbacks_per_object: counted.then(|| per(p.batches as f64, p.batch_objects as f64)),
                        objects_per_callback: counted.then(|| per(p.batch_objects as f64, p.batches as f64)),
                        objects_per_grace_period: per(p.reclaimed as f64, grace_periods as f64),
                        mean_in_flight: per(p.reclaimed as f64, elapsed_s) * mean_total_ns * 1e-9,
                    }
                })
                .collect(),
            grace_periods,
            grace_periods_per_s: per(grace_periods as f64, elapsed_s),
            objects_per_grace_period: per(reclaimed as f64, grace_periods as f64),
            object_bytes,
            in_flight_bytes_peak: (in_flight.peak as f64 * object_bytes) as u64,
            in_flight_bytes_mean: mean_objects * object_bytes,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::dist::{Distribution, StageReport};

    fn path(
        name: &str,
        reclaimed: u64,
        batches: u64,
        batch_objects: u64,
        gp: (i64, i64),
        mean_ns: u64,
    ) -> PathReport {
        let total = StageReport {
            all: Distribution { count: reclaimed, mean_ns, ..Default::default() },
            ..Default::default()
        };
        PathReport {
            path: name.into(),
            reclaimed,
            batches,
            batch_objects,
            gp_objects: if gp == (0, 0) { 0 } else { reclaimed },
            gp_seq_min: gp.0,
            gp_seq_max: gp.1,
            stages: BTreeMap::from([("total".to_string(), total)]),
            ..Default::default()
        }
    }

    /// 12,800 objects of the triggers in 100 sheaves holding 12,800 objects
    /// in all, and 200 fallen-back ones (no callbacks counted), over 10 s in
    /// which the cookies moved by 50 grace periods, across the counter's
    /// wrap.
    #[test]
    fn batches_and_grace_periods_come_from_the_counts() {
        let paths = [
            path("sheaf_immediate", 12_800, 100, 12_800, (-40, 160), 20_000_000),
            path("fallback", 200, 0, 0, (0, 0), 30_000_000),
            path("sheaf_flushed", 0, 0, 0, (0, 0), 0),
        ];
        let in_flight = InFlightReport { per_second: vec![100, 300], peak: 300, ..Default::default() };
        let b = Batching::new(&paths, &in_flight, 10.0, 64.0);
        assert_eq!(b.grace_periods, 50);
        assert_eq!(b.grace_periods_per_s, 5.0);
        assert_eq!(b.objects_per_grace_period, 13_000.0 / 50.0);
        assert_eq!(b.paths.len(), 2, "a path that reclaimed nothing has no figures");
        let s = &b.paths[0];
        assert_eq!(
            (s.callbacks, s.callbacks_per_object, s.objects_per_callback),
            (Some(100), Some(100.0 / 12_800.0), Some(128.0))
        );
        assert_eq!(s.objects_per_grace_period, 256.0);
        // 1,280 objects a second, each 20 ms in flight.
        assert!((s.mean_in_flight - 25.6).abs() < 1e-9, "{}", s.mean_in_flight);
        assert_eq!((b.paths[1].callbacks, b.paths[1].callbacks_per_object), (None, None));
        assert_eq!((b.in_flight_bytes_peak, b.in_flight_bytes_mean), (19_200, 12_800.0));
    }

    #[test]
    fn without_cookies_or_time_the_rates_are_zero() {
        let paths = [path("fallback", 5, 0, 0, (0, 0), 1000)];
        let b = Batching::new(&paths, &InFlightReport::default(), 0.0, 64.0);
        assert_eq!((b.grace_periods, b.grace_periods_per_s, b.objects_per_grace_period), (0, 0.0, 0.0));
        assert_eq!(b.paths[0].objects_per_callback, None);
        assert_eq!(b.in_flight_bytes_mean, 0.0);
    }
}
