//! Per-group counters with groupcache's names and meanings.
//!
//! Counters are relaxed atomics, bumped on the hot path without a lock; a
//! [`GroupStats`] is a plain, serde-serialisable snapshot of them (plus the two
//! caches' counters) that needs no metrics exporter.

use crate::cache::CacheStats;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of one group's counters. Field names and meanings follow Go's
/// `groupcache.Stats`.
///
/// Taken with [`crate::Group::stats`] or, for every group, with
/// [`crate::Node::stats`]; it serialises with serde (e.g. for a JSON stats
/// page):
///
/// ```
/// use peercache::{loader_fn, Node};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let node = Node::new();
/// let group = node.new_group("echo", 1 << 20, loader_fn(|k: String| async move { Ok(k) }))?;
/// for _ in 0..4 {
///     group.get("hello").await?;
/// }
/// let stats = group.stats();
/// assert_eq!((stats.gets, stats.cache_hits, stats.loads), (4, 3, 1));
/// assert_eq!(stats.main_cache.items, 1);
/// assert_eq!(stats.budget_bytes, 1 << 20);
///
/// let json = serde_json::to_value(&node.stats())?;
/// assert_eq!(json[0]["name"], "echo");
/// assert_eq!(json[0]["cache_hits"], 3);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupStats {
    /// The group's name.
    pub name: String,
    /// Every `get`, and every request served to a peer.
    pub gets: u64,
    /// Gets answered from the main or hot cache (including a load that found
    /// the key already cached by a racing load).
    pub cache_hits: u64,
    /// Values fetched from the owning peer.
    pub peer_loads: u64,
    /// Fetches from a peer that failed in transport (then loaded locally).
    pub peer_errors: u64,
    /// Gets that missed the cache and needed a load (before merging).
    pub loads: u64,
    /// Loads started, whether here or as a fetch from the owner. A miss
    /// that finds no load of its key in flight starts one; a miss that finds
    /// one waits for it and is not counted here. So `loads - loads_deduped`
    /// gets were answered by another get's load; without concurrent misses
    /// of a key the two counts are equal.
    ///
    /// The name, despite how it reads, is Go's `LoadsDeduped`: the loads
    /// left after deduplication, not the duplicates removed. It stays, as
    /// does the metric `groupcache_loads_deduped_total`, because dashboards
    /// built on mailgun/groupcache's exporter read both.
    pub loads_deduped: u64,
    /// Successful calls of this node's loader.
    pub local_loads: u64,
    /// Failed (or panicked) calls of this node's loader.
    pub local_load_errs: u64,
    /// Keys not loaded because the group's loads were at their cap
    /// ([`crate::GroupBuilder::max_concurrent_loads`]) for the whole wait.
    #[serde(default)]
    pub loads_refused: u64,
    /// Keys not loaded because the group's origin breaker was open
    /// ([`crate::GroupBuilder::origin_breaker`]).
    #[serde(default)]
    pub loads_failed_fast: u64,
    /// Expired values served at once while a refresh runs
    /// ([`crate::GroupBuilder::stale_while_revalidate`]).
    #[serde(default)]
    pub stale_served: u64,
    /// Expired values served because their load failed
    /// ([`crate::GroupBuilder::stale_if_error`]).
    #[serde(default)]
    pub stale_if_error: u64,
    /// Background refreshes started for values served stale.
    #[serde(default)]
    pub refreshes: u64,
    /// Gets answered not-found from a cached not-found
    /// ([`crate::GroupBuilder::cache_not_found`]), without asking the
    /// origin or the owner.
    #[serde(default)]
    pub negative_hits: u64,
    /// Keys asked by peers and served by this group: one per single get,
    /// one per key of a batch.
    pub server_requests: u64,
    /// Batch requests from peers served by this group (each also counts
    /// its keys in `server_requests`).
    #[serde(default)]
    pub server_batches: u64,
    /// Changes waiting for peers that did not answer them: keys to drop,
    /// plus one per purge (`Group::pending_hints` has them per peer).
    #[serde(default)]
    pub hints_pending: u64,
    /// Changes delivered to a peer after it missed them (keys, and purges).
    #[serde(default)]
    pub hints_delivered: u64,
    /// Times the changes kept for a peer went past
    /// [`crate::HintLimits`] and collapsed into a purge of the group there.
    #[serde(default)]
    pub hints_collapsed: u64,
    /// Peeks this node sent before loading a key it came to own: asks of
    /// the key's owner on an earlier ring for its cached value
    /// (README "Deploys and scaling").
    #[serde(default)]
    pub peeks: u64,
    /// Peeks answered with a value (one origin load saved each).
    #[serde(default)]
    pub peek_hits: u64,
    /// Peeks that brought no value (not held there, or the peer failed).
    #[serde(default)]
    pub peek_misses: u64,
    /// Peers' peeks this node answered with a value.
    #[serde(default)]
    pub peeks_served: u64,
    /// Values this node handed over as it left, and their new owners kept.
    #[serde(default)]
    pub handed_over: u64,
    /// Values a leaving peer handed over that this node kept.
    #[serde(default)]
    pub handoff_received: u64,
    /// The main cache: keys this node owns.
    pub main_cache: CacheStats,
    /// The hot cache: copies of popular keys owned by peers.
    pub hot_cache: CacheStats,
    /// The byte budget the two caches share.
    #[serde(default)]
    pub budget_bytes: u64,
}

