//! Types shared by the BPF programs (`probe-ebpf`) and the loader
//! (`probe-user`). Everything here is `#[repr(C)]` with fixed-width fields
//! and explicit padding, so that both sides see one layout.
#![no_std]

pub mod console;
pub mod hist;
#[cfg(feature = "serde")]
mod names;
pub mod programs;
mod trigger;

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
    /// get_state_synchronize_rcu_full() at kfree_rcu_nolock().
    pub gp_seq: GpSeq,
    pub tag: u32,
    pub payload_size: u32,
    pub alloc_cpu: u16,
    pub free_cpu: u16,
    /// `enum bpf_nolock_ctx`, see [`ctx`].
    pub alloc_ctx: u16,
    pub free_ctx: u16,
    /// `struct kvfree_rcu_head`: one pointer with CONFIG_KVFREE_RCU_BATCHED.
    pub rcu: u64,
}

// The CLI and the kmalloc cache arithmetic count on a 64-byte header.
const _: () = assert!(core::mem::size_of::<NolockObj>() == 64);

/// `struct rcu_gp_seq`: the normal and the expedited grace-period sequence.
/// An RCU callback runs after whichever of the two ends first, so both are
/// needed to tell whether an object's grace period is over.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct GpSeq {
    pub norm: u64,
    pub exp: u64,
}

/// Field names of `struct bpf_nolock_obj` with their offsets in [`NolockObj`],
/// for the loader's layout check.
pub const NOLOCK_OBJ_FIELDS: [(&str, usize); 11] = [
    ("magic", core::mem::offset_of!(NolockObj, magic)),
    ("alloc_ns", core::mem::offset_of!(NolockObj, alloc_ns)),
    ("free_ns", core::mem::offset_of!(NolockObj, free_ns)),
    ("gp_seq", core::mem::offset_of!(NolockObj, gp_seq)),
    ("tag", core::mem::offset_of!(NolockObj, tag)),
    ("payload_size", core::mem::offset_of!(NolockObj, payload_size)),
    ("alloc_cpu", core::mem::offset_of!(NolockObj, alloc_cpu)),
    ("free_cpu", core::mem::offset_of!(NolockObj, free_cpu)),
    ("alloc_ctx", core::mem::offset_of!(NolockObj, alloc_ctx)),
    ("free_ctx", core::mem::offset_of!(NolockObj, free_ctx)),
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

pub use trigger::{Attach, Intended, Trigger};

/// Upper bound of trigger tags; sizes the `COUNTERS` map.
pub const MAX_TRIGGERS: u32 = 16;

/// Per-CPU counters of one trigger, one slot per trigger in `COUNTERS`.
/// The trigger program counts the first block; observer programs on the
/// allocator's paths count the second, for the trigger's own objects only.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct TriggerCounters {
    /// Times the trigger's program ran (before the rate limit and CPU set).
    pub hits: u64,
    /// Allocation attempts (one per hit that passes the rate limit).
    pub calls: u64,
    /// `bpf_kmalloc_nolock()` returned NULL.
    pub alloc_fail: u64,
    /// Objects handed to `kfree_rcu_nolock()`.
    pub freed_rcu: u64,
    /// Objects handed to `kfree_nolock()`.
    pub freed_nolock: u64,
    /// Objects by the context `bpf_kmalloc_nolock()` saw (`ctx::*`).
    #[cfg_attr(feature = "serde", serde(with = "crate::names::per_context"))]
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

    /// Objects seen given back after their grace period (any path).
    pub reclaimed: u64,
    /// Of those, given back before their grace period had ended.
    pub premature: u64,
    /// Objects the observers could not follow because `IN_FLIGHT` was full.
    pub untracked: u64,
    /// Reclaimed from an rcu sheaf whose `call_rcu()` was not recorded
    /// (`SHEAVES` full), so without a path or latency.
    pub unattributed: u64,
    /// Fallen-back objects that the deferred work's `kvfree_call_rcu()` put
    /// into an rcu sheaf (their second attempt), and that it could not.
    pub retry_sheaf: u64,
    pub retry_sheaf_fail: u64,

    /// A reclaim path gave back memory that `IN_FLIGHT` still listed, but
    /// it no longer held that object (another `alloc_ns`), or after the
    /// drain the memory of an unreclaimed object held another object or a
    /// slab free pointer: the object left the allocator's care unseen
    /// (premature, unless a reclaim observer was skipped), and the
    /// memory's new owner is not judged.
    pub stale: u64,

    /// Bursts (`--burst`) the trigger freed back to back; the drain frees
    /// what an unfinished burst still held, and does not count it here.
    pub bursts: u64,

    /// `locked_kprobe` only: calls at the sites of
    /// `slab_attach_kprobe_locked()` that hold the per-CPU sheaves lock,
    /// and calls whose site could not be told (see [`LockedSite`]); the
    /// other calls were at the sites that hold a node's list_lock.
    #[cfg_attr(feature = "serde", serde(default))]
    pub calls_sheaves_lock: u64,
    #[cfg_attr(feature = "serde", serde(default))]
    pub calls_site_unknown: u64,

    /// Calls made while one of the tool's own kmalloc_nolock() or free
    /// calls was running on this CPU: the trigger fired inside it (for
    /// `locked_kprobe`: under a slab lock that call took; where that is the
    /// sheaves lock of its objects' cache, the free falls back).
    #[cfg_attr(feature = "serde", serde(default))]
    pub calls_nested: u64,

    /// kmalloc_nolock() returned the address of one of this trigger's
    /// objects that was handed to kfree_rcu_nolock() and not yet seen
    /// reclaimed: the kernel freed it early, by a route no reclaim observer
    /// watches (premature free by reuse). See `VIOLATIONS` for its path,
    /// age and grace period.
    #[cfg_attr(feature = "serde", serde(default))]
    pub reused_in_flight: u64,
    /// One kfree_rcu_nolock() of an object the kernel queued on a second
    /// path (or twice on one) before reclaiming it (double free, queue side).
    #[cfg_attr(feature = "serde", serde(default))]
    pub double_queued: u64,
    /// An object given back a second time after its reclaim (double free,
    /// reclaim side).
    #[cfg_attr(feature = "serde", serde(default))]
    pub double_reclaimed: u64,
    /// A full rcu sheaf, completed by a no-spin call with interrupts off or
    /// in NMI, handed to call_rcu() inside that call instead of through the
    /// deferred irq_work (context rule broken).
    #[cfg_attr(feature = "serde", serde(default))]
    pub call_rcu_unsafe: u64,
    /// One of this trigger's objects in flight reached the slab allocator's
    /// free side (a `free_side` entry point) before its grace period ended,
    /// without a reclaim path: a premature free, caught as it is freed.
    /// See `VIOLATIONS` for the entry point and the object's age.
    #[cfg_attr(feature = "serde", serde(default))]
    pub freed_in_flight: u64,
    /// ... after its grace period, but without a reclaim observer seeing it
    /// (a skipped one, or a kvfree_rcu list longer than the walk): the end
    /// of the object, without a path or latency.
    #[cfg_attr(feature = "serde", serde(default))]
    pub freed_unwatched: u64,
    /// kfree_rcu_nolock() calls after which the caller saw no fallback:
    /// the sheaf path as the cheap mode tells it, without an observer on
    /// `__kfree_rcu_sheaf()`. Counted in both modes, so that a full run
    /// cross-checks it against `sheaf`.
    #[cfg_attr(feature = "serde", serde(default))]
    pub sheaf_by_caller: u64,
}

