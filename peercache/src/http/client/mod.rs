//! The client side: fetching a key from its owner over HTTP.
//!
//! All peers of a pool share one hyper-util client, whose connection pool
//! keeps up to [`crate::http::HttpOptions::max_idle_per_peer`] keep-alive
//! connections per peer and reuses them: under load a node holds about as many
//! sockets per peer as it has requests in flight, where golang's default of 2
//! idle connections makes it open and close thousands.
//!
//! How the owner's answer is read:
//!
//! | answer | meaning | result |
//! | --- | --- | --- |
//! | 200 `application/x-protobuf` | the value | `Ok`, with `expire` as the value's expiry |
//! | 200 otherwise | not a peer endpoint (a catch-all route, a proxy's page) | unavailable: load here |
//! | 404 `no such group` | the peer lacks the group (misconfigured) | unavailable: load here |
//! | 404 from peercache (marked) or, in mailgun mode, any other 404 | the owner's loader says not found | `FetchError::Load(NotFound)`, no second load |
//! | other 404 in golang mode | no golang owner says not-found with a 404: a misrouted request | unavailable: load here |
//! | 500 (golang), 503 without `Retry-After` (mailgun, peercache) | the owner's loader failed | `FetchError::Load`, no second load |
//! | 503 with `Retry-After` | the owner is shedding load ([`crate::http::ServerLimits`]) | unavailable: load here; the peer stays in the ring |
//! | 401 | the owner refused this node's proof ([`crate::http::PeerAuth`]) | unavailable: load here |
//! | anything else, timeout, refused connection | the owner is unreachable or overloaded | unavailable: counted in `peer_errors`, load here |
//!
//! Changes are sent as mailgun and groupcache-go send them: `DELETE` for one
//! key, `POST <group>/_remove-keys/` with a JSON body for several (falling
//! back to one `DELETE` per key if the peer does not know that `POST`), `PUT`
//! with a `SetRequest` body, and peercache's own `POST <group>/_purge/`. A
//! change succeeded only on a 200 that is not a `GetResponse`: a
//! golang/groupcache node ignores the method and answers every request as a
//! get, which must not pass for a removal.
//!
//! With the `tls` feature, the client speaks TLS to peers whose base URL
//! is `https://` (`HttpOptionsBuilder::tls`: a CA to trust, optionally a
//! client certificate), with ALPN `h2` when [`crate::http::HttpOptions::http2`] is
//! set and `http/1.1` otherwise; a failed handshake (an untrusted
//! certificate, a refused client certificate) counts as an unreachable peer.
//!
//! Every exchange is reported to the peer's [`PeerHealth`]: refused or broken
//! connections, timeouts, and 5xx answers other than 500 and 503 (loader
//! errors, shedding) are failures; any other answer is a success. A peer that is down
//! is not sent changes (they fail at once, naming it); gets do not reach it
//! because the pool takes it out of the ring.

mod changes;
mod connector;
use changes::How;
mod handoff;
mod many;

pub(crate) use connector::{build_client, PeerClient};

use crate::health::{PeerHealth, Transition};
use crate::http::auth::PeerAuth;
use crate::http::body::{kept_slice, read_whole};
use crate::http::options::HttpOptions;
use crate::http::protocol::{deadline_after, Encoded, PeerRequest, Reply};
use crate::http::protocol::{DEADLINE_HEADER, PROTOBUF_CONTENT_TYPE, WRITER_HEADER};
use crate::loader::{BoxFuture, LoadError};
use crate::peers::{FetchError, Peer, PeerError};
use crate::proto::GetResponse;
use crate::ring::HashMode;
use crate::Value;
use bytes::Bytes;
use http::header::{HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE, USER_AGENT};
use http::{Method, Request, StatusCode, Uri};
use http_body_util::{Full, LengthLimitError};
use prost::Message;
use std::sync::Arc;
use std::time::Duration;

/// Told when a peer goes down or comes back, by its id: how a peer reports
/// to whoever keeps the ring (the pool), without knowing it.
pub(crate) type HealthReport = Arc<dyn Fn(&str, Transition) + Send + Sync>;

/// The User-Agent of peer requests.
const AGENT: &str = concat!("peercache/", env!("CARGO_PKG_VERSION"));
/// Most keys sent in one `_remove-keys` request (peers take up to
/// `HttpOptions::max_remove_keys`, 10,000 by default).
const REMOVE_KEYS_PER_REQUEST: usize = 1000;
/// Room in a peer's answer for the protobuf framing around a value of
/// `max_body_bytes` (tags, lengths, `expire`: tens of bytes).
const ANSWER_FRAMING: usize = 1024;

/// Most bytes of an answer beside its value for the value to be kept as a
/// slice of it: the framing of a `GetResponse` is at most 22 bytes (two
/// tags, a length, an expiry).
const KEPT_FRAMING: usize = 64;

