//! peercache's batch get: `POST <base><group>/_get-many/` with a
//! [`GetManyRequest`], answered with a [`GetManyResponse`] holding one
//! [`GetManyItem`] per key, in the request's order. Only peercache nodes
//! send or answer it (a Go node would take the path for a get of a key).
//!
//! Both directions are decoded by hand over prost's primitives, counting
//! as they go: a repeated field costs 24 bytes or more per element once
//! decoded, so a 64 MiB body of empty keys would cost gigabytes before any
//! limit could be checked. These decoders stop at the limit instead.

use bytes::{Buf, Bytes};
use prost::encoding::{
    decode_key, decode_varint, encode_key, encode_varint, encoded_len_varint, skip_field,
    DecodeContext, WireType,
};
use prost::Message;

/// A batch get: the keys, all of one group (named by the path).
///
/// ```
/// use peercache::proto::GetManyRequest;
/// use prost::Message;
///
/// let request = GetManyRequest { keys: vec!["red".into(), "green".into()] };
/// let wire = request.encode_to_vec();
/// assert_eq!(GetManyRequest::decode_bounded(&wire, 10, 64).unwrap(), request);
/// assert!(GetManyRequest::decode_bounded(&wire, 1, 64).is_err()); // over 1 key
/// ```
#[derive(Clone, PartialEq, prost::Message)]
pub struct GetManyRequest {
    /// The keys, distinct.
    #[prost(string, repeated, tag = "1")]
    pub keys: Vec<String>,
}

/// The answer to a [`GetManyRequest`]: one item per key, in its order.
#[derive(Clone, PartialEq, prost::Message)]
pub struct GetManyResponse {
    /// One per key of the request.
    #[prost(message, repeated, tag = "1")]
    pub items: Vec<GetManyItem>,
}

/// One key's answer in a [`GetManyResponse`].
#[derive(Clone, PartialEq, prost::Message)]
pub struct GetManyItem {
    /// What the owner found ([`ItemStatus`]).
    #[prost(enumeration = "ItemStatus", tag = "1")]
    pub status: i32,
    /// The value, when found.
    #[prost(bytes = "bytes", optional, tag = "2")]
    pub value: Option<Bytes>,
    /// The value's expiry in Unix nanoseconds; absent or 0 means none. On a
    /// not-found item: until when the owner caches the not-found.
    #[prost(int64, optional, tag = "3")]
    pub expire: Option<i64>,
    /// Why the owner's loader failed, when it did.
    #[prost(string, optional, tag = "4")]
    pub error: Option<String>,
}

/// What the owner found for one key of a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum ItemStatus {
    /// The value is in the item.
    Found = 0,
    /// The owner's loader says the key does not exist.
    NotFound = 1,
    /// The owner's loader failed; the item says why.
    Failed = 2,
    /// Left out to keep the answer within the owner's body limit: ask for
    /// the key alone.
    Skipped = 3,
}

/// Why a batch body was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchDecodeError {
    /// More keys (or items) than allowed.
    #[error("more than {limit} keys in one batch")]
    TooMany {
        /// The limit.
        limit: usize,
    },
    /// A key longer than allowed.
    #[error("a key of {len} bytes: the limit is {limit} bytes")]
    KeyTooLong {
        /// The key's length.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// Not a valid message.
    #[error("{0}")]
    Malformed(String),
}

fn malformed(error: impl std::fmt::Display) -> BatchDecodeError {
    BatchDecodeError::Malformed(error.to_string())
}

/// Walks the top-level fields of `body`: each element of field 1
/// (length-delimited) is handed to `element` with its length, which it
/// must consume, after checking that fewer than `max` came before; other
/// fields are skipped, as prost skips them.
fn elements<B: Buf>(
    body: &mut B,
    max: usize,
    mut element: impl FnMut(&mut B, usize) -> Result<(), BatchDecodeError>,
) -> Result<(), BatchDecodeError> {
    let mut count = 0;
    while body.has_remaining() {
        let (tag, wire_type) = decode_key(body).map_err(malformed)?;
        if tag != 1 {
            skip_field(wire_type, tag, body, DecodeContext::default()).map_err(malformed)?;
            continue;
        }
        if wire_type != WireType::LengthDelimited {
            return Err(malformed(format!(
                "field 1 has wire type {wire_type:?}, not length-delimited"
            )));
        }
        let len = decode_varint(body).map_err(malformed)?;
        let len = usize::try_from(len)
            .ok()
            .filter(|len| *len <= body.remaining())
            .ok_or_else(|| malformed("an element runs past the end of the body"))?;
        if count == max {
            return Err(BatchDecodeError::TooMany { limit: max });
        }
        count += 1;
        element(body, len)?;
    }
    Ok(())
}