impl TriggerCounters {
    /// Adds another CPU's (or trigger's) counters to these.
    pub fn accumulate(&mut self, other: &TriggerCounters) {
        self.hits += other.hits;
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
        self.reclaimed += other.reclaimed;
        self.premature += other.premature;
        self.untracked += other.untracked;
        self.unattributed += other.unattributed;
        self.retry_sheaf += other.retry_sheaf;
        self.retry_sheaf_fail += other.retry_sheaf_fail;
        self.stale += other.stale;
        self.bursts += other.bursts;
        self.calls_sheaves_lock += other.calls_sheaves_lock;
        self.calls_site_unknown += other.calls_site_unknown;
        self.calls_nested += other.calls_nested;
        self.reused_in_flight += other.reused_in_flight;
        self.double_queued += other.double_queued;
        self.double_reclaimed += other.double_reclaimed;
        self.call_rcu_unsafe += other.call_rcu_unsafe;
        self.freed_in_flight += other.freed_in_flight;
        self.freed_unwatched += other.freed_unwatched;
        self.sheaf_by_caller += other.sheaf_by_caller;
    }
}

/// Run parameters, a read-only global in the BPF object that the loader sets
/// before loading (`RUN_CONFIG`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunConfig {
    /// Payload sizes after the header (0..=MAX_PAYLOAD): each allocation
    /// picks one of the first `n_sizes` at random, so several kmalloc caches
    /// are exercised at once.
    pub sizes: [u32; MAX_SIZES],
    pub n_sizes: u32,
    /// `alloc_flags::*`.
    pub alloc_flags: u32,
    /// Rate limit: a trigger allocates on every Nth hit on a CPU (>= 1).
    pub every_nth: u32,
    /// Percentage of objects freed with kfree_nolock() instead.
    pub nolock_share_pct: u32,
    /// Objects held, one more per hit, then freed together on the hit
    /// that completes the burst (1..=MAX_BURST; 1 frees each at once).
    pub burst: u32,
    /// Non-zero (`--observe full`): the independent observers on
    /// `__kfree_rcu_sheaf()` are attached and decide each call's path and
    /// whether a full sheaf's call_rcu() ran inside it. Zero (`--observe
    /// cheap`): the caller marks its call in `observer_state::FREEING_OBJ`
    /// and counts the sheaf path where no fallback was seen, which saves
    /// two trampolines on every call.
    pub full_observe: u32,
    /// CPUs the triggers allocate on (bit n: CPU n); 0 means all.
    pub cpu_mask: u64,
    /// Rate limit: at least this long between two calls of a trigger on a
    /// CPU (0: none); after `every_nth`.
    pub min_interval_ns: u64,
    /// Addresses of the static `rcu_free_sheaf()` and
    /// `rcu_free_sheaf_nobarn()` (the callback of flushed sheaves), from
    /// /proc/kallsyms: the `call_rcu()` observer recognises sheaves by them.
    pub rcu_free_sheaf: u64,
    pub rcu_free_sheaf_nobarn: u64,
    /// Offsets in `struct slab_sheaf`, from the kernel's BTF.
    pub sheaf_rcu_head_off: u32,
    pub sheaf_size_off: u32,
    pub sheaf_objects_off: u32,
    pub sheaf_cache_off: u32,
    /// Offsets in `struct kvfree_rcu_bulk_data`, from the kernel's BTF.
    pub bulk_nr_records_off: u32,
    pub bulk_records_off: u32,
    /// Thread group of the loader: only its system call drains.
    pub loader_tgid: u32,
    /// Non-zero: follow every object to its reclaim (latency, premature
    /// and lost objects). Zero measures the triggers without that cost.
    pub follow: u32,
    /// The first `n_sheaves_lock_fns` of `sheaves_lock_fns` are the text
    /// ([start, end), from /proc/kallsyms) of the functions whose call of
    /// `slab_attach_kprobe_locked()` holds the per-CPU sheaves lock.
    pub n_sheaves_lock_fns: u32,
    pub sheaves_lock_fns: [[u64; 2]; MAX_SHEAVES_LOCK_FNS],
    /// The kernel's text, [_stext, _etext): a return address outside it
    /// was not read right.
    pub kernel_text: [u64; 2],
}

