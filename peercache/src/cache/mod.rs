//! The byte-budgeted main + hot cache of one group.
//!
//! groupcache keeps two caches per group: the *main* cache holds the keys this
//! node owns (it ran their loader), the *hot* cache mirrors popular keys owned
//! by other peers so that they do not cross the network every time. Both share
//! ONE byte budget, and this module reproduces groupcache's policy exactly:
//!
//! - an entry costs `len(key) + len(value)` bytes;
//! - after each insert, while `main + hot > budget`, evict the least recently
//!   used *hot* entry if `hot > main / 8`, else the least recently used *main*
//!   entry (so the hot cache never grows past about 1/8 of the main cache
//!   under pressure);
//! - look-ups try main, then hot; each list is in least-recently-used order;
//! - a budget of 0 disables caching (look-ups still count as gets).
//!
//! Where groupcache was wrong or silent, this module decides:
//!
//! - re-inserting a key replaces its value and keeps the byte count exact;
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
//! also costs bookkeeping the budget does not count: the key's `Arc<str>`
//! header (16 bytes), the value's `Arc` block (56 bytes: two counts, the
//! `Bytes` handle and the expiry), its slot in the LRU table (40 bytes) and
//! in the hash index (25 bytes), both tables growing by doubling, and with a
//! TTL its place in the expiry index (about 48 bytes). Measured by
//! `tests/overhead.rs`: 147 to 202 bytes per entry without a TTL, at most
//! 251 with one (as malloc counts, with its headers and rounding: at most
//! 258 and 288); plan for `budget + entries × 320 bytes` (384 with a TTL)
//! plus the process's own memory. BENCHMARKS.md ("Memory") has a cluster's
//! figures.
//!
//! With [`Cache::count_requests`], the cache also counts how often keys
//! missing from main are asked (hot hits and misses, in a small sketch:
//! `sketch.rs`) and [`Cache::admits_hot`] decides by those counts whether a
//! value fetched from its owner is worth a place in the hot cache
//! ([`crate::HotCachePolicy::Frequent`]).
//!
//! No cache crate offers this shared-budget rule with exact accounting (moka's
//! weights are approximate, quick_cache splits the budget per shard), hence
//! the hand-written `lru` list.

mod key;
mod lru;
pub(crate) mod policy;
mod recency;
mod sketch;
pub(crate) mod stats;

pub(crate) use policy::HotCachePolicy;
pub(crate) use stats::{CacheKind, CacheStats};

pub(crate) use lru::cost;

use crate::Value;
use std::collections::BTreeSet;
use std::sync::Arc;

/// One list with its counters and its expiry index.
struct Part {
    lru: lru::Lru,
    /// `(expiry in Unix nanoseconds, key)` of every entry that has one.
    expiring: BTreeSet<(i64, Arc<str>)>,
    gets: u64,
    hits: u64,
    evictions: u64,
    expired: u64,
}

impl Part {
    fn new() -> Self {
        Part {
            lru: lru::Lru::new(),
            expiring: BTreeSet::new(),
            gets: 0,
            hits: 0,
            evictions: 0,
            expired: 0,
        }
    }

    fn insert(&mut self, key: &str, value: Value) {
        let expiry = value.expiry_unix_nanos();
        let (stored, old) = self.lru.insert(key, value);
        if let Some(old) = old {
            self.unindex(old.expiry_unix_nanos(), &stored);
        }
        if expiry != 0 {
            self.expiring.insert((expiry, stored));
        }
    }

    fn remove(&mut self, key: &str) -> Option<Value> {
        let (stored, value) = self.lru.remove(key)?;
        self.unindex(value.expiry_unix_nanos(), &stored);
        Some(value)
    }

    fn pop_oldest(&mut self) -> bool {
        match self.lru.pop_oldest() {
            Some((stored, value)) => {
                self.unindex(value.expiry_unix_nanos(), &stored);
                true
            }
            None => false,
        }
    }

    fn clear(&mut self) {
        self.lru.clear();
        self.expiring.clear();
    }

