//! Every entry of one group's cache, each in one of four recency lists,
//! with exact byte accounting per list.
//!
//! The lists are the hot cache and the three parts of the main cache's
//! policy (`mod.rs`): the window, probation and protected. One table holds
//! them all, with one hash index, because a key lives in one of them only
//! and moves between them on hits and evictions: a move is a relink, never
//! a second look-up or a copy of the key.
//!
//! Written by hand rather than taken from a crate because the policy needs
//! several lists that share one byte budget and are evicted by a rule
//! across them; the LRU crates on crates.io budget by entry count or keep
//! their own approximate weights. The table is index-based doubly linked
//! lists over a `Vec` (a slab) plus a hash index of slot numbers: O(1)
//! find, push, move, remove and oldest, and no `unsafe`. The index compares
//! keys inline rather than through `memcmp` (`key.rs`).
//!
//! Memory per entry is most of what a cache of small values costs, so the
//! layout is lean: a slot is 16 bytes (the value, two 29-bit links and the
//! list in the links' spare bits), the index holds 4-byte slot numbers, and
//! the key is not stored apart: a stored value carries it
//! ([`Value::keyed`], in one block with the value when small), and the
//! index finds keys through the slots.
//!
//! The index hashes keys with foldhash, seeded randomly per process: it cut
//! the `group_get_hit` benchmark by about 11 % against std's SipHash
//! (BENCHMARKS.md), and its random seed keeps collisions unpredictable to a
//! client that chooses keys (keys come from the network).
//!
//! An entry costs `len(key) + len(value)` bytes, as in groupcache. Replacing
//! the value of an existing key subtracts the old cost before adding the new
//! one (golang/groupcache counts the key twice there and leaks bytes).

use super::key::same_bytes;
use crate::Value;
use hashbrown::HashTable;
use std::hash::BuildHasher;

/// Bits of a slot number; the three above them in a slot's `older` link
/// hold its list.
const SLOT_BITS: u32 = 29;

/// Marks "no slot" in the links.
const NIL: u32 = (1 << SLOT_BITS) - 1;

/// The most entries a table holds: every slot number but [`NIL`], about
/// 537 million (45 GB of bookkeeping alone at a small entry's 83 bytes).
/// Past it, a new key is returned by its get but not cached (as a value
/// larger than the budget is), and the entries already cached stay.
const MAX_SLOTS: usize = NIL as usize;

/// The recency lists of a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum List {
    /// The hot cache: keys owned by other peers.
    Hot = 0,
    /// Main: where new keys enter.
    Window = 1,
    /// Main: keys admitted from the window, not hit since.
    Probation = 2,
    /// Main: keys hit while on probation.
    Protected = 3,
}

impl List {
    #[cfg(test)]
    const ALL: [List; 4] = [List::Hot, List::Window, List::Probation, List::Protected];

    /// Whether the list is part of the main cache.
    pub(crate) fn is_main(self) -> bool {
        self != List::Hot
    }

    /// The list of a slot's tag (the top bits of [`Slot::older_tag`]);
    /// `None` for a free slot.
    #[inline(always)]
    fn of_tag(tag: u32) -> Option<List> {
        match tag {
            1 => Some(List::Hot),
            2 => Some(List::Window),
            3 => Some(List::Probation),
            4 => Some(List::Protected),
            _ => None,
        }
    }
}

/// What an entry costs against the budget: key bytes plus value bytes.
pub(crate) fn cost(key: &str, value: &Value) -> u64 {
    (key.len() as u64).saturating_add(value_cost(value))
}

/// What a cached not-found costs besides its key: about the bookkeeping
/// of an entry with an expiry (`tests/overhead.rs`), which the budget does
/// not count for values. Any client can make not-founds of keys of its
/// choosing, so their budget must bound their memory.
pub(crate) const NEGATIVE_ENTRY_BYTES: u64 = 128;

/// The budget's cost of a value's bytes; [`NEGATIVE_ENTRY_BYTES`] for a
/// cached not-found.
fn value_cost(value: &Value) -> u64 {
    if value.is_negative() {
        NEGATIVE_ENTRY_BYTES
    } else {
        value.len() as u64
    }
}

