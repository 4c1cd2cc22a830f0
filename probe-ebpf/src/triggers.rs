//! Trigger programs: each allocates objects with kmalloc_nolock() and hands
//! them to kfree_rcu_nolock() (or kfree_nolock()) from the context it is
//! attached to. They differ only in where they are attached: the work is
//! one function, `exercise()`.

use core::{ffi::c_void, ptr::null_mut};

use aya_ebpf::{
    EbpfContext,
    bindings::BPF_F_NO_PREALLOC,
    helpers::{
        bpf_get_current_pid_tgid, bpf_get_prandom_u32, bpf_get_smp_processor_id, bpf_loop,
        bpf_probe_read_kernel,
    },
    macros::{btf_tracepoint, fentry, kprobe, map, perf_event},
    maps::HashMap,
    programs::{BtfTracePointContext, FEntryContext, PerfEventContext, ProbeContext},
};
use probe_common::{
    GpSeq, HELD_SLOTS, InFlight, LOAD_MAP_ENTRIES, LOAD_MAP_KEYS_PER_CPU, LockedSite, MAX_HOLD_CPUS,
    NolockObj, RunConfig, Trigger, call_kind, ctx, held_slot, observer_state, queue, violation,
};

use crate::{
    counters::{
        COUNTERS, CallTimer, FreeMark, HOLDING, IN_FLIGHT, LAST_CALL, RUN_CONFIG, ToolClock, count,
        gp_elapsed, now, state, time_call, trigger_calls, violated,
    },
    kfuncs::{bpf_kfree_nolock, bpf_kfree_rcu_nolock, bpf_kmalloc_nolock, held_swap},
    observers::mark_queued,
};

#[inline(always)]
fn random() -> u32 {
    // SAFETY: a helper without arguments.
    unsafe { bpf_get_prandom_u32() }
}

/// One hit: one object allocated, then freed at once, or with a burst
/// held until the hit that completes the burst frees them all. The
/// context the kernel saw comes from each object's header, so the report
/// shows where the call really ran, not where it was meant to.
#[inline(always)]
fn exercise(trigger: Trigger) -> u32 {
    exercise_at(trigger, None)
}

/// [`exercise()`], with the call counted by its `site` where the trigger
/// has several.
#[inline(always)]
fn exercise_at(trigger: Trigger, site: Option<LockedSite>) -> u32 {
    // A call of another trigger that this one runs inside leaves it out.
    let _clock = ToolClock::start();
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
    if cfg.min_interval_ns != 0 {
        let Some(last) = LAST_CALL.get_ptr_mut(tag) else { return 0 };
        let t = now();
        // SAFETY: this CPU's value of an existing slot; a trigger program
        // does not run nested in itself on one CPU.
        unsafe {
            if t.wrapping_sub(*last) < cfg.min_interval_ns {
                return 0;
            }
            *last = t;
        }
    }
    match site {
        Some(LockedSite::SheavesLock) => count!(tag, calls_sheaves_lock),
        Some(LockedSite::Unknown) => count!(tag, calls_site_unknown),
        _ => {}
    }
    // A hit inside another trigger's allocation or free (a hook that call
    // passes, or an interrupt that landed in it) was set off by the tool,
    // not by the kernel's own work: the report tells the two apart.
    if state(observer_state::IN_TRIGGER_CALL) > 0 {
        count!(tag, calls_nested);
    }
    trigger_calls(1);
    let obj = allocate(tag, &cfg);
    if cfg.burst <= 1 || cpu >= MAX_HOLD_CPUS {
        release(&cfg, obj);
    } else {
        hold(tag, &cfg, cpu, obj);
    }
    trigger_calls(-1);
    0
}

/// Puts `obj` into the trigger's next `HELD` slot on this CPU; the hit that
/// fills the last slot frees the whole burst, back to back. A trigger
/// program does not run nested in itself on one CPU, so its place in the
/// burst has one writer.
#[inline(always)]
fn hold(tag: u32, cfg: &RunConfig, cpu: u32, obj: *mut NolockObj) {
    let Some(place) = HOLDING.get_ptr_mut(tag) else {
        release(cfg, obj);
        return;
    };
    // SAFETY: this CPU's value of an existing slot.
    let i = unsafe { *place };
    if !obj.is_null() {
        // The slot is empty (the last burst emptied it), but whatever
        // kptr_xchg() gives back is released: the verifier insists.
        release(cfg, held_swap(held_slot(cpu, tag, i), obj));
    }
    if i + 1 < cfg.burst {
        // SAFETY: as above.
        unsafe { *place = i + 1 };
        return;
    }
    // SAFETY: as above.
    unsafe { *place = 0 };
    count!(tag, bursts);
    // Through bpf_loop(): the verifier checks the callback once, where a
    // loop here would have it check the release once per object, in every
    // trigger program.
    let mut first = held_slot(cpu, tag, 0) as u64;
    // SAFETY: the callback reads `first` from this frame while the helper
    // runs, and holds no reference across calls.
    unsafe { bpf_loop(cfg.burst, release_held_slot as *mut c_void, (&raw mut first).cast(), 0) };
}

