//! The one request type of the peer protocol, [`PeerRequest`]: what a node
//! asks another, encoded to HTTP by the client ([`PeerRequest::encode`]) and
//! parsed from HTTP by the server ([`Head::parse`], then [`Head::read`] for
//! the body), so that the two sides cannot drift apart: a round-trip test
//! holds them together.
//!
//! | request | HTTP (under the base path) |
//! | --- | --- |
//! | [`PeerRequest::Get`] | `GET <group>/<key>` (`HEAD` too) |
//! | [`PeerRequest::Remove`] | `DELETE <group>/<key>` (mailgun) |
//! | [`PeerRequest::RemoveKeys`] | `POST <group>/_remove-keys/`, JSON `{"group":..,"keys":[..]}` (groupcache-go v3) |
//! | [`PeerRequest::Set`] | `PUT <group>/<key>`, a protobuf `SetRequest` (mailgun) |
//! | [`PeerRequest::Purge`] | `POST <group>/_purge/` (peercache) |
//! | [`PeerRequest::GetMany`] | `POST <group>/_get-many/`, a protobuf `GetManyRequest` (peercache) |
//! | [`PeerRequest::Peek`] | `GET <group>/<key>?peek` (peercache; parsed as a get, the server reads the query) |
//! | [`PeerRequest::HandOver`] | `POST <group>/_hand-over/`, a protobuf `HandOverRequest` (peercache) |
//!
//! Parsing checks what the request itself can get wrong (its method, path,
//! escapes, key length, body); what the node makes of it (the group, the
//! cache) is the server's.

use super::reply::Reply;
use super::{
    ALLOWED_METHODS, GET_MANY_PATH, HAND_OVER_PATH, MAX_GET_MANY_KEYS, MAX_HAND_OVER_ITEMS,
    PEEK_QUERY, PROTOBUF_CONTENT_TYPE, PURGE_PATH, REMOVE_KEYS_PATH,
};
use crate::http::body::kept_slice;
use crate::http::wire::{escape, parse_peer_path};
use crate::http::PlusInPath;
use crate::proto::{
    BatchDecodeError, GetManyRequest, HandOverRequest, RemoveKeysError, RemoveKeysRequest,
    SetRequest,
};
use crate::Value;
use bytes::Bytes;
use http::Method;
use prost::Message;
use std::borrow::Cow;

/// What one node asks another.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum PeerRequest<'a> {
    /// The value of `key`, from its owner.
    Get {
        group: Cow<'a, str>,
        key: Cow<'a, str>,
    },
    /// Remove one key there.
    Remove {
        group: Cow<'a, str>,
        key: Cow<'a, str>,
    },
    /// Remove several keys there.
    RemoveKeys {
        group: Cow<'a, str>,
        keys: Cow<'a, [String]>,
    },
    /// Store `value` under `key` there.
    Set {
        group: Cow<'a, str>,
        key: Cow<'a, str>,
        value: Value,
    },
    /// Empty the group there.
    Purge { group: Cow<'a, str> },
    /// The values of several distinct keys, from their owner.
    GetMany {
        group: Cow<'a, str>,
        keys: Cow<'a, [String]>,
    },
    /// The value of `key` from the node's caches only.
    Peek {
        group: Cow<'a, str>,
        key: Cow<'a, str>,
    },
    /// Values a leaving node (`from`, its base URL) hands over.
    HandOver {
        group: Cow<'a, str>,
        from: Cow<'a, str>,
        items: Cow<'a, [(String, Value)]>,
    },
}

