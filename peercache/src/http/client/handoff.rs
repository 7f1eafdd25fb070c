//! The client side of warm handoff (`crate::group` has the why): peeks,
//! handing values over, and the leave notice.
//!
//! Each is sent only to a peer whose answers say it takes it
//! (`x-peercache: ..., peek, hand-over`): a Go node would take a peek for
//! a get and load the key, and a handoff's path for a key. A peer not yet
//! heard from is first sent the health probe. An answer that says the
//! peer is leaving (`..., leaving`) counts as a failure for its health, so
//! that a node which is draining is not put back in a ring.

use super::{HttpPeer, ANSWER_FRAMING};
use crate::http::options::HttpOptions;
use crate::http::protocol::{Encoded, PeerRequest, Reply, LEAVE_PATH, MAX_HAND_OVER_ITEMS};
use crate::peers::{FetchError, PeerError};
use crate::proto::HandOverResponse;
use crate::Value;
use bytes::Bytes;
use http::Method;
use prost::Message;
use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Room in a handoff body for one value's framing (tags, lengths, expiry).
const ITEM_FRAMING: usize = 32;

/// How long a peer whose peek timed out is not peeked again: a node in
/// trouble costs the peek timeout once, not once per load (its health is
/// the requests' business: a busy node is not taken out of the ring for a
/// slow peek).
const PEEK_PAUSE: Duration = Duration::from_secs(5);

/// What a peer's answers say it takes, and this node's side of it.
pub(super) struct Takes {
    pub(super) peek: AtomicBool,
    pub(super) hand_over: AtomicBool,
    /// Whether its last answer said it is leaving.
    pub(super) leaving: AtomicBool,
    /// This node's base URL: who hands values over.
    self_url: Arc<str>,
    peek_timeout: Duration,
    /// Until when the peer is not peeked (a peek of it timed out).
    peek_paused: std::sync::Mutex<Option<std::time::Instant>>,
}

impl Takes {
    pub(super) fn new(self_url: &Arc<str>, options: &HttpOptions) -> Self {
        Takes {
            peek: AtomicBool::new(false),
            hand_over: AtomicBool::new(false),
            leaving: AtomicBool::new(false),
            self_url: Arc::clone(self_url),
            peek_timeout: options.peek_timeout,
            peek_paused: std::sync::Mutex::new(None),
        }
    }

    /// The peer is not (or no longer) a peercache node: no peek, handoff
    /// or leave is read from it.
    pub(super) fn forget(&self) {
        self.peek.store(false, Ordering::Relaxed);
        self.hand_over.store(false, Ordering::Relaxed);
        self.leaving.store(false, Ordering::Relaxed);
    }

    fn paused(&self) -> bool {
        let paused = self
            .peek_paused
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        paused.is_some_and(|until| std::time::Instant::now() < until)
    }

    fn pause(&self) {
        let mut paused = self
            .peek_paused
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *paused = Some(std::time::Instant::now() + PEEK_PAUSE);
    }

    pub(super) fn is_leaving(&self) -> bool {
        self.leaving.load(Ordering::Relaxed)
    }
}

impl HttpPeer {
    /// Whether the peer said it is leaving and still answers: out of the
    /// ring, but its caches may still be peeked while it hands over.
    pub(crate) fn is_leaving(&self) -> bool {
        self.takes.is_leaving()
    }

    /// The peer said it is leaving (its notice): peekable until it stops
    /// answering.
    pub(crate) fn mark_leaving(&self) {
        self.takes.leaving.store(true, Ordering::Relaxed);
    }
}

impl HttpPeer {
    /// Whether the peer may be sent a peek: it said it takes them, or has
    /// not been heard from yet (then [`HttpPeer::peek_key`] probes first).
    pub(crate) fn may_peek(&self) -> bool {
        let takes = self.kind() == super::many::PeerKind::Unknown
            || self.takes.peek.load(Ordering::Relaxed);
        takes && !self.takes.paused()
    }

    /// [`crate::Peer::peek`]: `GET <group>/<key>?peek`, within the peek
    /// timeout (the probe of a peer not heard from yet included). A peek
    /// that times out pauses the peer's peeks for [`PEEK_PAUSE`]; it is not
    /// held against its health.
    pub(super) async fn peek_key(
        &self,
        group: &str,
        key: &str,
    ) -> Result<Option<Value>, FetchError> {
        let timeout = self.takes.peek_timeout;
        match tokio::time::timeout(timeout, self.peek_exchange(group, key)).await {
            Ok(answer) => answer,
            Err(_) => {
                self.takes.pause();
                Err(self.unavailable(format!("no answer to a peek within {timeout:?}")))
            }
        }
    }

