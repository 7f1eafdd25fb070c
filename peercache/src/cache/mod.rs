//! The byte-budgeted main + hot cache of one group.
//!
//! groupcache keeps two caches per group: the *main* cache holds the keys this
//! node owns (it ran their loader), the *hot* cache mirrors popular keys owned
//! by other peers so that they do not cross the network every time. Both share
//! ONE byte budget, with groupcache's rules:
//!
//! - an entry costs `len(key) + len(value)` bytes;
//! - after each insert, while `main + hot > budget`, evict the least recently
//!   used *hot* entry if `hot > main / 8`, else a *main* entry (so the hot
//!   cache never grows past about 1/8 of the main cache under pressure);
//! - look-ups try main, then hot;
//! - a budget of 0 disables caching (look-ups still count as gets).
//!
//! **Which main entry goes** is where peercache leaves groupcache's exact
//! LRU. Every miss at the owner is a query to the user's database, and LRU
//! is the policy that loses most where frequency matters: a loop slightly
//! larger than the cache, or one scan, flushes it. The main cache is
//! W-TinyLFU (Einziger, Friedman, Manes, 2017) with a climbing window:
//!
//! - a new key enters the *window*, an LRU list of a share of the budget;
//! - a key pushed out of the window is a *candidate* for the rest, an SLRU
//!   of *probation* and *protected* (four fifths of what the window leaves).
//!   While the budget has room it is admitted; when something must go, it
//!   is compared with probation's least recent entry, and the one asked
//!   more often recently stays (`sketch.rs` counts requests, and a `set`
//!   counts as one; ties keep the incumbent). A large candidate is compared
//!   with every entry it would displace before any goes, and must
//!   out-count each (`evict.rs`);
//! - a hit in probation promotes the key to protected, whose least recent
//!   entries step back down to probation;
//! - the window's share climbs by the hit ratio (`climb.rs`), from 1 % (a
//!   frequency cache, resistant to loops and scans) up to 99 % (an LRU),
//!   so traces where recency rules lose less than a point against LRU;
//!   after a climb, each change moves at most 64 entries to follow the new
//!   share, so no insert holds the lock for long.
//!
//! On the real traces of BENCHMARKS.md it meets the best of `quick_cache`
//! and `moka` or beats them on most cases (glimpse's loop @1000: 50 %
//! against LRU's 11 %). Every choice was measured there first.
//!
//! Where groupcache was wrong or silent, this module decides:
//!
//! - re-inserting a key replaces its value in place and keeps the byte count
//!   exact;
//! - a key lives in at most one of the two caches: inserting it into one
//!   removes it from the other, so the budget never pays for it twice;
//! - an entry that costs more than the whole budget is not stored (it would
//!   evict every other entry and then itself); any older value of that key is
//!   dropped so it cannot be served stale. The caller still gets the value;
//! - entries with an expiry are also indexed by it, so
//!   [`Cache::remove_expired`] gives their bytes back to the budget as soon
//!   as they expire, in O(log n) per entry, without waiting for a look-up to
//!   touch them or for eviction to reach them. Entries without an expiry
//!   pay nothing for this.
//!
//! The budget counts what groupcache counts, keys and values. Each entry
//! also costs bookkeeping the budget does not count: its value's block
//! (32 bytes of count and header; the key is stored there, beside a value
//! of up to 1 KiB, so nothing else holds it: `value/block.rs`), its slot in
//! the table (16 bytes), its place in the hash index (5 bytes, 7/8 full at
//! most), 8 to 16 bytes of frequency sketch, all three growing by doubling,
//! and with a TTL its place in the expiry index (about 45 bytes). Measured
//! by `tests/overhead.rs`: 68 to 94 bytes per entry without a TTL for small
//! values, 129 for values above 1 KiB (an `Arc` around their own buffer),
//! at most 171 with a TTL; as malloc counts, with its headers and rounding,
//! at most 169 and 206. Plan for `budget + entries × 176 bytes` (224 with a
//! TTL) plus the process's own memory. A table numbers at most about 537
//! million entries (`table.rs`).
//! BENCHMARKS.md ("Memory") has a cluster's figures.
//!
//! [`Cache::admits_hot`] uses the same sketch to decide whether a value
//! fetched from its owner is worth a place in the hot cache
//! ([`crate::HotCachePolicy::Frequent`]).
//!
//! No cache crate offers this shared-budget rule with exact accounting (moka's
//! weights are approximate, quick_cache splits the budget per shard), hence
//! the hand-written table.

mod age;
mod borrowed;
mod climb;
mod evict;
mod key;
mod lookup;
pub(crate) mod policy;
mod rank;
mod recency;
mod sketch;
pub(crate) mod stats;
mod table;

pub(crate) use policy::HotCachePolicy;
pub(crate) use stats::{CacheKind, CacheStats};