/// A request as HTTP: its method, its path under the base path, and its
/// body with the body's content type.
#[derive(Debug)]
pub(crate) struct Encoded {
    pub(crate) method: Method,
    pub(crate) path: String,
    pub(crate) body: Option<(&'static str, Bytes)>,
}

impl PeerRequest<'_> {
    /// The request as HTTP; fails only if a key list cannot be written as
    /// JSON.
    pub(crate) fn encode(&self) -> Result<Encoded, String> {
        let at_key = |group: &str, key: &str| format!("{}/{}", escape(group), escape(key));
        let encoded = |method, path, body| Encoded { method, path, body };
        Ok(match self {
            PeerRequest::Get { group, key } => encoded(Method::GET, at_key(group, key), None),
            PeerRequest::Remove { group, key } => encoded(Method::DELETE, at_key(group, key), None),
            PeerRequest::RemoveKeys { group, keys } => {
                let request = RemoveKeysRequest {
                    group: Some(group.to_string()),
                    keys: keys.to_vec(),
                };
                let body = serde_json::to_vec(&request)
                    .map_err(|e| format!("cannot encode the key list: {e}"))?;
                encoded(
                    Method::POST,
                    format!("{}/{REMOVE_KEYS_PATH}", escape(group)),
                    Some(("application/json", Bytes::from(body))),
                )
            }
            PeerRequest::Set { group, key, value } => {
                let expire = value.expiry_unix_nanos();
                let body = SetRequest {
                    group: Some(group.to_string()),
                    key: Some(key.to_string()),
                    value: Some(value.bytes()),
                    expire: (expire != 0).then_some(expire),
                }
                .encode_to_vec();
                encoded(
                    Method::PUT,
                    at_key(group, key),
                    Some((PROTOBUF_CONTENT_TYPE, Bytes::from(body))),
                )
            }
            PeerRequest::Purge { group } => encoded(
                Method::POST,
                format!("{}/{PURGE_PATH}", escape(group)),
                None,
            ),
            PeerRequest::Peek { group, key } => encoded(
                Method::GET,
                format!("{}?{PEEK_QUERY}", at_key(group, key)),
                None,
            ),
            PeerRequest::HandOver { group, from, items } => {
                let items = items
                    .iter()
                    .map(|(key, value)| {
                        let expire = value.expiry_unix_nanos();
                        SetRequest {
                            group: None,
                            key: Some(key.clone()),
                            value: Some(value.bytes()),
                            expire: (expire != 0).then_some(expire),
                        }
                    })
                    .collect();
                let body = HandOverRequest {
                    from: Some(from.to_string()),
                    items,
                }
                .encode_to_vec();
                encoded(
                    Method::POST,
                    format!("{}/{HAND_OVER_PATH}", escape(group)),
                    Some((PROTOBUF_CONTENT_TYPE, Bytes::from(body))),
                )
            }
            PeerRequest::GetMany { group, keys } => {
                let body = GetManyRequest {
                    keys: keys.to_vec(),
                }
                .encode_to_vec();
                encoded(
                    Method::POST,
                    format!("{}/{GET_MANY_PATH}", escape(group)),
                    Some((PROTOBUF_CONTENT_TYPE, Bytes::from(body))),
                )
            }
        })
    }
}

/// What the server needs to parse requests: the pool's settings.
#[derive(Debug, Clone)]
pub(crate) struct Parsing {
    pub(crate) base_path: String,
    pub(crate) plus: PlusInPath,
    pub(crate) max_key_bytes: usize,
    pub(crate) max_remove_keys: usize,
}

/// A request whose method and path are read, and whose body (if it has
/// one) is not yet.
#[derive(Debug)]
pub(crate) struct Head<'a> {
    kind: Kind,
    group: Cow<'a, str>,
    key: Cow<'a, str>,
}

/// Most bytes of a `SetRequest` beside its key, group and value for the
/// value to be kept as a slice of the body: four tags, three lengths and
/// an expiry take at most 31.
const SET_FRAMING: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Get,
    Remove,
    Set,
    RemoveKeys,
    Purge,
    GetMany,
    HandOver,
    /// A `POST` to a path the endpoint lacks: refused once its body is
    /// read and checked, as any other `POST`.
    Unrouted,
}

impl<'a> Head<'a> {
    /// Whether the endpoint answers `method` at all (checked before
    /// anything else).
    pub(crate) fn allowed(method: &Method) -> Result<(), Reply> {
        if [
            Method::GET,
            Method::HEAD,
            Method::PUT,
            Method::DELETE,
            Method::POST,
        ]
        .contains(method)
        {
            return Ok(());
        }
        Err(Reply::MethodNotAllowed(format!(
            "method {method} not allowed: the peer endpoint answers {ALLOWED_METHODS}"
        )))
    }