/// The live counters behind [`GroupStats`] (`gets` and `cache_hits` are kept
/// by the group under its cache lock, so that a hit needs no atomic).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub peer_loads: AtomicU64,
    pub peer_errors: AtomicU64,
    pub loads: AtomicU64,
    pub loads_deduped: AtomicU64,
    pub local_loads: AtomicU64,
    pub local_load_errs: AtomicU64,
    pub loads_refused: AtomicU64,
    pub loads_failed_fast: AtomicU64,
    pub stale_served: AtomicU64,
    pub stale_if_error: AtomicU64,
    pub refreshes: AtomicU64,
    pub negative_hits: AtomicU64,
    pub server_requests: AtomicU64,
    pub server_batches: AtomicU64,
    pub peeks: AtomicU64,
    pub peek_hits: AtomicU64,
    pub peek_misses: AtomicU64,
    pub peeks_served: AtomicU64,
    pub handed_over: AtomicU64,
    pub handoff_received: AtomicU64,
}

/// Adds one to a counter (relaxed: counters order nothing).
pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Counters {
    /// The snapshot, given the counters kept under the cache lock:
    /// `[gets, cache_hits]` and the `[main, hot]` cache stats.
    pub fn snapshot(
        &self,
        name: &str,
        [gets, cache_hits]: [u64; 2],
        [main_cache, hot_cache]: [CacheStats; 2],
    ) -> GroupStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        GroupStats {
            name: name.to_owned(),
            gets,
            cache_hits,
            peer_loads: get(&self.peer_loads),
            peer_errors: get(&self.peer_errors),
            loads: get(&self.loads),
            loads_deduped: get(&self.loads_deduped),
            local_loads: get(&self.local_loads),
            local_load_errs: get(&self.local_load_errs),
            loads_refused: get(&self.loads_refused),
            loads_failed_fast: get(&self.loads_failed_fast),
            stale_served: get(&self.stale_served),
            stale_if_error: get(&self.stale_if_error),
            refreshes: get(&self.refreshes),
            negative_hits: get(&self.negative_hits),
            server_requests: get(&self.server_requests),
            server_batches: get(&self.server_batches),
            hints_pending: 0,
            hints_delivered: 0,
            hints_collapsed: 0,
            peeks: get(&self.peeks),
            peek_hits: get(&self.peek_hits),
            peek_misses: get(&self.peek_misses),
            peeks_served: get(&self.peeks_served),
            handed_over: get(&self.handed_over),
            handoff_received: get(&self.handoff_received),
            main_cache,
            hot_cache,
            budget_bytes: 0,
        }
    }
}
