//! A group: a named cache with a loader, and the one read path.
//!
//! [`Group::get`] looks in the main cache, then the hot cache; on a miss it
//! asks the [`PeerPicker`] who owns the key. If another peer owns it, the value
//! is fetched from that peer (and, per [`HotCachePolicy`], kept in the hot
//! cache); if this node owns it, or the owner cannot be reached, this node's
//! [`Loader`](crate::Loader) runs and the value goes into the main cache.
//!
//! Concurrent misses of one key are merged ([`crate::flight`]) in two tables:
//!
//! - `remote`: fetches from the owner, one per key;
//! - `local`: calls of this node's loader, one per key. Both a get this node
//!   owns and a request served to a peer ([`Group::serve_peer`]) go through
//!   it, so the loader never runs twice at once for one key on one node.
//!
//! A request served to a peer never consults the picker: it is answered from
//! this node's cache or loader and never forwarded. Two nodes whose peer
//! lists disagree (each thinking the other owns a key) therefore cannot wait
//! on each other, the distributed deadlock golang/groupcache can fall into.
//!
//! Changes ([`Group::remove`], [`Group::remove_keys`], [`Group::set`],
//! [`Group::purge`]) go to the owner first, then this node, then every other
//! peer at once, so a non-owner that refills its hot copy between two steps
//! refills it from an owner that already changed. A load in flight when its
//! key changes is detached from the merge tables (later gets start afresh)
//! and fenced (`crate::fence`): its value goes to its waiters but not into
//! the cache. Failures are reported by peer ([`Error::PeersFailed`]).
//!
//! Expiry is read from the group's [`Clock`]. A value past its expiry is never
//! served; expired entries are dropped from the budget before every insert,
//! on [`Group::stats`], by [`Group::reclaim_expired`], and every second by a
//! sweeper task when the group is built inside a tokio runtime.
//!
//! The cache sits behind a reader-writer lock, held only for a look-up or an
//! insert, never across an `.await` (a blocking lock is cheaper than tokio's
//! for such short sections). A hit in the main cache, the common case, takes
//! only the read side: hits on several threads run at once, and the hit's
//! recency is recorded and applied at the next change (`cache/recency.rs`),
//! so the LRU order stays exact. Everything else (hot hits, which also count
//! the key for [`HotCachePolicy::Frequent`], misses, inserts, changes) takes
//! the write side. The `gets` and `cache_hits` counters of those live under
//! the lock; the read-side hits are counted in the lock's per-thread reader
//! slots, added in [`Group::stats`].
//!
//! The lock is `read_mostly.rs`: each thread reads through a slot of its
//! own, so a read costs one fenced store, readers on different threads
//! write no common cache line, and counting the hit there costs a plain
//! store. A plain `RwLock`'s reader count is one line every hit on every
//! core writes twice; crossbeam's `ShardedLock`, used before, still paid
//! two atomic read-modify-writes per read and one more to count the hit,
//! most of a hit (BENCHMARKS.md). A write costs a mutex and one load per
//! thread that ever read, paid by misses, which cost microseconds anyway.

use crate::cache::{cost, Cache, CacheKind};
use crate::clock::Clock;
use crate::error::{Error, PeerFailure};
use crate::fence::Fences;
use crate::flight::{panic_message, Call, Flight, Panicked, Role};
use crate::loader::{DynLoader, LoadError};
use crate::peers::{FetchError, Peer, PeerError, PeerPicker};
use crate::read_mostly::{ReadMostlyLock, WriteGuard};
use crate::stats::{bump, Counters, GroupStats};
use crate::trace::{Escaped, KeyInTraces, Timed};
use crate::Value;
use futures_util::future::join_all;
use futures_util::FutureExt;
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};
use tracing::field::Empty;
use tracing::Instrument;

/// How often the background sweeper drops expired entries.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);
/// Keys removed under one taking of the cache lock.
const REMOVE_CHUNK: usize = 64;

/// When a value fetched from its owning peer is also kept in the hot cache.
///
/// Set per group with [`crate::GroupBuilder::hot_cache`]; a group that does
/// not set one takes its transport's default
/// ([`PeerPicker::hot_cache_policy`]). With `Always`, the second get of a key
/// owned elsewhere is a local hit:
///
/// ```
/// use peercache::in_process::InProcessNetwork;
/// use peercache::{loader_fn, CacheKind, HotCachePolicy, LoadError};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let network = InProcessNetwork::new();
/// let (a, b) = (network.node("a", &["a", "b"])?, network.node("b", &["a", "b"])?);
/// for (node, id) in [(&a, "a"), (&b, "b")] {
///     let loader = loader_fn(move |key: String| async move { Ok::<_, LoadError>(format!("{key} by {id}")) });
///     node.group_builder("g").hot_cache(HotCachePolicy::Always).build(loader)?;
/// }
///
/// // The ring puts "green" on b: a fetches it once, then serves its copy.
/// let g = a.group("g").unwrap();
/// assert_eq!(g.get("green").await?.as_str()?, "green by b");
/// assert_eq!(g.get("green").await?.as_str()?, "green by b");
/// assert_eq!(network.fetches(), 1);
/// assert_eq!(g.cached_keys(CacheKind::Hot), ["green"]);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HotCachePolicy {
    /// Never: every get of a key owned elsewhere crosses to the owner.
    Never,
    /// Always (mailgun/groupcache's behaviour).
    Always,
    /// With probability `1/n` per fetch (golang/groupcache uses 1 in 10, so
    /// only keys fetched often end up mirrored). `OneIn(1)` is always,
    /// `OneIn(0)` never.
    OneIn(u32),
    /// By how often the key is asked (the default): a fetched value is
    /// mirrored at once while the budget has room for it, and under
    /// pressure only if its key was asked more often recently than the hot
    /// entry it would evict. The group counts the asks of keys it does not
    /// own in a small sketch (16 KiB). A popular key crosses the network
    /// once instead of about ten times, and a key asked once cannot push a
    /// popular one out. Go's protocol carries a `minute_qps` field for this
    /// decision that golang/groupcache never used; this policy needs no
    /// help from the owner.
    Frequent,
}

