//! What both sides of the peer protocol share: the names on the wire
//! (content type, paths of the `POST` requests, peercache's not-found
//! marker) and the plain-text answer every refusal takes.
//!
//! The client (`client.rs`) writes requests with these and reads answers by
//! them; the server (`server.rs`) and its limits (`limits.rs`) answer with
//! them. Keeping them here means neither side imports the other.

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Response, StatusCode};
use http_body_util::Full;

/// Content type of a GetResponse, as Go sends it.
pub(crate) const PROTOBUF_CONTENT_TYPE: &str = "application/x-protobuf";

/// Header a peercache server sets on a 404 that means "the loader says not
/// found", so a client can tell it from a 404 of a misrouted request.
pub(crate) const NOT_FOUND_HEADER: &str = "x-peercache-not-found";

/// The key (after the group) of groupcache-go v3's remove-keys `POST`.
pub(crate) const REMOVE_KEYS_PATH: &str = "_remove-keys/";

/// The key (after the group) of peercache's purge `POST`.
pub(crate) const PURGE_PATH: &str = "_purge/";

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
