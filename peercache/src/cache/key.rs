//! The keys of the cache's index, compared without a call to `memcmp`.
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
//! The index is hashbrown's map, which std's `HashMap` wraps, for one
//! thing std does not offer: looking up with a key type of our own
//! ([`Probe`], through [`hashbrown::Equivalent`]) whose equality is this
//! compare. [`IndexKey`] and [`Probe`] hash exactly as `str` does, so
//! both find the same bucket.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// A key as the index stores it (shared with its slot).
#[derive(Clone, Debug)]
pub(crate) struct IndexKey(pub(crate) Arc<str>);

/// A key being looked up.
pub(crate) struct Probe<'a>(pub(crate) &'a str);

impl Hash for IndexKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        str::hash(&self.0, state);
    }
}

impl Hash for Probe<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        str::hash(self.0, state);
    }
}

impl PartialEq for IndexKey {
    fn eq(&self, other: &Self) -> bool {
        same_bytes(self.0.as_bytes(), other.0.as_bytes())
    }
}

impl Eq for IndexKey {}

impl hashbrown::Equivalent<IndexKey> for Probe<'_> {
    #[inline]
    fn equivalent(&self, key: &IndexKey) -> bool {
        same_bytes(self.0.as_bytes(), key.0.as_bytes())
    }
}

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
    use std::hash::BuildHasher;

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

    #[test]
    fn probe_and_stored_key_hash_alike() {
        let state = foldhash::fast::RandomState::default();
        for key in ["", "k", "some-key", "a key longer than thirty-two bytes"] {
            assert_eq!(
                state.hash_one(Probe(key)),
                state.hash_one(IndexKey(Arc::from(key)))
            );
            assert_eq!(state.hash_one(Probe(key)), state.hash_one(key));
        }
    }
}
