//! The kfuncs of kernel-patches/. Their BTF comes from kfuncs.c, which
//! `cargo xtask build-ebpf` links in front of this crate.

use probe_common::NolockObj;

unsafe extern "C" {
    /// Acquire: returns NULL when refused or when kmalloc_nolock() failed.
    pub fn bpf_kmalloc_nolock(payload_size: u32, flags: u32, tag: u32) -> *mut NolockObj;
    /// Release through kfree_rcu_nolock().
    pub fn bpf_kfree_rcu_nolock(obj: *mut NolockObj);
    /// Release through kfree_nolock().
    pub fn bpf_kfree_nolock(obj: *mut NolockObj);
    /// poll_state_synchronize_rcu(gp_cookie).
    pub fn bpf_nolock_gp_elapsed(gp_cookie: u64) -> bool;
    /// Sleepable: kvfree_rcu_barrier().
    pub fn bpf_nolock_barrier();
}
