//! A group: a named cache with a loader, and the one read path.
//!
//! [`Group::get`] looks in the main cache, then the hot cache; on a miss it
//! asks the [`PeerPicker`] who owns the key. If another peer owns it, the
//! value is fetched from that peer (and, per [`HotCachePolicy`], kept in the
//! hot cache); if this node owns it, or the owner cannot be reached, this
//! node's [`Loader`](crate::Loader) runs and the value goes into the main
//! cache. Concurrent misses of one key share one load. Errors are never
//! cached; a not-found is, for a group that asks for it, and an expired
//! value may stand in for a load that is slow or failed (`stale.rs`).
//!
//! Changes ([`Group::remove`], [`Group::remove_keys`], [`Group::set`],
//! [`Group::purge`]) reach the whole cluster; a load in flight when its key
//! changes is fenced (`crate::fence`): its value goes to its waiters but not
//! into the cache. Expiry is read from the group's [`Clock`]: a value past
//! its expiry is never served (but within a stale window, `stale.rs`), and
//! expired entries are dropped from the budget (after those windows) before
//! every insert, on [`Group::stats`], by [`Group::reclaim_expired`], and
//! every second by a sweeper task when the group is built inside a tokio
//! runtime.
//!
//! Other peers' requests are answered through the group's
//! [`ServedGroup`] ([`crate::Node::served_group`]), from this node alone.
//!
//! The files of this module, one concern each:
//!
//! - this one: the handle ([`Group`]), its settings, [`Group::get`] and its
//!   [`Get`] future, stats;
//! - `load.rs`: the miss: merged loads, the owner's fetch and its fallback,
//!   the loader with its timeout and panics caught;
//! - `many.rs`: [`Group::get_many`], a batch of gets grouped by owner;
//!   `load_many.rs`: a batch's one loader call;
//! - `changes.rs`: remove, set and purge across the cluster; `reach.rs`:
//!   how they reach the peers and the report of the peers they did not
//!   reach; `hints.rs`: the changes kept for those peers until they answer;
//! - `admission.rs`: the cap on loader calls at once; `breaker.rs`: loads
//!   paused while the origin is unreachable;
//! - `stale.rs`: expired values served while refreshing or when a load
//!   fails, and cached not-found answers;
//! - `state.rs`: the cache, fences and counters under the group's lock, and
//!   what reads and changes of this node alone do to them;
//! - `served.rs`: the peer-facing side ([`ServedGroup`]).
//!
//! The cache sits behind a read-mostly lock (`read_mostly.rs`): a hit in
//! the main cache, the common case, takes only the read side, so hits on
//! several threads run at once and write no common cache line; what the
//! hit means to the policy (its count, its entry's move) is applied in
//! order at the next change, and none is lost. Everything else takes the
//! write side, never across an `.await`.

mod admission;
mod breaker;
mod changes;
mod handoff;
mod hints;
mod load;
mod load_many;
mod many;
mod reach;
mod served;
mod stale;
mod state;

pub(crate) use crate::cache::HotCachePolicy;
pub(crate) use admission::Admission;
pub(crate) use breaker::BreakerSettings;
pub use hints::{HintLimits, PendingHints};
pub use served::ServedGroup;
pub(crate) use stale::Stale;

