//! What a transport provides, [`PeerPicker`] and [`Peer`] (documented on
//! `PeerPicker`), and the errors they report.

use crate::loader::{BoxFuture, LoadError};
use crate::Value;
use std::sync::Arc;

/// Why a fetch from a peer gave no value.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// Transport failure or timeout; the caller falls back to a local load.
    #[error("peer unavailable: {0}")]
    Unavailable(String),
    /// The owner ran its loader and it failed; returned as is.
    #[error("the owner's loader failed: {0}")]
    Load(LoadError),
    /// The owner's loader said not found, and the owner caches that answer
    /// until `until` ([`crate::GroupBuilder::cache_not_found`]): a
    /// not-found, which an asking group that caches not-found keeps as long
    /// (at most its own not-found TTL). A transport that cannot tell
    /// answers `Load(LoadError::NotFound)`.
    #[error("not found (the owner caches the answer until {until:?})")]
    NotFoundCached {
        /// When the owner's cached not-found expires.
        until: std::time::SystemTime,
    },
}

impl FetchError {
    /// A [`FetchError::NotFoundCached`] until `until_unix_nanos` (the wire's
    /// form).
    pub(crate) fn not_found_until(until_unix_nanos: i64) -> Self {
        let nanos = until_unix_nanos.max(0).unsigned_abs();
        FetchError::NotFoundCached {
            until: std::time::UNIX_EPOCH + std::time::Duration::from_nanos(nanos),
        }
    }
}

/// Most single fetches [`Peer::fetch_many`]'s default sends at once.
pub const FETCH_MANY_CONCURRENCY: usize = 32;

/// Why a peer did not carry out a remove, set or purge: it could not be
/// reached ([`PeerError::unreachable`]: the group keeps the change for it
/// and delivers it when it answers again), or it answered no
/// ([`PeerError::refused`]: reported, never retried).
///
/// ```
/// use peercache::PeerError;
///
/// let down = PeerError::unreachable("connection refused");
/// assert!(down.is_unreachable());
/// let no = PeerError::refused("answered DELETE with 405");
/// assert_eq!((no.is_unreachable(), no.reason()), (false, "answered DELETE with 405"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct PeerError {
    reason: String,
    unreachable: bool,
}

impl PeerError {
    /// The peer could not be asked or did not answer: a refused
    /// connection, a timeout, a broken exchange, a 5xx that says the peer
    /// is not working, or a peer out of the ring. The change is kept for
    /// the peer (a hint) and delivered when it answers again.
    pub fn unreachable(reason: impl Into<String>) -> Self {
        PeerError {
            reason: reason.into(),
            unreachable: true,
        }
    }

    /// The peer answered and refused the change (it does not know the
    /// request, or says it is not allowed): asking again would get the same
    /// answer, so the change is reported and not kept.
    pub fn refused(reason: impl Into<String>) -> Self {
        PeerError {
            reason: reason.into(),
            unreachable: false,
        }
    }

    /// What went wrong.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// Whether the peer could not be reached ([`PeerError::unreachable`]).
    pub fn is_unreachable(&self) -> bool {
        self.unreachable
    }
}

