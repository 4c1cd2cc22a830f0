//! The bench program: what one pair of an allocation and a free costs,
//! with nothing else attached (or with run's observers, `bench
//! --observers`, whose work the pairs then include), for each loop
//! of `BenchFree`. Each getpriority() of the loader's bench threads runs
//! one batch of `BENCH_BATCH` pairs of the loop the loader chose; every
//! pair is counted, and in one batch of `BENCH_TIMED_EVERY` each call is
//! timed too, so that the clock reads cost the rates little.

use core::ffi::c_void;

use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_loop},
    macros::{fentry, map},
    maps::{Array, PerCpuArray},
    programs::FEntryContext,
};
use probe_common::{
    BENCH_BATCH, BENCH_TAG, BENCH_TIMED_EVERY, BenchFree, LatencyStats, NolockObj, bench_loop, bench_mode,
    bench_op, bench_slot, hist,
};

use crate::{
    counters::{CallTimer, RUN_CONFIG, add, count, record, trigger_calls},
    kfuncs::{
        bpf_kfree_nolock, bpf_kfree_rcu_nolock, bpf_kmalloc_nolock, bpf_nolock_bench_loop,
        nolock_probe_obj_drop, nolock_probe_obj_new,
    },
    triggers::{allocate, release},
};

/// `bench_mode`: set by the loader between the warm-up, the samples and
/// the loops.
#[map]
static BENCH_MODE: Array<u32> = Array::with_max_entries(1, 0);

const SLOTS: u32 = BenchFree::COUNT as u32 * bench_op::COUNT as u32;

#[map]
static BENCH_HIST: PerCpuArray<u64> = PerCpuArray::with_max_entries(SLOTS * hist::BUCKETS, 0);

#[map]
static BENCH_STATS: PerCpuArray<LatencyStats> = PerCpuArray::with_max_entries(SLOTS, 0);

/// Allocations that failed, per loop (the alloc slot).
#[map]
static BENCH_FAILS: PerCpuArray<u64> = PerCpuArray::with_max_entries(SLOTS, 0);

/// Pairs done while measuring, per loop.
#[map]
static BENCH_PAIRS: PerCpuArray<u64> = PerCpuArray::with_max_entries(BenchFree::COUNT as u32, 0);

/// Where one batch counts what it did; counts only while measuring.
struct Counts {
    pairs: *mut u64,
    fails: *mut u64,
    measure: bool,
    /// The `BENCH_HIST` and `BENCH_STATS` slots of its timed calls.
    alloc_slot: u32,
    free_slot: u32,
}

impl Counts {
    /// The counts of bench mode `mode` (`bench_mode`) on this CPU.
    #[inline(always)]
    fn of(mode: u32) -> Option<Counts> {
        let free = mode & bench_mode::FREE_MASK;
        let pairs = BENCH_PAIRS.get_ptr_mut(free)?;
        let fails = BENCH_FAILS.get_ptr_mut(bench_slot(free, bench_op::ALLOC))?;
        let (alloc_op, free_op) = match mode & bench_mode::OBSERVED != 0 {
            true => (bench_op::OBSERVED_ALLOC, bench_op::OBSERVED_FREE),
            false => (bench_op::ALLOC, bench_op::FREE),
        };
        Some(Counts {
            pairs,
            fails,
            measure: mode & bench_mode::MEASURE != 0,
            alloc_slot: bench_slot(free, alloc_op),
            free_slot: bench_slot(free, free_op),
        })
    }

    /// A failed allocation takes its pair back: the batch adds all of its
    /// pairs at the end, so that the loop itself carries no counter (a
    /// counter in the loop makes the verifier walk every count apart).
    #[inline(always)]
    fn failed(&self, n: u64) {
        if self.measure {
            add(self.pairs, n.wrapping_neg());
            add(self.fails, n);
        }
    }

    #[inline(always)]
    fn batch_done(&self) {
        if self.measure {
            add(self.pairs, BENCH_BATCH as u64);
        }
    }
}

