//! The log-linear latency histogram both sides use: 8 buckets per power of
//! two, so no bucket is wider than 12.5% of its lower bound, from 64 ns up
//! to 2^37 ns (137 s), with one bucket below and one above.
//!
//! The BPF side computes bucket indices with shifts and compares only: the
//! BPF target has no count-leading-zeros instruction.

/// Sub-buckets per power of two, as a power of two.
pub const SUB_BITS: u32 = 3;
pub const SUB: u32 = 1 << SUB_BITS;
/// The lowest power of two resolved (64 ns).
pub const MIN_POW: u32 = 6;
/// Values at or above 2^MAX_POW ns land in the overflow bucket.
pub const MAX_POW: u32 = 37;
/// Bucket 0: below 2^MIN_POW. Last bucket: at or above 2^MAX_POW.
pub const BUCKETS: u32 = (MAX_POW - MIN_POW) * SUB + 2;

/// Index of the highest set bit of a non-zero value.
#[inline(always)]
pub fn msb(mut v: u64) -> u32 {
    let mut r = 0;
    if v >= 1 << 32 {
        v >>= 32;
        r += 32;
    }
    if v >= 1 << 16 {
        v >>= 16;
        r += 16;
    }
    if v >= 1 << 8 {
        v >>= 8;
        r += 8;
    }
    if v >= 1 << 4 {
        v >>= 4;
        r += 4;
    }
    if v >= 1 << 2 {
        v >>= 2;
        r += 2;
    }
    if v >= 1 << 1 {
        r += 1;
    }
    r
}

/// The bucket of `ns`.
#[inline(always)]
pub fn bucket(ns: u64) -> u32 {
    if ns < 1 << MIN_POW {
        return 0;
    }
    if ns >= 1 << MAX_POW {
        return BUCKETS - 1;
    }
    let p = msb(ns);
    let sub = ((ns >> (p - SUB_BITS)) as u32) & (SUB - 1);
    1 + (p - MIN_POW) * SUB + sub
}

/// `[low, high)` of bucket `b` in ns; the overflow bucket ends at u64::MAX.
pub fn bounds(b: u32) -> (u64, u64) {
    if b == 0 {
        return (0, 1 << MIN_POW);
    }
    if b >= BUCKETS - 1 {
        return (1 << MAX_POW, u64::MAX);
    }
    let i = b - 1;
    let p = MIN_POW + i / SUB;
    let sub = (i % SUB) as u64;
    let base = 1u64 << p;
    let step = base >> SUB_BITS;
    (base + sub * step, base + (sub + 1) * step)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn msb_matches_leading_zeros() {
        for v in [1u64, 2, 3, 63, 64, 65, 1 << 20, (1 << 33) + 5, u64::MAX] {
            assert_eq!(msb(v), 63 - v.leading_zeros(), "{v}");
        }
    }

    #[test]
    fn buckets_cover_100ns_to_100s_no_wider_than_an_eighth() {
        for b in 1..BUCKETS - 1 {
            let (lo, hi) = bounds(b);
            assert!((hi - lo) * 8 <= lo, "bucket {b} [{lo}, {hi}) is wider than 12.5%");
            assert_eq!(bucket(lo), b);
            assert_eq!(bucket(hi - 1), b);
            assert_eq!(bounds(b + 1).0.min(1 << MAX_POW), hi.min(1 << MAX_POW));
        }
        assert!(bounds(1).0 <= 100, "100 ns is resolved");
        assert!(bounds(BUCKETS - 2).1 >= 100_000_000_000, "100 s is resolved");
        assert_eq!(bucket(0), 0);
        assert_eq!(bucket(u64::MAX), BUCKETS - 1);
    }
}