/// Frees every object still held in a burst, on every CPU: the drain runs
/// it once the triggers are detached, so each object is followed to its
/// reclaim like the others and none is left to the map's destructor.
#[inline(always)]
pub fn release_held() {
    // Without bursts nothing was ever held: skip the walk of every slot.
    if RUN_CONFIG.load().burst <= 1 {
        return;
    }
    let mut first = 0u64;
    trigger_calls(1);
    // SAFETY: bpf_loop() calls the callback HELD_SLOTS times with its
    // index; the callback holds no reference across calls.
    unsafe { bpf_loop(HELD_SLOTS, release_held_slot as *mut c_void, (&raw mut first).cast(), 0) };
    trigger_calls(-1);
}

/// bpf_loop() callback: frees what `HELD` slot `*first + index` holds.
#[inline(never)]
extern "C" fn release_held_slot(index: u64, first: *mut c_void) -> i64 {
    // SAFETY: `first` points at the caller's u64 for as long as the loop runs.
    let slot = unsafe { *(first as *const u64) } + index;
    release(&RUN_CONFIG.load(), held_swap(slot as u32, null_mut()));
    0
}

/// Allocates one object, or returns NULL when the kernel said no.
#[inline(always)]
pub(crate) fn allocate(tag: u32, cfg: &RunConfig) -> *mut NolockObj {
    count!(tag, calls);
    // `get` and `checked_rem`, not indexing and `%`: a panic path is code
    // the verifier refuses (it never ends in an exit).
    let pick = (random() as usize).checked_rem(cfg.n_sizes as usize).unwrap_or(0);
    let size = cfg.sizes.get(pick).copied().unwrap_or(0);
    let timer = CallTimer::start();
    // SAFETY: a kfunc of kernel-patches/; the verifier tracks the reference.
    let obj = unsafe { bpf_kmalloc_nolock(size, cfg.alloc_flags, tag) };
    let took = timer.took();
    if obj.is_null() {
        time_call(tag, call_kind::ALLOC_FAILED, took);
        count!(tag, alloc_fail);
        return obj;
    }
    time_call(tag, call_kind::ALLOC, took);
    if cfg.follow != 0 {
        check_not_in_flight(obj as u64);
    }
    // SAFETY: `obj` is a valid object until it is released.
    let alloc_ctx = unsafe { (*obj).alloc_ctx } as u32;
    count!(tag, alloc_ctx[(alloc_ctx & ctx::MASK) as usize & (ctx::COUNT - 1)]);
    if alloc_ctx & ctx::IRQS_OFF != 0 {
        count!(tag, alloc_irqs_off);
    }
    obj
}

/// The allocator just handed out `addr`: if an object of the tool's that
/// was handed to kfree_rcu_nolock() still lives there, unreclaimed, the
/// kernel freed it before its reclaim, by a route no reclaim observer saw
/// (or, should one have been skipped, the tool missed its reclaim: the
/// verdict tells the two apart by the observers' recursion misses).
#[inline(always)]
fn check_not_in_flight(addr: u64) {
    // SAFETY: a copy of the map value.
    let Some(old) = (unsafe { IN_FLIGHT.get(&addr) }).copied() else {
        return;
    };
    let _ = IN_FLIGHT.remove(&addr);
    count!(old.tag, reused_in_flight);
    violated(
        violation::REUSED,
        old.tag,
        old.queued,
        now().saturating_sub(old.free_ns),
        gp_elapsed(&old.gp_seq),
    );
}

/// `BPF_NOEXIST` and the error it gives when the key exists.
const BPF_NOEXIST: u64 = 1;
const EEXIST: i32 = 17;

