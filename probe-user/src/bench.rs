//! `nolock-probe bench`: what one kmalloc_nolock() and one
//! kfree_rcu_nolock() cost, against kfree_nolock(), in task context with
//! nothing else attached. As the kernel's BPF bench does it: a warm-up,
//! then fixed-length samples whose mean and spread are reported, and the
//! calls' own times as distributions.

use std::{
    collections::BTreeMap,
    path::PathBuf,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{Result, anyhow, bail};
use clap::Args;
use probe_common::{
    BENCH_BATCH, BenchFree, LatencyStats, MAX_PAYLOAD, NolockObj, RunConfig, alloc_flags, bench_mode,
    bench_op, bench_slot,
};
use serde::Serialize;

use crate::{
    kernel::KernelInfo,
    kmsg::KernelLog,
    latency::{self, StageReport},
    load::LoadGen,
    plan,
    probes::{Probes, ProgramStats},
    readiness,
    report::{self, Check, KernelLogReport, SCHEMA_VERSION, Tool, Verdict},
    run, slub_stats,
    stop::{self, Stop},
    view,
};

#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Free functions to measure, one after the other.
    #[arg(long = "free", value_delimiter = ',', default_values_t = ["kfree_rcu_nolock".to_string(), "kfree_nolock".to_string()])]
    pub frees: Vec<String>,
    /// Samples per free function.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(2..=100))]
    pub samples: u32,
    /// Length of one sample, in seconds.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=60))]
    pub sample_secs: u64,
    /// Warm-up before the samples of each free function, in seconds.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(0..=60))]
    pub warmup: u64,
    /// Only these CPUs (comma-separated ids) [default: all online].
    #[arg(long, value_delimiter = ',')]
    pub cpus: Vec<u32>,
    /// Payload bytes after the 64-byte object header.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=MAX_PAYLOAD as i64))]
    pub payload_size: u32,
    /// Allocate with __GFP_ZERO.
    #[arg(long)]
    pub zero: bool,
    /// Allocate with __GFP_ACCOUNT.
    #[arg(long)]
    pub account: bool,
    /// Attach the path observers that `run` uses: the calls then include
    /// their trampolines (their programs' own time is left out, as in
    /// `run`), which is what `run`'s call times carry on top of the bare
    /// calls.
    #[arg(long)]
    pub observers: bool,
    /// Write the JSON document here instead of stdout.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
}

/// The kernel's slab statistics reported per free function.
const SLUB_COUNTERS: [&str; 6] = [
    "alloc_fastpath",
    "alloc_slowpath",
    "free_fastpath",
    "free_slowpath",
    "free_rcu_sheaf",
    "free_rcu_sheaf_fail",
];

/// The bench maps as read, per CPU in the order of `cpus`, indexed like
/// the maps (`bench_slot`).
pub struct BenchRaw {
    pub cpus: Vec<u32>,
    pub hist: Vec<Vec<u64>>,
    pub stats: Vec<Vec<LatencyStats>>,
    pub fails: Vec<Vec<u64>>,
}

#[derive(Debug, Serialize)]
pub struct BenchReport {
    pub schema_version: u32,
    /// Tells a bench document from a run's (`results/bench.schema.json`).
    pub benchmark: &'static str,
    pub tool: Tool,
    pub kernel: KernelInfo,
    pub plan: BenchPlan,
    /// The kmalloc caches the objects come from.
    pub caches: Vec<String>,
    pub run: BenchRun,
    pub frees: Vec<FreeReport>,
    pub kernel_log: KernelLogReport,
    pub programs: BTreeMap<String, ProgramStats>,
    pub checks: Vec<Check>,
    pub verdict: Verdict,
}

#[derive(Debug, Serialize)]
pub struct BenchPlan {
    /// "bench": the name dashboards file the figures under.
    pub scenario: &'static str,
    pub frees: Vec<&'static str>,
    pub samples: u32,
    pub sample_s: u64,
    pub warmup_s: u64,
    pub cpus: Vec<u32>,
    pub payload_size_bytes: u32,
    pub gfp_zero: bool,
    pub gfp_account: bool,
    /// Allocations and frees per system call of a bench thread.
    pub batch: u32,
    /// The path observers were attached (`--observers`).
    pub observers: bool,
}

#[derive(Debug, Serialize)]
pub struct BenchRun {
    pub started_unix_s: u64,
    pub elapsed_s: f64,
    /// True when a signal cut the bench short; what was measured is kept.
    pub interrupted: bool,
}

