//! What both sides of the peer protocol share, so that neither imports the
//! other: the one request type, encoded by the client and parsed by the
//! server (`request.rs`); the one table of answers, written by the server
//! and read by the client (`reply.rs`); a set's deadline (`deadline.rs`);
//! and the names on the wire.

mod deadline;
mod reply;
mod request;

pub(crate) use deadline::{deadline_after, past_deadline, DEADLINE_HEADER};
pub(crate) use reply::Reply;
pub(crate) use request::{Encoded, Head, Parsing, PeerRequest};

/// The methods the peer endpoint answers.
pub(crate) const ALLOWED_METHODS: &str = "GET, HEAD, PUT, DELETE, POST";

/// Content type of a GetResponse, as Go sends it.
pub(crate) const PROTOBUF_CONTENT_TYPE: &str = "application/x-protobuf";

/// Header a peercache server sets on a 404 that means "the loader says not
/// found", so a client can tell it from a 404 of a misrouted request.
pub(crate) const NOT_FOUND_HEADER: &str = "x-peercache-not-found";

/// The key (after the group) of groupcache-go v3's remove-keys `POST`.
pub(crate) const REMOVE_KEYS_PATH: &str = "_remove-keys/";

/// The key (after the group) of peercache's purge `POST`.
pub(crate) const PURGE_PATH: &str = "_purge/";

/// The key (after the group) of peercache's batch get `POST`.
pub(crate) const GET_MANY_PATH: &str = "_get-many/";

/// Most keys in one batch get request (`POST <group>/_get-many/`), on both
/// sides of the peer protocol: a node sends at most this many per request,
/// and answers 413 to more.
pub const MAX_GET_MANY_KEYS: usize = 1000;

/// Header a peercache peer endpoint sets on every answer, so a client
/// learns which peers can take a batch get (a Go node would take its path
/// for a get of a key); its value lists what the node takes.
pub(crate) const PEERCACHE_HEADER: &str = "x-peercache";

/// Header a peercache node sets on the sets (`PUT`) it sends: it drops the
/// other nodes' copies itself, so the owner must not (it does for a set
/// without it: mailgun and groupcache-go send theirs to the owner only).
pub(crate) const WRITER_HEADER: &str = "x-peercache-writer";

/// The query of a remove (`DELETE`, `_remove-keys`) that drops only the
/// peer's copies of other nodes' keys (its hot cache), not what it owns:
/// the second round of hinted handoff. Go servers ignore queries.
pub(crate) const COPIES_ONLY_QUERY: &str = "copies-only";

/// The key (after the group) of peercache's handoff `POST`: values a
/// leaving node sends their new owners.
pub(crate) const HAND_OVER_PATH: &str = "_hand-over/";

/// Most values in one handoff request, on both sides.
pub(crate) const MAX_HAND_OVER_ITEMS: usize = 1000;

/// The query of a get that asks the node's main cache only (a peek): answered
/// 204 when it does not hold the key, never loaded. Sent only to nodes
/// that say they take it: a Go server ignores queries and would load.
pub(crate) const PEEK_QUERY: &str = "peek";

/// The path (under the base path, no group) of a leave notice: a `POST`
/// whose body is the leaving node's base URL.
pub(crate) const LEAVE_PATH: &str = "_leave";

/// The value of [`PEERCACHE_HEADER`]: the requests beyond Go's.
pub(crate) const PEERCACHE_FEATURES: &str = "get-many, copies-only, peek, hand-over";

/// [`PEERCACHE_FEATURES`] from a node that is leaving the cluster: its
/// answers still count, but it is not to be put back in a ring.
pub(crate) const PEERCACHE_FEATURES_LEAVING: &str =
    "get-many, copies-only, peek, hand-over, leaving";

/// Longest error text in one item of a batch answer, as written by the
/// owner and as kept by the asker.
pub(crate) const MAX_ITEM_ERROR: usize = 512;

/// At most [`MAX_ITEM_ERROR`] bytes of `text` (whole characters).
pub(crate) fn clipped(mut text: String) -> String {
    if text.len() > MAX_ITEM_ERROR {
        let end = (0..=MAX_ITEM_ERROR)
            .rev()
            .find(|&i| text.is_char_boundary(i))
            .unwrap_or(0);
        text.truncate(end);
    }
    text
}
