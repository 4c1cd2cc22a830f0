//! The catalogue of the BPF programs that are not triggers: the observers on
//! kfree_rcu_nolock()'s paths and reclaim, and the helpers the loader runs
//! (drain, bench, map driver). One table, read by the loader (what to load
//! and attach on which kernel), the run's checks (whose skipped runs excuse
//! what) and the test that holds the BPF object to it. The triggers have
//! theirs in `trigger.rs`.

/// How a program is hooked to a kernel function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hook {
    Fentry,
    Fexit,
    Kprobe,
}

/// Which kernels an observer is for: the sheaf reclaim observers are
/// hooked where the kernel never skips them, and that differs on
/// PREEMPT_RT (see probe-ebpf/src/reclaim.rs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernels {
    All,
    NotRt,
    Rt,
}

impl Kernels {
    pub const fn includes(self, preempt_rt: bool) -> bool {
        match self {
            Kernels::All => true,
            Kernels::NotRt => !preempt_rt,
            Kernels::Rt => preempt_rt,
        }
    }
}

/// What an observer is for, which says when it is attached and what its
/// skipped runs cost.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Counts the path each object takes, or keeps the per-CPU state that
    /// counting needs: always attached.
    Path,
    /// Tells the path of each call on its own, where the cheap mode takes
    /// the caller's word: only with `--observe full`. Two trampolines on
    /// every kfree_rcu_nolock(), which cost more than the call under TCG.
    Independent,
    /// Follows objects to their reclaim: only when objects are followed
    /// (`--no-follow` leaves them out). A skipped run can leave a whole
    /// sheaf or block unchecked.
    Follow,
    /// Watches the slab allocator's free entry points for objects still in
    /// flight (a premature free, caught as it is freed): only when objects
    /// are followed. A skipped run misses that one free, which the reuse
    /// and leftover checks still catch later.
    FreeSide,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Observer {
    /// The BPF program (its function name in probe-ebpf).
    pub program: &'static str,
    pub hook: Hook,
    /// The kernel function it is hooked to.
    pub function: &'static str,
    pub kernels: Kernels,
    pub role: Role,
    /// It decides which path a kfree_rcu_nolock() took (into the rcu sheaf,
    /// or the fallback): each time the kernel skips it (its recursion
    /// misses), one free may be left without a path.
    pub decides_path: bool,
}

const fn observer(
    program: &'static str,
    hook: Hook,
    function: &'static str,
    kernels: Kernels,
    role: Role,
    decides_path: bool,
) -> Observer {
    Observer { program, hook, function, kernels, role, decides_path }
}

use Hook::*;
use Kernels::*;
use Role::*;

pub const OBSERVERS: [Observer; 18] = [
    observer("kfree_rcu_sheaf_entry", Fentry, "__kfree_rcu_sheaf", All, Independent, false),
    observer("kfree_rcu_sheaf_exit", Fexit, "__kfree_rcu_sheaf", All, Independent, true),
    observer("defer_kfree_rcu", Fentry, "defer_kfree_rcu", All, Path, true),
    observer("deferred_work_entry", Fentry, "deferred_percpu_work_fn", All, Path, false),
    observer("deferred_work_exit", Fexit, "deferred_percpu_work_fn", All, Path, false),
    // Stamps a fallen-back object's requeue, for the wait's split, and
    // names the object whose second attempt may complete a sheaf inside
    // the deferred work (the cheap mode's path of that sheaf). In task
    // context a preempted run makes the next one on that CPU be skipped;
    // kvfree_rcu() users call it all the time.
    observer("kvfree_call_rcu", Fentry, "kvfree_call_rcu", All, Path, false),
    observer("call_rcu", Fentry, "call_rcu", All, Path, false),
    observer("rcu_free_sheaf", Fentry, "rcu_free_sheaf", NotRt, Follow, false),
    observer("rcu_free_sheaf_rt", Kprobe, "rcu_free_sheaf", Rt, Follow, false),
    observer("rcu_free_sheaf_nobarn", Fentry, "rcu_free_sheaf_nobarn", NotRt, Follow, false),
    observer("rcu_free_sheaf_nobarn_rt", Kprobe, "rcu_free_sheaf_nobarn", Rt, Follow, false),
    observer("kvfree_rcu_bulk", Kprobe, "kvfree_rcu_bulk", All, Follow, false),
    observer("kvfree_rcu_list", Kprobe, "kvfree_rcu_list", All, Follow, false),
    // Fentry: where the kernel skips one (a free in an interrupt that hit
    // another), that free is left to the reuse and leftover checks.
    observer("free_side_kfree", Fentry, "kfree", All, FreeSide, false),
    observer("free_side_kfree_nolock", Fentry, "kfree_nolock", All, FreeSide, false),
    observer("free_side_kmem_cache_free", Fentry, "kmem_cache_free", All, FreeSide, false),
    observer("free_side_free_bulk", Fentry, "kmem_cache_free_bulk", All, FreeSide, false),
    observer("free_side_slab_free", Fentry, "__slab_free", All, FreeSide, false),
];

