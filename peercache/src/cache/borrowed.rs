//! Copies: the hot cache's entries, and main entries borrowed from another
//! node, values this node came to own and took from the node that held
//! them (a peek or a handoff, `group/handoff.rs`) instead of loading them.
//!
//! Such a value may be one that node kept after a change it missed (a
//! change on its way to it as a hint). When the change lands there, the
//! node that made it drops the key's copies everywhere a second time
//! (`group/hints.rs`); a borrowed entry counts as a copy for that, so that
//! a stale value borrowed meanwhile goes too ([`Cache::remove_hot`],
//! [`Cache::clear_hot`]). Any later value of the key stored here (a load,
//! a set) is this node's own, and the mark goes.
//!
//! Marks are kept by slot beside the table, as the hot copies' ages are:
//! only borrowed entries pay for them (about 10 to 20 bytes each).

use super::table::List;
use super::{Cache, CacheKind};
use crate::Value;
use std::collections::HashSet;

/// The slots of borrowed main entries.
#[derive(Debug, Default)]
pub(super) struct Borrowed {
    slots: HashSet<u32>,
}

impl Borrowed {
    /// Forgets the mark of a slot whose entry went or was replaced.
    pub(super) fn forget(&mut self, slot: u32) {
        if !self.slots.is_empty() {
            self.slots.remove(&slot);
        }
    }

    pub(super) fn contains(&self, slot: u32) -> bool {
        !self.slots.is_empty() && self.slots.contains(&slot)
    }

    pub(super) fn take(&mut self) -> Vec<u32> {
        self.slots.drain().collect()
    }

    pub(super) fn clear(&mut self) {
        self.slots.clear();
    }
}

impl Cache {
    /// Stores a value borrowed from another node in the main cache, as
    /// [`Cache::insert`] does, marked so that a removal of copies drops it
    /// too.
    ///
    /// ```
    /// use peercache::cache::Cache;
    /// use peercache::{CacheKind, Value};
    ///
    /// let mut cache = Cache::new(1 << 20);
    /// cache.insert_borrowed("peeked", Value::from("v"));
    /// cache.insert(CacheKind::Main, "loaded", Value::from("v"));
    /// cache.clear_hot();
    /// assert_eq!(cache.keys(CacheKind::Main), ["loaded"]);
    /// ```
    pub fn insert_borrowed(&mut self, key: &str, value: Value) -> bool {
        let stored = self.insert(CacheKind::Main, key, value);
        if stored {
            if let Some(slot) = self.table.find(key) {
                self.borrowed.slots.insert(slot);
            }
        }
        stored
    }

    /// The main cache's value of `key` if it holds one unexpired at
    /// `now_unix_nanos` (not a cached not-found), without counting a get or
    /// a request: what a peer's peek is answered with. A hot copy is not
    /// answered: it would become a main entry at the asking node, where
    /// its maximum age no longer applies.
    pub fn peek_main(&self, key: &str, now_unix_nanos: i64) -> Option<Value> {
        let (list, value) = self.table.get(self.table.find(key)?)?;
        let expiry = value.expiry_unix_nanos();
        let live = expiry == 0 || (!value.is_negative() && expiry > now_unix_nanos);
        (list.is_main() && live).then(|| value.clone())
    }

    /// Removes a key's copy: its hot entry, or a main entry borrowed from
    /// another node ([`Cache::insert_borrowed`]); returns the value, if
    /// any (a main entry of this node's own stays).
    pub fn remove_hot(&mut self, key: &str) -> Option<Value> {
        self.replay_hits();
        let slot = self.table.find(key)?;
        match self.table.get(slot) {
            Some((List::Hot, _)) => self.remove_slot(slot).map(|(_, value)| value),
            Some(_) if self.borrowed.contains(slot) => {
                self.remove_slot(slot).map(|(_, value)| value)
            }
            _ => None,
        }
    }

    /// Empties the hot cache, and drops the main entries borrowed from
    /// other nodes (this node's own stay).
    pub fn clear_hot(&mut self) {
        self.replay_hits();
        while let Some(slot) = self.table.oldest(List::Hot) {
            self.remove_slot(slot);
        }
        for slot in self.borrowed.take() {
            self.remove_slot(slot);
        }
    }

    /// True if the main cache holds the key (unexpired or not); does not
    /// count as a get.
    pub fn contains_main(&self, key: &str) -> bool {
        self.table
            .find(key)
            .and_then(|slot| self.table.get(slot))
            .is_some_and(|(list, _)| list.is_main())
    }

    /// Whether the main entry of `key` was borrowed from another node and
    /// not replaced since.
    pub fn is_borrowed(&self, key: &str) -> bool {
        self.table
            .find(key)
            .is_some_and(|slot| self.borrowed.contains(slot))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_of_this_node_replaces_the_mark_and_removal_of_copies_takes_it() {
        let mut cache = Cache::new(1 << 20);
        cache.insert_borrowed("a", Value::from("old"));
        cache.insert_borrowed("b", Value::from("old"));
        assert!(cache.is_borrowed("a") && cache.is_borrowed("b"));
        cache.insert(CacheKind::Main, "a", Value::from("loaded"));
        assert!(!cache.is_borrowed("a"));
        assert_eq!(cache.remove_hot("a"), None, "its own value stays");
        assert!(cache.remove_hot("b").is_some(), "a borrowed one goes");
        cache.insert_borrowed("c", Value::from("old"));
        cache.remove("c");
        cache.insert(CacheKind::Main, "c", Value::from("new"));
        assert!(!cache.is_borrowed("c"), "a reused slot carries no mark");
        cache.check(false);
    }

    #[test]
    fn a_peek_is_answered_from_the_main_cache_only() {
        let mut cache = Cache::new(1 << 20);
        cache.insert(CacheKind::Main, "own", Value::from("v"));
        cache.insert(CacheKind::Hot, "copy", Value::from("v"));
        let old = Value::from("v").keyed_expiring(b"old", 10);
        cache.insert(CacheKind::Main, "old", old);
        assert!(cache.peek_main("own", 20).is_some());
        assert!(
            cache.peek_main("copy", 20).is_none(),
            "a hot copy is not lent"
        );
        assert!(cache.peek_main("old", 20).is_none(), "expired");
        assert!(cache.peek_main("absent", 20).is_none());
        assert_eq!(cache.stats(CacheKind::Main).gets, 0, "no get counted");
    }
}
