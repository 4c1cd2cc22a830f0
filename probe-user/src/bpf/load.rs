//! Loading (and so verifying) the programs a run or a bench needs, before
//! anything is attached.

use anyhow::Result;
use aya::{
    Btf, Ebpf,
    programs::{BtfTracePoint, FEntry, FExit, KProbe, PerfEvent},
};
use probe_common::{
    Attach, RunConfig, Trigger,
    programs::{self, Hook, Role},
};

use super::{Probes, open, program, refused};

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

impl Probes {
    /// Loads the given triggers, the observers for this kind of kernel and
    /// the drain.
    pub fn load(cfg: &RunConfig, triggers: &[Trigger], preempt_rt: bool) -> Result<Self> {
        let (mut ebpf, btf) = open(cfg)?;
        for &t in triggers {
            load_trigger(&mut ebpf, &btf, t)?;
        }
        if triggers.contains(&Trigger::MapUpdate) {
            load_helper(&mut ebpf, &btf, programs::MAP_DRIVER)?;
        }
        for o in programs::observers_for(preempt_rt) {
            load_hooked(&mut ebpf, &btf, o.hook, o.program, o.function)?;
        }
        load_helper(&mut ebpf, &btf, programs::DRAIN)?;
        Ok(Self::new(ebpf, preempt_rt))
    }

    /// Loads the bench program and the drain, and with `observers` the
    /// path observers (`attach_observers(false)` attaches them).
    pub fn load_bench(cfg: &RunConfig, observers: bool, preempt_rt: bool) -> Result<Self> {
        let (mut ebpf, btf) = open(cfg)?;
        load_helper(&mut ebpf, &btf, programs::BENCH)?;
        load_helper(&mut ebpf, &btf, programs::DRAIN)?;
        for o in programs::observers_for(preempt_rt).filter(|o| observers && o.role == Role::Path) {
            load_hooked(&mut ebpf, &btf, o.hook, o.program, o.function)?;
        }
        Ok(Self::new(ebpf, preempt_rt))
    }
}
