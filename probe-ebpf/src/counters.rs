//! The maps and the run configuration, and how programs count.
//!
//! Counters are per CPU, but a trigger in NMI can interrupt an observer that
//! is halfway through an update on the same CPU, so every update is an
//! atomic add: cheap, and no count is lost. The BPF target has no Rust
//! atomics (no compare-and-swap), so the add is the BPF instruction itself.

use aya_ebpf::{
    Global,
    macros::map,
    maps::{HashMap, LruHashMap, PerCpuArray, RingBuf},
};
use probe_common::{
    ALERTS_BYTES, Alert, GpSeq, InFlight, LatencyStats, MAX_IN_FLIGHT, MAX_RECLAIMED, MAX_SHEAVES,
    MAX_TRIGGERS, Path, PathCounters, RunConfig, SheafInFlight, Stage, TriggerCounters, ViolationStats,
    call_kind, call_slot, hist, latency_slot, observer_state, violation,
};

use crate::kfuncs::bpf_nolock_gp_elapsed;

#[map]
pub static COUNTERS: PerCpuArray<TriggerCounters> = PerCpuArray::with_max_entries(MAX_TRIGGERS, 0);

/// Objects handed to kfree_rcu_nolock() and not yet reclaimed, by address.
#[map]
pub static IN_FLIGHT: HashMap<u64, InFlight> = HashMap::with_max_entries(MAX_IN_FLIGHT, 0);

/// Rcu sheaves of the triggers' caches between call_rcu() and
/// rcu_free_sheaf(), by address.
#[map]
pub static SHEAVES: HashMap<u64, SheafInFlight> = HashMap::with_max_entries(MAX_SHEAVES, 0);

/// The kmem_caches the triggers' objects live in: only their sheaves are
/// followed.
#[map]
pub static OUR_CACHES: HashMap<u64, u8> = HashMap::with_max_entries(64, 0);

/// Per trigger, when it last made a call on this CPU (`--rate`).
#[map]
pub static LAST_CALL: PerCpuArray<u64> = PerCpuArray::with_max_entries(MAX_TRIGGERS, 0);

/// Per trigger, this CPU's place in the burst it is holding (`HELD`).
#[map]
pub static HOLDING: PerCpuArray<u32> = PerCpuArray::with_max_entries(MAX_TRIGGERS, 0);

#[map]
static HIST: PerCpuArray<u64> =
    PerCpuArray::with_max_entries(Path::COUNT as u32 * Stage::COUNT as u32 * hist::BUCKETS, 0);

#[map]
static LATENCY: PerCpuArray<LatencyStats> =
    PerCpuArray::with_max_entries(Path::COUNT as u32 * Stage::COUNT as u32, 0);

/// How long each trigger's calls took, by `call_kind`.
#[map]
static CALL_HIST: PerCpuArray<u64> =
    PerCpuArray::with_max_entries(MAX_TRIGGERS * call_kind::COUNT as u32 * hist::BUCKETS, 0);

#[map]
static CALL_STATS: PerCpuArray<LatencyStats> =
    PerCpuArray::with_max_entries(MAX_TRIGGERS * call_kind::COUNT as u32, 0);

#[map]
pub static PATH_COUNTERS: PerCpuArray<PathCounters> = PerCpuArray::with_max_entries(Path::COUNT as u32, 0);

/// What the observers caught of each `violation` kind, as it happened.
#[map]
static VIOLATIONS: PerCpuArray<ViolationStats> = PerCpuArray::with_max_entries(violation::COUNT as u32, 0);

/// The first violation of each kind on each CPU, as it happens.
#[map]
static ALERTS: RingBuf = RingBuf::with_byte_size(ALERTS_BYTES, 0);

/// Objects recently reclaimed: address to `alloc_ns`. A reclaim of memory
/// that is not in flight but still holds an object listed here is that
/// object's second reclaim. Least recently used entries make room.
#[map]
pub static RECLAIMED: LruHashMap<u64, u64> = LruHashMap::with_max_entries(MAX_RECLAIMED, 0);

#[map]
static OBSERVER_STATE: PerCpuArray<u64> = PerCpuArray::with_max_entries(observer_state::COUNT, 0);