    /// Reads the method and the path (the whole path, base path included).
    pub(crate) fn parse(method: &Method, path: &'a str, parsing: &Parsing) -> Result<Self, Reply> {
        Head::allowed(method)?;
        // Longer than any escaped group and key can be: refused before
        // decoding anything.
        let longest =
            parsing.base_path.len() + crate::MAX_GROUP_NAME_LEN * 3 + 1 + parsing.max_key_bytes * 3;
        if path.len() > longest {
            return Err(Reply::TooLong(format!(
                "path too long ({} bytes): keys are limited to {} bytes",
                path.len(),
                parsing.max_key_bytes
            )));
        }
        let parsed = parse_peer_path(path, &parsing.base_path, parsing.plus)
            .map_err(|error| Reply::BadRequest(format!("bad request: {error}")))?;
        if parsed.key.len() > parsing.max_key_bytes {
            return Err(key_too_long(parsed.key.len(), parsing));
        }
        let kind = match *method {
            Method::GET | Method::HEAD => Kind::Get,
            Method::DELETE => Kind::Remove,
            Method::PUT => Kind::Set,
            _ if parsed.key == REMOVE_KEYS_PATH => Kind::RemoveKeys,
            _ if parsed.key == PURGE_PATH => Kind::Purge,
            _ if parsed.key == GET_MANY_PATH => Kind::GetMany,
            _ if parsed.key == HAND_OVER_PATH => Kind::HandOver,
            _ => Kind::Unrouted,
        };
        Ok(Head {
            kind,
            group: parsed.group,
            key: parsed.key,
        })
    }

    /// The group the request is for.
    pub(crate) fn group(&self) -> &str {
        &self.group
    }

    /// Whether the request has a body to read (`PUT`, `POST`).
    pub(crate) fn has_body(&self) -> bool {
        matches!(
            self.kind,
            Kind::Set
                | Kind::RemoveKeys
                | Kind::Purge
                | Kind::GetMany
                | Kind::HandOver
                | Kind::Unrouted
        )
    }

    /// The whole request, with its `body` (empty for a request without
    /// one).
    /// Whether part of the body is kept once read (a `SetRequest`'s value,
    /// stored in the cache): the body must then not be a slice of a
    /// larger read buffer.
    pub(crate) fn keeps_body(&self) -> bool {
        matches!(self.kind, Kind::Set | Kind::HandOver)
    }