use crate::cache::CacheKind;
use crate::clock::Clock;
use crate::error::Error;
use crate::flight::Flight;
use crate::loader::DynLoader;
use crate::peers::PeerPicker;
use crate::read_mostly::ReadMostlyLock;
use crate::stats::{Counters, GroupStats};
use crate::trace::KeyInTraces;
use crate::Value;
use load::Route;
use state::{sweep, Guarded};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

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
    admission: Option<admission::Places>,
    breaker: Option<breaker::Breaker>,
    stale: Stale,
    /// Whether a value with stale windows of its own was ever cached.
    values_have_windows: std::sync::atomic::AtomicBool,
    key_in_traces: KeyInTraces,
    /// How long a change waits for a peer that does not own its keys.
    change_timeout: Duration,
    hints: hints::Hints,
    /// Nodes that said they leave, each with the fence ticket of that
    /// moment (`handoff.rs`).
    leavers: std::sync::Mutex<Vec<(Arc<str>, u64)>>,
    cache: ReadMostlyLock<Guarded>,
    counters: Counters,
    remote: Flight<Outcome>,
    local: Flight<Outcome>,
    load_durations: crate::metrics::Durations,
    fetch_durations: crate::metrics::Durations,
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
    pub admission: Option<Admission>,
    pub breaker: Option<BreakerSettings>,
    pub stale: Stale,
    pub key_in_traces: KeyInTraces,
    pub clock: Arc<dyn Clock>,
    pub change_timeout: Duration,
    pub hint_limits: HintLimits,
    /// The hot copies' maximum age; zero for none.
    pub hot_max_age: Duration,
}

impl Group {
    pub(crate) fn new(
        name: &str,
        settings: Settings,
        loader: Box<dyn DynLoader>,
        picker: Option<Arc<dyn PeerPicker>>,
    ) -> Self {
        let name: Arc<str> = Arc::from(name);
        let inner = Arc::new(Inner {
            load_durations: crate::metrics::Durations::of_loads(&name),
            fetch_durations: crate::metrics::Durations::of_fetches(&name),
            name,
            loader,
            picker,
            hot_cache: settings.hot_cache,
            clock: settings.clock,
            ttl: settings.ttl,
            load_timeout: settings.load_timeout,
            admission: settings.admission.map(admission::Places::new),
            breaker: settings.breaker.map(breaker::Breaker::new),
            key_in_traces: settings.key_in_traces,
            change_timeout: settings.change_timeout,
            hints: hints::Hints::new(settings.hint_limits),
            leavers: std::sync::Mutex::new(Vec::new()),
            cache: ReadMostlyLock::new(Guarded::new(
                settings.cache_bytes,
                settings.hot_cache == HotCachePolicy::Frequent,
                settings.stale.grace(),
                settings.hot_max_age,
            )),
            stale: settings.stale,
            values_have_windows: std::sync::atomic::AtomicBool::new(false),
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
    /// cached. The load runs inside the get that started it; if that get is
    /// dropped before the load ends, the load moves to a task on the current
    /// tokio runtime and completes (filling the cache) for the other gets.
    /// Outside a runtime a miss fails with [`Error::NoRuntime`]. So await a
    /// get, or drop it: one polled once and then held (a `select!` arm left
    /// pending while another runs long) holds up every other get of its key,
    /// and a get of the same key awaited meanwhile in the same task never
    /// ends.
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
        drop(guarded);
        let (pending, delivered, collapsed) = self.inner.hints.status();
        stats.hints_pending = pending.iter().map(|p| p.keys + u64::from(p.purge)).sum();
        stats.hints_delivered = delivered;
        stats.hints_collapsed = collapsed;
        stats
    }

    /// The changes waiting for peers that did not answer them, per peer
    /// (README "Updating and removing keys"); empty when every change
    /// reached every peer.
    ///
    /// ```
    /// # use peercache::{loader_fn, Node};
    /// # fn main() -> Result<(), peercache::Error> {
    /// # let group = Node::new().new_group("g", 1 << 20, loader_fn(|k: String| async move { Ok(k) }))?;
    /// assert!(group.pending_hints().is_empty()); // no peers, nothing waits
    /// # Ok(())
    /// # }
    /// ```
    pub fn pending_hints(&self) -> Vec<PendingHints> {
        self.inner.hints.status().0
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

/// The future [`Group::get`] returns: await it for the value.
///
/// A hit is served on the first poll, with no allocation; a miss boxes the
/// load's future. Like any future, it does nothing until polled.
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
                    return Poll::Ready(this.inner.answer(this.key, value));
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
