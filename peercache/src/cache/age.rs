//! The hot copies' maximum age: a copy of another node's key is served at
//! most this long after it was fetched; the next get asks the owner again.
//!
//! A change (set, remove, purge) drops every copy it reaches, and keeps
//! the change for the nodes it does not reach (`group/hints.rs`). A copy on
//! a node that missed a change and whose hint was lost (the writer died
//! with it) would otherwise be served for as long as it stays popular; the
//! maximum age bounds that, whatever else fails. Main entries, the keys
//! this node owns, have no such age: their owner is the one every change
//! reaches first.
//!
//! The fetch time of each hot entry is kept beside the table, by slot,
//! rather than in every slot: the hot cache is a small part of the
//! entries, and the main cache's slots stay 16 bytes. Times are the
//! group's clock (wall time), in units of about 134 ms; a copy whose fetch
//! time is ahead of the clock (the clock went back) counts as too old, so a
//! clock that jumps either way makes copies be fetched again, never kept
//! longer.

use super::table::List;
use super::Cache;
use crate::Value;
use std::collections::HashMap;
use std::time::Duration;

/// The unit of fetch times: 2^27 ns, about 134 ms. Ages are counted in
/// whole units and a copy is dropped up to two units early, never late
/// (but for a maximum age under two units, which counts as one).
const UNIT_SHIFT: u32 = 27;

/// The fetch times of hot entries, and their maximum age.
#[derive(Debug, Default)]
pub(super) struct HotAges {
    /// The maximum age in units, less one (at least 1); 0 for no limit.
    max_age: u32,
    /// The clock reading (Unix nanoseconds) fetch times count from: the
    /// first one stored.
    base: Option<i64>,
    /// When the entry in each hot slot was fetched, in units from `base`
    /// (4 bytes, not 8: the map costs every hot entry about 10 to 20
    /// bytes, `tests/overhead.rs`).
    born: HashMap<u32, u32>,
}

impl HotAges {
    /// Forgets the fetch time of a slot that no longer holds a hot entry.
    pub(super) fn forget(&mut self, list: List, slot: u32) {
        if list == List::Hot && self.max_age != 0 {
            self.born.remove(&slot);
        }
    }

    pub(super) fn clear(&mut self) {
        self.born.clear();
    }

    /// `now` in units from the base (`None` before it: the clock went back).
    fn units(&self, now: i64) -> Option<u32> {
        let since = now.checked_sub(self.base?)?;
        u32::try_from(since.checked_shr(UNIT_SHIFT)?).ok()
    }

    /// Whether the hot entry in `slot` is too old at `now`.
    fn too_old(&self, slot: u32, now: i64) -> bool {
        match (self.born.get(&slot), self.units(now)) {
            (Some(&born), Some(now)) => now < born || now - born >= self.max_age,
            _ => true,
        }
    }
}

impl Cache {
    /// Serves hot entries at most `max_age` after they were stored
    /// ([`Cache::insert_hot_copy`]); zero for no limit (the default).
    pub fn limit_hot_age(&mut self, max_age: Duration) {
        let units = max_age.as_nanos() >> UNIT_SHIFT;
        self.ages.max_age = match u32::try_from(units) {
            _ if max_age.is_zero() => 0,
            // Whole units between two readings undercount the time between
            // them by less than one unit: one less keeps the copy no longer
            // than the maximum.
            Ok(units) => units.saturating_sub(1).max(1),
            Err(_) => u32::MAX,
        };
        self.ages.born.clear();
    }

    /// Whether hot entries have a maximum age ([`Cache::limit_hot_age`]).
    pub fn hot_age_limited(&self) -> bool {
        self.ages.max_age != 0
    }

    /// Stores a hot copy fetched at `now` (Unix nanoseconds, the clock the
    /// look-ups are given), as [`Cache::insert`] does.
    pub fn insert_hot_copy(&mut self, key: &str, value: Value, now: i64) -> bool {
        let stored = self.insert(super::CacheKind::Hot, key, value);
        if stored && self.ages.max_age != 0 {
            let base = *self.ages.base.get_or_insert(now);
            let born = self.ages.units(now.max(base)).unwrap_or(u32::MAX);
            if let Some(slot) = self.table.find(key) {
                self.ages.born.insert(slot, born);
            }
        }
        stored
    }

    /// Drops the hot entry in `slot` if it is past the maximum age at
    /// `now()`; returns whether it did (counted as aged).
    pub(super) fn drop_if_aged(&mut self, slot: u32, now: &dyn Fn() -> i64) -> bool {
        if self.ages.max_age == 0 {
            return false;
        }
        let now = now();
        // `Cache::get` looks up without a clock (`i64::MIN`): no age then.
        if now == i64::MIN || !self.ages.too_old(slot, now) {
            return false;
        }
        self.remove_slot(slot);
        self.hot.aged += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Cache, CacheKind};
    use crate::Value;
    use std::time::Duration;

    const SECOND: i64 = 1_000_000_000;

    fn aged_cache() -> Cache {
        let mut cache = Cache::new(1 << 20);
        cache.limit_hot_age(Duration::from_secs(10));
        cache
    }

    fn lookup(cache: &mut Cache, key: &str, now: i64) -> Option<Value> {
        cache.lookup(key, &|| now, super::super::Ask::Get)
    }

    #[test]
    fn a_hot_copy_is_served_until_its_maximum_age() {
        let mut cache = aged_cache();
        assert!(cache.insert_hot_copy("k", Value::from("v"), 100 * SECOND));
        assert!(lookup(&mut cache, "k", 109 * SECOND).is_some());
        assert!(lookup(&mut cache, "k", 110 * SECOND).is_none());
        assert!(!cache.contains("k"), "dropped, its bytes given back");
        let hot = cache.stats(CacheKind::Hot);
        assert_eq!((hot.aged, hot.hits, hot.items, hot.bytes), (1, 1, 0, 0));
    }

    #[test]
    fn a_clock_gone_back_makes_the_copy_too_old() {
        let mut cache = aged_cache();
        cache.insert_hot_copy("k", Value::from("v"), 100 * SECOND);
        assert!(lookup(&mut cache, "k", 99 * SECOND).is_none());
    }

    #[test]
    fn main_entries_and_unlimited_caches_have_no_age() {
        let mut cache = aged_cache();
        cache.insert(CacheKind::Main, "mine", Value::from("v"));
        assert!(lookup(&mut cache, "mine", i64::MAX).is_some());
        let mut unlimited = Cache::new(1 << 20);
        assert!(!unlimited.hot_age_limited());
        unlimited.insert_hot_copy("k", Value::from("v"), 0);
        assert!(lookup(&mut unlimited, "k", i64::MAX).is_some());
    }

    #[test]
    fn a_slot_freed_and_reused_forgets_the_old_fetch_time() {
        let mut cache = aged_cache();
        cache.insert_hot_copy("old", Value::from("v"), 0);
        cache.remove("old");
        assert!(cache.ages.born.is_empty());
        cache.insert_hot_copy("new", Value::from("v"), 50 * SECOND);
        assert!(lookup(&mut cache, "new", 55 * SECOND).is_some());
        // A copy fetched again restarts its age.
        cache.insert_hot_copy("new", Value::from("v2"), 58 * SECOND);
        assert!(lookup(&mut cache, "new", 65 * SECOND).is_some());
        cache.clear();
        assert!(cache.ages.born.is_empty());
    }
}
