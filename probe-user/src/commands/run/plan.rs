//! What a run will do: the command line over the scenario over the
//! defaults, checked once, in one sentence per problem.

use anyhow::{Result, bail};
use probe_common::{MAX_BURST, MAX_PAYLOAD, MAX_SIZES, Trigger};
use probe_result::{Plan, run::Observe};

use super::{RunArgs, scenario};

/// The plan of `args`: the command line over the scenario over the
/// defaults, checked.
pub fn plan(args: &RunArgs) -> Result<Plan> {
    let (name, sc) = scenario::find(args.scenario.as_deref().unwrap_or("default"))?;
    let names = if args.triggers.is_empty() { &sc.triggers } else { &args.triggers };
    let plan = Plan {
        scenario: if args.triggers.is_empty() {
            name
        } else {
            format!("{name} (triggers from the command line)")
        },
        triggers: scenario::triggers(names)?,
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
        nmi_rate_hz: args.nmi_rate.or(sc.nmi_rate).unwrap_or(1000),
        expedited_rate_hz: args.expedited_rate.or(sc.expedited_rate).unwrap_or(0),
        load: !args.no_load,
        follow: !args.no_follow,
        observe: args.observe.unwrap_or(Observe::Cheap),
    };
    validate(&plan)?;
    Ok(plan)
}

fn validate(p: &Plan) -> Result<()> {
    if p.triggers.is_empty() {
        bail!("no trigger to run: name at least one with --trigger");
    }
    if p.duration_s == 0 || p.duration_s > 24 * 3600 {
        bail!("--duration must be between 1 and 86400 seconds, not {}", p.duration_s);
    }
    if p.payload_sizes_bytes.is_empty() || p.payload_sizes_bytes.len() > MAX_SIZES {
        bail!("--payload-size takes one to {MAX_SIZES} sizes, not {}", p.payload_sizes_bytes.len());
    }
    if let Some(s) = p.payload_sizes_bytes.iter().find(|&&s| s > MAX_PAYLOAD) {
        bail!("--payload-size must be at most {MAX_PAYLOAD} bytes (the kernel refuses larger), not {s}");
    }
    if p.perf_frequency_hz == 0 || p.perf_frequency_hz > 100_000 {
        bail!("--perf-frequency must be between 1 and 100000 Hz, not {}", p.perf_frequency_hz);
    }
    if p.every_nth == 0 {
        bail!("--every-nth must be at least 1");
    }
    if p.rate_per_cpu_hz > 1_000_000 {
        bail!("--rate must be at most 1000000 calls a second, not {}", p.rate_per_cpu_hz);
    }
    if p.nolock_share_pct > 100 {
        bail!("--nolock-share is a percentage, at most 100, not {}", p.nolock_share_pct);
    }
    if p.burst == 0 || p.burst > MAX_BURST {
        bail!("--burst must be between 1 and {MAX_BURST}, not {}", p.burst);
    }
    if p.nmi_rate_hz == 0 || p.nmi_rate_hz > 100_000 {
        bail!("--nmi-rate must be between 1 and 100000 per second, not {}", p.nmi_rate_hz);
    }
    if p.triggers.contains(&Trigger::MapUpdate) && !p.load {
        bail!("the map_update trigger fires on the built-in load's map updates: drop --no-load");
    }
    if p.expedited_rate_hz > 1000 {
        bail!("--expedited-rate must be at most 1000 per second, not {}", p.expedited_rate_hz);
    }
    if let Some(c) = p.cpus.iter().find(|&&c| c >= 64) {
        bail!("--cpus takes CPU ids below 64, not {c}");
    }
    Ok(())
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
    use probe_common::alloc_flags;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        run: RunArgs,
    }

    fn plan_of(args: &[&str]) -> Result<Plan> {
        let argv = std::iter::once("run").chain(args.iter().copied());
        plan(&Cli::try_parse_from(argv).expect("parses").run)
    }

    #[test]
    fn defaults_are_the_default_scenario() {
        let p = plan_of(&[]).unwrap();
        assert_eq!(p.scenario, "default");
        assert_eq!(p.triggers, [Trigger::LockedKprobe, Trigger::PerfEvent, Trigger::FentryDeferredWork]);
        assert_eq!((p.duration_s, p.burst, p.every_nth), (20, 1, 1));
        assert_eq!(p.payload_sizes_bytes, [0]);
        assert_eq!(p.alloc_flags(), 0);
        assert!(p.follow && p.load);
        assert!(!plan_of(&["--no-follow"]).unwrap().follow);
    }

    #[test]
    fn the_command_line_overrides_the_scenario() {
        let p = plan_of(&["--scenario", "sizes", "--every-nth", "2", "--trigger", "nmi,syscall"]).unwrap();
        assert_eq!(p.triggers, [Trigger::Nmi, Trigger::Syscall]);
        assert_eq!(p.every_nth, 2);
        assert_eq!(p.payload_sizes_bytes, [0, 100, 900, 4000]);
        assert_eq!(p.alloc_flags(), alloc_flags::ZERO | alloc_flags::ACCOUNT);
        assert_eq!(plan_of(&["--cpus", "0,3"]).unwrap().cpu_mask(), 0b1001);
        assert_eq!(plan_of(&["--rate", "200"]).unwrap().min_interval_ns(), 5_000_000);
        assert_eq!(plan_of(&[]).unwrap().min_interval_ns(), 0);
        assert_eq!(plan_of(&["--scenario", "expedited"]).unwrap().expedited_rate_hz, 50);
        assert_eq!(plan_of(&["--scenario", "all"]).unwrap().triggers, Trigger::ALL);
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
            let err = plan_of(args).unwrap_err().to_string();
            assert!(err.contains(needle), "{args:?}: {err}");
            assert!(!err.contains('\n'), "{args:?}: not one sentence: {err}");
        }
        let p = plan_of(&["--cpus", "5"]).unwrap();
        assert!(cpus_in(&p.cpus, &[0, 1]).unwrap_err().to_string().contains("not online"));
    }

    #[test]
    fn malformed_numbers_are_usage_errors() {
        let err = Cli::try_parse_from(["run", "--duration", "ten"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
    }
}
