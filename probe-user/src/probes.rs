//! Loading the BPF object and owning what it attaches. Every link is an
//! owned value: dropping `Probes` (normal end, error, Ctrl-C, panic)
//! detaches everything.

use std::{
    any::Any,
    collections::BTreeMap,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, anyhow, bail};
use aya::{
    Btf, Ebpf, EbpfLoader,
    maps::{Array, HashMap, MapData, PerCpuArray},
    programs::{
        BtfTracePoint, FEntry, FExit, KProbe, PerfEvent, ProgramError,
        perf_event::{HardwareEvent, PerfEventConfig, PerfEventScope, SamplePolicy, SoftwareEvent},
    },
};
use probe_common::{Attach, InFlight, LatencyStats, RunConfig, Trigger, TriggerCounters};

use crate::latency;

static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/nolock-probe.bpf.o"));

/// How a program is hooked to a kernel function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Hook {
    Fentry,
    Fexit,
    Kprobe,
}

/// Which kernels an observer is for: the sheaf reclaim observers are
/// hooked where the kernel never skips them, and that differs on
/// PREEMPT_RT (see probe-ebpf/src/reclaim.rs).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kernels {
    All,
    NotRt,
    Rt,
}

/// What an observer is for, which says when it is attached and what its
/// skipped runs cost.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Counts the path each object takes: always attached.
    Path,
    /// Stamps a fallen-back object's requeue, for the wait's split: with
    /// the latency observers. A skipped run loses one object's split, not
    /// its check.
    Split,
    /// Follows objects to their reclaim: with the latency observers. A
    /// skipped run can leave a whole sheaf or block unchecked.
    Reclaim,
}

struct Observer {
    program: &'static str,
    hook: Hook,
    function: &'static str,
    kernels: Kernels,
    role: Role,
}

const fn observer(program: &'static str, hook: Hook, function: &'static str, kernels: Kernels) -> Observer {
    Observer { program, hook, function, kernels, role: Role::Path }
}

const fn split(program: &'static str, hook: Hook, function: &'static str, kernels: Kernels) -> Observer {
    Observer { program, hook, function, kernels, role: Role::Split }
}

const fn reclaim(program: &'static str, hook: Hook, function: &'static str, kernels: Kernels) -> Observer {
    Observer { program, hook, function, kernels, role: Role::Reclaim }
}

const OBSERVERS: [Observer; 13] = [
    observer("kfree_rcu_sheaf_entry", Hook::Fentry, "__kfree_rcu_sheaf", Kernels::All),
    observer("kfree_rcu_sheaf_exit", Hook::Fexit, "__kfree_rcu_sheaf", Kernels::All),
    observer("defer_kfree_rcu", Hook::Fentry, "defer_kfree_rcu", Kernels::All),
    observer("deferred_work_entry", Hook::Fentry, "deferred_percpu_work_fn", Kernels::All),
    observer("deferred_work_exit", Hook::Fexit, "deferred_percpu_work_fn", Kernels::All),
    // In task context a preempted run makes the next one on that CPU be
    // skipped; kvfree_rcu() users call it all the time.
    split("kvfree_call_rcu", Hook::Fentry, "kvfree_call_rcu", Kernels::All),
    observer("call_rcu", Hook::Fentry, "call_rcu", Kernels::All),
    reclaim("rcu_free_sheaf", Hook::Fentry, "rcu_free_sheaf", Kernels::NotRt),
    reclaim("rcu_free_sheaf_rt", Hook::Kprobe, "rcu_free_sheaf", Kernels::Rt),
    reclaim("rcu_free_sheaf_nobarn", Hook::Fentry, "rcu_free_sheaf_nobarn", Kernels::NotRt),
    reclaim("rcu_free_sheaf_nobarn_rt", Hook::Kprobe, "rcu_free_sheaf_nobarn", Kernels::Rt),
    reclaim("kvfree_rcu_bulk", Hook::Kprobe, "kvfree_rcu_bulk", Kernels::All),
    reclaim("kvfree_rcu_list", Hook::Kprobe, "kvfree_rcu_list", Kernels::All),
];

