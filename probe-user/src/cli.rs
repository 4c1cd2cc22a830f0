//! Command line.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "nolock-probe",
    version,
    about = "Stress and verify kfree_rcu_nolock() from every context a BPF program runs in"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Attach the triggers and observers, run the stress, write JSON.
    Run(RunArgs),
    /// Time kmalloc_nolock() with kfree_rcu_nolock() and with kfree_nolock()
    /// on every CPU, nothing else attached; write JSON.
    Bench(crate::bench::BenchArgs),
    /// Show the scenarios, and which triggers the running kernel supports.
    List,
    /// Convert a result to a dashboard format (on stdout).
    Export(ExportArgs),
    /// Compare two results; exit 1 if a gated metric regressed.
    Compare(CompareArgs),
    /// Show a result in the terminal, and optionally as an SVG picture.
    Report(ReportArgs),
    /// Check results against the JSON Schema (results/schema.json).
    Validate {
        #[arg(required = true)]
        results: Vec<PathBuf>,
    },
}

/// Options of `run`. Those left out come from the scenario, then from the
/// defaults.
#[derive(Debug, Clone, Default, Args)]
pub struct RunArgs {
    /// A named scenario (see `nolock-probe list`); default: `default`.
    #[arg(long)]
    pub scenario: Option<String>,
    /// Run these triggers instead of the scenario's (repeat, or
    /// comma-separate).
    #[arg(long = "trigger", value_delimiter = ',')]
    pub triggers: Vec<String>,
    /// How long to run, in seconds [default: 20].
    #[arg(long)]
    pub duration: Option<u64>,
    /// Write the JSON document here instead of stdout.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// Payload bytes after the 64-byte object header, 0..=4096; up to four
    /// comma-separated sizes are mixed at random [default: 0].
    #[arg(long = "payload-size", value_delimiter = ',')]
    pub payload_sizes: Vec<u32>,
    /// Allocate with __GFP_ZERO.
    #[arg(long)]
    pub zero: bool,
    /// Allocate with __GFP_ACCOUNT.
    #[arg(long)]
    pub account: bool,
    /// Perf event sampling frequency per CPU, in Hz [default: 1000].
    #[arg(long)]
    pub perf_frequency: Option<u64>,
    /// Allocate on every Nth hit of a trigger on a CPU [default: 1].
    #[arg(long)]
    pub every_nth: Option<u32>,
    /// At most this many calls a second of each trigger on each CPU, after
    /// --every-nth [default: 0: no limit].
    #[arg(long)]
    pub rate: Option<u32>,
    /// Only these CPUs (comma-separated ids) [default: all online].
    #[arg(long, value_delimiter = ',')]
    pub cpus: Vec<u32>,
    /// Percentage of objects freed with kfree_nolock() instead [default: 0].
    #[arg(long)]
    pub nolock_share: Option<u32>,
    /// Objects a trigger holds on a CPU, one more per hit, before the hit
    /// that completes the burst frees them all back to back, 1..=128
    /// [default: 1: each is freed at once].
    #[arg(long)]
    pub burst: Option<u32>,
    /// NMI backtrace IPIs per second (sysrq-l) for the nmi trigger where
    /// the machine has no PMU [default: 2].
    #[arg(long)]
    pub nmi_rate: Option<u32>,
    /// Expedited RCU grace periods asked for per second during the run
    /// (synchronize_rcu() with /sys/kernel/rcu_expedited set); rcu sheaves
    /// may then end on an expedited grace period [default: 0: none].
    #[arg(long)]
    pub expedited_rate: Option<u32>,
    /// Do not run the built-in kmalloc/kfree load on every CPU.
    #[arg(long)]
    pub no_load: bool,
    /// Do not follow objects to their reclaim (no latency, premature-free or
    /// lost-object checks): measures what the observers cost.
    #[arg(long)]
    pub no_latency: bool,
    /// Run the whole stress N times; the result carries every run under
    /// `repeats`, whose spread `compare` uses [default: 1].
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=20))]
    pub repeat: u32,
    /// Also write the result in a dashboard format, as
    /// `<output>.<kind>.json` next to --output (repeatable).
    #[arg(long, value_enum)]
    pub export: Vec<crate::export::Format>,
}

#[derive(Debug, Clone, Args)]
pub struct ExportArgs {
    #[arg(long, value_enum)]
    pub format: crate::export::Format,
    /// Write `<OUTPUT>.<kind>.json` files instead of printing (kind:
    /// smaller-is-better and bigger-is-better, bmf, kcidb).
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// A result written by `nolock-probe run`.
    pub result: PathBuf,
}

#[derive(Debug, Clone, Args)]
pub struct CompareArgs {
    pub base: PathBuf,
    pub new: PathBuf,
    /// Regression thresholds [default: the repository's results/thresholds.toml].
    #[arg(long)]
    pub thresholds: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct ReportArgs {
    pub result: PathBuf,
    /// Also draw the latency distributions per path and the in-flight gauge
    /// over time into this SVG file.
    #[arg(long)]
    pub svg: Option<PathBuf>,
}
