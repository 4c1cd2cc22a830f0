//! The maps and the run configuration, and how programs count.
//!
//! Counters are per CPU, but a trigger in NMI can interrupt an observer that
//! is halfway through an update on the same CPU, so every update is an
//! atomic add: cheap, and no count is lost. The BPF target has no Rust
//! atomics (no compare-and-swap), so the add is the BPF instruction itself.

use aya_ebpf::{Global, macros::map, maps::PerCpuArray};
use probe_common::{MAX_TRIGGERS, RunConfig, TriggerCounters, observer_state};

#[map]
pub static COUNTERS: PerCpuArray<TriggerCounters> = PerCpuArray::with_max_entries(MAX_TRIGGERS, 0);

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

#[inline(always)]
pub fn state(slot: u32) -> u64 {
    match OBSERVER_STATE.get_ptr(slot) {
        // SAFETY: as in `add`.
        Some(v) => unsafe { core::ptr::read_volatile(v) },
        None => 0,
    }
}