/// Where a `locked_kprobe` hit was, told from the function that called
/// `slab_attach_kprobe_locked()`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockedSite {
    /// `add_partial()`, `remove_partial()`, `add_full()`... with a node's
    /// list_lock held.
    ListLock,
    /// `__pcs_replace_full_main()`, `__pcs_replace_empty_main()`,
    /// `__sheaf_flush_main_batch()`, `__pcs_install_empty_sheaf()` with
    /// this CPU's sheaves lock held.
    SheavesLock,
    /// The return address was not in the kernel's text.
    Unknown,
}

/// The functions that call `slab_attach_kprobe_locked()` with the per-CPU
/// sheaves lock held (mm/slub.c of 7.3). The compiler may add a suffix
/// (`.isra.0`) or inline one into another of them; should it inline one
/// into a function of another name, that function's hits count as list_lock
/// sites, so the loader says which of these it found.
pub const SHEAVES_LOCK_FNS: [&str; 4] = [
    "__pcs_replace_full_main",
    "__pcs_replace_empty_main",
    "__pcs_install_empty_sheaf",
    "__sheaf_flush_main_batch",
];
/// Room for each of them and a split-off part (`.cold`) of each.
pub const MAX_SHEAVES_LOCK_FNS: usize = 2 * SHEAVES_LOCK_FNS.len();

/// `LOAD_MAP`: the BPF hash map whose updates the `map_update` trigger
/// watches, `LOAD_MAP_KEYS_PER_CPU` keys per CPU, all updated on each
/// getsid() of a load thread.
pub const LOAD_MAP_KEYS_PER_CPU: u32 = 64;
pub const LOAD_MAP_ENTRIES: u32 = LOAD_MAP_KEYS_PER_CPU * MAX_HOLD_CPUS;

/// The kfuncs of kernel-patches/ that the BPF programs call: a kernel
/// whose BTF lacks one cannot run the tool.
pub const KFUNCS: [&str; 6] = [
    "bpf_kmalloc_nolock",
    "bpf_kfree_rcu_nolock",
    "bpf_kfree_nolock",
    "bpf_nolock_gp_elapsed",
    "bpf_nolock_barrier",
    "bpf_nolock_bench_loop",
];

/// Payload sizes one run can mix.
pub const MAX_SIZES: usize = 4;
/// Objects a trigger can hold on one CPU before it frees them together:
/// more than an rcu sheaf of any kmalloc cache holds (kmalloc-64: 60), so
/// one burst fills a sheaf.
pub const MAX_BURST: u32 = 128;
/// CPUs a trigger can hold objects on; on a higher CPU it frees at once.
pub const MAX_HOLD_CPUS: u32 = 64;
/// Slots of the `HELD` map (declared in probe-ebpf/src/kfuncs.c, sized by
/// this): one per CPU, trigger and place in a burst.
pub const HELD_SLOTS: u32 = MAX_HOLD_CPUS * MAX_TRIGGERS * MAX_BURST;