pub(crate) use lookup::Ask;
pub(crate) use table::cost;

use crate::Value;
use climb::Climber;
use sketch::Sketch;
use std::collections::BTreeSet;
use table::{List, Table};

/// The counters of the main or the hot cache.
#[derive(Debug, Default, Clone, Copy)]
struct Counters {
    gets: u64,
    hits: u64,
    evictions: u64,
    expired: u64,
    aged: u64,
}

/// Main and hot cache sharing one byte budget. Changes take `&mut self`: a
/// group keeps it behind a reader-writer lock that is never held across an
/// `.await`, and serves main hits under the read side (crate-internal
/// `get_main_shared`), whose recency every `&mut` method applies first.
///
/// A group makes and uses its own; this type is public for inspection,
/// tests and reuse (it depends on nothing else in the crate but [`Value`]).
/// Under pressure the hot cache is held to about an eighth of the main
/// cache, as in groupcache:
///
/// ```
/// use peercache::cache::Cache;
/// use peercache::{CacheKind, Value};
///
/// let mut cache = Cache::new(100);
/// for i in 0..8 {
///     cache.insert(CacheKind::Main, &format!("m{i}"), Value::from("12345678")); // 10 bytes each
/// }
/// for i in 0..3 {
///     cache.insert(CacheKind::Hot, &format!("h{i}"), Value::from("12345678"));
/// }
/// // 110 bytes > 100: the hot cache (30) is over main/8 (10), so its oldest entry went.
/// assert_eq!(cache.keys(CacheKind::Hot), ["h2", "h1"]);
/// assert_eq!(cache.bytes(), 100);
///
/// // An entry larger than the whole budget is not stored.
/// assert!(!cache.insert(CacheKind::Main, "big", Value::new(vec![0; 200])));
/// assert!(!cache.contains("big"));
/// ```
pub struct Cache {
    budget: u64,
    table: Table,
    /// `(reclaim time in Unix nanoseconds, slot)` of every entry with an
    /// expiry: the expiry plus `grace`.
    expiring: BTreeSet<(i64, u32)>,
    /// How long (nanoseconds) an expired entry is kept, for stale serves.
    grace: i64,
    main: Counters,
    hot: Counters,
    /// Recent request counts of every key asked.
    sketch: Sketch,
    /// Whether [`Cache::admits_hot`] asks the sketch.
    hot_by_count: bool,
    /// The window's share of the budget.
    climber: Climber,
    /// Main hits served under shared access, not yet applied.
    recency: recency::RecencyLog,
    /// Whether the window, and protected, are still over their shares: the
    /// last change moved as many entries as one change may.
    settling: [bool; 2],
    /// The hot copies' fetch times and maximum age.
    ages: age::HotAges,
    /// Main entries borrowed from another node (`borrowed.rs`).
    borrowed: borrowed::Borrowed,
}

impl Cache {
    /// An empty cache that holds at most `budget` bytes; 0 disables caching.
    pub fn new(budget: u64) -> Self {
        Cache {
            budget,
            table: Table::new(),
            expiring: BTreeSet::new(),
            grace: 0,
            main: Counters::default(),
            hot: Counters::default(),
            sketch: Sketch::new(),
            hot_by_count: false,
            climber: Climber::new(),
            recency: recency::RecencyLog::new(),
            settling: [false; 2],
            ages: age::HotAges::default(),
            borrowed: borrowed::Borrowed::default(),
        }
    }

    /// Keeps expired entries for `grace` after their expiry (in the budget,
    /// evicted by the policy like any other) so that their owner can still
    /// serve them stale; a look-up never returns them. 0, the default,
    /// drops them at their expiry. Entries already held are re-indexed.
    pub fn keep_expired_for(&mut self, grace: std::time::Duration) {
        self.grace = i64::try_from(grace.as_nanos()).unwrap_or(i64::MAX);
        let slots: Vec<u32> = self.expiring.iter().map(|&(_, slot)| slot).collect();
        self.expiring.clear();
        for slot in slots {
            if let Some((_, value)) = self.table.get(slot) {
                let reclaim = self.reclaim_at(value);
                self.expiring.insert((reclaim, slot));
            }
        }
    }

    /// When an entry holding `value` (which has an expiry) is reclaimed:
    /// after the grace or the value's own stale windows
    /// ([`Value::with_stale_windows`]), whichever is longer; a cached
    /// not-found, never served stale, at its expiry.
    fn reclaim_at(&self, value: &Value) -> i64 {
        let expiry = value.expiry_unix_nanos();
        if value.is_negative() {
            expiry
        } else {
            expiry.saturating_add(self.grace.max(value.own_grace_nanos()))
        }
    }

