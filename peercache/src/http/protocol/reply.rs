//! Every answer of the peer endpoint, [`Reply`]: the one table of status
//! codes both sides use. The server writes a `Reply` as HTTP
//! ([`Reply::into_response`]); the client reads HTTP back into one
//! ([`Reply::read`]) and decides from it (in `client`) whether the owner
//! answered, said no, or could not be reached.
//!
//! | reply | HTTP | the asking node |
//! | --- | --- | --- |
//! | `Value`, `ValueParts` | 200 `application/x-protobuf` `GetResponse` | a get: the value |
//! | `Done` | 200, empty (not protobuf) | a change: carried out |
//! | `NotFound` | 404 with `x-peercache-not-found` (any 404 from mailgun) | the owner's loader says not found: no second load |
//! | `LoadFailed` | 503 without `Retry-After` (peercache, mailgun), 500 (golang) | the owner's loader failed: no second load |
//! | `Busy` | 503 with `Retry-After` | the owner sheds load: load here, the owner stays in the ring |
//! | `NoSuchGroup` | 404 `no such group: <group>` | misconfigured peer: load here |
//! | `NoRoute` | any other 404 | no peer endpoint there: load here (a change: the peer does not know it) |
//! | `Unauthorized` | 401 with `WWW-Authenticate` | this node's proof was refused: load here |
//! | `MethodNotAllowed` | 405 with `Allow` | a change the peer does not know |
//! | `BadRequest`, `Timeout`, `TooLarge`, `TooLong` | 400, 408, 413, 414 | refused: load here (a change fails) |
//! | `Other` | anything else | unreachable or failing: load here |

use super::{ALLOWED_METHODS, NOT_FOUND_HEADER, PROTOBUF_CONTENT_TYPE};
use crate::http::auth::SCHEME;
use crate::http::body::PeerBody;
use bytes::Bytes;
use http::header::{
    HeaderMap, HeaderName, HeaderValue, ALLOW, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE,
};
use http::{Response, StatusCode};

/// Longest error text from a peer kept in an error message.
const MAX_ERROR_TEXT: usize = 512;

/// An answer of the peer endpoint; every variant but `Value` and `Done`
/// carries its one-line reason.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Reply {
    /// A get's answer: an encoded `GetResponse`.
    Value(Bytes),
    /// A get's answer as the server sends a large value: the
    /// `GetResponse`'s framing, the value's own bytes and the expiry field,
    /// written one after the other (`proto::get_response_parts`).
    ValueParts([Bytes; 3]),
    /// A change carried out.
    Done,
    /// A peek's answer: the node does not hold the key (204).
    Missing,
    /// The owner's loader says not found; until when the owner caches
    /// that answer (Unix nanoseconds), if it does.
    NotFound(String, Option<i64>),
    /// The owner's loader failed (or panicked, or timed out).
    LoadFailed(String),
    /// The server sheds load; retry after this many seconds.
    Busy(String, u64),
    /// The peer does not serve the group.
    NoSuchGroup(String),
    /// Nothing answers there (a `POST` path the endpoint lacks, or, read by
    /// a client, a 404 no peer endpoint gives).
    NoRoute(String),
    /// The request's proof was refused.
    Unauthorized(String),
    /// The endpoint does not answer the method.
    MethodNotAllowed(String),
    /// The request is malformed.
    BadRequest(String),
    /// The request's body did not arrive in time.
    Timeout(String),
    /// The request's body is too large.
    TooLarge(String),
    /// The request's key or target is too long.
    TooLong(String),
    /// Any other answer, read by a client.
    Other(StatusCode, String),
}

