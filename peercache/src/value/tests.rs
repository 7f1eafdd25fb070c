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