    /// The value under `key` if it has expired by `now` (Unix nanoseconds)
    /// and is still kept ([`Cache::keep_expired_for`]); counts nothing.
    pub(crate) fn peek_expired(&self, key: &str, now: i64) -> Option<Value> {
        // Through `find`, not `peek`: `peek`'s index search then has one
        // caller, the hit path, and is inlined there (measured: 1.5 ns).
        let (_, value) = self.table.find(key).and_then(|slot| self.table.get(slot))?;
        let expiry = value.expiry_unix_nanos();
        (expiry != 0 && now >= expiry).then(|| value.clone())
    }

    /// The expiry of the cached not-found under `key`, if that is what
    /// the entry is (a group's negative caching); counts nothing.
    pub(crate) fn peek_negative(&self, key: &str) -> Option<i64> {
        let (_, value) = self.table.find(key).and_then(|slot| self.table.get(slot))?;
        value.is_negative().then(|| value.expiry_unix_nanos())
    }

    /// From now on, [`Cache::admits_hot`] decides by how often keys were
    /// asked.
    pub fn count_requests(&mut self) {
        self.hot_by_count = true;
    }

    /// Whether a value of `cost` bytes fetched for `key` should go into the
    /// hot cache: always while the budget has room for it or while the hot
    /// cache is small enough that main would pay for it (groupcache's
    /// eviction rule), else only if `key` was asked more often recently than
    /// the hot entry it would evict. Without [`Cache::count_requests`],
    /// always.
    pub fn admits_hot(&self, key: &str, cost: u64) -> bool {
        if !self.hot_by_count
            || self.bytes() + cost <= self.budget
            || self.table.bytes(List::Hot) <= self.main_bytes() / 8
        {
            return true;
        }
        match self.table.oldest(List::Hot).and_then(|s| self.table.key(s)) {
            Some(victim) => self.sketch.estimate(key) > self.sketch.estimate(victim),
            None => true,
        }
    }

    /// The byte budget shared by main and hot.
    pub fn budget(&self) -> u64 {
        self.budget
    }

    /// Bytes held by main and hot together; never more than the budget.
    pub fn bytes(&self) -> u64 {
        self.main_bytes() + self.table.bytes(List::Hot)
    }

    fn main_bytes(&self) -> u64 {
        [List::Window, List::Probation, List::Protected]
            .iter()
            .map(|&list| self.table.bytes(list))
            .sum()
    }

    /// Looks a key up in main, then hot, counting the request and the gets
    /// and hits of each cache asked.
    pub fn get(&mut self, key: &str) -> Option<Value> {
        self.get_unexpired(key, &|| i64::MIN)
    }

    /// Like [`Cache::get`], but an entry whose expiry is at or before
    /// `now()` (Unix nanoseconds) is dropped and counted as expired, not as a
    /// hit. `now` is called only for entries that have an expiry, and for
    /// hot entries when they have a maximum age ([`Cache::limit_hot_age`]).
    pub fn get_unexpired(&mut self, key: &str, now: &dyn Fn() -> i64) -> Option<Value> {
        self.lookup(key, now, Ask::Request)
    }

    /// Stores `value` under `key` in the given cache, then evicts by the rules
    /// in the module docs until the budget holds. Returns whether the value
    /// is stored: `false` when caching is disabled, when the entry alone
    /// costs more than the budget (in which case any older value of the key
    /// is removed), or when the policy turned it away at once.
    pub fn insert(&mut self, kind: CacheKind, key: &str, value: Value) -> bool {
        self.replay_hits();
        let cost = cost(key, &value);
        let expiry = value.expiry_unix_nanos();
        if let Some(slot) = self.table.find(key) {
            self.borrowed.forget(slot);
            let same = self
                .table
                .get(slot)
                .is_some_and(|(list, _)| list.is_main() == (kind == CacheKind::Main));
            if same && cost <= self.budget {
                let reclaim = self.reclaim_at(&value);
                if let Some(old) = self.table.replace(slot, value) {
                    self.unindex(&old, slot);
                    if expiry != 0 {
                        self.expiring.insert((reclaim, slot));
                    }
                }
                self.table.touch(slot);
                return self.evict_to_budget(slot);
            }
            self.remove_slot(slot);
        }
        if cost > self.budget {
            return false;
        }
        let list = match kind {
            CacheKind::Main => List::Window,
            CacheKind::Hot => List::Hot,
        };
        let reclaim = self.reclaim_at(&value);
        let Some(slot) = self.table.push(list, key, value) else {
            return false;
        };
        if expiry != 0 {
            self.expiring.insert((reclaim, slot));
        }
        self.sketch.ensure(self.table.entries());
        self.evict_to_budget(slot)
    }