/// Set by the loader before the object is loaded.
#[unsafe(no_mangle)]
pub static RUN_CONFIG: Global<RunConfig> = Global::new(RunConfig::DEFAULT);

#[inline(always)]
pub fn add(counter: *mut u64, n: u64) {
    // SAFETY: `counter` points into a map value, which is 8-byte aligned
    // and lives as long as the map; the instruction only adds to it.
    unsafe {
        core::arch::asm!("lock *(u64 *)({0} + 0) += {1}", in(reg) counter, in(reg) n, options(nostack));
    }
}

/// Adds one to `field` of trigger `tag`'s counters on this CPU.
macro_rules! count {
    ($tag:expr, $($field:tt)+) => {
        if let Some(c) = $crate::counters::COUNTERS.get_ptr_mut($tag) {
            // SAFETY: `c` is this CPU's value of an existing map slot.
            $crate::counters::add(unsafe { &raw mut (*c).$($field)+ }, 1);
        }
    };
}
pub(crate) use count;

/// Adds `delta` (which may be negative) to an observer state slot on this
/// CPU.
#[inline(always)]
pub fn state_add(slot: u32, delta: i64) {
    if let Some(v) = OBSERVER_STATE.get_ptr_mut(slot) {
        add(v, delta as u64);
    }
}

/// Sets an observer state slot on this CPU.
#[inline(always)]
pub fn state_set(slot: u32, value: u64) {
    if let Some(v) = OBSERVER_STATE.get_ptr_mut(slot) {
        // SAFETY: as in `add`; a plain store of this CPU's value.
        unsafe { core::ptr::write_volatile(v, value) };
    }
}

#[inline(always)]
pub fn state(slot: u32) -> u64 {
    match OBSERVER_STATE.get_ptr(slot) {
        // SAFETY: as in `add`.
        Some(v) => unsafe { core::ptr::read_volatile(v) },
        None => 0,
    }
}

/// Held for the run of an observer or trigger program: its time goes to
/// `observer_state::TOOL_NS`, which a timed call subtracts, so that the
/// call's time is the kernel's, not the tool's (an observer on its path, a
/// trigger attached inside it or in an interrupt that hit it). The
/// kernel's trampolines and interrupt entries around those programs still
/// count.
pub struct ToolClock {
    start: u64,
    tool_at_start: u64,
}

impl ToolClock {
    #[inline(always)]
    pub fn start() -> Self {
        ToolClock { tool_at_start: state(observer_state::TOOL_NS), start: now() }
    }
}

impl Drop for ToolClock {
    #[inline(always)]
    fn drop(&mut self) {
        // Tool programs nested in this one added their own time already:
        // add the rest, so that the slot grows by this program's time.
        let took = now().wrapping_sub(self.start);
        let nested = state(observer_state::TOOL_NS).wrapping_sub(self.tool_at_start);
        state_add(observer_state::TOOL_NS, took.saturating_sub(nested) as i64);
    }
}

/// Enters (1) or leaves (-1) the tool's allocations and frees on this CPU
/// (`observer_state::IN_TRIGGER_CALL`). Programs in task context are
/// preemptible, so two calls on one CPU can end out of order, and the
/// later one then puts back a `FreeMark` whose call is over: once no call
/// is left on the CPU, no mark may be either.
#[inline(always)]
pub fn trigger_calls(delta: i64) {
    state_add(observer_state::IN_TRIGGER_CALL, delta);
    if delta < 0 && state(observer_state::IN_TRIGGER_CALL) == 0 {
        state_set(observer_state::FREEING_OBJ, 0);
    }
}

/// Marks the tool's kfree_rcu_nolock() of one object as the innermost
/// running on this CPU (`observer_state::FREEING_OBJ`) until `end()`,
/// which puts back the mark of the call it interrupted, if any: the
/// call_rcu() observer's way, in the cheap mode, to know that a full
/// sheaf is handed to RCU inside a call, and inside which.
pub struct FreeMark {
    outer: u64,
}

impl FreeMark {
    #[inline(always)]
    pub fn start(obj: u64) -> Self {
        let outer = state(observer_state::FREEING_OBJ);
        state_set(observer_state::FREEING_OBJ, obj);
        FreeMark { outer }
    }

