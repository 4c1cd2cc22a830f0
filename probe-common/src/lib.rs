//! Types shared by the BPF programs (`probe-ebpf`) and the loader
//! (`probe-user`). Everything here is `#[repr(C)]` with fixed-width fields
//! and explicit padding, so that both sides see one layout.
#![no_std]

/// `BPF_NOLOCK_OBJ_MAGIC` of kernel-patches/0001: the first word of every
/// object that `bpf_kmalloc_nolock()` returned and that is not yet freed
/// (`bpf_kfree_nolock()` clears it).
pub const OBJ_MAGIC: u64 = 0x6b63_6f6c_6f6e_3a30;

/// `BPF_NOLOCK_MAX_PAYLOAD`: the largest payload the kernel accepts.
pub const MAX_PAYLOAD: u32 = 4096;

/// `SLAB_FREE_NOLOCK` of mm/slab.h: the `free_flags` bit that
/// `kfree_call_rcu_nolock()` passes to `__kfree_rcu_sheaf()`.
pub const SLAB_FREE_NOLOCK: u32 = 0x01;

/// Mirror of `struct bpf_nolock_obj` (kernel-patches/0001). The loader checks
/// this layout against the running kernel's BTF before it loads anything.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct NolockObj {
    pub magic: u64,
    pub alloc_ns: u64,
    pub free_ns: u64,
    pub gp_cookie: u64,
    pub alloc_cpu: u32,
    pub alloc_ctx: u32,
    pub free_cpu: u32,
    pub free_ctx: u32,
    pub tag: u32,
    pub payload_size: u32,
    /// `struct kvfree_rcu_head`: one pointer with CONFIG_KVFREE_RCU_BATCHED.
    pub rcu: u64,
}

/// Field names of `struct bpf_nolock_obj` with their offsets in [`NolockObj`],
/// for the loader's layout check.
pub const NOLOCK_OBJ_FIELDS: [(&str, usize); 11] = [
    ("magic", core::mem::offset_of!(NolockObj, magic)),
    ("alloc_ns", core::mem::offset_of!(NolockObj, alloc_ns)),
    ("free_ns", core::mem::offset_of!(NolockObj, free_ns)),
    ("gp_cookie", core::mem::offset_of!(NolockObj, gp_cookie)),
    ("alloc_cpu", core::mem::offset_of!(NolockObj, alloc_cpu)),
    ("alloc_ctx", core::mem::offset_of!(NolockObj, alloc_ctx)),
    ("free_cpu", core::mem::offset_of!(NolockObj, free_cpu)),
    ("free_ctx", core::mem::offset_of!(NolockObj, free_ctx)),
    ("tag", core::mem::offset_of!(NolockObj, tag)),
    (
        "payload_size",
        core::mem::offset_of!(NolockObj, payload_size),
    ),
    ("rcu", core::mem::offset_of!(NolockObj, rcu)),
];

/// `enum bpf_nolock_ctx`: where an object was allocated or freed.
pub mod ctx {
    pub const TASK: u32 = 0;
    pub const SOFTIRQ: u32 = 1;
    pub const HARDIRQ: u32 = 2;
    pub const NMI: u32 = 3;
    pub const MASK: u32 = 0xff;
    /// Or-ed into the above when interrupts were disabled.
    pub const IRQS_OFF: u32 = 0x100;
    /// Number of contexts, the length of per-context counter arrays.
    pub const COUNT: usize = 4;
    pub const NAMES: [&str; COUNT] = ["task", "softirq", "hardirq", "nmi"];
}

/// `enum bpf_nolock_alloc_flags`.
pub mod alloc_flags {
    pub const ZERO: u32 = 1 << 0;
    pub const ACCOUNT: u32 = 1 << 1;
}

/// The trigger programs. The discriminant is the object's tag and the index
/// of the trigger's slot in the `COUNTERS` map.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Trigger {
    /// kprobe on `slab_attach_kprobe_locked()`: slab locks held.
    LockedKprobe = 0,
    /// perf event: hardware cycles (NMI) or software cpu-clock (hardirq).
    PerfEvent = 1,
    /// fentry on `deferred_percpu_work_fn()`: inside kfree_rcu_nolock()'s
    /// own irq_work.
    FentryDeferredWork = 2,
}

impl Trigger {
    pub const ALL: [Trigger; 3] = [
        Trigger::LockedKprobe,
        Trigger::PerfEvent,
        Trigger::FentryDeferredWork,
    ];

    /// The BPF program (its function name in probe-ebpf).
    pub const fn program(self) -> &'static str {
        match self {
            Trigger::LockedKprobe => "trigger_locked_kprobe",
            Trigger::PerfEvent => "trigger_perf_event",
            Trigger::FentryDeferredWork => "trigger_fentry_deferred_work",
        }
    }

    /// Stable name used in the JSON and on the command line.
    pub const fn name(self) -> &'static str {
        match self {
            Trigger::LockedKprobe => "locked_kprobe",
            Trigger::PerfEvent => "perf_event",
            Trigger::FentryDeferredWork => "fentry_deferred_work",
        }
    }
}

