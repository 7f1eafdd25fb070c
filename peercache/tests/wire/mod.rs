//! Requests of the peer protocol written byte by byte, as a Go node sends
//! them, shared by the tests that talk to a peercache server raw.

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