impl Default for HotCachePolicy {
    /// [`HotCachePolicy::Frequent`].
    fn default() -> Self {
        HotCachePolicy::Frequent
    }
}

impl HotCachePolicy {
    /// Whether a fetched value may go to the hot cache at all; `Frequent`
    /// decides in the cache, with the counts ([`Cache::admits_hot`]).
    fn admits(self) -> bool {
        match self {
            HotCachePolicy::Never | HotCachePolicy::OneIn(0) => false,
            HotCachePolicy::Always | HotCachePolicy::OneIn(1) | HotCachePolicy::Frequent => true,
            HotCachePolicy::OneIn(n) => fastrand::u32(..n) == 0,
        }
    }
}

/// A named, byte-budgeted cache whose misses are filled by the key's owner.
///
/// Cheap to clone: clones share the cache. Get one from
/// [`crate::Node::new_group`] or [`crate::Node::group`].
///
/// ```
/// use peercache::{loader_fn, LoadError, Node};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), peercache::Error> {
/// let node = Node::new();
/// let prices = node.new_group("prices", 1 << 20, loader_fn(|item: String| async move {
///     match item.as_str() {
///         "apple" => Ok("1.20"),
///         _ => Err(LoadError::NotFound),
///     }
/// }))?;
///
/// assert_eq!(prices.get("apple").await?.as_str().unwrap(), "1.20"); // loaded
/// assert_eq!(prices.get("apple").await?.as_str().unwrap(), "1.20"); // cached
/// assert!(prices.get("durian").await.unwrap_err().is_not_found()); // not cached
///
/// prices.set("apple", "0.99", None).await?; // every node now serves 0.99
/// assert_eq!(prices.get("apple").await?.as_str().unwrap(), "0.99");
/// prices.remove("apple").await?; // the next get loads again
/// assert_eq!(prices.get("apple").await?.as_str().unwrap(), "1.20");
///
/// let stats = prices.stats();
/// assert_eq!((stats.gets, stats.cache_hits, stats.local_loads), (5, 2, 2));
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Group {
    inner: Arc<Inner>,
}

type Outcome = Result<Value, Error>;

struct Inner {
    name: Arc<str>,
    loader: Box<dyn DynLoader>,
    picker: Option<Arc<dyn PeerPicker>>,
    hot_cache: HotCachePolicy,
    clock: Arc<dyn Clock>,
    ttl: Option<Duration>,
    load_timeout: Option<Duration>,
    key_in_traces: KeyInTraces,
    cache: ReadMostlyLock<Guarded>,
    counters: Counters,
    remote: Flight<Outcome>,
    local: Flight<Outcome>,
}

impl fmt::Debug for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Group")
            .field("name", &self.inner.name)
            .field("cache_bytes", &self.cache_bytes())
            .field("hot_cache", &self.inner.hot_cache)
            .field("ttl", &self.inner.ttl)
            .finish()
    }
}

/// What [`crate::GroupBuilder`] hands to [`Group::new`].
pub(crate) struct Settings {
    pub cache_bytes: u64,
    pub hot_cache: HotCachePolicy,
    pub ttl: Option<Duration>,
    pub load_timeout: Option<Duration>,
    pub key_in_traces: KeyInTraces,
    pub clock: Arc<dyn Clock>,
}