/// Upper bound of trigger tags; sizes the `COUNTERS` map.
pub const MAX_TRIGGERS: u32 = 16;

/// Per-CPU counters of one trigger, one slot per trigger in `COUNTERS`.
/// The trigger program counts the first block; observer programs on the
/// allocator's paths count the second, for the trigger's own objects only.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "user", derive(serde::Serialize))]
pub struct TriggerCounters {
    /// Times the trigger fired and tried to allocate.
    pub calls: u64,
    /// `bpf_kmalloc_nolock()` returned NULL.
    pub alloc_fail: u64,
    /// Objects handed to `kfree_rcu_nolock()`.
    pub freed_rcu: u64,
    /// Objects handed to `kfree_nolock()`.
    pub freed_nolock: u64,
    /// Objects by the context `bpf_kmalloc_nolock()` saw (`ctx::*`).
    #[cfg_attr(feature = "user", serde(serialize_with = "pod::per_context"))]
    pub alloc_ctx: [u64; ctx::COUNT],
    /// Objects allocated with interrupts disabled.
    pub alloc_irqs_off: u64,

    /// kfree_rcu_nolock() put the object into the per-CPU rcu sheaf.
    pub sheaf: u64,
    /// `__kfree_rcu_sheaf()` said no (trylock failed, no sheaf).
    pub sheaf_fail: u64,
    /// The object went to `defer_kfree_rcu()`.
    pub fallback: u64,
    /// Full rcu sheaves (last object ours) passed to `call_rcu()` at once.
    pub sheaf_call_rcu: u64,
    /// Full rcu sheaves whose `call_rcu()` was deferred through irq_work.
    pub sheaf_call_rcu_deferred: u64,
    /// Rcu sheaves passed to `call_rcu()` by a flush (barrier, shrink).
    pub sheaf_call_rcu_flushed: u64,
}

impl TriggerCounters {
    /// Adds another CPU's (or trigger's) counters to these.
    pub fn accumulate(&mut self, other: &TriggerCounters) {
        self.calls += other.calls;
        self.alloc_fail += other.alloc_fail;
        self.freed_rcu += other.freed_rcu;
        self.freed_nolock += other.freed_nolock;
        for (a, b) in self.alloc_ctx.iter_mut().zip(other.alloc_ctx.iter()) {
            *a += b;
        }
        self.alloc_irqs_off += other.alloc_irqs_off;
        self.sheaf += other.sheaf;
        self.sheaf_fail += other.sheaf_fail;
        self.fallback += other.fallback;
        self.sheaf_call_rcu += other.sheaf_call_rcu;
        self.sheaf_call_rcu_deferred += other.sheaf_call_rcu_deferred;
        self.sheaf_call_rcu_flushed += other.sheaf_call_rcu_flushed;
    }
}

/// Run parameters, a read-only global in the BPF object that the loader sets
/// before loading (`RUN_CONFIG`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunConfig {
    /// Payload bytes after the header (0..=MAX_PAYLOAD).
    pub payload_size: u32,
    /// `alloc_flags::*`.
    pub alloc_flags: u32,
    /// Address of the static `rcu_free_sheaf()`, from /proc/kallsyms: the
    /// `call_rcu()` observer recognises sheaves by their callback.
    pub rcu_free_sheaf: u64,
    /// Offsets in `struct slab_sheaf`, from the kernel's BTF.
    pub sheaf_rcu_head_off: u32,
    pub sheaf_size_off: u32,
    pub sheaf_objects_off: u32,
    /// Thread group of the loader: only its system call drains.
    pub loader_tgid: u32,
}

impl RunConfig {
    pub const DEFAULT: RunConfig = RunConfig {
        payload_size: 0,
        alloc_flags: 0,
        rcu_free_sheaf: 0,
        sheaf_rcu_head_off: 0,
        sheaf_size_off: 0,
        sheaf_objects_off: 0,
        loader_tgid: 0,
    };
}

/// Per-CPU scratch state of the observers (`OBSERVER_STATE` slots).
pub mod observer_state {
    /// Depth of `__kfree_rcu_sheaf()` calls on this CPU.
    pub const IN_KFREE_RCU_SHEAF: u32 = 0;
    /// Depth of `deferred_percpu_work_fn()` on this CPU.
    pub const IN_DEFERRED_WORK: u32 = 1;
    pub const COUNT: u32 = 2;
}

#[cfg(feature = "user")]
mod pod {
    use serde::ser::{SerializeMap, Serializer};

    /// Per-context counts as an object keyed by context name.
    pub fn per_context<S: Serializer>(
        counts: &[u64; super::ctx::COUNT],
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(counts.len()))?;
        for (name, n) in super::ctx::NAMES.iter().zip(counts) {
            map.serialize_entry(name, n)?;
        }
        map.end()
    }

    // SAFETY: repr(C), only u64/u32 fields and arrays of them, no padding.
    unsafe impl aya::Pod for super::TriggerCounters {}
    // SAFETY: repr(C), u32/u64 fields laid out without padding.
    unsafe impl aya::Pod for super::RunConfig {}
}