/// The observers for this kernel.
fn observers(preempt_rt: bool) -> impl Iterator<Item = &'static Observer> {
    OBSERVERS.iter().filter(move |o| match o.kernels {
        Kernels::All => true,
        Kernels::NotRt => !preempt_rt,
        Kernels::Rt => preempt_rt,
    })
}

/// The programs of all observers (of any kernel).
pub fn observer_programs() -> impl Iterator<Item = &'static str> {
    OBSERVERS.iter().map(|o| o.program)
}

/// The programs of the reclaim observers (of any kernel).
pub fn reclaim_observers() -> impl Iterator<Item = &'static str> {
    OBSERVERS.iter().filter(|o| o.role == Role::Reclaim).map(|o| o.program)
}

/// Loads program `name`, to be hooked to kernel function `func`.
fn load_hooked(ebpf: &mut Ebpf, btf: &Btf, hook: Hook, name: &str, func: &str) -> Result<()> {
    match hook {
        Hook::Fentry => program::<FEntry>(ebpf, name)?.load(func, btf),
        Hook::Fexit => program::<FExit>(ebpf, name)?.load(func, btf),
        Hook::Kprobe => program::<KProbe>(ebpf, name)?.load(),
    }
    .map_err(|e| refused(name, e))
}

/// Attaches the loaded program `name` to kernel function `func`; dropping
/// the link detaches it.
fn attach_hooked(ebpf: &mut Ebpf, hook: Hook, name: &str, func: &str) -> Result<Box<dyn Any>> {
    Ok(match hook {
        Hook::Fentry => {
            let p = program::<FEntry>(ebpf, name)?;
            let id = p.attach().with_context(|| format!("cannot attach fentry {func}"))?;
            Box::new(p.take_link(id)?)
        }
        Hook::Fexit => {
            let p = program::<FExit>(ebpf, name)?;
            let id = p.attach().with_context(|| format!("cannot attach fexit {func}"))?;
            Box::new(p.take_link(id)?)
        }
        Hook::Kprobe => {
            let p = program::<KProbe>(ebpf, name)?;
            let id = p.attach(func, 0).with_context(|| format!("cannot attach a kprobe to {func}"))?;
            Box::new(p.take_link(id)?)
        }
    })
}

const DRAIN: (&str, &str) = ("drain", "__x64_sys_getpgid");
/// The program that updates the map_update trigger's map when the load
/// threads call getsid().
const MAP_DRIVER: (&str, &str) = ("map_update_driver", "__x64_sys_getsid");

/// The bench program, run by the bench threads' getpriority().
const BENCH: (&str, &str) = ("bench", "__x64_sys_getpriority");

/// The BPF object with the run configuration set, and the kernel's BTF.
fn open(cfg: &RunConfig) -> Result<(Ebpf, Btf)> {
    if OBJECT.is_empty() {
        bail!("this nolock-probe was built without its BPF programs: build it with `cargo xtask build`");
    }
    let btf = Btf::from_sys_fs().context("cannot read the kernel's BTF")?;
    let ebpf = EbpfLoader::new()
        .override_global("RUN_CONFIG", cfg, true)
        .load(OBJECT)
        .context("cannot load the BPF object (kfuncs of kernel-patches/ not resolved?)")?;
    Ok((ebpf, btf))
}

/// Which perf event drives the perf trigger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PerfSource {
    /// Hardware CPU cycles: the overflow interrupt is an NMI.
    HardwareCycles,
    /// Software cpu-clock: an hrtimer, so hardirq context.
    SoftwareCpuClock,
}

/// Where a trigger is attached, for the report.
#[derive(Debug, Clone)]
pub struct Attachment {
    pub trigger: Trigger,
    pub point: String,
}

