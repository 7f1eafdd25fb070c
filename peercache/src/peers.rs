//! What a transport must provide: picking a key's owner and fetching from it.
//!
//! Go splits this into `PeerPicker` (who owns this key?) and `ProtoGetter`
//! (ask that peer). A [`crate::Node`] is given one [`PeerPicker`]; its groups
//! ask it on every miss. The HTTP transport implements these traits; so does
//! [`crate::in_process`], an in-process network for tests.
//!
//! A transport reports two kinds of failure and the group treats them
//! differently, as mailgun's groupcache does (golang's does not, and loads a
//! key twice when the owner's loader fails):
//!
//! - [`FetchError::Unavailable`]: the peer could not be asked or did not
//!   answer. The group counts `peer_errors` and loads the key itself.
//! - [`FetchError::Load`]: the owner answered that its loader failed. That is
//!   the answer: the group returns it without a second load.
//!
//! Besides fetching, a peer carries out the changes a group makes across the
//! cluster ([`crate::Group::remove`], [`crate::Group::set`],
//! [`crate::Group::purge`]): each is applied to the peer's own caches only,
//! never forwarded, and a failure is a [`PeerError`] that the group reports
//! by peer.

use crate::loader::{BoxFuture, LoadError};
use crate::{HotCachePolicy, Value};
use std::sync::Arc;

/// Why a fetch from a peer gave no value.
#[derive(Debug, Clone, thiserror::Error)]
pub enum FetchError {
    /// Transport failure or timeout; the caller falls back to a local load.
    #[error("peer unavailable: {0}")]
    Unavailable(String),
    /// The owner ran its loader and it failed; returned as is.
    #[error("the owner's loader failed: {0}")]
    Load(LoadError),
}

/// Why a peer did not carry out a remove, set or purge.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PeerError(pub String);

/// A remote peer that can serve keys of any group.
pub trait Peer: Send + Sync + 'static {
    /// The peer's identity, as on the ring (for HTTP, its base URL).
    fn id(&self) -> &str;

    /// Asks the peer for `key` of `group`. The peer answers from its cache
    /// or its loader and must not forward the request to another peer.
    fn fetch<'a>(
        &'a self,
        group: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Value, FetchError>>;

    /// Removes `keys` of `group` from the peer's main and hot caches (and
    /// stops its loads in flight from caching them). Over HTTP: a `DELETE`
    /// for one key, one `_remove-keys` `POST` for several.
    fn remove<'a>(
        &'a self,
        group: &'a str,
        keys: &'a [String],
    ) -> BoxFuture<'a, Result<(), PeerError>>;

    /// Stores `value` under `key` in the peer's main cache (the peer owns the
    /// key). Over HTTP: a `PUT` of a `SetRequest`.
    fn set<'a>(
        &'a self,
        group: &'a str,
        key: &'a str,
        value: &'a Value,
    ) -> BoxFuture<'a, Result<(), PeerError>>;

    /// Empties the peer's caches of `group`.
    fn purge<'a>(&'a self, group: &'a str) -> BoxFuture<'a, Result<(), PeerError>>;
}

/// Chooses the owner of a key.
pub trait PeerPicker: Send + Sync + 'static {
    /// The peer that owns `key`, or `None` when this node owns it (or there
    /// are no peers): then the key is loaded here.
    fn pick(&self, key: &str) -> Option<Arc<dyn Peer>>;

    /// Every member of the cluster except this node (including peers
    /// currently out of the ring because they failed): the nodes a remove,
    /// set or purge must reach.
    fn others(&self) -> Vec<Arc<dyn Peer>>;

    /// The hot-cache policy of groups built on a node with this picker, when
    /// the group does not set one ([`crate::GroupBuilder::hot_cache`]).
    /// Default: golang's one in ten.
    fn hot_cache_policy(&self) -> HotCachePolicy {
        HotCachePolicy::default()
    }
}
