//! Free-side observers: the slab allocator's free entry points, watched
//! for the triggers' objects in flight. A healthy kernel frees one only
//! after a reclaim observer has seen it go (rcu_free_sheaf() and the
//! kvfree_rcu batches are hooked on their entry, before they free
//! anything), so one that still arrives here left kfree_rcu_nolock()'s care
//! by a route no reclaim path watches: before its grace period ended, a
//! premature free, caught as it is freed and before its memory is reused.
//! The reuse and leftover checks catch the same later, for a route past
//! these entry points.

use core::ffi::c_void;

use aya_ebpf::{helpers::bpf_loop, macros::fentry, programs::FEntryContext};
use probe_common::{MAX_BULK_RECORDS, NolockObj, OBJ_MAGIC, free_side, violation};

use crate::{
    counters::{IN_FLIGHT, ToolClock, count, gp_elapsed, now, violated},
    reclaim::{fentry_arg, read},
};

/// `obj` is being freed at entry point `entry` (`free_side::*`).
#[inline(always)]
fn freeing(obj: u64, entry: u32) {
    // Every free in the kernel comes here: the magic (one read) sorts out
    // nearly all of them before the map lookup.
    if read::<u64>(obj) != OBJ_MAGIC {
        return;
    }
    // SAFETY: a copy of the map value.
    let Some(state) = (unsafe { IN_FLIGHT.get(&obj) }).copied() else {
        return;
    };
    let _ = IN_FLIGHT.remove(&obj);
    let header: NolockObj = read(obj);
    if header.alloc_ns != state.alloc_ns {
        // Another of the tool's objects lives there now: the one in flight
        // left unseen before (premature, unless a reclaim observer was
        // skipped), as at a reclaim.
        count!(state.tag, stale);
        return;
    }
    // The header's cookie: the entry's is copied in only after
    // kfree_rcu_nolock() returns, and a free inside the call has none yet.
    if gp_elapsed(&header.gp_seq) {
        count!(state.tag, freed_unwatched);
        return;
    }
    count!(state.tag, freed_in_flight);
    violated(violation::FREED_IN_FLIGHT, state.tag, entry, now().saturating_sub(header.free_ns), false);
}

/// `void kfree(const void *object)`
#[fentry(function = "kfree")]
pub fn free_side_kfree(ctx: FEntryContext) -> u32 {
    let _clock = ToolClock::start();
    freeing(fentry_arg(&ctx, 0), free_side::KFREE);
    0
}

/// `void kfree_nolock(const void *object)`
#[fentry(function = "kfree_nolock")]
pub fn free_side_kfree_nolock(ctx: FEntryContext) -> u32 {
    let _clock = ToolClock::start();
    freeing(fentry_arg(&ctx, 0), free_side::KFREE_NOLOCK);
    0
}

/// `void kmem_cache_free(struct kmem_cache *s, void *x)`
#[fentry(function = "kmem_cache_free")]
pub fn free_side_kmem_cache_free(ctx: FEntryContext) -> u32 {
    let _clock = ToolClock::start();
    freeing(fentry_arg(&ctx, 1), free_side::KMEM_CACHE_FREE);
    0
}

/// `void __slab_free(struct kmem_cache *s, struct slab *slab, void *head,
/// void *tail, int cnt, unsigned long addr)`: the slow path of every free,
/// and where a sheaf flushed to the slabs goes. A chain of `cnt` objects
/// from `head` to `tail`: the two ends are looked at (the links in between
/// are the slab's obfuscated free pointers).
#[fentry(function = "__slab_free")]
pub fn free_side_slab_free(ctx: FEntryContext) -> u32 {
    let _clock = ToolClock::start();
    let (head, tail) = (fentry_arg(&ctx, 2), fentry_arg(&ctx, 3));
    freeing(head, free_side::BULK_OR_SLAB);
    if tail != head && tail != 0 {
        freeing(tail, free_side::BULK_OR_SLAB);
    }
    0
}

/// `void kmem_cache_free_bulk(struct kmem_cache *s, size_t size, void **p)`
/// (kfree_bulk() too, with no cache).
#[fentry(function = "kmem_cache_free_bulk")]
pub fn free_side_free_bulk(ctx: FEntryContext) -> u32 {
    let _clock = ToolClock::start();
    let n = fentry_arg(&ctx, 1).min(MAX_BULK_RECORDS as u64) as u32;
    let mut base = fentry_arg(&ctx, 2);
    // SAFETY: the callback matches bpf_loop()'s contract and only reads
    // `base`, which outlives the call.
    unsafe { bpf_loop(n, bulk_element as *mut c_void, (&raw mut base).cast(), 0) };
    0
}

#[inline(never)]
extern "C" fn bulk_element(i: u64, base: *mut c_void) -> i64 {
    // SAFETY: `base` is the caller's u64, alive for the whole loop.
    let base = unsafe { *(base as *const u64) };
    freeing(read(base + i * 8), free_side::BULK_OR_SLAB);
    0
}
