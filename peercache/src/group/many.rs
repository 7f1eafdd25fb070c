//! Batched gets: [`Group::get_many`], and the path a peer's batch request
//! takes once `served.rs` ([`super::ServedGroup::get_many`]) counted it.
//!
//! A batch is the single get's path with its misses grouped: hits are
//! served from the caches; the misses are grouped by owner; each owner is
//! asked once for all of its keys ([`crate::Peer::fetch_many`]), all owners
//! at once; the keys this node owns go to the loader in one call
//! ([`crate::Loader::load_many`]). Merged loads still hold, key by key:
//! every missing key goes through the same flight tables as a single get,
//! so a key already being loaded (by a get or another batch) is joined, not
//! loaded again; only the keys a batch leads are put in its one request or
//! loader call. Those keys' runs share that call through a shared future:
//! whichever of them is polled drives it, and if the batch's caller goes
//! away, each run moves to a task of its own as a single load's does, and
//! the call still completes for the other waiters and the cache.
//!
//! A key the owner could not be asked for (the peer is down, the request
//! failed) is loaded here, in one batch for all such keys, as a single get
//! falls back to its own loader.

use super::load::Route;
use super::load_many::Loaded;
use super::{Group, Inner, Outcome};
use crate::error::Error;
use crate::flight::{panic_message, Call, Flight, Role};
use crate::loader::BoxFuture;
use crate::peers::{FetchError, Peer};
use crate::stats::bump;
use crate::trace::{Escaped, Timed};
use crate::Value;
use futures_util::future::{join_all, FutureExt, Shared};
use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, PoisonError};
use tracing::field::Empty;
use tracing::Instrument;

/// The one call a batch's leading keys share: its answers, in the order
/// the keys joined it.
type BatchCall = Shared<BoxFuture<'static, Arc<Vec<Outcome>>>>;

impl Group {
    /// The values of several keys at once: one result per key, in the
    /// order of `keys` (`answers[i]` is `keys[i]`'s), each as
    /// [`Group::get`] would answer it. One key's failure never fails the
    /// others.
    ///
    /// Hits are served from the caches. The misses are grouped by owner:
    /// each owner is asked once for all of its keys, all owners at once
    /// (over HTTP, one request per owner to peercache nodes, concurrent
    /// single gets to Go nodes), and the keys this node owns are loaded in
    /// one [`crate::Loader::load_many`] call. A key asked twice in one call
    /// is asked once; a key already being loaded, by a get or another
    /// batch, joins that load.
    ///
    /// ```
    /// use peercache::{loader_fn, LoadError, Node};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), peercache::Error> {
    /// let prices = Node::new().new_group("prices", 1 << 20, loader_fn(|item: String| async move {
    ///     match item.as_str() {
    ///         "apple" => Ok("1.20"),
    ///         "pear" => Ok("0.80"),
    ///         _ => Err(LoadError::NotFound),
    ///     }
    /// }))?;
    ///
    /// let answers = prices.get_many(&["apple", "durian", "pear", "apple"]).await;
    /// assert_eq!(answers.len(), 4);
    /// assert_eq!(answers[0].as_ref().unwrap().as_str().unwrap(), "1.20");
    /// assert!(answers[1].as_ref().unwrap_err().is_not_found());
    /// assert_eq!(answers[2].as_ref().unwrap().as_str().unwrap(), "0.80");
    /// assert_eq!(answers[3].as_ref().unwrap(), answers[0].as_ref().unwrap());
    /// assert_eq!(prices.stats().local_loads, 2); // apple once, pear once
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// Like [`Group::get`], it needs a tokio runtime for its misses (without
    /// one, each missing key fails with [`Error::NoRuntime`]), and loads it
    /// started complete for their other waiters if it is dropped.
    pub fn get_many<'a, K: AsRef<str>>(
        &'a self,
        keys: &'a [K],
    ) -> impl Future<Output = Vec<Result<Value, Error>>> + Send + 'a {
        let keys: Vec<&str> = keys.iter().map(AsRef::as_ref).collect();
        self.inner.get_many(keys, Route::ViaOwner)
    }
}

/// `keys` without repeats, and for each key the position of its one copy.
fn distinct<'k>(keys: &[&'k str]) -> (Vec<&'k str>, Vec<usize>) {
    let mut seen: HashMap<&str, usize, foldhash::fast::RandomState> = HashMap::default();
    let mut distinct = Vec::with_capacity(keys.len());
    let at = keys
        .iter()
        .map(|&key| {
            *seen.entry(key).or_insert_with(|| {
                distinct.push(key);
                distinct.len() - 1
            })
        })
        .collect();
    (distinct, at)
}

