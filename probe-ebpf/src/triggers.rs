//! Trigger programs: each allocates objects with kmalloc_nolock() and hands
//! them to kfree_rcu_nolock() (or kfree_nolock()) from the context it is
//! attached to. They differ only in where they are attached: the work is
//! one function, `exercise()`.

use core::ptr::null_mut;

use aya_ebpf::{
    helpers::{bpf_get_prandom_u32, bpf_get_smp_processor_id},
    macros::{btf_tracepoint, fentry, kprobe, perf_event},
    programs::{BtfTracePointContext, FEntryContext, PerfEventContext, ProbeContext},
};
use probe_common::{InFlight, NolockObj, RunConfig, Trigger, ctx};

use crate::{
    counters::{COUNTERS, IN_FLIGHT, RUN_CONFIG, count},
    kfuncs::{bpf_kfree_nolock, bpf_kfree_rcu_nolock, bpf_kmalloc_nolock},
};

#[inline(always)]
fn random() -> u32 {
    // SAFETY: a helper without arguments.
    unsafe { bpf_get_prandom_u32() }
}

/// One hit: up to `burst` (at most four) objects allocated and held, then
/// all freed. The
/// context the kernel saw comes from each object's header, so the report
/// shows where the call really ran, not where it was meant to.
#[inline(always)]
fn exercise(trigger: Trigger) -> u32 {
    let tag = trigger as u32;
    let cfg = RUN_CONFIG.load();
    // SAFETY: a helper without arguments.
    let cpu = unsafe { bpf_get_smp_processor_id() };
    if cfg.cpu_mask != 0 && (cpu >= 64 || cfg.cpu_mask & (1 << cpu) == 0) {
        return 0;
    }
    count!(tag, hits);
    if cfg.every_nth > 1 {
        let Some(c) = COUNTERS.get_ptr(tag) else { return 0 };
        // SAFETY: this CPU's value; a stale read only shifts the pattern.
        // checked_rem: a division the compiler cannot prove safe would leave
        // a panic path, which the verifier refuses.
        if unsafe { (*c).hits }.checked_rem(cfg.every_nth as u64) != Some(0) {
            return 0;
        }
    }

    // The burst is held in separate locals, not an array: the verifier
    // tracks each reference in its own stack slot and loses them in an
    // array walked with a variable index.
    let a = allocate(tag, &cfg, 0);
    let b = allocate(tag, &cfg, 1);
    let c = allocate(tag, &cfg, 2);
    let d = allocate(tag, &cfg, 3);
    release(tag, &cfg, a);
    release(tag, &cfg, b);
    release(tag, &cfg, c);
    release(tag, &cfg, d);
    0
}

/// Allocates the `i`th object of a burst, or returns NULL (past the burst,
/// or when the kernel said no).
#[inline(always)]
fn allocate(tag: u32, cfg: &RunConfig, i: u32) -> *mut NolockObj {
    if i >= cfg.burst {
        return null_mut();
    }
    count!(tag, calls);
    // `get` and `checked_rem`, not indexing and `%`: a panic path is code
    // the verifier refuses (it never ends in an exit).
    let pick = (random() as usize).checked_rem(cfg.n_sizes as usize).unwrap_or(0);
    let size = cfg.sizes.get(pick).copied().unwrap_or(0);
    // SAFETY: a kfunc of kernel-patches/; the verifier tracks the reference.
    let obj = unsafe { bpf_kmalloc_nolock(size, cfg.alloc_flags, tag) };
    if obj.is_null() {
        count!(tag, alloc_fail);
        return obj;
    }
    // SAFETY: `obj` is a valid object until it is released.
    let alloc_ctx = unsafe { (*obj).alloc_ctx };
    count!(tag, alloc_ctx[(alloc_ctx & ctx::MASK) as usize & (ctx::COUNT - 1)]);
    if alloc_ctx & ctx::IRQS_OFF != 0 {
        count!(tag, alloc_irqs_off);
    }
    obj
}

/// Frees an object of a burst with kfree_rcu_nolock(), or kfree_nolock()
/// for the configured share.
#[inline(always)]
fn release(tag: u32, cfg: &RunConfig, obj: *mut NolockObj) {
    if obj.is_null() {
        return;
    }
    if cfg.nolock_share_pct > 0 && random() % 100 < cfg.nolock_share_pct {
        // SAFETY: releases a reference taken by allocate().
        unsafe { bpf_kfree_nolock(obj) };
        count!(tag, freed_nolock);
        return;
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
    // SAFETY: releases a reference taken by allocate().
    unsafe { bpf_kfree_rcu_nolock(obj) };
    count!(tag, freed_rcu);
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

/// One fentry trigger per slab internal: kfree_rcu_nolock() called from
/// inside the allocator's own machinery.
macro_rules! fentry_trigger {
    ($($program:ident: $function:literal => $trigger:expr;)+) => {$(
        #[fentry(function = $function)]
        pub fn $program(_ctx: FEntryContext) -> u32 {
            exercise($trigger)
        }
    )+};
}

fentry_trigger! {
    trigger_fentry_deferred_work: "deferred_percpu_work_fn" => Trigger::FentryDeferredWork;
    trigger_fentry_slab_free: "__slab_free" => Trigger::FentrySlabFree;
    trigger_fentry_kfree_rcu_sheaf: "__kfree_rcu_sheaf" => Trigger::FentryKfreeRcuSheaf;
    trigger_fentry_defer_kfree_rcu: "defer_kfree_rcu" => Trigger::FentryDeferKfreeRcu;
    trigger_fentry_rcu_free_sheaf: "rcu_free_sheaf" => Trigger::FentryRcuFreeSheaf;
    trigger_fentry_barn_get_empty_sheaf: "barn_get_empty_sheaf" => Trigger::FentryBarnGetEmptySheaf;
}

/// One tp_btf trigger per tracepoint: task, softirq, hardirq and NMI.
macro_rules! tracepoint_trigger {
    ($($program:ident: $tracepoint:literal => $trigger:expr;)+) => {$(
        #[btf_tracepoint(function = $tracepoint)]
        pub fn $program(_ctx: BtfTracePointContext) -> u32 {
            exercise($trigger)
        }
    )+};
}

tracepoint_trigger! {
    trigger_syscall: "sys_enter" => Trigger::Syscall;
    trigger_softirq: "softirq_entry" => Trigger::Softirq;
    trigger_hrtimer: "hrtimer_expire_entry" => Trigger::Hrtimer;
    trigger_nmi: "nmi_handler" => Trigger::Nmi;
}
