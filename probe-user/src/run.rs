//! `nolock-probe run`: check, load, attach, stress, detach, drain, report.

use std::{
    collections::BTreeMap,
    fs::File,
    io::{BufWriter, Write},
    path::Path,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context, Result, anyhow, bail};
use probe_common::{
    MAX_SHEAVES_LOCK_FNS, MAX_SIZES, NolockObj, RunConfig, SHEAVES_LOCK_FNS, Trigger, TriggerCounters,
};

use crate::{
    btf::KernelBtf,
    cli::RunArgs,
    expedite::{ExpeditedGps, ExpeditedReport},
    export,
    kallsyms::Kallsyms,
    kernel::KernelInfo,
    kmsg::KernelLog,
    latency::{self, HistogramLayout},
    load::LoadGen,
    nmi::{self, NmiSourceReport, SysrqNmi},
    plan::Plan,
    probes::{self, PerfSource, Probes},
    readiness,
    report::{
        self, InFlightReport, KernelLogReport, Latency, LoadInfo, Report, RunInfo, SCHEMA_VERSION, Tool,
        TriggerReport, Unsupported,
    },
    slub_stats,
    stop::{self, Stop},
    view,
};

/// What the once-a-second watch saw.
struct Watched {
    interrupted: bool,
    in_flight: Vec<u64>,
}

/// Splits the plan's triggers into those the kernel can run and those it
/// cannot. Triggers named on the command line must all run; a scenario's
/// run where the kernel supports them, and the report lists the others.
/// A trigger with a known kernel problem here (`trigger_hazard`) is left
/// out of scenarios with its reason, and runs when it is named.
fn supported(
    plan: &Plan,
    args: &RunArgs,
    btf: &KernelBtf,
    nmi_source: bool,
    preempt_rt: bool,
) -> Result<(Vec<Trigger>, Vec<Unsupported>)> {
    let from_scenario = args.triggers.is_empty();
    let mut triggers = Vec::new();
    let mut unsupported = Vec::new();
    for &t in &plan.triggers {
        match (readiness::trigger_support(btf, t, nmi_source), readiness::trigger_hazard(t, preempt_rt)) {
            (Ok(()), None) => triggers.push(t),
            (Ok(()), Some(hazard)) if from_scenario => {
                unsupported.push(Unsupported { trigger: t.name(), reason: format!("left out: {hazard}") })
            }
            (Ok(()), Some(hazard)) => {
                eprintln!("nolock-probe: trigger {} runs although {hazard}", t.name());
                triggers.push(t);
            }
            (Err(reason), _) if from_scenario => unsupported.push(Unsupported { trigger: t.name(), reason }),
            (Err(reason), _) => bail!("trigger {} cannot run here: {reason}", t.name()),
        }
    }
    if triggers.is_empty() {
        bail!(
            "none of scenario {}'s triggers can run on this kernel: `nolock-probe list` says why",
            plan.scenario
        );
    }
    Ok((triggers, unsupported))
}

