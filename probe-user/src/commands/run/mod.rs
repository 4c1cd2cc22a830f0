//! `nolock-probe run`: plan, then per repeat attach → stress → collect →
//! judge, then write.

mod plan;
pub mod scenario;
mod setup;
mod stream;
mod watch;

use std::{
    collections::BTreeMap,
    path::PathBuf,
    time::{Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context, Result};
use aya::maps::{MapData, RingBuf};
use clap::Args;
use probe_common::{NolockObj, Trigger};
use probe_result::{
    Document, RunReport, SCHEMA_VERSION, Tool, Verdict,
    batching::Batching,
    checks,
    kernel::BpfCost,
    run::{
        self, ExpeditedReport, InFlightReport, Latency, LoadInfo, NmiSourceReport, Observe, RunInfo,
        TriggerReport,
    },
};

pub use self::{plan::cpus_in, setup::kernel_config};
use self::{setup::Setup, watch::Watched};
use super::session::{self, Observed, Session};
use crate::{
    bpf::{Attachment, Probes},
    judge::latency,
    kernel::{gcov, machine, slub_stats},
    render::{export, terminal},
    stress::{expedite::ExpeditedGps, load_gen::LoadGen, nmi::NmiSource},
};

/// Options of `run`. Those left out come from the scenario, then from the
/// defaults.
#[derive(Debug, Clone, Default, Args)]
pub struct RunArgs {
    /// A named scenario (see `nolock-probe list`), or a scenario file's
    /// path (scenarios/example.toml shows every key); default: `default`.
    #[arg(long)]
    pub scenario: Option<String>,
    /// Run these triggers instead of the scenario's (repeat, or
    /// comma-separate; `*` is every trigger).
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
    /// NMIs a second on each CPU for the nmi trigger where the machine has
    /// no PMU: the kernel's NMI IPIs (patch 0004), or on kernels without
    /// them sysrq-l backtrace rounds, at most 10 a second [default: 1000].
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
    /// lost-object checks): measures what following costs.
    #[arg(long, alias = "no-latency")]
    pub no_follow: bool,
    /// How each kfree_rcu_nolock()'s path is told: cheap (the caller marks
    /// its call; no observer on __kfree_rcu_sheaf(), whose two trampolines
    /// cost more than the call under TCG) or full (independent observers
    /// on __kfree_rcu_sheaf() as well, which also catch a double free as
    /// it is queued, and cross-check the cheap count) [default: cheap].
    #[arg(long, value_name = "MODE")]
    pub observe: Option<Observe>,
    /// Run the whole stress N times; the result carries every run under
    /// `repeats`, whose spread `compare` uses [default: 1].
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=20))]
    pub repeat: u32,
    /// Also write the result in a dashboard format, as
    /// `<output>.<kind>.json` next to --output (repeatable).
    #[arg(long, value_enum)]
    pub export: Vec<export::Format>,
    /// Also write one JSON line a second to this file or device (appended
    /// to; `-` is stdout, with --output): the counters so far and the
    /// first live invariant that failed, flushed at once, so what the tool
    /// saw survives a kernel that dies mid-run (`cargo xtask vm` streams
    /// to a serial port).
    #[arg(long, value_name = "PATH")]
    pub stream: Option<PathBuf>,
}

/// Runs the stress and writes the result; returns whether every check
/// passed.
pub fn run(args: &RunArgs) -> Result<bool> {
    let plan = plan::plan(args)?;
    let mut stream =
        args.stream.as_deref().map(|p| stream::Stream::open(p, args.output.as_deref())).transpose()?;
    let mut session = Session::start(args.output.as_deref())?;
    let setup = Setup::new(plan, args.triggers.is_empty(), &session)?;
    let mut runs = Vec::new();
    for i in 0..args.repeat {
        if args.repeat > 1 {
            eprintln!("nolock-probe: repeat {}/{}", i + 1, args.repeat);
        }
        let report = once(&setup, &mut session, stream.as_mut(), i + 1)?;
        eprint!("{}", terminal::run(&report));
        let interrupted = report.run.interrupted;
        runs.push(report);
        if interrupted {
            break;
        }
    }
    let document = Document::Run(Box::new(RunReport::combine(runs).context("no run was made")?));
    session::write(&document, args.output.as_deref())?;
    let prefix = args.output.clone().unwrap_or_else(|| "nolock-probe.json".into());
    for &format in &args.export {
        export::write(export::export(&document, format)?, &prefix)?;
    }
    Ok(document.verdict().pass)
}