    #[inline(always)]
    pub fn end(self) {
        state_set(observer_state::FREEING_OBJ, self.outer);
    }
}

/// Times one call, less the time the tool's programs ran inside it.
pub struct CallTimer {
    start: u64,
    observers: u64,
}

impl CallTimer {
    #[inline(always)]
    pub fn start() -> Self {
        CallTimer { observers: state(observer_state::TOOL_NS), start: now() }
    }

    #[inline(always)]
    pub fn took(&self) -> u64 {
        let took = now().wrapping_sub(self.start);
        took.saturating_sub(state(observer_state::TOOL_NS).wrapping_sub(self.observers))
    }
}

/// Whether the grace period an object's cookie names is over. A cookie
/// never taken (all zero) says no: nothing is known of it.
#[inline(always)]
pub fn gp_elapsed(gp: &GpSeq) -> bool {
    // SAFETY: a kfunc of kernel-patches/ that takes plain values.
    gp.norm != 0 && unsafe { bpf_nolock_gp_elapsed(gp.norm, gp.exp) }
}

/// Records one violation of `kind` (`violation::*`) by an object of
/// trigger `tag`: `by` splits it as the kind says, `age_ns` is the time
/// since the object's kfree_rcu_nolock(). The first on a CPU is also sent
/// to the loader at once.
#[inline(always)]
pub fn violated(kind: u32, tag: u32, by: u32, age_ns: u64, gp_passed: bool) {
    let Some(v) = VIOLATIONS.get_ptr_mut(kind) else { return };
    // SAFETY: as below.
    if unsafe { (*v).count } == 0 {
        let _ = ALERTS.output(&Alert { kind, tag }, 0);
    }
    // SAFETY: this CPU's value of an existing slot; the extremes are plain
    // updates, as in `record`.
    unsafe {
        let first = (*v).count == 0;
        add(&raw mut (*v).count, 1);
        add(&raw mut (*v).by[(by & 3) as usize], 1);
        add(&raw mut (*v).gp_passed, gp_passed as u64);
        if first || age_ns < (*v).age_min_ns {
            (*v).age_min_ns = age_ns;
        }
        if age_ns > (*v).age_max_ns {
            (*v).age_max_ns = age_ns;
        }
    }
}

/// Adds one latency sample of (path, stage).
#[inline(always)]
pub fn sample(path: u32, stage: u32, ns: u64) {
    record(&HIST, &LATENCY, latency_slot(path, stage), ns);
}

/// Adds the time of one call of trigger `tag`, of `call_kind` `kind`.
#[inline(always)]
pub fn time_call(tag: u32, kind: u32, ns: u64) {
    record(&CALL_HIST, &CALL_STATS, call_slot(tag, kind), ns);
}

/// Adds `ns` to slot `slot` of a histogram map (`hist::BUCKETS` values per
/// slot) and of its summary map.
#[inline(always)]
pub fn record(hist_map: &PerCpuArray<u64>, stats: &PerCpuArray<LatencyStats>, slot: u32, ns: u64) {
    if let Some(h) = hist_map.get_ptr_mut(slot * hist::BUCKETS + hist::bucket(ns)) {
        add(h, 1);
    }
    if let Some(l) = stats.get_ptr_mut(slot) {
        // SAFETY: `l` is this CPU's value of an existing slot. min and max
        // are plain per-CPU updates: an NMI landing between the compare and
        // the store can lose one extreme, never a count.
        unsafe {
            add(&raw mut (*l).count, 1);
            add(&raw mut (*l).sum_ns, ns);
            if (*l).min_ns == 0 || ns < (*l).min_ns {
                (*l).min_ns = ns;
            }
            if ns > (*l).max_ns {
                (*l).max_ns = ns;
            }
        }
    }
}

/// ktime_get_mono_fast_ns(), the clock the kfuncs stamp objects with.
#[inline(always)]
pub fn now() -> u64 {
    // SAFETY: a helper without arguments.
    unsafe { aya_ebpf::helpers::bpf_ktime_get_ns() }
}
