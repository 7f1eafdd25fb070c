//! Fences that keep a load from caching a value removed while it ran.
//!
//! A load takes time. If `remove("k")` (or `set`, or `purge`) happens while a
//! load of `k` is in flight, the load finishes with the value as it was
//! before, and must not put it in the cache: the removal would be undone and
//! the old value served again. golang/groupcache has no removal; mailgun's
//! groupcache has this race.
//!
//! A load takes a *ticket* (the current epoch) when it starts; every
//! invalidation advances the epoch and stamps it on the key's slot (or on
//! everything, for a purge). A value may be cached only if no slot it maps to
//! was stamped after its ticket. Keys are hashed into a fixed number of slots,
//! so the memory is bounded whatever the key count: a collision can only make
//! a load skip caching (a later get loads again), never keep a stale value.
//!
//! Not thread-safe by itself: a group keeps it under its cache lock, so a
//! ticket, an invalidation and an admission are ordered with the cache's own
//! changes.

use std::hash::BuildHasher;

/// Slots per group: 8 KiB. With a few removals in flight at once, the chance
/// that an unrelated load shares a slot with one of them is about 1 in 1,000.
const SLOTS: usize = 1024;

/// The invalidation epochs of one group.
pub(crate) struct Fences {
    epoch: u64,
    /// The epoch of the last purge: every ticket before it is stale.
    all: u64,
    slots: Box<[u64]>,
    hasher: foldhash::fast::FixedState,
}

impl Fences {
    pub(crate) fn new() -> Self {
        Fences {
            epoch: 0,
            all: 0,
            slots: vec![0; SLOTS].into_boxed_slice(),
            hasher: foldhash::fast::FixedState::default(),
        }
    }

    /// The ticket of a load starting now.
    pub(crate) fn ticket(&self) -> u64 {
        self.epoch
    }

    /// Records that `key` was removed or replaced now.
    pub(crate) fn invalidate(&mut self, key: &str) {
        self.epoch += 1;
        let slot = self.slot(key);
        self.slots[slot] = self.epoch;
    }

    /// Records that every key was removed now.
    pub(crate) fn invalidate_all(&mut self) {
        self.epoch += 1;
        self.all = self.epoch;
    }

    /// Whether a value of `key` loaded with `ticket` may be cached.
    pub(crate) fn admits(&self, key: &str, ticket: u64) -> bool {
        self.all <= ticket && self.slots[self.slot(key)] <= ticket
    }

    fn slot(&self, key: &str) -> usize {
        // The modulo keeps the index in range on every platform.
        (self.hasher.hash_one(key) % SLOTS as u64) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_invalidation_during_a_load_blocks_only_that_load() {
        let mut fences = Fences::new();
        let before = fences.ticket();
        fences.invalidate("k");
        assert!(!fences.admits("k", before));
        // A load that started after the removal may cache.
        assert!(fences.admits("k", fences.ticket()));
        // Most other keys are unaffected (one in SLOTS may share the slot).
        let blocked = (0..1000)
            .filter(|i| !fences.admits(&format!("other{i}"), before))
            .count();
        assert!(blocked < 10, "{blocked} unrelated keys blocked");
    }

    #[test]
    fn a_purge_blocks_every_earlier_load() {
        let mut fences = Fences::new();
        let before = fences.ticket();
        fences.invalidate_all();
        assert!(!fences.admits("a", before));
        assert!(!fences.admits("b", before));
        assert!(fences.admits("a", fences.ticket()));
    }
}
