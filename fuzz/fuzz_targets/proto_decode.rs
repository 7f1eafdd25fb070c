//! Fuzz target `proto_decode`: the protobuf messages of the peer protocol,
//! decoded from any bytes.
//!
//! A server decodes a `SetRequest` from a peer's `PUT` body, a client decodes
//! a `GetResponse` from a peer's answer; both come off the network. prost
//! must answer every input with a message or a `DecodeError`, never a panic
//! or an allocation sized by a length prefix it has not seen the bytes of.
//!
//! A successful decode must also be stable: the message, encoded and decoded
//! again, is the same message, and encoding it twice gives the same bytes.
//! (The input itself need not come back: prost drops unknown fields and keeps
//! the last of repeated scalars.) `GetResponse::minute_qps` is an `f64`, so a
//! NaN would never equal itself; it is compared by its bits.

#![no_main]

use libfuzzer_sys::fuzz_target;
use peercache::proto::{GetRequest, GetResponse, SetRequest};
use prost::Message;

fuzz_target!(|data: &[u8]| {
    if let Ok(first) = GetRequest::decode(data) {
        let second = round_trip(&first);
        assert_eq!(first, second);
    }
    if let Ok(first) = SetRequest::decode(data) {
        let second = round_trip(&first);
        assert_eq!(first, second);
    }
    if let Ok(first) = GetResponse::decode(data) {
        let second = round_trip(&first);
        assert_eq!(first.value, second.value);
        assert_eq!(first.expire, second.expire);
        assert_eq!(
            first.minute_qps.map(f64::to_bits),
            second.minute_qps.map(f64::to_bits)
        );
    }
});

/// Encodes `message`, decodes it back, and checks that the second encoding
/// is byte for byte the first.
fn round_trip<M: Message + Default>(message: &M) -> M {
    let bytes = message.encode_to_vec();
    assert_eq!(bytes.len(), message.encoded_len());
    let again = M::decode(bytes.as_slice()).expect("prost's own encoding decodes");
    assert_eq!(again.encode_to_vec(), bytes, "encoding is not stable");
    again
}
