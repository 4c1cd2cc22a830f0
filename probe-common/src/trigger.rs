//! The trigger programs: what each is attached to and the context it is
//! meant to run in. One table, read by the BPF side (the tag), the loader
//! (how to attach), `nolock-probe list` and the report (intended context).

/// The discriminant is the object's tag and the index of the trigger's slot
/// in the `COUNTERS` map.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Trigger {
    LockedKprobe = 0,
    PerfEvent = 1,
    FentryDeferredWork = 2,
    Syscall = 3,
    Softirq = 4,
    Hrtimer = 5,
    Nmi = 6,
    FentrySlabFree = 7,
    FentryKfreeRcuSheaf = 8,
    FentryDeferKfreeRcu = 9,
    FentryRcuFreeSheaf = 10,
    FentryBarnGetEmptySheaf = 11,
    LockContention = 12,
    MapUpdate = 13,
}

/// A trigger's row of the table.
struct Info {
    name: &'static str,
    program: &'static str,
    attach: Attach,
    intended: Intended,
    description: &'static str,
    /// What provides the attach point, for the "unsupported" reason.
    needs: &'static str,
}

/// How a trigger's program is attached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attach {
    Kprobe(&'static str),
    Fentry(&'static str),
    /// A BTF-enabled raw tracepoint (tp_btf).
    TpBtf(&'static str),
    /// A perf event on every CPU of the run.
    PerfEvent,
}

/// The context a trigger is meant to run in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Intended {
    Task,
    Softirq,
    Hardirq,
    Nmi,
    /// NMI with a hardware PMU, hardirq with the software cpu-clock.
    NmiOrHardirq,
    /// Wherever the hooked function runs (slab internals, lock holders).
    Any,
}

impl Intended {
    pub const fn name(self) -> &'static str {
        match self {
            Intended::Task => "task",
            Intended::Softirq => "softirq",
            Intended::Hardirq => "hardirq",
            Intended::Nmi => "nmi",
            Intended::NmiOrHardirq => "nmi_or_hardirq",
            Intended::Any => "any",
        }
    }

    pub const ALL: [Intended; 6] = [
        Intended::Task,
        Intended::Softirq,
        Intended::Hardirq,
        Intended::Nmi,
        Intended::NmiOrHardirq,
        Intended::Any,
    ];

    pub fn from_name(name: &str) -> Option<Intended> {
        Intended::ALL.iter().copied().find(|i| i.name() == name)
    }
}

impl Trigger {
    pub const ALL: [Trigger; 14] = [
        Trigger::LockedKprobe,
        Trigger::PerfEvent,
        Trigger::FentryDeferredWork,
        Trigger::Syscall,
        Trigger::Softirq,
        Trigger::Hrtimer,
        Trigger::Nmi,
        Trigger::FentrySlabFree,
        Trigger::FentryKfreeRcuSheaf,
        Trigger::FentryDeferKfreeRcu,
        Trigger::FentryRcuFreeSheaf,
        Trigger::FentryBarnGetEmptySheaf,
        Trigger::LockContention,
        Trigger::MapUpdate,
    ];