impl Group {
    pub(crate) fn new(
        name: &str,
        settings: Settings,
        loader: Box<dyn DynLoader>,
        picker: Option<Arc<dyn PeerPicker>>,
    ) -> Self {
        let inner = Arc::new(Inner {
            name: Arc::from(name),
            loader,
            picker,
            hot_cache: settings.hot_cache,
            clock: settings.clock,
            ttl: settings.ttl,
            load_timeout: settings.load_timeout,
            key_in_traces: settings.key_in_traces,
            cache: ReadMostlyLock::new(Guarded {
                cache: {
                    let mut cache = Cache::new(settings.cache_bytes);
                    if settings.hot_cache == HotCachePolicy::Frequent {
                        cache.count_requests();
                    }
                    cache
                },
                fences: Fences::new(),
                gets: 0,
                cache_hits: 0,
            }),
            counters: Counters::default(),
            remote: Flight::new(),
            local: Flight::new(),
        });
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(sweep(Arc::downgrade(&inner)));
        }
        Group { inner }
    }

    /// The group's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The byte budget shared by the main and hot caches.
    pub fn cache_bytes(&self) -> u64 {
        self.inner.lock_cache().cache.budget()
    }

    /// The hot-cache policy.
    pub fn hot_cache_policy(&self) -> HotCachePolicy {
        self.inner.hot_cache
    }

    /// The default time-to-live of values loaded or set here without an
    /// expiry of their own.
    pub fn ttl(&self) -> Option<Duration> {
        self.inner.ttl
    }

    /// The value of `key`: from the main cache, the hot cache, the owning
    /// peer, or this node's loader, in that order.
    ///
    /// Concurrent gets of one missing key share one load. Errors are never
    /// cached. The load is spawned on the current tokio runtime and completes
    /// (filling the cache) even if this future is dropped; outside a runtime
    /// a miss fails with [`Error::NoRuntime`].
    ///
    /// ```
    /// use peercache::{loader_fn, LoadError, Node};
    /// use std::sync::atomic::{AtomicU32, Ordering};
    /// use std::sync::Arc;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), peercache::Error> {
    /// let loads = Arc::new(AtomicU32::new(0));
    /// let counted = Arc::clone(&loads);
    /// let squares = Node::new().new_group("squares", 1 << 20, loader_fn(move |key: String| {
    ///     counted.fetch_add(1, Ordering::SeqCst);
    ///     async move {
    ///         let n: u64 = key.parse().map_err(|_| LoadError::NotFound)?;
    ///         Ok((n * n).to_string())
    ///     }
    /// }))?;
    ///
    /// // Three concurrent gets of one key: one load, three answers.
    /// let (a, b, c) = tokio::join!(squares.get("12"), squares.get("12"), squares.get("12"));
    /// assert_eq!(a?.as_str().unwrap(), "144");
    /// assert_eq!(b?, c?);
    /// assert_eq!(loads.load(Ordering::SeqCst), 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn get<'a>(&'a self, key: &'a str) -> Get<'a> {
        Get {
            inner: &self.inner,
            key,
            miss: None,
        }
    }

    /// Serves `key` to a peer that asked for it: from this node's cache or
    /// its loader, and **never forwarded** to another peer, whatever this
    /// node's ring says. Transports call this for incoming peer requests;
    /// it counts `server_requests`.
    pub async fn serve_peer(&self, key: &str) -> Result<Value, Error> {
        bump(&self.inner.counters.server_requests);
        if let Some(value) = self.inner.lookup(key) {
            return Ok(value);
        }
        self.inner.miss(key, Route::HereOnly).await
    }

    /// Removes `key` from the whole cluster: from its owner first, then from
    /// this node, then from every other peer's caches at once. The next get
    /// anywhere loads it again.
    ///
    /// A get racing with the removal may still return the old value; a get
    /// that starts after `remove` returned `Ok` does not, on any node. On
    /// `Err(`[`Error::PeersFailed`]`)` every peer named there may still hold
    /// the old value; the others do not.
    ///
    /// ```
    /// use peercache::{loader_fn, LoadError, Node};
    /// use std::sync::atomic::{AtomicU32, Ordering};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), peercache::Error> {
    /// let version = AtomicU32::new(0);
    /// let docs = Node::new().new_group("docs", 1 << 20, loader_fn(move |_key: String| {
    ///     let v = version.fetch_add(1, Ordering::SeqCst) + 1;
    ///     async move { Ok::<_, LoadError>(format!("v{v}")) }
    /// }))?;
    /// assert_eq!(docs.get("readme").await?.as_str().unwrap(), "v1");
    /// assert_eq!(docs.get("readme").await?.as_str().unwrap(), "v1"); // cached
    /// docs.remove("readme").await?;
    /// assert_eq!(docs.get("readme").await?.as_str().unwrap(), "v2"); // loaded again
    /// # Ok(())
    /// # }
    /// ```
    pub async fn remove(&self, key: &str) -> Result<(), Error> {
        self.remove_keys([key]).await
    }

    /// Removes several keys from the whole cluster with one request per peer
    /// and step (a `DELETE` for one key, mailgun v3's `_remove-keys` `POST`
    /// for several), with [`Group::remove`]'s order and guarantees.
    ///
    /// ```
    /// # use peercache::{loader_fn, CacheKind, Node};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), peercache::Error> {
    /// # let group = Node::new().new_group("g", 1 << 20, loader_fn(|k: String| async move { Ok(k) }))?;
    /// for key in ["a", "b", "c"] {
    ///     group.get(key).await?;
    /// }
    /// group.remove_keys(["a", "c"]).await?;
    /// assert_eq!(group.cached_keys(CacheKind::Main), ["b"]);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn remove_keys<I, S>(&self, keys: I) -> Result<(), Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut keys: Vec<String> = keys.into_iter().map(|k| k.as_ref().to_owned()).collect();
        keys.sort_unstable();
        keys.dedup();
        if keys.is_empty() {
            return Ok(());
        }
        let action = match keys.as_slice() {
            [key] => format!("remove of key {key:?}"),
            _ => format!("remove of {} keys", keys.len()),
        };
        let span = match keys.as_slice() {
            [key] => tracing::debug_span!(
                target: "peercache",
                "peercache.remove",
                group = %self.inner.name,
                key = %self.inner.key_in_traces.show(key),
                outcome = Empty,
                failed_peers = Empty,
                duration_us = Empty,
            ),
            _ => tracing::debug_span!(
                target: "peercache",
                "peercache.remove",
                group = %self.inner.name,
                keys = keys.len(),
                outcome = Empty,
                failed_peers = Empty,
                duration_us = Empty,
            ),
        };
        let inner = Arc::clone(&self.inner);
        traced_change(span, async move {
            let failures = inner.remove_everywhere(keys).await;
            inner.outcome(action, failures)
        })
        .await
    }

    /// Stores `value` as the value of `key` for the whole cluster: at the
    /// key's owner (over HTTP, a `PUT` of a `SetRequest`), then drops every
    /// other node's copy, this one's included, so that no node keeps serving
    /// the old value. The value expires at `expiry`; with `None`, at the
    /// value's own expiry ([`Value::with_expiry`]), else after the group's
    /// time-to-live, else never.
    ///
    /// Concurrent sets of one key are never merged: each reaches the owner,
    /// and the one the owner applies last stays. A get that starts after
    /// `set` returned `Ok` sees this value or a later one, on any node (until
    /// the value is evicted or expires: then the loader runs again). On
    /// `Err(`[`Error::PeersFailed`]`)`, a failed owner did not store the
    /// value, and a failed peer may still serve the old one.
    ///
    /// In a cluster the value is stored at the key's owner and every other
    /// copy is dropped, so every node serves it:
    ///
    /// ```
    /// use peercache::in_process::InProcessNetwork;
    /// use peercache::{loader_fn, LoadError};
    /// use std::time::{Duration, SystemTime};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let network = InProcessNetwork::new();
    /// let (a, b) = (network.node("a", &["a", "b"])?, network.node("b", &["a", "b"])?);
    /// for node in [&a, &b] {
    ///     node.new_group("flags", 1 << 20, loader_fn(|_: String| async { Ok::<_, LoadError>("off") }))?;
    /// }
    /// let (on_a, on_b) = (a.group("flags").unwrap(), b.group("flags").unwrap());
    ///
    /// assert_eq!(on_b.get("dark-mode").await?.as_str()?, "off");
    /// on_a.set("dark-mode", "on", None).await?;
    /// assert_eq!(on_b.get("dark-mode").await?.as_str()?, "on");
    ///
    /// // With an expiry: after it, the loader's value comes back.
    /// let in_a_minute = SystemTime::now() + Duration::from_secs(60);
    /// on_a.set("beta", "on", Some(in_a_minute)).await?;
    /// assert_eq!(on_b.get("beta").await?.expires_at(), Some(in_a_minute));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn set(
        &self,
        key: &str,
        value: impl Into<Value>,
        expiry: Option<SystemTime>,
    ) -> Result<(), Error> {
        let mut value = value.into();
        if let Some(at) = expiry {
            value = value.with_expiry(at);
        }
        let value = self.inner.with_default_ttl(value);
        let span = tracing::debug_span!(
            target: "peercache",
            "peercache.set",
            group = %self.inner.name,
            key = %self.inner.key_in_traces.show(key),
            outcome = Empty,
            failed_peers = Empty,
            duration_us = Empty,
        );
        let inner = Arc::clone(&self.inner);
        let key = key.to_owned();
        traced_change(span, async move {
            let action = format!("set of key {key:?}");
            let failures = inner.set_everywhere(key, value).await;
            inner.outcome(action, failures)
        })
        .await
    }

    /// Empties this group on every node: this node's caches, then every
    /// other peer's, twice over, so that no hot copy refilled from a node
    /// that was not purged yet survives.
    ///
    /// What a reader racing with a purge may see: a get that overlaps the
    /// purge may return a value cached before it, from any node; a get that
    /// starts after `purge` returned `Ok` returns a value loaded after the
    /// purge began. Loads in flight during the purge finish for their
    /// waiters but are not cached.
    ///
    /// ```
    /// # use peercache::{loader_fn, Node};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), peercache::Error> {
    /// # let group = Node::new().new_group("g", 1 << 20, loader_fn(|k: String| async move { Ok(k) }))?;
    /// group.get("a").await?;
    /// group.get("b").await?;
    /// assert_eq!(group.stats().main_cache.items, 2);
    /// group.purge().await?;
    /// assert_eq!(group.stats().main_cache.items, 0);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn purge(&self) -> Result<(), Error> {
        let span = tracing::debug_span!(
            target: "peercache",
            "peercache.purge",
            group = %self.inner.name,
            outcome = Empty,
            failed_peers = Empty,
            duration_us = Empty,
        );
        let inner = Arc::clone(&self.inner);
        traced_change(span, async move {
            let mut failures = Vec::new();
            for _round in 0..2 {
                inner.purge_here();
                let peers = inner.others();
                let name = &inner.name;
                let sent = peers
                    .iter()
                    .map(|peer| async move { (Arc::clone(peer), guard(peer.purge(name)).await) });
                failures = failed(join_all(sent).await, |_| false);
            }
            inner.outcome("purge".to_owned(), failures)
        })
        .await
    }

    /// Removes `keys` from this node's caches only, and keeps loads in flight
    /// from caching them. Transports call this for a peer's remove request.
    pub fn serve_remove<S: AsRef<str>>(&self, keys: &[S]) {
        self.inner.remove_here(keys);
    }

    /// Stores `value` under `key` in this node's main cache (this node owns
    /// the key), replacing any value and fencing loads in flight. Transports
    /// call this for a peer's set request. A value already expired is not
    /// stored (the old one is still dropped).
    pub fn serve_set(&self, key: &str, value: Value) {
        self.inner.set_here(key, value);
    }

    /// Empties this node's caches of the group. Transports call this for a
    /// peer's purge request.
    pub fn serve_purge(&self) {
        self.inner.purge_here();
    }

    /// Drops every expired entry now, giving its bytes back to the budget;
    /// returns how many were dropped. A sweeper does this every second for
    /// groups built inside a tokio runtime.
    pub fn reclaim_expired(&self) -> u64 {
        self.inner.reclaim_expired()
    }

    /// A snapshot of the group's counters and both caches' stats (expired
    /// entries are dropped first, so the figures count live entries).
    ///
    /// ```
    /// # use peercache::{loader_fn, Node};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), peercache::Error> {
    /// # let group = Node::new().new_group("g", 1 << 20, loader_fn(|k: String| async move { Ok(k) }))?;
    /// group.get("key").await?; // a miss: loaded here
    /// group.get("key").await?; // a hit
    /// let stats = group.stats();
    /// assert_eq!(stats.gets, 2);
    /// assert_eq!(stats.cache_hits, 1);
    /// assert_eq!(stats.local_loads, 1);
    /// assert_eq!(stats.main_cache.bytes, 6); // len("key") + len("key")
    /// # Ok(())
    /// # }
    /// ```
    pub fn stats(&self) -> GroupStats {
        self.inner.reclaim_expired();
        let guarded = self.inner.lock_cache();
        // Main hits served under the read lock: each also a get and a hit.
        let read_hits = guarded.counted();
        let mut main = guarded.cache.stats(CacheKind::Main);
        main.gets += read_hits;
        main.hits += read_hits;
        let mut stats = self.inner.counters.snapshot(
            &self.inner.name,
            [guarded.gets + read_hits, guarded.cache_hits + read_hits],
            [main, guarded.cache.stats(CacheKind::Hot)],
        );
        stats.budget_bytes = guarded.cache.budget();
        stats
    }

    /// Keys held in one of the caches, most recently used first (copies
    /// every key: for inspection and tests, not the hot path).
    ///
    /// ```
    /// # use peercache::{loader_fn, CacheKind, Node};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), peercache::Error> {
    /// # let group = Node::new().new_group("g", 1 << 20, loader_fn(|k: String| async move { Ok(k) }))?;
    /// group.get("old").await?;
    /// group.get("new").await?;
    /// assert_eq!(group.cached_keys(CacheKind::Main), ["new", "old"]);
    /// assert!(group.cached_keys(CacheKind::Hot).is_empty()); // no peers, no hot copies
    /// # Ok(())
    /// # }
    /// ```
    pub fn cached_keys(&self, kind: CacheKind) -> Vec<String> {
        let mut guarded = self.inner.lock_cache();
        guarded.cache.replay_hits();
        guarded.cache.keys(kind)
    }
}

