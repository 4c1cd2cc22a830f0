//! `nolock-probe bench`: what one kmalloc_nolock() and one
//! kfree_rcu_nolock() cost from BPF, against kfree_nolock(), BPF's own
//! allocator and two loops in C (the same pair, and kmalloc(GFP_ATOMIC)
//! with kfree_rcu()), in task context with nothing else attached. As the
//! kernel's BPF bench does it: a warm-up, then fixed-length samples whose
//! mean and spread are reported, and the calls' own times as
//! distributions. The loops' samples are interleaved, one of each per
//! round, so that a host that speeds up or slows down during the bench
//! moves every loop alike, and each loop's rate is also given as a ratio
//! to the loop in C of the same round.

use std::{
    path::PathBuf,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{Result, bail};
use clap::Args;
use probe_common::{
    BENCH_BATCH, BENCH_OBJ_SIZE, BENCH_TAG, BENCH_TIMED_EVERY, BenchFree, MAX_PAYLOAD, NolockObj, RunConfig,
    TriggerCounters, alloc_flags, bench_mode, bench_op, bench_slot, programs::ObserverSet,
};
use probe_result::{
    Document, SCHEMA_VERSION, Tool, Verdict,
    bench::{BenchPlan, BenchReport, BenchRun, CpuOps, FollowedObjects, FreeReport, ObservedRate, Spread},
    checks,
    run::Observe,
};

use super::{
    run::{cpus_in, kernel_config},
    session::{self, Observed, Session},
};
use crate::{
    bpf::{Probes, maps::BenchRaw},
    footprint::{Footprint, activity},
    judge::latency,
    kernel::{machine, slub_stats},
    render::terminal::{self, thousands},
    stress::{load_gen::LoadGen, stop::Stop},
};

#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Pair loops to measure, their samples interleaved [default: all;
    /// bpf_obj_drop only with --payload-size 0]: kfree_rcu_nolock,
    /// kfree_nolock, bpf_obj_drop, native_kfree_rcu_nolock, native_kfree_rcu.
    #[arg(long = "free", value_delimiter = ',')]
    pub frees: Vec<String>,
    /// Samples per loop.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(2..=100))]
    pub samples: u32,
    /// Length of one sample, in seconds.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=60))]
    pub sample_secs: u64,
    /// Before each sample the loop runs this long unmeasured, in
    /// milliseconds: the previous loop's objects still waiting for their
    /// grace period are reclaimed meanwhile, rather than in the sample.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(0..=10_000))]
    pub settle_ms: u64,
    /// Warm-up of each loop before the samples, in seconds.
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
    /// Also sample every loop with run's observers attached (the path
    /// observers, and those that follow objects to their reclaim and
    /// watch the free side), the kfree_rcu_nolock() pairs made as a
    /// trigger makes them (counted, timed, followed), in each round after
    /// the bare samples (before them in even rounds): the rate they keep
    /// of the bare one, round by round, and the calls' times with them.
    #[arg(long)]
    pub observers: bool,
    /// Which path observers --observers attaches: cheap or full, as
    /// `run --observe` [default: cheap].
    #[arg(long, value_name = "MODE")]
    pub observe: Option<Observe>,
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
    let frees = chosen(&args.frees, args.payload_size)?;
    let mut session = Session::start(args.output.as_deref())?;
    let cpus = cpus_in(&args.cpus, &session.online)?;
    let flags = (if args.zero { alloc_flags::ZERO } else { 0 })
        | (if args.account { alloc_flags::ACCOUNT } else { 0 });
    let mut sizes = RunConfig::DEFAULT.sizes;
    sizes[0] = args.payload_size;
    let observe = args.observe.unwrap_or(Observe::Cheap);
    // Run's whole set: following is what run does by default.
    let set = ObserverSet { follow: true, full: observe == Observe::Full };
    // What the observers must know of the kernel, as run gives them.
    let (kernel_cfg, _) = kernel_config(&session)?;
    let cfg =
        RunConfig { sizes, n_sizes: 1, alloc_flags: flags, full_observe: u32::from(set.full), ..kernel_cfg };
    let caches = slub_stats::caches_for(size_of::<NolockObj>() as u32 + args.payload_size, args.account);

    let mut observed = Observed::now();
    let mut probes = Probes::load_bench(&cfg, args.observers.then_some(set), session.preempt_rt)?;
    probes.attach_bench()?;
    // SAFETY: getpriority() has no preconditions; the bench program runs in it.
    let mut threads = LoadGen::spin(&cpus, "bench", || unsafe {
        libc::getpriority(libc::PRIO_PROCESS, 0);
    })?;
    eprintln!(
        "nolock-probe: bench: {BENCH_BATCH} allocations and frees per getpriority() on CPUs {cpus:?}, \
         each call timed in one batch of {BENCH_TIMED_EVERY}; a {}s warm-up per loop, then {} rounds of one \
         {}s sample of each of {} loops, each after {} ms unmeasured (Ctrl-C stops early and still reports)",
        args.warmup,
        args.samples,
        args.sample_secs,
        frees.len(),
        args.settle_ms
    );
    let started_unix_s = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let started = Instant::now();
    let Session { runtime, stop, .. } = &mut session;
    let mut footprint = Footprint::start();
    let (measured, interrupted) =
        runtime.block_on(measure(&mut probes, stop, &frees, args, set, &cpus, &caches, &mut footprint))?;
    let raw = probes.bench(&cpus)?;
    let drain = probes.drain()?;
    let followed = match args.observers {
        true => Some(followed_objects(&probes)?),
        false => None,
    };
    let native = measured.iter().position(|m| m.free == BenchFree::BASELINE);
    let reports = measured
        .iter()
        .map(|m| free_report(m, &raw, native.map(|i| &measured[i].rates), &followed))
        .collect();
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
            observe,
            run_observers: args.observers,
            timed_every: BENCH_TIMED_EVERY,
            settle_ms: args.settle_ms,
        },
        caches,
        run: BenchRun {
            started_unix_s,
            elapsed_s: started.elapsed().as_secs_f64(),
            interrupted,
            machine: Some(machine::detect()),
            loader: Some(loader),
            drain_ns: Some(drain.as_nanos() as u64),
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

/// What run's observers did with the observed kfree_rcu_nolock() pairs'
/// objects, summed over the CPUs.
fn followed_objects(probes: &Probes) -> Result<FollowedObjects> {
    let mut c = TriggerCounters::default();
    for cpu in probes.counters_of(BENCH_TAG)? {
        c.accumulate(&cpu);
    }
    Ok(FollowedObjects {
        freed: c.freed_rcu,
        reclaimed: c.reclaimed,
        untracked: c.untracked,
        sheaf: c.sheaf,
        fallback: c.fallback,
        premature: c.premature,
    })
}

/// The loops to bench, in order, each once.
fn chosen(names: &[String], payload_size: u32) -> Result<Vec<BenchFree>> {
    if names.is_empty() {
        let all = BenchFree::ALL.into_iter().filter(|f| f.sized() || payload_size == 0);
        return Ok(all.collect());
    }
    let mut frees = Vec::new();
    for name in names {
        let Some(f) = BenchFree::from_name(name) else {
            let known: Vec<&str> = BenchFree::ALL.iter().map(|f| f.name()).collect();
            bail!("there is no pair loop {name} to bench: use one of {}", known.join(", "));
        };
        if !f.sized() && payload_size != 0 {
            bail!(
                "{name} allocates a fixed {BENCH_OBJ_SIZE}-byte type, so it cannot follow --payload-size \
                 {payload_size}: drop it from --free or use --payload-size 0"
            );
        }
        if !frees.contains(&f) {
            frees.push(f);
        }
    }
    Ok(frees)
}

/// What the samples of one loop measured.
struct Measured {
    free: BenchFree,
    /// Pairs per second over all CPUs, one per round.
    rates: Vec<f64>,
    /// Measured pairs per CPU (in the order of `cpus`).
    ops: Vec<u64>,
    elapsed: Duration,
    /// The slab statistics summed over the loop's samples, when readable.
    slub_stats: Option<[u64; SLUB_COUNTERS.len()]>,
    /// Pairs per second with run's observers attached, one per round
    /// (`--observers`).
    observed: Vec<f64>,
}

/// Warm-up of each loop, then `args.samples` rounds of one sample of each
/// (and with `--observers` one more of each with the observers of `set`);
/// true when a signal cut it short (what was measured is kept).
#[allow(clippy::too_many_arguments)]
async fn measure(
    probes: &mut Probes,
    stop: &mut Stop,
    frees: &[BenchFree],
    args: &BenchArgs,
    set: ObserverSet,
    cpus: &[u32],
    caches: &[String],
    footprint: &mut Footprint,
) -> Result<(Vec<Measured>, bool)> {
    let mut measured: Vec<Measured> = frees
        .iter()
        .map(|&free| Measured {
            free,
            rates: Vec::new(),
            ops: vec![0; cpus.len()],
            elapsed: Duration::ZERO,
            slub_stats: Some([0; SLUB_COUNTERS.len()]),
            observed: Vec::new(),
        })
        .collect();
    for &free in frees {
        probes.set_bench_mode(free as u32)?;
        if stop.pause(Duration::from_secs(args.warmup)).await {
            probes.set_bench_mode(bench_mode::OFF)?;
            return Ok((measured, true));
        }
    }
    let mut interrupted = false;
    let n = measured.len();
    'rounds: for round in 1..=args.samples {
        // With --observers, the round's samples with the observers come
        // after its bare ones in odd rounds and before them in even ones:
        // a host that speeds up or slows down during a round (a minute of
        // samples) then moves the ratio to the bare rate both ways alike.
        let blocks: &[bool] = match (args.observers, round % 2 == 0) {
            (false, _) => &[false],
            (true, false) => &[false, true],
            (true, true) => &[true, false],
        };
        for &observed in blocks {
            if observed {
                footprint.charge(activity::ATTACH, || probes.attach_observers(set))?;
            }
            // Each round starts one loop later, so that no loop always
            // follows the same one.
            for k in 0..n {
                let m = &mut measured[(k + round as usize - 1) % n];
                // Observed pairs are made as the triggers make theirs, so
                // the observers do what they do in `run`.
                let (flags, stats, with) = match observed {
                    true => (bench_mode::OBSERVED, None, " with run's observers"),
                    false => (0, Some(caches), ""),
                };
                let s = sample(probes, stop, footprint, m.free, flags, args, cpus, stats).await?;
                footprint.charge(activity::OUTPUT, || {
                    eprintln!(
                        "nolock-probe: bench round {round}/{}: {}{with}: {} pairs/s",
                        args.samples,
                        m.free.name(),
                        thousands(s.rate())
                    )
                });
                if observed {
                    m.observed.push(s.rate());
                } else {
                    m.add(&s);
                }
                footprint.sample();
                interrupted = s.interrupted;
                if interrupted {
                    break;
                }
            }
            if observed {
                // Every followed object is reclaimed, and so leaves
                // IN_FLIGHT, before the observers that see it go: one left
                // there would read as reused once its memory came back.
                probes.set_bench_mode(bench_mode::OFF)?;
                footprint.charge(activity::ATTACH, || -> Result<()> {
                    probes.drain()?;
                    probes.detach_observers();
                    Ok(())
                })?;
            }
            if interrupted {
                break 'rounds;
            }
        }
    }
    probes.set_bench_mode(bench_mode::OFF)?;
    Ok((measured, interrupted))
}

