//! Fuzz target `get_many`: the batch get's bodies, decoded from any bytes
//! by the bounded decoders the peer endpoint and the client use
//! (`GetManyRequest::decode_bounded`, `GetManyResponse::decode_bounded`),
//! beside prost's derived decoder.
//!
//! Both bodies come off the network: a request from any client that can
//! reach the peer endpoint, an answer from whatever answers at a peer's
//! address. The decoders must answer every input with a message or a typed
//! error, never a panic, and never hold more keys or items than their cap
//! (3 here), whatever the input's length prefixes say.
//!
//! What the bounded decoders accept, prost reads equal; and a request or
//! answer prost reads with at most the cap of elements, the bounded
//! decoders accept (so the caps refuse nothing else).

#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use peercache::proto::{GetManyRequest, GetManyResponse};
use prost::Message;

/// The cap of keys and items in this target.
const CAP: usize = 3;
/// The cap of a key's length in this target.
const KEY_BYTES: usize = 16;

fuzz_target!(|data: &[u8]| {
    let prost_request = GetManyRequest::decode(data);
    match GetManyRequest::decode_bounded(data, CAP, KEY_BYTES) {
        Ok(request) => {
            assert!(request.keys.len() <= CAP);
            assert!(request.keys.iter().all(|k| k.len() <= KEY_BYTES));
            assert_eq!(Ok(&request), prost_request.as_ref().map_err(|_| ()));
            let again = GetManyRequest::decode(request.encode_to_vec().as_slice()).unwrap();
            assert_eq!(again, request);
        }
        Err(_) => {
            if let Ok(request) = &prost_request {
                assert!(
                    request.keys.len() > CAP || request.keys.iter().any(|k| k.len() > KEY_BYTES),
                    "prost reads {request:?}, within the caps, but the bounded decoder refused it"
                );
            }
        }
    }
    let prost_answer = GetManyResponse::decode(data);
    match GetManyResponse::decode_bounded(Bytes::copy_from_slice(data), CAP) {
        Ok(answer) => {
            assert!(answer.items.len() <= CAP);
            assert_eq!(Ok(&answer), prost_answer.as_ref().map_err(|_| ()));
        }
        Err(_) => {
            if let Ok(answer) = &prost_answer {
                assert!(
                    answer.items.len() > CAP,
                    "prost reads {answer:?}, within the cap, but the bounded decoder refused it"
                );
            }
        }
    }
});
