//! Reclaim observers: where objects handed to kfree_rcu_nolock() are really
//! given back after their grace period. Each of the triggers' objects (found
//! in `IN_FLIGHT`, so stale memory that merely looks like one never counts)
//! is timed by path and stage, checked against its grace-period cookie, and
//! forgotten.

use core::{ffi::c_void, mem::offset_of};

use aya_ebpf::{
    helpers::{bpf_for_each_map_elem, bpf_loop, bpf_probe_read_kernel},
    macros::{fentry, kprobe},
    programs::{FEntryContext, ProbeContext},
};
use probe_common::{
    GpSeq, InFlight, MAX_BULK_RECORDS, MAX_LIST_ENTRIES, MAX_SHEAF_OBJECTS, MAX_TRIGGERS, NolockObj,
    OBJ_MAGIC, Path, SheafInFlight, Stage, queue, violation,
};

use crate::{
    counters::{
        IN_FLIGHT, PATH_COUNTERS, RECLAIMED, RUN_CONFIG, SHEAVES, ToolClock, add, count, gp_elapsed, now,
        sample, violated,
    },
    kfuncs::bpf_nolock_gp_elapsed,
};

// Where each observer is hooked decides whether the kernel can skip it,
// and a skipped run leaves a whole sheaf or block of objects unseen (seen:
// 507 objects of one kvfree_rcu bulk block, then "lost", or a false
// "premature" once their memory came back in another user's sheaf).
// - An fentry program runs preemptibly (migrate_disable() only), and while
//   a preempted run holds the program's per-CPU recursion guard, the
//   kernel skips every other run of it on that CPU.
// - A kprobe runs with preemption disabled, but is skipped when it fires
//   inside another kprobe's handler, as in a softirq on the way out of an
//   interrupt that hit the locked-slab kprobe trigger.
// So kvfree_rcu_bulk() and kvfree_rcu_list() (workqueues, never inside an
// interrupt) get kprobes; rcu_free_sheaf() runs in softirq, which no task
// preempts, and gets fentry, except on PREEMPT_RT, where RCU callbacks run
// in preemptible threads and never inside an interrupt: a kprobe there
// (the `_rt` programs; the loader picks).

/// Argument `n` of an fentry program's function as a plain number. The
/// verifier types pointer arguments as kernel pointers and forbids adding
/// the walks' variable offsets to them; a copy read from the context is a
/// number.
#[inline(always)]
pub(crate) fn fentry_arg(ctx: &FEntryContext, n: usize) -> u64 {
    use aya_ebpf::EbpfContext;
    read(ctx.as_ptr() as u64 + n as u64 * 8)
}

/// Argument `n` of a kprobe's function (0 if absent).
#[inline(always)]
fn arg_value(ctx: &ProbeContext, n: usize) -> u64 {
    ctx.arg(n).unwrap_or(0)
}

/// Reads a kernel word; 0 if it cannot be read.
#[inline(always)]
pub(crate) fn read<T: Default>(addr: u64) -> T {
    // SAFETY: bpf_probe_read_kernel() copes with any address.
    unsafe { bpf_probe_read_kernel(addr as *const T) }.unwrap_or_default()
}

/// Accounts one object given back at `now`. `in_sheaf` says whether it came
/// in an rcu sheaf (else in one of kvfree_rcu's batches, which only
/// fallen-back objects reach), `sheaf` what is known about that sheaf.
#[inline(always)]
fn reclaim(obj: u64, now: u64, in_sheaf: bool, sheaf: Option<SheafInFlight>) {
    // SAFETY: the value is copied out before the entry is removed.
    let Some(state) = (unsafe { IN_FLIGHT.get(&obj) }).copied() else {
        check_not_reclaimed(obj, now);
        return;
    };
    let _ = IN_FLIGHT.remove(&obj);
    let tag = state.tag;
    let alloc_ns: u64 = read(obj + offset_of!(NolockObj, alloc_ns) as u64);
    if alloc_ns != state.alloc_ns {
        count!(tag, stale);
        return;
    }
    count!(tag, reclaimed);
    // Remembered with its queue, so that a second reclaim is known for one.
    let _ = RECLAIMED.insert(&obj, &(alloc_ns | state.queued as u64 & 3), 0);
    let free_ns: u64 = read(obj + offset_of!(NolockObj, free_ns) as u64);
    let gp: GpSeq = read(obj + offset_of!(NolockObj, gp_seq) as u64);
    // SAFETY: a kfunc of kernel-patches/ that takes plain values.
    let elapsed = unsafe { bpf_nolock_gp_elapsed(gp.norm, gp.exp) };

    // A fallen-back object may take a second chance through an rcu sheaf;
    // it stays on the fallback path.
    // With the defer_kfree_rcu() observer skipped no fallback is recorded,
    // but the deferred work's requeue or a batch reclaim (which only
    // fallen-back objects reach) still tells the path.
    let fell_back = state.queued & queue::FALLBACK != 0 || state.requeued_ns != 0 || !in_sheaf;
    let (path, queued_at) = if fell_back {
        (Path::Fallback, state.requeued_ns)
    } else if let Some(s) = sheaf {
        let path = match s.path {
            0 => Path::SheafImmediate,
            1 => Path::SheafDeferred,
            _ => Path::SheafFlushed,
        };
        (path, s.call_rcu_ns)
    } else {
        // Reclaimed in a sheaf the call_rcu() observer did not record.
        count!(tag, unattributed);
        if !elapsed {
            count!(tag, premature);
        }
        return;
    };
    if let Some(c) = PATH_COUNTERS.get_ptr_mut(path as u32) {
        // SAFETY: this CPU's value of an existing slot.
        unsafe {
            add(&raw mut (*c).reclaimed, 1);
            if !elapsed {
                add(&raw mut (*c).premature, 1);
                // Which side of the sheaf's call_rcu() the free was on
                // tells a sheaf filled after call_rcu() from a grace
                // period cut short. (A fallen-back object is always freed
                // before its requeue.) Branch-free: a branch here made the
                // compiler leave a register the verifier calls
                // uninitialised.
                let after = (queued_at != 0 && free_ns > queued_at) as u64;
                add(&raw mut (*c).premature_after_call_rcu, after);
            }
        }
    }
    if !elapsed {
        count!(tag, premature);
    }
    let p = path as u32;
    sample(p, Stage::Total as u32, now.saturating_sub(free_ns));
    if queued_at != 0 {
        sample(p, Stage::Queued as u32, queued_at.saturating_sub(free_ns));
        sample(p, Stage::Grace as u32, now.saturating_sub(queued_at));
    }
}