impl Measured {
    /// Adds a bare sample.
    fn add(&mut self, s: &Sample) {
        self.rates.push(s.rate());
        for (ops, d) in self.ops.iter_mut().zip(&s.pairs) {
            *ops += d;
        }
        self.elapsed += s.took;
        self.slub_stats = match (self.slub_stats, s.slub_stats) {
            (Some(sum), Some(d)) => Some(std::array::from_fn(|i| sum[i] + d[i])),
            _ => None,
        };
    }
}

/// What one sample of one loop counted.
struct Sample {
    /// Pairs per CPU (in the order of `cpus`).
    pairs: Vec<u64>,
    took: Duration,
    /// The slab statistics over the sample, when asked for and readable.
    slub_stats: Option<[u64; SLUB_COUNTERS.len()]>,
    interrupted: bool,
}

impl Sample {
    fn rate(&self) -> f64 {
        self.pairs.iter().sum::<u64>() as f64 / self.took.as_secs_f64().max(1e-9)
    }
}

/// Lets `free` settle for `--settle-ms` unmeasured, then counts its pairs
/// for one sample (`flags`: more `bench_mode` bits).
#[allow(clippy::too_many_arguments)]
async fn sample(
    probes: &mut Probes,
    stop: &mut Stop,
    footprint: &mut Footprint,
    free: BenchFree,
    flags: u32,
    args: &BenchArgs,
    cpus: &[u32],
    caches: Option<&[String]>,
) -> Result<Sample> {
    probes.set_bench_mode(free as u32)?;
    if stop.pause(Duration::from_millis(args.settle_ms)).await {
        return Ok(Sample {
            pairs: vec![0; cpus.len()],
            took: Duration::ZERO,
            slub_stats: None,
            interrupted: true,
        });
    }
    probes.set_bench_mode(free as u32 | bench_mode::MEASURE | flags)?;
    let slub = |f: &mut Footprint| {
        f.charge(activity::SLUB_STATS, || caches.and_then(|c| slub_stats::counters(c, SLUB_COUNTERS)))
    };
    // The slab statistics are read around the pair counts, never inside
    // them: the loader can be preempted between two reads for a slice
    // while the loops run on, and the frees counted in that gap would
    // otherwise be pairs the statistics never saw.
    let slub_before = slub(footprint);
    let before = footprint.charge(activity::MAPS, || probes.bench_ops(free, cpus))?;
    let start = Instant::now();
    let interrupted = stop.pause(Duration::from_secs(args.sample_secs)).await;
    let after = footprint.charge(activity::MAPS, || probes.bench_ops(free, cpus))?;
    let took = start.elapsed();
    let slub_after = slub(footprint);
    Ok(Sample {
        pairs: after.iter().zip(&before).map(|(a, b)| a.wrapping_sub(*b)).collect(),
        took,
        slub_stats: slub_before
            .zip(slub_after)
            .map(|(b, a)| std::array::from_fn(|i| a[i].saturating_sub(b[i]))),
        interrupted,
    })
}

