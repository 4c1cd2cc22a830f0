//! The bench program: what one kmalloc_nolock() and one free cost, with
//! nothing else attached (or only the path observers, `bench --observers`,
//! whose trampolines the calls then include). Each getpriority() of the loader's bench threads
//! allocates and frees `BENCH_BATCH` objects, and every call is timed.

use aya_ebpf::{
    helpers::bpf_get_current_pid_tgid,
    macros::{fentry, map},
    maps::{Array, PerCpuArray},
    programs::FEntryContext,
};
use probe_common::{BENCH_BATCH, BenchFree, LatencyStats, bench_mode, bench_op, bench_slot, hist};

use crate::{
    counters::{CallTimer, RUN_CONFIG, add, record},
    kfuncs::{bpf_kfree_nolock, bpf_kfree_rcu_nolock, bpf_kmalloc_nolock},
};

/// `bench_mode`: set by the loader between the warm-up, the samples and
/// the free functions.
#[map]
static BENCH_MODE: Array<u32> = Array::with_max_entries(1, 0);

const SLOTS: u32 = BenchFree::COUNT as u32 * bench_op::COUNT as u32;

#[map]
static BENCH_HIST: PerCpuArray<u64> = PerCpuArray::with_max_entries(SLOTS * hist::BUCKETS, 0);

#[map]
static BENCH_STATS: PerCpuArray<LatencyStats> = PerCpuArray::with_max_entries(SLOTS, 0);

/// Allocations that failed, per free function (the alloc slot).
#[map]
static BENCH_FAILS: PerCpuArray<u64> = PerCpuArray::with_max_entries(SLOTS, 0);

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
    let measure = mode & bench_mode::MEASURE != 0;
    let size = cfg.sizes[0];
    // What timing itself costs: an empty call.
    let clock = CallTimer::start().took();
    if measure {
        record(&BENCH_HIST, &BENCH_STATS, bench_slot(free, bench_op::CLOCK), clock);
    }
    for _ in 0..BENCH_BATCH {
        let timer = CallTimer::start();
        // SAFETY: a kfunc of kernel-patches/; the verifier tracks the reference.
        let obj = unsafe { bpf_kmalloc_nolock(size, cfg.alloc_flags, 0) };
        let alloc_ns = timer.took();
        if obj.is_null() {
            if measure {
                if let Some(n) = BENCH_FAILS.get_ptr_mut(bench_slot(free, bench_op::ALLOC)) {
                    add(n, 1);
                }
            }
            continue;
        }
        let timer = CallTimer::start();
        // SAFETY: releases the reference taken above.
        unsafe {
            if free == BenchFree::KfreeNolock as u32 {
                bpf_kfree_nolock(obj);
            } else {
                bpf_kfree_rcu_nolock(obj);
            }
        }
        let free_ns = timer.took();
        if measure {
            record(&BENCH_HIST, &BENCH_STATS, bench_slot(free, bench_op::ALLOC), alloc_ns);
            record(&BENCH_HIST, &BENCH_STATS, bench_slot(free, bench_op::FREE), free_ns);
        }
    }
    0
}