    const fn info(self) -> Info {
        use Attach::*;
        use Intended::*;
        let (name, program, attach, intended, description, needs) = match self {
            Trigger::LockedKprobe => (
                "locked_kprobe",
                "trigger_locked_kprobe",
                Kprobe("slab_attach_kprobe_locked"),
                Any,
                "a node list_lock or the per-CPU sheaves lock held",
                "CONFIG_DEBUG_VM or CONFIG_PROVE_LOCKING",
            ),
            Trigger::PerfEvent => (
                "perf_event",
                "trigger_perf_event",
                PerfEvent,
                NmiOrHardirq,
                "a perf event overflow: NMI on a PMU, hrtimer otherwise",
                "CONFIG_PERF_EVENTS",
            ),
            Trigger::FentryDeferredWork => (
                "fentry_deferred_work",
                "trigger_fentry_deferred_work",
                Fentry("deferred_percpu_work_fn"),
                Any,
                "inside kfree_rcu_nolock()'s own deferred irq_work",
                "Linux 7.3's mm/slub.c",
            ),
            Trigger::Syscall => (
                "syscall",
                "trigger_syscall",
                TpBtf("sys_enter"),
                Task,
                "system call entry",
                "CONFIG_FTRACE_SYSCALLS",
            ),
            Trigger::Softirq => (
                "softirq",
                "trigger_softirq",
                TpBtf("softirq_entry"),
                Softirq,
                "softirq handler entry",
                "CONFIG_TRACING",
            ),
            Trigger::Hrtimer => (
                "hrtimer",
                "trigger_hrtimer",
                TpBtf("hrtimer_expire_entry"),
                Hardirq,
                "hrtimer expiry (the tick) in hardirq",
                "CONFIG_TRACING",
            ),
            Trigger::Nmi => (
                "nmi",
                "trigger_nmi",
                TpBtf("nmi_handler"),
                Nmi,
                "x86 NMI handlers (NMI backtrace IPIs from sysrq-l where no PMU)",
                "CONFIG_TRACING on x86",
            ),
            Trigger::FentrySlabFree => (
                "fentry_slab_free",
                "trigger_fentry_slab_free",
                Fentry("__slab_free"),
                Any,
                "re-entry: the slab free slow path",
                "Linux 7.3's mm/slub.c",
            ),
            Trigger::FentryKfreeRcuSheaf => (
                "fentry_kfree_rcu_sheaf",
                "trigger_fentry_kfree_rcu_sheaf",
                Fentry("__kfree_rcu_sheaf"),
                Any,
                "re-entry: kfree_rcu_nolock()'s sheaf attempt itself",
                "Linux 7.3's mm/slub.c",
            ),
            Trigger::FentryDeferKfreeRcu => (
                "fentry_defer_kfree_rcu",
                "trigger_fentry_defer_kfree_rcu",
                Fentry("defer_kfree_rcu"),
                Any,
                "re-entry: kfree_rcu_nolock()'s fallback",
                "Linux 7.3's mm/slub.c",
            ),
            Trigger::FentryRcuFreeSheaf => (
                "fentry_rcu_free_sheaf",
                "trigger_fentry_rcu_free_sheaf",
                Fentry("rcu_free_sheaf"),
                Any,
                "re-entry: an rcu sheaf's RCU callback",
                "Linux 7.3's mm/slub.c",
            ),
            Trigger::FentryBarnGetEmptySheaf => (
                "fentry_barn_get_empty_sheaf",
                "trigger_fentry_barn_get_empty_sheaf",
                Fentry("barn_get_empty_sheaf"),
                Any,
                "re-entry: taking an empty sheaf from the barn",
                "Linux 7.3's mm/slub.c",
            ),
            // Where lock-contention tools (`perf lock contention -b`) run
            // their BPF programs: a lock is taken and another one is about
            // to be spun or slept on.
            Trigger::LockContention => (
                "lock_contention",
                "trigger_lock_contention",
                TpBtf("contention_begin"),
                Any,
                "a contended lock, just before its waiter spins or sleeps",
                "CONFIG_TRACING",
            ),
            // Inside a BPF hash map update, where BPF's own allocator
            // refills: alloc_htab_elem() runs with the bucket's raw spinlock
            // held and interrupts off. Only updates of the tool's own map
            // count (LOAD_MAP, which a program updates on each getsid()
            // of the load threads).
            Trigger::MapUpdate => (
                "map_update",
                "trigger_map_update",
                Fentry("alloc_htab_elem"),
                Task,
                "a BPF hash map update: a bucket's raw spinlock held, interrupts off",
                "CONFIG_BPF_SYSCALL",
            ),
        };
        Info { name, program, attach, intended, description, needs }
    }

    /// Stable name used in the JSON, scenarios and on the command line.
    pub const fn name(self) -> &'static str {
        self.info().name
    }

    /// The BPF program (its function name in probe-ebpf).
    pub const fn program(self) -> &'static str {
        self.info().program
    }

    pub const fn attach(self) -> Attach {
        self.info().attach
    }

    pub const fn intended(self) -> Intended {
        self.info().intended
    }

    pub const fn description(self) -> &'static str {
        self.info().description
    }

    /// The kernel option or source that provides the attach point.
    pub const fn needs(self) -> &'static str {
        self.info().needs
    }

    pub fn from_name(name: &str) -> Option<Trigger> {
        Trigger::ALL.iter().copied().find(|t| t.name() == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_names_and_programs_are_unique() {
        for (i, a) in Trigger::ALL.iter().enumerate() {
            assert_eq!(*a as usize, i, "ALL is in tag order");
            assert!((*a as u32) < crate::MAX_TRIGGERS);
            assert_ne!(*a as u32, crate::BENCH_TAG, "the bench's counters slot is no trigger's");
            assert_eq!(Trigger::from_name(a.name()), Some(*a));
            for b in &Trigger::ALL[i + 1..] {
                assert_ne!(a.name(), b.name());
                assert_ne!(a.program(), b.program());
            }
        }
    }
}
