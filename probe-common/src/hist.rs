//! The log-linear latency histogram both sides use: 8 buckets per power of
//! two, so no bucket is wider than 12.5% of its lower bound, from 64 ns up
//! to 2^37 ns (137 s), with one bucket below and one above.
//!
//! The BPF side computes bucket indices with shifts, masks and a multiply:
//! the BPF target has no count-leading-zeros instruction.

/// Sub-buckets per power of two, as a power of two.
pub const SUB_BITS: u32 = 3;
pub const SUB: u32 = 1 << SUB_BITS;
/// The lowest power of two resolved (64 ns).
pub const MIN_POW: u32 = 6;
/// Values at or above 2^MAX_POW ns land in the overflow bucket.
pub const MAX_POW: u32 = 37;
/// Bucket 0: below 2^MIN_POW. Last bucket: at or above 2^MAX_POW.
pub const BUCKETS: u32 = (MAX_POW - MIN_POW) * SUB + 2;

/// Index of the highest set bit of a non-zero value, without a branch:
/// smear the bit down, then count the ones. With a branch per halving
/// (the obvious way), each of the 64 outcomes was a state of its own for
/// the verifier, at every histogram sample of a program, and the reclaim
/// observers, with three samples per object, took 13 s each to load under
/// TCG (142,871 instructions verified).
#[inline(always)]
pub fn msb(mut v: u64) -> u32 {
    v |= v >> 1;
    v |= v >> 2;
    v |= v >> 4;
    v |= v >> 8;
    v |= v >> 16;
    v |= v >> 32;
    // Population count (SWAR), minus one.
    v -= (v >> 1) & 0x5555_5555_5555_5555;
    v = (v & 0x3333_3333_3333_3333) + ((v >> 2) & 0x3333_3333_3333_3333);
    v = (v + (v >> 4)) & 0x0f0f_0f0f_0f0f_0f0f;
    (v.wrapping_mul(0x0101_0101_0101_0101) >> 56) as u32 - 1
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
