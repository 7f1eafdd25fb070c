//! The server side of warm handoff (`crate::group` has the why): peeks
//! answered from the caches only, values handed over by a leaving node,
//! and its leave notice.

use crate::http::protocol::{Parsing, Reply, LEAVE_PATH};
use crate::http::protocol::{PEERCACHE_FEATURES, PEERCACHE_FEATURES_LEAVING};
use crate::proto::{encode_get_response, HandOverResponse};
use crate::{Node, ServedGroup, Value};
use bytes::Bytes;
use http::{HeaderValue, Method};
use prost::Message;

/// Longest leave notice body: a base URL.
pub(super) const MAX_NOTICE_BYTES: usize = 2048;

/// What this node tells peers it takes, and whether it is leaving.
pub(super) fn features(node: &Node) -> HeaderValue {
    HeaderValue::from_static(match node.is_leaving() {
        true => PEERCACHE_FEATURES_LEAVING,
        false => PEERCACHE_FEATURES,
    })
}

/// A peek: the value if this node's caches hold it, else 204.
pub(super) fn peek(group: &ServedGroup, key: &str) -> Reply {
    match group.peek(key) {
        Some(value) => Reply::Value(Bytes::from(encode_get_response(
            value.as_bytes(),
            value.expiry_unix_nanos(),
        ))),
        None => Reply::Missing,
    }
}

/// Values a leaving node handed over: those this node owns are kept.
pub(super) fn hand_over(group: &ServedGroup, from: &str, items: &[(String, Value)]) -> Reply {
    let kept = group.take_handed_over(from, items);
    let answer = HandOverResponse { kept: Some(kept) };
    Reply::Value(Bytes::from(answer.encode_to_vec()))
}

/// Whether the request is a leave notice (`POST <base>_leave`).
pub(super) fn is_leave_notice(method: &Method, path: &str, parsing: &Parsing) -> bool {
    method == Method::POST
        && path
            .strip_prefix(parsing.base_path.as_str())
            .is_some_and(|rest| rest == LEAVE_PATH)
}

/// A member says it leaves: its URL is the body.
pub(super) fn leave_notice(node: &Node, body: &[u8]) -> Reply {
    let Ok(peer) = std::str::from_utf8(body) else {
        return Reply::BadRequest("bad request: the leaving node's URL is not UTF-8".to_owned());
    };
    let peer = peer.trim();
    if node.peer_leaving(peer) {
        tracing::info!(peer = %crate::trace::Escaped(peer), "peer says it is leaving; out of the ring");
        Reply::Done
    } else {
        Reply::NoRoute(crate::http::protocol::clipped(format!(
            "{:?} is not a member of this node's cluster",
            crate::trace::Escaped(peer).to_string()
        )))
    }
}