/// The cache, its fences and the counters of gets and hits served with the
/// write lock, under one lock.
struct Guarded {
    cache: Cache,
    fences: Fences,
    gets: u64,
    cache_hits: u64,
}

/// Drops expired entries every [`SWEEP_INTERVAL`] until the group is gone.
async fn sweep(group: Weak<Inner>) {
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

/// Runs `work` as its own task when a tokio runtime is running, so that a
/// change that has started completes even if the caller stops waiting.
async fn detached<F>(work: F) -> Result<(), Error>
where
    F: Future<Output = Result<(), Error>> + Send + 'static,
{
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => match runtime.spawn(work).await {
            Ok(outcome) => outcome,
            Err(join_error) => std::panic::resume_unwind(join_error.into_panic()),
        },
        Err(_) => work.await,
    }
}

/// Runs a change ([`detached`]) in `span`, recording its outcome and the
/// peers it did not reach.
async fn traced_change<F>(span: tracing::Span, work: F) -> Result<(), Error>
where
    F: Future<Output = Result<(), Error>> + Send + 'static,
{
    let timed = Timed::start(span);
    let outcome = detached(work.instrument(timed.span().clone())).await;
    if let Err(error) = &outcome {
        let failed: Vec<&str> = error.failed_peers().iter().map(|f| &*f.peer).collect();
        timed
            .span()
            .record("failed_peers", tracing::field::display(failed.join(",")));
    }
    timed.finish(match &outcome {
        Ok(()) => "ok",
        Err(Error::PeersFailed { .. }) => "partial",
        Err(_) => "error",
    });
    outcome
}