/// Fields drop in order: triggers detach first, then the observers, then
/// the programs and maps go.
pub struct Probes {
    trigger_links: Vec<Box<dyn Any>>,
    observer_links: Vec<Box<dyn Any>>,
    ebpf: Ebpf,
    /// Picks the observers' hooks (`observers()`).
    preempt_rt: bool,
    /// Keeps the kernel's run-time statistics of BPF programs on (None if
    /// the kernel refused).
    _stats: Option<std::os::fd::OwnedFd>,
}

/// Explains a program the kernel refused, then shows the end of the
/// verifier's log.
fn refused(name: &str, err: ProgramError) -> anyhow::Error {
    match err {
        ProgramError::LoadError { io_error, verifier_log } => {
            let log = verifier_log.to_string();
            let tail: Vec<&str> = log.lines().rev().take(12).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            anyhow!(
                "the kernel's verifier refused BPF program `{name}` ({io_error}), so this kernel and \
                 this nolock-probe do not match: rebuild both from one checkout with `cargo xtask vm` \
                 or `cargo xtask kernel`; the verifier's last lines were:\n{}",
                tail.join("\n")
            )
        }
        other => anyhow!(other).context(format!("cannot load BPF program `{name}`")),
    }
}

impl Probes {
    /// Loads (and so verifies) the observers for this kind of kernel and
    /// the given triggers before anything is attached.
    pub fn load(cfg: &RunConfig, triggers: &[Trigger], preempt_rt: bool) -> Result<Self> {
        let (mut ebpf, btf) = open(cfg)?;
        for &t in triggers {
            let name = t.program();
            match t.attach() {
                Attach::Kprobe(f) => load_hooked(&mut ebpf, &btf, Hook::Kprobe, name, f)?,
                Attach::Fentry(f) => load_hooked(&mut ebpf, &btf, Hook::Fentry, name, f)?,
                Attach::PerfEvent => {
                    program::<PerfEvent>(&mut ebpf, name)?.load().map_err(|e| refused(name, e))?
                }
                Attach::TpBtf(tp) => {
                    program::<BtfTracePoint>(&mut ebpf, name)?.load(tp, &btf).map_err(|e| refused(name, e))?
                }
            }
        }
        if triggers.contains(&Trigger::MapUpdate) {
            load_hooked(&mut ebpf, &btf, Hook::Fentry, MAP_DRIVER.0, MAP_DRIVER.1)?;
        }
        for o in observers(preempt_rt) {
            load_hooked(&mut ebpf, &btf, o.hook, o.program, o.function)?;
        }
        load_hooked(&mut ebpf, &btf, Hook::Fentry, DRAIN.0, DRAIN.1)?;
        Ok(Self::new(ebpf, preempt_rt))
    }

    /// Loads the bench program and the drain, and with `observers` the
    /// path observers (`attach_observers(false)` attaches them).
    pub fn load_bench(cfg: &RunConfig, observers: bool, preempt_rt: bool) -> Result<Self> {
        let (mut ebpf, btf) = open(cfg)?;
        load_hooked(&mut ebpf, &btf, Hook::Fentry, BENCH.0, BENCH.1)?;
        load_hooked(&mut ebpf, &btf, Hook::Fentry, DRAIN.0, DRAIN.1)?;
        for o in self::observers(preempt_rt).filter(|o| observers && o.role == Role::Path) {
            load_hooked(&mut ebpf, &btf, o.hook, o.program, o.function)?;
        }
        Ok(Self::new(ebpf, preempt_rt))
    }

    fn new(ebpf: Ebpf, preempt_rt: bool) -> Self {
        let _stats = aya::sys::enable_stats(aya::sys::Stats::RunTime).ok();
        Self { trigger_links: Vec::new(), observer_links: Vec::new(), ebpf, preempt_rt, _stats }
    }