/// Runs the stress and writes the report; returns whether every check
/// passed.
pub fn run(args: &RunArgs) -> Result<bool> {
    let plan = Plan::new(args)?;
    check_output_dir(args.output.as_deref())?;
    let runtime = stop::runtime()?;
    let _entered = runtime.enter();
    let mut stop = Stop::new()?;
    readiness::require_root()?;
    let btf = readiness::running_kernel_btf()?;
    let ready = readiness::check(&btf)?;
    let online = aya::util::online_cpus().map_err(|(path, e)| anyhow!("cannot read {path}: {e}"))?;
    let cpus = plan.cpus_of(&online)?;
    let pmu = probes::perf_source() == PerfSource::HardwareCycles;
    let preempt_rt = readiness::preempt_rt();
    let (triggers, unsupported) = supported(&plan, args, &btf, pmu || nmi::available(), preempt_rt)?;

    let symbols = Kallsyms::read()?;
    let rcu_free_sheaf = symbols.address("rcu_free_sheaf")?;
    let rcu_free_sheaf_nobarn = symbols.address("rcu_free_sheaf_nobarn")?;
    let sheaves_lock = SheavesLockSites::find(&symbols);
    let mut sizes = [0; MAX_SIZES];
    sizes[..plan.payload_sizes_bytes.len()].copy_from_slice(&plan.payload_sizes_bytes);
    let cfg = RunConfig {
        sizes,
        n_sizes: plan.payload_sizes_bytes.len() as u32,
        alloc_flags: plan.alloc_flags(),
        every_nth: plan.every_nth,
        nolock_share_pct: plan.nolock_share_pct,
        burst: plan.burst,
        _pad0: 0,
        cpu_mask: plan.cpu_mask(),
        min_interval_ns: plan.min_interval_ns(),
        rcu_free_sheaf,
        rcu_free_sheaf_nobarn,
        sheaf_rcu_head_off: ready.sheaf.rcu_head,
        sheaf_size_off: ready.sheaf.size,
        sheaf_objects_off: ready.sheaf.objects,
        sheaf_cache_off: ready.sheaf.cache,
        bulk_nr_records_off: ready.bulk.nr_records,
        bulk_records_off: ready.bulk.records,
        loader_tgid: std::process::id(),
        track: u32::from(plan.latency),
        n_sheaves_lock_fns: sheaves_lock.names.len() as u32,
        sheaves_lock_fns: sheaves_lock.text,
        kernel_text: [symbols.address("_stext")?, symbols.address("_etext")?],
    };
    let sheaves_lock_fns = sheaves_lock.names;
    // The cross-check follows the caches of the first payload size.
    let caches =
        slub_stats::caches_for(size_of::<NolockObj>() as u32 + plan.payload_sizes_bytes[0], plan.gfp_account);
    let setup = Setup {
        plan: &plan,
        cfg,
        triggers,
        unsupported,
        cpus,
        online,
        pmu,
        preempt_rt,
        caches,
        sheaves_lock_fns,
    };

    let mut runs = Vec::new();
    for i in 0..args.repeat.max(1) {
        if args.repeat > 1 {
            eprintln!("nolock-probe: repeat {}/{}", i + 1, args.repeat);
        }
        let report = once(&setup, &runtime, &mut stop)?;
        eprint!("{}", view::render(&serde_json::to_value(&report)?));
        let interrupted = report.run.interrupted;
        runs.push(report);
        if interrupted {
            break;
        }
    }
    let document = combine(runs)?;
    write(&document, args.output.as_deref())?;
    for format in &args.export {
        let base = args.output.clone().unwrap_or_else(|| "nolock-probe.json".into());
        for (suffix, doc) in export::export(&document, *format)? {
            let path = base.with_extension(format!("{suffix}.json"));
            std::fs::write(&path, serde_json::to_string_pretty(&doc)? + "\n")
                .with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!("nolock-probe: wrote {}", path.display());
        }
    }
    Ok(document["verdict"]["pass"] == serde_json::Value::Bool(true))
}

/// The functions that call `slab_attach_kprobe_locked()` with a sheaves
/// lock held, as the running kernel has them: their text for the
/// locked_kprobe trigger, their names for the report.
struct SheavesLockSites {
    text: [[u64; 2]; MAX_SHEAVES_LOCK_FNS],
    names: Vec<String>,
}

impl SheavesLockSites {
    fn find(symbols: &Kallsyms) -> Self {
        let mut sites = SheavesLockSites { text: [[0; 2]; MAX_SHEAVES_LOCK_FNS], names: Vec::new() };
        for (slot, f) in sites.text.iter_mut().zip(symbols.functions(&SHEAVES_LOCK_FNS)) {
            *slot = [f.start, f.end];
            sites.names.push(f.name);
        }
        sites
    }
}

/// Everything the runs of one invocation share.
struct Setup<'a> {
    plan: &'a Plan,
    cfg: RunConfig,
    triggers: Vec<Trigger>,
    unsupported: Vec<Unsupported>,
    cpus: Vec<u32>,
    online: Vec<u32>,
    pmu: bool,
    /// Picks the observers' hooks and which triggers scenarios leave out.
    preempt_rt: bool,
    caches: Vec<String>,
    /// The functions whose `slab_attach_kprobe_locked()` calls count as
    /// sheaves-lock sites.
    sheaves_lock_fns: Vec<String>,
}

/// One run, or with --repeat the last run with every run under `repeats`
/// (their spread is what `compare` weighs changes against) and a verdict
/// that fails if any run failed.
fn combine(runs: Vec<Report>) -> Result<serde_json::Value> {
    let values: Vec<serde_json::Value> = runs.iter().map(serde_json::to_value).collect::<Result<_, _>>()?;
    let mut document = values.last().cloned().context("no run was made")?;
    if values.len() > 1 {
        let reasons: Vec<serde_json::Value> = values
            .iter()
            .enumerate()
            .flat_map(|(i, v)| {
                v["verdict"]["reasons"].as_array().cloned().unwrap_or_default().into_iter().map(move |r| {
                    serde_json::Value::String(format!("repeat {}: {}", i + 1, r.as_str().unwrap_or("")))
                })
            })
            .collect();
        document["verdict"] = serde_json::json!({"pass": reasons.is_empty(), "reasons": reasons});
        document["repeats"] = serde_json::Value::Array(values);
    }
    Ok(document)
}

