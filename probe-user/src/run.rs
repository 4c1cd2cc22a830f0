//! `nolock-probe run`: check, load, attach, stress, detach, drain, report.

use std::{
    collections::BTreeMap,
    fs::File,
    io::{BufWriter, Write},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context, Result, anyhow};
use probe_common::{RunConfig, Trigger, TriggerCounters};
use tokio::signal::unix::{SignalKind, signal};

use crate::{
    cli::RunArgs,
    kallsyms,
    kernel::KernelInfo,
    kmsg::KernelLog,
    latency::{self, HistogramLayout},
    load::LoadGen,
    probes::Probes,
    readiness,
    report::{
        self, InFlightReport, KernelLogReport, Latency, LoadInfo, Parameters, Report, RunInfo,
        SCHEMA_VERSION, Tool, TriggerReport,
    },
    slub_stats,
};

/// What the once-a-second watch saw.
struct Watched {
    interrupted: bool,
    in_flight: Vec<u64>,
}

/// Runs the stress and writes the report; returns whether every check
/// passed.
pub fn run(args: &RunArgs) -> Result<bool> {
    args.validate()?;
    readiness::require_root()?;
    let ready = readiness::check_running_kernel()?;
    let cpus = aya::util::online_cpus().map_err(|(path, e)| anyhow!("cannot read {path}: {e}"))?;
    let cfg = RunConfig {
        payload_size: args.payload_size,
        alloc_flags: args.alloc_flags(),
        rcu_free_sheaf: kallsyms::address("rcu_free_sheaf")?,
        rcu_free_sheaf_nobarn: kallsyms::address("rcu_free_sheaf_nobarn")?,
        sheaf_rcu_head_off: ready.sheaf.rcu_head,
        sheaf_size_off: ready.sheaf.size,
        sheaf_objects_off: ready.sheaf.objects,
        sheaf_cache_off: ready.sheaf.cache,
        bulk_nr_records_off: ready.bulk.nr_records,
        bulk_records_off: ready.bulk.records,
        loader_tgid: std::process::id(),
        track: u32::from(!args.no_latency),
    };
    let kernel = KernelInfo::read();
    let cache =
        slub_stats::cache_for(size_of::<probe_common::NolockObj>() as u32 + args.payload_size, args.account);
    let mut kernel_log = KernelLog::open_at_end();

    let mut probes = Probes::load(&cfg)?;
    probes.attach_observers(!args.no_latency)?;
    let slub_before = slub_stats::read(&cache);
    let mut load = if args.no_load { None } else { Some(LoadGen::start(&cpus)?) };
    let attachments = probes.attach_triggers(&cpus, args.perf_frequency)?;
    let started_unix_s = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let started = Instant::now();
    eprintln!(
        "nolock-probe: {} triggers attached on {} CPUs for {}s (Ctrl-C stops early and still reports)",
        attachments.len(),
        cpus.len(),
        args.duration
    );

    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().context("cannot start tokio")?;
    let watched = runtime.block_on(watch(&probes, args, load.as_ref(), started))?;
    let elapsed = started.elapsed();

    probes.detach_triggers();
    let load_ops = load.as_mut().map(|l| {
        l.stop();
        l.ops()
    });
    eprintln!("nolock-probe: triggers detached, draining objects in flight");
    let drain = probes.drain()?;

    let mut triggers = Vec::new();
    for a in &attachments {
        triggers.push(TriggerReport::new(a.trigger, a.point.clone(), &cpus, &probes.counters(a.trigger)?));
    }
    let totals = report::sum(triggers.iter().map(|t| &t.total));
    let lost_by_tag = probes.in_flight()?;
    let paths = latency::reports(&probes.latency(&cpus)?);
    drop(probes);
    let slub_after = slub_stats::read(&cache);

    let in_flight = InFlightReport {
        peak: watched.in_flight.iter().copied().max().unwrap_or(0),
        per_second: watched.in_flight,
        lost: lost_by_tag.values().sum(),
        lost_by_trigger: lost_by_tag
            .iter()
            .map(|(tag, n)| {
                let name = Trigger::ALL.iter().find(|t| **t as u32 == *tag).map_or("unknown", |t| t.name());
                (name.to_string(), *n)
            })
            .collect::<BTreeMap<_, _>>(),
        untracked: totals.untracked,
    };
    let kernel_log = KernelLogReport { scanned: kernel_log.scanned(), findings: kernel_log.findings() };
    let slub_stats = slub_stats::cross_check(
        &cache,
        slub_before,
        slub_after,
        totals.sheaf + totals.retry_sheaf,
        totals.sheaf_fail + totals.retry_sheaf_fail,
    );

    let mut checks = if args.no_latency {
        // Without the reclaim observers nothing can be said about early or
        // lost objects: those checks are not run, and the report says so.
        report::kernel_log_checks(&kernel_log)
    } else {
        report::kernel_checks(&totals, &in_flight, &kernel_log, &paths)
    };
    checks.extend(report::checks(&triggers));
    let verdict = report::verdict(&checks);
    let elapsed_s = elapsed.as_secs_f64();
    let report = Report {
        schema_version: SCHEMA_VERSION,
        tool: Tool::THIS,
        kernel,
        parameters: Parameters {
            duration_s: args.duration,
            payload_size_bytes: args.payload_size,
            gfp_zero: args.zero,
            gfp_account: args.account,
            perf_frequency_hz: args.perf_frequency,
            load: !args.no_load,
            latency: !args.no_latency,
        },
        run: RunInfo {
            started_unix_s,
            elapsed_s,
            interrupted: watched.interrupted,
            cpus,
            drain_ns: drain.as_nanos() as u64,
        },
        load: LoadInfo {
            enabled: load_ops.is_some(),
            ops: load_ops.unwrap_or(0),
            ops_per_s: load_ops.map_or(0.0, |n| n as f64 / elapsed_s),
        },
        totals,
        triggers,
        latency: Latency { histogram: HistogramLayout::this(), paths },
        in_flight,
        slub_stats,
        kernel_log,
        checks,
        verdict,
    };
    eprint!("{}", report::summary(&report));
    write(&report, args)?;
    Ok(report.verdict.pass)
}

