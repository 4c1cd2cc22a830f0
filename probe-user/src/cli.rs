//! Command line.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::{Args, Parser, Subcommand};
use probe_common::{MAX_PAYLOAD, alloc_flags};

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
}

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// How long to run, in seconds.
    #[arg(long, default_value_t = 20)]
    pub duration: u64,
    /// Write the JSON document here instead of stdout.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// Payload bytes after the 64-byte object header (0..=4096).
    #[arg(long, default_value_t = 0)]
    pub payload_size: u32,
    /// Allocate with __GFP_ZERO.
    #[arg(long)]
    pub zero: bool,
    /// Allocate with __GFP_ACCOUNT.
    #[arg(long)]
    pub account: bool,
    /// Perf event sampling frequency per CPU, in Hz.
    #[arg(long, default_value_t = 1000)]
    pub perf_frequency: u64,
    /// Do not run the built-in kmalloc/kfree load on every CPU.
    #[arg(long)]
    pub no_load: bool,
    /// Do not follow objects to their reclaim (no latency, premature-free or
    /// lost-object checks): measures what the observers cost.
    #[arg(long)]
    pub no_latency: bool,
}

impl RunArgs {
    /// Rejects what clap's types cannot: each problem is one sentence.
    pub fn validate(&self) -> Result<()> {
        if self.duration == 0 || self.duration > 24 * 3600 {
            bail!("--duration must be between 1 and 86400 seconds, not {}", self.duration);
        }
        if self.payload_size > MAX_PAYLOAD {
            bail!(
                "--payload-size must be at most {MAX_PAYLOAD} bytes (the kernel refuses larger), not {}",
                self.payload_size
            );
        }
        if self.perf_frequency == 0 || self.perf_frequency > 100_000 {
            bail!("--perf-frequency must be between 1 and 100000 Hz, not {}", self.perf_frequency);
        }
        if let Some(out) = &self.output {
            if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
                if !dir.is_dir() {
                    bail!("--output {} is in a directory that does not exist", out.display());
                }
            }
        }
        Ok(())
    }

    pub fn alloc_flags(&self) -> u32 {
        (if self.zero { alloc_flags::ZERO } else { 0 })
            | (if self.account { alloc_flags::ACCOUNT } else { 0 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<RunArgs, clap::Error> {
        let mut argv = vec!["nolock-probe", "run"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv).map(|cli| match cli.command {
            Command::Run(r) => r,
        })
    }

    #[test]
    fn defaults_are_valid() {
        let args = parse(&[]).unwrap();
        args.validate().unwrap();
        assert_eq!(args.duration, 20);
        assert_eq!(args.alloc_flags(), 0);
    }

    #[test]
    fn flags_map_to_the_kernel_bits() {
        let args = parse(&["--zero", "--account"]).unwrap();
        assert_eq!(args.alloc_flags(), alloc_flags::ZERO | alloc_flags::ACCOUNT);
    }

    #[test]
    fn out_of_range_values_get_one_sentence() {
        for (args, needle) in [
            (&["--duration", "0"][..], "--duration must be between"),
            (&["--payload-size", "4097"][..], "--payload-size must be at most 4096"),
            (&["--perf-frequency", "0"][..], "--perf-frequency must be between"),
            (&["--output", "/nonexistent-dir/x.json"][..], "does not exist"),
        ] {
            let err = parse(args).unwrap().validate().unwrap_err().to_string();
            assert!(err.contains(needle), "{args:?}: {err}");
            assert!(!err.contains('\n'), "{args:?}: not one sentence: {err}");
        }
    }

    #[test]
    fn malformed_numbers_are_usage_errors() {
        let err = parse(&["--duration", "ten"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
    }
}
