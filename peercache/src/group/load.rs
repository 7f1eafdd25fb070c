//! The load path of a miss: merged loads (flights), the owner's fetch with
//! its fallback to this node's loader, the load timeout, panics caught, and
//! the value kept in the main or hot cache.
//!
//! Concurrent misses of one key are merged ([`crate::flight`]) in two
//! tables: `remote`, fetches from the owner, one per key; and `local`, calls
//! of this node's loader, one per key. Both a get this node owns and a
//! request served to a peer go through `local`, so the loader never runs
//! twice at once for one key on one node. A request served to a peer never
//! consults the picker: it is answered from this node's cache or loader and
//! never forwarded, so two nodes whose peer lists disagree cannot wait on
//! each other.

use super::breaker::Verdict;
use super::{Inner, Outcome};
use crate::cache::CacheKind;
use crate::error::Error;
use crate::flight::{panic_message, Call, Panicked, Role};
use crate::loader::LoadError;
use crate::peers::{FetchError, Peer};
use crate::stats::bump;
use crate::trace::{Escaped, Timed};
use crate::Value;
use futures_util::FutureExt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use tracing::field::Empty;
use tracing::Instrument;

/// Where a load may go.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Route {
    /// Ask the owner if another peer owns the key (a user's get).
    ViaOwner,
    /// Load here (a request from a peer: never forwarded).
    HereOnly,
}

/// The `outcome` of a get or load, for traces and metrics.
pub(super) fn outcome_label(outcome: &Outcome) -> &'static str {
    match outcome {
        Ok(_) => "ok",
        Err(Error::NotFound { .. }) => "not_found",
        Err(_) => "error",
    }
}