impl Reply {
    /// The status code the server sends.
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            Reply::Value(_) | Reply::ValueParts(_) | Reply::Done => StatusCode::OK,
            Reply::Missing => StatusCode::NO_CONTENT,
            Reply::NotFound(..) | Reply::NoSuchGroup(_) | Reply::NoRoute(_) => {
                StatusCode::NOT_FOUND
            }
            Reply::LoadFailed(_) | Reply::Busy(..) => StatusCode::SERVICE_UNAVAILABLE,
            Reply::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Reply::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Reply::BadRequest(_) => StatusCode::BAD_REQUEST,
            Reply::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
            Reply::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Reply::TooLong(_) => StatusCode::URI_TOO_LONG,
            Reply::Other(status, _) => *status,
        }
    }

    /// The reason, for a refusal; empty for `Value` and `Done`.
    pub(crate) fn reason(&self) -> &str {
        match self {
            Reply::Value(_) | Reply::ValueParts(_) | Reply::Done | Reply::Missing => "",
            Reply::NotFound(reason, _)
            | Reply::LoadFailed(reason)
            | Reply::Busy(reason, _)
            | Reply::NoSuchGroup(reason)
            | Reply::NoRoute(reason)
            | Reply::Unauthorized(reason)
            | Reply::MethodNotAllowed(reason)
            | Reply::BadRequest(reason)
            | Reply::Timeout(reason)
            | Reply::TooLarge(reason)
            | Reply::TooLong(reason)
            | Reply::Other(_, reason) => reason,
        }
    }

    /// The reply as the server sends it.
    pub(crate) fn into_response(self) -> Response<PeerBody> {
        let status = self.status();
        let (reason, header) = match self {
            Reply::Value(body) => {
                return Reply::ValueParts([body, Bytes::new(), Bytes::new()]).into_response()
            }
            Reply::ValueParts(parts) => {
                let mut response = Response::new(PeerBody::chain(parts));
                response.headers_mut().insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static(PROTOBUF_CONTENT_TYPE),
                );
                return response;
            }
            // What Go answers a change it carried out.
            Reply::Done => return Response::new(PeerBody::default()),
            Reply::Missing => {
                let mut response = Response::new(PeerBody::default());
                *response.status_mut() = StatusCode::NO_CONTENT;
                return response;
            }
            Reply::NotFound(reason, until) => (
                reason,
                Some((
                    HeaderName::from_static(NOT_FOUND_HEADER),
                    match until {
                        Some(until) => HeaderValue::from(until),
                        None => HeaderValue::from_static("1"),
                    },
                )),
            ),
            Reply::Busy(reason, secs) => (reason, Some((RETRY_AFTER, HeaderValue::from(secs)))),
            Reply::Unauthorized(reason) => (
                reason,
                Some((WWW_AUTHENTICATE, HeaderValue::from_static(SCHEME))),
            ),
            Reply::MethodNotAllowed(reason) => (
                reason,
                Some((ALLOW, HeaderValue::from_static(ALLOWED_METHODS))),
            ),
            reply => (reply.reason().to_owned(), None),
        };
        let mut response = text(reason);
        *response.status_mut() = status;
        if let Some((name, value)) = header {
            response.headers_mut().insert(name, value);
        }
        response
    }

    /// Reads an answer, as a client: `plain_404_is_not_found` for mailgun
    /// peers, whose loader's not-found is a bare 404.
    pub(crate) fn read(
        status: StatusCode,
        headers: &HeaderMap,
        body: Bytes,
        plain_404_is_not_found: bool,
    ) -> Reply {
        let is_get_answer = headers
            .get(CONTENT_TYPE)
            .is_some_and(|t| t.as_bytes().starts_with(PROTOBUF_CONTENT_TYPE.as_bytes()));
        if status == StatusCode::OK {
            return if is_get_answer {
                Reply::Value(body)
            } else {
                Reply::Done
            };
        }
        if status == StatusCode::NO_CONTENT {
            return Reply::Missing;
        }
        let reason = error_text(&body);
        match status {
            StatusCode::NOT_FOUND if body.starts_with(b"no such group") => {
                Reply::NoSuchGroup(reason)
            }
            StatusCode::NOT_FOUND
                if headers.contains_key(NOT_FOUND_HEADER) || plain_404_is_not_found =>
            {
                Reply::NotFound(reason, cached_until(headers))
            }
            StatusCode::NOT_FOUND => Reply::NoRoute(reason),
            StatusCode::INTERNAL_SERVER_ERROR => Reply::LoadFailed(reason),
            StatusCode::SERVICE_UNAVAILABLE => match headers.get(RETRY_AFTER) {
                Some(after) => {
                    let secs = after.to_str().ok().and_then(|s| s.parse().ok());
                    Reply::Busy(reason, secs.unwrap_or(1))
                }
                None => Reply::LoadFailed(reason),
            },
            StatusCode::UNAUTHORIZED => Reply::Unauthorized(reason),
            StatusCode::METHOD_NOT_ALLOWED => Reply::MethodNotAllowed(reason),
            StatusCode::BAD_REQUEST => Reply::BadRequest(reason),
            StatusCode::REQUEST_TIMEOUT => Reply::Timeout(reason),
            StatusCode::PAYLOAD_TOO_LARGE => Reply::TooLarge(reason),
            StatusCode::URI_TOO_LONG => Reply::TooLong(reason),
            status => Reply::Other(status, reason),
        }
    }
}

