//! Reading the maps: per-CPU counters, histograms and summaries as the
//! BPF side left them, indexed like the maps. `judge` turns them into the
//! result's distributions.

use std::collections::BTreeMap;

use anyhow::{Context, Result, anyhow};
use aya::maps::{Array, HashMap, MapData, PerCpuArray, RingBuf};
use probe_common::{
    BenchFree, InFlight, LatencyStats, Path, PathCounters, Stage, Trigger, TriggerCounters, ViolationStats,
    bench_op, call_kind, call_slot, hist, violation,
};
use probe_result::run::ViolationReport;

use super::Probes;

/// The latency maps, per CPU in the order of `cpus`.
pub struct LatencyRaw {
    pub cpus: Vec<u32>,
    /// Per CPU: `HIST` values.
    pub hist: Vec<Vec<u64>>,
    /// Per CPU: `LATENCY` values.
    pub stats: Vec<Vec<LatencyStats>>,
    /// Per CPU: `PATH_COUNTERS` values.
    pub paths: Vec<Vec<PathCounters>>,
}

/// One trigger's call times, per CPU in the order of `cpus`, with its
/// `call_kind`s at slots 0..`call_kind::COUNT`.
pub struct CallRaw {
    pub cpus: Vec<u32>,
    pub hist: Vec<Vec<u64>>,
    pub stats: Vec<Vec<LatencyStats>>,
}

/// The bench maps, per CPU in the order of `cpus`, indexed like the maps
/// (`bench_slot`).
pub struct BenchRaw {
    pub cpus: Vec<u32>,
    pub hist: Vec<Vec<u64>>,
    pub stats: Vec<Vec<LatencyStats>>,
    pub fails: Vec<Vec<u64>>,
}

impl Probes {
    /// Slot `index` of a per-CPU array, one value per possible CPU.
    fn all_cpus<T: aya::Pod>(&self, map: &str, index: u32) -> Result<Vec<T>> {
        let m = self.ebpf.map(map).ok_or_else(|| anyhow!("the BPF object has no {map} map"))?;
        let array: PerCpuArray<&MapData, T> = PerCpuArray::try_from(m)?;
        Ok(array.get(&index, 0).with_context(|| format!("cannot read the {map} map"))?.to_vec())
    }

    /// The same for the CPUs in `cpus` only, in that order.
    fn per_cpu<T: aya::Pod>(&self, map: &str, index: u32, cpus: &[u32]) -> Result<Vec<T>> {
        let values = self.all_cpus::<T>(map, index)?;
        Ok(cpus.iter().filter_map(|&c| values.get(c as usize).copied()).collect())
    }

    /// Slots `indices` of a per-CPU array: per CPU in `cpus` (in that
    /// order), the values of those slots.
    fn slots<T: aya::Pod>(
        &self,
        map: &str,
        indices: std::ops::Range<u32>,
        cpus: &[u32],
    ) -> Result<Vec<Vec<T>>> {
        let mut out = vec![Vec::with_capacity(indices.len()); cpus.len()];
        for i in indices {
            for (cpu, v) in self.per_cpu::<T>(map, i, cpus)?.into_iter().enumerate() {
                out[cpu].push(v);
            }
        }
        Ok(out)
    }

    /// Per-CPU counters of `trigger`, indexed by CPU id.
    pub fn counters(&self, trigger: Trigger) -> Result<Vec<TriggerCounters>> {
        self.counters_of(trigger as u32)
    }

    /// The counters of slot `tag` (a trigger's, or the bench's `BENCH_TAG`).
    pub fn counters_of(&self, tag: u32) -> Result<Vec<TriggerCounters>> {
        self.all_cpus("COUNTERS", tag)
    }

    /// The latency maps, per CPU in `cpus`.
    pub fn latency(&self, cpus: &[u32]) -> Result<LatencyRaw> {
        let slots = (Path::COUNT * Stage::COUNT) as u32;
        Ok(LatencyRaw {
            cpus: cpus.to_vec(),
            hist: self.slots("HIST", 0..slots * hist::BUCKETS, cpus)?,
            stats: self.slots("LATENCY", 0..slots, cpus)?,
            paths: self.slots("PATH_COUNTERS", 0..Path::COUNT as u32, cpus)?,
        })
    }

    /// How long `trigger`'s calls took, per CPU in `cpus`. Only the
    /// histograms of kinds that occurred are read.
    pub fn call_times(&self, trigger: Trigger, cpus: &[u32]) -> Result<CallRaw> {
        let tag = trigger as u32;
        let buckets = hist::BUCKETS as usize;
        let mut stats = vec![Vec::new(); cpus.len()];
        let mut hists = vec![vec![0u64; call_kind::COUNT * buckets]; cpus.len()];
        for kind in 0..call_kind::COUNT as u32 {
            let per_cpu = self.per_cpu::<LatencyStats>("CALL_STATS", call_slot(tag, kind), cpus)?;
            let occurred = per_cpu.iter().any(|s| s.count > 0);
            for (cpu, v) in per_cpu.into_iter().enumerate() {
                stats[cpu].push(v);
            }
            if !occurred {
                continue;
            }
            for b in 0..hist::BUCKETS {
                let index = call_slot(tag, kind) * hist::BUCKETS + b;
                for (cpu, v) in self.per_cpu::<u64>("CALL_HIST", index, cpus)?.into_iter().enumerate() {
                    hists[cpu][kind as usize * buckets + b as usize] = v;
                }
            }
        }
        Ok(CallRaw { cpus: cpus.to_vec(), hist: hists, stats })
    }

