//! nolock-probe: stress and verify kfree_rcu_nolock() from every context a
//! BPF program can run in.

mod bench;
mod btf;
mod cli;
mod compare;
mod expedite;
mod export;
mod kallsyms;
mod kernel;
mod kmsg;
mod latency;
mod list;
mod load;
mod metrics;
mod nmi;
mod pacer;
mod plan;
mod probes;
mod readiness;
mod report;
mod run;
mod scenario;
mod slub_stats;
mod stop;
mod svg;
#[cfg(test)]
mod testing;
mod validate;
mod view;

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Parser;

use crate::cli::{Cli, Command};

/// Exit status: 0 pass, 1 the kernel failed a check, 2 usage or setup error.
fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Run(args) => run::run(args),
        Command::Bench(args) => bench::bench(args),
        Command::List => list::list().map(|()| true),
        Command::Export(a) => read(&a.result).and_then(|r| {
            for (kind, doc) in export::export(&r, a.format)? {
                let text = serde_json::to_string_pretty(&doc)?;
                match &a.output {
                    Some(prefix) => {
                        let path = prefix.with_extension(format!("{kind}.json"));
                        std::fs::write(&path, text + "\n")
                            .with_context(|| format!("cannot write {}", path.display()))?;
                        eprintln!("nolock-probe: wrote {}", path.display());
                    }
                    None => println!("{text}"),
                }
            }
            Ok(true)
        }),
        Command::Compare(a) => compare(a),
        Command::Report(a) => read(&a.result).and_then(|r| {
            print!("{}", view::render(&r));
            if let Some(svg) = &a.svg {
                std::fs::write(svg, svg::render(&r))
                    .with_context(|| format!("cannot write {}", svg.display()))?;
                eprintln!("nolock-probe: wrote {}", svg.display());
            }
            Ok(true)
        }),
        Command::Validate { results } => validate::validate(results).map(|()| true),
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

fn read(path: &std::path::Path) -> Result<serde_json::Value> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not a JSON document", path.display()))
}

/// Prints the comparison; false (exit 1) when a gated metric regressed.
fn compare(a: &cli::CompareArgs) -> Result<bool> {
    let thresholds = match &a.thresholds {
        Some(p) => std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?,
        None => compare::DEFAULT_THRESHOLDS.to_string(),
    };
    let rows = compare::compare(&read(&a.base)?, &read(&a.new)?, &compare::parse_thresholds(&thresholds)?);
    print!("{}", compare::render(&rows));
    let regressed: Vec<&str> = rows.iter().filter(|r| r.regressed).map(|r| r.name.as_str()).collect();
    if regressed.is_empty() {
        println!("no gated metric regressed");
        Ok(true)
    } else {
        println!("regressed: {}", regressed.join(", "));
        Ok(false)
    }
}
