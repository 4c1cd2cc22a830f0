//! The kfuncs of kernel-patches/, and the `HELD` map. Their BTF comes from
//! kfuncs.c, which `cargo xtask build-ebpf` links in front of this crate.

use core::{ffi::c_void, ptr::null_mut};

use aya_ebpf::helpers::{bpf_kptr_xchg, bpf_map_lookup_elem};
use probe_common::NolockObj;

unsafe extern "C" {
    /// Acquire: returns NULL when refused or when kmalloc_nolock() failed.
    pub fn bpf_kmalloc_nolock(payload_size: u32, flags: u32, tag: u32) -> *mut NolockObj;
    /// Release through kfree_rcu_nolock().
    pub fn bpf_kfree_rcu_nolock(obj: *mut NolockObj);
    /// Release through kfree_nolock().
    pub fn bpf_kfree_nolock(obj: *mut NolockObj);
    /// poll_state_synchronize_rcu_full() on an object's `gp_seq`.
    pub fn bpf_nolock_gp_elapsed(norm: u64, exp: u64) -> bool;
    /// Sleepable: kvfree_rcu_barrier().
    pub fn bpf_nolock_barrier();
    /// Runs `pairs` allocations and frees in C (`enum bpf_nolock_bench_loop`,
    /// `BenchFree::native_loop()`); returns the pairs allocated or -errno.
    pub fn bpf_nolock_bench_loop(lp: u32, payload_size: u32, flags: u32, pairs: u32) -> i32;
    /// bpf_obj_new() of a 64-byte program type, and bpf_obj_drop() (kfuncs.c).
    pub fn nolock_probe_obj_new() -> *mut c_void;
    pub fn nolock_probe_obj_drop(obj: *mut c_void);

    /// An array of `HELD_SLOTS` values of one kptr to a `NolockObj`
    /// (`struct held_obj` in kfuncs.c).
    static mut HELD: c_void;
}

/// Puts `obj` (or NULL) into `HELD` slot `slot` and returns what the slot
/// held: the caller owns that reference and must release it. A slot that
/// does not exist takes nothing and gives `obj` back.
#[inline(always)]
pub fn held_swap(slot: u32, obj: *mut NolockObj) -> *mut NolockObj {
    // SAFETY: HELD is a map; the helper returns NULL or its value, whose
    // first (only) field is the kptr.
    let value = unsafe { bpf_map_lookup_elem(&raw mut HELD, (&raw const slot).cast()) };
    if value.is_null() {
        return obj;
    }
    if obj.is_null() {
        // SAFETY: as above; the verifier sees a NULL (not a released object).
        return unsafe { bpf_kptr_xchg(value, null_mut()) }.cast();
    }
    // SAFETY: as above; the verifier moves `obj`'s reference into the map.
    unsafe { bpf_kptr_xchg(value, obj.cast()) }.cast()
}
