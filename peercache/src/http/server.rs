//! The server side: answers peers' requests for keys this node owns.
//!
//! [`PeerService`] is a `tower::Service` and a `hyper::service::Service` at
//! once, so it can be served alone ([`super::serve()`]), mounted in an axum or
//! hyper application, or wrapped in tower middleware.
//!
//! Answers, as Go peers expect them:
//!
//! | request | answer |
//! | --- | --- |
//! | `GET <base><group>/<key>` | 200 `application/x-protobuf` GetResponse (`expire` set when the value has one) |
//! | `DELETE <base><group>/<key>` (mailgun) | removes the key here (main and hot); 200, empty body |
//! | `PUT <base><group>/<key>`, body a `SetRequest` (mailgun) | stores the value under the body's key in the main cache; 200, empty body |
//! | `POST <base><group>/_remove-keys/`, body JSON `{"group":..,"keys":[..]}` (groupcache-go v3) | removes those keys here; 200, empty body; 413 over [`super::HttpOptions::max_remove_keys`] keys |
//! | `POST <base><group>/_purge/` (peercache) | empties the group here; 200, empty body |
//! | no valid proof, when the node has a cluster secret ([`super::PeerAuth`]) | 401 with the reason |
//! | a body over the body read timeout ([`super::ServerLimits`]) | 408 |
//! | a body that would pass the server's body budget ([`super::ServerLimits::max_body_bytes_in_flight`]) | 503, `Retry-After` |
//! | unknown group | 404 `no such group: <group>` |
//! | loader says not found | 404 (mailgun clients return not-found; golang clients load locally) |
//! | loader fails or panics | 503 (mailgun clients return the error; golang clients load locally) |
//! | malformed path, escape, body or non-UTF-8 key | 400 with the reason |
//! | other `POST` paths | 404 |
//! | key longer than the limit | 414 |
//! | body larger than the limit | 413 |
//! | other methods | 405 |
//!
//! Every request is answered from this node alone and never forwarded to
//! another peer: through the group's [`crate::ServedGroup`], a get (cache or
//! loader) and the changes of this node alone. Peers whose rings disagree therefore
//! cannot bounce a request between them or wait on each other.

use super::auth::{AuthError, PeerAuth, SCHEME};
use super::options::HttpOptions;
use super::protocol::{
    text, NOT_FOUND_HEADER, PROTOBUF_CONTENT_TYPE, PURGE_PATH, REMOVE_KEYS_PATH,
};
use super::wire::{parse_peer_path, PathError, PlusInPath};
use crate::proto::{GetResponse, RemoveKeysError, RemoveKeysRequest, SetRequest};
use crate::{Error, Node, ServedGroup, Value};
use bytes::Bytes;
use http::header::{
    HeaderValue, ALLOW, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE,
};
use http::{Method, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt, Full, Limited};
use prost::Message;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// The methods the peer endpoint answers.
const ALLOWED: &str = "GET, HEAD, PUT, DELETE, POST";

/// The peer endpoint of a node, as a service.
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
/// In a cluster, take it from the pool, [`super::HttpPool::service`], which
/// gives it every setting of the pool (the cluster secret, the base path,
/// the limits), and mount it beside an application's routes in axum at
/// [`super::HttpPool::route_path`] (serve the router with [`super::Server`]
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
    base_path: String,
    plus: PlusInPath,
    max_key_bytes: usize,
    max_body_bytes: usize,
    max_remove_keys: usize,
    /// The cluster secret and this node's base URL, which proofs must name.
    auth: Option<(Arc<PeerAuth>, Arc<str>)>,
}

impl std::fmt::Debug for PeerService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerService")
            .field("base_path", &self.inner.base_path)
            .field("plus", &self.inner.plus)
            .finish()
    }
}

/// The future a [`PeerService`] returns.
pub type ResponseFuture =
    Pin<Box<dyn Future<Output = Result<Response<Full<Bytes>>, Infallible>> + Send>>;

impl PeerService {
    /// The peer endpoint of a `node` that has no [`super::HttpPool`] of its
    /// own (an owner only answering others), with default options: base
    /// path `/_groupcache/`, golang clients, **no cluster secret**. A node
    /// with a pool takes [`super::HttpPool::service`] instead, which has the
    /// pool's secret, base path and limits, so client and server cannot
    /// disagree.
    pub fn without_pool(node: Node) -> Self {
        PeerService::for_node_at(node, &HttpOptions::default(), "")
    }

