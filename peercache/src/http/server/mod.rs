//! The server side: answers peers' requests for keys this node owns.
//!
//! [`PeerService`] is a `tower::Service` and a `hyper::service::Service` at
//! once, so it can be served alone ([`serve()`]), mounted in an axum or
//! hyper application, or wrapped in tower middleware.
//!
//! The requests are parsed, and the answers written, by the protocol
//! module (`protocol/`), which the client shares; the answers are in
//! [`PeerService`]'s documentation. The listener, its limits and their
//! guard are `serve.rs`, `limits.rs`, `guard.rs` and `conn.rs`.

mod conn;
mod guard;
mod handoff;
mod limits;
mod serve;

pub use guard::{BodyBudgetExceeded, BodyTimeout, ClientAddr, GuardedBody};
pub use limits::{
    LimitCounters, LimitStats, ServerLimits, ServerLimitsBuilder, DEFAULT_BODY_READ_TIMEOUT,
    DEFAULT_HEADER_READ_TIMEOUT, DEFAULT_MAX_BODY_BYTES_IN_FLIGHT, DEFAULT_MAX_CONCURRENT_REQUESTS,
    DEFAULT_MAX_CONCURRENT_STREAMS, DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_URI_BYTES,
    DEFAULT_WRITE_TIMEOUT,
};
pub use serve::{serve, serve_with_shutdown, Server, SHUTDOWN_GRACE};

use crate::http::auth::{AuthError, PeerAuth};
use crate::http::body::{read_whole, PeerBody};
use crate::http::options::HttpOptions;
use crate::http::protocol::{clipped, past_deadline, PEEK_QUERY, PEERCACHE_HEADER};
use crate::http::protocol::{Head, Parsing, PeerRequest, Reply};
use crate::http::protocol::{COPIES_ONLY_QUERY, WRITER_HEADER};
use crate::proto::{encode_get_many_response, encode_get_response, get_response_parts, ItemRef};
use crate::{Error, Node, ServedGroup};
use bytes::Bytes;
use http::header::AUTHORIZATION;
use http::{Request, Response};
use http_body::Body;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// The peer endpoint of a node, as a service.
///
/// Answers, as Go peers expect them:
///
/// | request | answer |
/// | --- | --- |
/// | `GET <base><group>/<key>` | 200 `application/x-protobuf` GetResponse (`expire` set when the value has one) |
/// | `DELETE <base><group>/<key>` (mailgun) | removes the key here (main and hot); 200, empty body |
/// | `PUT <base><group>/<key>`, body a `SetRequest` (mailgun) | stores the value under the body's key in the main cache; 200, empty body |
/// | `POST <base><group>/_remove-keys/`, body JSON `{"group":..,"keys":[..]}` (groupcache-go v3) | removes those keys here; 200, empty body; 413 over [`crate::http::HttpOptions::max_remove_keys`] keys |
/// | `POST <base><group>/_purge/` (peercache) | empties the group here; 200, empty body |
/// | `POST <base><group>/_get-many/`, body a `GetManyRequest` (peercache) | each key as a get serves it; 200 `application/x-protobuf` `GetManyResponse`, one item per key; 413 over 1,000 keys |
/// | `GET <base><group>/<key>?peek` (peercache) | from this node's main cache only: 200 GetResponse, or 204 when it does not hold the key; never loaded |
/// | `POST <base><group>/_hand-over/`, body a `HandOverRequest` (peercache) | keeps the values whose keys this node owns (`ServedGroup::take_handed_over`); 200 `HandOverResponse` with how many; 413 over 1,000 values |
/// | `POST <base>_leave`, body the leaving node's base URL (peercache) | takes that member out of the ring until it answers again as one that stays ([`crate::Node::peer_leaving`]); 200, empty body; 404 for a URL that is not a member |
/// | any request | the answer carries `x-peercache: get-many, copies-only, peek, hand-over` (and `, leaving` once this node leaves), which tells peercache clients what this node takes |
/// | no valid proof, when the node has a cluster secret ([`crate::http::PeerAuth`]) | 401 with the reason |
/// | a body over the body read timeout ([`ServerLimits`]) | 408 |
/// | a body that would pass the server's body budget ([`ServerLimits::max_body_bytes_in_flight`]) | 503, `Retry-After` |
/// | unknown group | 404 `no such group: <group>` |
/// | loader says not found | 404 (mailgun clients return not-found; golang clients load locally) |
/// | loader fails or panics | 503 (mailgun clients return the error; golang clients load locally) |
/// | malformed path, escape, body or non-UTF-8 key | 400 with the reason |
/// | other `POST` paths | 404 |
/// | key longer than the limit | 414 |
/// | body larger than the limit | 413 |
/// | other methods | 405 |
///
/// Every request is answered from this node alone and never forwarded to
/// another peer: through the group's [`crate::ServedGroup`], a get (cache or
/// loader) and the changes of this node alone. Peers whose rings disagree therefore
/// cannot bounce a request between them or wait on each other.
///
/// It reads the whole request path, base path included: mount it at
/// `<base path>{*rest}` (axum's `route_service`), not with a router that
/// strips the prefix (axum's `nest_service`).
///
/// It answers any `http::Request`, so it can be called directly:
///
/// ```
/// use bytes::Bytes;
/// use http_body_util::{BodyExt, Empty};
/// use peercache::http::PeerService;
/// use peercache::proto::GetResponse;
/// use peercache::{loader_fn, Node};
/// use prost::Message;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let node = Node::new();
/// node.new_group("colors", 1 << 20, loader_fn(|key: String| async move { Ok(format!("#{key}")) }))?;
/// let service = PeerService::without_pool(node);
///
/// // What another node sends for the key "red" of the group "colors".
/// let request = http::Request::get("/_groupcache/colors/red").body(Empty::<Bytes>::new())?;
/// let response = service.answer(request).await?;
/// assert_eq!(response.status(), 200);
/// let body = response.into_body().collect().await?.to_bytes();
/// assert_eq!(GetResponse::decode(body)?.value.unwrap(), "#red");
/// # Ok(())
/// # }
/// ```
///
/// In a cluster, take it from the pool, [`crate::http::HttpPool::service`], which
/// gives it every setting of the pool (the cluster secret, the base path,
/// the limits), and mount it beside an application's routes in axum at
/// [`crate::http::HttpPool::route_path`] (serve the router with [`Server`]
/// to keep its limits):
///
/// ```
/// use peercache::http::{HttpOptions, HttpPool};
/// use peercache::Node;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let pool = HttpPool::new("http://10.0.0.1:8080", HttpOptions::default())?;
/// let node = Node::with_picker(pool.clone());
/// let app: axum::Router = axum::Router::new()
///     .route("/healthz", axum::routing::get(|| async { "ok" }))
///     .route_service(&pool.route_path(), pool.service(node));
/// # let _ = app;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct PeerService {
    inner: Arc<ServiceInner>,
}