/// A remote peer that can serve keys of any group.
///
/// See [`PeerPicker`] for an implementation.
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

    /// Asks the peer for several distinct keys of `group` at once: one
    /// result per key, in the order of `keys`, each as [`Peer::fetch`]
    /// would answer it. [`crate::Group::get_many`] calls it once per owner.
    ///
    /// The default calls [`Peer::fetch`] for each key, at most
    /// [`FETCH_MANY_CONCURRENCY`] at once; a transport that carries a batch
    /// in one request overrides it (the HTTP transport does, with peers
    /// that are peercache nodes). An answer with fewer results than keys
    /// counts the keys left without one as unavailable.
    fn fetch_many<'a>(
        &'a self,
        group: &'a str,
        keys: &'a [&'a str],
    ) -> BoxFuture<'a, Vec<Result<Value, FetchError>>> {
        use futures_util::stream::{self, StreamExt};
        Box::pin(
            stream::iter(keys.iter().map(move |key| self.fetch(group, key)))
                .buffered(FETCH_MANY_CONCURRENCY)
                .collect(),
        )
    }

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

    /// Drops the peer's copies of `keys` of `group` that other nodes own
    /// (its hot cache), not a value it owns: the second round of hinted
    /// handoff, after the changes of `keys` reached every node. The default
    /// does nothing (the copies then live at most the hot copies' maximum
    /// age): a plain [`Peer::remove`] would also drop a value the peer owns,
    /// one just set included.
    fn drop_copies<'a>(
        &'a self,
        group: &'a str,
        keys: &'a [String],
    ) -> BoxFuture<'a, Result<(), PeerError>> {
        let _ = (group, keys);
        Box::pin(async { Ok(()) })
    }

    /// Drops every copy the peer holds of other nodes' keys of `group` (its
    /// hot cache): the second round after a purge reached every node. The
    /// default does nothing (the copies then live at most the hot copies'
    /// maximum age).
    fn drop_all_copies<'a>(&'a self, group: &'a str) -> BoxFuture<'a, Result<(), PeerError>> {
        let _ = group;
        Box::pin(async { Ok(()) })
    }

    /// Delivers changes the peer missed (hinted handoff, README "Updating
    /// and removing keys"): `keys` of `group` to drop, or, for `None`, a
    /// purge of `group`. A group calls it about every 200 ms while changes
    /// wait for the peer, including while the transport holds the peer out
    /// of its ring; a transport that sends nothing to such peers should
    /// send this all the same, so that the delivery doubles as a probe.
    /// The default calls [`Peer::remove`] or [`Peer::purge`].
    fn deliver_hints<'a>(
        &'a self,
        group: &'a str,
        keys: Option<&'a [String]>,
    ) -> BoxFuture<'a, Result<(), PeerError>> {
        match keys {
            Some(keys) => self.remove(group, keys),
            None => self.purge(group),
        }
    }

    /// Asks the peer for `key` of `group` **from its main cache only** (a
    /// peek): it never loads or forwards. `Ok(None)` when it does not hold
    /// the key. A group sends it, before loading a key it has just come to
    /// own, to the key's owner on an earlier ring
    /// ([`PeerPicker::previous_owner`]), so that a key that moved is not
    /// loaded from the origin again. The default answers `Ok(None)`: a
    /// transport that cannot peek makes every peek a miss.
    fn peek<'a>(
        &'a self,
        group: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<Value>, FetchError>> {
        let _ = (group, key);
        Box::pin(async { Ok(None) })
    }

    /// Hands `entries` of `group` over to the peer, which keeps in its main
    /// cache those it owns on its own ring (and drops the rest): what a
    /// node that leaves the cluster sends the new owners of its keys
    /// ([`crate::Node::leave`]). Returns how many the peer kept. The
    /// default refuses: the entries are then loaded again by their new
    /// owners when asked.
    fn hand_over<'a>(
        &'a self,
        group: &'a str,
        entries: &'a [(String, Value)],
    ) -> BoxFuture<'a, Result<u64, PeerError>> {
        let _ = (group, entries);
        Box::pin(async {
            Err(PeerError::refused(
                "the transport does not hand values over",
            ))
        })
    }
}