    /// Drops every entry whose expiry is at or before `now`.
    fn remove_expired(&mut self, now: i64) -> u64 {
        let mut dropped = 0;
        while let Some((expiry, key)) = self.expiring.first() {
            if *expiry > now {
                break;
            }
            let key = Arc::clone(key);
            self.remove(&key);
            dropped += 1;
        }
        self.expired += dropped;
        dropped
    }

    fn unindex(&mut self, expiry: i64, key: &Arc<str>) {
        if expiry != 0 {
            self.expiring.remove(&(expiry, Arc::clone(key)));
        }
    }

    fn get(&mut self, key: &str, now: &dyn Fn() -> i64) -> Option<Value> {
        self.gets += 1;
        let value = self.lru.get(key).cloned()?;
        let expiry = value.expiry_unix_nanos();
        if expiry != 0 && now() >= expiry {
            self.remove(key);
            self.expired += 1;
            return None;
        }
        self.hits += 1;
        Some(value)
    }

    fn stats(&self) -> CacheStats {
        CacheStats {
            bytes: self.lru.bytes(),
            items: self.lru.len() as u64,
            gets: self.gets,
            hits: self.hits,
            evictions: self.evictions,
            expired: self.expired,
        }
    }
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
    main: Part,
    hot: Part,
    /// Request counts of keys missing from main, when counting is on.
    sketch: Option<Box<sketch::Sketch>>,
    /// Main slots hit under shared access, not yet moved to the front.
    recency: recency::RecencyLog,
}

impl Cache {
    /// An empty cache that holds at most `budget` bytes; 0 disables caching.
    pub fn new(budget: u64) -> Self {
        Cache {
            budget,
            main: Part::new(),
            hot: Part::new(),
            sketch: None,
            recency: recency::RecencyLog::new(),
        }
    }

    /// Counts, from now on, how often each key missing from main is asked,
    /// for [`Cache::admits_hot`] (a fixed 16 KiB sketch per cache).
    pub fn count_requests(&mut self) {
        self.sketch
            .get_or_insert_with(|| Box::new(sketch::Sketch::new()));
    }

    /// Whether a value of `cost` bytes fetched for `key` should go into the
    /// hot cache: always while the budget has room for it or while the hot
    /// cache is small enough that main would pay for it (groupcache's
    /// eviction rule), else only if `key` was asked more often recently than
    /// the hot entry it would evict. Without [`Cache::count_requests`],
    /// always.
    pub fn admits_hot(&self, key: &str, cost: u64) -> bool {
        let Some(sketch) = &self.sketch else {
            return true;
        };
        if self.bytes() + cost <= self.budget || self.hot.lru.bytes() <= self.main.lru.bytes() / 8 {
            return true;
        }
        match self.hot.lru.oldest_key() {
            Some(victim) => sketch.estimate(key) > sketch.estimate(victim),
            None => true,
        }
    }

    /// The byte budget shared by main and hot.
    pub fn budget(&self) -> u64 {
        self.budget
    }

    /// Bytes held by main and hot together; never more than the budget.
    pub fn bytes(&self) -> u64 {
        self.main.lru.bytes() + self.hot.lru.bytes()
    }

    /// Looks a key up in main, then hot, marking it recently used and counting
    /// the gets and hits of each cache asked.
    pub fn get(&mut self, key: &str) -> Option<Value> {
        self.get_unexpired(key, &|| i64::MIN)
    }

    /// A main-cache hit served with shared access only, so that hits on
    /// several threads can run at once under a read lock (the group's hot
    /// path). Records the entry's recency (`recency.rs`), applied before the
    /// next change; counts nothing (the caller counts the get and the hit:
    /// the group does so in its lock's reader slots). `None` means "ask
    /// [`Cache::get_unexpired`] with exclusive access": the key is not in
    /// main, its entry expired, or the recency log is full.
    #[inline]
    pub(crate) fn get_main_shared(&self, key: &str, now: &dyn Fn() -> i64) -> Option<Value> {
        let (slot, value) = self.main.lru.peek(key)?;
        let expiry = value.expiry_unix_nanos();
        if expiry != 0 && now() >= expiry {
            return None;
        }
        // The newest entry needs no record, unless earlier records make the
        // list's order stale.
        let unchanged = self.main.lru.is_newest(slot) && self.recency.is_idle();
        if !unchanged && !self.recency.record(slot) {
            return None;
        }
        Some(value.clone())
    }