    /// What the observers caught of each kind of violation, on every CPU,
    /// by `violation::NAMES`.
    pub fn violations(&self) -> Result<BTreeMap<String, ViolationReport>> {
        let mut out = BTreeMap::new();
        for (kind, name) in violation::NAMES.iter().enumerate() {
            let per_cpu = self.all_cpus::<ViolationStats>("VIOLATIONS", kind as u32)?;
            out.insert(name.to_string(), ViolationReport::new(kind as u32, &per_cpu));
        }
        Ok(out)
    }

    /// The ring buffer the BPF side sends the first violation of each kind
    /// on each CPU through (`probe_common::Alert`), taken out of the object
    /// so that the watch can wait on it.
    pub fn take_alerts(&mut self) -> Result<RingBuf<MapData>> {
        let m = self.ebpf.take_map("ALERTS").ok_or_else(|| anyhow!("the BPF object has no ALERTS map"))?;
        Ok(RingBuf::try_from(m)?)
    }

    /// Objects still in flight, by trigger tag: after the drain, the lost.
    pub fn in_flight(&self) -> Result<BTreeMap<u32, u64>> {
        let m = self.ebpf.map("IN_FLIGHT").ok_or_else(|| anyhow!("the BPF object has no IN_FLIGHT map"))?;
        let map: HashMap<&MapData, u64, InFlight> = HashMap::try_from(m)?;
        let mut by_tag = BTreeMap::new();
        for entry in map.iter() {
            let (_, state) = entry.context("cannot read the IN_FLIGHT map")?;
            *by_tag.entry(state.tag).or_insert(0) += 1;
        }
        Ok(by_tag)
    }

    /// `probe_common::bench_mode`: what the bench program does from now on.
    pub fn set_bench_mode(&mut self, mode: u32) -> Result<()> {
        let m =
            self.ebpf.map_mut("BENCH_MODE").ok_or_else(|| anyhow!("the BPF object has no BENCH_MODE map"))?;
        let mut array: Array<&mut MapData, u32> = Array::try_from(m)?;
        array.set(0, &mode, 0).context("cannot set the bench program's mode")
    }

    /// Allocation and free pairs the bench has measured for `free` so far,
    /// per CPU in `cpus`: one map read, cheap enough between samples.
    pub fn bench_ops(&self, free: BenchFree, cpus: &[u32]) -> Result<Vec<u64>> {
        self.per_cpu::<u64>("BENCH_PAIRS", free as u32, cpus)
    }

    /// The bench maps, per CPU in `cpus`.
    pub fn bench(&self, cpus: &[u32]) -> Result<BenchRaw> {
        let slots = (BenchFree::COUNT * bench_op::COUNT) as u32;
        Ok(BenchRaw {
            cpus: cpus.to_vec(),
            hist: self.slots("BENCH_HIST", 0..slots * hist::BUCKETS, cpus)?,
            stats: self.slots("BENCH_STATS", 0..slots, cpus)?,
            fails: self.slots("BENCH_FAILS", 0..slots, cpus)?,
        })
    }
}

/// Keeps the calling thread at SCHED_FIFO `priority` or above while it
/// lives, and puts its policy back after. Without the privilege it stays
/// as it was.
pub struct Fifo {
    old: Option<(libc::c_int, libc::sched_param)>,
}

impl Fifo {
    pub fn at(priority: i32) -> Fifo {
        // SAFETY: scheduling calls on the calling thread (0) with params
        // this function owns.
        unsafe {
            let policy = libc::sched_getscheduler(0);
            let mut old: libc::sched_param = std::mem::zeroed();
            libc::sched_getparam(0, &mut old);
            let already = policy == libc::SCHED_FIFO && old.sched_priority >= priority;
            let fifo = libc::sched_param { sched_priority: priority };
            let raised = policy >= 0 && !already && libc::sched_setscheduler(0, libc::SCHED_FIFO, &fifo) == 0;
            Fifo { old: raised.then_some((policy, old)) }
        }
    }

    /// SCHED_FIFO 1, above every ordinary task and below the kernel's own
    /// real-time threads: the watch during a stress. It sleeps but for a
    /// few milliseconds a second; when the BPF side sends an alert it must
    /// run at once, since a kernel that queued an object twice crashes on
    /// it a grace period later (tens of milliseconds under TCG). At its
    /// usual priority it shares its CPU with the load generator and the
    /// triggers' task-context work, and in one CI run of the double-queue
    /// fault kernel the kernel crashed before the watch had streamed the
    /// alert it held.
    pub fn prompt() -> Fifo {
        Fifo::at(1)
    }
}

impl Drop for Fifo {
    fn drop(&mut self) {
        if let Some((policy, old)) = self.old {
            // SAFETY: as in `at`.
            unsafe { libc::sched_setscheduler(0, policy, &old) };
        }
    }
}

/// Runs `f`, which reads maps while the observers are attached, at
/// real-time priority. bpf() raises its CPU's `bpf_prog_active` while it
/// copies a map, and should the reader be preempted there, every kprobe
/// program on that CPU is skipped until it runs again (seen on PREEMPT_RT:
/// the rcu_free_sheaf() kprobe observer missed a sheaf of 60 objects in a
/// 10 s all run). At SCHED_FIFO 99 no task preempts the reader for those
/// few system calls; it goes back to its priority after.
pub fn unpreempted<T>(f: impl FnOnce() -> T) -> T {
    let _fifo = Fifo::at(99);
    f()
}