impl Inner {
    /// A batch of gets (`Route::ViaOwner`) or a peer's batch request
    /// (`Route::HereOnly`: nothing is forwarded).
    pub(super) async fn get_many(self: &Arc<Self>, keys: Vec<&str>, route: Route) -> Vec<Outcome> {
        let (distinct, at) = distinct(&keys);
        let mut answers: Vec<Option<Outcome>> = Vec::with_capacity(distinct.len());
        let mut misses = Vec::new();
        let mut stale = Vec::new();
        let mut runtime = None;
        for (i, key) in distinct.iter().enumerate() {
            let hit = match self.lookup(key) {
                Some(value) => Some(self.answer(key, value)),
                None => self.stale_to_revalidate(key).map(|(value, on)| {
                    stale.push(i);
                    runtime = Some(on);
                    Ok(value)
                }),
            };
            if hit.is_none() {
                misses.push(i);
            }
            answers.push(hit);
        }
        if let Some(runtime) = runtime {
            // The stale keys' refreshes, grouped as misses are; the calls
            // are dropped, so each batch completes in tasks of its own.
            drop(self.start_misses(&runtime, &distinct, stale, route, Count::Refreshes));
        }
        if !misses.is_empty() {
            let timed = Timed::start(tracing::debug_span!(
                target: "peercache",
                "peercache.get_many",
                group = %self.name,
                keys = distinct.len(),
                misses = misses.len(),
                outcome = Empty,
                duration_us = Empty,
            ));
            let span = timed.span().clone();
            for (i, outcome) in self.misses(&distinct, misses, route).instrument(span).await {
                answers[i] = Some(self.or_stale(distinct[i], outcome));
            }
            timed.finish("ok");
        }
        let answer = |i: usize| answers[i].clone().expect("every distinct key was answered");
        at.into_iter().map(answer).collect()
    }

