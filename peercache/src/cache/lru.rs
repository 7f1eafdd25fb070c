//! A least-recently-used list with exact byte accounting.
//!
//! Written by hand rather than taken from a crate because the policy in
//! [`super::Cache`] needs two lists that share one byte budget and are evicted
//! by a rule across both (see the module above); the LRU crates on crates.io
//! budget by entry count or keep their own approximate weights. This one is an
//! index-based doubly linked list over a `Vec` (a slab) plus a hash map from
//! key to slot: O(1) get, insert, remove and pop-oldest, and no `unsafe`.
//! The map compares keys inline rather than through `memcmp` (`key.rs`).
//!
//! The index hashes keys with foldhash, seeded randomly per process: it cut
//! the `group_get_hit` benchmark by about 11 % against std's SipHash
//! (BENCHMARKS.md), and its random seed keeps collisions unpredictable to a
//! client that chooses keys (keys come from the network).
//!
//! An entry costs `len(key) + len(value)` bytes, as in groupcache. Replacing
//! the value of an existing key subtracts the old cost before adding the new
//! one (golang/groupcache counts the key twice there and leaks bytes).

use super::key::{IndexKey, Probe};
use crate::Value;
use hashbrown::HashMap;
use std::sync::Arc;

/// Marks "no slot" in the links.
const NIL: usize = usize::MAX;

struct Slot {
    /// `None` while the slot is on the free list.
    entry: Option<(Arc<str>, Value)>,
    /// Towards the newest entry.
    newer: usize,
    /// Towards the oldest entry.
    older: usize,
}

/// What an entry costs against the budget: key bytes plus value bytes.
pub(crate) fn cost(key: &str, value: &Value) -> u64 {
    (key.len() as u64).saturating_add(value.len() as u64)
}

/// One LRU list. Not thread-safe: [`super::Cache`] is used behind a lock.
#[derive(Default)]
pub(crate) struct Lru {
    index: HashMap<IndexKey, usize, foldhash::fast::RandomState>,
    slots: Vec<Slot>,
    free: Vec<usize>,
    newest: usize,
    oldest: usize,
    bytes: u64,
}

impl Lru {
    pub(crate) fn new() -> Self {
        Lru {
            newest: NIL,
            oldest: NIL,
            ..Lru::default()
        }
    }

    /// Sum of `len(key) + len(value)` over the entries.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Number of entries.
    pub(crate) fn len(&self) -> usize {
        self.index.len()
    }

    /// Looks a key up and marks it most recently used.
    pub(crate) fn get(&mut self, key: &str) -> Option<&Value> {
        let slot = *self.index.get(&Probe(key))?;
        self.touch(slot);
        self.slots[slot].entry.as_ref().map(|(_, v)| v)
    }

    /// Looks a key up without changing the order: its slot (for
    /// [`Lru::touch`]) and value.
    #[inline]
    pub(crate) fn peek(&self, key: &str) -> Option<(usize, &Value)> {
        let slot = *self.index.get(&Probe(key))?;
        let (_, value) = self.slots[slot].entry.as_ref()?;
        Some((slot, value))
    }

    /// True if `slot` holds the most recently used entry.
    #[inline]
    pub(crate) fn is_newest(&self, slot: usize) -> bool {
        self.newest == slot
    }

    /// True if the key is present; does not change the order.
    pub(crate) fn contains(&self, key: &str) -> bool {
        self.index.contains_key(&Probe(key))
    }

