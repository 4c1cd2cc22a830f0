//! nolock-probe: stress and verify kfree_rcu_nolock() from every context a
//! BPF program can run in.
//!
//! Layers, each importing only those below it: `commands` (one file per
//! subcommand, its Args beside it) over `render` (terminal, SVG, exports)
//! and `judge` (latency distributions, metrics, the regression gate), over
//! `bpf` (load, attach, maps, program statistics), `kernel` (BTF, kallsyms,
//! the kernel log, SLUB_STATS, readiness) and `stress` (load generator,
//! NMI source, expedited grace periods); `footprint` measures the loader
//! itself. The result documents and the
//! checks of a verdict are the probe-result crate.

mod bpf;
mod commands;
mod footprint;
mod judge;
mod kernel;
mod render;
mod stress;
#[cfg(test)]
mod testing;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::commands::{bench, compare, export, list, report, run, validate};

#[derive(Debug, Parser)]
#[command(
    name = "nolock-probe",
    version,
    about = "Stress and verify kfree_rcu_nolock() from every context a BPF program runs in"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Attach the triggers and observers, run the stress, write JSON.
    Run(run::RunArgs),
    /// Time kmalloc_nolock() with kfree_rcu_nolock() and with kfree_nolock()
    /// on every CPU, nothing else attached; write JSON.
    Bench(bench::BenchArgs),
    /// Show the scenarios, and which triggers the running kernel supports.
    List,
    /// Convert a result to a dashboard format (on stdout).
    Export(export::ExportArgs),
    /// Compare two results; exit 1 if a gated metric regressed.
    Compare(compare::CompareArgs),
    /// Show a result in the terminal, and optionally as an SVG picture.
    Report(report::ReportArgs),
    /// Check results against the JSON Schema (results/schema.json).
    Validate(validate::ValidateArgs),
}

/// Exit status: 0 pass, 1 the kernel failed a check (or a gated metric
/// regressed), 2 usage or setup error.
fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Run(args) => run::run(args),
        Command::Bench(args) => bench::bench(args),
        Command::List => list::list().map(|()| true),
        Command::Export(args) => export::export(args).map(|()| true),
        Command::Compare(args) => compare::compare(args),
        Command::Report(args) => report::report(args).map(|()| true),
        Command::Validate(args) => validate::validate(&args.results).map(|()| true),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("nolock-probe: {e:#}");
            ExitCode::from(2)
        }
    }
}
