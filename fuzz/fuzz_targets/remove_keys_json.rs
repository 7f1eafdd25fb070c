//! Fuzz target `remove_keys_json`: groupcache-go v3's remove-keys body,
//! parsed from any bytes.
//!
//! The peer endpoint parses the JSON body of `POST <group>/_remove-keys/`
//! with serde_json into `proto::RemoveKeysRequest`. Every input must give a
//! request or a `serde_json::Error`, never a panic (deep nesting included:
//! serde_json's recursion limit is what stands between a body and the
//! stack). A request that parses must serialize to JSON that parses back to
//! the same request, so what peercache sends is what it reads.

#![no_main]

use libfuzzer_sys::fuzz_target;
use peercache::proto::RemoveKeysRequest;

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = serde_json::from_slice::<RemoveKeysRequest>(data) {
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
