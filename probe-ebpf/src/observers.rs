//! Observer programs on kfree_rcu_nolock()'s paths. They count what
//! happened to the triggers' own objects (recognised by the header's magic)
//! under the object's tag, and ignore everything else the kernel frees.

use core::mem::offset_of;

use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_probe_read_kernel},
    macros::{fentry, fexit},
    programs::{FEntryContext, FExitContext},
};
use probe_common::{
    MAX_TRIGGERS, NolockObj, OBJ_MAGIC, Path, SLAB_FREE_NOLOCK, SheafInFlight, ctx, observer_state, queue,
    violation,
};

use crate::{
    counters::{
        IN_FLIGHT, OUR_CACHES, PATH_COUNTERS, RUN_CONFIG, SHEAVES, ToolClock, add, count, gp_elapsed, now,
        state, state_add, state_set, violated,
    },
    kfuncs::bpf_nolock_barrier,
};

/// The tag of the object at `obj` if it is one of the triggers' objects in
/// flight. When objects are followed (the default), only `IN_FLIGHT` says
/// so: memory that held one of them keeps its magic after the reclaim, and
/// the next owner may kfree_rcu() it without overwriting it. Without
/// following, the magic and tag have to do.
#[inline(always)]
pub fn our_tag(obj: u64) -> Option<u32> {
    if RUN_CONFIG.load().follow != 0 {
        // SAFETY: a copy of the map value.
        return unsafe { IN_FLIGHT.get(&obj) }.map(|s| s.tag);
    }
    let obj = obj as *const NolockObj;
    // SAFETY: bpf_probe_read_kernel() copes with any address.
    let magic = unsafe { bpf_probe_read_kernel(&raw const (*obj).magic) }.ok()?;
    if magic != OBJ_MAGIC {
        return None;
    }
    // SAFETY: as above.
    let tag = unsafe { bpf_probe_read_kernel(&raw const (*obj).tag) }.ok()?;
    (tag < MAX_TRIGGERS).then_some(tag)
}

/// `bool __kfree_rcu_sheaf(struct kmem_cache *s, void *obj, unsigned int free_flags)`
#[fentry(function = "__kfree_rcu_sheaf")]
pub fn kfree_rcu_sheaf_entry(ctx: FEntryContext) -> u32 {
    let _clock = ToolClock::start();
    state_add(observer_state::IN_KFREE_RCU_SHEAF, 1);
    let obj: u64 = ctx.arg(1);
    let mut no_spin_irqs_off = 0;
    // Learn the cache before the call can fill a sheaf and call_rcu() it.
    if our_tag(obj).is_some() {
        let cache: u64 = ctx.arg(0);
        // A lookup is much cheaper than an update, and this runs inside
        // every kfree_rcu_nolock() of the tool's.
        if OUR_CACHES.get_ptr(&cache).is_none() {
            let _ = OUR_CACHES.insert(&cache, &1, 0);
        }
        let free_flags: u64 = ctx.arg(2);
        if free_flags as u32 & SLAB_FREE_NOLOCK != 0 && irqs_off_or_nmi(free_ctx(obj)) {
            no_spin_irqs_off = obj;
        }
    }
    // Set on every call, so that a nested call (an interrupt's) leaves
    // its own value and never an outer call's.
    state_set(observer_state::NOSPIN_IRQS_OFF_OBJ, no_spin_irqs_off);
    0
}

/// `free_ctx` of the tool's object at `obj`: the context bpf_kfree_rcu_nolock()
/// ran in (`ctx::*`), written before it called kfree_rcu_nolock().
#[inline(always)]
fn free_ctx(obj: u64) -> u32 {
    let obj = obj as *const NolockObj;
    // SAFETY: bpf_probe_read_kernel() copes with any address.
    unsafe { bpf_probe_read_kernel(&raw const (*obj).free_ctx) }.unwrap_or(0) as u32
}