/// Slot of the `HELD` map for the `i`th object of trigger `tag`'s burst
/// on `cpu`.
#[inline(always)]
pub const fn held_slot(cpu: u32, tag: u32, i: u32) -> u32 {
    (cpu * MAX_TRIGGERS + tag) * MAX_BURST + i
}

impl RunConfig {
    pub const DEFAULT: RunConfig = RunConfig {
        sizes: [0; MAX_SIZES],
        n_sizes: 1,
        alloc_flags: 0,
        every_nth: 1,
        nolock_share_pct: 0,
        burst: 1,
        full_observe: 1,
        cpu_mask: 0,
        min_interval_ns: 0,
        rcu_free_sheaf: 0,
        rcu_free_sheaf_nobarn: 0,
        sheaf_rcu_head_off: 0,
        sheaf_size_off: 0,
        sheaf_objects_off: 0,
        sheaf_cache_off: 0,
        bulk_nr_records_off: 0,
        bulk_records_off: 0,
        loader_tgid: 0,
        follow: 1,
        n_sheaves_lock_fns: 0,
        sheaves_lock_fns: [[0; 2]; MAX_SHEAVES_LOCK_FNS],
        kernel_text: [0; 2],
    };

    /// Whether the loader has filled in what the observers must know of
    /// the running kernel (the sheaf callbacks' addresses, its text):
    /// without it they read sheaves at offset 0 and count nonsense quietly.
    pub const fn knows_the_kernel(&self) -> bool {
        self.rcu_free_sheaf != 0 && self.rcu_free_sheaf_nobarn != 0 && self.kernel_text[1] != 0
    }
}

/// The ways an object handed to kfree_rcu_nolock() reaches the end of its
/// grace period; the latency histograms and path counters are per path.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Path {
    /// In an rcu sheaf whose `call_rcu()` ran at once, when it filled.
    SheafImmediate = 0,
    /// In an rcu sheaf whose `call_rcu()` was deferred through irq_work.
    SheafDeferred = 1,
    /// In an rcu sheaf handed to RCU by a flush (barrier, CPU offline).
    SheafFlushed = 2,
    /// `defer_kfree_rcu()`, then `kvfree_call_rcu()` from the irq_work.
    Fallback = 3,
}

impl Path {
    pub const COUNT: usize = 4;
    pub const ALL: [Path; Path::COUNT] =
        [Path::SheafImmediate, Path::SheafDeferred, Path::SheafFlushed, Path::Fallback];

    pub const fn name(self) -> &'static str {
        match self {
            Path::SheafImmediate => "sheaf_immediate",
            Path::SheafDeferred => "sheaf_deferred",
            Path::SheafFlushed => "sheaf_flushed",
            Path::Fallback => "fallback",
        }
    }
}

/// Which part of an object's wait a latency sample measures.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// From kfree_rcu_nolock() to the object's reclaim.
    Total = 0,
    /// Sheaf paths: from kfree_rcu_nolock() until the sheaf is handed to
    /// `call_rcu()` (the fill time). Fallback: until the irq_work passes
    /// the object to `kvfree_call_rcu()`.
    Queued = 1,
    /// Sheaf paths: `call_rcu()` to `rcu_free_sheaf()` (the grace period).
    /// Fallback: `kvfree_call_rcu()` to the reclaim.
    Grace = 2,
}

impl Stage {
    pub const COUNT: usize = 3;
    pub const ALL: [Stage; Stage::COUNT] = [Stage::Total, Stage::Queued, Stage::Grace];

    pub const fn name(self) -> &'static str {
        match self {
            Stage::Total => "total",
            Stage::Queued => "queued",
            Stage::Grace => "grace",
        }
    }
}

/// Slot of (path, stage) in `LATENCY`, and of its first bucket in `HIST`
/// (times `hist::BUCKETS`).
pub const fn latency_slot(path: u32, stage: u32) -> u32 {
    path * Stage::COUNT as u32 + stage
}

/// Latency summary of one (path, stage) on one CPU, in ns.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LatencyStats {
    pub count: u64,
    pub sum_ns: u64,
    /// u64::MAX until the first sample (0 in a fresh map is fixed up by
    /// the reader: count 0 means no samples).
    pub min_ns: u64,
    pub max_ns: u64,
}

impl LatencyStats {
    pub fn merge(&mut self, other: &LatencyStats) {
        if other.count == 0 {
            return;
        }
        self.min_ns = if self.count == 0 { other.min_ns } else { self.min_ns.min(other.min_ns) };
        self.max_ns = self.max_ns.max(other.max_ns);
        self.count += other.count;
        self.sum_ns += other.sum_ns;
    }
}