/// Frees an object with kfree_rcu_nolock(), or kfree_nolock() for the
/// configured share, counted for the trigger that allocated it.
#[inline(always)]
pub(crate) fn release(cfg: &RunConfig, obj: *mut NolockObj) {
    if obj.is_null() {
        return;
    }
    // SAFETY: `obj` is a valid object until it is released.
    let tag = unsafe { (*obj).tag };
    if cfg.nolock_share_pct > 0 && random() % 100 < cfg.nolock_share_pct {
        let timer = CallTimer::start();
        // SAFETY: releases a reference taken by allocate().
        unsafe { bpf_kfree_nolock(obj) };
        time_call(tag, call_kind::FREE_NOLOCK, timer.took());
        count!(tag, freed_nolock);
        return;
    }
    // Followed until its reclaim. Inserted before the free, though no grace
    // period can end while this program runs: a broken kernel that frees at
    // once must still be caught.
    if cfg.follow != 0 {
        let key = obj as u64;
        // free_ns until the header's own is copied in after the call.
        // SAFETY: `obj` is a valid object until it is released.
        let state =
            InFlight { tag, alloc_ns: unsafe { (*obj).alloc_ns }, free_ns: now(), ..Default::default() };
        match IN_FLIGHT.insert(&key, &state, BPF_NOEXIST) {
            Ok(()) => {}
            Err(e) if e == -EEXIST => {
                // The memory is ours again while IN_FLIGHT still lists the
                // object it held before: that one's reclaim went unseen.
                // SAFETY: a copy of the map value.
                if let Some(old) = unsafe { IN_FLIGHT.get(&key) }.copied() {
                    count!(old.tag, stale);
                }
                if IN_FLIGHT.insert(&key, &state, 0).is_err() {
                    count!(tag, untracked);
                }
            }
            Err(_) => count!(tag, untracked),
        }
    }
    let before = paths_seen(tag);
    let addr = obj as u64;
    let mark = FreeMark::start(addr);
    let timer = CallTimer::start();
    // SAFETY: releases a reference taken by allocate().
    unsafe { bpf_kfree_rcu_nolock(obj) };
    let took = timer.took();
    mark.end();
    if cfg.follow != 0 {
        keep_free_stamp(addr);
    }
    // The sheaf path as the cheap mode tells it: kfree_rcu_nolock() falls
    // back only through defer_kfree_rcu(), whose observer counts it.
    if paths_seen(tag)[1] == before[1] {
        count!(tag, sheaf_by_caller);
        if cfg.full_observe == 0 {
            count!(tag, sheaf);
            mark_queued(addr, tag, queue::SHEAF);
        }
    }
    let after = paths_seen(tag);
    let kind = if after[1] != before[1] {
        call_kind::FREE_FALLBACK
    } else if after[0] == before[0] {
        call_kind::FREE_UNSEEN
    } else if after[2] != before[2] {
        call_kind::FREE_SHEAF_CALL_RCU
    } else {
        call_kind::FREE_SHEAF
    };
    time_call(tag, kind, took);
    count!(tag, freed_rcu);
}

/// Copies the free time and grace-period cookie that bpf_kfree_rcu_nolock()
/// wrote into the header at `addr` into the object's `IN_FLIGHT` entry,
/// where they outlive the memory's next owner. No grace period ends while
/// this program runs, so a healthy kernel still holds the object here.
#[inline(always)]
fn keep_free_stamp(addr: u64) {
    let Some(s) = IN_FLIGHT.get_ptr_mut(&addr) else { return };
    // SAFETY: bpf_probe_read_kernel() copes with any address.
    let (alloc_ns, free_ns, gp) = unsafe {
        let o = addr as *const NolockObj;
        (
            bpf_probe_read_kernel(&raw const (*o).alloc_ns).unwrap_or(0),
            bpf_probe_read_kernel(&raw const (*o).free_ns).unwrap_or(0),
            bpf_probe_read_kernel(&raw const (*o).gp_seq).unwrap_or(GpSeq::default()),
        )
    };
    // SAFETY: a value of the map, updated in place; a broken kernel may
    // have handed the memory to another object already: leave that alone.
    unsafe {
        if (*s).alloc_ns == alloc_ns {
            (*s).free_ns = free_ns;
            (*s).gp_seq = gp;
        }
    }
}

