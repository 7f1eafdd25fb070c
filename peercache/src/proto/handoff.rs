//! peercache's handoff: `POST <base><group>/_hand-over/` with a
//! [`HandOverRequest`], the values a leaving node sends to their new
//! owners, answered with a [`HandOverResponse`] saying how many were kept.
//! Only peercache nodes send or answer it.
//!
//! Decoded by hand over prost's primitives, counting items as it goes (as
//! `batch.rs` does, and for the same reason): an empty `SetRequest` is two
//! bytes on the wire and about a hundred once decoded.

use super::batch::BatchDecodeError;
use super::SetRequest;
use bytes::{Buf, Bytes};
use prost::encoding::{decode_key, decode_varint, skip_field, DecodeContext, WireType};
use prost::Message;

/// Longest `from` accepted: a base URL.
const MAX_FROM_BYTES: usize = 2048;

/// Values a leaving node hands over, all of one group (named by the path).
///
/// ```
/// use peercache::proto::{HandOverRequest, SetRequest};
/// use prost::Message;
///
/// let item = SetRequest { key: Some("red".into()), value: Some("#FF0000".into()), ..Default::default() };
/// let request = HandOverRequest { from: Some("http://10.0.0.1:8080".into()), items: vec![item] };
/// let wire = bytes::Bytes::from(request.encode_to_vec());
/// assert_eq!(HandOverRequest::decode_bounded(wire.clone(), 10).unwrap(), request);
/// assert!(HandOverRequest::decode_bounded(wire, 0).is_err()); // over 0 items
/// ```
#[derive(Clone, PartialEq, prost::Message)]
pub struct HandOverRequest {
    /// The base URL of the node that leaves.
    #[prost(string, optional, tag = "2")]
    pub from: Option<String>,
    /// The values: each a key, a value and its expiry.
    #[prost(message, repeated, tag = "1")]
    pub items: Vec<SetRequest>,
}

/// The answer to a [`HandOverRequest`].
#[derive(Clone, PartialEq, prost::Message)]
pub struct HandOverResponse {
    /// How many of the values the node kept (it owns their keys).
    #[prost(uint64, optional, tag = "1")]
    pub kept: Option<u64>,
}

fn malformed(error: impl std::fmt::Display) -> BatchDecodeError {
    BatchDecodeError::Malformed(error.to_string())
}

impl HandOverRequest {
    /// Decodes a request of at most `max_items` values; the values are
    /// slices of `body`.
    pub fn decode_bounded(mut body: Bytes, max_items: usize) -> Result<Self, BatchDecodeError> {
        let mut request = HandOverRequest::default();
        while body.has_remaining() {
            let (tag, wire_type) = decode_key(&mut body).map_err(malformed)?;
            if !matches!(tag, 1 | 2) {
                skip_field(wire_type, tag, &mut body, DecodeContext::default())
                    .map_err(malformed)?;
                continue;
            }
            if wire_type != WireType::LengthDelimited {
                return Err(malformed(format!(
                    "field {tag} has wire type {wire_type:?}, not length-delimited"
                )));
            }
            let len = usize::try_from(decode_varint(&mut body).map_err(malformed)?)
                .ok()
                .filter(|len| *len <= body.remaining())
                .ok_or_else(|| malformed("a field runs past the end of the body"))?;
            let field = body.split_to(len);
            if tag == 2 {
                if len > MAX_FROM_BYTES {
                    return Err(malformed("the sender's URL is too long"));
                }
                let from =
                    std::str::from_utf8(&field).map_err(|_| malformed("from is not UTF-8"))?;
                request.from = Some(from.to_owned());
                continue;
            }
            if request.items.len() == max_items {
                return Err(BatchDecodeError::TooMany { limit: max_items });
            }
            request
                .items
                .push(SetRequest::decode(field).map_err(malformed)?);
        }
        Ok(request)
    }
}