/// Per-path counters (`PATH_COUNTERS`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct PathCounters {
    /// Objects given back after the grace period through this path.
    pub reclaimed: u64,
    /// Of those, given back before their grace period had ended.
    pub premature: u64,
    /// Of the premature ones in a sheaf, those handed to kfree_rcu_nolock()
    /// after the sheaf's call_rcu(): they reached a sheaf already on its
    /// way through RCU.
    pub premature_after_call_rcu: u64,
    /// Rcu sheaves of the triggers' caches handed to `call_rcu()` on this
    /// path (one RCU callback each), counted by the call_rcu() observer,
    /// and every object in them, the triggers' and everyone else's. The
    /// fallback path's kvfree_rcu batches are not counted.
    pub batches: u64,
    pub batch_objects: u64,
    /// Sheaves on this path whose last object, one of the triggers', had
    /// a grace-period cookie, and the smallest and largest normal
    /// `gp_seq` among those cookies (as i64: RCU starts the counter just
    /// below the wrap, so a signed comparison stays in order across it).
    /// Their difference over the counter's step is the grace periods the
    /// run saw.
    pub gp_objects: u64,
    pub gp_min: i64,
    pub gp_max: i64,
}

impl PathCounters {
    /// Adds another CPU's counters.
    pub fn merge(&mut self, o: &PathCounters) {
        if o.gp_objects > 0 {
            self.gp_min = if self.gp_objects == 0 { o.gp_min } else { self.gp_min.min(o.gp_min) };
            self.gp_max = if self.gp_objects == 0 { o.gp_max } else { self.gp_max.max(o.gp_max) };
        }
        self.reclaimed += o.reclaimed;
        self.premature += o.premature;
        self.premature_after_call_rcu += o.premature_after_call_rcu;
        self.batches += o.batches;
        self.batch_objects += o.batch_objects;
        self.gp_objects += o.gp_objects;
    }
}

/// `gp_seq` advances by this much per grace period (RCU_SEQ_CTR_SHIFT 2).
pub const GP_SEQ_STEP: i64 = 4;

/// What the observers know about an object between kfree_rcu_nolock() and
/// its reclaim (`IN_FLIGHT`, keyed by the object's address).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct InFlight {
    /// When the deferred irq_work passed it to `kvfree_call_rcu()`, if it
    /// fell back; 0 otherwise.
    pub requeued_ns: u64,
    pub tag: u32,
    /// Where the kernel queued it (`queue::*` bits), set by the path
    /// observers: a second bit, or the same one twice, is a double free.
    pub queued: u32,
    /// The object's `alloc_ns`: with the address, it names this object and
    /// not whatever the memory holds once the object is gone.
    pub alloc_ns: u64,
    /// The header's `free_ns` and `gp_seq`, copied right after
    /// kfree_rcu_nolock() returned: the memory's next owner overwrites them,
    /// and a premature free by reuse is judged by them.
    pub free_ns: u64,
    pub gp_seq: GpSeq,
}

/// Where the kernel queued an object handed to kfree_rcu_nolock():
/// `InFlight::queued` bits, and the index of `ViolationStats::by` for the
/// violations judged by an object's queue (0: on no path yet).
pub mod queue {
    /// Into an rcu sheaf by the no-spin call.
    pub const SHEAF: u32 = 1;
    /// Onto the deferred lockless list (`defer_kfree_rcu()`).
    pub const FALLBACK: u32 = 2;
    pub const NAMES: [&str; 4] = ["no path", "rcu sheaf", "fallback", "rcu sheaf and fallback"];
}

/// Broken rules of the kfree_rcu_nolock() contract that the observers catch
/// as they happen: slots of the per-CPU `VIOLATIONS` map.
pub mod violation {
    /// kmalloc_nolock() returned an object still in flight (premature free
    /// by reuse). `by`: the object's `queue` bits.
    pub const REUSED: u32 = 0;
    /// An object queued a second time by the no-spin free (double free).
    /// `by`: the object's `queue` bits after the second queueing.
    pub const DOUBLE_QUEUED: u32 = 1;
    /// An object reclaimed a second time (double free). `by`: its `queue`
    /// bits at the first reclaim.
    pub const DOUBLE_RECLAIMED: u32 = 2;
    /// A full rcu sheaf of a no-spin call with interrupts off or in NMI
    /// handed to call_rcu() inside the call. `by`: the call's context
    /// (`ctx::*`).
    pub const CALL_RCU_UNSAFE: u32 = 3;
    /// An object in flight reached the slab allocator's free side before
    /// its grace period ended (premature free). `by`: the entry point
    /// (`free_side::*`).
    pub const FREED_IN_FLIGHT: u32 = 4;
    pub const COUNT: usize = 5;
    pub const NAMES: [&str; COUNT] =
        ["reused_in_flight", "double_queued", "double_reclaimed", "call_rcu_unsafe", "freed_in_flight"];

    /// The contexts of `CALL_RCU_UNSAFE`. The rule is about interrupts
    /// off: say so of the contexts where they are not always off.
    const CALL_CONTEXTS: [&str; super::ctx::COUNT] =
        ["task with interrupts off", "softirq with interrupts off", "hardirq", "nmi"];