    async fn peek_exchange(&self, group: &str, key: &str) -> Result<Option<Value>, FetchError> {
        if self.kind() == super::many::PeerKind::Unknown {
            self.probe().await;
        }
        if !self.takes.peek.load(Ordering::Relaxed) {
            return Ok(None);
        }
        let request = PeerRequest::Peek {
            group: group.into(),
            key: key.into(),
        }
        .encode()
        .map_err(|reason| self.unavailable(reason))?;
        let ((status, reply), _) = self
            .exchange_within(request, self.max_answer_bytes, true)
            .await
            .map_err(|reason| self.unavailable(reason))?;
        match reply {
            Reply::Value(body) => self.value_of(key, body).map(Some),
            Reply::Missing => Ok(None),
            reply => {
                Err(self.unavailable(format!("answered a peek with {status}: {}", reply.reason())))
            }
        }
    }

    /// [`crate::Peer::hand_over`]: `POST <group>/_hand-over/` requests of
    /// at most [`MAX_HAND_OVER_ITEMS`] values and the body limit each, one
    /// after the other, most valuable first; a value larger than the body
    /// limit alone is not sent. Stops at the first that fails.
    pub(super) async fn hand_over_entries(
        &self,
        group: &str,
        entries: &[(String, Value)],
    ) -> Result<u64, PeerError> {
        if self.kind() == super::many::PeerKind::Unknown {
            self.probe().await;
        }
        if !self.takes.hand_over.load(Ordering::Relaxed) {
            return Err(PeerError::refused(
                "does not take handed-over values (not a peercache node, or an older one)",
            ));
        }
        let limit = self.max_answer_bytes - ANSWER_FRAMING;
        let framing = ANSWER_FRAMING + self.takes.self_url.len();
        let cost = |(key, value): &(String, Value)| key.len() + value.len() + ITEM_FRAMING;
        let mut kept = 0;
        let mut rest = entries;
        while !rest.is_empty() {
            let mut bytes = framing;
            let mut end = 0;
            while end < rest.len() && end < MAX_HAND_OVER_ITEMS {
                let next = cost(&rest[end]);
                if end > 0 && bytes + next > limit {
                    break;
                }
                bytes += next;
                end += 1;
            }
            let (chunk, after) = rest.split_at(end);
            rest = after;
            if bytes > limit {
                continue; // one value over the body limit: not sent
            }
            kept += self.hand_over_chunk(group, chunk).await?;
        }
        Ok(kept)
    }

    async fn hand_over_chunk(
        &self,
        group: &str,
        chunk: &[(String, Value)],
    ) -> Result<u64, PeerError> {
        let request = PeerRequest::HandOver {
            group: group.into(),
            from: Cow::Borrowed(&self.takes.self_url),
            items: Cow::Borrowed(chunk),
        }
        .encode()
        .map_err(PeerError::refused)?;
        let (status, reply) = self
            .exchange(request)
            .await
            .map_err(PeerError::unreachable)?;
        match reply {
            Reply::Value(body) => HandOverResponse::decode(body)
                .map(|answer| answer.kept.unwrap_or(0))
                .map_err(|e| {
                    PeerError::refused(format!("answered a malformed HandOverResponse: {e}"))
                }),
            reply if status.is_server_error() => Err(PeerError::unreachable(format!(
                "answered a handoff with {status}: {}",
                reply.reason()
            ))),
            reply => Err(PeerError::refused(format!(
                "answered a handoff with {status}: {}",
                reply.reason()
            ))),
        }
    }

    /// Tells the peer this node is leaving: `POST <base>_leave` with this
    /// node's base URL (the pool sends it to the peers that are up).
    pub(crate) async fn say_leaving(&self) -> Result<(), String> {
        let notice = Encoded {
            method: Method::POST,
            path: LEAVE_PATH.to_owned(),
            body: Some((
                "text/plain",
                Bytes::copy_from_slice(self.takes.self_url.as_bytes()),
            )),
        };
        match self.exchange(notice).await? {
            (_, Reply::Done) => Ok(()),
            (status, reply) => Err(format!("answered {status}: {}", reply.reason())),
        }
    }
}