impl GetManyRequest {
    /// Decodes a request of at most `max_keys` keys of at most
    /// `max_key_bytes` each, stopping at the first one over.
    pub fn decode_bounded(
        mut body: &[u8],
        max_keys: usize,
        max_key_bytes: usize,
    ) -> Result<Self, BatchDecodeError> {
        let mut keys = Vec::new();
        elements(&mut body, max_keys, |body, len| {
            if len > max_key_bytes {
                return Err(BatchDecodeError::KeyTooLong {
                    len,
                    limit: max_key_bytes,
                });
            }
            let key =
                std::str::from_utf8(&body[..len]).map_err(|_| malformed("a key is not UTF-8"))?;
            keys.push(key.to_owned());
            body.advance(len);
            Ok(())
        })?;
        Ok(GetManyRequest { keys })
    }
}

impl GetManyResponse {
    /// Decodes an answer of at most `max_items` items (the keys asked);
    /// values are slices of `body`.
    pub fn decode_bounded(mut body: Bytes, max_items: usize) -> Result<Self, BatchDecodeError> {
        let mut items = Vec::new();
        elements(&mut body, max_items, |body, len| {
            items.push(GetManyItem::decode(body.split_to(len)).map_err(malformed)?);
            Ok(())
        })?;
        Ok(GetManyResponse { items })
    }
}

/// One key's answer, borrowed, for [`encode_get_many_response`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ItemRef<'a> {
    Found {
        value: &'a [u8],
        expire: i64,
    },
    /// Not found; `until`: when the owner's cached not-found expires (Unix
    /// nanoseconds, 0: not cached), for the asker to cache it as long.
    NotFound {
        until: i64,
    },
    Failed(&'a str),
    Skipped,
}

/// The wire bytes of a [`GetManyResponse`] of `items`: what prost encodes
/// for it, written from borrowed values (as `encode_get_response` is).
pub(crate) fn encode_get_many_response(items: &[ItemRef<'_>]) -> Vec<u8> {
    let item_len = |item: &ItemRef<'_>| -> usize {
        match *item {
            ItemRef::Found { value, expire } => {
                1 + encoded_len_varint(value.len() as u64) + value.len() + expire_len(expire)
            }
            ItemRef::NotFound { until } => 2 + expire_len(until),
            ItemRef::Skipped => 2,
            ItemRef::Failed(error) => 2 + 1 + encoded_len_varint(error.len() as u64) + error.len(),
        }
    };
    let total: usize = items
        .iter()
        .map(|item| {
            let len = item_len(item);
            1 + encoded_len_varint(len as u64) + len
        })
        .sum();
    let mut buf = Vec::with_capacity(total);
    for item in items {
        encode_key(1, WireType::LengthDelimited, &mut buf);
        encode_varint(item_len(item) as u64, &mut buf);
        let status = |status: ItemStatus, buf: &mut Vec<u8>| {
            encode_key(1, WireType::Varint, buf);
            encode_varint(status as u64, buf);
        };
        match *item {
            ItemRef::Found { value, expire } => {
                encode_key(2, WireType::LengthDelimited, &mut buf);
                encode_varint(value.len() as u64, &mut buf);
                buf.extend_from_slice(value);
                encode_expire(expire, &mut buf);
            }
            ItemRef::NotFound { until } => {
                status(ItemStatus::NotFound, &mut buf);
                encode_expire(until, &mut buf);
            }
            ItemRef::Skipped => status(ItemStatus::Skipped, &mut buf),
            ItemRef::Failed(error) => {
                status(ItemStatus::Failed, &mut buf);
                encode_key(4, WireType::LengthDelimited, &mut buf);
                encode_varint(error.len() as u64, &mut buf);
                buf.extend_from_slice(error.as_bytes());
            }
        }
    }
    debug_assert_eq!(buf.len(), total);
    buf
}