    /// How many programs are loaded into the kernel.
    pub fn loaded(&self) -> usize {
        self.ebpf.programs().filter(|(_, p)| p.fd().is_ok()).count()
    }

    /// Attaches the bench program; it does nothing until `set_bench_mode()`.
    pub fn attach_bench(&mut self) -> Result<()> {
        let link = attach_hooked(&mut self.ebpf, Hook::Fentry, BENCH.0, BENCH.1)?;
        self.trigger_links.push(link);
        Ok(())
    }

    /// `probe_common::bench_mode`: what the bench program does from now on.
    pub fn set_bench_mode(&mut self, mode: u32) -> Result<()> {
        let m =
            self.ebpf.map_mut("BENCH_MODE").ok_or_else(|| anyhow!("the BPF object has no BENCH_MODE map"))?;
        let mut array: Array<&mut MapData, u32> = Array::try_from(m)?;
        array.set(0, &mode, 0).context("cannot set the bench program's mode")
    }

    /// Allocation and free pairs the bench has timed for `free` so far,
    /// per CPU in `cpus`: two map reads, cheap enough between samples.
    pub fn bench_ops(&self, free: probe_common::BenchFree, cpus: &[u32]) -> Result<Vec<u64>> {
        let slot = probe_common::bench_slot(free as u32, probe_common::bench_op::FREE);
        Ok(self.per_cpu::<LatencyStats>("BENCH_STATS", slot, cpus)?.iter().map(|s| s.count).collect())
    }

    /// The bench maps, per CPU in `cpus`.
    pub fn bench(&self, cpus: &[u32]) -> Result<crate::bench::BenchRaw> {
        use probe_common::{BenchFree, bench_op, hist};
        let slots = (BenchFree::COUNT * bench_op::COUNT) as u32;
        Ok(crate::bench::BenchRaw {
            cpus: cpus.to_vec(),
            hist: self.slots("BENCH_HIST", 0..slots * hist::BUCKETS, cpus)?,
            stats: self.slots("BENCH_STATS", 0..slots, cpus)?,
            fails: self.slots("BENCH_FAILS", 0..slots, cpus)?,
        })
    }

    /// Attaches the path observers, and the split and reclaim observers if
    /// `latency`.
    pub fn attach_observers(&mut self, latency: bool) -> Result<()> {
        for o in observers(self.preempt_rt).filter(|o| latency || o.role == Role::Path) {
            let link = attach_hooked(&mut self.ebpf, o.hook, o.program, o.function)?;
            self.observer_links.push(link);
        }
        Ok(())
    }

    /// Attaches the given triggers; perf events once per CPU in `cpus`.
    pub fn attach_triggers(
        &mut self,
        triggers: &[Trigger],
        cpus: &[u32],
        perf_hz: u64,
    ) -> Result<Vec<Attachment>> {
        let mut points = Vec::new();
        for &t in triggers {
            let name = t.program();
            let point = match t.attach() {
                Attach::Kprobe(f) => {
                    self.trigger_links.push(attach_hooked(&mut self.ebpf, Hook::Kprobe, name, f)?);
                    format!("kprobe:{f}")
                }
                Attach::Fentry(f) if t == Trigger::MapUpdate => {
                    self.trigger_links.push(attach_hooked(&mut self.ebpf, Hook::Fentry, name, f)?);
                    let (driver, function) = MAP_DRIVER;
                    self.trigger_links.push(attach_hooked(&mut self.ebpf, Hook::Fentry, driver, function)?);
                    format!("fentry:{f} (updates from fentry:{function}, the load's getsid())")
                }
                Attach::Fentry(f) => {
                    self.trigger_links.push(attach_hooked(&mut self.ebpf, Hook::Fentry, name, f)?);
                    format!("fentry:{f}")
                }
                Attach::TpBtf(tp) => {
                    let p = program::<BtfTracePoint>(&mut self.ebpf, name)?;
                    let id = p.attach().with_context(|| format!("cannot attach tp_btf {tp}"))?;
                    self.trigger_links.push(Box::new(p.take_link(id)?));
                    format!("tp_btf:{tp}")
                }
                Attach::PerfEvent => {
                    let source = perf_source();
                    let (config, event) = match source {
                        PerfSource::HardwareCycles => {
                            (PerfEventConfig::Hardware(HardwareEvent::CpuCycles), "hardware/cpu-cycles")
                        }
                        PerfSource::SoftwareCpuClock => {
                            (PerfEventConfig::Software(SoftwareEvent::CpuClock), "software/cpu-clock")
                        }
                    };
                    let p = program::<PerfEvent>(&mut self.ebpf, name)?;
                    for &cpu in cpus {
                        let scope = PerfEventScope::AllProcessesOneCpu { cpu };
                        let id = p
                            .attach(config.clone(), scope, SamplePolicy::Frequency(perf_hz), false)
                            .with_context(|| format!("cannot open the {event} perf event on CPU {cpu}"))?;
                        self.trigger_links.push(Box::new(p.take_link(id)?));
                    }
                    format!("perf_event:{event}@{perf_hz}Hz")
                }
            };
            points.push(Attachment { trigger: t, point });
        }
        Ok(points)
    }

