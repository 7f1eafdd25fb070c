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

/// The lists of the main cache, in the order their entries rank at equal
/// counts.
const ORDER: [List; 3] = [List::Protected, List::Window, List::Probation];

/// One rank: a sketch count (0 to 255) and a list.
const RANKS: usize = 256 * ORDER.len();

impl Cache {
    /// The main cache's unexpired values, most valuable first, as many as
    /// fit in `max_bytes` (each costs its key and value, as in the budget):
    /// whole ranks while they fit, then the entries of the first rank
    /// that does not, most recently used first, each that still fits.
    /// `now_unix_nanos` decides expiry. Cached not-found answers are left
    /// out. It copies each key taken.
    ///
    /// Two walks of the main lists, without sorting or a copy of the
    /// entries not taken: a node with millions of entries holds its lock
    /// for two passes over them, and allocates for what it hands over only.
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
        // First walk: the bytes of each rank.
        let mut bytes = vec![0u64; RANKS];
        self.each_live(now_unix_nanos, |rank, cost, _| bytes[rank] += cost);
        // The ranks taken whole, and the one taken in part.
        let mut room = max_bytes;
        let mut last = RANKS;
        for (rank, &cost) in bytes.iter().enumerate() {
            if cost > room {
                last = rank;
                break;
            }
            room -= cost;
        }
        // Second walk: the values of those ranks, in rank order.
        let mut taken: Vec<Vec<(String, Value)>> = vec![Vec::new(); RANKS.min(last + 1)];
        self.each_live(now_unix_nanos, |rank, cost, value| {
            if rank < last || (rank == last && cost <= room) {
                if rank == last {
                    room -= cost;
                }
                let key = String::from_utf8_lossy(value.key_bytes()).into_owned();
                taken[rank].push((key, value.clone()));
            }
        });
        taken.into_iter().flatten().collect()
    }

    /// Calls `each(rank, cost, value)` for every unexpired main value that
    /// is not a cached not-found: the lists in [`ORDER`], each from its
    /// most recently used entry.
    fn each_live(&self, now: i64, mut each: impl FnMut(usize, u64, &Value)) {
        for (order, list) in ORDER.into_iter().enumerate() {
            let mut at = self.table.newest(list);
            while let Some(slot) = at {
                if let Some((_, value)) = self.table.get(slot) {
                    let expiry = value.expiry_unix_nanos();
                    if expiry == 0 || (!value.is_negative() && expiry > now) {
                        let count = usize::from(self.sketch.estimate(value.key_bytes()));
                        let rank = (255 - count) * ORDER.len() + order;
                        each(rank, self.table.cost(slot), value);
                    }
                }
                at = self.table.older(slot);
            }
        }
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
    fn a_rank_that_does_not_fit_whole_gives_what_fits_and_no_later_rank_goes() {
        let mut cache = Cache::new(1 << 20);
        for key in ["a", "b", "c"] {
            cache.insert(CacheKind::Main, key, Value::from("1234")); // 5 bytes each
        }
        cache.insert(CacheKind::Main, "r", Value::from("1"));
        for _ in 0..2 {
            for key in ["a", "b", "c"] {
                cache.get(key);
            }
        }
        let keys = |max| -> Vec<String> {
            let taken = cache.most_valuable(max, 0);
            taken.into_iter().map(|(k, _)| k).collect()
        };
        assert_eq!(keys(15).len(), 3);
        assert_eq!(keys(12).len(), 2, "two of the three fit");
        assert!(!keys(12).contains(&"r".to_owned()), "a later rank waits");
        assert_eq!(keys(17), [keys(15), vec!["r".to_owned()]].concat());
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
