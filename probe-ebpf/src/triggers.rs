//! Trigger programs: each allocates one object with kmalloc_nolock() and
//! hands it to kfree_rcu_nolock() from the context it is attached to.

use aya_ebpf::{
    macros::{fentry, kprobe, perf_event},
    programs::{FEntryContext, PerfEventContext, ProbeContext},
};
use probe_common::{InFlight, Trigger, ctx};

use crate::{
    counters::{IN_FLIGHT, RUN_CONFIG, count},
    kfuncs::{bpf_kfree_rcu_nolock, bpf_kmalloc_nolock},
};

/// One allocate-and-free round, counted under the trigger's tag. The
/// context the kernel saw comes from the object's header, so the report
/// shows where the call really ran, not where it was meant to.
#[inline(always)]
fn exercise(trigger: Trigger) -> u32 {
    let tag = trigger as u32;
    count!(tag, calls);
    let cfg = RUN_CONFIG.load();
    // SAFETY: a kfunc of kernel-patches/; the verifier tracks the reference.
    let obj = unsafe { bpf_kmalloc_nolock(cfg.payload_size, cfg.alloc_flags, tag) };
    if obj.is_null() {
        count!(tag, alloc_fail);
        return 0;
    }
    // SAFETY: `obj` is a valid object until it is released below.
    let alloc_ctx = unsafe { (*obj).alloc_ctx };
    count!(tag, alloc_ctx[(alloc_ctx & ctx::MASK) as usize & (ctx::COUNT - 1)]);
    if alloc_ctx & ctx::IRQS_OFF != 0 {
        count!(tag, alloc_irqs_off);
    }
    // Followed until its reclaim. Inserted before the free, though no grace
    // period can end while this program runs: a broken kernel that frees at
    // once must still be caught.
    if cfg.track != 0 {
        let state = InFlight { tag, ..Default::default() };
        if IN_FLIGHT.insert(&(obj as u64), &state, 0).is_err() {
            count!(tag, untracked);
        }
    }
    // SAFETY: releases the reference taken above.
    unsafe { bpf_kfree_rcu_nolock(obj) };
    count!(tag, freed_rcu);
    0
}

/// Runs with a node list_lock or the per-CPU sheaves lock held: the sheaf
/// trylock fails and kfree_rcu_nolock() must fall back.
#[kprobe]
pub fn trigger_locked_kprobe(_ctx: ProbeContext) -> u32 {
    exercise(Trigger::LockedKprobe)
}

/// NMI on hardware cycles; hardirq (hrtimer) on the software cpu-clock.
#[perf_event]
pub fn trigger_perf_event(_ctx: PerfEventContext) -> u32 {
    exercise(Trigger::PerfEvent)
}

/// Inside the irq_work that kfree_rcu_nolock() defers to.
#[fentry(function = "deferred_percpu_work_fn")]
pub fn trigger_fentry_deferred_work(_ctx: FEntryContext) -> u32 {
    exercise(Trigger::FentryDeferredWork)
}