    /// What `ViolationStats::by` splits a kind's count by.
    pub const fn by_names(kind: u32) -> &'static [&'static str; 4] {
        match kind {
            CALL_RCU_UNSAFE => &CALL_CONTEXTS,
            FREED_IN_FLIGHT => &super::free_side::NAMES,
            _ => &super::queue::NAMES,
        }
    }
}

/// The slab allocator's free entry points the free-side observers watch
/// for objects in flight: the index of `ViolationStats::by` for
/// `violation::FREED_IN_FLIGHT`. Every slab free passes one of them, the
/// percpu sheaf fast path inside the first three; a sheaf flushed to the
/// slabs, and the slow path of every free, reach `__slab_free()`.
pub mod free_side {
    pub const KFREE: u32 = 0;
    pub const KFREE_NOLOCK: u32 = 1;
    pub const KMEM_CACHE_FREE: u32 = 2;
    /// `kmem_cache_free_bulk()` (kfree_bulk()) or `__slab_free()`.
    pub const BULK_OR_SLAB: u32 = 3;
    pub const NAMES: [&str; 4] =
        ["kfree()", "kfree_nolock()", "kmem_cache_free()", "a bulk free or __slab_free()"];
}

/// The first violation of a kind on a CPU, sent at once through the
/// `ALERTS` ring buffer: the loader streams it before a kernel that goes on
/// to crash on the broken object can take the evidence with it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Alert {
    /// `violation::*`.
    pub kind: u32,
    /// The trigger whose object it was.
    pub tag: u32,
}

/// Bytes of the `ALERTS` ring buffer: room for every kind on many CPUs.
pub const ALERTS_BYTES: u32 = 1 << 14;

/// What one CPU saw of one kind of violation (`VIOLATIONS`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ViolationStats {
    pub count: u64,
    /// Counts split by what the kind names (see [`violation`]).
    pub by: [u64; 4],
    /// Of `count`, those whose grace period (by the object's cookie) had
    /// ended when it was caught.
    pub gp_passed: u64,
    /// Time from kfree_rcu_nolock() to the violation, over `count` (both 0
    /// while `count` is 0).
    pub age_min_ns: u64,
    pub age_max_ns: u64,
}

impl ViolationStats {
    pub fn merge(&mut self, other: &ViolationStats) {
        if other.count == 0 {
            return;
        }
        self.age_min_ns =
            if self.count == 0 { other.age_min_ns } else { self.age_min_ns.min(other.age_min_ns) };
        self.age_max_ns = self.age_max_ns.max(other.age_max_ns);
        self.count += other.count;
        self.gp_passed += other.gp_passed;
        for (a, b) in self.by.iter_mut().zip(other.by.iter()) {
            *a += b;
        }
    }
}

/// Capacity of `RECLAIMED`: the most recently reclaimed objects, by address
/// and `alloc_ns`, against which a second reclaim of one is told.
pub const MAX_RECLAIMED: u32 = 1 << 16;

/// What the observers know about an rcu sheaf between `call_rcu()` and
/// `rcu_free_sheaf()` (`SHEAVES`, keyed by the sheaf's address).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct SheafInFlight {
    pub call_rcu_ns: u64,
    /// `Path` of the sheaf's objects.
    pub path: u32,
    pub _pad: u32,
}

/// Capacity of `IN_FLIGHT`: objects freed and not yet reclaimed.
pub const MAX_IN_FLIGHT: u32 = 1 << 18;
/// Capacity of `SHEAVES`.
pub const MAX_SHEAVES: u32 = 1 << 14;
/// Objects of one sheaf the reclaim observer looks at (the largest
/// kmalloc sheaf capacity is well below).
pub const MAX_SHEAF_OBJECTS: u32 = 256;
/// Records of one kvfree_rcu bulk block the reclaim observer looks at
/// (a block is one page of pointers).
pub const MAX_BULK_RECORDS: u32 = 512;
/// Entries of one kvfree_rcu list the reclaim observer walks.
pub const MAX_LIST_ENTRIES: u32 = 1 << 16;

/// Per-CPU scratch state of the observers (`OBSERVER_STATE` slots).
pub mod observer_state {
    /// Depth of `__kfree_rcu_sheaf()` calls on this CPU.
    pub const IN_KFREE_RCU_SHEAF: u32 = 0;
    /// Depth of `deferred_percpu_work_fn()` on this CPU.
    pub const IN_DEFERRED_WORK: u32 = 1;
    /// Time the tool's programs (observers and triggers) have run on this
    /// CPU, in ns: a timed call leaves out what ran inside it.
    pub const TOOL_NS: u32 = 2;
    /// Depth of the triggers' allocations and frees on this CPU: a trigger
    /// that fires while it is above 0 was set off by the tool's own call.
    pub const IN_TRIGGER_CALL: u32 = 3;
    /// The tool's object that the running `__kfree_rcu_sheaf()` frees, when
    /// the call may not spin and runs with interrupts off or in NMI (0
    /// otherwise): a sheaf it fills must not reach call_rcu() inside it.
    pub const NOSPIN_IRQS_OFF_OBJ: u32 = 4;
    /// The tool's object whose kfree_rcu_nolock() runs innermost on this
    /// CPU (0: none), set and put back by the caller around the call: the
    /// cheap mode's stand-in for the `__kfree_rcu_sheaf()` observers. Read
    /// only while IN_TRIGGER_CALL is above 0, and cleared when it drops to
    /// 0: preempted programs can end out of order and put back a mark
    /// whose call is over.
    pub const FREEING_OBJ: u32 = 5;
    /// The fallen-back object the deferred work hands to kvfree_call_rcu()
    /// now (0: none): a sheaf that its second attempt completes goes to
    /// call_rcu() at once, inside the work but not deferred by it.
    pub const RETRY_OBJ: u32 = 6;
    pub const COUNT: u32 = 7;
}