/// The observers for this kind of kernel.
pub fn observers_for(preempt_rt: bool) -> impl Iterator<Item = &'static Observer> {
    OBSERVERS.iter().filter(move |o| o.kernels.includes(preempt_rt))
}

/// Which observers a run or bench loads and attaches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ObserverSet {
    /// Follow objects to their reclaim (the follow and free-side
    /// observers).
    pub follow: bool,
    /// `--observe full`: the independent path observers too.
    pub full: bool,
}

impl ObserverSet {
    /// The observers of this set for this kind of kernel.
    pub fn observers(self, preempt_rt: bool) -> impl Iterator<Item = &'static Observer> {
        observers_for(preempt_rt).filter(move |o| match o.role {
            Role::Path => true,
            Role::Independent => self.full,
            Role::Follow | Role::FreeSide => self.follow,
        })
    }
}

/// The programs of the observers with `role` (of any kernel).
pub fn observer_programs(role: Role) -> impl Iterator<Item = &'static str> {
    OBSERVERS.iter().filter(move |o| o.role == role).map(|o| o.program)
}

/// The programs whose skipped runs may leave a free without a path.
pub fn path_deciders() -> impl Iterator<Item = &'static str> {
    OBSERVERS.iter().filter(|o| o.decides_path).map(|o| o.program)
}

/// A program the loader runs itself, by a system call of its own threads
/// that the program is hooked to with fentry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Helper {
    pub program: &'static str,
    pub function: &'static str,
}

/// Sleepable: kvfree_rcu_barrier() when the loader calls getpgid(), after
/// the triggers are detached, and frees what unfinished bursts hold.
pub const DRAIN: Helper = Helper { program: "drain", function: "__x64_sys_getpgid" };
/// Updates the map_update trigger's map when the load threads call
/// getsid().
pub const MAP_DRIVER: Helper = Helper { program: "map_update_driver", function: "__x64_sys_getsid" };
/// `nolock-probe bench`'s loop, run by the bench threads' getpriority(). A
/// system call with arguments: the wrappers of those without (getppid())
/// are aliases that BTF does not name, so fentry cannot attach to them.
pub const BENCH: Helper = Helper { program: "bench", function: "__x64_sys_getpriority" };

pub const HELPERS: [Helper; 3] = [DRAIN, MAP_DRIVER, BENCH];

#[cfg(test)]
mod tests {
    use super::*;

    /// The programs whose misses excuse a free without a path are path
    /// observers that every kernel gets.
    #[test]
    fn the_path_deciders_are_hooked_on_every_kernel() {
        let deciders: [&str; 2] = ["kfree_rcu_sheaf_exit", "defer_kfree_rcu"];
        assert!(path_deciders().eq(deciders));
        for o in OBSERVERS.iter().filter(|o| o.decides_path) {
            assert!(
                matches!(o.role, Role::Path | Role::Independent) && o.kernels == Kernels::All,
                "{}",
                o.program
            );
        }
    }

    /// On either kind of kernel every observed function is hooked, the
    /// reclaim ones exactly once (twice would count nothing twice, but
    /// would hide which hook the kernel skipped).
    #[test]
    fn each_kernel_gets_one_hook_per_reclaim_function() {
        for rt in [false, true] {
            for o in &OBSERVERS {
                assert!(
                    observers_for(rt).any(|h| h.function == o.function),
                    "{} unhooked (rt {rt})",
                    o.function
                );
            }
            for func in ["rcu_free_sheaf", "rcu_free_sheaf_nobarn", "kvfree_rcu_bulk", "kvfree_rcu_list"] {
                let mut on = observers_for(rt).filter(|h| h.function == func);
                let first = on.next().unwrap_or_else(|| panic!("{func} unhooked (rt {rt})"));
                assert!(on.next().is_none(), "{func} hooked twice (rt {rt})");
                assert!(first.role == Role::Follow, "{} does not follow objects", first.program);
            }
        }
        let rt_sheaf = observers_for(true).find(|o| o.function == "rcu_free_sheaf").map(|o| o.hook);
        assert!(rt_sheaf == Some(Hook::Kprobe));
        assert_eq!(observer_programs(Role::Follow).count(), 6);
    }

    #[test]
    fn program_names_are_unique() {
        let names = || {
            OBSERVERS
                .iter()
                .map(|o| o.program)
                .chain(HELPERS.iter().map(|h| h.program))
                .chain(crate::Trigger::ALL.iter().map(|t| t.program()))
        };
        for (i, a) in names().enumerate() {
            assert_eq!(names().skip(i + 1).filter(|b| *b == a).count(), 0, "{a} named twice");
        }
    }
}