/// What a stored value costs: its key (carried by it) plus its bytes.
fn stored_cost(value: &Value) -> u64 {
    (value.key_bytes().len() as u64).saturating_add(value_cost(value))
}

struct Slot {
    /// The entry's value, carrying its key; the empty value while the
    /// slot is free.
    value: Value,
    /// Towards the newest entry of its list.
    newer: u32,
    /// Towards the oldest entry of its list in the low [`SLOT_BITS`]; the
    /// slot's tag above them: 0 when free, else its list + 1.
    older_tag: u32,
}

impl Slot {
    #[inline(always)]
    fn older(&self) -> u32 {
        self.older_tag & NIL
    }

    #[inline(always)]
    fn set_older(&mut self, older: u32) {
        self.older_tag = (self.older_tag & !NIL) | older;
    }

    /// The list the entry is on, `None` when the slot is free.
    #[inline(always)]
    fn list(&self) -> Option<List> {
        List::of_tag(self.older_tag >> SLOT_BITS)
    }

    fn set_list(&mut self, list: Option<List>) {
        let tag = list.map_or(0, |list| list as u32 + 1);
        self.older_tag = (tag << SLOT_BITS) | self.older();
    }
}

/// The ends and the size of one list.
#[derive(Clone, Copy)]
struct Ends {
    newest: u32,
    oldest: u32,
    bytes: u64,
    len: usize,
}

const EMPTY: Ends = Ends {
    newest: NIL,
    oldest: NIL,
    bytes: 0,
    len: 0,
};

/// A key's entry as [`Table::peek`] finds it.
pub(crate) struct Peeked<'a> {
    pub(crate) slot: u32,
    pub(crate) list: List,
    /// The list among the window and protected whose most recently used
    /// entry this is, if any.
    pub(crate) newest_of: Option<List>,
    pub(crate) value: &'a Value,
}

/// The entries. Not thread-safe: [`super::Cache`] is used behind a lock.
pub(crate) struct Table {
    /// Each entry's slot number, by its key's hash; the key is read from
    /// the slot. A `HashTable` rather than a map, so that the hit's
    /// look-up ([`Table::peek`]) is a copy of the probe of its own, which
    /// the compiler inlines into the hit path (shared with the changes' look-ups,
    /// it was not, at about 1 ns a hit: `perf` of `group_get_hit`).
    index: HashTable<u32>,
    hasher: foldhash::fast::RandomState,
    slots: Vec<Slot>,
    free: Vec<u32>,
    lists: [Ends; 4],
}

impl Table {
    pub(crate) fn new() -> Self {
        Table {
            index: HashTable::new(),
            hasher: foldhash::fast::RandomState::default(),
            slots: Vec::new(),
            free: Vec::new(),
            lists: [EMPTY; 4],
        }
    }

    /// Sum of `len(key) + len(value)` over the entries of `list`.
    pub(crate) fn bytes(&self, list: List) -> u64 {
        self.lists[list as usize].bytes
    }

    /// Number of entries in `list`.
    pub(crate) fn len(&self, list: List) -> usize {
        self.lists[list as usize].len
    }

    /// Number of slots, full or free (tests only).
    #[cfg(test)]
    pub(crate) fn slots(&self) -> usize {
        self.slots.len()
    }

    /// Number of entries in every list.
    pub(crate) fn entries(&self) -> usize {
        self.index.len()
    }

    /// The slot of a key.
    /// (Not inlined: the changes call it from many places.)
    #[inline(never)]
    pub(crate) fn find(&self, key: &str) -> Option<u32> {
        let key = key.as_bytes();
        let hash = self.hasher.hash_one(key);
        let found = self.index.find(hash, |&slot| self.holds(slot, key));
        found.copied()
    }

    /// Whether a slot holds `key`.
    #[inline(always)]
    fn holds(&self, slot: u32, key: &[u8]) -> bool {
        self.slots
            .get(slot as usize)
            .is_some_and(|s| same_bytes(s.value.key_bytes(), key))
    }