/// Attach, stress, detach, drain and report, once.
fn once(setup: &Setup, runtime: &tokio::runtime::Runtime, stop: &mut Stop) -> Result<Report> {
    let Setup { plan, cfg, triggers, pmu, preempt_rt, caches, .. } = setup;
    let (pmu, cpus) = (*pmu, setup.cpus.clone());
    let kernel = KernelInfo::read();
    let mut kernel_log = KernelLog::open_at_end();

    // The verifier takes a while under emulation (about 20 s in the TCG
    // guest): say what is going on.
    eprintln!("nolock-probe: loading the BPF programs (the kernel verifies each)");
    let loading = Instant::now();
    let mut probes = Probes::load(cfg, triggers, *preempt_rt)?;
    eprintln!(
        "nolock-probe: {} BPF programs loaded in {:.1}s",
        probes.loaded(),
        loading.elapsed().as_secs_f64()
    );
    probes.attach_observers(plan.latency)?;
    let slub_before = slub_stats::read(caches);
    let map_updates = triggers.contains(&Trigger::MapUpdate);
    let mut load = if plan.load { Some(LoadGen::start(&cpus, map_updates)?) } else { None };
    let attachments = probes.attach_triggers(triggers, &cpus, plan.perf_frequency_hz)?;
    let nmi_wanted = triggers.contains(&Trigger::Nmi);
    let mut sysrq = if nmi_wanted && !pmu { Some(SysrqNmi::start(plan.nmi_rate_hz)?) } else { None };
    let mut expedited =
        if plan.expedited_rate_hz > 0 { Some(ExpeditedGps::start(plan.expedited_rate_hz)?) } else { None };
    let started_unix_s = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let started = Instant::now();
    eprintln!(
        "nolock-probe: scenario {}: {} triggers attached on {} CPUs for {}s (Ctrl-C stops early and still reports)",
        plan.scenario,
        attachments.len(),
        cpus.len(),
        plan.duration_s
    );
    for u in &setup.unsupported {
        eprintln!("nolock-probe: trigger {} skipped: {}", u.trigger, u.reason);
    }

    let watched = runtime.block_on(watch(&probes, plan, load.as_ref(), started, stop))?;
    let elapsed = started.elapsed();

    probes.detach_triggers();
    let nmi_source = match (nmi_wanted, sysrq.as_mut()) {
        (true, Some(s)) => {
            Some(NmiSourceReport { kind: "sysrq-l", rate_hz: plan.nmi_rate_hz, sent: s.stop() })
        }
        (true, None) => Some(NmiSourceReport { kind: "pmu", rate_hz: 0, sent: 0 }),
        _ => None,
    };
    let expedited_gps =
        expedited.as_mut().map(|e| ExpeditedReport { rate_hz: plan.expedited_rate_hz, requested: e.stop() });
    let load_ops = load.as_mut().map(|l| {
        l.stop();
        l.ops()
    });
    eprintln!("nolock-probe: triggers detached, draining objects in flight");
    let drain = probes.drain()?;

    let mut trigger_reports = Vec::new();
    for a in &attachments {
        let mut t = TriggerReport::new(a.trigger, a.point.clone(), &cpus, &probes.counters(a.trigger)?);
        // The drain frees held objects on any CPU.
        t.call_ns = probes.call_times(a.trigger, &setup.online)?;
        trigger_reports.push(t);
    }
    let totals = report::sum(trigger_reports.iter().map(|t| &t.total));
    let lost_by_tag = probes.in_flight()?;
    // RCU callbacks and the drain may reclaim on CPUs outside --cpus.
    let paths = latency::reports(&probes.latency(&setup.online)?);
    let programs = probes.program_stats()?;
    let recursion_misses: BTreeMap<String, u64> =
        programs.iter().map(|(name, s)| (name.clone(), s.recursion_misses)).collect();
    drop(probes);
    let path_misses: u64 = probe_common::PATH_OBSERVERS.iter().filter_map(|p| recursion_misses.get(*p)).sum();
    let slub_after = slub_stats::read(caches);

    let in_flight = InFlightReport {
        peak: watched.in_flight.iter().copied().max().unwrap_or(0),
        per_second: watched.in_flight,
        lost: lost_by_tag.values().sum(),
        lost_by_trigger: lost_by_tag
            .iter()
            .map(|(tag, n)| {
                let name = Trigger::ALL.get(*tag as usize).map_or("unknown", |t| t.name());
                (name.to_string(), *n)
            })
            .collect::<BTreeMap<_, _>>(),
        untracked: totals.untracked,
    };
    let kernel_log = KernelLogReport { scanned: kernel_log.scanned(), findings: kernel_log.findings() };
    let slub_stats = slub_stats::cross_check(
        &caches.join(" + "),
        slub_before,
        slub_after,
        totals.sheaf + totals.retry_sheaf,
        totals.sheaf_fail + totals.retry_sheaf_fail,
    );

    let reclaim_misses: u64 = probes::reclaim_observers().filter_map(|p| recursion_misses.get(p)).sum();
    let mut checks = if plan.latency {
        let mut c = report::kernel_checks(&totals, &in_flight, &kernel_log, &paths);
        c.extend(report::follow_checks(&totals, in_flight.lost, reclaim_misses));
        c
    } else {
        // Without the reclaim observers nothing can be said about early or
        // lost objects: those checks are not run, and the report says so.
        report::kernel_log_checks(&kernel_log)
    };
    checks.extend(report::checks(&trigger_reports, path_misses));
    if slub_stats.available {
        // The kernel counts every rcu-sheaf attempt in these caches, the
        // tool only its own: seeing more than the kernel is a tool bug.
        checks.push(report::Check {
            name: "slub_stats_consistent",
            pass: slub_stats.others_free_rcu_sheaf >= 0 && slub_stats.others_free_rcu_sheaf_fail >= 0,
            detail: slub_stats.explanation.clone(),
        });
    }
    let verdict = report::verdict(&checks);
    let elapsed_s = elapsed.as_secs_f64();
    let report = Report {
        schema_version: SCHEMA_VERSION,
        tool: Tool::THIS,
        kernel,
        plan: (*plan).clone(),
        unsupported: setup.unsupported.clone(),
        nmi_source,
        expedited_gps,
        run: RunInfo {
            started_unix_s,
            elapsed_s,
            interrupted: watched.interrupted,
            cpus,
            drain_ns: drain.as_nanos() as u64,
            sheaves_lock_functions: setup.sheaves_lock_fns.clone(),
        },
        load: LoadInfo {
            enabled: load_ops.is_some(),
            ops: load_ops.unwrap_or(0),
            ops_per_s: load_ops.map_or(0.0, |n| n as f64 / elapsed_s),
        },
        totals,
        triggers: trigger_reports,
        latency: Latency { histogram: HistogramLayout::this(), paths },
        in_flight,
        slub_stats,
        kernel_log,
        bpf_cost: report::BpfCost::new(&programs, elapsed_s, setup.online.len()),
        programs,
        recursion_misses,
        checks,
        verdict,
    };
    Ok(report)
}

