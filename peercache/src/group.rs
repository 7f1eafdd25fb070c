//! A group: a named cache with a loader, and the one read path.
//!
//! [`Group::get`] looks in the main cache, then the hot cache; on a miss it
//! asks the [`PeerPicker`] who owns the key. If another peer owns it, the value
//! is fetched from that peer (and, per [`HotCachePolicy`], kept in the hot
//! cache); if this node owns it, or the owner cannot be reached, this node's
//! [`Loader`] runs and the value goes into the main cache.
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
//! The cache sits behind a `std::sync::Mutex` because it is locked only for
//! a look-up or an insert, never across an `.await`: a blocking mutex is
//! cheaper than tokio's for such short sections. The `gets` and `cache_hits`
//! counters live under the same lock, so a hit costs one lock and no atomic
//! read-modify-write.

use crate::cache::{Cache, CacheKind};
use crate::error::Error;
use crate::flight::{panic_message, Call, Flight, Panicked, Role};
use crate::loader::{DynLoader, LoadError};
use crate::peers::{FetchError, Peer, PeerPicker};
use crate::stats::{bump, Counters, GroupStats};
use crate::Value;
use futures_util::FutureExt;
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// When a value fetched from its owning peer is also kept in the hot cache.
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
}

impl Default for HotCachePolicy {
    /// golang/groupcache's policy: one fetch in ten.
    fn default() -> Self {
        HotCachePolicy::OneIn(10)
    }
}

impl HotCachePolicy {
    fn admits(self) -> bool {
        match self {
            HotCachePolicy::Never | HotCachePolicy::OneIn(0) => false,
            HotCachePolicy::Always | HotCachePolicy::OneIn(1) => true,
            HotCachePolicy::OneIn(n) => fastrand::u32(..n) == 0,
        }
    }
}

/// A named, byte-budgeted cache whose misses are filled by the key's owner.
///
/// Cheap to clone: clones share the cache. Get one from
/// [`crate::Node::new_group`] or [`crate::Node::group`].
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
    cache: Mutex<Guarded>,
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
            .finish()
    }
}

impl Group {
    pub(crate) fn new(
        name: &str,
        cache_bytes: u64,
        hot_cache: HotCachePolicy,
        loader: Box<dyn DynLoader>,
        picker: Option<Arc<dyn PeerPicker>>,
    ) -> Self {
        Group {
            inner: Arc::new(Inner {
                name: Arc::from(name),
                loader,
                picker,
                hot_cache,
                cache: Mutex::new(Guarded {
                    cache: Cache::new(cache_bytes),
                    gets: 0,
                    cache_hits: 0,
                }),
                counters: Counters::default(),
                remote: Flight::new(),
                local: Flight::new(),
            }),
        }
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

    /// The value of `key`: from the main cache, the hot cache, the owning
    /// peer, or this node's loader, in that order.
    ///
    /// Concurrent gets of one missing key share one load. Errors are never
    /// cached. The load is spawned on the current tokio runtime and completes
    /// (filling the cache) even if this future is dropped; outside a runtime
    /// a miss fails with [`Error::NoRuntime`].
    pub async fn get(&self, key: &str) -> Result<Value, Error> {
        if let Some(value) = self.inner.lookup(key, true) {
            return Ok(value);
        }
        self.inner.load(key, Route::ViaOwner).await
    }

    /// Serves `key` to a peer that asked for it: from this node's cache or
    /// its loader, and **never forwarded** to another peer, whatever this
    /// node's ring says. Transports call this for incoming peer requests;
    /// it counts `server_requests`.
    pub async fn serve_peer(&self, key: &str) -> Result<Value, Error> {
        bump(&self.inner.counters.server_requests);
        if let Some(value) = self.inner.lookup(key, true) {
            return Ok(value);
        }
        self.inner.load(key, Route::HereOnly).await
    }

    /// A snapshot of the group's counters and both caches' stats.
    pub fn stats(&self) -> GroupStats {
        let guarded = self.inner.lock_cache();
        self.inner.counters.snapshot(
            &self.inner.name,
            [guarded.gets, guarded.cache_hits],
            [
                guarded.cache.stats(CacheKind::Main),
                guarded.cache.stats(CacheKind::Hot),
            ],
        )
    }

    /// Keys held in one of the caches, most recently used first (copies
    /// every key: for inspection and tests, not the hot path).
    pub fn cached_keys(&self, kind: CacheKind) -> Vec<String> {
        self.inner.lock_cache().cache.keys(kind)
    }
}

/// The cache and the counters every get bumps, under one lock.
struct Guarded {
    cache: Cache,
    gets: u64,
    cache_hits: u64,
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
    fn lock_cache(&self) -> MutexGuard<'_, Guarded> {
        // The cache's code does not panic while locked; should a poisoned lock
        // appear anyway, the cache is still consistent and keeps its data.
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Looks the key up in main, then hot; counts a hit, and a get when
    /// `is_get` (a load's re-check of the cache is not a new get).
    fn lookup(&self, key: &str, is_get: bool) -> Option<Value> {
        let mut guarded = self.lock_cache();
        guarded.gets += u64::from(is_get);
        let mut value = guarded.cache.get(key);
        // Reading the clock only for values that have an expiry keeps it off
        // the common hit path.
        if value.as_ref().is_some_and(|v| {
            v.expiry_unix_nanos() != 0 && v.is_expired_at(std::time::SystemTime::now())
        }) {
            guarded.cache.remove(key);
            value = None;
        }
        guarded.cache_hits += u64::from(value.is_some());
        value
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
        if let Some(value) = self.lookup(&key, false) {
            return Ok(value);
        }
        let loaded = AssertUnwindSafe(self.loader.load_boxed(&key))
            .catch_unwind()
            .await;
        match loaded {
            Ok(Ok(value)) => {
                bump(&self.counters.local_loads);
                self.lock_cache()
                    .cache
                    .insert(CacheKind::Main, &key, value.clone());
                Ok(value)
            }
            Ok(Err(error)) => {
                bump(&self.counters.local_load_errs);
                Err(self.load_error(&key, None, error))
            }
            Err(payload) => {
                bump(&self.counters.local_load_errs);
                Err(self.panicked(
                    &key,
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
        if let Some(value) = self.lookup(&key, false) {
            return Ok(value);
        }
        let fetched = AssertUnwindSafe(peer.fetch(&self.name, &key))
            .catch_unwind()
            .await
            .unwrap_or_else(|payload| {
                Err(FetchError::Unavailable(format!(
                    "the transport {}",
                    panic_message(payload.as_ref())
                )))
            });
        match fetched {
            Ok(value) => {
                bump(&self.counters.peer_loads);
                if self.hot_cache.admits() {
                    self.lock_cache()
                        .cache
                        .insert(CacheKind::Hot, &key, value.clone());
                }
                Ok(value)
            }
            Err(FetchError::Load(error)) => Err(self.load_error(&key, Some(peer.id()), error)),
            Err(FetchError::Unavailable(reason)) => {
                bump(&self.counters.peer_errors);
                tracing::warn!(
                    group = %self.name,
                    key = %key,
                    peer = peer.id(),
                    %reason,
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
