//! Attaching loaded programs, and detaching them: triggers, observers, the
//! bench program, and the drain for the length of its system call.

use std::{
    any::Any,
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use aya::{
    Ebpf,
    programs::{
        BtfTracePoint, FEntry, FExit, KProbe, PerfEvent,
        perf_event::{HardwareEvent, PerfEventConfig, PerfEventScope, SamplePolicy, SoftwareEvent},
    },
};
use probe_common::{
    Attach, Trigger,
    programs::{self, Hook, ObserverSet},
};

use super::{Probes, program};

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

fn attach_helper(ebpf: &mut Ebpf, helper: programs::Helper) -> Result<Box<dyn Any>> {
    attach_hooked(ebpf, Hook::Fentry, helper.program, helper.function)
}

/// Which perf event drives the perf trigger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PerfSource {
    /// Hardware CPU cycles: the overflow interrupt is an NMI.
    HardwareCycles,
    /// Software cpu-clock: an hrtimer, so hardirq context.
    SoftwareCpuClock,
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

/// Where a trigger is attached, for the report.
#[derive(Debug, Clone)]
pub struct Attachment {
    pub trigger: Trigger,
    pub point: String,
}

impl Probes {
    /// Attaches the bench program; it does nothing until `set_bench_mode()`.
    pub fn attach_bench(&mut self) -> Result<()> {
        let link = attach_helper(&mut self.ebpf, programs::BENCH)?;
        self.trigger_links.push(link);
        Ok(())
    }

    /// Attaches the observers of `set`.
    pub fn attach_observers(&mut self, set: ObserverSet) -> Result<()> {
        for o in set.observers(self.preempt_rt) {
            let link = attach_hooked(&mut self.ebpf, o.hook, o.program, o.function)?;
            self.observer_links.push(link);
        }
        Ok(())
    }

    /// Detaches every observer.
    pub fn detach_observers(&mut self) {
        self.observer_links.clear();
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
                    self.trigger_links.push(attach_helper(&mut self.ebpf, programs::MAP_DRIVER)?);
                    format!(
                        "fentry:{f} (updates from fentry:{}, the load's getsid())",
                        programs::MAP_DRIVER.function
                    )
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
                    let (config, event) = match perf_source() {
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
        let (name, function) = (programs::DRAIN.program, programs::DRAIN.function);
        let p: &mut FEntry = program(&mut self.ebpf, name)?;
        let id =
            p.attach().with_context(|| format!("cannot attach the sleepable drain program to {function}"))?;
        let start = Instant::now();
        // SAFETY: getpgid(0) has no preconditions.
        unsafe { libc::getpgid(0) };
        let took = start.elapsed();
        p.detach(id)?;
        Ok(took)
    }
}
