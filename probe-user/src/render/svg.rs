//! `nolock-probe report --svg`: one picture of a run, drawn with plotters.
//! A panel per path: how long its objects waited, on a log time axis
//! shared by all paths, split into the fill (queued) stage, the grace
//! period and the total; then the objects in flight against time.

use anyhow::{Result, anyhow};
use plotters::{coord::combinators::IntoLogRange, prelude::*};
use probe_common::Stage;
use probe_result::{RunReport, dist::Bucket, run::PathReport};

use super::terminal::{human_ns, thousands};

const WIDTH: u32 = 1000;
const PANEL: u32 = 260;
const FONT: &str = "sans-serif";
/// Queued (fill), grace, total: the stages in drawing order.
const STAGES: [(Stage, &str, RGBColor); 3] = [
    (Stage::Queued, "queued (sheaf fill, or until the irq_work)", RGBColor(31, 119, 180)),
    (Stage::Grace, "grace period (call_rcu() to reclaim)", RGBColor(255, 127, 14)),
    (Stage::Total, "total (kfree_rcu_nolock() to reclaim)", RGBColor(44, 160, 44)),
];

fn buckets(p: &PathReport, stage: Stage) -> &[Bucket] {
    p.stage(stage).map_or(&[], |s| s.histogram.as_slice())
}

/// A histogram as a step line that drops to 0 between buckets, so gaps
/// show as gaps.
fn steps(bs: &[Bucket]) -> Vec<(f64, f64)> {
    let mut pts = Vec::new();
    for b in bs.iter().filter(|b| b.count > 0) {
        let (lo, hi, n) = ((b.low_ns as f64).max(1.0), (b.high_ns as f64).max(2.0), b.count as f64);
        if pts.last().is_none_or(|&(x, _)| x < lo) {
            pts.push((lo, 0.0));
        }
        pts.extend([(lo, n), (hi, n), (hi, 0.0)]);
    }
    pts
}

/// A time axis tick: `100us`, `1ms`, `1.5s` (no trailing zeros).
fn tick(ns: f64) -> String {
    let h = human_ns(ns.round() as u64);
    let unit = h.trim_start_matches(|c: char| c.is_ascii_digit() || c == '.');
    let number = &h[..h.len() - unit.len()];
    let number =
        if number.contains('.') { number.trim_end_matches('0').trim_end_matches('.') } else { number };
    format!("{number}{unit}")
}

/// `fill p50 1.2ms + grace p50 20ms = total p50 21ms`.
fn split(p: &PathReport) -> String {
    let p50 = |s: Stage| p.stage(s).map_or("-".into(), |s| human_ns(s.all.p50_ns));
    let total = p.stage(Stage::Total).map(|s| &s.all).cloned().unwrap_or_default();
    format!(
        "{}: {} objects reclaimed ({} premature); p50 queued {} + grace {} -> total {}, p99 {}, max {}",
        p.path,
        thousands(p.reclaimed as f64),
        p.premature,
        p50(Stage::Queued),
        p50(Stage::Grace),
        human_ns(total.p50_ns),
        human_ns(total.p99_ns),
        human_ns(total.max_ns)
    )
}