impl Inner {
    /// A get's or a peer request's miss, boxed and out of line, so that the
    /// hit path inside `get`'s own future stays small.
    #[cold]
    #[inline(never)]
    pub(super) fn miss<'a>(
        self: &'a Arc<Self>,
        key: &'a str,
        route: Route,
    ) -> crate::loader::BoxFuture<'a, Outcome> {
        Box::pin(async move {
            if let Some(stale) = self.revalidating(key, route) {
                return Ok(stale);
            }
            let outcome = self.traced_load(key, route).await;
            self.or_stale(key, outcome)
        })
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

    fn load<'a>(
        self: &Arc<Self>,
        key: &'a str,
        route: Route,
    ) -> impl Future<Output = Outcome> + 'a {
        bump(&self.counters.loads);
        let started = tokio::runtime::Handle::try_current()
            .map_err(|_| Error::NoRuntime {
                group: self.name.clone(),
                key: Arc::from(key),
            })
            .map(|runtime| {
                let (role, call) = self.start(&runtime, key, route);
                if role == Role::Leader {
                    bump(&self.counters.loads_deduped);
                }
                call
            });
        let inner = Arc::clone(self);
        async move {
            match started {
                Ok(call) => call.await.unwrap_or_else(|p| Err(inner.panicked(key, p))),
                Err(error) => Err(error),
            }
        }
    }

    /// Starts (or joins) the load of `key`: a fetch from its owner in the
    /// `remote` table if `route` allows and another peer owns it, else a
    /// load here.
    pub(super) fn start(
        self: &Arc<Self>,
        runtime: &tokio::runtime::Handle,
        key: &str,
        route: Route,
    ) -> (Role, Call<Outcome>) {
        let peer = match route {
            Route::ViaOwner => self.picker.as_ref().and_then(|p| p.pick(key)),
            Route::HereOnly => None,
        };
        match peer {
            Some(peer) => {
                let inner = Arc::clone(self);
                self.remote.run_keyed(runtime, key, move |key| {
                    inner.fetch_from(peer, Arc::clone(key))
                })
            }
            None => self.run_here(runtime, key),
        }
    }

    /// Starts (or joins) the local load of `key` in the `local` table.
    fn run_here(
        self: &Arc<Self>,
        runtime: &tokio::runtime::Handle,
        key: &str,
    ) -> (Role, Call<Outcome>) {
        let inner = Arc::clone(self);
        self.local
            .run_keyed(runtime, key, move |key| inner.load_here(Arc::clone(key)))
    }

    /// The body of a local load: re-check the cache (a load that finished
    /// just before this one started may have filled it), then call the loader
    /// and keep its value in the main cache.
    async fn load_here(self: Arc<Self>, key: Arc<str>) -> Outcome {
        let ticket = match self.begin_load(&key, true) {
            Ok(cached) => return cached,
            Err(ticket) => ticket,
        };
        // A key that just moved here may still be cached where it was.
        if let Some(value) = self.peek_previous(&key, ticket).await {
            return Ok(value);
        }
        let _place = match self.admit(&[&key]).await {
            Ok(place) => place,
            Err(mut refused) => return Err(refused.remove(0)),
        };
        if let (0, mut refused) = self.origin_admits(&[&key]) {
            return Err(refused.remove(0));
        }
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
        self.load_durations.record(label, started.elapsed());
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
                    self.origin_answered(Verdict::Unreachable(1));
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
            Ok(loaded) => {
                self.origin_answered(Verdict::of(&loaded));
                match &loaded {
                    Err(error) if !error.is_not_found() => tracing::warn!(
                        group = %self.name,
                        key = %self.key_in_traces.show(key),
                        error = %Escaped(error),
                        "load failed"
                    ),
                    _ => {}
                }
                self.loaded(key, ticket, loaded)
            }
            Err(payload) => {
                bump(&self.counters.local_load_errs);
                self.origin_answered(Verdict::Nothing);
                Err(self.panicked(
                    key,
                    Panicked {
                        message: panic_message(payload.as_ref()),
                    },
                ))
            }
        }
    }

    /// What the loader answered for `key`, counted; a value gets the
    /// group's time-to-live and is kept in the main cache unless `ticket`
    /// was fenced.
    pub(super) fn loaded(
        &self,
        key: &str,
        ticket: u64,
        loaded: Result<Value, LoadError>,
    ) -> Outcome {
        match loaded {
            Ok(value) => {
                bump(&self.counters.local_loads);
                let value = self.with_default_ttl(key, value);
                self.store(CacheKind::Main, key, &value, ticket);
                Ok(value)
            }
            Err(LoadError::NotFound) => {
                bump(&self.counters.local_load_errs);
                self.cache_not_found(key, ticket);
                self.drop_expired(key, ticket);
                Err(self.load_error(key, None, LoadError::NotFound))
            }
            Err(error) => {
                bump(&self.counters.local_load_errs);
                Err(self.load_error(key, None, error))
            }
        }
    }

    /// The body of a fetch from the owner; falls back to a local load when
    /// the owner cannot be reached.
    async fn fetch_from(self: Arc<Self>, peer: Arc<dyn Peer>, key: Arc<str>) -> Outcome {
        let ticket = match self.begin_load(&key, false) {
            Ok(cached) => return cached,
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
            Err(FetchError::Load(LoadError::NotFound) | FetchError::NotFoundCached { .. }) => {
                "not_found"
            }
            Err(FetchError::Load(_)) => "error",
            Err(FetchError::Unavailable(_)) => "unavailable",
        };
        self.fetch_durations.record(label, started.elapsed());
        timed.finish(label);
        match self.fetched(peer.id(), &key, ticket, fetched) {
            Ok(outcome) => outcome,
            Err(reason) => {
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

    /// What the owner answered for `key`, counted: the outcome (a value
    /// kept in the hot cache as the policy says, unless `ticket` was
    /// fenced), or why the owner could not be asked, for a load here.
    pub(super) fn fetched(
        &self,
        peer: &str,
        key: &str,
        ticket: u64,
        fetched: Result<Value, FetchError>,
    ) -> Result<Outcome, String> {
        match fetched {
            Ok(value) => {
                bump(&self.counters.peer_loads);
                if self.hot_cache.admits() {
                    self.store(CacheKind::Hot, key, &value, ticket);
                }
                Ok(Ok(value))
            }
            Err(FetchError::Load(error)) => {
                if error.is_not_found() {
                    self.drop_expired(key, ticket);
                }
                Ok(Err(self.load_error(key, Some(peer), error)))
            }
            Err(FetchError::NotFoundCached { until }) => {
                self.cache_owners_not_found(key, ticket, until);
                Ok(Err(self.load_error(key, Some(peer), LoadError::NotFound)))
            }
            Err(FetchError::Unavailable(reason)) => {
                bump(&self.counters.peer_errors);
                Err(reason)
            }
        }
    }

    pub(super) fn load_error(&self, key: &str, peer: Option<&str>, error: LoadError) -> Error {
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

    pub(super) fn panicked(&self, key: &str, panicked: Panicked) -> Error {
        Error::Panicked {
            group: self.name.clone(),
            key: Arc::from(key),
            message: panicked.message,
        }
    }
}
