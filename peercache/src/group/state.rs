//! A group's local state: its cache, the fences that keep changed keys
//! from being refilled by loads that began before the change, and what
//! reads and changes of this node alone do to them.
//!
//! Everything here is under the group's one lock (`read_mostly.rs`), held
//! for a look-up or an insert and never across an `.await`. A hit in the
//! main cache takes only the read side; everything else the write side.

use super::Inner;
use crate::cache::{cost, Ask, Cache, CacheKind};
use crate::fence::Fences;
use crate::read_mostly::WriteGuard;
use crate::Value;
use std::sync::Weak;
use std::time::Duration;

/// How often the background sweeper drops expired entries.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);
/// Keys removed under one taking of the cache lock.
const REMOVE_CHUNK: usize = 64;

/// The cache, its fences and the counters of gets and hits served with the
/// write lock, under one lock.
pub(super) struct Guarded {
    pub(super) cache: Cache,
    pub(super) fences: Fences,
    pub(super) gets: u64,
    pub(super) cache_hits: u64,
}

impl Guarded {
    /// A fresh state with a budget of `cache_bytes`; `count_requests` for
    /// the frequency-based hot-cache admission.
    /// `grace`: how long expired entries are kept for stale serves.
    /// `hot_max_age`: the hot copies' maximum age (zero for none).
    pub(super) fn new(
        cache_bytes: u64,
        count_requests: bool,
        grace: Duration,
        hot_max_age: Duration,
    ) -> Self {
        let mut cache = Cache::new(cache_bytes);
        if count_requests {
            cache.count_requests();
        }
        cache.keep_expired_for(grace);
        cache.limit_hot_age(hot_max_age);
        Guarded {
            cache,
            fences: Fences::new(),
            gets: 0,
            cache_hits: 0,
        }
    }
}

/// Drops expired entries every [`SWEEP_INTERVAL`] until the group is gone.
pub(super) async fn sweep(group: Weak<Inner>) {
    let mut ticks = tokio::time::interval(SWEEP_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        match group.upgrade() {
            Some(inner) => {
                inner.reclaim_expired();
            }
            None => return,
        }
    }
}