/// Chooses the owner of a key.
///
/// Give one to [`crate::Node::with_picker`].
///
/// What a transport must provide: picking a key's owner and fetching from it.
///
/// Go splits this into `PeerPicker` (who owns this key?) and `ProtoGetter`
/// (ask that peer). A [`crate::Node`] is given one [`PeerPicker`]; its groups
/// ask it on every miss. The HTTP transport implements these traits; so does
/// [`crate::in_process`], an in-process network for tests.
///
/// A transport reports two kinds of failure and the group treats them
/// differently, as mailgun's groupcache does (golang's does not, and loads a
/// key twice when the owner's loader fails):
///
/// - [`FetchError::Unavailable`]: the peer could not be asked or did not
///   answer. The group counts `peer_errors` and loads the key itself.
/// - [`FetchError::Load`]: the owner answered that its loader failed (or
///   said not found). That is the answer: the group returns it without a
///   second load.
/// - [`FetchError::NotFoundCached`]: the owner said not found and caches
///   that until a given time; the group returns not-found, and keeps it as
///   long if it caches not-found itself.
///
/// Besides fetching, a peer carries out the changes a group makes across the
/// cluster ([`crate::Group::remove`], [`crate::Group::set`],
/// [`crate::Group::purge`]): each is applied to the peer's own caches only,
/// never forwarded, and a failure is a [`PeerError`] that the group reports
/// by peer.
///
/// A sketch of a transport: a picker that gives keys starting with
/// `remote:` to one remote peer, whose `fetch` would send a request (here it
/// makes the answer up). The trait methods return a boxed future,
/// [`BoxFuture`]:
///
/// ```
/// use peercache::BoxFuture;
/// use peercache::{loader_fn, FetchError, Node, Peer, PeerError, PeerPicker, Value};
/// use std::sync::Arc;
///
/// struct Remote;
///
/// impl Peer for Remote {
///     fn id(&self) -> &str {
///         "http://10.0.0.2:8080"
///     }
///     fn fetch<'a>(&'a self, group: &'a str, key: &'a str) -> BoxFuture<'a, Result<Value, FetchError>> {
///         // A real transport asks the peer, mapping a failed exchange to
///         // FetchError::Unavailable (then the key is loaded here).
///         Box::pin(async move { Ok(Value::from(format!("{group}/{key} from the owner"))) })
///     }
///     fn remove<'a>(&'a self, _: &'a str, _: &'a [String]) -> BoxFuture<'a, Result<(), PeerError>> {
///         Box::pin(async { Ok(()) })
///     }
///     fn set<'a>(&'a self, _: &'a str, _: &'a str, _: &'a Value) -> BoxFuture<'a, Result<(), PeerError>> {
///         Box::pin(async { Err(PeerError::refused("read-only peer")) })
///     }
///     fn purge<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<(), PeerError>> {
///         Box::pin(async { Ok(()) })
///     }
/// }
///
/// struct Picker(Arc<Remote>);
///
/// impl PeerPicker for Picker {
///     fn pick(&self, key: &str) -> Option<Arc<dyn Peer>> {
///         key.starts_with("remote:").then(|| self.0.clone() as Arc<dyn Peer>) // None: this node owns it
///     }
///     fn others(&self) -> Vec<Arc<dyn Peer>> {
///         vec![self.0.clone()]
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), peercache::Error> {
/// let node = Node::with_picker(Arc::new(Picker(Arc::new(Remote))));
/// let g = node.new_group("g", 1 << 20, loader_fn(|key: String| async move { Ok(format!("{key} loaded here")) }))?;
/// assert_eq!(g.get("mine").await?.as_str().unwrap(), "mine loaded here");
/// assert_eq!(g.get("remote:x").await?.as_str().unwrap(), "g/remote:x from the owner");
///
/// let refused = g.set("remote:x", "new", None).await.unwrap_err();
/// assert_eq!(refused.failed_peers()[0].reason, "read-only peer");
/// # Ok(())
/// # }
/// ```
pub trait PeerPicker: Send + Sync + 'static {
    /// The peer that owns `key`, or `None` when this node owns it (or there
    /// are no peers): then the key is loaded here.
    fn pick(&self, key: &str) -> Option<Arc<dyn Peer>>;

    /// Every member of the cluster except this node (including peers
    /// currently out of the ring because they failed): the nodes a remove,
    /// set or purge must reach.
    fn others(&self) -> Vec<Arc<dyn Peer>>;

    /// Whether this node's view of the cluster changed lately (a peer went
    /// down, came back, or the member list changed), so that other nodes
    /// may still see it differently and disagree on who owns a key. Then a
    /// change drops the other nodes' copies a second time once every node
    /// took it (a node may have refilled its copy, during the change, from
    /// the owner on its own ring before that owner took the change). The
    /// default: never.
    fn settling(&self) -> bool {
        false
    }

    /// The peer to peek for `key` ([`Peer::peek`]) before this node loads
    /// it: shortly after a planned change of this node's ring (the pool's
    /// peek window), the key's owner on an earlier ring, if that is another
    /// node than this one and than the key's owner now, it is up, and it
    /// can answer a peek (never a Go node, which would load the key). The
    /// default: none.
    fn previous_owner(&self, key: &str) -> Option<Arc<dyn Peer>> {
        let _ = key;
        None
    }

    /// Tells the other members that this node is leaving, so that they
    /// take it out of their rings at once, and takes it out of its own:
    /// from then on [`PeerPicker::pick`] names the key's owner without
    /// this node, which is where [`crate::Node::leave`] hands its values
    /// over. The default does nothing.
    fn leave(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }

    /// The member `id` said it is leaving ([`PeerPicker::leave`] on its
    /// node): take it out of the ring now, as if it were down, until it
    /// answers again as a member that stays. Says whether `id` is a
    /// member. The default does nothing.
    fn peer_left(&self, id: &str) -> bool {
        let _ = id;
        false
    }
}