    /// Applies the recency of the hits served with shared access, oldest
    /// first. Every method taking `&mut self` calls it before anything
    /// else; call it before [`Cache::keys`] for the exact order.
    pub(crate) fn replay_hits(&mut self) {
        if !self.recency.is_empty() {
            let lru = &mut self.main.lru;
            self.recency.replay(|slot| lru.touch(slot));
        }
    }

    /// Like [`Cache::get`], but an entry whose expiry is at or before
    /// `now()` (Unix nanoseconds) is dropped and counted as expired, not as a
    /// hit. `now` is called only for entries that have an expiry.
    pub fn get_unexpired(&mut self, key: &str, now: &dyn Fn() -> i64) -> Option<Value> {
        self.replay_hits();
        if let Some(value) = self.main.get(key, now) {
            return Some(value);
        }
        if let Some(sketch) = &mut self.sketch {
            sketch.record(key);
        }
        // A key lives in one cache only: found expired in main, it is not in hot.
        self.hot.get(key, now)
    }

    /// Stores `value` under `key` in the given cache, then evicts by the rule
    /// in the module docs until the budget holds. Returns whether the value was
    /// stored: `false` when caching is disabled or the entry alone costs more
    /// than the budget (in which case any older value of the key is removed).
    pub fn insert(&mut self, kind: CacheKind, key: &str, value: Value) -> bool {
        self.replay_hits();
        let (this, other) = match kind {
            CacheKind::Main => (&mut self.main, &mut self.hot),
            CacheKind::Hot => (&mut self.hot, &mut self.main),
        };
        other.remove(key);
        if lru::cost(key, &value) > self.budget {
            this.remove(key);
            return false;
        }
        this.insert(key, value);
        self.evict_to_budget();
        true
    }

    /// Removes a key from both caches; returns the value it had, if any.
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        self.replay_hits();
        let main = self.main.remove(key);
        let hot = self.hot.remove(key);
        main.or(hot)
    }

    /// Drops every entry of both caches whose expiry is at or before `now`
    /// (Unix nanoseconds), giving its bytes back to the budget; returns how
    /// many were dropped.
    pub fn remove_expired(&mut self, now_unix_nanos: i64) -> u64 {
        self.replay_hits();
        self.main.remove_expired(now_unix_nanos) + self.hot.remove_expired(now_unix_nanos)
    }

    /// The earliest expiry (Unix nanoseconds) of any entry, if one has one.
    pub fn next_expiry(&self) -> Option<i64> {
        let first = |part: &Part| part.expiring.first().map(|(at, _)| *at);
        match (first(&self.main), first(&self.hot)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// True if either cache holds the key; does not count as a get.
    pub fn contains(&self, key: &str) -> bool {
        self.main.lru.contains(key) || self.hot.lru.contains(key)
    }

    /// Empties both caches. Counters other than bytes and items are kept.
    pub fn clear(&mut self) {
        self.replay_hits();
        self.main.clear();
        self.hot.clear();
    }

    /// The counters of one cache.
    pub fn stats(&self, kind: CacheKind) -> CacheStats {
        match kind {
            CacheKind::Main => self.main.stats(),
            CacheKind::Hot => self.hot.stats(),
        }
    }

    /// Keys of one cache from most to least recently used (for inspection
    /// and tests; it copies every key).
    pub fn keys(&self, kind: CacheKind) -> Vec<String> {
        match kind {
            CacheKind::Main => self.main.lru.keys_newest_first(),
            CacheKind::Hot => self.hot.lru.keys_newest_first(),
        }
    }

    fn evict_to_budget(&mut self) {
        while self.bytes() > self.budget {
            let victim = if self.hot.lru.bytes() > self.main.lru.bytes() / 8 {
                &mut self.hot
            } else {
                &mut self.main
            };
            // The loop condition guarantees one of the two is non-empty, and
            // the rule never picks an empty one: hot is picked only when it
            // holds bytes, main only when hot <= main/8, i.e. main holds bytes
            // whenever the total is positive and hot is small.
            if !victim.pop_oldest() {
                break;
            }
            victim.evictions += 1;
        }
    }
}

#[cfg(test)]
mod tests;
