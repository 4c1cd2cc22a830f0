//! The BPF side of nolock-probe: trigger programs that call
//! kmalloc_nolock() and kfree_rcu_nolock() from many contexts, and observer
//! programs that count which path each object took; and the bench program,
//! which times the two calls with nothing else attached.
#![no_std]
#![no_main]
// BPF inline assembly, for the atomic add in counters.rs.
#![feature(asm_experimental_arch)]

mod bench;
mod counters;
mod free_side;
mod kfuncs;
mod observers;
mod reclaim;
mod triggers;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

/// The kfuncs are GPL-only.
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