/// One pair loop run from BPF: an allocation and the free that goes with it.
trait Pair {
    type Obj;
    fn alloc(size: u32, flags: u32) -> *mut Self::Obj;
    fn free(obj: *mut Self::Obj);
}

struct RcuNolock;
struct Nolock;
struct ObjDrop;

impl Pair for RcuNolock {
    type Obj = NolockObj;
    #[inline(always)]
    fn alloc(size: u32, flags: u32) -> *mut NolockObj {
        // SAFETY: a kfunc of kernel-patches/; the verifier tracks the reference.
        unsafe { bpf_kmalloc_nolock(size, flags, 0) }
    }
    #[inline(always)]
    fn free(obj: *mut NolockObj) {
        // SAFETY: releases the reference alloc() took.
        unsafe { bpf_kfree_rcu_nolock(obj) }
    }
}

impl Pair for Nolock {
    type Obj = NolockObj;
    #[inline(always)]
    fn alloc(size: u32, flags: u32) -> *mut NolockObj {
        RcuNolock::alloc(size, flags)
    }
    #[inline(always)]
    fn free(obj: *mut NolockObj) {
        // SAFETY: releases the reference alloc() took.
        unsafe { bpf_kfree_nolock(obj) }
    }
}

/// The kfree_rcu_nolock() pair as a trigger makes it, for the samples
/// with run's observers attached: the triggers' own allocate() and
/// release() under `BENCH_TAG` (counted, timed, checked against the
/// objects in flight, marked for the cheap mode's observers, followed to
/// the reclaim), inside a trigger call as `exercise()` opens and closes
/// it; the size and flags are the run config's, which the bench sets.
struct Followed;

impl Pair for Followed {
    type Obj = NolockObj;
    #[inline(always)]
    fn alloc(_size: u32, _flags: u32) -> *mut NolockObj {
        count!(BENCH_TAG, hits);
        trigger_calls(1);
        let obj = allocate(BENCH_TAG, &RUN_CONFIG.load());
        if obj.is_null() {
            trigger_calls(-1);
        }
        obj
    }
    #[inline(always)]
    fn free(obj: *mut NolockObj) {
        release(&RUN_CONFIG.load(), obj);
        trigger_calls(-1);
    }
}

/// BPF's own allocator; its objects have a fixed size (BENCH_OBJ_SIZE).
impl Pair for ObjDrop {
    type Obj = c_void;
    #[inline(always)]
    fn alloc(_size: u32, _flags: u32) -> *mut c_void {
        // SAFETY: wraps the bpf_obj_new() kfunc; the verifier tracks the reference.
        unsafe { nolock_probe_obj_new() }
    }
    #[inline(always)]
    fn free(obj: *mut c_void) {
        // SAFETY: releases the reference alloc() took.
        unsafe { nolock_probe_obj_drop(obj) }
    }
}