/// One peer, reached over HTTP.
pub struct HttpPeer {
    id: Arc<str>,
    /// `<base URL><base path>`: a request appends `<group>/<key>`.
    prefix: String,
    /// Length of the base URL in `prefix`: what follows is the signed path.
    base_url_len: usize,
    client: PeerClient,
    timeout: Duration,
    /// Whether an unmarked 404 is a loader's not-found (mailgun peers).
    plain_404_is_not_found: bool,
    health: Arc<PeerHealth>,
    /// Told when the peer goes down or comes back, to change the ring.
    report: HealthReport,
    /// Signs every request, when the cluster has a secret.
    auth: Option<Arc<PeerAuth>>,
    /// Largest answer body read (`max_body_bytes` and the framing); a larger
    /// one is a failed exchange.
    max_answer_bytes: usize,
    /// Longest key the cluster's endpoints take (`max_key_bytes`): a longer
    /// one is never put in a batch, which the owner would refuse whole.
    max_key_bytes: usize,
    /// What the peer is, as its answers tell (`many::PeerKind`): whether it
    /// takes batch gets.
    kind: std::sync::atomic::AtomicU8,
    /// Whether its answers say it takes removals of copies only
    /// (`x-peercache: ..., copies-only`); until then none is sent.
    drops_copies: std::sync::atomic::AtomicBool,
    /// What its answers say about peeks, handoffs and its leaving.
    takes: handoff::Takes,
}

/// A peer's answer: its status, read by the protocol's table.
type Answer = (StatusCode, Reply);

impl std::fmt::Debug for HttpPeer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpPeer").field("id", &self.id).finish()
    }
}

impl HttpPeer {
    pub(crate) fn new(
        id: &str,
        self_url: &Arc<str>,
        options: &HttpOptions,
        client: PeerClient,
        health: Arc<PeerHealth>,
        report: HealthReport,
    ) -> Self {
        HttpPeer {
            id: Arc::from(id),
            prefix: format!("{id}{}", options.base_path),
            base_url_len: id.len(),
            client,
            timeout: options.request_timeout,
            plain_404_is_not_found: options.hash_mode == HashMode::Mailgun,
            health,
            report,
            auth: options.auth.clone(),
            max_answer_bytes: options.max_body_bytes.saturating_add(ANSWER_FRAMING),
            max_key_bytes: options.max_key_bytes,
            kind: std::sync::atomic::AtomicU8::new(many::PeerKind::Unknown as u8),
            drops_copies: std::sync::atomic::AtomicBool::new(false),
            takes: handoff::Takes::new(self_url, options),
        }
    }

    /// The peer's health.
    pub fn health(&self) -> &PeerHealth {
        &self.health
    }

    /// One exchange with the peer at `<base URL><base path><path>`, within
    /// the request timeout, reported to the peer's health.
    async fn exchange(&self, request: Encoded) -> Result<Answer, String> {
        let answer = self
            .exchange_within(request, self.max_answer_bytes, false)
            .await;
        answer.map(|(answer, _)| answer)
    }