    /// Inserts or replaces a key as the most recently used entry; returns the
    /// key as stored and the value it replaced, if any.
    pub(crate) fn insert(&mut self, key: &str, value: Value) -> (Arc<str>, Option<Value>) {
        if let Some(&slot) = self.index.get(&Probe(key)) {
            let entry = self.slots[slot]
                .entry
                .as_mut()
                .expect("indexed slot is full");
            self.bytes = self.bytes - cost(key, &entry.1) + cost(key, &value);
            let old = std::mem::replace(&mut entry.1, value);
            let stored = Arc::clone(&entry.0);
            self.touch(slot);
            return (stored, Some(old));
        }
        self.bytes += cost(key, &value);
        let key: Arc<str> = Arc::from(key);
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot].entry = Some((key.clone(), value));
                slot
            }
            None => {
                self.slots.push(Slot {
                    entry: Some((key.clone(), value)),
                    newer: NIL,
                    older: NIL,
                });
                self.slots.len() - 1
            }
        };
        self.index.insert(IndexKey(Arc::clone(&key)), slot);
        self.link_newest(slot);
        (key, None)
    }

    /// Removes a key; returns its entry if it was present.
    pub(crate) fn remove(&mut self, key: &str) -> Option<(Arc<str>, Value)> {
        let slot = self.index.remove(&Probe(key))?;
        Some(self.release(slot))
    }

    /// The least recently used key: the next to be evicted.
    pub(crate) fn oldest_key(&self) -> Option<&str> {
        match self.slots.get(self.oldest) {
            Some(slot) => slot.entry.as_ref().map(|(key, _)| &**key),
            None => None,
        }
    }

    /// Removes and returns the least recently used entry.
    pub(crate) fn pop_oldest(&mut self) -> Option<(Arc<str>, Value)> {
        if self.oldest == NIL {
            return None;
        }
        let slot = self.oldest;
        let entry = self.release(slot);
        self.index.remove(&Probe(&entry.0));
        Some(entry)
    }

    /// Drops every entry and returns the memory of the slot table.
    pub(crate) fn clear(&mut self) {
        *self = Lru::new();
    }

    /// Keys from most to least recently used.
    pub(crate) fn keys_newest_first(&self) -> Vec<String> {
        let mut keys = Vec::with_capacity(self.len());
        let mut at = self.newest;
        while at != NIL {
            let slot = &self.slots[at];
            if let Some((key, _)) = &slot.entry {
                keys.push(key.to_string());
            }
            at = slot.older;
        }
        keys
    }

    /// Unlinks a slot, puts it on the free list and returns its entry.
    fn release(&mut self, slot: usize) -> (Arc<str>, Value) {
        self.unlink(slot);
        let entry = self.slots[slot]
            .entry
            .take()
            .expect("released slot is full");
        self.bytes -= cost(&entry.0, &entry.1);
        self.free.push(slot);
        entry
    }

    /// Marks the entry in `slot` most recently used; a free or unknown slot
    /// is left alone.
    pub(crate) fn touch(&mut self, slot: usize) {
        let full = self.slots.get(slot).is_some_and(|s| s.entry.is_some());
        if full && self.newest != slot {
            self.unlink(slot);
            self.link_newest(slot);
        }
    }

    fn link_newest(&mut self, slot: usize) {
        self.slots[slot].newer = NIL;
        self.slots[slot].older = self.newest;
        if self.newest != NIL {
            self.slots[self.newest].newer = slot;
        } else {
            self.oldest = slot;
        }
        self.newest = slot;
    }

    fn unlink(&mut self, slot: usize) {
        let (newer, older) = (self.slots[slot].newer, self.slots[slot].older);
        if newer != NIL {
            self.slots[newer].older = older;
        } else {
            self.newest = older;
        }
        if older != NIL {
            self.slots[older].newer = newer;
        } else {
            self.oldest = newer;
        }
        self.slots[slot].newer = NIL;
        self.slots[slot].older = NIL;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_follows_use_and_bytes_stay_exact() {
        let mut lru = Lru::new();
        lru.insert("a", Value::from("1"));
        lru.insert("b", Value::from("22"));
        lru.insert("c", Value::from("333"));
        assert_eq!(lru.keys_newest_first(), ["c", "b", "a"]);
        assert_eq!(lru.bytes(), 2 + 3 + 4);
        assert!(lru.get("a").is_some());
        assert_eq!(lru.keys_newest_first(), ["a", "c", "b"]);
        // Replacing keeps one entry and exact bytes.
        lru.insert("c", Value::from("x"));
        assert_eq!(lru.len(), 3);
        assert_eq!(lru.bytes(), 2 + 3 + 2);
        assert_eq!(
            lru.pop_oldest().map(|(k, _)| k.to_string()),
            Some("b".into())
        );
        assert_eq!(lru.remove("a").map(|e| e.1), Some(Value::from("1")));
        assert_eq!(lru.keys_newest_first(), ["c"]);
        assert_eq!(lru.bytes(), 2);
        // Freed slots are reused.
        lru.insert("d", Value::from(""));
        assert_eq!(lru.slots.len(), 3);
        assert_eq!(
            lru.pop_oldest().map(|(k, _)| k.to_string()),
            Some("c".into())
        );
        assert_eq!(
            lru.pop_oldest().map(|(k, _)| k.to_string()),
            Some("d".into())
        );
        assert!(lru.pop_oldest().is_none());
        assert_eq!(lru.bytes(), 0);
    }
}