/// The series' condition for deferring a full sheaf's call_rcu() to the
/// irq_work: interrupts off (which NMI implies).
#[inline(always)]
fn irqs_off_or_nmi(c: u32) -> bool {
    c & ctx::IRQS_OFF != 0 || c & ctx::MASK == ctx::NMI
}

/// Marks the tool's object at `obj` as queued on `bit`'s path
/// (`queue::*`). One the no-spin free queued already, and that the deferred
/// work has not handed on since, is queued twice: a double free, caught
/// before the kernel can reclaim it twice.
#[inline(always)]
pub fn mark_queued(obj: u64, tag: u32, bit: u32) {
    let Some(s) = IN_FLIGHT.get_ptr_mut(&obj) else { return };
    // SAFETY: a value of the map, updated in place; a copy is judged.
    let before = unsafe { *s };
    if before.queued != 0 && before.requeued_ns == 0 {
        count!(tag, double_queued);
        violated(
            violation::DOUBLE_QUEUED,
            tag,
            before.queued | bit,
            now().saturating_sub(before.free_ns),
            gp_elapsed(&before.gp_seq),
        );
    }
    // SAFETY: as above.
    unsafe { (*s).queued = before.queued | bit };
}

#[fexit(function = "__kfree_rcu_sheaf")]
pub fn kfree_rcu_sheaf_exit(ctx: FExitContext) -> u32 {
    let _clock = ToolClock::start();
    // An NMI can skip the entry program while it runs; never go below 0.
    if state(observer_state::IN_KFREE_RCU_SHEAF) > 0 {
        state_add(observer_state::IN_KFREE_RCU_SHEAF, -1);
    }
    state_set(observer_state::NOSPIN_IRQS_OFF_OBJ, 0);
    let obj: u64 = ctx.arg(1);
    let Some(tag) = our_tag(obj) else {
        return 0;
    };
    let free_flags: u64 = ctx.arg(2);
    let ok = ctx.arg::<u64>(3) & 0xff != 0;
    // Objects that fell back reach this function a second time from the
    // deferred work, through kvfree_call_rcu() without SLAB_FREE_NOLOCK.
    match (free_flags as u32 & SLAB_FREE_NOLOCK != 0, ok) {
        (true, true) => {
            count!(tag, sheaf);
            mark_queued(obj, tag, queue::SHEAF);
        }
        (true, false) => count!(tag, sheaf_fail),
        (false, true) => count!(tag, retry_sheaf),
        (false, false) => count!(tag, retry_sheaf_fail),
    }
    0
}

/// `void defer_kfree_rcu(struct kvfree_rcu_head *head)`: the fallback.
#[fentry(function = "defer_kfree_rcu")]
pub fn defer_kfree_rcu(ctx: FEntryContext) -> u32 {
    let _clock = ToolClock::start();
    let head: u64 = ctx.arg(0);
    let obj = head - offset_of!(NolockObj, rcu) as u64;
    if let Some(tag) = our_tag(obj) {
        count!(tag, fallback);
        mark_queued(obj, tag, queue::FALLBACK);
    }
    0
}

/// `void kvfree_call_rcu(struct kvfree_rcu_head *head, void *ptr)`: the
/// deferred work hands a fallen-back object on to kvfree_rcu.
#[fentry(function = "kvfree_call_rcu")]
pub fn kvfree_call_rcu(ctx: FEntryContext) -> u32 {
    let _clock = ToolClock::start();
    if state(observer_state::IN_DEFERRED_WORK) == 0 {
        return 0;
    }
    let obj: u64 = ctx.arg(1);
    state_set(observer_state::RETRY_OBJ, obj);
    if let Some(state) = IN_FLIGHT.get_ptr_mut(&obj) {
        // SAFETY: a value of the map, updated in place.
        unsafe { (*state).requeued_ns = now() };
    }
    0
}