/// The `outcome` of a get or load, for traces and metrics.
fn outcome_label(outcome: &Outcome) -> &'static str {
    match outcome {
        Ok(_) => "ok",
        Err(Error::NotFound { .. }) => "not_found",
        Err(_) => "error",
    }
}

/// A peer call whose panic becomes an error.
async fn guard<F>(call: F) -> Result<(), PeerError>
where
    F: Future<Output = Result<(), PeerError>>,
{
    AssertUnwindSafe(call)
        .catch_unwind()
        .await
        .unwrap_or_else(|payload| {
            Err(PeerError(format!(
                "the transport {}",
                panic_message(payload.as_ref())
            )))
        })
}

/// The failures among peer answers; `owner` says which peers were owners.
fn failed(
    answers: Vec<(Arc<dyn Peer>, Result<(), PeerError>)>,
    owner: impl Fn(&str) -> bool,
) -> Vec<PeerFailure> {
    answers
        .into_iter()
        .filter_map(|(peer, answer)| {
            answer.err().map(|PeerError(reason)| PeerFailure {
                peer: Arc::from(peer.id()),
                owner: owner(peer.id()),
                reason,
            })
        })
        .collect()
}

/// The future [`Group::get`] returns: await it for the value.
///
/// A hit is served on the first poll, with no allocation; a miss boxes the
/// load's future. A named type rather than an `async fn` body for a measured
/// reason: the `async fn` copied its whole 88-byte `Result` out through a
/// path shared with the miss, and on the in-process hit benchmark that copy
/// (a store-forwarding stall) was a fifth of the hit (BENCHMARKS.md). Like
/// any future, it does nothing until polled.
#[must_use = "futures do nothing unless you `.await` or poll them"]
pub struct Get<'a> {
    inner: &'a Arc<Inner>,
    key: &'a str,
    miss: Option<crate::loader::BoxFuture<'a, Outcome>>,
}

impl Future for Get<'_> {
    type Output = Result<Value, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let miss = match &mut this.miss {
            Some(miss) => miss,
            None => {
                if let Some(value) = this.inner.lookup(this.key) {
                    return Poll::Ready(Ok(value));
                }
                this.miss.insert(this.inner.miss(this.key, Route::ViaOwner))
            }
        };
        miss.as_mut().poll(cx)
    }
}

