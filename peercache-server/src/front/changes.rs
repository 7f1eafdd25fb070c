//! The answers to changes made through the front API (`PUT`, `DELETE`,
//! `POST /<group>/_purge`): 200 when the owner and every reachable node
//! carried the change out (naming the nodes it is pending at), 502 when
//! the owner was not reached or a node refused it.

use super::text;
use axum::body::Bytes;
use axum::http::{header, StatusCode};
use axum::response::Response;
use peercache::{Applied, Error, Group};
use std::time::{Duration, SystemTime};

/// Sets `key` to `body` for the cluster, with an optional `ttl` (e.g. `30s`).
/// Values up to this long are copied into their cache entry anyway
/// (`peercache::Value`'s own threshold).
const KEEP_AS_READ: usize = 1024;

pub(super) async fn set(group: &Group, key: &str, ttl: Option<&str>, body: Bytes) -> Response {
    let expiry = match ttl.map(crate::args::parse_duration) {
        None => None,
        Some(Ok(ttl)) => match SystemTime::now().checked_add(ttl) {
            Some(at) => Some(at),
            None => {
                return text(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "bad ttl parameter: {ttl:?} from now is past this system's clock range"
                    ),
                )
            }
        },
        Some(Err(reason)) => {
            return text(
                StatusCode::BAD_REQUEST,
                format!("bad ttl parameter: {reason}"),
            )
        }
    };
    // The body may be a slice of the connection's read buffer (a body of
    // one frame, as axum's extractor hands it): a large value is copied
    // out, so the cache does not keep the whole buffer alive.
    let body = if body.len() > KEEP_AS_READ {
        Bytes::copy_from_slice(&body)
    } else {
        body
    };
    match group.set(key, body, expiry).await {
        Ok(applied) => {
            let lasting = match expiry
                .or_else(|| group.ttl().and_then(|t| SystemTime::now().checked_add(t)))
            {
                Some(at) => format!(
                    " for {}s",
                    at.duration_since(SystemTime::now())
                        .unwrap_or(Duration::ZERO)
                        .as_secs()
                ),
                None => String::new(),
            };
            done(format!("stored {key:?}{lasting} on every node"), &applied)
        }
        Err(error) => change_failed(&error),
    }
}

pub(super) async fn remove(group: &Group, key: &str) -> Response {
    match group.remove(key).await {
        Ok(applied) => done(
            format!("removed {key:?} from every node; the next get loads it again"),
            &applied,
        ),
        Err(error) => change_failed(&error),
    }
}

/// 200 for a change the owner and every reachable node carried out. The
/// nodes that did not answer within the change timeout are named in the
/// text and in `peercache-pending` (comma-separated base URLs): the change
/// is kept for them and delivered when they answer again, so the client has
/// nothing to retry.
pub(super) fn done(message: String, applied: &Applied) -> Response {
    if applied.pending().is_empty() {
        return text(StatusCode::OK, message);
    }
    let pending = applied.pending().join(",");
    let mut response = text(
        StatusCode::OK,
        format!("{message} but {pending}, which did not answer in time: kept for them, delivered when they answer again"),
    );
    if let Ok(value) = header::HeaderValue::from_str(&pending) {
        response.headers_mut().insert(PENDING, value);
    }
    response
}

/// The header naming the nodes a change is pending at.
const PENDING: header::HeaderName = header::HeaderName::from_static("peercache-pending");

/// 502: a change did not reach the owner, or a node refused it (the error
/// names them).
/// (The library has logged which peers failed.)
pub(super) fn change_failed(error: &Error) -> Response {
    text(StatusCode::BAD_GATEWAY, error.to_string())
}