#[fentry(function = "deferred_percpu_work_fn")]
pub fn deferred_work_entry(_ctx: FEntryContext) -> u32 {
    let _clock = ToolClock::start();
    state_add(observer_state::IN_DEFERRED_WORK, 1);
    // No no-spin call with interrupts off can be running under the
    // irq_work (only an NMI interrupts one): a value here is stale, left
    // by a call whose exit program was skipped (an interrupt that landed
    // in an observer), and would make the work's own call_rcu() of that
    // call's deferred sheaf look like a broken context rule. Dense NMIs
    // (the nmi trigger's NMI IPIs) made it happen in `all`.
    state_set(observer_state::NOSPIN_IRQS_OFF_OBJ, 0);
    state_set(observer_state::RETRY_OBJ, 0);
    0
}

#[fexit(function = "deferred_percpu_work_fn")]
pub fn deferred_work_exit(_ctx: FExitContext) -> u32 {
    let _clock = ToolClock::start();
    state_set(observer_state::RETRY_OBJ, 0);
    if state(observer_state::IN_DEFERRED_WORK) > 0 {
        state_add(observer_state::IN_DEFERRED_WORK, -1);
    }
    0
}

/// `void call_rcu(struct rcu_head *head, rcu_callback_t func)`: a full rcu
/// sheaf is handed to RCU either inside a kfree_rcu_nolock() (at once) or
/// from the deferred irq_work's own loop (deferred, because spinning was not
/// allowed with interrupts off); anything else is a flush. The sheaf is
/// attributed to the trigger whose object filled it.
#[fentry(function = "call_rcu")]
pub fn call_rcu(ctx: FEntryContext) -> u32 {
    let _clock = ToolClock::start();
    let cfg = RUN_CONFIG.load();
    let func: u64 = ctx.arg(1);
    if func != cfg.rcu_free_sheaf && func != cfg.rcu_free_sheaf_nobarn {
        return 0;
    }
    let head: u64 = ctx.arg(0);
    let sheaf = head - cfg.sheaf_rcu_head_off as u64;
    // SAFETY: bpf_probe_read_kernel() copes with any address.
    let size =
        unsafe { bpf_probe_read_kernel((sheaf + cfg.sheaf_size_off as u64) as *const u32) }.unwrap_or(0);
    let last = match size {
        0 => 0,
        // SAFETY: as above.
        n => unsafe {
            bpf_probe_read_kernel((sheaf + cfg.sheaf_objects_off as u64 + (n as u64 - 1) * 8) as *const u64)
        }
        .unwrap_or(0),
    };
    let tag = if last == 0 { None } else { our_tag(last) };
    let deferred_work = state(observer_state::IN_DEFERRED_WORK) > 0;
    // Whether the no-spin call that filled the sheaf runs with interrupts
    // off or in NMI, where the series hands the sheaf to call_rcu() only
    // from the irq_work, as call_rcu() takes locks.
    let (path, nospin_irqs_off) = if cfg.full_observe != 0 {
        let path = if state(observer_state::IN_KFREE_RCU_SHEAF) > 0 {
            Path::SheafImmediate
        } else if deferred_work {
            Path::SheafDeferred
        } else {
            Path::SheafFlushed
        };
        (path, last == state(observer_state::NOSPIN_IRQS_OFF_OBJ))
    } else {
        // The caller's mark names the innermost of the tool's calls on
        // this CPU. Its own object completing the sheaf is that call's
        // doing even inside the irq_work (an NMI's call); so is a
        // fallen-back object's second attempt, which the work makes
        // through kvfree_call_rcu(), where spinning is allowed. Otherwise
        // the irq_work, which only an NMI interrupts, is innermost.
        // A mark counts only while one of the tool's calls runs on this
        // CPU: a mark left by calls that ended out of order (preempted
        // programs) made the deferred work of healthy debug and RT
        // kernels look like a broken rule in `all` soaks.
        let freeing = match state(observer_state::IN_TRIGGER_CALL) {
            0 => 0,
            _ => state(observer_state::FREEING_OBJ),
        };
        let own = tag.is_some() && last == freeing;
        let retry = deferred_work && last != 0 && last == state(observer_state::RETRY_OBJ);
        let path = if own || retry || (freeing != 0 && !deferred_work) {
            Path::SheafImmediate
        } else if deferred_work {
            Path::SheafDeferred
        } else {
            Path::SheafFlushed
        };
        (path, own && irqs_off_or_nmi(free_ctx(last)))
    };
    // SAFETY: as above.
    if let Ok(cache) = unsafe { bpf_probe_read_kernel((sheaf + cfg.sheaf_cache_off as u64) as *const u64) } {
        // Without the entry observer on __kfree_rcu_sheaf() the cache is
        // learnt here, from a sheaf one of the tool's objects completed.
        if cfg.full_observe == 0 && tag.is_some() && OUR_CACHES.get_ptr(&cache).is_none() {
            let _ = OUR_CACHES.insert(&cache, &1, 0);
        }
        if OUR_CACHES.get_ptr(&cache).is_some() {
            let info = SheafInFlight { call_rcu_ns: now(), path: path as u32, _pad: 0 };
            let _ = SHEAVES.insert(&sheaf, &info, 0);
            count_callback(path, size);
        }
    }
    let Some(tag) = tag else {
        return 0;
    };
    if path == Path::SheafImmediate && nospin_irqs_off {
        count!(tag, call_rcu_unsafe);
        violated(violation::CALL_RCU_UNSAFE, tag, free_ctx(last) & ctx::MASK, 0, false);
    }
    match path {
        Path::SheafImmediate => count!(tag, sheaf_call_rcu),
        Path::SheafDeferred => count!(tag, sheaf_call_rcu_deferred),
        _ => count!(tag, sheaf_call_rcu_flushed),
    }
    note_grace_period(path, last);
    0
}

