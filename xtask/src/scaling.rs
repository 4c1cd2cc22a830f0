//! `cargo xtask scaling`: `bench` and `run` on the debug kernel at 1, 2
//! and 4 vCPUs, and a table of the per-CPU rates against 1 vCPU. More
//! vCPUs than the host has cores share them under TCG: such rows are
//! labelled oversubscribed, their per-CPU rates say more about the host
//! than about the allocator.

use std::{fs, path::PathBuf, process::ExitCode};

use anyhow::{Result, bail};
use clap::Args;
use probe_result::Document;
use serde_json::{Value, json};

use crate::{Ctx, step::step, vm};

#[derive(Args)]
pub struct ScalingArgs {
    /// vCPU counts, comma-separated; the first is the reference.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4")]
    pub smp: Vec<u32>,
    /// Seconds the `run` of each count stresses.
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    /// Kernel flavor.
    #[arg(long, default_value = "debug")]
    pub kernel_config: String,
    /// Directory for each run's JSON and the summary.
    #[arg(long, default_value = "results/scaling")]
    pub out: PathBuf,
}

/// What one vCPU count measured, per CPU.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Rates {
    bench_pairs_per_s: f64,
    bench_pairs_per_s_cpu: f64,
    bench_stddev: f64,
    run_calls_per_s_cpu: f64,
}

fn bench_rates(doc: &Document) -> Option<(f64, f64, usize)> {
    let Document::Bench(b) = doc else { return None };
    let f = b.frees.iter().find(|f| f.free == "kfree_rcu_nolock")?;
    Some((f.ops_per_s.mean, f.ops_per_s.stddev, b.plan.cpus.len().max(1)))
}

fn run_rate(doc: &Document) -> Option<f64> {
    let Document::Run(r) = doc else { return None };
    let cpus = r.run.cpus.len().max(1) as f64;
    Some(r.totals.calls as f64 / r.run.elapsed_s.max(1e-9) / cpus)
}

/// The table's rows: each count's per-CPU rates and their ratio to the
/// first count's.
fn rows(measured: &[(u32, Rates)], host_cores: usize) -> Vec<Value> {
    let Some(&(_, base)) = measured.first() else { return Vec::new() };
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
    measured
        .iter()
        .map(|&(smp, r)| {
            json!({
                "vcpus": smp,
                "oversubscribed": smp as usize > host_cores,
                "bench_kfree_rcu_nolock_pairs_per_s": r.bench_pairs_per_s,
                "bench_kfree_rcu_nolock_pairs_per_s_stddev": r.bench_stddev,
                "bench_pairs_per_s_per_cpu": r.bench_pairs_per_s_cpu,
                "bench_per_cpu_ratio": ratio(r.bench_pairs_per_s_cpu, base.bench_pairs_per_s_cpu),
                "run_calls_per_s_per_cpu": r.run_calls_per_s_cpu,
                "run_per_cpu_ratio": ratio(r.run_calls_per_s_cpu, base.run_calls_per_s_cpu),
            })
        })
        .collect()
}

pub fn scaling(ctx: &Ctx, args: &ScalingArgs) -> Result<ExitCode> {
    ctx.ensure_root()?;
    if args.smp.is_empty() || args.smp.contains(&0) {
        bail!("--smp takes vCPU counts of at least 1, e.g. --smp 1,2,4");
    }
    let out = ctx.out_dir(&args.out)?;
    let host_cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let image = ctx.kernel(&args.kernel_config, &[], None)?;
    let mut measured = Vec::new();
    let mut failed = Vec::new();
    for &smp in &args.smp {
        let guest = vm::Guest { smp, ..vm::Guest::DEFAULT };
        let mut rates = Rates::default();
        for (what, guest_args) in [
            ("bench", vec!["bench".to_string()]),
            ("run", vec!["run".into(), "--duration".into(), args.duration.to_string()]),
        ] {
            let json = out.join(format!("{what}-{}-smp{smp}.json", args.kernel_config));
            let _ = fs::remove_file(&json);
            let name = format!("scaling: {what} at {smp} vCPUs");
            let outcome = step(&name, || ctx.vm(&image, guest_args.clone(), json.clone(), guest));
            let doc = match outcome.map(|o| o.json) {
                Ok(Some(j)) => Document::read(&j)?,
                Ok(None) => {
                    failed.push(format!("{name}: the guest sent no result"));
                    continue;
                }
                Err(e) => {
                    failed.push(format!("{name}: {e:#}"));
                    continue;
                }
            };
            if !doc.verdict().pass {
                failed.push(format!("{name}: {}", doc.verdict().reasons.join("; ")));
            }
            if let Some((mean, stddev, cpus)) = bench_rates(&doc) {
                rates.bench_pairs_per_s = mean;
                rates.bench_stddev = stddev;
                rates.bench_pairs_per_s_cpu = mean / cpus as f64;
            }
            if let Some(r) = run_rate(&doc) {
                rates.run_calls_per_s_cpu = r;
            }
        }
        measured.push((smp, rates));
    }
    let table = rows(&measured, host_cores);
    let summary = json!({
        "command": format!(
            "cargo xtask scaling --smp {} --duration {} --kernel-config {}",
            args.smp.iter().map(u32::to_string).collect::<Vec<_>>().join(","),
            args.duration,
            args.kernel_config
        ),
        "host_cores": host_cores,
        "rows": table,
        "failures": failed,
    });
    let path = out.join("summary.json");
    fs::write(&path, serde_json::to_string_pretty(&summary)? + "\n")?;
    eprintln!();
    eprintln!(
        "{:>5}  {:>14} {:>12} {:>6}  {:>13} {:>6}",
        "vCPUs", "bench pairs/s", "per CPU", "ratio", "run calls/s/CPU", "ratio"
    );
    for r in &table {
        let f = |k: &str| r[k].as_f64().unwrap_or(0.0);
        eprintln!(
            "{:>5}  {:>14.0} {:>12.0} {:>6.2}  {:>15.0} {:>6.2}{}",
            r["vcpus"],
            f("bench_kfree_rcu_nolock_pairs_per_s"),
            f("bench_pairs_per_s_per_cpu"),
            f("bench_per_cpu_ratio"),
            f("run_calls_per_s_per_cpu"),
            f("run_per_cpu_ratio"),
            if r["oversubscribed"] == true { "  (oversubscribed: more vCPUs than host cores)" } else { "" }
        );
    }
    eprintln!("xtask: scaling: {}", path.display());
    if !failed.is_empty() {
        for f in &failed {
            eprintln!("FAIL  {f}");
        }
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_are_per_cpu_against_the_first_count() {
        let r = |b: f64, run: f64| Rates {
            bench_pairs_per_s: b,
            bench_pairs_per_s_cpu: b,
            bench_stddev: 0.0,
            run_calls_per_s_cpu: run,
        };
        let rows = rows(&[(1, r(100.0, 50.0)), (2, r(80.0, 50.0)), (4, r(30.0, 10.0))], 2);
        assert_eq!(rows[0]["bench_per_cpu_ratio"], 1.0);
        assert_eq!(rows[1]["bench_per_cpu_ratio"], 0.8);
        assert_eq!(rows[2]["run_per_cpu_ratio"], 0.2);
        assert_eq!(
            rows.iter().map(|r| r["oversubscribed"] == true).collect::<Vec<_>>(),
            [false, false, true]
        );
        assert!(super::rows(&[], 2).is_empty());
    }
}