/// Prints a progress line a second until the duration is over or a signal
/// arrives, sampling the objects in flight.
async fn watch(
    probes: &Probes,
    plan: &Plan,
    load: Option<&LoadGen>,
    started: Instant,
    stop: &mut Stop,
) -> Result<Watched> {
    let deadline = tokio::time::Instant::from_std(started + Duration::from_secs(plan.duration_s));
    let mut tick = tokio::time::interval_at(
        tokio::time::Instant::from_std(started + Duration::from_secs(1)),
        Duration::from_secs(1),
    );
    let mut prev = TriggerCounters::default();
    let mut prev_ops = 0;
    let mut in_flight = Vec::with_capacity(plan.duration_s as usize + 1);
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => return Ok(Watched { interrupted: false, in_flight }),
            _ = stop.signalled() => return Ok(Watched { interrupted: true, in_flight }),
            _ = tick.tick() => {
                let now = probes::unpreempted(|| -> Result<TriggerCounters> {
                    let mut now = TriggerCounters::default();
                    for &t in &plan.triggers {
                        for c in probes.counters(t)? {
                            now.accumulate(&c);
                        }
                    }
                    Ok(now)
                })?;
                // Untracked objects are never seen reclaimed: leave them out.
                // Without the reclaim observers nothing is seen reclaimed.
                if plan.latency {
                    in_flight.push(now.freed_rcu.saturating_sub(now.reclaimed + now.untracked));
                }
                let ops = load.map(|l| l.ops());
                let rate = ops.map(|o| (o - prev_ops) as f64);
                eprintln!("{}", report::progress_line(started.elapsed().as_secs(), plan.duration_s, &now, &prev, rate));
                prev = now;
                prev_ops = ops.unwrap_or(0);
            }
        }
    }
}

/// Refuses an --output in a directory that does not exist before anything
/// runs, rather than after.
pub fn check_output_dir(output: Option<&Path>) -> Result<()> {
    if let Some(dir) = output.and_then(Path::parent).filter(|d| !d.as_os_str().is_empty()) {
        if !dir.is_dir() {
            bail!("--output is in {}, a directory that does not exist", dir.display());
        }
    }
    Ok(())
}

pub fn write(report: &serde_json::Value, output: Option<&Path>) -> Result<()> {
    match output {
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