    /// Removes a key from both caches; returns the value it had, if any.
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        self.replay_hits();
        let slot = self.table.find(key)?;
        self.remove_slot(slot).map(|(_, value)| value)
    }

    /// Drops every entry of both caches whose expiry (plus the time expired
    /// entries are kept, [`Cache::keep_expired_for`]) is at or before `now`
    /// (Unix nanoseconds), giving its bytes back to the budget; returns how
    /// many were dropped.
    pub fn remove_expired(&mut self, now_unix_nanos: i64) -> u64 {
        self.replay_hits();
        let mut dropped = 0;
        while let Some(&(reclaim, slot)) = self.expiring.first() {
            if reclaim > now_unix_nanos {
                break;
            }
            // The slot's entry is the one indexed if its expiry is this one
            // (removing an entry unindexes it, so this always holds).
            let indexed = self
                .table
                .get(slot)
                .is_some_and(|(_, value)| self.reclaim_at(value) == reclaim);
            match indexed.then(|| self.remove_slot(slot)).flatten() {
                Some((list, _)) => self.counters(list).expired += 1,
                None => {
                    self.expiring.pop_first();
                }
            }
            dropped += 1;
        }
        dropped
    }

    /// The earliest time (Unix nanoseconds) an entry is due to be dropped
    /// by [`Cache::remove_expired`]: its expiry plus the time expired
    /// entries are kept.
    pub fn next_expiry(&self) -> Option<i64> {
        self.expiring.first().map(|(at, _)| *at)
    }

    /// True if either cache holds the key; does not count as a get.
    pub fn contains(&self, key: &str) -> bool {
        self.table.find(key).is_some()
    }

    /// Empties both caches. Counters other than bytes and items are kept,
    /// and so are the request counts the policy learned.
    pub fn clear(&mut self) {
        self.replay_hits();
        self.table.clear();
        self.expiring.clear();
        self.ages.clear();
        self.borrowed.clear();
        self.climber.emptied();
    }

    /// The counters of one cache.
    pub fn stats(&self, kind: CacheKind) -> CacheStats {
        let (counters, lists): (_, &[List]) = match kind {
            CacheKind::Main => (self.main, &[List::Window, List::Probation, List::Protected]),
            CacheKind::Hot => (self.hot, &[List::Hot]),
        };
        CacheStats {
            bytes: lists.iter().map(|&l| self.table.bytes(l)).sum(),
            items: lists.iter().map(|&l| self.table.len(l) as u64).sum(),
            gets: counters.gets,
            hits: counters.hits,
            evictions: counters.evictions,
            expired: counters.expired,
            aged: counters.aged,
        }
    }

    /// Keys of one cache (for inspection and tests; it copies every key).
    /// Hot: from most to least recently used. Main: the window, then
    /// protected, then probation, each from most to least recently used;
    /// the last key is the next to be evicted.
    pub fn keys(&self, kind: CacheKind) -> Vec<String> {
        match kind {
            CacheKind::Hot => self.table.keys_newest_first(List::Hot),
            CacheKind::Main => [List::Window, List::Protected, List::Probation]
                .into_iter()
                .flat_map(|list| self.table.keys_newest_first(list))
                .collect(),
        }
    }

    /// Checks the invariants every change keeps (tests only): the lists'
    /// links and bytes, the expiry index, the budget, and, after an insert,
    /// the window's and protected's shares.
    #[cfg(test)]
    pub(crate) fn check(&self, after_insert: bool) {
        self.table.check();
        assert!(self.bytes() <= self.budget);
        for &(reclaim, slot) in &self.expiring {
            let (_, value) = self
                .table
                .get(slot)
                .expect("an indexed expiry has its entry");
            assert_eq!(self.reclaim_at(value), reclaim);
        }
        let with_expiry = (0..self.table.slots() as u32)
            .filter(|&slot| {
                self.table
                    .get(slot)
                    .is_some_and(|(_, v)| v.expiry_unix_nanos() != 0)
            })
            .count();
        assert_eq!(with_expiry, self.expiring.len(), "every expiry is indexed");
        if after_insert && !self.settling[0] {
            assert!(self.table.bytes(List::Window) <= self.climber.window_budget(self.budget));
        }
        if after_insert && !self.settling[1] {
            assert!(self.table.bytes(List::Protected) <= self.protected_budget());
        }
    }

    fn counters(&mut self, list: List) -> &mut Counters {
        if list.is_main() {
            &mut self.main
        } else {
            &mut self.hot
        }
    }

    /// Removes the entry in `slot` and its expiry; returns its list and value.
    fn remove_slot(&mut self, slot: u32) -> Option<(List, Value)> {
        let (list, value) = self.table.remove(slot)?;
        self.unindex(&value, slot);
        self.ages.forget(list, slot);
        self.borrowed.forget(slot);
        Some((list, value))
    }

    fn unindex(&mut self, value: &Value, slot: u32) {
        if value.expiry_unix_nanos() != 0 {
            self.expiring.remove(&(self.reclaim_at(value), slot));
        }
    }
}

#[cfg(test)]
mod tests;
