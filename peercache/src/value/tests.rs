//! Tests of values: conversions, expiry and the compact form.

use super::*;

#[derive(Clone, PartialEq, prost::Message)]
struct Color {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(uint32, tag = "2")]
    rgb: u32,
}

#[test]
fn text_round_trips_and_bad_utf8_is_an_error() {
    assert_eq!(Value::from("grün").as_str(), Ok("grün"));
    let bad = Value::new(vec![b'o', b'k', 0xff]);
    assert_eq!(bad.as_str(), Err(ValueError::NotUtf8 { valid_up_to: 2 }));
    assert_eq!(bad.as_bytes(), b"ok\xff");
}

#[test]
fn protobuf_round_trips_and_garbage_is_an_error() {
    let red = Color {
        name: "red".into(),
        rgb: 0xff0000,
    };
    let value = Value::encode(&red);
    assert_eq!(value.decode::<Color>(), Ok(red));
    let garbage = Value::from_static(b"\x0a\xff\xff");
    assert!(matches!(
        garbage.decode::<Color>(),
        Err(ValueError::Decode { .. })
    ));
}

#[test]
fn clone_shares_bytes() {
    let v = Value::new(vec![7u8; 1000]);
    let w = v.clone();
    assert_eq!(v.as_bytes().as_ptr(), w.as_bytes().as_ptr());
}

#[test]
fn expiry_round_trips_through_unix_nanos() {
    let v = Value::from("x");
    assert_eq!(v.expires_at(), None);
    assert!(!v.is_expired_at(SystemTime::now()));
    let at = UNIX_EPOCH + Duration::from_nanos(1_700_000_000_123_456_789);
    let v = v.with_expiry(at);
    assert_eq!(v.expiry_unix_nanos(), 1_700_000_000_123_456_789);
    assert_eq!(v.expires_at(), Some(at));
    assert!(!v.is_expired_at(at - Duration::from_nanos(1)));
    assert!(v.is_expired_at(at));
    let w = Value::from("x").with_expiry_unix_nanos(v.expiry_unix_nanos());
    assert_eq!(w, v);
    assert_eq!(
        Value::from("x").with_expiry_unix_nanos(-5).expires_at(),
        None
    );
    assert!(Value::from("x")
        .with_expiry(UNIX_EPOCH)
        .is_expired_at(SystemTime::now()));
}

#[test]
fn debug_is_bounded() {
    let v = Value::new(vec![b'x'; 10_000]);
    assert!(format!("{v:?}").len() < 200);
}

#[test]
fn a_cache_key_changes_nothing_a_user_sees() {
    use std::hash::{BuildHasher, RandomState};
    let plain = Value::from("red").with_expiry_unix_nanos(5);
    let keyed = plain.clone().keyed(b"color");
    assert_eq!(keyed.key_bytes(), b"color");
    assert_eq!(plain.key_bytes(), b"");
    assert_eq!(keyed, plain, "equality ignores the key");
    let hasher = RandomState::new();
    assert_eq!(hasher.hash_one(&keyed), hasher.hash_one(&plain));
    assert_eq!((keyed.as_str(), keyed.expiry_unix_nanos()), (Ok("red"), 5));
    assert_eq!(format!("{keyed:?}"), format!("{plain:?}"));
    // Keyed again under the same key: the same block, no copy.
    let again = keyed.clone().keyed(b"color");
    assert_eq!(again.as_bytes().as_ptr(), keyed.as_bytes().as_ptr());
    let other = keyed.clone().keyed_expiring(b"colour", 9);
    assert_eq!(
        (other.key_bytes(), other.expiry_unix_nanos(), other.as_str()),
        (&b"colour"[..], 9, Ok("red"))
    );
}

#[test]
fn small_values_hand_out_bytes_that_outlive_them() {
    let value = Value::from("hello world").keyed(b"k");
    let bytes = value.bytes();
    let hello = value.into_bytes().slice(..5);
    assert_eq!(
        (&bytes[..], &hello[..]),
        (&b"hello world"[..], &b"hello"[..])
    );
}

#[test]
fn large_values_are_never_copied() {
    let large = bytes::Bytes::from(vec![1u8; 4096]);
    let value = Value::new(large.clone());
    assert_eq!(value.as_bytes().as_ptr(), large.as_ptr());
    let keyed = value.clone().keyed(b"k").with_expiry_unix_nanos(3);
    assert_eq!(keyed.as_bytes().as_ptr(), large.as_ptr());
    assert_eq!(keyed.bytes().as_ptr(), large.as_ptr());
    drop(value);
    assert_eq!(keyed.into_bytes().as_ptr(), large.as_ptr());
}

#[test]
fn copied_values_own_their_bytes_in_the_cache_form() {
    let buffer = vec![7u8; 2000];
    let small = Value::copied_keyed(b"k", &buffer[..10], 42);
    assert_eq!(
        (
            small.key_bytes(),
            small.as_bytes(),
            small.expiry_unix_nanos()
        ),
        (&b"k"[..], &buffer[..10], 42)
    );
    assert_ne!(small.as_bytes().as_ptr(), buffer.as_ptr());
    let large = Value::copied_keyed(b"k", &buffer, -1);
    assert_eq!(
        (large.as_bytes(), large.expiry_unix_nanos()),
        (&buffer[..], 0)
    );
    assert_ne!(large.as_bytes().as_ptr(), buffer.as_ptr());
    // Already in the form the cache keeps under "k": storing copies nothing.
    let kept = large.clone().keyed(b"k");
    assert_eq!(kept.as_bytes().as_ptr(), large.as_bytes().as_ptr());
}
