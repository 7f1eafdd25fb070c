//! A group as a transport sees it: the requests of other peers, answered
//! from this node alone.
//!
//! These are not for applications: a peer's get must never be forwarded
//! (that is what keeps two nodes whose rings disagree from waiting on each
//! other), and a peer's remove, set or purge changes this node only, where
//! an application's change must reach the whole cluster ([`Group::remove`]
//! and the others). So they live on their own type, reached through
//! [`crate::Node::served_group`], which only a transport needs.

use super::load::Route;
use super::{Group, Inner};
use crate::error::Error;
use crate::stats::bump;
use crate::Value;
use std::sync::Arc;

/// The peer-facing side of a [`Group`]: what a transport calls for the
/// requests other peers send. Cheap to clone.
///
/// ```
/// use peercache::{loader_fn, Node, Value};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let node = Node::new();
/// node.new_group("colors", 1 << 20, loader_fn(|key: String| async move { Ok(format!("#{key}")) }))?;
///
/// // What a transport does with a peer's requests for group "colors":
/// let served = node.served_group("colors").expect("the group exists");
/// assert_eq!(served.get("red").await?.as_str()?, "#red"); // loaded here, never forwarded
/// served.set("red", Value::from("#FF0000")); // this node only
/// assert_eq!(served.get("red").await?.as_str()?, "#FF0000");
/// served.remove(&["red"]);
/// served.purge();
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct ServedGroup {
    pub(super) inner: Arc<Inner>,
}

impl std::fmt::Debug for ServedGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServedGroup")
            .field("name", &self.inner.name)
            .finish()
    }
}

impl ServedGroup {
    pub(crate) fn of(group: &Group) -> Self {
        ServedGroup {
            inner: Arc::clone(&group.inner),
        }
    }

    /// The group's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Serves `key` to a peer that asked for it: from this node's cache or
    /// its loader, and **never forwarded** to another peer, whatever this
    /// node's ring says. Counts `server_requests`.
    pub async fn get(&self, key: &str) -> Result<Value, Error> {
        bump(&self.inner.counters.server_requests);
        if let Some(value) = self.inner.lookup(key) {
            return self.inner.answer(key, value);
        }
        self.inner.miss(key, Route::HereOnly).await
    }

    /// When the not-found this node caches for `key` expires (Unix
    /// nanoseconds), if it caches one: what the transport tells the peer
    /// it answered not-found, for the peer to cache it as long.
    pub(crate) fn not_found_until(&self, key: &str) -> Option<i64> {
        self.inner.not_found_until(key)
    }

    /// Serves a peer's batch request: each key as [`ServedGroup::get`]
    /// serves it, in the order of `keys`, never forwarded; the keys this
    /// node must load go to its loader in one
    /// [`crate::Loader::load_many`] call. Counts each key in
    /// `server_requests`, and the batch in `server_batches`.
    pub async fn get_many<K: AsRef<str> + Sync>(&self, keys: &[K]) -> Vec<Result<Value, Error>> {
        let keys: Vec<&str> = keys.iter().map(AsRef::as_ref).collect();
        let counters = &self.inner.counters;
        counters
            .server_requests
            .fetch_add(keys.len() as u64, std::sync::atomic::Ordering::Relaxed);
        bump(&counters.server_batches);
        self.inner.get_many(keys, Route::HereOnly).await
    }

    /// Removes `keys` from this node's caches only, and keeps loads in flight
    /// from caching them: a peer's remove request.
    pub fn remove<S: AsRef<str>>(&self, keys: &[S]) {
        self.inner.remove_here(keys);
    }

    /// Stores `value` under `key` in this node's main cache (this node owns
    /// the key), replacing any value and fencing loads in flight: a peer's
    /// set request. A value already expired is not stored (the old one is
    /// still dropped).
    pub fn set(&self, key: &str, value: Value) {
        self.inner.set_here(key, value);
    }

    /// Drops this node's copies of `keys` (its hot cache, and values it
    /// borrowed from another node by a peek or a handoff), and keeps loads
    /// in flight from caching them; a value of its own stays: a peer's
    /// second round of hinted handoff.
    pub fn drop_copies<S: AsRef<str>>(&self, keys: &[S]) {
        self.inner.drop_copies_here(keys);
    }

    /// Drops every copy this node holds (its hot cache, and the values it
    /// borrowed from other nodes), and keeps loads in flight from caching:
    /// a peer's second round after a purge.
    pub fn drop_all_copies(&self) {
        self.inner.drop_all_copies_here();
    }

    /// [`ServedGroup::set`], then drops every other node's copy of `key`,
    /// as [`crate::Group::set`] does after storing at the owner (waiting at
    /// most the change timeout for each node, keeping hints for the ones
    /// not reached). For a set from a writer that does not drop the copies
    /// itself: mailgun/groupcache and groupcache-go send their set to the
    /// owner only, so without this the other nodes would keep serving their
    /// old copies. Runs in the background (inside a tokio runtime; without
    /// one, only the set is made).
    pub fn set_and_drop_copies(&self, key: &str, value: Value) {
        self.inner.set_here(key, value);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let inner = Arc::clone(&self.inner);
            let key = key.to_owned();
            runtime.spawn(async move { inner.drop_copies_elsewhere(key).await });
        }
    }

    /// Empties this node's caches of the group: a peer's purge request.
    pub fn purge(&self) {
        self.inner.purge_here();
    }
}
