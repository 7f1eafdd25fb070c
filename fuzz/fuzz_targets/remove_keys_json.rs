//! Fuzz target `remove_keys_json`: groupcache-go v3's remove-keys body,
//! parsed from any bytes.
//!
//! The peer endpoint parses the JSON body of `POST <group>/_remove-keys/`
//! with `RemoveKeysRequest::from_json`, which stops at the key cap
//! (`HttpOptions::max_remove_keys`). Every input must give a request or an
//! error, never a panic (deep nesting included: serde_json's recursion
//! limit is what stands between a body and the stack). What the bounded
//! parser accepts, serde's derived parser reads the same, and never holds
//! more keys than the cap. A request that parses must serialize to JSON
//! that parses back to the same request, so what peercache sends is what it
//! reads.

#![no_main]

use libfuzzer_sys::fuzz_target;
use peercache::proto::{RemoveKeysError, RemoveKeysRequest};

/// A small cap, so that fuzzed inputs reach it.
const CAP: usize = 3;

fuzz_target!(|data: &[u8]| {
    let derived = serde_json::from_slice::<RemoveKeysRequest>(data);
    match RemoveKeysRequest::from_json(data, CAP) {
        Ok(request) => {
            assert!(request.keys.len() <= CAP);
            let derived = derived
                .as_ref()
                .expect("the bounded parser accepted what serde refuses");
            assert_eq!(*derived, request);
        }
        Err(RemoveKeysError::TooManyKeys { .. }) => {
            if let Ok(derived) = &derived {
                assert!(derived.keys.len() > CAP);
            }
        }
        Err(_) => {}
    }
    if let Ok(request) = derived {
        let json = serde_json::to_vec(&request).expect("a request always serializes");
        let back: RemoveKeysRequest = serde_json::from_slice(&json).unwrap_or_else(|e| {
            panic!(
                "{:?} does not parse back: {e}",
                String::from_utf8_lossy(&json)
            )
        });
        assert_eq!(back, request);
    }
});
