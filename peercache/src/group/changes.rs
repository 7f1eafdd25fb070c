//! Changes for the whole cluster, as the application calls them: remove,
//! set and purge, each traced, each run as its own task (once started, a
//! change completes even if the caller stops waiting). How they reach the
//! peers is `reach.rs`.
//!
//! A change goes to the owner first, then this node, then every other peer
//! at once, so a non-owner that refills its hot copy between two steps
//! refills it from an owner that already changed.

use super::Group;
#[cfg(doc)]
use crate::error::PeerFailure;
use crate::error::{Applied, Error};
use crate::trace::Timed;
use crate::Value;
use std::future::Future;
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
    /// that starts after `remove` returned `Ok` does not, on any node but
    /// the ones [`Applied::pending`] names: peers that did not answer
    /// within the [change timeout](crate::GroupBuilder::change_timeout).
    /// The removal is kept for them and delivered when they answer again;
    /// until then they may serve a copy they hold, a hot copy for at most
    /// the [hot copies' maximum age](crate::GroupBuilder::hot_max_age). On
    /// `Err(`[`Error::PeersFailed`]`)` every peer named there may still hold
    /// the old value; the others do not. [`Error::reached_owner`] says
    /// whether the owner was among them: `Some(true)`, the owner dropped the
    /// key and loads it again on the next get; `Some(false)`, the owner may
    /// still serve the old value to every node that asks it (until the
    /// removal kept for it reaches it, when [`PeerFailure::pending`] says
    /// one is kept).
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
    pub async fn remove(&self, key: &str) -> Result<Applied, Error> {
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
    pub async fn remove_keys<I, S>(&self, keys: I) -> Result<Applied, Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut keys: Vec<String> = keys.into_iter().map(|k| k.as_ref().to_owned()).collect();
        keys.sort_unstable();
        keys.dedup();
        if keys.is_empty() {
            return Ok(Applied::default());
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
    /// `set` returned `Ok` sees this value or a later one, on any node but
    /// the pending ones ([`Applied::pending`], as for [`Group::remove`])
    /// (until the value is evicted or expires: then the loader runs
    /// again). A set
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
    ) -> Result<Applied, Error> {
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
    /// purge began, on every node but the pending ones
    /// ([`Applied::pending`]: the purge is kept for them and delivered
    /// when they answer). Loads in flight during the purge finish for their
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
    pub async fn purge(&self) -> Result<Applied, Error> {
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
            let failures = inner.purge_everywhere().await;
            inner.outcome("purge".to_owned(), failures)
        })
        .await
    }
}

/// Runs `work` as its own task when a tokio runtime is running, so that a
/// change that has started completes even if the caller stops waiting.
async fn detached<F>(work: F) -> Result<Applied, Error>
where
    F: Future<Output = Result<Applied, Error>> + Send + 'static,
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
async fn traced_change<F>(span: tracing::Span, work: F) -> Result<Applied, Error>
where
    F: Future<Output = Result<Applied, Error>> + Send + 'static,
{
    let timed = Timed::start(span);
    let outcome = detached(work.instrument(timed.span().clone())).await;
    if let Err(error) = &outcome {
        let failed: Vec<&str> = error.failed_peers().iter().map(|f| &*f.peer).collect();
        timed
            .span()
            .record("failed_peers", tracing::field::display(failed.join(",")));
    }
    if let Ok(applied) = &outcome {
        if !applied.pending().is_empty() {
            let pending: Vec<&str> = applied.pending().iter().map(|p| &**p).collect();
            timed
                .span()
                .record("failed_peers", tracing::field::display(pending.join(",")));
        }
    }
    timed.finish(match &outcome {
        Ok(applied) if applied.pending().is_empty() => "ok",
        Ok(_) => "pending",
        Err(Error::PeersFailed { .. }) => "partial",
        Err(_) => "error",
    });
    outcome
}