fn free_report(
    m: &Measured,
    raw: &BenchRaw,
    native_rates: Option<&Vec<f64>>,
    followed: &Option<FollowedObjects>,
) -> FreeReport {
    let f = m.free as u32;
    let slot = |op| bench_slot(f, op) as usize;
    let stage = |op| latency::slot_report(&raw.cpus, &raw.hist, &raw.stats, slot(op));
    let secs = m.elapsed.as_secs_f64().max(1e-9);
    let per_cpu: Vec<CpuOps> = raw
        .cpus
        .iter()
        .zip(&m.ops)
        .map(|(&cpu, &ops)| CpuOps { cpu, ops, ops_per_s: ops as f64 / secs })
        .collect();
    let ops_per_s = Spread::of(m.rates.clone());
    // Round by round: both samples of a round saw the same host.
    let native_ratio = native_rates.map(|native| {
        Spread::of(m.rates.iter().zip(native).filter(|(_, n)| **n > 0.0).map(|(r, n)| r / n).collect())
    });
    let observed = (!m.observed.is_empty()).then(|| ObservedRate {
        ops_per_s: Spread::of(m.observed.clone()),
        bare_ratio: Spread::of(
            m.observed.iter().zip(&m.rates).filter(|(_, b)| **b > 0.0).map(|(o, b)| o / b).collect(),
        ),
        alloc: stage(bench_op::OBSERVED_ALLOC),
        free_call: stage(bench_op::OBSERVED_FREE),
        followed: (m.free == BenchFree::KfreeRcuNolock).then_some(followed.clone()).flatten(),
    });
    FreeReport {
        free: m.free.name().to_string(),
        observed,
        pair: m.free.pair().to_string(),
        ops: m.ops.iter().sum(),
        alloc_failures: raw.fails.iter().filter_map(|f| f.get(slot(bench_op::ALLOC))).sum(),
        ns_per_op: if ops_per_s.mean > 0.0 { raw.cpus.len() as f64 * 1e9 / ops_per_s.mean } else { 0.0 },
        ops_per_s,
        native_ratio,
        per_cpu,
        alloc: stage(bench_op::ALLOC),
        free_call: stage(bench_op::FREE),
        clock: stage(bench_op::CLOCK),
        slub_stats: m
            .slub_stats
            .map(|sums| SLUB_COUNTERS.iter().zip(sums).map(|(name, n)| (name.to_string(), n)).collect()),
        drain_ns: None,
    }
}

