//! Loading (and so verifying) the programs a run or a bench needs, before
//! anything is attached.

use std::time::Instant;

use anyhow::{Result, ensure};
use aya::{
    Btf, Ebpf,
    programs::{BtfTracePoint, FEntry, FExit, KProbe, PerfEvent},
};
use probe_common::{
    Attach, RunConfig, Trigger,
    programs::{self, Hook, ObserverSet},
};

use super::{LoadTimes, Probes, open, program, refused};

/// Loads program `name`, to be hooked to kernel function `func`.
pub(super) fn load_hooked(ebpf: &mut Ebpf, btf: &Btf, hook: Hook, name: &str, func: &str) -> Result<()> {
    match hook {
        Hook::Fentry => program::<FEntry>(ebpf, name)?.load(func, btf),
        Hook::Fexit => program::<FExit>(ebpf, name)?.load(func, btf),
        Hook::Kprobe => program::<KProbe>(ebpf, name)?.load(),
    }
    .map_err(|e| refused(name, e))
}

fn load_helper(ebpf: &mut Ebpf, btf: &Btf, helper: programs::Helper) -> Result<()> {
    load_hooked(ebpf, btf, Hook::Fentry, helper.program, helper.function)
}

fn load_trigger(ebpf: &mut Ebpf, btf: &Btf, t: Trigger) -> Result<()> {
    let name = t.program();
    match t.attach() {
        Attach::Kprobe(f) => load_hooked(ebpf, btf, Hook::Kprobe, name, f),
        Attach::Fentry(f) => load_hooked(ebpf, btf, Hook::Fentry, name, f),
        Attach::PerfEvent => program::<PerfEvent>(ebpf, name)?.load().map_err(|e| refused(name, e)),
        Attach::TpBtf(tp) => {
            program::<BtfTracePoint>(ebpf, name)?.load(tp, btf).map_err(|e| refused(name, e))
        }
    }
}

/// Runs one program's load and files its time under `name`.
fn timed(times: &mut LoadTimes, name: &str, load: impl FnOnce() -> Result<()>) -> Result<()> {
    let start = Instant::now();
    load()?;
    times.programs.insert(name.to_string(), start.elapsed().as_nanos() as u64);
    Ok(())
}

/// The object, opened and timed.
fn opened(cfg: &RunConfig) -> Result<(Ebpf, Btf, LoadTimes)> {
    // A bench once loaded its observers without the kernel's part of the
    // config, and nothing said so: its figures were nonsense.
    ensure!(
        cfg.knows_the_kernel(),
        "nolock-probe's own bug: the BPF programs were about to load without the running kernel's layout \
         (commands::run::kernel_config), so their observers would read sheaves at offset 0; please report it"
    );
    let start = Instant::now();
    let (ebpf, btf) = open(cfg)?;
    Ok((ebpf, btf, LoadTimes { object_ns: start.elapsed().as_nanos() as u64, ..Default::default() }))
}

impl Probes {
    /// Loads the given triggers, the observers of `set` for this kind of
    /// kernel and the drain.
    pub fn load(cfg: &RunConfig, triggers: &[Trigger], set: ObserverSet, preempt_rt: bool) -> Result<Self> {
        let (mut ebpf, btf, mut times) = opened(cfg)?;
        for &t in triggers {
            timed(&mut times, t.program(), || load_trigger(&mut ebpf, &btf, t))?;
        }
        let mut helpers = vec![programs::DRAIN];
        if triggers.contains(&Trigger::MapUpdate) {
            helpers.push(programs::MAP_DRIVER);
        }
        for h in helpers {
            timed(&mut times, h.program, || load_helper(&mut ebpf, &btf, h))?;
        }
        for o in set.observers(preempt_rt) {
            timed(&mut times, o.program, || load_hooked(&mut ebpf, &btf, o.hook, o.program, o.function))?;
        }
        Ok(Self::new(ebpf, preempt_rt, times))
    }

    /// Loads the bench program and the drain, and the observers of `set`
    /// (`attach_observers(set)` attaches them).
    pub fn load_bench(cfg: &RunConfig, set: Option<ObserverSet>, preempt_rt: bool) -> Result<Self> {
        let (mut ebpf, btf, mut times) = opened(cfg)?;
        for h in [programs::BENCH, programs::DRAIN] {
            timed(&mut times, h.program, || load_helper(&mut ebpf, &btf, h))?;
        }
        for o in set.into_iter().flat_map(|set| set.observers(preempt_rt)) {
            timed(&mut times, o.program, || load_hooked(&mut ebpf, &btf, o.hook, o.program, o.function))?;
        }
        Ok(Self::new(ebpf, preempt_rt, times))
    }
}