/// One RCU callback for a sheaf of `objects` of the triggers' caches on
/// `path`: the batching the sheaves promise, counted where it is queued,
/// once per sheaf (not in the reclaim walks, whose per-object code the
/// verifier already takes seconds over).
#[inline(always)]
fn count_callback(path: Path, objects: u32) {
    if let Some(c) = PATH_COUNTERS.get_ptr_mut(path as u32) {
        // SAFETY: this CPU's value of an existing slot.
        unsafe {
            add(&raw mut (*c).batches, 1);
            add(&raw mut (*c).batch_objects, u64::from(objects));
        }
    }
}

/// Widens the span of grace-period cookies seen on `path` with that of
/// the object at `obj`, one of the triggers' objects that has just filled
/// a sheaf: from the span the result counts the grace periods the run saw.
#[inline(always)]
fn note_grace_period(path: Path, obj: u64) {
    // SAFETY: bpf_probe_read_kernel() copes with any address.
    let gp =
        unsafe { bpf_probe_read_kernel(&raw const (*(obj as *const NolockObj)).gp_seq) }.unwrap_or_default();
    let Some(c) = PATH_COUNTERS.get_ptr_mut(path as u32) else { return };
    if gp.norm == 0 {
        return;
    }
    let seq = gp.norm as i64;
    // SAFETY: this CPU's value of an existing slot.
    unsafe {
        if (*c).gp_objects == 0 || seq < (*c).gp_min {
            (*c).gp_min = seq;
        }
        if (*c).gp_objects == 0 || seq > (*c).gp_max {
            (*c).gp_max = seq;
        }
        add(&raw mut (*c).gp_objects, 1);
    }
}

/// The drain: when the loader itself calls getpgid(), free what bursts
/// still hold, then wait for every object in flight
/// (kvfree_rcu_barrier()). Sleepable, so it may only attach to an
/// error-injectable function such as a system call.
#[fentry(function = "__x64_sys_getpgid", sleepable)]
pub fn drain(_ctx: FEntryContext) -> u32 {
    if (bpf_get_current_pid_tgid() >> 32) as u32 == RUN_CONFIG.load().loader_tgid {
        crate::triggers::release_held();
        // SAFETY: a sleepable kfunc in a sleepable program.
        unsafe { bpf_nolock_barrier() };
        crate::reclaim::sort_leftovers();
    }
    0
}
