//! The protobuf messages of the groupcache peer protocol.
//!
//! Declared with prost's derive macros, so no `protoc` and no build script are
//! needed. The field numbers and proto2 presence match groupcache.proto of
//! golang/groupcache and mailgun/groupcache: `value` is an optional field, so
//! an empty value is encoded as field 1 with length 0 (`0a 00`), exactly as
//! Go encodes it.
//!
//! The messages are `prost` messages (encode and decode with
//! [`prost::Message`]):
//!
//! ```
//! use bytes::Bytes;
//! use peercache::proto::GetResponse;
//! use prost::Message;
//!
//! // What a peer answers to `GET /_groupcache/colors/red`.
//! let answer = GetResponse {
//!     value: Some(Bytes::from_static(b"#FF0000")),
//!     expire: Some(1_700_000_000_000_000_000), // Unix nanoseconds (mailgun)
//!     ..GetResponse::default()
//! };
//! let wire = answer.encode_to_vec();
//! assert_eq!(GetResponse::decode(wire.as_slice())?, answer);
//!
//! // An empty value is still sent, as Go sends it.
//! let empty = GetResponse { value: Some(Bytes::new()), ..GetResponse::default() };
//! assert_eq!(empty.encode_to_vec(), [0x0a, 0x00]);
//! # Ok::<(), prost::DecodeError>(())
//! ```

use bytes::Bytes;

mod batch;
mod handoff;

pub(crate) use batch::{encode_get_many_response, ItemRef};
pub use batch::{BatchDecodeError, GetManyItem, GetManyRequest, GetManyResponse, ItemStatus};
pub use handoff::{HandOverRequest, HandOverResponse};

/// A request for one key (part of groupcache.proto; Go's HTTP transport puts
/// group and key in the URL instead and never sends it).
#[derive(Clone, PartialEq, prost::Message)]
pub struct GetRequest {
    /// The group.
    #[prost(string, required, tag = "1")]
    pub group: String,
    /// The key. Go keys are not guaranteed UTF-8; this side only sends UTF-8.
    #[prost(string, required, tag = "2")]
    pub key: String,
}

/// The answer to a peer's get: the value and, in mailgun's version, its
/// expiry.
#[derive(Clone, PartialEq, prost::Message)]
pub struct GetResponse {
    /// The value; always present in answers from Go and from peercache.
    #[prost(bytes = "bytes", optional, tag = "1")]
    pub value: Option<Bytes>,
    /// Never filled in by any implementation; kept for wire compatibility.
    #[prost(double, optional, tag = "2")]
    pub minute_qps: Option<f64>,
    /// Expiry in Unix nanoseconds; absent or 0 means none (mailgun).
    #[prost(int64, optional, tag = "3")]
    pub expire: Option<i64>,
}

/// mailgun's PUT body: store `value` under `key` at the owner.
///
/// ```
/// use bytes::Bytes;
/// use peercache::proto::SetRequest;
/// use prost::Message;
///
/// let body = SetRequest {
///     group: Some("colors".into()),
///     key: Some("red".into()),
///     value: Some(Bytes::from_static(b"#FF0000")),
///     expire: None, // no expiry
/// }
/// .encode_to_vec();
/// let back = SetRequest::decode(body.as_slice()).unwrap();
/// assert_eq!(back.key.as_deref(), Some("red"));
/// ```
///
/// `group` and `key` are `required` in groupcache.proto; they are declared
/// optional here (the encoding is the same) so that a body without a key is
/// told apart from one with an empty key: prost does not check `required`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SetRequest {
    /// The group.
    #[prost(string, optional, tag = "1")]
    pub group: Option<String>,
    /// The key.
    #[prost(string, optional, tag = "2")]
    pub key: Option<String>,
    /// The new value.
    #[prost(bytes = "bytes", optional, tag = "3")]
    pub value: Option<Bytes>,
    /// Expiry in Unix nanoseconds; absent or 0 means none.
    #[prost(int64, optional, tag = "4")]
    pub expire: Option<i64>,
}

/// groupcache-go v3's remove-keys request. v3 sends it as JSON (Go's
/// `encoding/json` of the generated struct: `{"group":"g","keys":["a","b"]}`),
/// not as protobuf, so it is a serde type here; its protobuf tags are kept
/// for reference.
///
/// ```
/// use peercache::proto::RemoveKeysRequest;
///
/// let request = RemoveKeysRequest { group: Some("g".into()), keys: vec!["a".into(), "b".into()] };
/// let json = serde_json::to_string(&request).unwrap();
/// assert_eq!(json, r#"{"group":"g","keys":["a","b"]}"#);
/// ```
#[derive(Clone, PartialEq, Eq, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct RemoveKeysRequest {
    /// The group (optional on the wire: the path names it too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// The keys to remove.
    #[serde(default)]
    pub keys: Vec<String>,
}

