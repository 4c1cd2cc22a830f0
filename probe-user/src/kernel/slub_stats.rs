//! The kernel's own counters (CONFIG_SLUB_STATS) for the cache the
//! triggers allocate from, beside the tool's counts.

use std::fs;

use probe_result::kernel::CrossCheck;

/// kmalloc size classes, as in mm/slab_common.c's kmalloc_info.
const KMALLOC_SIZES: [u32; 13] = [8, 16, 32, 64, 96, 128, 192, 256, 512, 1024, 2048, 4096, 8192];

/// The size of the kmalloc slab object `size` bytes take.
pub fn object_size(size: u32) -> u32 {
    KMALLOC_SIZES.iter().copied().find(|&c| c >= size).unwrap_or(size)
}

/// The kmalloc cache an object of `size` bytes comes from.
pub fn cache_for(size: u32, account: bool) -> String {
    let class = object_size(size);
    if account { format!("kmalloc-cg-{class}") } else { format!("kmalloc-{class}") }
}

/// The caches objects of `size` bytes can come from: kmalloc_nolock()
/// retries from the next larger bucket when the first one's sheaves are
/// locked.
pub fn caches_for(size: u32, account: bool) -> Vec<String> {
    let first = KMALLOC_SIZES.iter().copied().find(|&c| c >= size).unwrap_or(size);
    let mut out = vec![cache_for(size, account)];
    if first < *KMALLOC_SIZES.last().unwrap_or(&first) {
        out.push(cache_for(first + 1, account));
    }
    out
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub free_rcu_sheaf: u64,
    pub free_rcu_sheaf_fail: u64,
}

/// `total C0=n C1=n` -> total.
fn total(text: &str) -> Option<u64> {
    text.split_whitespace().next()?.parse().ok()
}

/// The counters of `caches`, summed; None if any cannot be read.
pub fn read(caches: &[String]) -> Option<Snapshot> {
    let [free_rcu_sheaf, free_rcu_sheaf_fail] = counters(caches, ["free_rcu_sheaf", "free_rcu_sheaf_fail"])?;
    Some(Snapshot { free_rcu_sheaf, free_rcu_sheaf_fail })
}

/// The statistics `names` (files of /sys/kernel/slab/<cache>/), each summed
/// over `caches`; None if any cannot be read.
pub fn counters<const N: usize>(caches: &[String], names: [&str; N]) -> Option<[u64; N]> {
    let mut sum = [0; N];
    for cache in caches {
        for (s, name) in sum.iter_mut().zip(names) {
            *s += fs::read_to_string(format!("/sys/kernel/slab/{cache}/{name}"))
                .ok()
                .as_deref()
                .and_then(total)?;
        }
    }
    Some(sum)
}

/// The kernel's rcu-sheaf counts against the tool's: `tool_ok` objects
/// into a sheaf and `tool_fail` failures, first and second attempts; with
/// `--observe cheap` only the first attempts that went in are told, less
/// the fallbacks whose observer the kernel skipped (`tool_fail` None), and
/// the rest is left with the other users'.
pub fn cross_check(
    cache: &str,
    before: Option<Snapshot>,
    after: Option<Snapshot>,
    tool_ok: u64,
    tool_fail: Option<u64>,
) -> CrossCheck {
    let told = tool_fail.is_some();
    let tool_fail = tool_fail.unwrap_or(0);
    let (Some(b), Some(a)) = (before, after) else {
        return CrossCheck {
            cache: cache.into(),
            available: false,
            kernel_free_rcu_sheaf: 0,
            kernel_free_rcu_sheaf_fail: 0,
            tool_free_rcu_sheaf: tool_ok,
            tool_free_rcu_sheaf_fail: tool_fail,
            others_free_rcu_sheaf: 0,
            others_free_rcu_sheaf_fail: 0,
            explanation: format!(
                "/sys/kernel/slab/{cache}/free_rcu_sheaf is not there: the kernel has no CONFIG_SLUB_STATS"
            ),
        };
    };
    let k_ok = a.free_rcu_sheaf.saturating_sub(b.free_rcu_sheaf);
    let k_fail = a.free_rcu_sheaf_fail.saturating_sub(b.free_rcu_sheaf_fail);
    let others_ok = k_ok as i64 - tool_ok as i64;
    let others_fail = k_fail as i64 - tool_fail as i64;
    let explanation = if others_ok < 0 || others_fail < 0 {
        format!(
            "the tool counted more rcu-sheaf frees in {cache} than the kernel did ({tool_ok}/{tool_fail} against \
             {k_ok}/{k_fail}): its observers double-count or the kernel's statistics lose updates"
        )
    } else if told {
        format!(
            "the kernel counted {k_ok} rcu-sheaf frees and {k_fail} failures in {cache}; {tool_ok} and {tool_fail} were \
             the tool's objects (first and second attempts); the other {others_ok} and {others_fail} came from other \
             kfree_rcu() users of the same caches while the tool ran"
        )
    } else {
        format!(
            "the kernel counted {k_ok} rcu-sheaf frees and {k_fail} failures in {cache}; at least {tool_ok} were \
             the tool's objects going in at the first attempt; the other {others_ok} and {others_fail} came from \
             the tool's failures and second attempts (--observe cheap does not tell them, nor the fallbacks whose \
             observer the kernel skipped; full does) and from other kfree_rcu() users of the same caches while \
             the tool ran"
        )
    };
    CrossCheck {
        cache: cache.into(),
        available: true,
        kernel_free_rcu_sheaf: k_ok,
        kernel_free_rcu_sheaf_fail: k_fail,
        tool_free_rcu_sheaf: tool_ok,
        tool_free_rcu_sheaf_fail: tool_fail,
        others_free_rcu_sheaf: others_ok,
        others_free_rcu_sheaf_fail: others_fail,
        explanation,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_bucket_is_followed_too() {
        assert_eq!(caches_for(64, false), ["kmalloc-64", "kmalloc-96"]);
        assert_eq!(caches_for(4160, true), ["kmalloc-cg-8192"]);
    }

    #[test]
    fn objects_land_in_the_right_cache() {
        assert_eq!(cache_for(64, false), "kmalloc-64");
        assert_eq!(cache_for(65, false), "kmalloc-96");
        assert_eq!(cache_for(64 + 4096, true), "kmalloc-cg-8192");
    }

    #[test]
    fn the_difference_is_explained() {
        let b = Snapshot { free_rcu_sheaf: 100, free_rcu_sheaf_fail: 10 };
        let a = Snapshot { free_rcu_sheaf: 1100, free_rcu_sheaf_fail: 60 };
        let c = cross_check("kmalloc-64", Some(b), Some(a), 900, Some(50));
        assert_eq!((c.others_free_rcu_sheaf, c.others_free_rcu_sheaf_fail), (100, 0));
        assert!(
            c.explanation.contains("other 100 and 0 came from other kfree_rcu() users"),
            "{}",
            c.explanation
        );
        let c = cross_check("kmalloc-64", Some(b), Some(a), 1200, Some(50));
        assert!(c.explanation.contains("more rcu-sheaf frees"), "{}", c.explanation);
        assert!(!cross_check("kmalloc-64", None, Some(a), 1, Some(1)).available);
        let c = cross_check("kmalloc-64", Some(b), Some(a), 900, None);
        assert_eq!((c.others_free_rcu_sheaf, c.others_free_rcu_sheaf_fail), (100, 50));
        assert!(c.explanation.contains("--observe cheap does not tell them"), "{}", c.explanation);
        assert_eq!(total("12345 C0=12000 C1=345"), Some(12345));
    }
}
