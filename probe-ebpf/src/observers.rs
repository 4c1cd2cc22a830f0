//! Observer programs on kfree_rcu_nolock()'s paths. They count what
//! happened to the triggers' own objects (recognised by the header's magic)
//! under the object's tag, and ignore everything else the kernel frees.

use core::mem::offset_of;

use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_probe_read_kernel},
    macros::{fentry, fexit},
    programs::{FEntryContext, FExitContext},
};
use probe_common::{MAX_TRIGGERS, NolockObj, OBJ_MAGIC, SLAB_FREE_NOLOCK, observer_state};

use crate::{
    counters::{RUN_CONFIG, count, state, state_add},
    kfuncs::bpf_nolock_barrier,
};

/// The tag of the object at `obj` if it is one of the triggers' objects.
#[inline(always)]
fn our_tag(obj: u64) -> Option<u32> {
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
pub fn kfree_rcu_sheaf_entry(_ctx: FEntryContext) -> u32 {
    state_add(observer_state::IN_KFREE_RCU_SHEAF, 1);
    0
}

#[fexit(function = "__kfree_rcu_sheaf")]
pub fn kfree_rcu_sheaf_exit(ctx: FExitContext) -> u32 {
    // An NMI can skip the entry program while it runs; never go below 0.
    if state(observer_state::IN_KFREE_RCU_SHEAF) > 0 {
        state_add(observer_state::IN_KFREE_RCU_SHEAF, -1);
    }
    let free_flags: u64 = ctx.arg(2);
    // Objects that fell back reach this function a second time from the
    // deferred work, through kvfree_call_rcu() without SLAB_FREE_NOLOCK;
    // only kfree_rcu_nolock()'s own attempt counts.
    if free_flags as u32 & SLAB_FREE_NOLOCK == 0 {
        return 0;
    }
    let Some(tag) = our_tag(ctx.arg(1)) else {
        return 0;
    };
    let ret: u64 = ctx.arg(3);
    if ret & 0xff != 0 {
        count!(tag, sheaf);
    } else {
        count!(tag, sheaf_fail);
    }
    0
}

/// `void defer_kfree_rcu(struct kvfree_rcu_head *head)`: the fallback.
#[fentry(function = "defer_kfree_rcu")]
pub fn defer_kfree_rcu(ctx: FEntryContext) -> u32 {
    let head: u64 = ctx.arg(0);
    if let Some(tag) = our_tag(head - offset_of!(NolockObj, rcu) as u64) {
        count!(tag, fallback);
    }
    0
}

#[fentry(function = "deferred_percpu_work_fn")]
pub fn deferred_work_entry(_ctx: FEntryContext) -> u32 {
    state_add(observer_state::IN_DEFERRED_WORK, 1);
    0
}

#[fexit(function = "deferred_percpu_work_fn")]
pub fn deferred_work_exit(_ctx: FExitContext) -> u32 {
    if state(observer_state::IN_DEFERRED_WORK) > 0 {
        state_add(observer_state::IN_DEFERRED_WORK, -1);
    }
    0
}

/// `void call_rcu(struct rcu_head *head, rcu_callback_t func)`: a full rcu
/// sheaf is handed to RCU either inside `__kfree_rcu_sheaf()` (at once) or
/// from the deferred irq_work's own loop (deferred, because spinning was not
/// allowed with interrupts off); anything else is a flush. The sheaf is
/// attributed to the trigger whose object filled it.
#[fentry(function = "call_rcu")]
pub fn call_rcu(ctx: FEntryContext) -> u32 {
    let cfg = RUN_CONFIG.load();
    let func: u64 = ctx.arg(1);
    if func != cfg.rcu_free_sheaf {
        return 0;
    }
    let head: u64 = ctx.arg(0);
    let sheaf = head - cfg.sheaf_rcu_head_off as u64;
    // SAFETY: bpf_probe_read_kernel() copes with any address.
    let Ok(size) =
        (unsafe { bpf_probe_read_kernel((sheaf + cfg.sheaf_size_off as u64) as *const u32) })
    else {
        return 0;
    };
    if size == 0 {
        return 0;
    }
    let last = sheaf + cfg.sheaf_objects_off as u64 + (size as u64 - 1) * 8;
    // SAFETY: as above.
    let Ok(last) = (unsafe { bpf_probe_read_kernel(last as *const u64) }) else {
        return 0;
    };
    let Some(tag) = our_tag(last) else {
        return 0;
    };
    if state(observer_state::IN_KFREE_RCU_SHEAF) > 0 {
        count!(tag, sheaf_call_rcu);
    } else if state(observer_state::IN_DEFERRED_WORK) > 0 {
        count!(tag, sheaf_call_rcu_deferred);
    } else {
        count!(tag, sheaf_call_rcu_flushed);
    }
    0
}

/// The drain: when the loader itself calls getpgid(), wait for every object
/// in flight (kvfree_rcu_barrier()). Sleepable, so it may only attach to an
/// error-injectable function such as a system call.
#[fentry(function = "__x64_sys_getpgid", sleepable)]
pub fn drain(_ctx: FEntryContext) -> u32 {
    if (bpf_get_current_pid_tgid() >> 32) as u32 == RUN_CONFIG.load().loader_tgid {
        // SAFETY: a sleepable kfunc in a sleepable program.
        unsafe { bpf_nolock_barrier() };
    }
    0
}