/// Until when the owner caches its not-found: the marker header's value
/// when it is a Unix time in nanoseconds (older nodes send `1`).
fn cached_until(headers: &HeaderMap) -> Option<i64> {
    let value = headers.get(NOT_FOUND_HEADER)?.to_str().ok()?;
    value.parse::<i64>().ok().filter(|&until| until > 1)
}

/// A peer's error body as one bounded line of text.
fn error_text(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(MAX_ERROR_TEXT)]);
    text.trim_end().to_owned()
}

/// A plain-text answer, with the headers Go's `http.Error` sets.
fn text(message: String) -> Response<PeerBody> {
    let mut body = message;
    body.push('\n');
    let mut response = Response::new(PeerBody::from(body));
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

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    /// Every reply the server writes is read back as itself by a client
    /// (golang's 500 aside, which a peercache server never sends).
    #[tokio::test]
    async fn every_reply_reads_back_as_itself() {
        let replies = [
            Reply::Value(Bytes::from_static(b"\n\x01v")),
            Reply::Done,
            Reply::NotFound("not found".into(), None),
            Reply::NotFound("not found".into(), Some(1_800_000_000_000_000_000)),
            Reply::LoadFailed("the loader failed".into()),
            Reply::Busy("overloaded".into(), 3),
            Reply::NoSuchGroup("no such group: g".into()),
            Reply::NoRoute("invalid path for POST".into()),
            Reply::Unauthorized("unauthorized".into()),
            Reply::MethodNotAllowed("method PATCH not allowed".into()),
            Reply::BadRequest("bad request".into()),
            Reply::Timeout("request timeout".into()),
            Reply::TooLarge("too large".into()),
            Reply::TooLong("too long".into()),
            Reply::Other(StatusCode::IM_A_TEAPOT, "teapot".into()),
        ];
        for reply in replies {
            let response = reply.clone().into_response();
            let (parts, body) = response.into_parts();
            assert_eq!(parts.status, reply.status(), "{reply:?}");
            let body = body.collect().await.unwrap().to_bytes();
            assert_eq!(
                Reply::read(parts.status, &parts.headers, body, false),
                reply
            );
        }
    }

    #[test]
    fn go_answers_are_read_by_the_table() {
        let plain = HeaderMap::new();
        let read = |status: u16, body: &'static [u8], mailgun: bool| {
            Reply::read(
                StatusCode::from_u16(status).unwrap(),
                &plain,
                Bytes::from_static(body),
                mailgun,
            )
        };
        // golang/groupcache: a loader error is a 500; any 404 is not a
        // not-found from its loader.
        assert_eq!(
            read(500, b"boom\n", false),
            Reply::LoadFailed("boom".into())
        );
        assert_eq!(read(404, b"x\n", false), Reply::NoRoute("x".into()));
        // mailgun: a bare 404 is the loader's not-found.
        assert_eq!(read(404, b"x\n", true), Reply::NotFound("x".into(), None));
        // A 200 that is not a GetResponse is a change's answer.
        assert_eq!(read(200, b"", false), Reply::Done);
        // Error text is kept to one bounded line.
        let long = Reply::read(
            StatusCode::BAD_REQUEST,
            &plain,
            Bytes::from(vec![b'x'; 4096]),
            false,
        );
        assert_eq!(long.reason().len(), MAX_ERROR_TEXT);
    }
}