#[fentry(function = "__x64_sys_getpriority")]
pub fn bench(_ctx: FEntryContext) -> u32 {
    let cfg = RUN_CONFIG.load();
    if (bpf_get_current_pid_tgid() >> 32) as u32 != cfg.loader_tgid {
        return 0;
    }
    let mode = BENCH_MODE.get(0).copied().unwrap_or(bench_mode::OFF);
    if mode == bench_mode::OFF {
        return 0;
    }
    let free = mode & bench_mode::FREE_MASK;
    let observed = mode & bench_mode::OBSERVED != 0;
    let Some(counts) = Counts::of(mode) else { return 0 };
    // SAFETY: this CPU's value of an existing slot.
    let timed = counts.measure && (unsafe { *counts.pairs } / BENCH_BATCH as u64) % BENCH_TIMED_EVERY == 0;
    let (size, flags) = (cfg.sizes[0], cfg.alloc_flags);
    if free == BenchFree::NativeKfreeRcuNolock as u32 {
        native(bench_loop::KFREE_RCU_NOLOCK, size, flags, &counts);
        return 0;
    }
    if free == BenchFree::NativeKfreeRcu as u32 {
        native(bench_loop::KFREE_RCU, size, flags, &counts);
        return 0;
    }
    if timed && !observed {
        // What timing itself costs: an empty call.
        record(&BENCH_HIST, &BENCH_STATS, bench_slot(free, bench_op::CLOCK), CallTimer::start().took());
    }
    // One copy of the loop per pair and timing, each without a branch on
    // either inside it.
    match (free, timed) {
        (f, true) if f == BenchFree::KfreeNolock as u32 => batch::<Nolock, true>(size, flags, &counts),
        (f, false) if f == BenchFree::KfreeNolock as u32 => batch::<Nolock, false>(size, flags, &counts),
        (f, true) if f == BenchFree::ObjDrop as u32 => batch::<ObjDrop, true>(size, flags, &counts),
        (f, false) if f == BenchFree::ObjDrop as u32 => batch::<ObjDrop, false>(size, flags, &counts),
        (_, true) if observed => followed_batch::<true>(mode, &counts),
        (_, false) if observed => followed_batch::<false>(mode, &counts),
        (_, true) => batch::<RcuNolock, true>(size, flags, &counts),
        (_, false) => batch::<RcuNolock, false>(size, flags, &counts),
    }
    0
}

/// One batch of `P`'s pairs, each call timed when `TIMED`.
#[inline(always)]
fn batch<P: Pair, const TIMED: bool>(size: u32, flags: u32, counts: &Counts) {
    for _ in 0..BENCH_BATCH {
        pair::<P, TIMED>(size, flags, counts);
    }
    counts.batch_done();
}

/// One batch of `Followed` pairs, through bpf_loop(): the verifier checks
/// the triggers' allocate() and release() once, where a plain loop has it
/// check them once per pair of the batch (which tripled the bench
/// program's verified instructions and load time).
#[inline(always)]
fn followed_batch<const TIMED: bool>(mode: u32, counts: &Counts) {
    let mut mode = mode;
    // SAFETY: the callback matches bpf_loop()'s contract and only reads
    // `mode`, which outlives the call.
    unsafe { bpf_loop(BENCH_BATCH, followed_pair::<TIMED> as *mut c_void, (&raw mut mode).cast(), 0) };
    counts.batch_done();
}

#[inline(never)]
extern "C" fn followed_pair<const TIMED: bool>(_i: u64, mode: *mut c_void) -> i64 {
    // SAFETY: `mode` is the caller's u32, alive for the whole loop.
    let Some(counts) = Counts::of(unsafe { *(mode as *const u32) }) else { return 1 };
    pair::<Followed, TIMED>(0, 0, &counts);
    0
}

/// One of `P`'s pairs, each call timed when `TIMED`.
#[inline(always)]
fn pair<P: Pair, const TIMED: bool>(size: u32, flags: u32, counts: &Counts) {
    let timer = TIMED.then(CallTimer::start);
    let obj = P::alloc(size, flags);
    let alloc_ns = timer.map_or(0, |t| t.took());
    if obj.is_null() {
        counts.failed(1);
        return;
    }
    let timer = TIMED.then(CallTimer::start);
    P::free(obj);
    if let Some(t) = timer {
        let free_ns = t.took();
        record(&BENCH_HIST, &BENCH_STATS, counts.alloc_slot, alloc_ns);
        record(&BENCH_HIST, &BENCH_STATS, counts.free_slot, free_ns);
    }
}

/// One batch of a loop in C, as one kfunc call; a refused loop (negative:
/// -EPERM in a context it may not run in) counts as failed allocations.
#[inline(always)]
fn native(lp: u32, size: u32, flags: u32, counts: &Counts) {
    // SAFETY: a kfunc of kernel-patches/ that takes plain values.
    let done = unsafe { bpf_nolock_bench_loop(lp, size, flags, BENCH_BATCH) };
    let done = if done < 0 { 0 } else { done as u64 };
    counts.failed((BENCH_BATCH as u64).saturating_sub(done));
    counts.batch_done();
}