/// Memory given back that holds none of the objects in flight: if it still
/// holds an object reclaimed before (the same address and `alloc_ns`,
/// magic and tag intact), the kernel reclaims it a second time.
#[inline(always)]
fn check_not_reclaimed(obj: u64, now: u64) {
    // SAFETY: a copy of the map value.
    let Some(seen) = (unsafe { RECLAIMED.get(&obj) }).copied() else {
        return;
    };
    let header: NolockObj = read(obj);
    // alloc_ns carries the queue bits in its two low bits (a nanosecond
    // clock's two lowest bits name no object apart).
    if header.magic != OBJ_MAGIC || header.alloc_ns & !3 != seen & !3 || header.tag >= MAX_TRIGGERS {
        return;
    }
    let _ = RECLAIMED.remove(&obj);
    count!(header.tag, double_reclaimed);
    violated(
        violation::DOUBLE_RECLAIMED,
        header.tag,
        (seen & 3) as u32,
        now.saturating_sub(header.free_ns),
        gp_elapsed(&header.gp_seq),
    );
}

/// State of a walk over an array of object pointers (a sheaf's objects, a
/// bulk block's records), shared with its bpf_loop() callback.
#[repr(C)]
struct ArrayWalk {
    base: u64,
    now: u64,
    info: SheafInFlight,
    has_info: u64,
    /// Non-zero: the array is a sheaf's objects (else a kvfree_rcu bulk
    /// block's records).
    in_sheaf: u64,
}

/// State of a walk down a kvfree_rcu list.
#[repr(C)]
struct ListWalk {
    head: u64,
    now: u64,
}

// The walks go through bpf_loop() so that the verifier checks the body
// once: as a plain loop, every iteration is checked again and a sheaf of
// 60 objects is already too complex for it.

#[inline(never)]
extern "C" fn array_element(i: u64, ctx: *mut c_void) -> i64 {
    // SAFETY: `ctx` is the caller's ArrayWalk, alive for the whole loop.
    let w = unsafe { &*(ctx as *const ArrayWalk) };
    let info = if w.has_info != 0 { Some(w.info) } else { None };
    reclaim(read(w.base + i * 8), w.now, w.in_sheaf != 0, info);
    0
}

#[inline(never)]
extern "C" fn list_element(_i: u64, ctx: *mut c_void) -> i64 {
    // SAFETY: `ctx` is the caller's ListWalk, alive for the whole loop.
    let w = unsafe { &mut *(ctx as *mut ListWalk) };
    if w.head == 0 {
        return 1;
    }
    let next: u64 = read(w.head);
    reclaim(w.head - offset_of!(NolockObj, rcu) as u64, w.now, false, None);
    w.head = next;
    0
}

/// Reclaims the `n` objects whose pointers start at `base`.
#[inline(always)]
fn reclaim_array(base: u64, n: u32, now: u64, in_sheaf: bool, info: Option<SheafInFlight>) {
    let mut walk = ArrayWalk {
        base,
        now,
        info: info.unwrap_or_default(),
        has_info: info.is_some() as u64,
        in_sheaf: in_sheaf as u64,
    };
    // SAFETY: the callback matches bpf_loop()'s contract and only reads
    // `walk`, which outlives the call.
    unsafe { bpf_loop(n, array_element as *mut c_void, &raw mut walk as *mut c_void, 0) };
}

