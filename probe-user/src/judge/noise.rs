//! How far a metric moves between healthy runs: what the gate weighs a
//! change against. A change counts when it exceeds both the band the
//! repeats' spread allows and the noise floor of the metric's kind; the
//! relative threshold (`results/thresholds.toml`) is the gate's.

/// What a metric measures: that decides its noise floor and whether a
/// change can be judged without repeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Premature frees and lost objects: a healthy kernel has none, so any
    /// is real, with or without repeats.
    Failure,
    /// Other counts (failed allocations, untracked objects, peak in flight).
    Count,
    /// Calls or operations a second.
    Rate,
    /// The BPF programs' share of the CPUs' time, in %.
    Share,
    /// A stage of a path (queued or fill, grace, total), in ns.
    Stage,
    /// A call's own time (a trigger's calls, a bench's), in ns.
    Call,
    /// Lines of the nolock machinery a coverage run reached, in %: gcov's
    /// counts are exact, and what moves between runs of one scenario (a
    /// rare branch or two) the threshold absorbs, so one run is enough.
    Coverage,
}

/// A stage's latency runs through the path observers: under TCG on the
/// debug kernel their trampolines add about 10 us to each
/// `kfree_rcu_nolock()` (README, `bench --observers` against `bench`), and
/// a stage passes two to four of them, whose cost moves with what else
/// runs. A change below two trampolines' worth can be the tool's own. One
/// tick (4 ms at HZ=250) is two hundred times this.
pub const STAGE_FLOOR_NS: f64 = 20_000.0;

/// A call's own time includes the clock reads around it: the bench's empty
/// timed call had a p99 of 447 ns on the debug kernel in one session and
/// 1,023 ns in another (`results/bench-debug.json`, `clock`, the later
/// one); a change within about that is the timing's jitter, not the call's.
pub const CALL_FLOOR_NS: f64 = 1_000.0;

impl Kind {
    /// The smallest change, in the metric's unit, that can count at all.
    /// Counts, rates and shares have none: their noise scales with the
    /// value, which the repeats' spread and the relative threshold weigh.
    pub fn floor(self) -> f64 {
        match self {
            Kind::Stage => STAGE_FLOOR_NS,
            Kind::Call => CALL_FLOOR_NS,
            Kind::Failure | Kind::Count | Kind::Rate | Kind::Share | Kind::Coverage => 0.0,
        }
    }

    /// Whether a change can only be judged against the base's spread.
    pub fn needs_spread(self) -> bool {
        !matches!(self, Kind::Failure | Kind::Coverage)
    }
}

/// A metric over the runs of one document.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Runs {
    pub mean: f64,
    /// Sample standard deviation (n - 1); 0 for a single run.
    pub stddev: f64,
    pub count: usize,
}

impl Runs {
    /// Mean and sample standard deviation of `values` (one per run).
    pub fn of(values: &[f64]) -> Runs {
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let var = if values.len() > 1 {
            values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)
        } else {
            0.0
        };
        Runs { mean, stddev: var.sqrt(), count: values.len() }
    }
}

/// One-sided 99.5% quantiles of Student's t distribution, for 1 to 30
/// degrees of freedom (mathematical constants, from any t table).
const T_995: [f64; 30] = [
    63.657, 9.925, 5.841, 4.604, 4.032, 3.707, 3.499, 3.355, 3.250, 3.169, 3.106, 3.055, 3.012, 2.977, 2.947,
    2.921, 2.898, 2.878, 2.861, 2.845, 2.831, 2.819, 2.807, 2.797, 2.787, 2.779, 2.771, 2.763, 2.756, 2.750,
];

/// How many standard errors a difference of means must exceed so that
/// noise alone crosses it in 0.5% of compares of one metric (Student's t
/// at `df` degrees of freedom; beyond 30, the value at 30, slightly
/// strict). Why 0.5% and not 1%: in the ten clean runs of
/// results/gate-false-alarms, 1% let 7 of the 90 ordered pairs fire (a
/// compare gates about a dozen metrics, and three repeats can agree by
/// chance in one mode of a bimodal metric); 0.5% let 2 fire.
pub fn t_995(df: usize) -> f64 {
    T_995[df.clamp(1, T_995.len()) - 1]
}

/// The change of the mean that noise alone exceeds in 0.5% of compares:
/// t(0.995, m + n - 2) standard errors of the difference, the runs' spread
/// pooled over base and new (a two-sample t test). None when the base is
/// a single run: one value says nothing about how runs differ, and taking
/// its spread as 0 would call every change a regression. A new side of
/// one run is fine: the base's spread stands for both.
pub fn band(base: Runs, new: Runs) -> Option<f64> {
    if base.count < 2 || new.count < 1 {
        return None;
    }
    let (m, n) = (base.count as f64, new.count as f64);
    let df = base.count + new.count - 2;
    let pooled_var = ((m - 1.0) * base.stddev.powi(2) + (n - 1.0) * new.stddev.powi(2)) / df as f64;
    let standard_error = (pooled_var * (1.0 / m + 1.0 / n)).sqrt();
    Some(t_995(df) * standard_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runs(values: &[f64]) -> Runs {
        Runs::of(values)
    }

    #[test]
    fn a_single_base_run_has_no_band() {
        assert_eq!(band(runs(&[5.0]), runs(&[5.0, 6.0, 7.0])), None);
        assert_eq!(band(runs(&[5.0]), runs(&[9.0])), None);
    }

    #[test]
    fn the_band_is_a_two_sample_t_test_at_half_a_percent() {
        // Three against three, sd 1 on both sides: df 4, standard error
        // sqrt(2/3).
        let b = band(runs(&[1.0, 2.0, 3.0]), runs(&[11.0, 12.0, 13.0])).unwrap();
        assert!((b - 4.604 * (2.0f64 / 3.0).sqrt()).abs() < 1e-9, "{b}");
        // A single new run leans on the base's spread, more strictly.
        let one = band(runs(&[1.0, 2.0, 3.0]), runs(&[12.0])).unwrap();
        assert!((one - 9.925 * (1.0f64 + 1.0 / 3.0).sqrt()).abs() < 1e-9, "{one}");
    }

    #[test]
    fn degrees_of_freedom_are_clamped_to_the_table() {
        assert_eq!(t_995(0), 63.657);
        assert_eq!(t_995(4), 4.604);
        assert_eq!(t_995(500), 2.750);
    }

    #[test]
    fn only_failures_are_judged_without_spread_and_latencies_have_floors() {
        assert!(!Kind::Failure.needs_spread() && !Kind::Coverage.needs_spread());
        assert!(Kind::Stage.needs_spread() && Kind::Rate.needs_spread());
        // One tick at HZ=250 clears the stage floor by far.
        assert!(Kind::Stage.floor() < 4_000_000.0 / 100.0);
        assert_eq!(Kind::Rate.floor(), 0.0);
    }
}
