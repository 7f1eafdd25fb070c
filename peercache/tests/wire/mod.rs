//! Requests of the peer protocol written byte by byte, as a Go node sends
//! them, and the settings of nodes whose requests are checked one by one,
//! shared by the tests that talk to a peercache server raw.

#![allow(dead_code)] // each test file uses a different part

use peercache::health::HealthPolicy;
use peercache::http::HttpOptions;
use std::time::Duration;

/// Options whose view of the cluster settles at once (no rejoin delay,
/// probes 1 ms apart), so that a change is exactly its requests: no second
/// drop of copies (`PeerPicker::settling`).
pub fn settling_at_once() -> HttpOptions {
    let health = HealthPolicy::builder()
        .probe_backoff_min(Duration::from_millis(1))
        .probe_backoff_max(Duration::from_millis(1))
        .rejoin_delay(Duration::ZERO)
        .build()
        .unwrap();
    HttpOptions::builder().health(health).build().unwrap()
}

/// A mailgun `SetRequest` of `key` = `value` in `group` (fields 1 to 3;
/// each shorter than 128 bytes, so each length is one byte).
pub fn set_request(group: &str, key: &str, value: &str) -> Vec<u8> {
    let mut bytes = Vec::new();
    for (tag, field) in [(0x0a, group), (0x12, key), (0x1a, value)] {
        bytes.extend([tag, field.len() as u8]);
        bytes.extend_from_slice(field.as_bytes());
    }
    bytes
}
