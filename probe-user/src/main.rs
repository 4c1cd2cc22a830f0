//! nolock-probe: stress and verify kfree_rcu_nolock() from every context a
//! BPF program can run in.

mod btf;
mod cli;
mod kallsyms;
mod kernel;
mod kmsg;
mod latency;
mod list;
mod load;
mod nmi;
mod plan;
mod probes;
mod readiness;
mod report;
mod run;
mod scenario;
mod slub_stats;
#[cfg(test)]
mod testing;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};

/// Exit status: 0 pass, 1 the kernel failed a check, 2 usage or setup error.
fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Run(args) => run::run(args),
        Command::List => list::list().map(|()| true),
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
