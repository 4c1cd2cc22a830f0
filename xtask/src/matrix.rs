//! `cargo xtask matrix`: one scenario on each kernel flavor, one combined
//! report and one KCIDB submission (validated by kcidb-io) over all of
//! them. Past one machine, KernelCI's labs are the scale-out.

use std::{fs, path::PathBuf, process::ExitCode};

use anyhow::{Context, Result, bail};
use clap::Args;
use probe_result::Document;
use serde_json::{Value, json};

use crate::{Ctx, kcidb, step::step, vm};

#[derive(Args)]
pub struct MatrixArgs {
    /// A built-in scenario (`nolock-probe list`) or a scenario file.
    #[arg(long, default_value = "default")]
    pub scenario: String,
    /// Seconds each run stresses.
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    /// Kernel flavors (kernel-patches/config/<NAME>.config), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "debug,rt,kasan")]
    pub flavors: Vec<String>,
    /// Directory for each flavor's JSON, the combined report and the KCIDB
    /// submission.
    #[arg(long, default_value = "results/matrix")]
    pub out: PathBuf,
    /// More options for every flavor's `nolock-probe run` (after `--`),
    /// e.g. `-- --rate 500` where a KASAN kernel cannot keep up.
    #[arg(last = true)]
    pub run_args: Vec<String>,
}

/// One flavor's row of the combined report.
fn row(flavor: &str, json: &std::path::Path, doc: &Document) -> Value {
    let verdict = doc.verdict();
    let mut row = json!({
        "flavor": flavor,
        "result": json.file_name().map(|n| n.to_string_lossy().into_owned()),
        "pass": verdict.pass,
        "reasons": verdict.reasons,
    });
    if let Document::Run(r) = doc {
        let t = &r.totals;
        row["kernel"] = r.kernel.release.clone().into();
        row["elapsed_s"] = r.run.elapsed_s.into();
        row["kfree_rcu_nolock_calls"] = t.freed_rcu.into();
        row["sheaf"] = t.sheaf.into();
        row["fallback"] = t.fallback.into();
        row["full_sheaves"] = t.sheaf_call_rcu.into();
        row["deferred_sheaves"] = t.sheaf_call_rcu_deferred.into();
        row["alloc_fail"] = t.alloc_fail.into();
        if let Some(b) = &r.batching {
            row["grace_periods_per_s"] = b.grace_periods_per_s.into();
            row["in_flight_bytes_peak"] = b.in_flight_bytes_peak.into();
        }
        if let Some(l) = &r.run.loader {
            row["loader_cpu_pct"] = l.cpu_pct.into();
            row["loader_rss_peak_bytes"] = l.rss_peak_bytes.into();
        }
    }
    row
}

pub fn matrix(ctx: &Ctx, args: &MatrixArgs) -> Result<ExitCode> {
    ctx.ensure_root()?;
    if args.flavors.is_empty() {
        bail!("--flavors names no kernel flavor: give at least one, e.g. --flavors debug,rt");
    }
    let out = ctx.out_dir(&args.out)?;
    let stem = std::path::Path::new(&args.scenario)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| args.scenario.clone());
    let mut run_args = ["run", "--scenario", &args.scenario, "--duration", &args.duration.to_string()]
        .map(String::from)
        .to_vec();
    run_args.extend(args.run_args.iter().cloned());
    let mut rows = Vec::new();
    let mut results = Vec::new();
    for (i, flavor) in args.flavors.iter().enumerate() {
        let name =
            format!("matrix [{}/{}]: {} on the {flavor} kernel", i + 1, args.flavors.len(), args.scenario);
        let json = out.join(format!("{stem}-{flavor}.json"));
        let outcome = step(&name, || {
            let image = ctx.kernel(flavor, &[], None)?;
            let _ = fs::remove_file(&json);
            ctx.vm(&image, run_args.clone(), json.clone(), vm::Guest::DEFAULT)
        });
        // A failed verdict is a finding for the report; no result at all is
        // this flavor's error, and the others still run.
        match outcome.map(|o| o.json) {
            Ok(Some(json)) => {
                let doc = Document::read(&json)?;
                rows.push(row(flavor, &json, &doc));
                if matches!(doc, Document::Run(_) | Document::Bench(_)) {
                    results.push(json);
                }
            }
            Ok(None) => {
                rows.push(json!({"flavor": flavor, "pass": false, "reasons": ["the guest sent no result"]}))
            }
            Err(e) => rows.push(json!({"flavor": flavor, "pass": false, "reasons": [format!("{e:#}")]})),
        }
    }
    let report = out.join(format!("{stem}.json"));
    let combined = json!({
        "scenario": args.scenario,
        "duration_s": args.duration,
        "command": format!(
            "cargo xtask matrix --scenario {} --duration {} --flavors {}{}",
            args.scenario,
            args.duration,
            args.flavors.join(","),
            if args.run_args.is_empty() { String::new() } else { format!(" -- {}", args.run_args.join(" ")) }
        ),
        "runs": rows,
    });
    fs::write(&report, serde_json::to_string_pretty(&combined)? + "\n")?;
    eprintln!();
    eprintln!(
        "{:<8} {:<7} {:>10} {:>10} {:>9} {:>9}  reasons",
        "flavor", "verdict", "calls", "sheaf", "fallback", "deferred"
    );
    for r in &rows {
        let n = |k: &str| r[k].as_u64().map_or("-".to_string(), |v| v.to_string());
        eprintln!(
            "{:<8} {:<7} {:>10} {:>10} {:>9} {:>9}  {}",
            r["flavor"].as_str().unwrap_or("?"),
            if r["pass"] == true { "PASS" } else { "FAIL" },
            n("kfree_rcu_nolock_calls"),
            n("sheaf"),
            n("fallback"),
            n("deferred_sheaves"),
            r["reasons"].as_array().map(|a| a.len()).unwrap_or(0)
        );
    }
    eprintln!("xtask: matrix: combined report {}", report.display());
    if results.is_empty() {
        bail!("no flavor produced a result to submit to KCIDB");
    }
    let prefix = out.join(stem);
    let mut export = std::process::Command::new(&ctx.build()?.loader);
    export.args(["export", "--format", "kcidb", "--output"]).arg(&prefix).args(&results);
    let status = export.status().context("cannot run nolock-probe export")?;
    if !status.success() {
        bail!("nolock-probe export --format kcidb failed ({status}) on {results:?}");
    }
    let submission = prefix.with_extension("kcidb.json");
    eprintln!("xtask: matrix: {}: {}", submission.display(), kcidb::validate(&ctx.cache, &submission)?);
    let all_pass = rows.iter().all(|r| r["pass"] == true);
    Ok(if all_pass { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