/// One run: attach, stress, collect, judge.
fn once(
    setup: &Setup,
    session: &mut Session,
    stream: Option<&mut stream::Stream>,
    repeat: u32,
) -> Result<RunReport> {
    let observed = Observed::now();
    let mut attached = attach(setup, session.preempt_rt, repeat == 1)?;
    let watched = stress(&mut attached, setup, session, stream, repeat)?;
    let mut report = collect(attached, setup, &session.online, watched, observed)?;
    judge(&mut report);
    Ok(report)
}

/// What is running during the stress.
struct Attached {
    probes: Probes,
    /// Taken by the watch, which waits on it.
    alerts: Option<RingBuf<MapData>>,
    attachments: Vec<Attachment>,
    load: Option<LoadGen>,
    nmi: Option<NmiSource>,
    expedited: Option<ExpeditedGps>,
    slub_before: Option<slub_stats::Snapshot>,
    started_unix_s: u64,
    started: Instant,
}

/// Loads (the verifier takes about 20 s in the TCG guest: say so), then
/// attaches the observers, starts the load, attaches the triggers and
/// starts the NMI and expedited-grace-period sources. On a coverage
/// kernel the first run zeroes the counters just before the load starts.
fn attach(setup: &Setup, preempt_rt: bool, reset_coverage: bool) -> Result<Attached> {
    let plan = &setup.plan;
    eprintln!("nolock-probe: loading the BPF programs (the kernel verifies each)");
    let loading = Instant::now();
    let mut probes = Probes::load(&setup.cfg, &setup.triggers, plan.observers(), preempt_rt)?;
    eprintln!(
        "nolock-probe: {} BPF programs loaded in {:.1}s ({})",
        probes.loaded(),
        loading.elapsed().as_secs_f64(),
        probes.load.summary()
    );
    probes.attach_observers(plan.observers())?;
    let alerts = Some(probes.take_alerts()?);
    let slub_before = slub_stats::read(&setup.caches);
    if reset_coverage && gcov::reset()? {
        eprintln!("nolock-probe: coverage counters reset (a gcov kernel)");
    }
    let map_updates = setup.triggers.contains(&Trigger::MapUpdate);
    let load = if plan.load { Some(LoadGen::start(&setup.cpus, map_updates)?) } else { None };
    let attachments = probes.attach_triggers(&setup.triggers, &setup.cpus, plan.perf_frequency_hz)?;
    let nmi = if setup.triggers.contains(&Trigger::Nmi) && !setup.pmu {
        NmiSource::start(plan.nmi_rate_hz)?
    } else {
        None
    };
    let expedited =
        if plan.expedited_rate_hz > 0 { Some(ExpeditedGps::start(plan.expedited_rate_hz)?) } else { None };
    eprintln!(
        "nolock-probe: scenario {}: {} triggers attached on {} CPUs for {}s (Ctrl-C stops early and still reports)",
        plan.scenario,
        attachments.len(),
        setup.cpus.len(),
        plan.duration_s
    );
    for u in &setup.unsupported {
        eprintln!("nolock-probe: trigger {} skipped: {}", u.trigger.name(), u.reason);
    }
    Ok(Attached {
        probes,
        alerts,
        attachments,
        load,
        nmi,
        expedited,
        slub_before,
        started_unix_s: SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        started: Instant::now(),
    })
}

/// The stress itself: a progress line a second until the duration is over
/// or a signal arrives.
fn stress(
    a: &mut Attached,
    setup: &Setup,
    session: &mut Session,
    stream: Option<&mut stream::Stream>,
    repeat: u32,
) -> Result<Watched> {
    let Session { runtime, stop, .. } = session;
    let alerts = a.alerts.take();
    runtime.block_on(watch::watch(
        &a.probes,
        &setup.plan,
        a.load.as_ref(),
        a.started,
        stop,
        watch::Outputs { stream, alerts },
        repeat,
    ))
}

