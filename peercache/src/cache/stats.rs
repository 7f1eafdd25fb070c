//! Which of a group's two caches, and the counters of one: types a user
//! reads in [`crate::GroupStats`], at the crate root.

use serde::{Deserialize, Serialize};

/// Which of a group's two caches.
///
/// ```
/// use peercache::cache::Cache;
/// use peercache::{CacheKind, Value};
///
/// let mut cache = Cache::new(1024);
/// cache.insert(CacheKind::Hot, "k", Value::from("copy from the owner"));
/// cache.insert(CacheKind::Main, "k", Value::from("loaded here"));
/// // A key lives in one cache only: the main insert dropped the hot copy.
/// assert!(cache.keys(CacheKind::Hot).is_empty());
/// assert_eq!(cache.keys(CacheKind::Main), ["k"]);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheKind {
    /// Keys this node owns and loaded itself.
    Main,
    /// Copies of popular keys owned by other peers.
    Hot,
}

/// Counters of one cache, with groupcache's meaning (`CacheStats` in Go).
///
/// A group's two are in its [`crate::GroupStats`] (`main_cache`,
/// `hot_cache`); a [`Cache`](super::Cache) gives them with [`Cache::stats`](super::Cache::stats):
///
/// ```
/// use peercache::cache::Cache;
/// use peercache::{CacheKind, Value};
///
/// let mut cache = Cache::new(10);
/// cache.insert(CacheKind::Main, "a", Value::from("1234")); // costs 5 bytes
/// cache.insert(CacheKind::Main, "b", Value::from("1234"));
/// assert!(cache.get("b").is_some());
/// assert!(cache.get("c").is_none());
/// // Over budget; "c" was asked once, more than "a": "a" goes.
/// cache.insert(CacheKind::Main, "c", Value::from("1234"));
/// assert!(cache.get("a").is_none());
///
/// let main = cache.stats(CacheKind::Main);
/// assert_eq!((main.bytes, main.items, main.evictions), (10, 2, 1));
/// assert_eq!((main.gets, main.hits), (3, 1));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheStats {
    /// Bytes held: the sum of `len(key) + len(value)` over the entries.
    pub bytes: u64,
    /// Number of entries.
    pub items: u64,
    /// Look-ups made in this cache.
    pub gets: u64,
    /// Look-ups that found the key.
    pub hits: u64,
    /// Entries evicted to stay within the budget (not counting removals).
    pub evictions: u64,
    /// Entries dropped because their expiry passed.
    #[serde(default)]
    pub expired: u64,
    /// Hot entries dropped because they were older than the hot copies'
    /// maximum age ([`crate::GroupBuilder::hot_max_age`]); 0 for main.
    #[serde(default)]
    pub aged: u64,
}