impl fmt::Debug for Get<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Get")
            .field("group", &self.inner.name)
            .field(
                "key",
                &format_args!("{}", self.inner.key_in_traces.show(self.key)),
            )
            .field("loading", &self.miss.is_some())
            .finish()
    }
}

/// Where a load may go.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Route {
    /// Ask the owner if another peer owns the key (a user's get).
    ViaOwner,
    /// Load here (a request from a peer: never forwarded).
    HereOnly,
}

impl Inner {
    /// The write side of the cache lock.
    fn lock_cache(&self) -> WriteGuard<'_, Guarded> {
        self.cache.write()
    }

    /// A get's look-up: a main hit under the read lock, else main then hot
    /// under the write lock. Counts the get, and the hit if there is one.
    #[inline]
    fn lookup(&self, key: &str) -> Option<Value> {
        let now = || self.clock.now_unix_nanos();
        {
            let shared = self.cache.read();
            if let Some(value) = shared.cache.get_main_shared(key, &now) {
                shared.count();
                return Some(value);
            }
        }
        let mut guarded = self.lock_cache();
        self.lookup_locked(&mut guarded, key, true)
    }

    fn lookup_locked(&self, guarded: &mut Guarded, key: &str, is_get: bool) -> Option<Value> {
        guarded.gets += u64::from(is_get);
        // The clock is read only for values that have an expiry, which keeps
        // it off the common hit path.
        let value = guarded
            .cache
            .get_unexpired(key, &|| self.clock.now_unix_nanos());
        guarded.cache_hits += u64::from(value.is_some());
        value
    }

    /// The start of a load: the cached value if a racing load just stored
    /// one, else the fence ticket that the load's insert will need.
    fn begin_load(&self, key: &str) -> Result<Value, u64> {
        let mut guarded = self.lock_cache();
        match self.lookup_locked(&mut guarded, key, false) {
            Some(value) => Ok(value),
            None => Err(guarded.fences.ticket()),
        }
    }

    /// Caches a loaded or fetched value, unless the key was removed, set or
    /// purged after the load began (`ticket`) or the value already expired.
    fn store(&self, kind: CacheKind, key: &str, value: &Value, ticket: u64) {
        let now = self.clock.now_unix_nanos();
        let mut guarded = self.lock_cache();
        if guarded.cache.next_expiry().is_some_and(|at| at <= now) {
            guarded.cache.remove_expired(now);
        }
        if !guarded.fences.admits(key, ticket) {
            tracing::debug!(
                group = %self.name,
                key = %self.key_in_traces.show(key),
                "not caching a value loaded before the key changed"
            );
            return;
        }
        let expiry = value.expiry_unix_nanos();
        if expiry != 0 && expiry <= now {
            return;
        }
        if kind == CacheKind::Hot && !guarded.cache.admits_hot(key, cost(key, value)) {
            return;
        }
        guarded.cache.insert(kind, key, value.clone());
    }

    fn is_expired(&self, value: &Value) -> bool {
        let expiry = value.expiry_unix_nanos();
        expiry != 0 && self.clock.now_unix_nanos() >= expiry
    }

    /// `value` with the group's time-to-live if it has no expiry of its own.
    fn with_default_ttl(&self, value: Value) -> Value {
        match self.ttl {
            Some(ttl) if value.expiry_unix_nanos() == 0 => {
                let ttl = i64::try_from(ttl.as_nanos()).unwrap_or(i64::MAX);
                value.with_expiry_unix_nanos(self.clock.now_unix_nanos().saturating_add(ttl))
            }
            _ => value,
        }
    }

    fn reclaim_expired(&self) -> u64 {
        let now = self.clock.now_unix_nanos();
        let mut guarded = self.lock_cache();
        match guarded.cache.next_expiry() {
            Some(at) if at <= now => guarded.cache.remove_expired(now),
            _ => 0,
        }
    }

    fn remove_here<S: AsRef<str>>(&self, keys: &[S]) {
        // The lock is taken per chunk, not for the whole list: gets wait
        // for at most one chunk of a long removal.
        for chunk in keys.chunks(REMOVE_CHUNK) {
            {
                let mut guarded = self.lock_cache();
                for key in chunk {
                    guarded.cache.remove(key.as_ref());
                    guarded.fences.invalidate(key.as_ref());
                }
            }
            for key in chunk {
                self.local.forget(key.as_ref());
                self.remote.forget(key.as_ref());
            }
        }
    }

    fn set_here(&self, key: &str, value: Value) {
        let expired = self.is_expired(&value);
        {
            let mut guarded = self.lock_cache();
            guarded.fences.invalidate(key);
            if expired {
                guarded.cache.remove(key);
            } else {
                guarded.cache.insert(CacheKind::Main, key, value);
            }
        }
        self.local.forget(key);
        self.remote.forget(key);
    }

    fn purge_here(&self) {
        {
            let mut guarded = self.lock_cache();
            guarded.cache.clear();
            guarded.fences.invalidate_all();
        }
        self.local.forget_all();
        self.remote.forget_all();
    }

    fn others(&self) -> Vec<Arc<dyn Peer>> {
        self.picker.as_ref().map_or_else(Vec::new, |p| p.others())
    }

    /// Removes `keys` at their owners, here, then at every other peer.
    async fn remove_everywhere(&self, keys: Vec<String>) -> Vec<PeerFailure> {
        // Step 1: each remote owner, with the keys it owns.
        let mut by_owner: HashMap<String, (Arc<dyn Peer>, Vec<String>)> = HashMap::new();
        for key in &keys {
            if let Some(owner) = self.picker.as_ref().and_then(|p| p.pick(key)) {
                by_owner
                    .entry(owner.id().to_owned())
                    .or_insert_with(|| (owner, Vec::new()))
                    .1
                    .push(key.clone());
            }
        }
        let name = &self.name;
        let sent = by_owner.values().map(|(peer, owned)| async move {
            (Arc::clone(peer), guard(peer.remove(name, owned)).await)
        });
        let mut failures = failed(join_all(sent).await, |_| true);
        // Step 2: this node (the owner of the other keys).
        self.remove_here(&keys);
        // Step 3: every other peer, with the keys it was not sent as owner
        // (an owner that failed in step 1 is not asked again).
        let rest: Vec<(Arc<dyn Peer>, Vec<String>)> = self
            .others()
            .into_iter()
            .filter(|peer| !failures.iter().any(|f| *f.peer == *peer.id()))
            .filter_map(|peer| {
                let owned = by_owner.get(peer.id()).map(|(_, owned)| owned);
                let keys: Vec<String> = match owned {
                    Some(owned) => keys
                        .iter()
                        .filter(|k| !owned.contains(k))
                        .cloned()
                        .collect(),
                    None => keys.clone(),
                };
                (!keys.is_empty()).then_some((peer, keys))
            })
            .collect();
        let sent = rest.iter().map(|(peer, keys)| async move {
            (Arc::clone(peer), guard(peer.remove(name, keys)).await)
        });
        failures.extend(failed(join_all(sent).await, |_| false));
        failures
    }

    /// Stores `value` at the owner, then drops every other copy.
    async fn set_everywhere(&self, key: String, value: Value) -> Vec<PeerFailure> {
        let owner = self.picker.as_ref().and_then(|p| p.pick(&key));
        let mut failures = Vec::new();
        match &owner {
            Some(peer) => {
                let answer = guard(peer.set(&self.name, &key, &value)).await;
                failures = failed(vec![(Arc::clone(peer), answer)], |_| true);
                self.remove_here(&[key.as_str()]);
            }
            None => self.set_here(&key, value),
        }
        let owner_id = owner.as_ref().map(|p| p.id().to_owned());
        let keys = [key];
        let name = &self.name;
        let rest: Vec<Arc<dyn Peer>> = self
            .others()
            .into_iter()
            .filter(|peer| Some(peer.id()) != owner_id.as_deref())
            .collect();
        let sent = rest.iter().map(|peer| {
            let keys = &keys;
            async move { (Arc::clone(peer), guard(peer.remove(name, keys)).await) }
        });
        failures.extend(failed(join_all(sent).await, |_| false));
        failures
    }

    fn outcome(&self, action: String, failures: Vec<PeerFailure>) -> Result<(), Error> {
        if failures.is_empty() {
            return Ok(());
        }
        let error = Error::PeersFailed {
            group: self.name.clone(),
            action,
            failures,
        };
        // The error names the key; the event names only the peers (the
        // change's span shows the key as `key_in_traces` says).
        let peers: Vec<String> = error
            .failed_peers()
            .iter()
            .map(|f| format!("{} ({})", f.peer, f.reason))
            .collect();
        tracing::warn!(group = %self.name, failed = %Escaped(peers.join("; ")), "change not applied everywhere");
        Err(error)
    }

    /// A get's or a peer request's miss, boxed and out of line: the traced
    /// miss path inside `get`'s own future made every get, hits included,
    /// slower (measured: a hit went from 60 to 75 ns).
    #[cold]
    #[inline(never)]
    fn miss<'a>(
        self: &'a Arc<Self>,
        key: &'a str,
        route: Route,
    ) -> crate::loader::BoxFuture<'a, Outcome> {
        Box::pin(self.traced_load(key, route))
    }

    /// A get's or a peer request's miss: the load, in its span.
    async fn traced_load(self: &Arc<Self>, key: &str, route: Route) -> Outcome {
        let span = match route {
            Route::ViaOwner => tracing::debug_span!(
                target: "peercache",
                "peercache.get",
                group = %self.name,
                key = %self.key_in_traces.show(key),
                outcome = Empty,
                duration_us = Empty,
            ),
            Route::HereOnly => tracing::debug_span!(
                target: "peercache",
                "peercache.serve_peer",
                group = %self.name,
                key = %self.key_in_traces.show(key),
                outcome = Empty,
                duration_us = Empty,
            ),
        };
        let timed = Timed::start(span);
        let outcome = self.load(key, route).instrument(timed.span().clone()).await;
        timed.finish(outcome_label(&outcome));
        outcome
    }

    fn load(self: &Arc<Self>, key: &str, route: Route) -> impl Future<Output = Outcome> {
        bump(&self.counters.loads);
        let started = tokio::runtime::Handle::try_current()
            .map_err(|_| Error::NoRuntime {
                group: self.name.clone(),
                key: Arc::from(key),
            })
            .map(|runtime| {
                let peer = match route {
                    Route::ViaOwner => self.picker.as_ref().and_then(|p| p.pick(key)),
                    Route::HereOnly => None,
                };
                let (role, call) = match peer {
                    Some(peer) => {
                        let (inner, owned) = (Arc::clone(self), key.to_owned());
                        self.remote
                            .run(&runtime, key, move || inner.fetch_from(peer, owned))
                    }
                    None => self.run_here(&runtime, key),
                };
                if role == Role::Leader {
                    bump(&self.counters.loads_deduped);
                }
                call
            });
        let inner = Arc::clone(self);
        let key = key.to_owned();
        async move {
            match started {
                Ok(call) => call.await.unwrap_or_else(|p| Err(inner.panicked(&key, p))),
                Err(error) => Err(error),
            }
        }
    }

    /// Starts (or joins) the local load of `key` in the `local` table.
    fn run_here(
        self: &Arc<Self>,
        runtime: &tokio::runtime::Handle,
        key: &str,
    ) -> (Role, Call<Outcome>) {
        let (inner, owned) = (Arc::clone(self), key.to_owned());
        self.local.run(runtime, key, move || inner.load_here(owned))
    }

    /// The body of a local load: re-check the cache (a load that finished
    /// just before this one started may have filled it), then call the loader
    /// and keep its value in the main cache.
    async fn load_here(self: Arc<Self>, key: String) -> Outcome {
        let ticket = match self.begin_load(&key) {
            Ok(value) => return Ok(value),
            Err(ticket) => ticket,
        };
        let timed = Timed::start(tracing::debug_span!(
            target: "peercache",
            "peercache.load",
            group = %self.name,
            key = %self.key_in_traces.show(&key),
            outcome = Empty,
            duration_us = Empty,
        ));
        let started = std::time::Instant::now();
        let outcome = self
            .call_loader(&key, ticket)
            .instrument(timed.span().clone())
            .await;
        let label = outcome_label(&outcome);
        crate::metrics::load_finished(&self.name, label, started.elapsed());
        timed.finish(label);
        outcome
    }

    /// The loader's call for `key`, within the load timeout, panics caught;
    /// a value is kept in the main cache unless `ticket` was fenced.
    async fn call_loader(self: &Arc<Self>, key: &str, ticket: u64) -> Outcome {
        let load = AssertUnwindSafe(self.loader.load_boxed(key)).catch_unwind();
        let loaded = match self.load_timeout {
            None => load.await,
            Some(timeout) => match tokio::time::timeout(timeout, load).await {
                Ok(loaded) => loaded,
                Err(_) => {
                    bump(&self.counters.local_load_errs);
                    tracing::warn!(
                        group = %self.name,
                        key = %self.key_in_traces.show(key),
                        ?timeout,
                        "load timed out; cancelled"
                    );
                    return Err(Error::LoadTimeout {
                        group: self.name.clone(),
                        key: Arc::from(key),
                        timeout,
                    });
                }
            },
        };
        match loaded {
            Ok(Ok(value)) => {
                bump(&self.counters.local_loads);
                let value = self.with_default_ttl(value);
                self.store(CacheKind::Main, key, &value, ticket);
                Ok(value)
            }
            Ok(Err(error)) => {
                bump(&self.counters.local_load_errs);
                if !matches!(error, LoadError::NotFound) {
                    tracing::warn!(
                        group = %self.name,
                        key = %self.key_in_traces.show(key),
                        error = %Escaped(&error),
                        "load failed"
                    );
                }
                Err(self.load_error(key, None, error))
            }
            Err(payload) => {
                bump(&self.counters.local_load_errs);
                Err(self.panicked(
                    key,
                    Panicked {
                        message: panic_message(payload.as_ref()),
                    },
                ))
            }
        }
    }

    /// The body of a fetch from the owner; falls back to a local load when
    /// the owner cannot be reached.
    async fn fetch_from(self: Arc<Self>, peer: Arc<dyn Peer>, key: String) -> Outcome {
        let ticket = match self.begin_load(&key) {
            Ok(value) => return Ok(value),
            Err(ticket) => ticket,
        };
        let timed = Timed::start(tracing::debug_span!(
            target: "peercache",
            "peercache.peer_fetch",
            group = %self.name,
            key = %self.key_in_traces.show(&key),
            peer = peer.id(),
            outcome = Empty,
            duration_us = Empty,
        ));
        let started = std::time::Instant::now();
        let fetched = AssertUnwindSafe(peer.fetch(&self.name, &key))
            .catch_unwind()
            .instrument(timed.span().clone())
            .await
            .unwrap_or_else(|payload| {
                Err(FetchError::Unavailable(format!(
                    "the transport {}",
                    panic_message(payload.as_ref())
                )))
            });
        let label = match &fetched {
            Ok(_) => "ok",
            Err(FetchError::Load(LoadError::NotFound)) => "not_found",
            Err(FetchError::Load(_)) => "error",
            Err(FetchError::Unavailable(_)) => "unavailable",
        };
        crate::metrics::peer_fetch_finished(&self.name, label, started.elapsed());
        timed.finish(label);
        match fetched {
            Ok(value) => {
                bump(&self.counters.peer_loads);
                if self.hot_cache.admits() {
                    self.store(CacheKind::Hot, &key, &value, ticket);
                }
                Ok(value)
            }
            Err(FetchError::Load(error)) => Err(self.load_error(&key, Some(peer.id()), error)),
            Err(FetchError::Unavailable(reason)) => {
                bump(&self.counters.peer_errors);
                tracing::warn!(
                    group = %self.name,
                    key = %self.key_in_traces.show(&key),
                    peer = %Escaped(peer.id()),
                    reason = %Escaped(&reason),
                    "peer fetch failed; loading locally"
                );
                let runtime = tokio::runtime::Handle::current();
                let (_, call) = self.run_here(&runtime, &key);
                call.await.unwrap_or_else(|p| Err(self.panicked(&key, p)))
            }
        }
    }

    fn load_error(&self, key: &str, peer: Option<&str>, error: LoadError) -> Error {
        let (group, key, peer) = (self.name.clone(), Arc::from(key), peer.map(Arc::from));
        match error {
            LoadError::NotFound => Error::NotFound { group, key, peer },
            source => Error::Load {
                group,
                key,
                peer,
                source,
            },
        }
    }

    fn panicked(&self, key: &str, panicked: Panicked) -> Error {
        Error::Panicked {
            group: self.name.clone(),
            key: Arc::from(key),
            message: panicked.message,
        }
    }
}