fn draw(report: &RunReport, out: &mut String) -> Result<(), Box<dyn std::error::Error>> {
    let paths = &report.latency.paths;
    let height = 50 + PANEL * (paths.len() as u32 + 1);
    let root = SVGBackend::with_string(out, (WIDTH, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let title = format!(
        "nolock-probe: scenario {} on {} ({} s), verdict {}",
        report.plan.scenario,
        report.kernel.release,
        report.plan.duration_s,
        if report.verdict.pass { "pass" } else { "FAIL" }
    );
    let root = root.titled(&title, (FONT, 20))?;
    let panels = root.split_evenly((paths.len() + 1, 1));

    // One time axis for every path, so they can be compared.
    let all: Vec<&Bucket> = paths
        .iter()
        .flat_map(|p| STAGES.iter().flat_map(move |s| buckets(p, s.0)))
        .filter(|b| b.count > 0)
        .collect();
    let lo = all.iter().map(|b| (b.low_ns as f64).max(1.0)).fold(f64::INFINITY, f64::min);
    let hi = all.iter().map(|b| b.high_ns as f64).fold(0.0, f64::max);
    let (lo, hi) = if all.is_empty() { (1e3, 1e9) } else { (lo / 1.5, hi * 1.5) };

    for (panel, p) in panels.iter().zip(paths) {
        let peak =
            STAGES.iter().flat_map(|s| buckets(p, s.0)).map(|b| b.count).max().unwrap_or(1).max(1) as f64;
        let mut chart = ChartBuilder::on(panel)
            .caption(split(p), (FONT, 14))
            .margin(10)
            .margin_right(30)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d((lo..hi).log_scale(), 0.0..peak * 1.1)?;
        chart
            .configure_mesh()
            .x_desc("time since kfree_rcu_nolock() (log scale)")
            .y_desc("objects per bucket")
            .x_label_formatter(&|ns| tick(*ns))
            .y_label_formatter(&|n| thousands(*n))
            .label_style((FONT, 12))
            .draw()?;
        for (stage, label, color) in STAGES {
            let pts = steps(buckets(p, stage));
            if pts.is_empty() {
                continue;
            }
            chart
                .draw_series(LineSeries::new(pts, color.stroke_width(2)))?
                .label(label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font((FONT, 12))
            .draw()?;
    }

    let gauge = &report.in_flight.per_second;
    let peak = gauge.iter().copied().max().unwrap_or(0).max(1) as f64;
    let secs = gauge.len().max(2) as f64 - 1.0;
    let caption = format!(
        "objects in flight (freed, not yet reclaimed), sampled once a second: peak {}, lost after the drain {}",
        thousands(report.in_flight.peak as f64),
        report.in_flight.lost
    );
    let mut chart = ChartBuilder::on(&panels[paths.len()])
        .caption(caption, (FONT, 14))
        .margin(10)
        .margin_right(30)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..secs, 0.0..peak * 1.1)?;
    chart
        .configure_mesh()
        .x_desc("seconds since the triggers were attached")
        .x_label_formatter(&|s| format!("{s:.0} s"))
        .y_desc("objects in flight")
        .y_label_formatter(&|n| thousands(*n))
        .label_style((FONT, 12))
        .draw()?;
    chart.draw_series(LineSeries::new(
        gauge.iter().enumerate().map(|(i, &n)| (i as f64, n as f64)),
        RGBColor(148, 103, 189).stroke_width(2),
    ))?;
    root.present()?;
    Ok(())
}

/// The SVG document for `report`.
pub fn render(report: &RunReport) -> Result<String> {
    let mut out = String::new();
    draw(report, &mut out).map_err(|e| anyhow!("cannot draw the picture: {e}"))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use probe_result::{
        dist::{Bucket, Distribution, StageReport},
        run::PathReport,
    };

    use crate::testing;

    fn stage(count: u64, p50: u64, buckets: &[(u64, u64, u64)]) -> StageReport {
        StageReport {
            all: Distribution { count, p50_ns: p50, p99_ns: p50 * 2, max_ns: p50 * 3, ..Default::default() },
            histogram: buckets
                .iter()
                .map(|&(low_ns, high_ns, count)| Bucket { low_ns, high_ns, count })
                .collect(),
            per_cpu: vec![],
        }
    }

    #[test]
    fn ticks_carry_units_without_trailing_zeros() {
        assert_eq!(super::tick(100_000.0), "100us");
        assert_eq!(super::tick(1e6), "1ms");
        assert_eq!(super::tick(1.5e9), "1.5s");
        assert_eq!(super::tick(100.0), "100ns");
    }

    #[test]
    fn the_picture_has_axes_a_split_panel_per_path_and_the_gauge() {
        let mut r = testing::committed_run("vm-debug-20s.json");
        let path = |name: &str| PathReport {
            path: name.into(),
            reclaimed: 15,
            stages: [
                ("queued".to_string(), stage(15, 1_000_000, &[(1 << 20, 1 << 21, 15)])),
                (
                    "grace".to_string(),
                    stage(15, 20_000_000, &[(1 << 24, 1 << 25, 10), (1 << 25, 1 << 26, 5)]),
                ),
                (
                    "total".to_string(),
                    stage(15, 21_000_000, &[(1 << 24, 1 << 25, 10), (1 << 25, 1 << 26, 5)]),
                ),
            ]
            .into_iter()
            .collect(),
            ..Default::default()
        };
        r.latency.paths = vec![path("sheaf_immediate"), path("fallback")];
        r.in_flight.per_second = vec![1, 5, 3];
        let svg = super::render(&r).unwrap();
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        for text in [
            "sheaf_immediate: 15 objects reclaimed (0 premature); p50 queued 1.000ms + grace 20.000ms -&gt; total 21.000ms",
            "fallback: 15 objects reclaimed",
            "objects per bucket",
            "time since kfree_rcu_nolock() (log scale)",
            "queued (sheaf fill, or until the irq_work)",
            "grace period (call_rcu() to reclaim)",
            "objects in flight",
            "seconds since the triggers were attached",
        ] {
            assert!(svg.contains(text), "no `{text}` in the picture");
        }
        // Each stage's line and legend mark in both path panels, and the
        // gauge's line.
        for color in ["#1F77B4", "#FF7F0E", "#2CA02C"] {
            assert_eq!(svg.matches(&format!(r#"stroke="{color}""#)).count(), 4, "{color}");
        }
        assert_eq!(svg.matches(r##"stroke="#9467BD""##).count(), 1);
        // plotters puts a text's content on a line of its own.
        let texts: Vec<&str> = svg.lines().map(str::trim).collect();
        assert!(texts.contains(&"1ms") && texts.contains(&"10ms"), "time ticks without units");
    }
}