struct ServiceInner {
    node: Node,
    parsing: Parsing,
    max_body_bytes: usize,
    /// The cluster secret and this node's base URL, which proofs must name.
    auth: Option<(Arc<PeerAuth>, Arc<str>)>,
}

impl std::fmt::Debug for PeerService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerService")
            .field("base_path", &self.inner.parsing.base_path)
            .field("plus", &self.inner.parsing.plus)
            .finish()
    }
}

/// The future a [`PeerService`] returns.
pub type ResponseFuture =
    Pin<Box<dyn Future<Output = Result<Response<PeerBody>, Infallible>> + Send>>;

impl PeerService {
    /// The peer endpoint of a `node` that has no [`crate::http::HttpPool`] of its
    /// own (an owner only answering others), with default options: base
    /// path `/_groupcache/`, golang clients, **no cluster secret**. A node
    /// with a pool takes [`crate::http::HttpPool::service`] instead, which has the
    /// pool's secret, base path and limits, so client and server cannot
    /// disagree.
    pub fn without_pool(node: Node) -> Self {
        PeerService::for_node_at(node, &HttpOptions::default(), "")
    }

    /// The peer endpoint of `node`, reached by its peers at `self_url`,
    /// with the base path, `+` reading, limits and cluster secret of
    /// `options`: with a secret, a proof made for another node than
    /// `self_url` is refused. [`crate::http::HttpPool::service`] builds it this
    /// way from the pool's own settings.
    pub fn for_node_at(node: Node, options: &HttpOptions, self_url: &str) -> Self {
        PeerService {
            inner: Arc::new(ServiceInner {
                node,
                parsing: Parsing {
                    base_path: options.base_path.clone(),
                    plus: options.plus(),
                    max_key_bytes: options.max_key_bytes,
                    max_remove_keys: options.max_remove_keys,
                },
                max_body_bytes: options.max_body_bytes,
                auth: options.auth.clone().map(|auth| (auth, Arc::from(self_url))),
            }),
        }
    }

