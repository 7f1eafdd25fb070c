//! The error of a group operation.
//!
//! Every variant names the group and, where there is one, the key and the
//! peer, and says what to do. [`Error`] is `Clone` because a merged load hands
//! one result to every waiter.

use crate::loader::LoadError;
use std::sync::Arc;

/// What went wrong in a [`crate::Group`] or [`crate::Node`] call.
///
/// Its message names the group, the key and the peer, and says what to do.
/// Match on the variants that call for different handling:
///
/// ```
/// use peercache::{loader_fn, Error, LoadError, Node};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), peercache::Error> {
/// let users = Node::new().new_group("users", 1 << 20, loader_fn(|id: String| async move {
///     match id.as_str() {
///         "1" => Ok("ada"),
///         "2" => Err(LoadError::msg("database unavailable")),
///         _ => Err(LoadError::NotFound),
///     }
/// }))?;
///
/// let mut statuses = Vec::new();
/// for id in ["1", "2", "3"] {
///     statuses.push(match users.get(id).await {
///         Ok(_) => 200,
///         Err(e) if e.is_not_found() => 404,
///         Err(Error::Load { source, .. }) => {
///             eprintln!("loading user {id} failed: {source}");
///             503
///         }
///         Err(_) => 500, // a panicked or timed-out load, no runtime, ...
///     });
/// }
/// assert_eq!(statuses, [200, 503, 404]);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The loader (here, or at the owning peer) reported that the key does
    /// not exist. Not cached: the next get asks again.
    #[error("group {group:?}: key {key:?} not found{}", at_peer(peer))]
    NotFound {
        /// The group.
        group: Arc<str>,
        /// The key.
        key: Arc<str>,
        /// The owning peer whose loader answered, or `None` for this node.
        peer: Option<Arc<str>>,
    },
    /// The loader (here, or at the owning peer) failed. Not cached: the next
    /// get loads again.
    #[error(
        "group {group:?}: loading key {key:?} failed{}: {source}",
        at_peer(peer)
    )]
    Load {
        /// The group.
        group: Arc<str>,
        /// The key.
        key: Arc<str>,
        /// The owning peer whose loader failed, or `None` for this node.
        peer: Option<Arc<str>>,
        /// The loader's error.
        source: LoadError,
    },
    /// The loader or the peer transport panicked while loading the key. Every
    /// waiter gets this error; the next get loads again.
    #[error("group {group:?}: loading key {key:?} {message}; fix the loader, the next get will load again")]
    Panicked {
        /// The group.
        group: Arc<str>,
        /// The key.
        key: Arc<str>,
        /// The panic message.
        message: String,
    },
    /// The loader did not finish within the group's load timeout
    /// ([`crate::GroupBuilder::load_timeout`]). The load was cancelled; every
    /// waiter gets this error and the next get loads again.
    #[error("group {group:?}: loading key {key:?} took longer than the load timeout ({timeout:?}) and was cancelled; the next get will load again: make the loader faster or raise the timeout")]
    LoadTimeout {
        /// The group.
        group: Arc<str>,
        /// The key.
        key: Arc<str>,
        /// The group's load timeout.
        timeout: std::time::Duration,
    },
    /// The group's loader calls were at their cap
    /// ([`crate::GroupBuilder::max_concurrent_loads`]) and no place came
    /// free within the wait: the key was not loaded. Not cached: a later
    /// get loads it once the origin has room.
    #[error("group {group:?}: key {key:?} not loaded: {limit} loads already running and none ended within {wait:?} (max_concurrent_loads); retry shortly, or raise the cap if the origin can take more")]
    Overloaded {
        /// The group.
        group: Arc<str>,
        /// The key.
        key: Arc<str>,
        /// The group's cap on loads at once.
        limit: usize,
        /// How long the load waited for a place.
        wait: std::time::Duration,
    },
    /// The group's origin failed as unreachable that many loads in a row
    /// ([`crate::GroupBuilder::origin_breaker`]): the load was not tried,
    /// to spare the origin while it recovers; one trial load after the
    /// cool-down decides whether loads resume. Not cached.
    #[error("group {group:?}: key {key:?} not loaded: the origin failed {failures} loads in a row, so loads pause for {cool_down:?} before a trial (origin_breaker); retry later, or serve stale values with stale_if_error")]
    OriginDown {
        /// The group.
        group: Arc<str>,
        /// The key.
        key: Arc<str>,
        /// The failures in a row that open the breaker.
        failures: u32,
        /// How long loads pause before a trial.
        cool_down: std::time::Duration,
    },
    /// A get was made outside a tokio runtime; loads are spawned on the
    /// current runtime, so call from within one (e.g. `#[tokio::main]`).
    #[error("group {group:?}: key {key:?} needs a load, but no tokio runtime is running; call get from within a tokio runtime")]
    NoRuntime {
        /// The group.
        group: Arc<str>,
        /// The key.
        key: Arc<str>,
    },
    /// A remove, set or purge did not reach every peer. What did reach them
    /// is done; each failed peer is named. A peer not reached may keep
    /// serving the old value (from its hot cache, or as the owner) until the
    /// value expires or is evicted; call again once it is back.
    #[error("group {group:?}: {action} did not reach every peer: {}; a peer not reached may still serve the old value until it expires or is evicted: retry when it is back", list_failures(failures))]
    PeersFailed {
        /// The group.
        group: Arc<str>,
        /// What was done, e.g. `remove of key "k"`.
        action: String,
        /// The peers that failed, and why.
        failures: Vec<PeerFailure>,
    },
    /// A value could not be encoded or decoded by the codec of a
    // A link only when the module exists: the default build's docs would
    // otherwise carry a broken link.
    #[cfg_attr(feature = "typed", doc = "[`crate::typed::TypedGroup`]")]
    #[cfg_attr(not(feature = "typed"), doc = "`typed::TypedGroup`")]
    /// (feature `typed`). Nothing cached is changed. A value that does not
    /// decode was written with another codec or another shape of the type,
    /// by this node or another one sharing the group.
    #[error("group {group:?}: the value of key {key:?} does not {action} as {type_name}: {reason}; every node sharing the group must use the same type and codec (a remove of the key makes the next get load it again)")]
    Codec {
        /// The group.
        group: Arc<str>,
        /// The key.
        key: Arc<str>,
        /// `"encode"` (a set) or `"decode"` (a get).
        action: &'static str,
        /// The Rust type of the values.
        type_name: &'static str,
        /// The codec's error.
        reason: String,
    },
    /// A group with this name already exists on this node.
    #[error("a group named {name:?} already exists on this node; use Node::group({name:?}) to get it, or pick another name")]
    DuplicateGroup {
        /// The name asked for.
        name: String,
    },
    /// The group name cannot be used.
    #[error("invalid group name {name:?}: {reason}")]
    InvalidGroupName {
        /// The name asked for.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A group setting given to [`crate::GroupBuilder`] cannot be used.
    #[error("group {group:?}: invalid {setting}: {reason}")]
    InvalidSetting {
        /// The group being built.
        group: String,
        /// The builder method, such as `"load_timeout"`.
        setting: &'static str,
        /// What is wrong and what to give instead.
        reason: &'static str,
    },
}