    /// The misses of a batch (`distinct[i]` for each `i` of `misses`),
    /// grouped by owner and loaded: each key's outcome, by its position.
    async fn misses(
        self: &Arc<Self>,
        distinct: &[&str],
        misses: Vec<usize>,
        route: Route,
    ) -> Vec<(usize, Outcome)> {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            let no_runtime = |i: usize| Error::NoRuntime {
                group: self.name.clone(),
                key: Arc::from(distinct[i]),
            };
            return misses
                .into_iter()
                .map(|i| (i, Err(no_runtime(i))))
                .collect();
        };
        let calls = self.start_misses(&runtime, distinct, misses, route, Count::Loads);
        let answered = join_all(
            calls
                .into_iter()
                .map(|(i, call)| async move { (i, call.await) }),
        );
        answered
            .await
            .into_iter()
            .map(|(i, outcome)| {
                (
                    i,
                    outcome.unwrap_or_else(|p| Err(self.panicked(distinct[i], p))),
                )
            })
            .collect()
    }

    /// Starts (or joins) the loads of `distinct[i]` for each `i` of
    /// `misses`: grouped by owner, one batch per owner and one for the
    /// keys loaded here; counted as `count` says.
    fn start_misses(
        self: &Arc<Self>,
        runtime: &tokio::runtime::Handle,
        distinct: &[&str],
        misses: Vec<usize>,
        route: Route,
        count: Count,
    ) -> Vec<(usize, Call<Outcome>)> {
        let mut here = Vec::new();
        let mut owners: Vec<(Arc<dyn Peer>, Vec<usize>)> = Vec::new();
        for i in misses {
            bump(&self.counters.loads);
            let owner = match route {
                Route::ViaOwner => self.picker.as_ref().and_then(|p| p.pick(distinct[i])),
                Route::HereOnly => None,
            };
            match owner {
                None => here.push(i),
                Some(peer) => match owners.iter_mut().find(|(p, _)| p.id() == peer.id()) {
                    Some((_, keys)) => keys.push(i),
                    None => owners.push((peer, vec![i])),
                },
            }
        }
        let here = here.into_iter().map(|i| (i, distinct[i]));
        let mut calls = self.run_here_many(runtime, count, here);
        for (peer, keys) in owners {
            let inner = Arc::clone(self);
            let work = move |keys: Vec<Arc<str>>| -> BoxFuture<'static, Vec<Outcome>> {
                Box::pin(inner.fetch_many_from(peer, keys))
            };
            let keys = keys.into_iter().map(|i| (i, distinct[i]));
            calls.extend(self.run_batch(runtime, &self.remote, count, keys, work));
        }
        calls
    }

    /// Starts (or joins) the local loads of `keys`, those it leads in one
    /// loader call.
    fn run_here_many<'k>(
        self: &Arc<Self>,
        runtime: &tokio::runtime::Handle,
        count: Count,
        keys: impl Iterator<Item = (usize, &'k str)>,
    ) -> Vec<(usize, Call<Outcome>)> {
        let inner = Arc::clone(self);
        let work = move |keys: Vec<Arc<str>>| -> BoxFuture<'static, Vec<Outcome>> {
            Box::pin(inner.load_here_many(keys))
        };
        self.run_batch(runtime, &self.local, count, keys, work)
    }

    /// Runs (or joins) each key of `keys` in `flight`; the keys this batch
    /// leads are done together by one `work`, which answers them in the
    /// order they are given to it.
    fn run_batch<'k>(
        &self,
        runtime: &tokio::runtime::Handle,
        flight: &Flight<Outcome>,
        count: Count,
        keys: impl Iterator<Item = (usize, &'k str)>,
        work: impl FnOnce(Vec<Arc<str>>) -> BoxFuture<'static, Vec<Outcome>> + Send + 'static,
    ) -> Vec<(usize, Call<Outcome>)> {
        // The leading keys are known once every key is registered, before
        // any run is polled: the shared call takes them when first polled.
        let leaders: Arc<Mutex<Vec<Arc<str>>>> = Arc::default();
        let taken = Arc::clone(&leaders);
        let group = self.name.clone();
        let batch: BatchCall = async move {
            let keys = std::mem::take(&mut *taken.lock().unwrap_or_else(PoisonError::into_inner));
            // Nothing may unwind out of a shared future: it would poison it
            // and leave the runs waiting on it pending for ever. A panic is
            // every key's answer instead, as for a single load.
            let work = AssertUnwindSafe(async { work(keys.clone()).await }).catch_unwind();
            Arc::new(work.await.unwrap_or_else(|payload| {
                let message = panic_message(payload.as_ref());
                let panicked = |key: &Arc<str>| Error::Panicked {
                    group: group.clone(),
                    key: Arc::clone(key),
                    message: message.clone(),
                };
                keys.iter().map(|key| Err(panicked(key))).collect()
            }))
        }
        .boxed()
        .shared();
        // Eager (`collect`): every leader is registered before the shared
        // call can first be polled and take the list.
        keys.map(|(i, key)| {
            let (role, call) = flight.run_keyed(runtime, key, |key| {
                let mut leading = leaders.lock().unwrap_or_else(PoisonError::into_inner);
                let at = leading.len();
                leading.push(Arc::clone(key));
                let batch = batch.clone();
                async move { batch.await[at].clone() }
            });
            if role == Role::Leader && count != Count::Nothing {
                bump(&self.counters.loads_deduped);
            }
            if role == Role::Leader && count == Count::Refreshes {
                bump(&self.counters.refreshes);
            }
            (i, call)
        })
        .collect()
    }

    /// The body of a batch of local loads: each key re-checked in the
    /// cache, then one loader call for the rest, within the load timeout,
    /// panics caught; values kept in the main cache.
    async fn load_here_many(self: Arc<Self>, keys: Vec<Arc<str>>) -> Vec<Outcome> {
        let mut answers: Vec<Option<Outcome>> = Vec::with_capacity(keys.len());
        let mut loading = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            match self.begin_load(key, true) {
                Ok(cached) => answers.push(Some(cached)),
                Err(ticket) => {
                    answers.push(None);
                    loading.push((i, ticket));
                }
            }
        }
        if !loading.is_empty() {
            let mut names: Vec<&str> = loading.iter().map(|&(i, _)| &*keys[i]).collect();
            let _place = match self.admit(&names).await {
                Ok(place) => place,
                Err(refused) => {
                    for (&(i, _), error) in loading.iter().zip(refused) {
                        answers[i] = Some(Err(error));
                    }
                    return answers.into_iter().map(|a| a.expect("answered")).collect();
                }
            };
            // The breaker may let all through, one (a trial), or none.
            let (admitted, refused) = self.origin_admits(&names);
            for (&(i, _), error) in loading[admitted..].iter().zip(refused) {
                answers[i] = Some(Err(error));
            }
            loading.truncate(admitted);
            names.truncate(admitted);
            if names.is_empty() {
                return answers.into_iter().map(|a| a.expect("answered")).collect();
            }
            let loaded = self.call_loader_many(&names).await;
            for (&(i, ticket), loaded) in loading.iter().zip(loaded) {
                answers[i] = Some(match loaded {
                    Loaded::Answer(loaded) => self.loaded(&keys[i], ticket, loaded),
                    Loaded::Failed(error) => {
                        bump(&self.counters.local_load_errs);
                        Err(self.batch_failed(&keys[i], error))
                    }
                });
            }
        }
        answers.into_iter().map(|a| a.expect("answered")).collect()
    }

    /// The body of a batch fetch from the owner: each key re-checked in
    /// the cache, then one `fetch_many` for the rest; the keys the owner
    /// could not be asked for are loaded here, together.
    async fn fetch_many_from(
        self: Arc<Self>,
        peer: Arc<dyn Peer>,
        keys: Vec<Arc<str>>,
    ) -> Vec<Outcome> {
        let mut answers: Vec<Option<Outcome>> = Vec::with_capacity(keys.len());
        let mut asking = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            match self.begin_load(key, false) {
                Ok(cached) => answers.push(Some(cached)),
                Err(ticket) => {
                    answers.push(None);
                    asking.push((i, ticket));
                }
            }
        }
        if asking.is_empty() {
            return answers.into_iter().map(|a| a.expect("answered")).collect();
        }
        let names: Vec<&str> = asking.iter().map(|&(i, _)| &*keys[i]).collect();
        let timed = Timed::start(tracing::debug_span!(
            target: "peercache",
            "peercache.peer_fetch_many",
            group = %self.name,
            keys = names.len(),
            peer = peer.id(),
            outcome = Empty,
            duration_us = Empty,
        ));
        let started = std::time::Instant::now();
        let mut fetched = AssertUnwindSafe(peer.fetch_many(&self.name, &names))
            .catch_unwind()
            .instrument(timed.span().clone())
            .await
            .unwrap_or_else(|payload| {
                let reason = format!("the transport {}", panic_message(payload.as_ref()));
                vec![Err(FetchError::Unavailable(reason)); names.len()]
            });
        let given = fetched.len();
        fetched.truncate(names.len());
        fetched.resize_with(names.len(), || {
            Err(FetchError::Unavailable(format!(
                "the transport answered {given} results for {} keys",
                names.len()
            )))
        });
        let unavailable = fetched
            .iter()
            .filter(|f| matches!(f, Err(FetchError::Unavailable(_))))
            .count();
        let label = if unavailable > 0 { "unavailable" } else { "ok" };
        self.fetch_durations.record(label, started.elapsed());
        timed.finish(label);
        let mut fallback = Vec::new();
        let mut first_reason = None;
        for (&(i, ticket), fetched) in asking.iter().zip(fetched) {
            match self.fetched(peer.id(), &keys[i], ticket, fetched) {
                Ok(outcome) => answers[i] = Some(outcome),
                Err(reason) => {
                    first_reason.get_or_insert(reason);
                    fallback.push(i);
                }
            }
        }
        if let Some(reason) = first_reason {
            tracing::warn!(
                group = %self.name,
                keys = fallback.len(),
                peer = %Escaped(peer.id()),
                reason = %Escaped(&reason),
                "peer batch fetch failed; loading those keys locally"
            );
            let runtime = tokio::runtime::Handle::current();
            let fallback = fallback.iter().map(|&i| (i, &*keys[i]));
            let calls = self.run_here_many(&runtime, Count::Nothing, fallback);
            let loaded = join_all(
                calls
                    .into_iter()
                    .map(|(i, call)| async move { (i, call.await) }),
            );
            for (i, outcome) in loaded.await {
                answers[i] = Some(outcome.unwrap_or_else(|p| Err(self.panicked(&keys[i], p))));
            }
        }
        answers.into_iter().map(|a| a.expect("answered")).collect()
    }
}

/// Whether a batch's runs count as loads started (`loads_deduped`): a
/// batch's own misses do, and its refreshes of stale keys (also counted in
/// `refreshes`); its fallback to the loader, after the owner could not be
/// asked, does not (as a single get's does not).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Count {
    Loads,
    Refreshes,
    Nothing,
}