    /// The base path this service answers under.
    pub fn base_path(&self) -> &str {
        &self.inner.parsing.base_path
    }

    /// Answers one request: its method, path and (for `PUT` and `POST`)
    /// body are read; headers and query are ignored, as Go does.
    pub fn answer<B>(&self, request: Request<B>) -> ResponseFuture
    where
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let inner = Arc::clone(&self.inner);
        Box::pin(async move {
            let mut response = inner.answer(request).await.into_response();
            response.headers_mut().insert(
                http::header::HeaderName::from_static(PEERCACHE_HEADER),
                handoff::features(&inner.node),
            );
            Ok(response)
        })
    }
}

impl ServiceInner {
    async fn answer<B>(&self, request: Request<B>) -> Reply
    where
        B: Body,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let (parts, body) = request.into_parts();
        let method = &parts.method;
        if let Err(refused) = Head::allowed(method) {
            return refused;
        }
        let path = parts.uri.path();
        let verified = match &self.auth {
            None => None,
            Some((auth, me)) => {
                let target = parts.uri.path_and_query().map_or(path, |p| p.as_str());
                match auth.verify(
                    method.as_str(),
                    me,
                    target,
                    parts.headers.get(AUTHORIZATION),
                ) {
                    Ok(verified) => Some(verified),
                    Err(error) => return refused(&error),
                }
            }
        };
        if handoff::is_leave_notice(method, path, &self.parsing) {
            return match self
                .read_body_within(body, false, handoff::MAX_NOTICE_BYTES)
                .await
            {
                Ok(body)
                    if verified
                        .as_ref()
                        .is_some_and(|v| v.check_body(&body).is_err()) =>
                {
                    refused(&AuthError::BodyMismatch)
                }
                Ok(body) => handoff::leave_notice(&self.node, &body),
                Err(refused) => refused,
            };
        }
        let head = match Head::parse(method, path, &self.parsing) {
            Ok(head) => head,
            Err(refused) => return refused,
        };
        let Some(group) = self.node.served_group(head.group()) else {
            return Reply::NoSuchGroup(format!("no such group: {}", head.group()));
        };
        let body = if head.has_body() {
            match self.read_body(body, head.keeps_body()).await {
                Ok(body)
                    if verified
                        .as_ref()
                        .is_some_and(|v| v.check_body(&body).is_err()) =>
                {
                    return refused(&AuthError::BodyMismatch)
                }
                Ok(body) => body,
                Err(refused) => return refused,
            }
        } else {
            Bytes::new()
        };
        let copies_only = parts.uri.query() == Some(COPIES_ONLY_QUERY);
        let peek = parts.uri.query() == Some(PEEK_QUERY);
        match head.read(body, &self.parsing) {
            Ok(PeerRequest::Get { key, .. }) if peek => handoff::peek(&group, &key),
            Ok(PeerRequest::Get { key, .. }) => get(&group, &key).await,
            Ok(PeerRequest::HandOver { from, items, .. }) => {
                handoff::hand_over(&group, &from, &items)
            }
            // Encoded by clients only: a peek arrives as a get with a query.
            Ok(PeerRequest::Peek { key, .. }) => handoff::peek(&group, &key),
            Ok(PeerRequest::Remove { key, .. }) if copies_only => {
                group.drop_copies(&[&*key]);
                Reply::Done
            }
            Ok(PeerRequest::Remove { key, .. }) => {
                group.remove(&[&*key]);
                Reply::Done
            }
            Ok(PeerRequest::RemoveKeys { keys, .. }) if copies_only => {
                group.drop_copies(&keys);
                Reply::Done
            }
            Ok(PeerRequest::RemoveKeys { keys, .. }) => {
                group.remove(&keys);
                Reply::Done
            }
            Ok(PeerRequest::Set { key, value, .. }) => match past_deadline(&parts.headers) {
                Some(late) => Reply::Timeout(late),
                // A writer that is not peercache left the other copies.
                None if parts.headers.contains_key(WRITER_HEADER) => {
                    group.set(&key, value);
                    Reply::Done
                }
                None => {
                    group.set_and_drop_copies(&key, value);
                    Reply::Done
                }
            },
            Ok(PeerRequest::Purge { .. }) if copies_only => {
                group.drop_all_copies();
                Reply::Done
            }
            Ok(PeerRequest::Purge { .. }) => {
                group.purge();
                Reply::Done
            }
            Ok(PeerRequest::GetMany { keys, .. }) => {
                get_many(&group, &keys, self.max_body_bytes).await
            }
            Err(refused) => refused,
        }
    }

    /// Reads a whole request body, refusing one over the size limit; with
    /// `keep`, in a form whose slices may be kept in a cache.
    async fn read_body<B>(&self, body: B, keep: bool) -> Result<Bytes, Reply>
    where
        B: Body,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        self.read_body_within(body, keep, self.max_body_bytes).await
    }

    /// [`ServiceInner::read_body`] with a limit of `limit` bytes.
    async fn read_body_within<B>(&self, body: B, keep: bool, limit: usize) -> Result<Bytes, Reply>
    where
        B: Body,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        match read_whole(body, limit).await {
            Ok(received) if keep => Ok(received.keepable()),
            Ok(received) => Ok(received.into_bytes()),
            Err(error) if error.is::<http_body_util::LengthLimitError>() => Err(Reply::TooLarge(
                format!("request body too large: the limit is {limit} bytes"),
            )),
            Err(error) if error.is::<guard::BodyTimeout>() => {
                Err(Reply::Timeout(format!("request timeout: {error}")))
            }
            Err(error) if error.is::<guard::BodyBudgetExceeded>() => {
                Err(Reply::Busy(error.to_string(), 1))
            }
            Err(error) => Err(Reply::BadRequest(format!(
                "bad request: reading the body failed: {error}"
            ))),
        }
    }
}