/// Detaches the triggers, stops the sources, drains, reads the maps,
/// unloads, and puts what the maps and the kernel counted into a result
/// without checks.
fn collect(
    mut a: Attached,
    setup: &Setup,
    online: &[u32],
    watched: Watched,
    mut observed: Observed,
) -> Result<RunReport> {
    let plan = &setup.plan;
    let elapsed_s = a.started.elapsed().as_secs_f64();
    a.probes.detach_triggers();
    let nmi_source = if setup.triggers.contains(&Trigger::Nmi) {
        Some(match a.nmi.as_mut() {
            Some(s) => NmiSourceReport { kind: s.kind().name().into(), rate_hz: s.rate_hz(), sent: s.stop() },
            None => NmiSourceReport { kind: "pmu".into(), rate_hz: 0, sent: 0 },
        })
    } else {
        None
    };
    let expedited_gps = a
        .expedited
        .as_mut()
        .map(|e| ExpeditedReport { rate_hz: plan.expedited_rate_hz, requested: e.stop() });
    let load_ops = a.load.as_mut().map(|l| {
        l.stop();
        l.ops()
    });
    eprintln!("nolock-probe: triggers detached, draining objects in flight");
    let drain = a.probes.drain()?;

    let mut triggers = Vec::new();
    for at in &a.attachments {
        let mut t =
            TriggerReport::new(at.trigger, at.point.clone(), &setup.cpus, &a.probes.counters(at.trigger)?);
        // The drain frees held objects on any CPU.
        t.call_ns = latency::call_times(&a.probes.call_times(at.trigger, online)?);
        triggers.push(t);
    }
    let totals = probe_result::run::sum(triggers.iter().map(|t| &t.total));
    let lost_by_tag = a.probes.in_flight()?;
    let violations = a.probes.violations()?;
    // RCU callbacks and the drain may reclaim on CPUs outside --cpus.
    let paths = latency::path_reports(&a.probes.latency(online)?);
    let programs = a.probes.program_stats()?;
    drop(a.probes);
    let slub_after = slub_stats::read(&setup.caches);
    let in_flight = InFlightReport {
        peak: watched.in_flight.iter().copied().max().unwrap_or(0),
        per_second: watched.in_flight,
        lost: lost_by_tag.values().sum(),
        lost_by_trigger: lost_by_tag
            .iter()
            .map(|(tag, n)| (Trigger::ALL.get(*tag as usize).map_or("unknown", |t| t.name()).to_string(), *n))
            .collect::<BTreeMap<_, _>>(),
        untracked: totals.untracked,
    };
    let batching = plan.follow.then(|| {
        let header = size_of::<NolockObj>() as u32;
        let sizes = &plan.payload_sizes_bytes;
        let bytes = sizes.iter().map(|&s| f64::from(slub_stats::object_size(header + s))).sum::<f64>()
            / sizes.len().max(1) as f64;
        Batching::new(&paths, &in_flight, elapsed_s, bytes)
    });
    let recursion_misses: BTreeMap<String, u64> =
        programs.iter().map(|(name, s)| (name.clone(), s.recursion_misses)).collect();
    // In cheap mode a run of the fallback's observer that the kernel
    // skipped leaves a fallback counted as a sheaf: the tool's sure count
    // is the sheaf count less those.
    let (tool_ok, tool_fail) = match plan.observe {
        Observe::Full => {
            (totals.sheaf + totals.retry_sheaf, Some(totals.sheaf_fail + totals.retry_sheaf_fail))
        }
        Observe::Cheap => (totals.sheaf.saturating_sub(run::path_misses(&recursion_misses)), None),
    };
    let slub_stats =
        slub_stats::cross_check(&setup.caches.join(" + "), a.slub_before, slub_after, tool_ok, tool_fail);
    Ok(RunReport {
        schema_version: SCHEMA_VERSION,
        tool: Tool::nolock_probe(env!("CARGO_PKG_VERSION")),
        kernel: observed.kernel,
        plan: plan.clone(),
        unsupported: setup.unsupported.clone(),
        nmi_source,
        expedited_gps,
        run: RunInfo {
            started_unix_s: a.started_unix_s,
            elapsed_s,
            interrupted: watched.interrupted,
            cpus: setup.cpus.clone(),
            drain_ns: drain.as_nanos() as u64,
            sheaves_lock_functions: setup.sheaves_lock_fns.clone(),
            machine: Some(machine::detect()),
            loader: Some(watched.loader),
        },
        load: LoadInfo {
            enabled: load_ops.is_some(),
            ops: load_ops.unwrap_or(0),
            ops_per_s: load_ops.map_or(0.0, |n| n as f64 / elapsed_s),
        },
        totals,
        triggers,
        latency: Latency { histogram: Default::default(), paths },
        in_flight,
        batching,
        violations,
        slub_stats,
        kernel_log: observed.log.report(),
        recursion_misses,
        bpf_cost: Some(BpfCost::new(&programs, elapsed_s, online.len())),
        programs,
        checks: Vec::new(),
        verdict: Verdict::default(),
        repeats: Vec::new(),
        console: None,
        coverage: None,
    })
}

/// The checks over what was collected, and the verdict they make.
fn judge(report: &mut RunReport) {
    report.checks = checks::of_run(report);
    report.verdict = Verdict::of(&report.checks);
}