/// One peer that a remove, set or purge did not reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerFailure {
    /// The peer's identity (for HTTP, its base URL).
    pub peer: Arc<str>,
    /// Whether the peer owns (some of) the keys: then the change did not
    /// happen at the source of truth of the cluster's cache
    /// ([`Error::reached_owner`] says it for the whole change).
    pub owner: bool,
    /// Whether the change is kept for the peer and delivered when it
    /// answers again (it could not be reached); `false` when the peer
    /// answered and refused it.
    pub pending: bool,
    /// What went wrong.
    pub reason: String,
}

/// A change ([`crate::Group::set`], [`crate::Group::remove`],
/// [`crate::Group::remove_keys`], [`crate::Group::purge`]) carried out by
/// the owner and every peer that answered; the peers that did not answer
/// within the change timeout ([`crate::GroupBuilder::change_timeout`]) are
/// pending: the change is kept for them and delivered when they answer
/// again.
///
/// ```
/// # use peercache::{loader_fn, Node};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), peercache::Error> {
/// # let group = Node::new().new_group("g", 1 << 20, loader_fn(|k: String| async move { Ok(k) }))?;
/// let applied = group.set("k", "v", None).await?;
/// assert!(applied.pending().is_empty()); // every node has it
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    pub(crate) pending: Vec<Arc<str>>,
}

impl Applied {
    /// The peers the change waits for (their base URLs for HTTP); empty
    /// when every node carried it out.
    pub fn pending(&self) -> &[Arc<str>] {
        &self.pending
    }
}

fn list_failures(failures: &[PeerFailure]) -> String {
    let listed: Vec<String> = failures
        .iter()
        .map(|f| {
            let role = if f.owner { " (owner)" } else { "" };
            let kept = if f.pending {
                "; kept for it, delivered when it answers"
            } else {
                ""
            };
            format!("{}{role}: {}{kept}", f.peer, f.reason)
        })
        .collect();
    listed.join("; ")
}