/// What a trigger's timed call did: the second index of `CALL_STATS`
/// (and of `CALL_HIST`, times `hist::BUCKETS`), the first being the tag.
/// The path of a kfree_rcu_nolock() call is told from the path observers'
/// counts of the trigger on the CPU, read before and after the call.
pub mod call_kind {
    /// bpf_kmalloc_nolock() returned an object.
    pub const ALLOC: u32 = 0;
    /// bpf_kmalloc_nolock() returned NULL.
    pub const ALLOC_FAILED: u32 = 1;
    /// kfree_rcu_nolock() put the object into the rcu sheaf (a sheaf it
    /// filled in a context that may not spin has its call_rcu() deferred,
    /// which happens later, outside the call).
    pub const FREE_SHEAF: u32 = 2;
    /// ... and filled it, and called call_rcu() at once.
    pub const FREE_SHEAF_CALL_RCU: u32 = 3;
    /// ... fell back to defer_kfree_rcu().
    pub const FREE_FALLBACK: u32 = 4;
    /// ... but the path observers did not see it (the kernel skipped them).
    pub const FREE_UNSEEN: u32 = 5;
    /// kfree_nolock() (`--nolock-share`).
    pub const FREE_NOLOCK: u32 = 6;
    pub const COUNT: usize = 7;
    pub const NAMES: [&str; COUNT] = [
        "alloc",
        "alloc_failed",
        "free_sheaf",
        "free_sheaf_call_rcu",
        "free_fallback",
        "free_unseen",
        "free_nolock",
    ];
}

/// Slot of (trigger tag, `call_kind`) in `CALL_STATS`.
pub const fn call_slot(tag: u32, kind: u32) -> u32 {
    tag * call_kind::COUNT as u32 + kind
}

/// The pair loops `nolock-probe bench` times, interleaved: the series'
/// kfree_rcu_nolock() from BPF, against kfree_nolock() (the immediate free
/// the series exposes), BPF's own allocator, and two loops in C that
/// bpf_nolock_bench_loop() (patch 0005) runs from the same program: the
/// same pair without BPF, and kmalloc(GFP_ATOMIC) with kfree_rcu().
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BenchFree {
    KfreeRcuNolock = 0,
    KfreeNolock = 1,
    ObjDrop = 2,
    NativeKfreeRcuNolock = 3,
    NativeKfreeRcu = 4,
}

impl BenchFree {
    pub const COUNT: usize = 5;
    pub const ALL: [BenchFree; BenchFree::COUNT] = [
        BenchFree::KfreeRcuNolock,
        BenchFree::KfreeNolock,
        BenchFree::ObjDrop,
        BenchFree::NativeKfreeRcuNolock,
        BenchFree::NativeKfreeRcu,
    ];
    /// The loop the others are compared with.
    pub const BASELINE: BenchFree = BenchFree::NativeKfreeRcuNolock;

    pub const fn name(self) -> &'static str {
        match self {
            BenchFree::KfreeRcuNolock => "kfree_rcu_nolock",
            BenchFree::KfreeNolock => "kfree_nolock",
            BenchFree::ObjDrop => "bpf_obj_drop",
            BenchFree::NativeKfreeRcuNolock => "native_kfree_rcu_nolock",
            BenchFree::NativeKfreeRcu => "native_kfree_rcu",
        }
    }

    /// What one pair of the loop is.
    pub const fn pair(self) -> &'static str {
        match self {
            BenchFree::KfreeRcuNolock => "BPF: kmalloc_nolock() + kfree_rcu_nolock()",
            BenchFree::KfreeNolock => "BPF: kmalloc_nolock() + kfree_nolock()",
            BenchFree::ObjDrop => "BPF: bpf_obj_new() + bpf_obj_drop()",
            BenchFree::NativeKfreeRcuNolock => "C: kmalloc_nolock() + kfree_rcu_nolock()",
            BenchFree::NativeKfreeRcu => "C: kmalloc(GFP_ATOMIC) + kfree_rcu()",
        }
    }

    /// A loop in C (bpf_nolock_bench_loop()), timed as a whole.
    pub const fn native(self) -> bool {
        matches!(self, BenchFree::NativeKfreeRcuNolock | BenchFree::NativeKfreeRcu)
    }

    /// Whether the payload size applies: bpf_obj_new()'s objects have the
    /// fixed size of a program type (64 bytes, the bare header's).
    pub const fn sized(self) -> bool {
        !matches!(self, BenchFree::ObjDrop)
    }

    pub fn from_name(name: &str) -> Option<BenchFree> {
        BenchFree::ALL.into_iter().find(|f| f.name() == name)
    }
}

