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

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

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
}