    /// What a hit needs of a key's entry, with one look-up: its slot, its
    /// list, whether it is the newest entry of the window or of protected,
    /// and its value. For the hit path alone: with a second caller, the
    /// index search it shares with it is no longer inlined into the hit
    /// (1.5 ns of a 22 ns hit, BENCHMARKS.md); others use [`Table::find`].
    #[inline(always)]
    pub(crate) fn peek(&self, key: &str) -> Option<Peeked<'_>> {
        let key = key.as_bytes();
        let hash = self.hasher.hash_one(key);
        let slot = *self.index.find(hash, |&slot| self.holds(slot, key))?;
        let s = self.slots.get(slot as usize)?;
        let list = s.list()?;
        // Compared with both lists' newest, not through `s.list`: the loads
        // do not wait for the slot's.
        let newest_of = if self.lists[List::Window as usize].newest == slot {
            Some(List::Window)
        } else if self.lists[List::Protected as usize].newest == slot {
            Some(List::Protected)
        } else {
            None
        };
        Some(Peeked {
            slot,
            list,
            newest_of,
            value: &s.value,
        })
    }

    /// The list and value in a full slot.
    #[inline]
    pub(crate) fn get(&self, slot: u32) -> Option<(List, &Value)> {
        let slot = self.slots.get(slot as usize)?;
        Some((slot.list()?, &slot.value))
    }

    /// The key in a full slot.
    pub(crate) fn key(&self, slot: u32) -> Option<&[u8]> {
        self.get(slot).map(|(_, value)| value.key_bytes())
    }

    /// The least recently used entry of `list`.
    pub(crate) fn oldest(&self, list: List) -> Option<u32> {
        let oldest = self.lists[list as usize].oldest;
        (oldest != NIL).then_some(oldest)
    }

    /// The entry used just before `slot` in its list (towards the oldest).
    pub(crate) fn older(&self, slot: u32) -> Option<u32> {
        let older = self.slots.get(slot as usize)?.older();
        (older != NIL).then_some(older)
    }

    /// The entry used just after `slot` in its list (towards the newest).
    pub(crate) fn newer(&self, slot: u32) -> Option<u32> {
        let newer = self.slots.get(slot as usize)?.newer;
        (newer != NIL).then_some(newer)
    }

    /// What the entry in a full slot costs: `len(key) + len(value)`.
    pub(crate) fn cost(&self, slot: u32) -> u64 {
        self.get(slot).map_or(0, |(_, value)| stored_cost(value))
    }

    /// The most recently used entry of `list`.
    pub(crate) fn newest(&self, list: List) -> Option<u32> {
        let newest = self.lists[list as usize].newest;
        (newest != NIL).then_some(newest)
    }

    /// Adds a key that is not in the table as the newest entry of `list`;
    /// returns its slot, or `None` when the table holds as many entries as
    /// it can number ([`MAX_SLOTS`]).
    pub(crate) fn push(&mut self, list: List, key: &str, value: Value) -> Option<u32> {
        let value = value.keyed(key.as_bytes());
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot as usize].value = value;
                slot
            }
            None if self.slots.len() < MAX_SLOTS => {
                self.slots.push(Slot {
                    value,
                    newer: NIL,
                    older_tag: NIL,
                });
                (self.slots.len() - 1) as u32
            }
            None => return None,
        };
        let (hasher, slots) = (&self.hasher, &self.slots);
        self.index
            .insert_unique(hasher.hash_one(key.as_bytes()), slot, |&slot| {
                let key = slots.get(slot as usize).map(|s| s.value.key_bytes());
                hasher.hash_one(key.unwrap_or_default())
            });
        self.link_newest(slot, list);
        Some(slot)
    }

    /// Replaces the value in a full slot, keeping its place; returns the
    /// old value.
    pub(crate) fn replace(&mut self, slot: u32, value: Value) -> Option<Value> {
        let s = self.slots.get_mut(slot as usize)?;
        let list = s.list()?;
        let value = value.keyed(s.value.key_bytes());
        let ends = &mut self.lists[list as usize];
        ends.bytes = ends.bytes - stored_cost(&s.value) + stored_cost(&value);
        Some(std::mem::replace(&mut s.value, value))
    }

    /// Makes a full slot the newest entry of `list` (its own or another).
    pub(crate) fn move_to(&mut self, slot: u32, list: List) {
        let full = self
            .slots
            .get(slot as usize)
            .is_some_and(|s| s.list().is_some());
        if full && self.lists[list as usize].newest != slot {
            self.unlink(slot);
            self.link_newest(slot, list);
        }
    }

    /// Marks a full slot the most recently used of its list; a free or
    /// unknown slot is left alone.
    pub(crate) fn touch(&mut self, slot: u32) {
        if let Some(list) = self.slots.get(slot as usize).and_then(Slot::list) {
            self.move_to(slot, list);
        }
    }

    /// Removes the entry of a full slot; returns its list and value.
    pub(crate) fn remove(&mut self, slot: u32) -> Option<(List, Value)> {
        let (list, value) = self.get(slot)?;
        let hash = self.hasher.hash_one(value.key_bytes());
        if let Ok(found) = self.index.find_entry(hash, |&s| s == slot) {
            found.remove();
        }
        self.unlink(slot);
        let s = &mut self.slots[slot as usize];
        s.set_list(None);
        let value = std::mem::take(&mut s.value);
        self.free.push(slot);
        Some((list, value))
    }

    /// Drops every entry and returns the memory of the tables.
    pub(crate) fn clear(&mut self) {
        *self = Table::new();
    }

    /// Keys of `list` from most to least recently used.
    pub(crate) fn keys_newest_first(&self, list: List) -> Vec<String> {
        let mut keys = Vec::with_capacity(self.len(list));
        let mut at = self.lists[list as usize].newest;
        while let Some(slot) = self.slots.get(at as usize) {
            keys.push(String::from_utf8_lossy(slot.value.key_bytes()).into_owned());
            at = slot.older();
        }
        keys
    }

    fn link_newest(&mut self, slot: u32, list: List) {
        let ends = &mut self.lists[list as usize];
        let old_newest = ends.newest;
        ends.newest = slot;
        if old_newest == NIL {
            ends.oldest = slot;
        }
        ends.len += 1;
        let s = &mut self.slots[slot as usize];
        s.set_list(Some(list));
        s.set_older(old_newest);
        s.newer = NIL;
        ends.bytes += stored_cost(&s.value);
        if old_newest != NIL {
            self.slots[old_newest as usize].newer = slot;
        }
    }

    /// Takes a linked slot out of its list (its entry stays in the slot).
    fn unlink(&mut self, slot: u32) {
        let s = &self.slots[slot as usize];
        let (newer, older) = (s.newer, s.older());
        let Some(list) = s.list() else {
            return;
        };
        let bytes = stored_cost(&s.value);
        let ends = &mut self.lists[list as usize];
        ends.len -= 1;
        ends.bytes -= bytes;
        if newer != NIL {
            self.slots[newer as usize].set_older(older);
        } else {
            ends.newest = older;
        }
        if older != NIL {
            self.slots[older as usize].newer = newer;
        } else {
            ends.oldest = newer;
        }
        let s = &mut self.slots[slot as usize];
        s.newer = NIL;
        s.set_older(NIL);
    }

    /// Checks the links and counts of every list against the slots
    /// (tests only): each list is a chain from newest to oldest whose
    /// length and bytes are the ones kept, and every indexed key is on
    /// exactly one list.
    #[cfg(test)]
    pub(crate) fn check(&self) {
        let mut seen = 0;
        for list in List::ALL {
            let ends = &self.lists[list as usize];
            let (mut at, mut newer, mut len, mut bytes) = (ends.newest, NIL, 0, 0);
            while at != NIL {
                let s = &self.slots[at as usize];
                assert_eq!(s.list(), Some(list));
                assert_eq!(s.newer, newer);
                let key = std::str::from_utf8(s.value.key_bytes()).expect("keys are text");
                assert_eq!(self.find(key), Some(at));
                bytes += stored_cost(&s.value);
                len += 1;
                (newer, at) = (at, s.older());
            }
            assert_eq!(ends.oldest, newer);
            assert_eq!((ends.len, ends.bytes), (len, bytes));
            seen += len;
        }
        assert_eq!(seen, self.index.len());
    }
}

#[cfg(test)]
mod tests;