/// `enum bpf_nolock_bench_loop` of patch 0005: the loops in C.
pub mod bench_loop {
    /// bpf_kmalloc_nolock() then bpf_kfree_rcu_nolock().
    pub const KFREE_RCU_NOLOCK: u32 = 0;
    /// kmalloc(GFP_ATOMIC) then kfree_rcu().
    pub const KFREE_RCU: u32 = 1;
}

/// Size of the objects bpf_obj_new() allocates in the bench
/// (`struct bench_obj` in probe-ebpf/src/kfuncs.c).
pub const BENCH_OBJ_SIZE: u32 = 64;

/// The bench times each call in one batch of this many (the others count
/// pairs only), so that timing costs the rates little.
pub const BENCH_TIMED_EVERY: u64 = 8;

/// The bench program's state (`BENCH_MODE`): `BENCH_OFF`, or a
/// `BenchFree` value, with `BENCH_MEASURE` set once the warm-up is over.
pub mod bench_mode {
    pub const OFF: u32 = u32::MAX;
    pub const FREE_MASK: u32 = 0xff;
    pub const MEASURE: u32 = 1 << 8;
    /// The samples with run's observers attached: the kfree_rcu_nolock()
    /// loop's pairs go through the triggers' own allocate and release
    /// (`BENCH_TAG`: counted, marked for the cheap mode's observers,
    /// followed in `IN_FLIGHT`, their calls timed), and the calls' times
    /// are filed under `bench_op::OBSERVED_*`, on the bare samples'
    /// schedule, so that both pay the same for the bench's timing.
    pub const OBSERVED: u32 = 1 << 10;
}

/// The counters slot (a trigger's tag) of the bench's observed
/// kfree_rcu_nolock() pairs: no trigger's, so `run` never reads it.
pub const BENCH_TAG: u32 = MAX_TRIGGERS - 1;

/// What one bench sample times (the second index of `bench_slot`).
pub mod bench_op {
    /// The allocation (bpf_kmalloc_nolock() or bpf_obj_new()).
    pub const ALLOC: u32 = 0;
    /// The free call (bpf_kfree_rcu_nolock(), bpf_kfree_nolock() or
    /// bpf_obj_drop()).
    pub const FREE: u32 = 1;
    /// An empty timed call: what timing costs, which every other figure
    /// includes once.
    pub const CLOCK: u32 = 2;
    /// ALLOC and FREE in the samples with the observers attached.
    pub const OBSERVED_ALLOC: u32 = 3;
    pub const OBSERVED_FREE: u32 = 4;
    pub const COUNT: usize = 5;
}

/// Allocations and frees per system call of a bench thread: enough to
/// make the call's own cost small beside them, few enough that the
/// program (which holds off RCU's grace period on its CPU) stays short.
pub const BENCH_BATCH: u32 = 64;

/// Slot of (free, op) in `BENCH_STATS` and `BENCH_FAILS`, and of its first
/// bucket in `BENCH_HIST` (times `hist::BUCKETS`).
pub const fn bench_slot(free: u32, op: u32) -> u32 {
    free * bench_op::COUNT as u32 + op
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: repr(C), only u64/u32 fields and arrays of them, no padding.
    unsafe impl aya::Pod for super::TriggerCounters {}
    // SAFETY: repr(C), u32/u64 fields laid out without padding.
    unsafe impl aya::Pod for super::RunConfig {}
    // SAFETY: repr(C), four u64.
    unsafe impl aya::Pod for super::LatencyStats {}
    // SAFETY: repr(C), two u64.
    unsafe impl aya::Pod for super::PathCounters {}
    // SAFETY: repr(C), u64, two u32, then u64s.
    unsafe impl aya::Pod for super::InFlight {}
    // SAFETY: repr(C), only u64 fields and an array of them.
    unsafe impl aya::Pod for super::ViolationStats {}
    // SAFETY: repr(C), two u32.
    unsafe impl aya::Pod for super::Alert {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_do_not_know_the_kernel() {
        assert!(!RunConfig::DEFAULT.knows_the_kernel());
        let cfg = RunConfig {
            rcu_free_sheaf: 0x1000,
            rcu_free_sheaf_nobarn: 0x2000,
            kernel_text: [0x100, 0x9000],
            ..RunConfig::DEFAULT
        };
        assert!(cfg.knows_the_kernel());
    }
}