/// `static void rcu_free_sheaf(struct rcu_head *head)`: a sheaf's grace
/// period is over and its objects go back to the barn or the slabs.
#[fentry(function = "rcu_free_sheaf")]
pub fn rcu_free_sheaf(ctx: FEntryContext) -> u32 {
    let _clock = ToolClock::start();
    reclaim_sheaf(fentry_arg(&ctx, 0))
}

#[kprobe]
pub fn rcu_free_sheaf_rt(ctx: ProbeContext) -> u32 {
    let _clock = ToolClock::start();
    reclaim_sheaf(arg_value(&ctx, 0))
}

/// `static void rcu_free_sheaf_nobarn(struct rcu_head *head)`: the same for
/// sheaves that a flush (kvfree_rcu_barrier(), CPU offline) handed to RCU.
#[fentry(function = "rcu_free_sheaf_nobarn")]
pub fn rcu_free_sheaf_nobarn(ctx: FEntryContext) -> u32 {
    let _clock = ToolClock::start();
    reclaim_sheaf(fentry_arg(&ctx, 0))
}

#[kprobe]
pub fn rcu_free_sheaf_nobarn_rt(ctx: ProbeContext) -> u32 {
    let _clock = ToolClock::start();
    reclaim_sheaf(arg_value(&ctx, 0))
}

#[inline(always)]
fn reclaim_sheaf(rcu_head: u64) -> u32 {
    let cfg = RUN_CONFIG.load();
    let now = now();
    let sheaf = rcu_head - cfg.sheaf_rcu_head_off as u64;
    // SAFETY: the value is copied out before the entry is removed.
    let info = unsafe { SHEAVES.get(&sheaf) }.copied();
    if info.is_some() {
        let _ = SHEAVES.remove(&sheaf);
    }
    let size: u32 = read(sheaf + cfg.sheaf_size_off as u64);
    reclaim_array(sheaf + cfg.sheaf_objects_off as u64, size.min(MAX_SHEAF_OBJECTS), now, true, info);
    0
}

/// `static void kvfree_rcu_bulk(struct kfree_rcu_cpu *krcp, struct
/// kvfree_rcu_bulk_data *bnode, int idx)`: a block of kvfree_rcu() pointers
/// whose grace period is over (idx 0: kmalloc'ed).
#[kprobe]
pub fn kvfree_rcu_bulk(ctx: ProbeContext) -> u32 {
    let _clock = ToolClock::start();
    if arg_value(&ctx, 2) as u32 != 0 {
        return 0;
    }
    let cfg = RUN_CONFIG.load();
    let now = now();
    let bnode = arg_value(&ctx, 1);
    let nr: u64 = read(bnode + cfg.bulk_nr_records_off as u64);
    reclaim_array(
        bnode + cfg.bulk_records_off as u64,
        nr.min(MAX_BULK_RECORDS as u64) as u32,
        now,
        false,
        None,
    );
    0
}

/// `static void kvfree_rcu_list(struct kvfree_rcu_head *head)`: kvfree_rcu()
/// objects chained through their heads, when no bulk block was available.
#[kprobe]
pub fn kvfree_rcu_list(ctx: ProbeContext) -> u32 {
    let _clock = ToolClock::start();
    let mut walk = ListWalk { head: arg_value(&ctx, 0), now: now() };
    // SAFETY: as in reclaim_array().
    unsafe { bpf_loop(MAX_LIST_ENTRIES, list_element as *mut c_void, &raw mut walk as *mut c_void, 0) };
    0
}

/// After the drain's barrier every object should be reclaimed. Of those
/// still in flight, one whose memory no longer holds it (another
/// `alloc_ns` or magic, or the slab's free pointer written over its cookie)
/// was freed early and its memory reused or freed again by another owner:
/// counted as `stale` (premature, or a missed reclaim: the verdict tells
/// them apart) and forgotten. What is left is lost.
#[inline(always)]
pub fn sort_leftovers() {
    // SAFETY: the helper walks IN_FLIGHT and calls `leftover` with each
    // entry; the callback keeps no reference past its call.
    unsafe {
        bpf_for_each_map_elem(
            (&raw const IN_FLIGHT).cast_mut().cast(),
            leftover as *mut c_void,
            core::ptr::null_mut(),
            0,
        )
    };
}

#[inline(never)]
extern "C" fn leftover(_map: *mut c_void, key: *const u64, value: *const InFlight, _ctx: *mut c_void) -> i64 {
    // SAFETY: the helper passes the entry's key and value.
    let (obj, state) = unsafe { (*key, *value) };
    let header: NolockObj = read(obj);
    let cookie_kept = state.gp_seq.norm == 0 || header.gp_seq.exp == state.gp_seq.exp;
    if header.magic == OBJ_MAGIC && header.alloc_ns == state.alloc_ns && cookie_kept {
        return 0;
    }
    count!(state.tag, stale);
    // Deleting the entry the walk is on is allowed for hash maps.
    let _ = IN_FLIGHT.remove(&obj);
    0
}
