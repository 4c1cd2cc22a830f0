//! What a run will do: the command line over the scenario over the
//! defaults, checked once, in one sentence per problem.

use anyhow::{Result, bail};
use probe_common::{MAX_BURST, MAX_PAYLOAD, MAX_SIZES, Trigger, alloc_flags};
use serde::Serialize;

use crate::{cli::RunArgs, scenario};

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Plan {
    pub scenario: String,
    #[serde(serialize_with = "trigger_names")]
    pub triggers: Vec<Trigger>,
    pub duration_s: u64,
    pub payload_sizes_bytes: Vec<u32>,
    pub gfp_zero: bool,
    pub gfp_account: bool,
    pub perf_frequency_hz: u64,
    pub every_nth: u32,
    /// Calls a second per trigger and CPU at most; 0: no limit.
    pub rate_per_cpu_hz: u32,
    /// Empty: every online CPU.
    pub cpus: Vec<u32>,
    pub nolock_share_pct: u32,
    pub burst: u32,
    pub nmi_rate_hz: u32,
    /// 0: no expedited grace periods asked for.
    pub expedited_rate_hz: u32,
    pub load: bool,
    /// False with --no-latency: no reclaim observers, so no latency,
    /// premature-free or lost-object checks.
    pub latency: bool,
}

fn trigger_names<S: serde::Serializer>(t: &[Trigger], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(t.iter().map(|t| t.name()))
}

impl Plan {
    pub fn new(args: &RunArgs) -> Result<Plan> {
        let name = args.scenario.clone().unwrap_or_else(|| "default".into());
        let sc = scenario::find(&name)?;
        let names = if args.triggers.is_empty() { sc.triggers.clone() } else { args.triggers.clone() };
        let mut triggers = Vec::new();
        for n in &names {
            match Trigger::from_name(n) {
                Some(t) if !triggers.contains(&t) => triggers.push(t),
                Some(_) => {}
                None => bail!("there is no trigger {n}: `nolock-probe list` shows them"),
            }
        }
        let plan = Plan {
            scenario: if args.triggers.is_empty() {
                name
            } else {
                format!("{name} (triggers from the command line)")
            },
            triggers,
            duration_s: args.duration.or(sc.duration).unwrap_or(20),
            payload_sizes_bytes: if args.payload_sizes.is_empty() {
                sc.payload_sizes.clone().unwrap_or_else(|| vec![0])
            } else {
                args.payload_sizes.clone()
            },
            gfp_zero: args.zero || sc.gfp_zero.unwrap_or(false),
            gfp_account: args.account || sc.gfp_account.unwrap_or(false),
            perf_frequency_hz: args.perf_frequency.or(sc.perf_frequency).unwrap_or(1000),
            every_nth: args.every_nth.or(sc.every_nth).unwrap_or(1),
            rate_per_cpu_hz: args.rate.or(sc.rate).unwrap_or(0),
            cpus: args.cpus.clone(),
            nolock_share_pct: args.nolock_share.or(sc.nolock_share).unwrap_or(0),
            burst: args.burst.or(sc.burst).unwrap_or(1),
            nmi_rate_hz: args.nmi_rate.or(sc.nmi_rate).unwrap_or(2),
            expedited_rate_hz: args.expedited_rate.or(sc.expedited_rate).unwrap_or(0),
            load: !args.no_load,
            latency: !args.no_latency,
        };
        plan.validate()?;
        Ok(plan)
    }

    fn validate(&self) -> Result<()> {
        if self.triggers.is_empty() {
            bail!("no trigger to run: name at least one with --trigger");
        }
        if self.duration_s == 0 || self.duration_s > 24 * 3600 {
            bail!("--duration must be between 1 and 86400 seconds, not {}", self.duration_s);
        }
        if self.payload_sizes_bytes.is_empty() || self.payload_sizes_bytes.len() > MAX_SIZES {
            bail!("--payload-size takes one to {MAX_SIZES} sizes, not {}", self.payload_sizes_bytes.len());
        }
        if let Some(s) = self.payload_sizes_bytes.iter().find(|&&s| s > MAX_PAYLOAD) {
            bail!("--payload-size must be at most {MAX_PAYLOAD} bytes (the kernel refuses larger), not {s}");
        }
        if self.perf_frequency_hz == 0 || self.perf_frequency_hz > 100_000 {
            bail!("--perf-frequency must be between 1 and 100000 Hz, not {}", self.perf_frequency_hz);
        }
        if self.every_nth == 0 {
            bail!("--every-nth must be at least 1");
        }
        if self.rate_per_cpu_hz > 1_000_000 {
            bail!("--rate must be at most 1000000 calls a second, not {}", self.rate_per_cpu_hz);
        }
        if self.nolock_share_pct > 100 {
            bail!("--nolock-share is a percentage, at most 100, not {}", self.nolock_share_pct);
        }
        if self.burst == 0 || self.burst > MAX_BURST {
            bail!("--burst must be between 1 and {MAX_BURST}, not {}", self.burst);
        }
        if self.nmi_rate_hz == 0 || self.nmi_rate_hz > 100 {
            bail!("--nmi-rate must be between 1 and 100 per second, not {}", self.nmi_rate_hz);
        }
        if self.triggers.contains(&Trigger::MapUpdate) && !self.load {
            bail!("the map_update trigger fires on the built-in load's map updates: drop --no-load");
        }
        if self.expedited_rate_hz > 1000 {
            bail!("--expedited-rate must be at most 1000 per second, not {}", self.expedited_rate_hz);
        }
        if let Some(c) = self.cpus.iter().find(|&&c| c >= 64) {
            bail!("--cpus takes CPU ids below 64, not {c}");
        }
        Ok(())
    }