    pub(crate) fn read(self, body: Bytes, parsing: &Parsing) -> Result<PeerRequest<'a>, Reply> {
        let Head { kind, group, key } = self;
        Ok(match kind {
            Kind::Get => PeerRequest::Get { group, key },
            Kind::Remove => PeerRequest::Remove { group, key },
            Kind::Purge => PeerRequest::Purge { group },
            Kind::Unrouted => {
                return Err(Reply::NoRoute(format!(
                    "invalid path for POST: the peer endpoint takes POST only at <group>/{REMOVE_KEYS_PATH}, <group>/{PURGE_PATH}, <group>/{GET_MANY_PATH} and <group>/{HAND_OVER_PATH}"
                )))
            }
            Kind::Set => {
                // The key and value come from the body (the key there is
                // unambiguous, whatever the path's escaping).
                let body_len = body.len();
                let request = SetRequest::decode(body).map_err(|error| {
                    Reply::BadRequest(format!(
                        "bad request: the body is not a SetRequest: {error}"
                    ))
                })?;
                if let Some(other) = request.group.as_deref().filter(|g| **g != *group) {
                    return Err(Reply::BadRequest(format!(
                        "bad request: the SetRequest is for group {other:?} but was sent to group {group:?}"
                    )));
                }
                let Some(key) = request.key else {
                    return Err(Reply::BadRequest(
                        "bad request: the SetRequest has no key (field 2)".to_owned(),
                    ));
                };
                if key.len() > parsing.max_key_bytes {
                    return Err(key_too_long(key.len(), parsing));
                }
                // The value is a slice of the body: kept as it is only when
                // it is nearly all of it.
                let room = key.len() + group.len() + SET_FRAMING;
                let bytes = kept_slice(request.value.unwrap_or_default(), body_len, room);
                let value = Value::new(bytes).with_expiry_unix_nanos(request.expire.unwrap_or(0));
                PeerRequest::Set {
                    group,
                    key: Cow::Owned(key),
                    value,
                }
            }
            Kind::GetMany => {
                let request =
                    GetManyRequest::decode_bounded(&body, MAX_GET_MANY_KEYS, parsing.max_key_bytes)
                        .map_err(|error| match error {
                            BatchDecodeError::TooMany { .. } => Reply::TooLarge(format!(
                                "batch too large: {error} (the limit of the peer protocol)"
                            )),
                            BatchDecodeError::KeyTooLong { len, .. } => key_too_long(len, parsing),
                            error => Reply::BadRequest(format!(
                                "bad request: the body is not a GetManyRequest: {error}"
                            )),
                        })?;
                PeerRequest::GetMany {
                    group,
                    keys: Cow::Owned(request.keys),
                }
            }
            Kind::HandOver => {
                let body_len = body.len();
                let request = HandOverRequest::decode_bounded(body, MAX_HAND_OVER_ITEMS)
                    .map_err(|error| match error {
                        BatchDecodeError::TooMany { .. } => Reply::TooLarge(format!(
                            "handoff too large: {error} (the limit of the peer protocol)"
                        )),
                        error => Reply::BadRequest(format!(
                            "bad request: the body is not a HandOverRequest: {error}"
                        )),
                    })?;
                let mut items = Vec::with_capacity(request.items.len());
                for item in request.items {
                    let Some(key) = item.key else {
                        return Err(Reply::BadRequest(
                            "bad request: a handed-over value has no key (field 2)".to_owned(),
                        ));
                    };
                    if key.len() > parsing.max_key_bytes {
                        return Err(key_too_long(key.len(), parsing));
                    }
                    // A slice of the body only when it is nearly all of it:
                    // a small value must not keep a large body alive.
                    let from_len = request.from.as_ref().map_or(0, String::len);
                    let room = key.len() + group.len() + from_len + SET_FRAMING;
                    let bytes = kept_slice(item.value.unwrap_or_default(), body_len, room);
                    let value = Value::owned_keyed(key.as_bytes(), bytes, item.expire.unwrap_or(0));
                    items.push((key, value));
                }
                let from = request.from.unwrap_or_default();
                PeerRequest::HandOver {
                    group,
                    from: Cow::Owned(from),
                    items: Cow::Owned(items),
                }
            }
            Kind::RemoveKeys => {
                let request = RemoveKeysRequest::from_json(&body, parsing.max_remove_keys)
                    .map_err(|error| match error {
                        RemoveKeysError::TooManyKeys { .. } => Reply::TooLarge(error.to_string()),
                        error => Reply::BadRequest(format!("bad request: {error}")),
                    })?;
                if let Some(other) = request.group.as_deref().filter(|g| **g != *group) {
                    return Err(Reply::BadRequest(format!(
                        "bad request: the RemoveKeysRequest is for group {other:?} but was sent to group {group:?}"
                    )));
                }
                if let Some(long) = request
                    .keys
                    .iter()
                    .find(|k| k.len() > parsing.max_key_bytes)
                {
                    return Err(key_too_long(long.len(), parsing));
                }
                PeerRequest::RemoveKeys {
                    group,
                    keys: Cow::Owned(request.keys),
                }
            }
        })
    }
}

fn key_too_long(len: usize, parsing: &Parsing) -> Reply {
    Reply::TooLong(format!(
        "key too long ({len} bytes): the limit is {} bytes",
        parsing.max_key_bytes
    ))
}

#[cfg(test)]
mod tests;
