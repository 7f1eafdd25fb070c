//! Look-ups, and what each counts for the main cache's policy: the
//! request in the frequency sketch, the hit's move (window front, or
//! probation to protected), and a hit or miss for the window's climber.
//! Hits under the group's read lock only record themselves
//! (`recency.rs`); [`Cache::replay_hits`] applies them before any change.

use super::evict::hit_main;
use super::table::List;
use super::Cache;
use crate::Value;

/// What a look-up counts for the policy: the request in the sketch, and a
/// hit or a miss of the main cache for the climber (`climb.rs`), whose
/// ratio must count only keys this main cache could hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ask {
    /// Both: a look-up of [`Cache::get`].
    Request,
    /// A group's get: the request, and a main hit; its miss is counted when
    /// a load of the key starts here ([`Ask::LoadStart`]), since a key
    /// owned by another node is no miss of this main cache.
    Get,
    /// A group's look before loading a key it owns: a miss only.
    LoadStart,
    /// A group's look before fetching a key from its owner: nothing.
    Recheck,
}

impl Cache {
    /// A main-cache hit served with shared access only, so that hits on
    /// several threads can run at once under a read lock (the group's hot
    /// path). Records the hit (`recency.rs`), applied before the next
    /// change; counts nothing (the caller counts the get and the hit: the
    /// group does so in its lock's reader slots). `None` means "ask
    /// [`Cache::get_unexpired`] with exclusive access": the key is not in
    /// main, its entry expired or is a cached not-found, or the log of hits
    /// is full.
    #[inline(always)]
    pub(crate) fn get_main_shared(&self, key: &str, now: &dyn Fn() -> i64) -> Option<Value> {
        let entry = self.table.peek(key)?;
        let expiry = entry.value.expiry_unix_nanos();
        // A cached not-found always has an expiry: checked only then.
        if expiry != 0 && (entry.value.is_negative() || now() >= expiry) {
            return None;
        }
        // A hit on the newest entry of the window or of protected moves
        // nothing, unless earlier records make the lists' order stale.
        match entry.newest_of {
            Some(list) if self.recency.is_idle() => {
                self.recency.repeat(usize::from(list == List::Protected));
            }
            _ => {
                if entry.list == List::Hot || !self.recency.record(entry.slot) {
                    return None;
                }
            }
        }
        Some(entry.value.clone())
    }

    /// Applies the hits served with shared access, oldest first. Every
    /// method taking `&mut self` calls it before anything else; call it
    /// before [`Cache::keys`] for the exact order.
    pub(crate) fn replay_hits(&mut self) {
        if self.recency.is_empty() {
            return;
        }
        let mut hits = 0;
        let repeats = self.recency.take_repeats();
        for (list, times) in [(List::Window, repeats[0]), (List::Protected, repeats[1])] {
            if let Some(key) = self.table.newest(list).and_then(|s| self.table.key(s)) {
                for _ in 0..times {
                    self.sketch.record(key);
                }
                hits += u64::from(times);
            }
        }
        let protected = self.protected_budget();
        let (table, sketch) = (&mut self.table, &mut self.sketch);
        self.recency.replay(|slot| {
            hit_main(table, sketch, protected, slot);
            hits += 1;
        });
        self.climber.count(hits, 0, self.table.entries());
    }

    /// [`Cache::get_unexpired`], counting for the policy what `ask` says.
    pub(crate) fn lookup(&mut self, key: &str, now: &dyn Fn() -> i64, ask: Ask) -> Option<Value> {
        self.replay_hits();
        self.main.gets += 1;
        let found = self.table.find(key).and_then(|slot| {
            let (list, value) = self.table.get(slot)?;
            Some((slot, list, value.clone()))
        });
        let Some((slot, list, value)) = found else {
            self.hot.gets += 1;
            self.count_miss(key, ask);
            return None;
        };
        // A hot copy past its maximum age (`age.rs`) is asked of the owner
        // again.
        if list == List::Hot && self.drop_if_aged(slot, now) {
            self.hot.gets += 1;
            self.count_miss(key, ask);
            return None;
        }
        // Hot is asked (and counts a get, as groupcache counts) unless main
        // had the key unexpired; a key lives in one cache only.
        let expiry = value.expiry_unix_nanos();
        if expiry != 0 {
            let now = now();
            if now >= expiry {
                self.hot.gets += 1;
                // Kept for a stale serve while within the grace; a miss all
                // the same.
                if now >= self.reclaim_at(&value) {
                    self.remove_slot(slot);
                    self.counters(list).expired += 1;
                }
                self.count_miss(key, ask);
                return None;
            }
        }
        let counted = matches!(ask, Ask::Request | Ask::Get);
        if list.is_main() {
            self.main.hits += 1;
            if counted {
                let protected = self.protected_budget();
                hit_main(&mut self.table, &mut self.sketch, protected, slot);
                self.climber.count(1, 0, self.table.entries());
            }
        } else {
            self.hot.gets += 1;
            self.hot.hits += 1;
            self.table.touch(slot);
            if counted {
                self.sketch.record(key);
            }
        }
        Some(value)
    }

    fn count_miss(&mut self, key: &str, ask: Ask) {
        if matches!(ask, Ask::Request | Ask::Get) {
            self.sketch.record(key);
        }
        if matches!(ask, Ask::Request | Ask::LoadStart) {
            self.climber.count(0, 1, self.table.entries());
        }
    }

    /// Counts a request for `key` that is not a look-up: a value set by
    /// the application or a peer competes for admission as a key asked
    /// once more (Caffeine counts its writes the same way).
    pub(crate) fn count_request(&mut self, key: &str) {
        self.sketch.record(key);
    }
}