/// What the path observers have counted for trigger `tag` on this CPU:
/// objects into the rcu sheaf, fallbacks, full sheaves given to call_rcu()
/// at once. A trigger does not run nested in itself on one CPU, so a
/// change across one of its calls is that call's doing.
#[inline(always)]
fn paths_seen(tag: u32) -> [u64; 3] {
    match COUNTERS.get_ptr(tag) {
        // SAFETY: this CPU's value of an existing slot; volatile, as
        // observers update it inside the call in between.
        Some(c) => unsafe {
            [
                core::ptr::read_volatile(&raw const (*c).sheaf),
                core::ptr::read_volatile(&raw const (*c).fallback),
                core::ptr::read_volatile(&raw const (*c).sheaf_call_rcu),
            ]
        },
        None => [0; 3],
    }
}

/// Runs with a node list_lock or this CPU's sheaves lock of some cache
/// held; where that is the cache of the tool's objects, the sheaf trylock
/// fails and kfree_rcu_nolock() must fall back.
#[kprobe]
pub fn trigger_locked_kprobe(ctx: ProbeContext) -> u32 {
    exercise_at(Trigger::LockedKprobe, Some(locked_site(&ctx)))
}

/// Which lock the caller of `slab_attach_kprobe_locked()` holds, from the
/// function the return address is in.
#[inline(always)]
fn locked_site(ctx: &ProbeContext) -> LockedSite {
    let cfg = RUN_CONFIG.load();
    // x86-64: the probe is on the function's first instruction, where the
    // stack pointer points at the return address.
    // SAFETY: `regs` is the probe's register set; the read copes with any
    // address.
    let ret = unsafe { bpf_probe_read_kernel((*ctx.regs).rsp as *const u64) }.unwrap_or(0);
    if ret < cfg.kernel_text[0] || ret >= cfg.kernel_text[1] {
        return LockedSite::Unknown;
    }
    for (i, [start, end]) in cfg.sheaves_lock_fns.iter().enumerate() {
        if (i as u32) < cfg.n_sheaves_lock_fns && ret >= *start && ret < *end {
            return LockedSite::SheavesLock;
        }
    }
    LockedSite::ListLock
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

/// The map_update trigger's map, updated by `map_update_driver` during the
/// run. Not preallocated: each update allocates its element through BPF's
/// own allocator, as most maps of BPF users do.
#[map]
pub static LOAD_MAP: HashMap<u32, u64> = HashMap::with_max_entries(LOAD_MAP_ENTRIES, BPF_F_NO_PREALLOC);

/// When a load thread of the loader calls getsid(): overwrite that CPU's
/// block of `LOAD_MAP` keys, one new element each. From a program, as BPF
/// users update maps; the bpf() system call would raise `bpf_prog_active`
/// and so keep kprobes (the reclaim observers among them) from running on
/// the CPU while it lasts.
#[fentry(function = "__x64_sys_getsid")]
pub fn map_update_driver(_ctx: FEntryContext) -> u32 {
    let cfg = RUN_CONFIG.load();
    // SAFETY: helpers without arguments.
    let (tgid, cpu) = unsafe { ((bpf_get_current_pid_tgid() >> 32) as u32, bpf_get_smp_processor_id()) };
    if tgid != cfg.loader_tgid {
        return 0;
    }
    let base = (cpu % MAX_HOLD_CPUS) * LOAD_MAP_KEYS_PER_CPU;
    for i in 0..LOAD_MAP_KEYS_PER_CPU {
        let _ = LOAD_MAP.insert(&(base + i), &(i as u64), 0);
    }
    0
}

/// `static struct htab_elem *alloc_htab_elem(struct bpf_htab *htab, ...)`,
/// with the bucket's raw spinlock held and interrupts off. The observers'
/// own map updates come here too: only `LOAD_MAP`'s count (a `struct
/// bpf_htab` starts with its `struct bpf_map`, which is what a program's
/// reference to a map points at).
#[fentry(function = "alloc_htab_elem")]
pub fn trigger_map_update(ctx: FEntryContext) -> u32 {
    // SAFETY: a copy of the first argument, read from the context.
    let htab = unsafe { bpf_probe_read_kernel(ctx.as_ptr() as *const u64) }.unwrap_or(0);
    if htab != &raw const LOAD_MAP as u64 {
        return 0;
    }
    exercise(Trigger::MapUpdate)
}

/// One tp_btf trigger per tracepoint: task, softirq, hardirq, NMI, and
/// inside the locking code.
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
    trigger_lock_contention: "contention_begin" => Trigger::LockContention;
}
