//! The invariants a run can judge while it still runs, from the counters
//! alone: each is a promise the kernel broke the moment a counter moves,
//! whatever happens later. `run --stream` latches the first that fails, so
//! a run the kernel cuts short still says what the tool had seen.

use std::collections::BTreeMap;

use probe_common::{Trigger, TriggerCounters};

/// One live invariant: the verdict class it names, what a counted object
/// means, and the counter.
struct Invariant {
    class: &'static str,
    what: &'static str,
    count: fn(&TriggerCounters) -> u64,
}

/// Cause before consequence: the first that fails is the one reported. An
/// object queued twice is caught at its queueing, before its two reclaims
/// can hand its memory out twice (reuse) or free it under a new owner
/// (premature), so the double free comes first.
const INVARIANTS: [Invariant; 6] = [
    Invariant {
        class: "double free",
        what: "kfree_rcu_nolock() calls the kernel queued on a second path",
        count: |c| c.double_queued,
    },
    Invariant {
        class: "premature free",
        what: "objects given back before their grace period ended",
        count: |c| c.premature,
    },
    Invariant {
        class: "premature free",
        what: "objects that reached the slab allocator's free side while they waited for their grace period",
        count: |c| c.freed_in_flight,
    },
    Invariant {
        class: "premature free by reuse",
        what: "objects kmalloc_nolock() handed out again while they waited for their grace period",
        count: |c| c.reused_in_flight,
    },
    Invariant {
        class: "double free",
        what: "objects reclaimed a second time",
        count: |c| c.double_reclaimed,
    },
    Invariant {
        class: "context violation",
        what: "full rcu sheaves a no-spin call with interrupts off or in NMI handed to call_rcu() itself, \
               not through the deferred irq_work",
        count: |c| c.call_rcu_unsafe,
    },
];

/// The first live invariant that `triggers` (each trigger's counters so
/// far) break, as one sentence naming the class, the count and the
/// triggers that counted it; None while all hold.
pub fn live(triggers: &BTreeMap<Trigger, TriggerCounters>) -> Option<String> {
    INVARIANTS.iter().find_map(|inv| {
        let by_trigger: Vec<(Trigger, u64)> =
            triggers.iter().map(|(t, c)| (*t, (inv.count)(c))).filter(|&(_, n)| n > 0).collect();
        if by_trigger.is_empty() {
            return None;
        }
        let total: u64 = by_trigger.iter().map(|(_, n)| n).sum();
        let names: Vec<String> = by_trigger.iter().map(|(t, n)| format!("{} {n}", t.name())).collect();
        Some(format!("{}: {total} {} ({})", inv.class, inv.what, names.join(", ")))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::counters;

    fn with(set: fn(&mut TriggerCounters)) -> BTreeMap<Trigger, TriggerCounters> {
        let mut bad = counters(10, 10, 0);
        set(&mut bad);
        [(Trigger::Syscall, counters(10, 10, 0)), (Trigger::Hrtimer, bad)].into()
    }

    #[test]
    fn healthy_counters_pass() {
        assert_eq!(live(&with(|_| {})), None);
        assert_eq!(live(&BTreeMap::new()), None);
    }

    #[test]
    fn each_invariant_fails_with_its_class_count_and_trigger() {
        assert_eq!(
            live(&with(|c| c.premature = 3)).as_deref(),
            Some("premature free: 3 objects given back before their grace period ended (hrtimer 3)")
        );
        assert_eq!(
            live(&with(|c| c.freed_in_flight = 5)).as_deref(),
            Some(
                "premature free: 5 objects that reached the slab allocator's free side while they waited for \
                 their grace period (hrtimer 5)"
            )
        );
        assert_eq!(
            live(&with(|c| c.reused_in_flight = 1)).as_deref(),
            Some(
                "premature free by reuse: 1 objects kmalloc_nolock() handed out again while they waited for \
                 their grace period (hrtimer 1)"
            )
        );
        assert_eq!(
            live(&with(|c| c.double_queued = 2)).as_deref(),
            Some("double free: 2 kfree_rcu_nolock() calls the kernel queued on a second path (hrtimer 2)")
        );
        assert_eq!(
            live(&with(|c| c.double_reclaimed = 1)).as_deref(),
            Some("double free: 1 objects reclaimed a second time (hrtimer 1)")
        );
        let v = live(&with(|c| c.call_rcu_unsafe = 4)).unwrap();
        assert!(v.starts_with("context violation: 4 full rcu sheaves") && v.ends_with("(hrtimer 4)"), "{v}");
    }

    #[test]
    fn counts_add_up_over_triggers_and_the_first_class_wins() {
        let mut t = with(|c| {
            c.premature = 2;
            c.call_rcu_unsafe = 1;
        });
        t.get_mut(&Trigger::Syscall).unwrap().premature = 1;
        assert_eq!(
            live(&t).as_deref(),
            Some(
                "premature free: 3 objects given back before their grace period ended (syscall 1, hrtimer 2)"
            )
        );
    }
}