/// Prints a progress line a second until the duration is over or a signal
/// arrives, sampling the objects in flight.
async fn watch(probes: &Probes, args: &RunArgs, load: Option<&LoadGen>, started: Instant) -> Result<Watched> {
    let mut sigint = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    let mut sigterm = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let deadline = tokio::time::Instant::from_std(started + Duration::from_secs(args.duration));
    let mut tick = tokio::time::interval_at(
        tokio::time::Instant::from_std(started + Duration::from_secs(1)),
        Duration::from_secs(1),
    );
    let mut prev = TriggerCounters::default();
    let mut prev_ops = 0;
    let mut in_flight = Vec::with_capacity(args.duration as usize + 1);
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => return Ok(Watched { interrupted: false, in_flight }),
            _ = sigint.recv() => return Ok(Watched { interrupted: true, in_flight }),
            _ = sigterm.recv() => return Ok(Watched { interrupted: true, in_flight }),
            _ = tick.tick() => {
                let mut now = TriggerCounters::default();
                for t in Trigger::ALL {
                    for c in probes.counters(t)? {
                        now.accumulate(&c);
                    }
                }
                in_flight.push(now.freed_rcu.saturating_sub(now.reclaimed + now.unattributed + now.untracked));
                let ops = load.map(|l| l.ops());
                let rate = ops.map(|o| (o - prev_ops) as f64);
                eprintln!("{}", report::progress_line(started.elapsed().as_secs(), args.duration, &now, &prev, rate));
                prev = now;
                prev_ops = ops.unwrap_or(0);
            }
        }
    }
}

fn write(report: &Report, args: &RunArgs) -> Result<()> {
    match &args.output {
        Some(path) => {
            let file = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
            let mut w = BufWriter::new(file);
            serde_json::to_writer_pretty(&mut w, report)?;
            writeln!(w)?;
            w.flush()?;
            eprintln!("nolock-probe: wrote {}", path.display());
        }
        None => {
            let mut out = std::io::stdout().lock();
            serde_json::to_writer_pretty(&mut out, report)?;
            writeln!(out)?;
        }
    }
    Ok(())
}