    pub fn detach_triggers(&mut self) {
        self.trigger_links.clear();
    }

    /// Waits until every object handed to kfree_rcu_nolock() so far is
    /// freed: the drain program runs kvfree_rcu_barrier() when this process
    /// calls getpgid().
    pub fn drain(&mut self) -> Result<Duration> {
        let p: &mut FEntry = program(&mut self.ebpf, DRAIN.0)?;
        let id = p
            .attach()
            .with_context(|| format!("cannot attach the sleepable drain program to {}", DRAIN.1))?;
        let start = Instant::now();
        // SAFETY: getpgid(0) has no preconditions.
        unsafe { libc::getpgid(0) };
        let took = start.elapsed();
        p.detach(id)?;
        Ok(took)
    }

    /// Per-CPU counters of `trigger`, indexed by CPU id.
    pub fn counters(&self, trigger: Trigger) -> Result<Vec<TriggerCounters>> {
        self.all_cpus("COUNTERS", trigger as u32)
    }
}

impl Probes {
    /// Slot `index` of a per-CPU array, one value per possible CPU.
    fn all_cpus<T: aya::Pod>(&self, map: &str, index: u32) -> Result<Vec<T>> {
        let m = self.ebpf.map(map).ok_or_else(|| anyhow!("the BPF object has no {map} map"))?;
        let array: PerCpuArray<&MapData, T> = PerCpuArray::try_from(m)?;
        Ok(array.get(&index, 0).with_context(|| format!("cannot read the {map} map"))?.to_vec())
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

    /// The same for the CPUs in `cpus` only, in that order.
    fn per_cpu<T: aya::Pod>(&self, map: &str, index: u32, cpus: &[u32]) -> Result<Vec<T>> {
        let values = self.all_cpus::<T>(map, index)?;
        Ok(cpus.iter().filter_map(|&c| values.get(c as usize).copied()).collect())
    }

    /// The latency maps, per CPU in `cpus`.
    pub fn latency(&self, cpus: &[u32]) -> Result<latency::Raw> {
        use probe_common::{Path, Stage, hist};
        let slots = (Path::COUNT * Stage::COUNT) as u32;
        Ok(latency::Raw {
            cpus: cpus.to_vec(),
            hist: self.slots("HIST", 0..slots * hist::BUCKETS, cpus)?,
            stats: self.slots("LATENCY", 0..slots, cpus)?,
            paths: self.slots("PATH_COUNTERS", 0..Path::COUNT as u32, cpus)?,
        })
    }

    /// How long `trigger`'s calls took, per CPU in `cpus`: histograms and
    /// summaries with the trigger's `call_kind`s at slots 0..COUNT. Only
    /// the histograms of kinds that occurred are read.
    pub fn call_times(
        &self,
        trigger: Trigger,
        cpus: &[u32],
    ) -> Result<BTreeMap<&'static str, latency::CallTimes>> {
        use probe_common::{call_kind, call_slot, hist};
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
        Ok(latency::call_times(cpus, &hists, &stats))
    }

