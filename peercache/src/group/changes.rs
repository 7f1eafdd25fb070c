//! Changes for the whole cluster: remove, set and purge, the order in
//! which they reach the owner, this node and the other peers, and the
//! report of the peers they did not reach.
//!
//! A change goes to the owner first, then this node, then every other peer
//! at once, so a non-owner that refills its hot copy between two steps
//! refills it from an owner that already changed. A change runs as its own
//! task: once started it completes even if the caller stops waiting.

use super::{Group, Inner};
use crate::error::{Error, PeerFailure};
use crate::flight::panic_message;
use crate::peers::{Peer, PeerError};
use crate::trace::{Escaped, Timed};
use crate::Value;
use futures_util::future::join_all;
use futures_util::FutureExt;
use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::SystemTime;
use tracing::field::Empty;
use tracing::Instrument;

impl Group {
    /// Removes `key` from the whole cluster: from its owner first, then from
    /// this node, then from every other peer's caches at once. The next get
    /// anywhere loads it again.
    ///
    /// A get racing with the removal may still return the old value; a get
    /// that starts after `remove` returned `Ok` does not, on any node. On
    /// `Err(`[`Error::PeersFailed`]`)` every peer named there may still hold
    /// the old value; the others do not. [`Error::reached_owner`] says
    /// whether the owner was among them: `Some(true)`, the owner dropped the
    /// key and loads it again on the next get; `Some(false)`, the owner may
    /// still serve the old value to every node that asks it.
    ///
    /// ```
    /// use peercache::{loader_fn, Node};
    /// use std::sync::atomic::{AtomicU32, Ordering};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), peercache::Error> {
    /// let version = AtomicU32::new(0);
    /// let docs = Node::new().new_group("docs", 1 << 20, loader_fn(move |_key: String| {
    ///     let v = version.fetch_add(1, Ordering::SeqCst) + 1;
    ///     async move { Ok(format!("v{v}")) }
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
    /// the value is evicted or expires: then the loader runs again). A set
    /// counts as one request for the key: in a full cache, the main cache's
    /// policy keeps it only if the key was asked more often recently than
    /// what it would displace (README "The cache"), else the next get loads
    /// it. On
    /// `Err(`[`Error::PeersFailed`]`)`, [`Error::reached_owner`] says
    /// whether the owner stored the value: `Some(true)`, it did, and every
    /// node asking it gets the value, but a failed peer may still serve its
    /// old copy; `Some(false)`, the owner did not confirm it and the value
    /// is most likely stored nowhere: set it again.
    ///
    /// In a cluster the value is stored at the key's owner and every other
    /// copy is dropped, so every node serves it:
    ///
    /// ```
    /// use peercache::in_process::InProcessNetwork;
    /// use peercache::loader_fn;
    /// use std::time::{Duration, SystemTime};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let network = InProcessNetwork::new();
    /// let (a, b) = (network.node("a", &["a", "b"])?, network.node("b", &["a", "b"])?);
    /// for node in [&a, &b] {
    ///     node.new_group("flags", 1 << 20, loader_fn(|_: String| async { Ok("off") }))?;
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
        let value = self.inner.with_default_ttl(key, value);
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

impl Inner {
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
}
