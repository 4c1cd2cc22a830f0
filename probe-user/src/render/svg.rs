//! `nolock-probe report --svg`: one picture of a result, the latency
//! distribution of each path (total wait, log-scale time axis) and the
//! objects in flight over time.

use std::fmt::Write;

use probe_common::Stage;
use probe_result::{RunReport, run::PathReport};

use super::terminal::human_ns;

const WIDTH: f64 = 900.0;
const PANEL: f64 = 170.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const COLORS: [&str; 4] = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728"];

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// The SVG document for `report`.
pub fn render(report: &RunReport) -> String {
    let paths = &report.latency.paths;
    let gauge: Vec<f64> = report.in_flight.per_second.iter().map(|&n| n as f64).collect();
    let height = 60.0 + PANEL * (paths.len() as f64 + 1.0);
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let title = format!(
        "nolock-probe: scenario {} on {} ({} s), verdict {}",
        report.plan.scenario,
        report.kernel.release,
        report.plan.duration_s,
        if report.verdict.pass { "pass" } else { "FAIL" }
    );
    let _ = writeln!(s, r#"<text x="{LEFT}" y="24" font-size="15">{}</text>"#, esc(&title));

    // One shared log2 time axis for all paths, so they can be compared.
    let buckets = |p: &PathReport| -> Vec<(f64, f64, f64)> {
        p.stage(Stage::Total)
            .into_iter()
            .flat_map(|t| &t.histogram)
            .map(|b| ((b.low_ns as f64).max(1.0), (b.high_ns as f64).min(1e12), b.count as f64))
            .collect()
    };
    let all: Vec<(f64, f64, f64)> = paths.iter().flat_map(buckets).collect();
    let lo = all.iter().map(|b| b.0).fold(f64::INFINITY, f64::min).log2().floor();
    let hi = all.iter().map(|b| b.1).fold(0.0, f64::max).log2().ceil().max(lo + 1.0);
    let x = |ns: f64| LEFT + (ns.log2() - lo) / (hi - lo) * (WIDTH - LEFT - RIGHT);

    for (i, p) in paths.iter().enumerate() {
        let top = 40.0 + PANEL * i as f64;
        let base = top + PANEL - 30.0;
        let bs = buckets(p);
        let peak = bs.iter().map(|b| b.2).fold(1.0, f64::max);
        let d = p.stage(Stage::Total).map(|t| t.all.clone()).unwrap_or_default();
        let label = format!(
            "{}: {} objects, p50 {}, p99 {}, max {}",
            p.path,
            d.count,
            human_ns(d.p50_ns),
            human_ns(d.p99_ns),
            human_ns(d.max_ns)
        );
        let _ = writeln!(s, r#"<text x="{LEFT}" y="{}" font-size="12">{}</text>"#, top + 12.0, esc(&label));
        let _ = writeln!(
            s,
            r##"<line x1="{LEFT}" y1="{base}" x2="{}" y2="{base}" stroke="#444"/>"##,
            WIDTH - RIGHT
        );
        for (low, high, count) in &bs {
            let h = count / peak * (PANEL - 60.0);
            let _ = writeln!(
                s,
                r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{}"/>"#,
                x(*low),
                base - h,
                (x(*high) - x(*low)).max(1.0),
                h,
                COLORS[i % COLORS.len()]
            );
        }
        for e in (lo as i64)..=(hi as i64) {
            if e % 2 == 0 {
                let ns = 2f64.powi(e as i32);
                let _ = writeln!(
                    s,
                    r##"<text x="{:.1}" y="{}" text-anchor="middle" fill="#444">{}</text>"##,
                    x(ns),
                    base + 14.0,
                    human_ns(ns as u64)
                );
            }
        }
    }

    // The in-flight gauge.
    let top = 40.0 + PANEL * paths.len() as f64;
    let base = top + PANEL - 30.0;
    let peak = gauge.iter().copied().fold(1.0, f64::max);
    let _ = writeln!(
        s,
        r#"<text x="{LEFT}" y="{}" font-size="12">objects in flight (freed, not yet reclaimed), once a second: peak {}, lost after drain {}</text>"#,
        top + 12.0,
        peak,
        report.in_flight.lost
    );
    let _ =
        writeln!(s, r##"<line x1="{LEFT}" y1="{base}" x2="{}" y2="{base}" stroke="#444"/>"##, WIDTH - RIGHT);
    let n = gauge.len().max(2) as f64 - 1.0;
    let points: Vec<String> = gauge
        .iter()
        .enumerate()
        .map(|(i, v)| {
            format!(
                "{:.1},{:.1}",
                LEFT + i as f64 / n * (WIDTH - LEFT - RIGHT),
                base - v / peak * (PANEL - 60.0)
            )
        })
        .collect();
    let _ = writeln!(
        s,
        r##"<polyline fill="none" stroke="#9467bd" stroke-width="2" points="{}"/>"##,
        points.join(" ")
    );
    let _ = writeln!(s, "</svg>");
    s
}

#[cfg(test)]
mod tests {
    use probe_result::{
        dist::{Bucket, Distribution, StageReport},
        run::PathReport,
    };

    use crate::testing;

    #[test]
    fn the_picture_has_a_panel_per_path_and_the_gauge() {
        let mut r = testing::committed_run("vm-debug-20s.json");
        let total = StageReport {
            all: Distribution { count: 15, p50_ns: 1, p99_ns: 2, max_ns: 3, ..Default::default() },
            histogram: vec![
                Bucket { low_ns: 16777216, high_ns: 18874368, count: 10 },
                Bucket { low_ns: 33554432, high_ns: 37748736, count: 5 },
            ],
            per_cpu: vec![],
        };
        let path = |name: &str| PathReport {
            path: name.into(),
            stages: [("total".to_string(), total.clone())].into_iter().collect(),
            ..Default::default()
        };
        r.latency.paths = vec![path("sheaf_immediate"), path("fallback")];
        r.in_flight.per_second = vec![1, 5, 3];
        let svg = super::render(&r);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<rect x=").count(), 4, "two bars per path");
        assert!(svg.contains("sheaf_immediate: 15 objects") && svg.contains("fallback: 15 objects"));
        assert!(svg.contains("<polyline"));
    }
}