    /// Objects still in flight, by trigger tag: after the drain, the lost.
    pub fn in_flight(&self) -> Result<std::collections::BTreeMap<u32, u64>> {
        let m = self.ebpf.map("IN_FLIGHT").ok_or_else(|| anyhow!("the BPF object has no IN_FLIGHT map"))?;
        let map: HashMap<&MapData, u64, InFlight> = HashMap::try_from(m)?;
        let mut by_tag = std::collections::BTreeMap::new();
        for entry in map.iter() {
            let (_, state) = entry.context("cannot read the IN_FLIGHT map")?;
            *by_tag.entry(state.tag).or_insert(0) += 1;
        }
        Ok(by_tag)
    }
}

/// `BPF_OBJ_GET_INFO_BY_FD`'s part of `union bpf_attr`.
#[repr(C)]
struct InfoByFd {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
}

/// Runs `f`, which reads maps while the observers are attached, at
/// real-time priority. bpf() raises its CPU's `bpf_prog_active` while it
/// copies a map, and should the reader be preempted there, every kprobe
/// program on that CPU is skipped until it runs again (seen on PREEMPT_RT:
/// the rcu_free_sheaf() kprobe observer missed a sheaf of 60 objects in a
/// 10 s all run). At SCHED_FIFO 99 no task preempts the reader for those
/// few system calls; it sleeps the rest of the second at its usual priority.
pub fn unpreempted<T>(f: impl FnOnce() -> T) -> T {
    // SAFETY: scheduling calls on the calling thread (0) with a param this
    // function owns.
    unsafe {
        let policy = libc::sched_getscheduler(0);
        let mut old: libc::sched_param = std::mem::zeroed();
        libc::sched_getparam(0, &mut old);
        let fifo = libc::sched_param { sched_priority: 99 };
        let raised = policy >= 0 && libc::sched_setscheduler(0, libc::SCHED_FIFO, &fifo) == 0;
        let r = f();
        if raised {
            libc::sched_setscheduler(0, policy, &old);
        }
        r
    }
}

/// What the kernel counted for one program while the tool ran it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ProgramStats {
    /// Runs, and the time they took in all (kernel.bpf_stats, which the
    /// loader turns on while it runs: two clock reads per run).
    pub runs: u64,
    pub run_time_ns: u64,
    /// Times the kernel skipped the program because it was already running
    /// on that CPU (an NMI or interrupt landed inside it, or it re-entered
    /// itself).
    pub recursion_misses: u64,
}

fn program_stats(fd: std::os::fd::BorrowedFd<'_>) -> Result<ProgramStats> {
    use std::os::fd::AsRawFd;
    // SAFETY: bpf_prog_info is plain data; zero is a valid value.
    let mut info: aya_obj::generated::bpf_prog_info = unsafe { std::mem::zeroed() };
    let mut attr = InfoByFd {
        bpf_fd: fd.as_raw_fd() as u32,
        info_len: size_of::<aya_obj::generated::bpf_prog_info>() as u32,
        info: &raw mut info as u64,
    };
    // SAFETY: BPF_OBJ_GET_INFO_BY_FD writes at most info_len bytes to `info`.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            aya_obj::generated::bpf_cmd::BPF_OBJ_GET_INFO_BY_FD as libc::c_long,
            &raw mut attr,
            size_of::<InfoByFd>(),
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error()).context("cannot read a BPF program's statistics");
    }
    Ok(ProgramStats {
        runs: info.run_cnt,
        run_time_ns: info.run_time_ns,
        recursion_misses: info.recursion_misses,
    })
}