#[derive(Debug, Serialize)]
pub struct FreeReport {
    pub free: &'static str,
    /// Allocation and free pairs in the samples, all CPUs.
    pub ops: u64,
    pub alloc_failures: u64,
    /// Pairs per second over all CPUs, one value per sample, and their
    /// mean and spread.
    pub ops_per_s: Spread,
    pub per_cpu: Vec<CpuOps>,
    /// Wall time of one pair on one CPU, from the mean rate: the calls,
    /// the clock reads around them, and the bench thread's system call
    /// shared by `batch` pairs.
    pub ns_per_op: f64,
    /// Each call's own time, in ns: bpf_kmalloc_nolock(), the free, and
    /// an empty call (the timing's own cost, which each of the other two
    /// includes once).
    pub alloc: Option<StageReport>,
    pub free_call: Option<StageReport>,
    pub clock: Option<StageReport>,
    /// The kernel's slab statistics over the samples (after minus before,
    /// every user of the caches), or null without CONFIG_SLUB_STATS.
    pub slub_stats: Option<BTreeMap<&'static str, u64>>,
    /// How long kvfree_rcu_barrier() took after the samples: until every
    /// object freed so far was given back.
    pub drain_ns: u64,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct Spread {
    pub mean: f64,
    pub stddev: f64,
    pub min: f64,
    pub max: f64,
    pub samples: Vec<f64>,
}

impl Spread {
    pub fn of(samples: Vec<f64>) -> Spread {
        let n = samples.len() as f64;
        let mean = if samples.is_empty() { 0.0 } else { samples.iter().sum::<f64>() / n };
        let var = if samples.len() > 1 {
            samples.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)
        } else {
            0.0
        };
        Spread {
            mean,
            stddev: var.sqrt(),
            min: samples.iter().copied().fold(f64::INFINITY, f64::min).min(mean),
            max: samples.iter().copied().fold(f64::NEG_INFINITY, f64::max).max(mean),
            samples,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct CpuOps {
    pub cpu: u32,
    pub ops: u64,
    pub ops_per_s: f64,
}

/// Runs the bench and writes the report; false when the kernel log had a
/// report in it.
pub fn bench(args: &BenchArgs) -> Result<bool> {
    let mut frees = Vec::new();
    for name in &args.frees {
        match BenchFree::from_name(name) {
            Some(f) if !frees.contains(&f) => frees.push(f),
            Some(_) => {}
            None => bail!("there is no free function {name} to bench: use kfree_rcu_nolock or kfree_nolock"),
        }
    }
    run::check_output_dir(args.output.as_deref())?;
    let runtime = stop::runtime()?;
    let _entered = runtime.enter();
    let mut stop = Stop::new()?;
    readiness::require_root()?;
    readiness::check(&readiness::running_kernel_btf()?)?;
    let online = aya::util::online_cpus().map_err(|(path, e)| anyhow!("cannot read {path}: {e}"))?;
    let cpus = plan::cpus_in(&args.cpus, &online)?;
    let flags = (if args.zero { alloc_flags::ZERO } else { 0 })
        | (if args.account { alloc_flags::ACCOUNT } else { 0 });
    let mut sizes = RunConfig::DEFAULT.sizes;
    sizes[0] = args.payload_size;
    let cfg = RunConfig {
        sizes,
        n_sizes: 1,
        alloc_flags: flags,
        loader_tgid: std::process::id(),
        ..RunConfig::DEFAULT
    };
    let caches = slub_stats::caches_for(size_of::<NolockObj>() as u32 + args.payload_size, args.account);

    let kernel = KernelInfo::read();
    let mut kernel_log = KernelLog::open_at_end();
    let mut probes = Probes::load_bench(&cfg, args.observers, readiness::preempt_rt())?;
    if args.observers {
        probes.attach_observers(false)?;
    }
    probes.attach_bench()?;
    // A system call with arguments: the wrappers of those without
    // (getppid()) are aliases that BTF does not name, so fentry cannot
    // attach to them.
    // SAFETY: getpriority() has no preconditions; the bench program runs in it.
    let mut threads = LoadGen::spin(&cpus, "bench", || unsafe {
        libc::getpriority(libc::PRIO_PROCESS, 0);
    })?;
    eprintln!(
        "nolock-probe: bench: {BENCH_BATCH} kmalloc_nolock() and frees per getpriority() on CPUs {cpus:?}; \
         per free function a {}s warm-up, then {} samples of {}s (Ctrl-C stops early and still reports)",
        args.warmup, args.samples, args.sample_secs
    );
    let started_unix_s = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let started = Instant::now();
    let mut reports = Vec::new();
    let interrupted = runtime.block_on(async {
        for &free in &frees {
            let measured = measure(&mut probes, &mut stop, free, args, &cpus, &caches).await?;
            let interrupted = measured.interrupted;
            reports.push(measured.report);
            if interrupted {
                return Ok::<bool, anyhow::Error>(true);
            }
        }
        Ok(false)
    })?;
    threads.stop();
    let programs = probes.program_stats()?;
    drop(probes);

    let kernel_log = KernelLogReport { scanned: kernel_log.scanned(), findings: kernel_log.findings() };
    let checks = report::kernel_log_checks(&kernel_log);
    let verdict = report::verdict(&checks);
    let report = BenchReport {
        schema_version: SCHEMA_VERSION,
        benchmark: "kmalloc_nolock_free",
        tool: Tool::THIS,
        kernel,
        plan: BenchPlan {
            scenario: "bench",
            frees: frees.iter().map(|f| f.name()).collect(),
            samples: args.samples,
            sample_s: args.sample_secs,
            warmup_s: args.warmup,
            cpus,
            payload_size_bytes: args.payload_size,
            gfp_zero: args.zero,
            gfp_account: args.account,
            batch: BENCH_BATCH,
            observers: args.observers,
        },
        caches,
        run: BenchRun { started_unix_s, elapsed_s: started.elapsed().as_secs_f64(), interrupted },
        frees: reports,
        kernel_log,
        programs,
        checks,
        verdict,
    };
    let document = serde_json::to_value(&report)?;
    eprint!("{}", render(&document));
    run::write(&document, args.output.as_deref())?;
    Ok(report.verdict.pass)
}

struct Measured {
    report: FreeReport,
    interrupted: bool,
}

/// Warm-up, samples and drain of one free function.
async fn measure(
    probes: &mut Probes,
    stop: &mut Stop,
    free: BenchFree,
    args: &BenchArgs,
    cpus: &[u32],
    caches: &[String],
) -> Result<Measured> {
    let name = free.name();
    probes.set_bench_mode(free as u32)?;
    let mut interrupted = stop.pause(Duration::from_secs(args.warmup)).await;
    let slub_before = slub_stats::counters(caches, SLUB_COUNTERS);
    probes.set_bench_mode(free as u32 | bench_mode::MEASURE)?;
    let mut prev = vec![0u64; cpus.len()];
    let mut rates = Vec::new();
    let mut elapsed = Duration::ZERO;
    for i in 0..args.samples {
        if interrupted {
            break;
        }
        let start = Instant::now();
        interrupted = stop.pause(Duration::from_secs(args.sample_secs)).await;
        let ops = probes.bench_ops(free, cpus)?;
        let took = start.elapsed();
        elapsed += took;
        let n: u64 = ops.iter().zip(&prev).map(|(now, before)| now - before).sum();
        let rate = n as f64 / took.as_secs_f64();
        eprintln!(
            "nolock-probe: bench {name}: sample {}/{}: {} pairs/s",
            i + 1,
            args.samples,
            thousands(rate)
        );
        rates.push(rate);
        prev = ops;
    }
    probes.set_bench_mode(bench_mode::OFF)?;
    let slub_after = slub_stats::counters(caches, SLUB_COUNTERS);
    let raw = probes.bench(cpus)?;
    let drain = probes.drain()?;
    Ok(Measured {
        report: free_report(free, &raw, rates, elapsed, (slub_before, slub_after), drain),
        interrupted,
    })
}

fn free_report(
    free: BenchFree,
    raw: &BenchRaw,
    rates: Vec<f64>,
    elapsed: Duration,
    (before, after): (Option<[u64; SLUB_COUNTERS.len()]>, Option<[u64; SLUB_COUNTERS.len()]>),
    drain: Duration,
) -> FreeReport {
    let f = free as u32;
    let slot = |op| bench_slot(f, op) as usize;
    let stage = |op| latency::slot_report(&raw.cpus, &raw.hist, &raw.stats, slot(op));
    let ops_of = |i: usize| raw.stats.get(i).and_then(|s| s.get(slot(bench_op::FREE))).map_or(0, |s| s.count);
    let secs = elapsed.as_secs_f64().max(1e-9);
    let per_cpu: Vec<CpuOps> = raw
        .cpus
        .iter()
        .enumerate()
        .map(|(i, &cpu)| CpuOps { cpu, ops: ops_of(i), ops_per_s: ops_of(i) as f64 / secs })
        .collect();
    let ops_per_s = Spread::of(rates);
    FreeReport {
        free: free.name(),
        ops: per_cpu.iter().map(|c| c.ops).sum(),
        alloc_failures: raw.fails.iter().filter_map(|f| f.get(slot(bench_op::ALLOC))).sum(),
        ns_per_op: if ops_per_s.mean > 0.0 { raw.cpus.len() as f64 * 1e9 / ops_per_s.mean } else { 0.0 },
        ops_per_s,
        per_cpu,
        alloc: stage(bench_op::ALLOC),
        free_call: stage(bench_op::FREE),
        clock: stage(bench_op::CLOCK),
        slub_stats: before.zip(after).map(|(b, a)| {
            SLUB_COUNTERS
                .iter()
                .zip(a.iter().zip(b))
                .map(|(name, (a, b))| (*name, a.saturating_sub(b)))
                .collect()
        }),
        drain_ns: drain.as_nanos() as u64,
    }
}

/// 1234567.8 -> "1,234,568".
fn thousands(v: f64) -> String {
    let digits = format!("{:.0}", v.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The terminal summary of a bench document: per free function the rate
/// with its spread, and bpftrace-style histograms of the calls' times.
pub fn render(doc: &serde_json::Value) -> String {
    let mut s = String::new();
    for f in doc["frees"].as_array().into_iter().flatten() {
        let name = f["free"].as_str().unwrap_or("?");
        let r = &f["ops_per_s"];
        s.push_str(&format!(
            "{name}: {} ± {} pairs/s over {} samples ({:.0} ns per pair and CPU), {} allocation failures\n",
            thousands(r["mean"].as_f64().unwrap_or(0.0)),
            thousands(r["stddev"].as_f64().unwrap_or(0.0)),
            r["samples"].as_array().map_or(0, Vec::len),
            f["ns_per_op"].as_f64().unwrap_or(0.0),
            f["alloc_failures"].as_u64().unwrap_or(0),
        ));
        for (key, title) in [("alloc", "kmalloc_nolock"), ("free_call", name), ("clock", "clock")] {
            s.push_str(&latency::render_json(&format!("{name}_{title}_ns"), &f[key]).unwrap_or_default());
        }
    }
    s.push_str(&view::verdict(doc));
    s
}

#[cfg(test)]
mod tests {
    use probe_common::hist;

    use super::*;

    #[test]
    fn the_spread_is_the_sample_standard_deviation() {
        let s = Spread::of(vec![10.0, 20.0, 30.0]);
        assert_eq!((s.mean, s.min, s.max), (20.0, 10.0, 30.0));
        assert!((s.stddev - 10.0).abs() < 1e-9, "{}", s.stddev);
        assert_eq!(Spread::of(vec![5.0]).stddev, 0.0);
    }

    /// Two CPUs, one free function: ops come from the free slot, failures
    /// from the alloc slot, and the other function's slots stay apart.
    #[test]
    fn a_report_reads_its_own_slots() {
        let slots = BenchFree::COUNT * bench_op::COUNT;
        let mut raw = BenchRaw {
            cpus: vec![0, 1],
            hist: vec![vec![0; slots * hist::BUCKETS as usize]; 2],
            stats: vec![vec![LatencyStats::default(); slots]; 2],
            fails: vec![vec![0; slots]; 2],
        };
        let f = BenchFree::KfreeNolock as u32;
        for (cpu, n) in [(0usize, 300u64), (1, 100)] {
            for op in [bench_op::ALLOC, bench_op::FREE] {
                let slot = bench_slot(f, op) as usize;
                let ns = if op == bench_op::ALLOC { 1000 } else { 500 };
                raw.stats[cpu][slot] = LatencyStats { count: n, sum_ns: n * ns, min_ns: ns, max_ns: ns };
                raw.hist[cpu][slot * hist::BUCKETS as usize + hist::bucket(ns) as usize] = n;
            }
            raw.fails[cpu][bench_slot(f, bench_op::ALLOC) as usize] = 2;
        }
        raw.stats[0][bench_slot(0, bench_op::FREE) as usize].count = 9999;
        let r = free_report(
            BenchFree::KfreeNolock,
            &raw,
            vec![200.0, 200.0],
            Duration::from_secs(2),
            (Some([0; 6]), Some([5, 0, 0, 0, 0, 0])),
            Duration::ZERO,
        );
        assert_eq!((r.ops, r.alloc_failures), (400, 4));
        assert_eq!(r.per_cpu[0].ops_per_s, 150.0);
        assert_eq!(r.ns_per_op, 2.0 * 1e9 / 200.0);
        assert_eq!(r.alloc.as_ref().unwrap().all.p50_ns, 1000);
        assert_eq!(r.free_call.as_ref().unwrap().all.count, 400);
        assert!(r.clock.is_none());
        assert_eq!(r.slub_stats.as_ref().unwrap()["alloc_fastpath"], 5);
        let doc = serde_json::json!({"frees": [serde_json::to_value(&r).unwrap()], "verdict": {"pass": true, "reasons": []}});
        let text = render(&doc);
        assert!(text.starts_with("kfree_nolock: 200 ± 0 pairs/s over 2 samples"), "{text}");
        assert!(text.contains("@kfree_nolock_kmalloc_nolock_ns: count 400 p50 1.000us"), "{text}");
        assert!(text.ends_with("verdict: pass\n"), "{text}");
    }

    #[test]
    fn big_numbers_get_separators() {
        assert_eq!(thousands(1234567.8), "1,234,568");
        assert_eq!(thousands(999.0), "999");
    }
}
