//! The main cache's entries ranked by what its policy thinks they are
//! worth: what a node that leaves the cluster hands over first
//! ([`crate::Node::leave`]), so that a bound on the bytes sent keeps the
//! entries the new owners would miss most.
//!
//! The rank is W-TinyLFU's own: the sketch's recent request count of each
//! key first (what admission compares), then protected (hit again since
//! admitted), window (new), probation (admitted, not hit since), and
//! within one list the most recently used first (what eviction keeps).

use super::table::List;
use super::Cache;
use crate::Value;
use std::cmp::Reverse;

impl Cache {
    /// The main cache's unexpired values, most valuable first, as many as
    /// fit in `max_bytes` (each costs its key and value, as in the budget;
    /// one that does not fit is skipped and smaller ones after it may
    /// still go). `now_unix_nanos` decides expiry. Cached not-found
    /// answers are left out. It copies each key taken.
    ///
    /// ```
    /// use peercache::cache::Cache;
    /// use peercache::{CacheKind, Value};
    ///
    /// let mut cache = Cache::new(1 << 20);
    /// cache.insert(CacheKind::Main, "rare", Value::from("1"));
    /// cache.insert(CacheKind::Main, "popular", Value::from("2"));
    /// for _ in 0..3 {
    ///     cache.get("popular");
    /// }
    /// let ranked: Vec<String> = cache.most_valuable(u64::MAX, 0).into_iter().map(|(k, _)| k).collect();
    /// assert_eq!(ranked, ["popular", "rare"]);
    /// assert_eq!(cache.most_valuable(8, 0).len(), 1); // "popular" + "2" = 8 bytes
    /// ```
    pub fn most_valuable(&self, max_bytes: u64, now_unix_nanos: i64) -> Vec<(String, Value)> {
        let mut ranked: Vec<(Reverse<u8>, u8, usize, u32)> = Vec::new();
        for (order, list) in [List::Protected, List::Window, List::Probation]
            .into_iter()
            .enumerate()
        {
            let mut at = self.table.newest(list);
            let mut position = 0;
            while let Some(slot) = at {
                if let Some((_, value)) = self.table.get(slot) {
                    let expiry = value.expiry_unix_nanos();
                    let live = expiry == 0 || (!value.is_negative() && expiry > now_unix_nanos);
                    if live {
                        let count = self.sketch.estimate(value.key_bytes());
                        ranked.push((Reverse(count), order as u8, position, slot));
                    }
                }
                position += 1;
                at = self.table.older(slot);
            }
        }
        ranked.sort_unstable();
        let mut room = max_bytes;
        let mut taken = Vec::new();
        for (_, _, _, slot) in ranked {
            let cost = self.table.cost(slot);
            if cost > room {
                continue;
            }
            if let Some((_, value)) = self.table.get(slot) {
                room -= cost;
                let key = String::from_utf8_lossy(value.key_bytes()).into_owned();
                taken.push((key, value.clone()));
            }
            if room == 0 {
                break;
            }
        }
        taken
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CacheKind;

    #[test]
    fn expired_and_not_found_entries_are_left_out() {
        let mut cache = Cache::new(1 << 20);
        cache.insert(CacheKind::Main, "live", Value::from("v"));
        cache.insert(
            CacheKind::Main,
            "old",
            Value::from("v").keyed_expiring(b"old", 10),
        );
        cache.insert(CacheKind::Hot, "copy", Value::from("v"));
        let keys: Vec<String> = cache
            .most_valuable(u64::MAX, 20)
            .into_iter()
            .map(|(key, _)| key)
            .collect();
        assert_eq!(keys, ["live"]);
    }

    #[test]
    fn most_recent_first_at_equal_counts() {
        let mut cache = Cache::new(1 << 20);
        for key in ["a", "b", "c"] {
            cache.insert(CacheKind::Main, key, Value::from("v"));
        }
        let all = cache.most_valuable(u64::MAX, 0);
        assert_eq!(all.len(), 3);
        // Most recently used first within the window.
        assert_eq!(all[0].0, "c");
        let bytes: u64 = all.iter().map(|(k, v)| (k.len() + v.len()) as u64).sum();
        assert_eq!(bytes, 6);
    }
}