/// Why a remove-keys body was refused by [`RemoveKeysRequest::from_json`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RemoveKeysError {
    /// The list holds more keys than the limit (parsing stopped there).
    #[error("more than {max} keys in one remove-keys request (the max remove keys limit): send them in several requests")]
    TooManyKeys {
        /// The limit.
        max: usize,
    },
    /// The body is not a JSON `{"group":..,"keys":[..]}`.
    #[error("the body is not a JSON RemoveKeysRequest ({{\"group\":..,\"keys\":[..]}}): {0}")]
    Json(serde_json::Error),
}

impl RemoveKeysRequest {
    /// Parses a remove-keys body holding at most `max_keys` keys. Parsing
    /// stops at the first key over the limit, so a body of millions of
    /// empty keys costs no more than `max_keys` strings.
    ///
    /// ```
    /// use peercache::proto::{RemoveKeysError, RemoveKeysRequest};
    ///
    /// let request = RemoveKeysRequest::from_json(br#"{"group":"g","keys":["a","b"]}"#, 2).unwrap();
    /// assert_eq!(request.keys, ["a", "b"]);
    /// let refused = RemoveKeysRequest::from_json(br#"{"keys":["a","b","c"]}"#, 2);
    /// assert!(matches!(refused, Err(RemoveKeysError::TooManyKeys { max: 2 })));
    /// ```
    pub fn from_json(body: &[u8], max_keys: usize) -> Result<Self, RemoveKeysError> {
        use serde::de::DeserializeSeed;
        let over = std::cell::Cell::new(false);
        let mut reader = serde_json::Deserializer::from_slice(body);
        let parsed = bounded::Request {
            max_keys,
            over: &over,
        }
        .deserialize(&mut reader)
        .and_then(|request| reader.end().map(|()| request));
        match parsed {
            Ok(request) => Ok(request),
            Err(_) if over.get() => Err(RemoveKeysError::TooManyKeys { max: max_keys }),
            Err(error) => Err(RemoveKeysError::Json(error)),
        }
    }
}

/// A serde visitor for [`RemoveKeysRequest`] that stops at a key count.
mod bounded {
    use super::RemoveKeysRequest;
    use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
    use std::cell::Cell;
    use std::fmt;

    /// The whole request; `over` is set when the key limit stopped it.
    pub(super) struct Request<'a> {
        pub(super) max_keys: usize,
        pub(super) over: &'a Cell<bool>,
    }

    struct Keys<'a>(&'a Request<'a>);

    impl<'de> DeserializeSeed<'de> for Request<'_> {
        type Value = RemoveKeysRequest;

        fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_map(self)
        }
    }

    impl<'de> Visitor<'de> for Request<'_> {
        type Value = RemoveKeysRequest;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an object with \"group\" and \"keys\"")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut request = RemoveKeysRequest::default();
            let (mut group_seen, mut keys_seen) = (false, false);
            while let Some(field) = map.next_key::<String>()? {
                match field.as_str() {
                    "group" if group_seen => return Err(de::Error::duplicate_field("group")),
                    "keys" if keys_seen => return Err(de::Error::duplicate_field("keys")),
                    "group" => {
                        group_seen = true;
                        request.group = map.next_value()?;
                    }
                    "keys" => {
                        keys_seen = true;
                        request.keys = map.next_value_seed(Keys(&self))?;
                    }
                    _ => {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
            }
            Ok(request)
        }
    }

    impl<'de> DeserializeSeed<'de> for Keys<'_> {
        type Value = Vec<String>;

        fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_seq(self)
        }
    }

    impl<'de> Visitor<'de> for Keys<'_> {
        type Value = Vec<String>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a list of keys")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let max = self.0.max_keys;
            let mut keys = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(max).min(1024));
            while let Some(key) = seq.next_element::<String>()? {
                if keys.len() == max {
                    self.0.over.set(true);
                    return Err(de::Error::custom("too many keys"));
                }
                keys.push(key);
            }
            Ok(keys)
        }
    }
}

