//! `nolock-probe bench`: what one kmalloc_nolock() and one
//! kfree_rcu_nolock() cost, against kfree_nolock(), in task context with
//! nothing else attached. As the kernel's BPF bench does it: a warm-up,
//! then fixed-length samples whose mean and spread are reported, and the
//! calls' own times as distributions.

use std::{
    path::PathBuf,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{Result, bail};
use clap::Args;
use probe_common::{
    BENCH_BATCH, BenchFree, MAX_PAYLOAD, NolockObj, RunConfig, alloc_flags, bench_mode, bench_op, bench_slot,
};
use probe_result::{
    Document, SCHEMA_VERSION, Tool, Verdict,
    bench::{BenchPlan, BenchReport, BenchRun, CpuOps, FreeReport, Spread},
    checks,
};

use super::{
    run::cpus_in,
    session::{self, Observed, Session},
};
use crate::{
    bpf::{Probes, maps::BenchRaw},
    footprint::Footprint,
    judge::latency,
    kernel::{machine, slub_stats},
    render::terminal::{self, thousands},
    stress::{load_gen::LoadGen, stop::Stop},
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
    let mut session = Session::start(args.output.as_deref())?;
    let cpus = cpus_in(&args.cpus, &session.online)?;
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

    let mut observed = Observed::now();
    let mut probes = Probes::load_bench(&cfg, args.observers, session.preempt_rt)?;
    if args.observers {
        probes.attach_observers(false)?;
    }
    probes.attach_bench()?;
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
    let Session { runtime, stop, .. } = &mut session;
    let mut footprint = Footprint::start();
    let interrupted = runtime.block_on(async {
        for &free in &frees {
            let measured = measure(&mut probes, stop, free, args, &cpus, &caches, &mut footprint).await?;
            let interrupted = measured.interrupted;
            reports.push(measured.report);
            if interrupted {
                return Ok::<bool, anyhow::Error>(true);
            }
        }
        Ok(false)
    })?;
    let loader = footprint.finish();
    threads.stop();
    let programs = probes.program_stats()?;
    drop(probes);

    let kernel_log = observed.log.report();
    let checks = checks::kernel_log_checks(&kernel_log);
    let verdict = Verdict::of(&checks);
    let report = BenchReport {
        schema_version: SCHEMA_VERSION,
        benchmark: "kmalloc_nolock_free".into(),
        tool: Tool::nolock_probe(env!("CARGO_PKG_VERSION")),
        kernel: observed.kernel,
        plan: BenchPlan {
            scenario: "bench".into(),
            frees: frees.iter().map(|f| f.name().to_string()).collect(),
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
        run: BenchRun {
            started_unix_s,
            elapsed_s: started.elapsed().as_secs_f64(),
            interrupted,
            machine: Some(machine::detect()),
            loader: Some(loader),
        },
        frees: reports,
        kernel_log,
        programs,
        checks,
        verdict,
        console: None,
    };
    eprint!("{}", terminal::bench(&report));
    let pass = report.verdict.pass;
    session::write(&Document::Bench(Box::new(report)), args.output.as_deref())?;
    Ok(pass)
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
    footprint: &mut Footprint,
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
        footprint.sample();
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
        free: free.name().to_string(),
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
                .map(|(name, (a, b))| (name.to_string(), a.saturating_sub(b)))
                .collect()
        }),
        drain_ns: drain.as_nanos() as u64,
    }
}

#[cfg(test)]
mod tests {
    use probe_common::{LatencyStats, hist};

    use super::*;

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
    }
}