/// The encoded length of an item's `expire` (absent when 0).
fn expire_len(expire: i64) -> usize {
    if expire != 0 {
        1 + encoded_len_varint(expire as u64)
    } else {
        0
    }
}

/// An item's `expire`, field 3, unless 0.
fn encode_expire(expire: i64, buf: &mut Vec<u8>) {
    if expire != 0 {
        encode_key(3, WireType::Varint, buf);
        encode_varint(expire as u64, buf);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn item() -> impl Strategy<Value = (u8, Vec<u8>, i64, String)> {
        (
            0u8..4,
            proptest::collection::vec(any::<u8>(), 0..300),
            any::<i64>(),
            ".{0,40}",
        )
    }

    proptest! {
        #[test]
        fn hand_encoding_is_prost_encoding(items in proptest::collection::vec(item(), 0..20)) {
            let refs: Vec<ItemRef<'_>> = items.iter().map(|(kind, value, expire, error)| match kind {
                0 => ItemRef::Found { value, expire: *expire },
                1 => ItemRef::NotFound { until: *expire },
                2 => ItemRef::Failed(error),
                _ => ItemRef::Skipped,
            }).collect();
            let prost = GetManyResponse {
                items: refs.iter().map(|item| match *item {
                    ItemRef::Found { value, expire } => GetManyItem {
                        value: Some(Bytes::copy_from_slice(value)),
                        expire: (expire != 0).then_some(expire),
                        ..GetManyItem::default()
                    },
                    ItemRef::NotFound { until } => GetManyItem {
                        status: ItemStatus::NotFound as i32,
                        expire: (until != 0).then_some(until),
                        ..GetManyItem::default()
                    },
                    ItemRef::Skipped => GetManyItem { status: ItemStatus::Skipped as i32, ..GetManyItem::default() },
                    ItemRef::Failed(error) => GetManyItem {
                        status: ItemStatus::Failed as i32,
                        error: Some(error.to_owned()),
                        ..GetManyItem::default()
                    },
                }).collect(),
            };
            let wire = encode_get_many_response(&refs);
            prop_assert_eq!(&wire, &prost.encode_to_vec());
            let back = GetManyResponse::decode_bounded(Bytes::from(wire), refs.len()).unwrap();
            prop_assert_eq!(back, prost);
        }

        #[test]
        fn bounded_request_decoding_is_prost_decoding(keys in proptest::collection::vec(".{0,30}", 0..20)) {
            let request = GetManyRequest { keys };
            let wire = request.encode_to_vec();
            prop_assert_eq!(GetManyRequest::decode_bounded(&wire, 20, 1 << 10).unwrap(), request);
        }

        #[test]
        fn arbitrary_bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = GetManyRequest::decode_bounded(&body, 5, 8);
            let _ = GetManyResponse::decode_bounded(Bytes::from(body), 5);
        }
    }

    #[test]
    fn limits_stop_decoding() {
        let wire = GetManyRequest {
            keys: vec!["a".into(); 3],
        }
        .encode_to_vec();
        assert_eq!(
            GetManyRequest::decode_bounded(&wire, 2, 8),
            Err(BatchDecodeError::TooMany { limit: 2 })
        );
        let long = GetManyRequest {
            keys: vec!["abcdefghij".into()],
        }
        .encode_to_vec();
        assert!(matches!(
            GetManyRequest::decode_bounded(&long, 2, 8),
            Err(BatchDecodeError::KeyTooLong { len: 10, limit: 8 })
        ));
        let answer = encode_get_many_response(&[ItemRef::NotFound { until: 0 }; 3]);
        assert!(GetManyResponse::decode_bounded(Bytes::from(answer), 2).is_err());
        assert!(GetManyRequest::decode_bounded(&[0x0a, 0x05, b'a'], 2, 8).is_err());
        assert!(GetManyRequest::decode_bounded(&[0x0a, 0x01, 0xff], 2, 8).is_err());
    }
}