/// The wire bytes of the [`GetResponse`] a node answers a get with:
/// `value` and, unless it is 0, `expire`; byte for byte what prost encodes
/// for that message, written from a borrowed slice, so that answering from
/// the cache makes no `Bytes` handle for the value (a small value has none
/// to lend) and the buffer is sized once.
pub(crate) fn encode_get_response(value: &[u8], expire: i64) -> Vec<u8> {
    use prost::encoding::{encode_key, encode_varint, encoded_len_varint, WireType};
    let len = value.len() as u64;
    let expire_len = if expire != 0 {
        1 + encoded_len_varint(expire as u64)
    } else {
        0
    };
    let mut buf = Vec::with_capacity(1 + encoded_len_varint(len) + value.len() + expire_len);
    encode_key(1, WireType::LengthDelimited, &mut buf);
    encode_varint(len, &mut buf);
    buf.extend_from_slice(value);
    if expire != 0 {
        encode_key(3, WireType::Varint, &mut buf);
        encode_varint(expire as u64, &mut buf);
    }
    buf
}

/// [`encode_get_response`] for a value in a buffer of its own, as three
/// buffers sent one after the other: the framing before the value, the
/// value itself (shared, not copied), and the expiry field (empty for 0).
pub(crate) fn get_response_parts(value: Bytes, expire: i64) -> [Bytes; 3] {
    use prost::encoding::{encode_key, encode_varint, WireType};
    let mut head = Vec::with_capacity(11);
    encode_key(1, WireType::LengthDelimited, &mut head);
    encode_varint(value.len() as u64, &mut head);
    let mut tail = Vec::new();
    if expire != 0 {
        encode_key(3, WireType::Varint, &mut tail);
        encode_varint(expire as u64, &mut tail);
    }
    [Bytes::from(head), value, Bytes::from(tail)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn bounded_remove_keys_parse_as_serde_does_and_stop_at_the_limit() {
        for body in [
            r#"{"group":"g","keys":["a","b"]}"#,
            r#"{"keys":[],"extra":{"x":[1,2]}}"#,
            r#"{"group":null}"#,
            r#"{}"#,
        ] {
            let bounded = RemoveKeysRequest::from_json(body.as_bytes(), 2).unwrap();
            let plain: RemoveKeysRequest = serde_json::from_str(body).unwrap();
            assert_eq!(bounded, plain, "{body}");
        }
        for bad in [
            r#"{"keys":["a"],"keys":[]}"#,
            r#"{"keys":"a"}"#,
            "[",
            r#"{} x"#,
        ] {
            assert!(
                matches!(
                    RemoveKeysRequest::from_json(bad.as_bytes(), 2),
                    Err(RemoveKeysError::Json(_))
                ),
                "{bad}"
            );
        }
        // A million empty keys: refused at the third.
        let mut body = String::from(r#"{"keys":["#);
        body.push_str(&vec![r#""""#; 1_000_000].join(","));
        body.push_str("]}");
        let refused = RemoveKeysRequest::from_json(body.as_bytes(), 2).unwrap_err();
        assert!(matches!(refused, RemoveKeysError::TooManyKeys { max: 2 }));
        assert!(refused.to_string().contains("max remove keys"), "{refused}");
    }

    #[test]
    fn empty_value_is_encoded_as_go_does() {
        let response = GetResponse {
            value: Some(Bytes::new()),
            ..Default::default()
        };
        assert_eq!(response.encode_to_vec(), [0x0a, 0x00]);
    }

    #[test]
    fn expire_round_trips() {
        let response = GetResponse {
            value: Some(Bytes::from_static(b"v")),
            minute_qps: None,
            expire: Some(1_700_000_000_000_000_000),
        };
        let bytes = response.encode_to_vec();
        assert_eq!(GetResponse::decode(bytes.as_slice()).unwrap(), response);
    }

    proptest::proptest! {
        /// The hand-written encoding is prost's, for any value and expiry.
        #[test]
        fn get_response_encodes_as_prost_does(
            value in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
            expire in proptest::prelude::any::<i64>(),
        ) {
            let message = GetResponse {
                value: Some(Bytes::from(value.clone())),
                minute_qps: None,
                expire: (expire != 0).then_some(expire),
            };
            proptest::prop_assert_eq!(encode_get_response(&value, expire), message.encode_to_vec());
            let parts = get_response_parts(Bytes::from(value), expire).concat();
            proptest::prop_assert_eq!(parts, message.encode_to_vec());
        }
    }
}