    /// [`HttpPeer::exchange`], reading an answer of at most `limit` bytes;
    /// also says whether the answer came from a peercache endpoint (it
    /// carried `x-peercache`). With `keep`, the body is one whose slices
    /// may be kept in a cache (`Received::keepable`).
    async fn exchange_within(
        &self,
        request: Encoded,
        limit: usize,
        keep: bool,
    ) -> Result<(Answer, bool), String> {
        let Encoded { method, path, body } = request;
        let url = format!("{}{path}", self.prefix);
        let uri: Uri = url
            .parse()
            .map_err(|e| format!("cannot build a request URL from {url:?}: {e}"))?;
        let proof = self.auth.as_ref().map(|auth| {
            let body = body.as_ref().map_or(&[][..], |(_, bytes)| bytes);
            auth.sign(method.as_str(), &self.id, &url[self.base_url_len..], body)
        });
        let mut request = Request::new(Full::new(Bytes::new()));
        if method == Method::PUT {
            let deadline = deadline_after(self.timeout);
            let headers = request.headers_mut();
            headers.insert(DEADLINE_HEADER, deadline);
            headers.insert(WRITER_HEADER, HeaderValue::from_static("drops-copies"));
        }
        *request.method_mut() = method;
        *request.uri_mut() = uri;
        let headers = request.headers_mut();
        headers.insert(USER_AGENT, HeaderValue::from_static(AGENT));
        headers.insert(ACCEPT, HeaderValue::from_static(PROTOBUF_CONTENT_TYPE));
        if let Some(proof) = proof {
            headers.insert(AUTHORIZATION, proof);
        }
        if let Some((content_type, bytes)) = body {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
            *request.body_mut() = Full::new(bytes);
        }
        let exchange = async {
            let response = self.client.request(request).await?;
            let (parts, body) = response.into_parts();
            let marked = self.learn_kind(parts.status, &parts.headers);
            // A peer (or whoever is on the path) cannot make this node hold
            // more than the limit: the body is read up to it, then dropped.
            let body = read_whole(body, limit).await?;
            let body = if keep {
                body.keepable()
            } else {
                body.into_bytes()
            };
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>((parts, body, marked))
        };
        let outcome = match tokio::time::timeout(self.timeout, exchange).await {
            Err(_) => Err(format!("no answer within {:?}", self.timeout)),
            Ok(Err(error)) if error.is::<LengthLimitError>() => Err(format!(
                "answered {} over {} bytes, the limit (max body bytes); dropped",
                if limit > self.max_answer_bytes {
                    "a batch with values"
                } else {
                    "a value"
                },
                self.max_answer_bytes - ANSWER_FRAMING
            )),
            Ok(Err(error)) => Err(error_chain(error.as_ref())),
            Ok(Ok((parts, body, marked))) => Ok((
                (
                    parts.status,
                    Reply::read(
                        parts.status,
                        &parts.headers,
                        body,
                        self.plain_404_is_not_found,
                    ),
                ),
                marked,
            )),
        };
        match &outcome {
            // Answered, but going away: out of the ring, as if it had sent
            // its leave notice (which may come after, or never).
            Ok(_) if self.takes.is_leaving() => {
                self.report(self.health.left("says it is leaving the cluster"));
            }
            Ok(((status, reply), _)) if is_failure(*status) => {
                self.report(
                    self.health
                        .failed(&format!("answered {status}: {}", reply.reason())),
                );
            }
            Ok(_) => self.report(self.health.succeeded()),
            Err(reason) => {
                // Gone: no longer a leaving node to peek.
                self.takes
                    .leaving
                    .store(false, std::sync::atomic::Ordering::Relaxed);
                self.report(self.health.failed(reason))
            }
        }
        outcome
    }

    fn report(&self, transition: Transition) {
        if transition == Transition::None {
            return;
        }
        (self.report)(&self.id, transition);
    }

    async fn get(&self, group: &str, key: &str) -> Result<Value, FetchError> {
        let request = PeerRequest::Get {
            group: group.into(),
            key: key.into(),
        }
        .encode()
        .map_err(|reason| self.unavailable(reason))?;
        let path = request.path.clone();
        let ((status, reply), _) = self
            .exchange_within(request, self.max_answer_bytes, true)
            .await
            .map_err(|reason| self.unavailable(reason))?;
        match reply {
            Reply::Value(body) => self.value_of(key, body),
            Reply::Done => Err(self.unavailable(format!(
                "answered {status} without a GetResponse (content type {PROTOBUF_CONTENT_TYPE}): not a peer endpoint?"
            ))),
            Reply::NoSuchGroup(reason) => {
                Err(self.unavailable(format!("does not serve this group: {reason}")))
            }
            Reply::NotFound(_, Some(until)) => Err(FetchError::not_found_until(until)),
            Reply::NotFound(_, None) => Err(FetchError::Load(LoadError::NotFound)),
            Reply::LoadFailed(reason) => Err(FetchError::Load(LoadError::msg(reason))),
            Reply::Busy(reason, _) => {
                Err(self.unavailable(format!("is shedding load (503): {reason}")))
            }
            // A 404 that no peercache or golang endpoint gives: the request
            // reached a server, but not its peer endpoint.
            Reply::NoRoute(reason) => Err(self.unavailable(format!(
                "answered 404 Not Found for {}{path}{}: is its peer endpoint mounted there? (in axum: .route_service(&pool.route_path(), pool.service(node)), with the same base path on every node)",
                self.prefix,
                match reason {
                    text if text.is_empty() => String::new(),
                    text => format!(" ({text})"),
                }
            ))),
            reply => Err(self.unavailable(format!("answered {status}: {}", reply.reason()))),
        }
    }

    /// The value in a `GetResponse` answered for `key`.
    fn value_of(&self, key: &str, body: Bytes) -> Result<Value, FetchError> {
        let body_len = body.len();
        let response = GetResponse::decode(body)
            .map_err(|e| self.unavailable(format!("answered a malformed GetResponse: {e}")))?;
        let value = response.value.unwrap_or_default();
        let expire = response.expire.unwrap_or(0);
        // The body was copied once, into a buffer of its own (`read_whole`):
        // a large value that is nearly all of it is kept as a slice of it; a
        // small one is copied into the block the cache keeps.
        let value = kept_slice(value, body_len, KEPT_FRAMING);
        Ok(Value::owned_keyed(key.as_bytes(), value, expire))
    }