fn at_peer(peer: &Option<Arc<str>>) -> String {
    match peer {
        Some(peer) => format!(" at owner {peer}"),
        None => String::new(),
    }
}

impl Error {
    /// True when the key does not exist in the data source.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound { .. })
    }

    /// The peers a remove, set or purge did not reach (empty for other
    /// errors).
    ///
    /// ```
    /// use peercache::in_process::InProcessNetwork;
    /// use peercache::{loader_fn, Error};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let network = InProcessNetwork::new();
    /// let a = network.node("a", &["a", "b"])?;
    /// let b = network.node("b", &["a", "b"])?;
    /// a.new_group("g", 1 << 20, loader_fn(|k: String| async move { Ok(k) }))?;
    /// b.new_group("g", 1 << 20, loader_fn(|k: String| async move { Ok(k) }))?;
    ///
    /// network.set_down("b", true); // b is unreachable, and owns "k"
    /// # let k = (0..).map(|i| format!("k{i}")).find(|k| {
    /// #     peercache::ring::Ring::with_peers(peercache::ring::HashMode::Golang, 50, ["a", "b"])
    /// #         .unwrap().owner(k) == Some("b")
    /// # }).unwrap();
    /// let error = a.group("g").unwrap().remove(&k).await.unwrap_err();
    /// assert!(matches!(error, Error::PeersFailed { .. }));
    /// let failed = error.failed_peers();
    /// assert_eq!(&*failed[0].peer, "b");
    /// assert!(failed[0].owner);
    /// assert!(failed[0].pending); // kept for b, delivered when it answers
    /// # Ok(())
    /// # }
    /// ```
    pub fn failed_peers(&self) -> &[PeerFailure] {
        match self {
            Error::PeersFailed { failures, .. } => failures,
            _ => &[],
        }
    }

    /// For a change that failed at a peer ([`Error::PeersFailed`]),
    /// whether it reached the owner of its key (of every key, for
    /// [`crate::Group::remove_keys`]): `Some(true)` when none of the failed
    /// peers is an owner (then a peer refused it), `Some(false)` when one
    /// is; `None` for every other error. (A change that only missed
    /// non-owners is `Ok`, pending at them: [`crate::Applied`].)
    ///
    /// `Some(true)` after a [`crate::Group::set`] means the owner stored the
    /// value and every node that asks the owner gets it; only the failed
    /// peers may keep serving an old copy (until it expires or is evicted,
    /// or the change is made again). After a remove, the owner dropped the
    /// key. `Some(false)` means an owner did not confirm the change: a set
    /// was most likely stored nowhere, though a request that timed out may
    /// have been carried out all the same; make the change again. The owner
    /// is the one this node's ring names: an owner out of the ring is not
    /// asked, its keys' new owner is. A [`crate::Group::purge`] has no
    /// owner: it fails only where a peer refused it, `Some(true)`.
    ///
    /// ```
    /// use peercache::in_process::InProcessNetwork;
    /// use peercache::ring::{HashMode, Ring, DEFAULT_REPLICAS};
    /// use peercache::{loader_fn, Error};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let peers = ["a", "b", "c"];
    /// let network = InProcessNetwork::new();
    /// let nodes = peers.map(|id| network.node(id, &peers).unwrap());
    /// for node in &nodes {
    ///     node.new_group("g", 1 << 20, loader_fn(|k: String| async move { Ok(k) }))?;
    /// }
    /// let on_a = nodes[0].group("g").unwrap();
    /// // A key whose owner is b, so that c is neither its owner nor the caller.
    /// let ring = Ring::with_peers(HashMode::Golang, DEFAULT_REPLICAS, peers)?;
    /// let key = (0..).map(|i| format!("k{i}")).find(|k| ring.owner(k) == Some("b")).unwrap();
    ///
    /// network.set_down("c", true); // a non-owner is down
    /// let applied = on_a.set(&key, "new", None).await?; // b stored it
    /// assert_eq!(applied.pending(), [std::sync::Arc::from("c")]); // c gets it later
    ///
    /// network.set_down("b", true); // now the owner is down too
    /// let error = on_a.set(&key, "newer", None).await.unwrap_err();
    /// assert_eq!(error.reached_owner(), Some(false)); // stored nowhere: set it again later
    ///
    /// assert_eq!(on_a.purge().await?.pending().len(), 2); // no owner: pending at b and c
    /// # Ok(())
    /// # }
    /// ```
    pub fn reached_owner(&self) -> Option<bool> {
        match self {
            Error::PeersFailed { failures, .. } => Some(failures.iter().all(|f| !f.owner)),
            _ => None,
        }
    }
}
