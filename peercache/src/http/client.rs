//! The client side: fetching a key from its owner over HTTP.
//!
//! All peers of a pool share one hyper-util client, whose connection pool
//! keeps up to [`super::HttpOptions::max_idle_per_peer`] keep-alive
//! connections per peer and reuses them: under load a node holds about as many
//! sockets per peer as it has requests in flight, where golang's default of 2
//! idle connections makes it open and close thousands.
//!
//! How the owner's answer is read:
//!
//! | answer | meaning | result |
//! | --- | --- | --- |
//! | 200 | the value | `Ok`, with `expire` as the value's expiry |
//! | 404 `no such group` | the peer lacks the group (misconfigured) | unavailable: load here |
//! | 404 from peercache (marked) or, in mailgun mode, any other 404 | the owner's loader says not found | `FetchError::Load(NotFound)`, no second load |
//! | other 404 in golang mode | no golang owner says not-found with a 404: a misrouted request | unavailable: load here |
//! | 500 (golang), 503 without `Retry-After` (mailgun, peercache) | the owner's loader failed | `FetchError::Load`, no second load |
//! | anything else, timeout, refused connection | the owner is unreachable or overloaded | unavailable: counted in `peer_errors`, load here |

use super::server::{NOT_FOUND_HEADER, PROTOBUF_CONTENT_TYPE};
use super::wire::escape;
use crate::loader::{BoxFuture, LoadError};
use crate::peers::{FetchError, Peer};
use crate::proto::GetResponse;
use crate::Value;
use bytes::Bytes;
use http::header::{HeaderValue, ACCEPT, RETRY_AFTER, USER_AGENT};
use http::{Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use prost::Message;
use std::sync::Arc;
use std::time::Duration;

/// The hyper client all peers of a pool share.
pub(crate) type PeerClient = Client<HttpConnector, Full<Bytes>>;

/// The User-Agent of peer requests.
const AGENT: &str = concat!("peercache/", env!("CARGO_PKG_VERSION"));
/// Longest error text from a peer kept in an error message.
const MAX_ERROR_TEXT: usize = 512;

/// One peer, reached over HTTP.
pub struct HttpPeer {
    id: Arc<str>,
    /// `<base URL><base path>`: a request appends `<group>/<key>`.
    prefix: String,
    client: PeerClient,
    timeout: Duration,
    /// Whether an unmarked 404 is a loader's not-found (mailgun peers).
    plain_404_is_not_found: bool,
}

impl std::fmt::Debug for HttpPeer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpPeer").field("id", &self.id).finish()
    }
}

impl HttpPeer {
    pub(crate) fn new(
        id: &str,
        base_path: &str,
        client: PeerClient,
        timeout: Duration,
        plain_404_is_not_found: bool,
    ) -> Self {
        HttpPeer {
            id: Arc::from(id),
            prefix: format!("{id}{base_path}"),
            client,
            timeout,
            plain_404_is_not_found,
        }
    }

    async fn get(&self, group: &str, key: &str) -> Result<Value, FetchError> {
        let url = format!("{}{}/{}", self.prefix, escape(group), escape(key));
        let uri: Uri = url.parse().map_err(|e| {
            self.unavailable(format!("cannot build a request URL from {url:?}: {e}"))
        })?;
        let mut request = Request::new(Full::new(Bytes::new()));
        *request.uri_mut() = uri;
        let headers = request.headers_mut();
        headers.insert(USER_AGENT, HeaderValue::from_static(AGENT));
        headers.insert(ACCEPT, HeaderValue::from_static(PROTOBUF_CONTENT_TYPE));
        let exchange = async {
            let response = self.client.request(request).await?;
            let (parts, body) = response.into_parts();
            let body = body.collect().await?.to_bytes();
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>((parts, body))
        };
        let (parts, body) = match tokio::time::timeout(self.timeout, exchange).await {
            Err(_) => return Err(self.unavailable(format!("no answer within {:?}", self.timeout))),
            Ok(Err(error)) => return Err(self.unavailable(error_chain(error.as_ref()))),
            Ok(Ok(answer)) => answer,
        };
        match parts.status {
            StatusCode::OK => {
                let response = GetResponse::decode(body).map_err(|e| {
                    self.unavailable(format!("answered a malformed GetResponse: {e}"))
                })?;
                let value = Value::new(response.value.unwrap_or_default());
                Ok(value.with_expiry_unix_nanos(response.expire.unwrap_or(0)))
            }
            StatusCode::NOT_FOUND if body.starts_with(b"no such group") => {
                Err(self.unavailable(format!("does not serve this group: {}", error_text(&body))))
            }
            StatusCode::NOT_FOUND
                if parts.headers.contains_key(NOT_FOUND_HEADER) || self.plain_404_is_not_found =>
            {
                Err(FetchError::Load(LoadError::NotFound))
            }
            StatusCode::INTERNAL_SERVER_ERROR => {
                Err(FetchError::Load(LoadError::msg(error_text(&body))))
            }
            StatusCode::SERVICE_UNAVAILABLE if !parts.headers.contains_key(RETRY_AFTER) => {
                Err(FetchError::Load(LoadError::msg(error_text(&body))))
            }
            status => Err(self.unavailable(format!("answered {status}: {}", error_text(&body)))),
        }
    }

    fn unavailable(&self, reason: String) -> FetchError {
        FetchError::Unavailable(format!("peer {}: {reason}", self.id))
    }
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
}

/// A peer's error body as one bounded line of text.
fn error_text(body: &Bytes) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(MAX_ERROR_TEXT)]);
    text.trim_end().to_owned()
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