    fn unavailable(&self, reason: String) -> FetchError {
        FetchError::Unavailable(format!("peer {}: {reason}", self.id))
    }
}

/// Whether an answer means the peer is not working (as opposed to a peer
/// that works and says no): a 5xx, except the owner's loader errors (golang's
/// 500, mailgun's and peercache's 503) and a peer shedding load (503 with
/// `Retry-After`): a busy peer is alive, and taking it out of the ring would
/// move its whole load onto the others.
fn is_failure(status: StatusCode) -> bool {
    status.is_server_error()
        && status != StatusCode::INTERNAL_SERVER_ERROR
        && status != StatusCode::SERVICE_UNAVAILABLE
}

impl Peer for HttpPeer {
    fn id(&self) -> &str {
        &self.id
    }

    fn fetch<'a>(
        &'a self,
        group: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Value, FetchError>> {
        Box::pin(self.get(group, key))
    }

    fn fetch_many<'a>(
        &'a self,
        group: &'a str,
        keys: &'a [&'a str],
    ) -> BoxFuture<'a, Vec<Result<Value, FetchError>>> {
        Box::pin(self.get_many(group, keys))
    }

    fn remove<'a>(
        &'a self,
        group: &'a str,
        keys: &'a [String],
    ) -> BoxFuture<'a, Result<(), PeerError>> {
        Box::pin(async move { Ok(self.remove_keys(group, keys, How::default()).await?) })
    }

    fn set<'a>(
        &'a self,
        group: &'a str,
        key: &'a str,
        value: &'a Value,
    ) -> BoxFuture<'a, Result<(), PeerError>> {
        Box::pin(async move {
            let request = PeerRequest::Set {
                group: group.into(),
                key: key.into(),
                value: value.clone(),
            };
            Ok(self.change(request, How::default()).await?)
        })
    }

    fn purge<'a>(&'a self, group: &'a str) -> BoxFuture<'a, Result<(), PeerError>> {
        Box::pin(async move {
            let request = PeerRequest::Purge {
                group: group.into(),
            };
            Ok(self.change(request, How::default()).await?)
        })
    }

    fn drop_copies<'a>(
        &'a self,
        group: &'a str,
        keys: &'a [String],
    ) -> BoxFuture<'a, Result<(), PeerError>> {
        Box::pin(self.copies_only(group, keys))
    }

    /// A purge marked `?copies-only`, sent only to a peer that takes it
    /// (as [`Peer::drop_copies`]).
    fn drop_all_copies<'a>(&'a self, group: &'a str) -> BoxFuture<'a, Result<(), PeerError>> {
        let how = How {
            copies_only: true,
            ..How::default()
        };
        Box::pin(async move {
            if !self.drops_copies.load(std::sync::atomic::Ordering::Relaxed) {
                return Ok(());
            }
            let request = PeerRequest::Purge {
                group: group.into(),
            };
            Ok(self.change(request, how).await?)
        })
    }

    fn peek<'a>(
        &'a self,
        group: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<Value>, FetchError>> {
        Box::pin(self.peek_key(group, key))
    }

    fn hand_over<'a>(
        &'a self,
        group: &'a str,
        entries: &'a [(String, Value)],
    ) -> BoxFuture<'a, Result<u64, PeerError>> {
        Box::pin(self.hand_over_entries(group, entries))
    }

    /// Sent also while the peer is out of the ring: a delivery that gets
    /// an answer puts the peer back (as a probe would), within one
    /// delivery interval of its return rather than at the next probe.
    fn deliver_hints<'a>(
        &'a self,
        group: &'a str,
        keys: Option<&'a [String]>,
    ) -> BoxFuture<'a, Result<(), PeerError>> {
        let down = How {
            even_if_down: true,
            ..How::default()
        };
        Box::pin(async move {
            match keys {
                Some(keys) => Ok(self.remove_keys(group, keys, down).await?),
                None => {
                    let request = PeerRequest::Purge {
                        group: group.into(),
                    };
                    Ok(self.change(request, down).await?)
                }
            }
        })
    }
}

impl HttpPeer {
    /// Asks the peer whether it is alive: a `GET` of the bare base path,
    /// which every groupcache server answers at once (400) without loading
    /// anything. Reported to the peer's health like any exchange.
    pub(crate) async fn probe(&self) -> bool {
        let probe = Encoded {
            method: Method::GET,
            path: String::new(),
            body: None,
        };
        let answered = matches!(self.exchange(probe).await, Ok((status, _)) if !is_failure(status));
        answered && !self.takes.is_leaving()
    }
}

/// An error and its sources, joined: hyper's top-level messages ("client
/// error (Connect)") say little without their causes.
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