impl Inner {
    /// The write side of the cache lock.
    pub(super) fn lock_cache(&self) -> WriteGuard<'_, Guarded> {
        self.cache.write()
    }

    /// A get's look-up: a main hit under the read lock, else main then hot
    /// under the write lock. Counts the get, and the hit if there is one.
    /// The value may be a cached not-found: [`Inner::answer`] reads it.
    #[inline]
    pub(super) fn lookup(&self, key: &str) -> Option<Value> {
        let now = || self.clock.now_unix_nanos();
        {
            let shared = self.cache.read();
            if let Some(value) = shared.cache.get_main_shared(key, &now) {
                shared.count();
                return Some(value);
            }
        }
        let mut guarded = self.lock_cache();
        self.lookup_locked(&mut guarded, key, Ask::Get)
    }

    /// A look-up under the write lock; `ask` says what it counts for the
    /// cache's policy, and only [`Ask::Get`] counts as a get of the group.
    pub(super) fn lookup_locked(
        &self,
        guarded: &mut Guarded,
        key: &str,
        ask: Ask,
    ) -> Option<Value> {
        let is_get = ask == Ask::Get;
        guarded.gets += u64::from(is_get);
        // The clock is read only for values that have an expiry, which keeps
        // it off the common hit path.
        let value = guarded
            .cache
            .lookup(key, &|| self.clock.now_unix_nanos(), ask);
        guarded.cache_hits += u64::from(value.is_some());
        value
    }

    /// The start of a load (`owned`: this node's loader; else a fetch from
    /// the owner): the cached answer if a racing load just stored one, else
    /// the fence ticket that the load's insert will need.
    pub(super) fn begin_load(&self, key: &str, owned: bool) -> Result<super::Outcome, u64> {
        let mut guarded = self.lock_cache();
        let ask = if owned { Ask::LoadStart } else { Ask::Recheck };
        match self.lookup_locked(&mut guarded, key, ask) {
            Some(value) => {
                drop(guarded);
                Ok(self.answer(key, value))
            }
            None => Err(guarded.fences.ticket()),
        }
    }

    /// Caches a loaded or fetched value, unless the key was removed, set or
    /// purged after the load began (`ticket`) or the value already expired;
    /// says whether it was kept.
    pub(super) fn store(&self, kind: CacheKind, key: &str, value: &Value, ticket: u64) -> bool {
        self.keep(kind, false, key, value, ticket)
    }

    /// [`Inner::store`] of a value borrowed from another node (a peek, a
    /// handoff) into the main cache, marked as such (`cache/borrowed.rs`).
    pub(super) fn store_borrowed(&self, key: &str, value: &Value, ticket: u64) -> bool {
        self.keep(CacheKind::Main, true, key, value, ticket)
    }

    fn keep(&self, kind: CacheKind, borrowed: bool, key: &str, value: &Value, ticket: u64) -> bool {
        // The clock is read only when something has an expiry: the value,
        // or an entry of the cache (a miss's insert is a hot path too).
        let expiry = value.expiry_unix_nanos();
        let mut now = (expiry != 0).then(|| self.clock.now_unix_nanos());
        let mut guarded = self.lock_cache();
        if let Some(first) = guarded.cache.next_expiry() {
            let now = *now.get_or_insert_with(|| self.clock.now_unix_nanos());
            if first <= now {
                guarded.cache.remove_expired(now);
            }
        }
        if !guarded.fences.admits(key, ticket) {
            tracing::debug!(
                group = %self.name,
                key = %self.key_in_traces.show(key),
                "not caching a value loaded before the key changed"
            );
            return false;
        }
        if now.is_some_and(|now| expiry != 0 && expiry <= now) {
            return false;
        }
        // A hot copy already held (stale, or a not-found) is replaced
        // whatever the admission, or it would be served stale again.
        if kind == CacheKind::Hot
            && !guarded.cache.contains(key)
            && !guarded.cache.admits_hot(key, cost(key, value))
        {
            return false;
        }
        self.note_windows(value);
        if kind == CacheKind::Hot && guarded.cache.hot_age_limited() {
            let now = now.unwrap_or_else(|| self.clock.now_unix_nanos());
            guarded.cache.insert_hot_copy(key, value.clone(), now)
        } else if borrowed {
            guarded.cache.insert_borrowed(key, value.clone())
        } else {
            guarded.cache.insert(kind, key, value.clone())
        }
    }

    pub(super) fn is_expired(&self, value: &Value) -> bool {
        let expiry = value.expiry_unix_nanos();
        expiry != 0 && self.clock.now_unix_nanos() >= expiry
    }

    /// `value` with the group's time-to-live if it has no expiry of its own;
    /// made in the form the cache keeps under `key`, so that storing it
    /// copies nothing more.
    pub(super) fn with_default_ttl(&self, key: &str, value: Value) -> Value {
        match self.ttl {
            Some(ttl) if value.expiry_unix_nanos() == 0 => {
                let ttl = i64::try_from(ttl.as_nanos()).unwrap_or(i64::MAX);
                let at = self.clock.now_unix_nanos().saturating_add(ttl);
                value.keyed_expiring(key.as_bytes(), at)
            }
            _ => value,
        }
    }

    pub(super) fn reclaim_expired(&self) -> u64 {
        let now = self.clock.now_unix_nanos();
        let mut guarded = self.lock_cache();
        match guarded.cache.next_expiry() {
            Some(at) if at <= now => guarded.cache.remove_expired(now),
            _ => 0,
        }
    }

    pub(super) fn remove_here<S: AsRef<str>>(&self, keys: &[S]) {
        self.drop_here(keys, false);
    }

    /// Drops the hot copies of `keys` (not main entries), fencing their
    /// loads in flight and detaching their fetches, as a removal does.
    pub(super) fn drop_copies_here<S: AsRef<str>>(&self, keys: &[S]) {
        self.drop_here(keys, true);
    }

    /// Drops `keys` (only their hot copies with `copies_only`), fences
    /// their loads in flight and detaches their flights (the loads here
    /// only when main entries go too).
    fn drop_here<S: AsRef<str>>(&self, keys: &[S], copies_only: bool) {
        // The lock is taken per chunk, not for the whole list: gets wait
        // for at most one chunk of a long removal.
        for chunk in keys.chunks(REMOVE_CHUNK) {
            {
                let mut guarded = self.lock_cache();
                for key in chunk {
                    if copies_only {
                        guarded.cache.remove_hot(key.as_ref());
                    } else {
                        guarded.cache.remove(key.as_ref());
                    }
                    guarded.fences.invalidate(key.as_ref());
                }
            }
            for key in chunk {
                if !copies_only {
                    self.local.forget(key.as_ref());
                }
                self.remote.forget(key.as_ref());
            }
        }
    }

    /// Drops every hot copy (not main entries), fencing every load in
    /// flight and detaching the fetches in flight.
    pub(super) fn drop_all_copies_here(&self) {
        {
            let mut guarded = self.lock_cache();
            guarded.cache.clear_hot();
            guarded.fences.invalidate_all();
        }
        self.remote.forget_all();
    }

    pub(super) fn set_here(&self, key: &str, value: Value) {
        let expired = self.is_expired(&value);
        {
            let mut guarded = self.lock_cache();
            guarded.fences.invalidate(key);
            if expired {
                guarded.cache.remove(key);
            } else {
                self.note_windows(&value);
                guarded.cache.count_request(key);
                guarded.cache.insert(CacheKind::Main, key, value);
            }
        }
        self.local.forget(key);
        self.remote.forget(key);
    }

    pub(super) fn purge_here(&self) {
        {
            let mut guarded = self.lock_cache();
            guarded.cache.clear();
            guarded.fences.invalidate_all();
        }
        self.local.forget_all();
        self.remote.forget_all();
    }
}
