//! What in a kernel log (a guest's console, /dev/kmsg) means the kernel is
//! in trouble. Shared by nolock-probe, which scans the kernel log of the
//! machine it runs on, and xtask, which scans the whole guest console.

/// Finding categories, most specific first: the first match names a line.
const PATTERNS: [(&str, &[&str]); 13] = [
    ("panic", &["Kernel panic"]),
    (
        "lockdep",
        &[
            "possible circular locking dependency",
            "lock order detected",
            "possible irq lock inversion",
            "inconsistent lock state",
            "possible recursive locking",
            // lockdep's wait-type check prints "[ BUG: Invalid wait context ]".
            "Invalid wait context",
            "held lock freed",
            "suspicious RCU usage",
            "DEBUG_LOCKS_WARN_ON",
            "lock held when returning to user space",
            "bad unlock balance",
        ],
    ),
    ("kasan", &["BUG: KASAN"]),
    ("kcsan", &["BUG: KCSAN"]),
    ("ubsan", &["UBSAN:"]),
    ("soft_lockup", &["soft lockup"]),
    ("hard_lockup", &["hard LOCKUP"]),
    (
        "rcu_stall",
        &[
            "rcu_preempt detected stall",
            "rcu_sched detected stall",
            "self-detected stall",
            "rcu: INFO:",
            "detected stalls on CPUs",
        ],
    ),
    ("hung_task", &["blocked for more than"]),
    ("oops", &["Oops:", "general protection fault", "Unable to handle kernel", "BUG: unable to handle"]),
    ("bug", &["BUG:", "kernel BUG at"]),
    ("warn", &["WARNING:", "------------[ cut here ]"]),
    ("slab", &["Slab corruption", "Redzone", "Poison overwritten", "Freepointer corrupt"]),
];

/// The category of trouble a console line reports, if any.
pub fn classify(line: &str) -> Option<&'static str> {
    let text = strip_timestamp(line);
    PATTERNS.iter().find(|(_, needles)| needles.iter().any(|n| text.contains(n))).map(|(name, _)| *name)
}

/// `[   12.345678] text` -> `text`.
pub fn strip_timestamp(line: &str) -> &str {
    let t = line.trim_start();
    if t.starts_with('[') {
        if let Some(end) = t.find(']') {
            return t[end + 1..].trim_start();
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_report_lines_are_classified() {
        for (line, want) in [
            ("[   10.1] Kernel panic - not syncing: Fatal exception", "panic"),
            ("[    3.2] WARNING: possible circular locking dependency detected", "lockdep"),
            ("[    3.2] WARNING: inconsistent lock state", "lockdep"),
            ("[    9.0] WARNING: SOFTIRQ-safe -> SOFTIRQ-unsafe lock order detected", "lockdep"),
            ("[    3.2] WARNING: CPU: 1 PID: 80 at mm/slub.c:6123 __kfree_rcu_sheaf+0x1/0x2", "warn"),
            ("[   30.0] rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:", "rcu_stall"),
            ("[   40.0] watchdog: BUG: soft lockup - CPU#0 stuck for 22s! [x:1]", "soft_lockup"),
            ("[    5.0] BUG: KASAN: slab-use-after-free in foo+0x1/0x2", "kasan"),
            ("[    5.0] Oops: general protection fault, probably for non-canonical address", "oops"),
            ("[   24.0] [ BUG: Invalid wait context ]", "lockdep"),
            ("[    5.0] BUG: sleeping function called from invalid context at mm/slub.c:1", "bug"),
            ("[  120.0] INFO: task kworker/0:1:12 blocked for more than 120 seconds.", "hung_task"),
        ] {
            assert_eq!(classify(line), Some(want), "{line}");
        }
    }

    #[test]
    fn ordinary_lines_are_not_findings() {
        for line in [
            "[    0.0] Linux version 7.3.4 (root@host) #1 SMP PREEMPT",
            "[    1.0] clocksource: Switched to clocksource tsc",
            "nolock-probe: 3 triggers attached on 2 CPUs for 20s",
            "[    0.5] smpboot: Allowing 2 CPUs, 0 hotplug CPUs",
        ] {
            assert_eq!(classify(line), None, "{line}");
        }
    }
}