    pub fn alloc_flags(&self) -> u32 {
        (if self.gfp_zero { alloc_flags::ZERO } else { 0 })
            | (if self.gfp_account { alloc_flags::ACCOUNT } else { 0 })
    }

    /// The gap `--rate` leaves between two calls, in ns (0: no limit).
    pub fn min_interval_ns(&self) -> u64 {
        if self.rate_per_cpu_hz == 0 { 0 } else { 1_000_000_000 / u64::from(self.rate_per_cpu_hz) }
    }

    pub fn cpu_mask(&self) -> u64 {
        self.cpus.iter().fold(0, |m, c| m | 1 << c)
    }

    /// The CPUs the run uses, from the online ones.
    pub fn cpus_of(&self, online: &[u32]) -> Result<Vec<u32>> {
        cpus_in(&self.cpus, online)
    }
}

/// The CPUs `--cpus` names, all online, or every online CPU without it.
pub fn cpus_in(wanted: &[u32], online: &[u32]) -> Result<Vec<u32>> {
    if wanted.is_empty() {
        return Ok(online.to_vec());
    }
    if let Some(c) = wanted.iter().find(|c| !online.contains(c)) {
        bail!("--cpus names CPU {c}, which is not online (online: {online:?})");
    }
    Ok(wanted.to_vec())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    fn plan(args: &[&str]) -> Result<Plan> {
        let mut argv = vec!["nolock-probe", "run"];
        argv.extend_from_slice(args);
        match Cli::try_parse_from(argv).expect("parses").command {
            Command::Run(r) => Plan::new(&r),
            _ => unreachable!("only run is parsed here"),
        }
    }

    #[test]
    fn defaults_are_the_default_scenario() {
        let p = plan(&[]).unwrap();
        assert_eq!(p.scenario, "default");
        assert_eq!(p.triggers, [Trigger::LockedKprobe, Trigger::PerfEvent, Trigger::FentryDeferredWork]);
        assert_eq!((p.duration_s, p.burst, p.every_nth), (20, 1, 1));
        assert_eq!(p.payload_sizes_bytes, [0]);
        assert_eq!(p.alloc_flags(), 0);
    }

    #[test]
    fn the_command_line_overrides_the_scenario() {
        let p = plan(&["--scenario", "sizes", "--every-nth", "2", "--trigger", "nmi,syscall"]).unwrap();
        assert_eq!(p.triggers, [Trigger::Nmi, Trigger::Syscall]);
        assert_eq!(p.every_nth, 2);
        assert_eq!(p.payload_sizes_bytes, [0, 100, 900, 4000]);
        assert_eq!(p.alloc_flags(), alloc_flags::ZERO | alloc_flags::ACCOUNT);
        assert_eq!(plan(&["--cpus", "0,3"]).unwrap().cpu_mask(), 0b1001);
        assert_eq!(plan(&["--rate", "200"]).unwrap().min_interval_ns(), 5_000_000);
        assert_eq!(plan(&[]).unwrap().min_interval_ns(), 0);
        assert_eq!(plan(&["--scenario", "expedited"]).unwrap().expedited_rate_hz, 50);
    }

    #[test]
    fn bad_values_get_one_sentence() {
        for (args, needle) in [
            (&["--duration", "0"][..], "--duration must be between"),
            (&["--payload-size", "4097"][..], "--payload-size must be at most 4096"),
            (&["--payload-size", "1,2,3,4,5"][..], "one to 4 sizes"),
            (&["--perf-frequency", "0"][..], "--perf-frequency must be between"),
            (&["--burst", "129"][..], "--burst must be between 1 and 128"),
            (&["--nolock-share", "101"][..], "at most 100"),
            (&["--trigger", "bogus"][..], "there is no trigger bogus"),
            (&["--scenario", "bogus"][..], "there is no scenario bogus"),
            (&["--cpus", "64"][..], "below 64"),
            (&["--rate", "1000001"][..], "--rate must be at most 1000000"),
            (&["--expedited-rate", "1001"][..], "--expedited-rate must be at most 1000"),
            (&["--trigger", "map_update", "--no-load"][..], "drop --no-load"),
        ] {
            let err = plan(args).unwrap_err().to_string();
            assert!(err.contains(needle), "{args:?}: {err}");
            assert!(!err.contains('\n'), "{args:?}: not one sentence: {err}");
        }
        let p = plan(&["--cpus", "5"]).unwrap();
        assert!(p.cpus_of(&[0, 1]).unwrap_err().to_string().contains("not online"));
    }

    #[test]
    fn malformed_numbers_are_usage_errors() {
        let err = Cli::try_parse_from(["nolock-probe", "run", "--duration", "ten"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
    }
}