/// A get, answered from this node alone (its cache or its loader).
async fn get(group: &ServedGroup, key: &str) -> Reply {
    match group.get(key).await {
        // A large value is sent from its own buffer, behind its framing; a
        // small one is copied in with it (one buffer, one write).
        Ok(value) => match value.shared_bytes() {
            Some(bytes) => {
                Reply::ValueParts(get_response_parts(bytes.clone(), value.expiry_unix_nanos()))
            }
            None => Reply::Value(Bytes::from(encode_get_response(
                value.as_bytes(),
                value.expiry_unix_nanos(),
            ))),
        },
        Err(error @ Error::NotFound { .. }) => {
            Reply::NotFound(error.to_string(), group.not_found_until(key))
        }
        Err(error) => Reply::LoadFailed(error.to_string()),
    }
}

/// A batch get, answered from this node alone: one item per key, in the
/// request's order. Values are put in while the answer stays within
/// `max_answer_bytes` (the body limit every node reads answers up to);
/// one that would pass it is left out, marked for the asker to ask alone.
async fn get_many(group: &ServedGroup, keys: &[String], max_answer_bytes: usize) -> Reply {
    let answers = group.get_many(keys).await;
    let errors: Vec<Option<String>> = answers
        .iter()
        .map(|answer| match answer {
            Err(error) if !error.is_not_found() => Some(clipped(error.to_string())),
            _ => None,
        })
        .collect();
    let mut room = max_answer_bytes;
    let items: Vec<ItemRef<'_>> = answers
        .iter()
        .zip(&errors)
        .zip(keys)
        .map(|((answer, error), key)| match (answer, error) {
            (Ok(value), _) if value.len() > room => ItemRef::Skipped,
            (Ok(value), _) => {
                room -= value.len();
                ItemRef::Found {
                    value: value.as_bytes(),
                    expire: value.expiry_unix_nanos(),
                }
            }
            (Err(_), Some(error)) => ItemRef::Failed(error),
            (Err(_), None) => ItemRef::NotFound {
                until: group.not_found_until(key).unwrap_or(0),
            },
        })
        .collect();
    Reply::Value(Bytes::from(encode_get_many_response(&items)))
}

/// The answer to a request whose proof failed: 401, or 503 when the replay
/// table is full.
fn refused(error: &AuthError) -> Reply {
    if matches!(error, AuthError::Busy) {
        return Reply::Busy(error.to_string(), 1);
    }
    Reply::Unauthorized(format!(
        "unauthorized: {error}; every node needs the same peer secret"
    ))
}

impl<B> tower_service::Service<Request<B>> for PeerService
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = Response<PeerBody>;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        self.answer(request)
    }
}

impl<B> hyper::service::Service<Request<B>> for PeerService
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = Response<PeerBody>;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn call(&self, request: Request<B>) -> Self::Future {
        self.answer(request)
    }
}