impl Probes {
    /// The kernel's statistics of every loaded program, by program name.
    pub fn program_stats(&self) -> Result<std::collections::BTreeMap<String, ProgramStats>> {
        use std::os::fd::AsFd;
        let mut out = std::collections::BTreeMap::new();
        for (name, p) in self.ebpf.programs() {
            if let Ok(fd) = p.fd() {
                out.insert(name.to_string(), program_stats(fd.as_fd())?);
            }
        }
        Ok(out)
    }
}

fn program<'a, T>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut T>
where
    &'a mut T: TryFrom<&'a mut aya::programs::Program, Error = ProgramError>,
{
    let p = ebpf.program_mut(name).ok_or_else(|| anyhow!("the BPF object has no program `{name}`"))?;
    p.try_into().with_context(|| format!("BPF program `{name}` has an unexpected type"))
}

/// Hardware cycles where a PMU exists (their overflow is an NMI), else the
/// software cpu-clock, as slub_kunit does.
pub fn perf_source() -> PerfSource {
    use perf_event_open_sys::bindings::{PERF_COUNT_HW_CPU_CYCLES, PERF_TYPE_HARDWARE, perf_event_attr};
    let mut attr = perf_event_attr {
        type_: PERF_TYPE_HARDWARE,
        size: size_of::<perf_event_attr>() as u32,
        config: PERF_COUNT_HW_CPU_CYCLES as u64,
        ..Default::default()
    };
    attr.set_disabled(1);
    // SAFETY: `attr` is a valid attribute block; the descriptor is closed.
    let fd = unsafe { perf_event_open_sys::perf_event_open(&mut attr, -1, 0, -1, 0) };
    if fd >= 0 {
        // SAFETY: `fd` was just opened by this function.
        unsafe { libc::close(fd) };
        PerfSource::HardwareCycles
    } else {
        PerfSource::SoftwareCpuClock
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The programs whose misses excuse a free without a path are path
    /// observers that every kernel gets.
    #[test]
    fn the_path_observers_are_hooked_on_every_kernel() {
        for p in probe_common::PATH_OBSERVERS {
            let o = OBSERVERS.iter().find(|o| o.program == p).unwrap_or_else(|| panic!("{p} is no observer"));
            assert!(o.role == Role::Path && matches!(o.kernels, Kernels::All), "{p}");
        }
    }

    /// On either kind of kernel every observed function is hooked, the
    /// sheaf reclaim ones exactly once (twice would count nothing twice,
    /// but would hide which hook the kernel skipped).
    #[test]
    fn each_kernel_gets_one_hook_per_reclaim_function() {
        for rt in [false, true] {
            let hooked: Vec<&Observer> = observers(rt).collect();
            for o in &OBSERVERS {
                assert!(hooked.iter().any(|h| h.function == o.function), "{} unhooked (rt {rt})", o.function);
            }
            for func in ["rcu_free_sheaf", "rcu_free_sheaf_nobarn", "kvfree_rcu_bulk", "kvfree_rcu_list"] {
                let on: Vec<&&Observer> = hooked.iter().filter(|h| h.function == func).collect();
                assert_eq!(on.len(), 1, "{func} (rt {rt})");
                assert!(on[0].role == Role::Reclaim, "{} is not a reclaim observer", on[0].program);
            }
        }
        let rt_sheaf = observers(true).find(|o| o.function == "rcu_free_sheaf").map(|o| o.hook);
        assert!(rt_sheaf == Some(Hook::Kprobe));
        assert_eq!(reclaim_observers().count(), 6);
        // What --no-latency leaves out: all but the path observers.
        let split = OBSERVERS.iter().find(|o| o.program == "kvfree_call_rcu").map(|o| o.role);
        assert!(split == Some(Role::Split));
    }
}
