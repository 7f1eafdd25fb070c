//! The server side: answers peers' requests for keys this node owns.
//!
//! [`PeerService`] is a `tower::Service` and a `hyper::service::Service` at
//! once, so it can be served alone ([`super::serve`]), mounted in an axum or
//! hyper application, or wrapped in tower middleware.
//!
//! Answers, as Go peers expect them:
//!
//! | request | answer |
//! | --- | --- |
//! | `GET <base><group>/<key>` | 200 `application/x-protobuf` GetResponse (`expire` set when the value has one) |
//! | unknown group | 404 `no such group: <group>` |
//! | loader says not found | 404 (mailgun clients return not-found; golang clients load locally) |
//! | loader fails or panics | 503 (mailgun clients return the error; golang clients load locally) |
//! | malformed path or escape, non-UTF-8 key | 400 with the reason |
//! | key longer than the limit | 414 |
//! | other methods | 405 |
//!
//! A request is answered with [`crate::Group::serve_peer`]: from this node's
//! cache or loader, never forwarded to another peer, so peers whose rings
//! disagree cannot bounce a request between them or wait on each other.

use super::options::HttpOptions;
use super::wire::{parse_peer_path, PathError, PlusInPath};
use crate::proto::GetResponse;
use crate::{Error, Node};
use bytes::Bytes;
use http::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use prost::Message;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// Content type of a GetResponse, as Go sends it.
pub const PROTOBUF_CONTENT_TYPE: &str = "application/x-protobuf";

/// Header a peercache server sets on a 404 that means "the loader says not
/// found", so a client can tell it from a 404 of a misrouted request.
pub const NOT_FOUND_HEADER: &str = "x-peercache-not-found";

/// The peer endpoint of a node, as a service.
///
/// It reads the whole request path, base path included: mount it at
/// `<base path>{*rest}` (axum's `route_service`), not with a router that
/// strips the prefix (axum's `nest_service`).
#[derive(Clone)]
pub struct PeerService {
    inner: Arc<ServiceInner>,
}

struct ServiceInner {
    node: Node,
    base_path: String,
    plus: PlusInPath,
    max_key_bytes: usize,
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
    /// The peer endpoint of `node` with default options (base path
    /// `/_groupcache/`, golang clients).
    pub fn new(node: Node) -> Self {
        PeerService::with_options(node, &HttpOptions::default())
    }

    /// The peer endpoint of `node` with the base path, `+` reading and key
    /// limit of `options`. Prefer [`super::HttpPool::service`], which uses the
    /// pool's own options, so client and server cannot disagree.
    pub fn with_options(node: Node, options: &HttpOptions) -> Self {
        PeerService {
            inner: Arc::new(ServiceInner {
                node,
                base_path: options.base_path.clone(),
                plus: options.plus(),
                max_key_bytes: options.max_key_bytes,
            }),
        }
    }

    /// The base path this service answers under.
    pub fn base_path(&self) -> &str {
        &self.inner.base_path
    }

    /// Answers one request. Only the method and the path are read.
    pub fn answer(&self, method: &Method, path: &str) -> ResponseFuture {
        let inner = Arc::clone(&self.inner);
        let method = method.clone();
        let path = path.to_owned();
        Box::pin(async move { Ok(inner.answer(&method, &path).await) })
    }
}

impl ServiceInner {
    async fn answer(&self, method: &Method, path: &str) -> Response<Full<Bytes>> {
        if method != Method::GET && method != Method::HEAD {
            let mut response = text(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("method {method} not allowed: the peer endpoint answers GET"),
            );
            response
                .headers_mut()
                .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
            return response;
        }
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
            return text(
                StatusCode::URI_TOO_LONG,
                format!(
                    "key too long ({} bytes): the limit is {} bytes",
                    parsed.key.len(),
                    self.max_key_bytes
                ),
            );
        }
        let Some(group) = self.node.group(&parsed.group) else {
            return text(
                StatusCode::NOT_FOUND,
                format!("no such group: {}", parsed.group),
            );
        };
        match group.serve_peer(&parsed.key).await {
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

fn bad_request(error: &PathError) -> Response<Full<Bytes>> {
    text(StatusCode::BAD_REQUEST, format!("bad request: {error}"))
}

/// A plain-text answer, with the headers Go's `http.Error` sets.
pub(crate) fn text(status: StatusCode, message: String) -> Response<Full<Bytes>> {
    let mut body = message;
    body.push('\n');
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    response
}

impl<B> tower_service::Service<Request<B>> for PeerService {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        self.answer(request.method(), request.uri().path())
    }
}

impl<B> hyper::service::Service<Request<B>> for PeerService {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn call(&self, request: Request<B>) -> Self::Future {
        self.answer(request.method(), request.uri().path())
    }
}