    /// The peer endpoint of `node`, reached by its peers at `self_url`,
    /// with the base path, `+` reading, limits and cluster secret of
    /// `options`: with a secret, a proof made for another node than
    /// `self_url` is refused. [`super::HttpPool::service`] builds it this
    /// way from the pool's own settings.
    pub fn for_node_at(node: Node, options: &HttpOptions, self_url: &str) -> Self {
        PeerService {
            inner: Arc::new(ServiceInner {
                node,
                base_path: options.base_path.clone(),
                plus: options.plus(),
                max_key_bytes: options.max_key_bytes,
                max_body_bytes: options.max_body_bytes,
                max_remove_keys: options.max_remove_keys,
                auth: options.auth.clone().map(|auth| (auth, Arc::from(self_url))),
            }),
        }
    }

    /// The base path this service answers under.
    pub fn base_path(&self) -> &str {
        &self.inner.base_path
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
        Box::pin(async move { Ok(inner.answer(request).await) })
    }
}

impl ServiceInner {
    async fn answer<B>(&self, request: Request<B>) -> Response<Full<Bytes>>
    where
        B: Body,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let (parts, body) = request.into_parts();
        let method = &parts.method;
        let path = parts.uri.path();
        if ![
            Method::GET,
            Method::HEAD,
            Method::PUT,
            Method::DELETE,
            Method::POST,
        ]
        .contains(method)
        {
            let mut response = text(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("method {method} not allowed: the peer endpoint answers {ALLOWED}"),
            );
            response
                .headers_mut()
                .insert(ALLOW, HeaderValue::from_static(ALLOWED));
            return response;
        }
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
        if path.len()
            > self.base_path.len()
                + crate::node::MAX_GROUP_NAME_LEN * 3
                + 1
                + self.max_key_bytes * 3
        {
            return text(
                StatusCode::URI_TOO_LONG,
                format!(
                    "path too long ({} bytes): keys are limited to {} bytes",
                    path.len(),
                    self.max_key_bytes
                ),
            );
        }
        let parsed = match parse_peer_path(path, &self.base_path, self.plus) {
            Ok(parsed) => parsed,
            Err(error) => return bad_request(&error),
        };
        if parsed.key.len() > self.max_key_bytes {
            return self.key_too_long(parsed.key.len());
        }
        let Some(group) = self.node.served_group(&parsed.group) else {
            return text(
                StatusCode::NOT_FOUND,
                format!("no such group: {}", parsed.group),
            );
        };
        match *method {
            Method::GET | Method::HEAD => self.get(&group, &parsed.key).await,
            Method::DELETE => {
                group.remove(&[&*parsed.key]);
                done()
            }
            _ => match self.read_body(body).await {
                Ok(body) if verified.as_ref().is_some_and(|v| v.check_body(&body).is_err()) => {
                    refused(&AuthError::BodyMismatch)
                }
                Ok(body) if *method == Method::PUT => self.set(&group, body),
                Ok(body) if parsed.key == REMOVE_KEYS_PATH => self.remove_keys(&group, &body),
                Ok(_) if parsed.key == PURGE_PATH => {
                    group.purge();
                    done()
                }
                Ok(_) => text(
                    StatusCode::NOT_FOUND,
                    format!(
                        "invalid path for POST: the peer endpoint takes POST only at <group>/{REMOVE_KEYS_PATH} and <group>/{PURGE_PATH}"
                    ),
                ),
                Err(response) => response,
            },
        }
    }

    /// Reads a whole request body, refusing one over the size limit.
    async fn read_body<B>(&self, body: B) -> Result<Bytes, Response<Full<Bytes>>>
    where
        B: Body,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        match Limited::new(body, self.max_body_bytes).collect().await {
            Ok(collected) => Ok(collected.to_bytes()),
            Err(error) if error.is::<http_body_util::LengthLimitError>() => Err(text(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "request body too large: the limit is {} bytes",
                    self.max_body_bytes
                ),
            )),
            Err(error) if error.is::<super::limits::BodyTimeout>() => Err(text(
                StatusCode::REQUEST_TIMEOUT,
                format!("request timeout: {error}"),
            )),
            Err(error) if error.is::<super::limits::BodyBudgetExceeded>() => {
                let mut response = text(StatusCode::SERVICE_UNAVAILABLE, error.to_string());
                response
                    .headers_mut()
                    .insert(RETRY_AFTER, HeaderValue::from_static("1"));
                Err(response)
            }
            Err(error) => Err(text(
                StatusCode::BAD_REQUEST,
                format!("bad request: reading the body failed: {error}"),
            )),
        }
    }

    /// A mailgun `PUT`: the key and value come from the `SetRequest` body
    /// (the key there is unambiguous, whatever the path's escaping).
    fn set(&self, group: &ServedGroup, body: Bytes) -> Response<Full<Bytes>> {
        let request = match SetRequest::decode(body) {
            Ok(request) => request,
            Err(error) => {
                return text(
                    StatusCode::BAD_REQUEST,
                    format!("bad request: the body is not a SetRequest: {error}"),
                )
            }
        };
        if let Some(other) = request.group.as_deref().filter(|g| *g != group.name()) {
            return text(
                StatusCode::BAD_REQUEST,
                format!(
                    "bad request: the SetRequest is for group {other:?} but was sent to group {:?}",
                    group.name()
                ),
            );
        }
        let Some(key) = request.key else {
            return text(
                StatusCode::BAD_REQUEST,
                "bad request: the SetRequest has no key (field 2)".to_owned(),
            );
        };
        if key.len() > self.max_key_bytes {
            return self.key_too_long(key.len());
        }
        let value = Value::new(request.value.unwrap_or_default())
            .with_expiry_unix_nanos(request.expire.unwrap_or(0));
        group.set(&key, value);
        done()
    }

    /// groupcache-go v3's remove-keys `POST`.
    fn remove_keys(&self, group: &ServedGroup, body: &[u8]) -> Response<Full<Bytes>> {
        let request = match RemoveKeysRequest::from_json(body, self.max_remove_keys) {
            Ok(request) => request,
            Err(error @ RemoveKeysError::TooManyKeys { .. }) => {
                return text(StatusCode::PAYLOAD_TOO_LARGE, error.to_string())
            }
            Err(error) => return text(StatusCode::BAD_REQUEST, format!("bad request: {error}")),
        };
        if request.group.as_deref().is_some_and(|g| g != group.name()) {
            return text(
                StatusCode::BAD_REQUEST,
                format!(
                    "bad request: the RemoveKeysRequest is for group {:?} but was sent to group {:?}",
                    request.group.unwrap_or_default(),
                    group.name()
                ),
            );
        }
        if let Some(long) = request.keys.iter().find(|k| k.len() > self.max_key_bytes) {
            return self.key_too_long(long.len());
        }
        group.remove(&request.keys);
        done()
    }

    fn key_too_long(&self, len: usize) -> Response<Full<Bytes>> {
        text(
            StatusCode::URI_TOO_LONG,
            format!(
                "key too long ({len} bytes): the limit is {} bytes",
                self.max_key_bytes
            ),
        )
    }

    async fn get(&self, group: &ServedGroup, key: &str) -> Response<Full<Bytes>> {
        match group.get(key).await {
            Ok(value) => {
                let expire = value.expiry_unix_nanos();
                let body = GetResponse {
                    value: Some(value.into_bytes()),
                    minute_qps: None,
                    expire: (expire != 0).then_some(expire),
                }
                .encode_to_vec();
                let mut response = Response::new(Full::new(Bytes::from(body)));
                response.headers_mut().insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static(PROTOBUF_CONTENT_TYPE),
                );
                response
            }
            Err(error @ Error::NotFound { .. }) => {
                let mut response = text(StatusCode::NOT_FOUND, error.to_string());
                response
                    .headers_mut()
                    .insert(NOT_FOUND_HEADER, HeaderValue::from_static("1"));
                response
            }
            Err(error) => text(StatusCode::SERVICE_UNAVAILABLE, error.to_string()),
        }
    }
}

/// 200 with an empty body: what Go answers a change it carried out.
fn done() -> Response<Full<Bytes>> {
    Response::new(Full::new(Bytes::new()))
}

/// The answer to a request whose proof failed: 401, or 503 when the replay
/// table is full.
fn refused(error: &AuthError) -> Response<Full<Bytes>> {
    if matches!(error, AuthError::Busy) {
        let mut response = text(StatusCode::SERVICE_UNAVAILABLE, error.to_string());
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from_static("1"));
        return response;
    }
    let mut response = text(
        StatusCode::UNAUTHORIZED,
        format!("unauthorized: {error}; every node needs the same peer secret"),
    );
    response
        .headers_mut()
        .insert(WWW_AUTHENTICATE, HeaderValue::from_static(SCHEME));
    response
}

fn bad_request(error: &PathError) -> Response<Full<Bytes>> {
    text(StatusCode::BAD_REQUEST, format!("bad request: {error}"))
}

impl<B> tower_service::Service<Request<B>> for PeerService
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = Response<Full<Bytes>>;
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
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn call(&self, request: Request<B>) -> Self::Future {
        self.answer(request)
    }
}