#[cfg(test)]
mod tests {
    use probe_common::{LatencyStats, hist};

    use super::*;

    /// Two CPUs, one loop: ops come from the pairs counted, failures from
    /// the alloc slot, the other loops' slots stay apart, and the ratio to
    /// the loop in C is taken round by round.
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
        for (cpu, n) in [(0usize, 30u64), (1, 10)] {
            for op in [bench_op::ALLOC, bench_op::FREE] {
                let slot = bench_slot(f, op) as usize;
                let ns = if op == bench_op::ALLOC { 1000 } else { 500 };
                raw.stats[cpu][slot] = LatencyStats { count: n, sum_ns: n * ns, min_ns: ns, max_ns: ns };
                raw.hist[cpu][slot * hist::BUCKETS as usize + hist::bucket(ns) as usize] = n;
            }
            raw.fails[cpu][bench_slot(f, bench_op::ALLOC) as usize] = 2;
        }
        raw.stats[0][bench_slot(0, bench_op::FREE) as usize].count = 9999;
        let m = Measured {
            free: BenchFree::KfreeNolock,
            rates: vec![200.0, 300.0],
            ops: vec![300, 100],
            elapsed: Duration::from_secs(2),
            slub_stats: Some([5, 0, 0, 0, 0, 0]),
            observed: vec![100.0, 150.0],
        };
        let r = free_report(&m, &raw, Some(&vec![100.0, 600.0]), &None);
        assert_eq!((r.ops, r.alloc_failures), (400, 4));
        assert_eq!(r.per_cpu[0].ops_per_s, 150.0);
        assert_eq!(r.ns_per_op, 2.0 * 1e9 / 250.0);
        assert_eq!(r.native_ratio.as_ref().unwrap().samples, vec![2.0, 0.5]);
        assert_eq!(r.alloc.as_ref().unwrap().all.p50_ns, 1000);
        assert_eq!(r.free_call.as_ref().unwrap().all.count, 40);
        assert!(r.clock.is_none());
        assert_eq!(r.slub_stats.as_ref().unwrap()["alloc_fastpath"], 5);
        assert_eq!(r.pair, "BPF: kmalloc_nolock() + kfree_nolock()");
        assert!(free_report(&m, &raw, None, &None).native_ratio.is_none());
        let observed = r.observed.as_ref().unwrap();
        assert_eq!((observed.ops_per_s.mean, observed.bare_ratio.samples.clone()), (125.0, vec![0.5, 0.5]));
    }

    /// By default every loop, less the fixed-size one when a payload is
    /// asked for; asked for with one, it is refused with the fix.
    #[test]
    fn the_loops_follow_the_payload_size() {
        assert_eq!(chosen(&[], 0).unwrap(), BenchFree::ALL.to_vec());
        assert!(!chosen(&[], 192).unwrap().contains(&BenchFree::ObjDrop));
        let err = chosen(&["bpf_obj_drop".into()], 192).unwrap_err().to_string();
        assert!(err.contains("drop it from --free or use --payload-size 0"), "{err}");
        let err = chosen(&["kfree".into()], 0).unwrap_err().to_string();
        assert!(
            err.starts_with("there is no pair loop kfree to bench: use one of kfree_rcu_nolock, "),
            "{err}"
        );
        let twice = chosen(&["kfree_nolock".into(), "kfree_nolock".into()], 0).unwrap();
        assert_eq!(twice, vec![BenchFree::KfreeNolock]);
    }
}
