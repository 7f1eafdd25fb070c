//! Keys compared without a call to `memcmp`, for the cache's index.
//!
//! A cache hit hashes the key, finds its bucket and compares the key asked
//! for with the one stored there. Through `str`'s `==`, that compare is a
//! call into libc's `memcmp`, and on the in-process hit benchmark the call
//! took 16 % of the whole hit (`perf record` of `group_get_hit`,
//! BENCHMARKS.md) for keys of a few bytes. Keys are usually short (ids,
//! names, paths), so [`same_bytes`] compares up to 32 bytes inline with two
//! overlapping loads of the widest word that fits, and leaves longer keys
//! to `memcmp`, whose call is then worth it.
//!
//! The index (`table.rs`) is hashbrown's `HashTable`, whose probes take
//! the equality to use: this one.

/// `a == b`, inline for up to 32 bytes: two loads of the widest word that
/// fits, one from each end (they overlap when the length is not a whole
/// number of words), cover every byte.
#[inline(always)]
pub(crate) fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    match n {
        0 => true,
        1..=3 => a[0] == b[0] && a[n / 2] == b[n / 2] && a[n - 1] == b[n - 1],
        4..=7 => ends::<4>(a) == ends::<4>(b),
        8..=16 => ends::<8>(a) == ends::<8>(b),
        17..=32 => ends::<16>(a) == ends::<16>(b),
        _ => a == b,
    }
}

/// The first and the last `W` bytes of `bytes`, which must hold at least `W`.
#[inline(always)]
fn ends<const W: usize>(bytes: &[u8]) -> ([u8; W], [u8; W]) {
    let first: [u8; W] = bytes[..W].try_into().unwrap_or([0; W]);
    let last: [u8; W] = bytes[bytes.len() - W..].try_into().unwrap_or([0; W]);
    (first, last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Equal to `==` for every length around the word sizes, on pairs
        /// that differ in one byte anywhere, and on unrelated pairs.
        #[test]
        fn same_bytes_is_equality(
            a in proptest::collection::vec(any::<u8>(), 0..48),
            at in any::<prop::sample::Index>(),
            flip in 1u8..=255,
            other in proptest::collection::vec(any::<u8>(), 0..48),
        ) {
            prop_assert!(same_bytes(&a, &a.clone()));
            if !a.is_empty() {
                let mut b = a.clone();
                b[at.index(a.len())] ^= flip;
                prop_assert!(!same_bytes(&a, &b));
            }
            prop_assert_eq!(same_bytes(&a, &other), a == other);
            prop_assert!(!same_bytes(&a, &a[..a.len().saturating_sub(1)]) || a.is_empty());
        }
    }
}
