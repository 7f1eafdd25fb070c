use super::*;
use proptest::prelude::*;

fn parsing() -> Parsing {
    Parsing {
        base_path: "/_groupcache/".to_owned(),
        plus: PlusInPath::Literal,
        max_key_bytes: 1 << 10,
        max_remove_keys: 10_000,
    }
}

/// Encodes `request` as the client does and parses it as the server does.
fn round_trip(request: &PeerRequest<'_>) -> Result<PeerRequest<'static>, Reply> {
    let parsing = parsing();
    let encoded = request.encode().expect("encodable");
    let path = format!("{}{}", parsing.base_path, encoded.path);
    let head = Head::parse(&encoded.method, &path, &parsing)?;
    assert_eq!(
        head.has_body(),
        encoded.method != Method::GET && encoded.method != Method::DELETE
    );
    let body = encoded.body.map(|(_, body)| body).unwrap_or_default();
    let parsed = head.read(body, &parsing)?;
    Ok(match parsed {
        PeerRequest::Get { group, key } => PeerRequest::Get {
            group: Cow::Owned(group.into_owned()),
            key: Cow::Owned(key.into_owned()),
        },
        PeerRequest::Remove { group, key } => PeerRequest::Remove {
            group: Cow::Owned(group.into_owned()),
            key: Cow::Owned(key.into_owned()),
        },
        PeerRequest::RemoveKeys { group, keys } => PeerRequest::RemoveKeys {
            group: Cow::Owned(group.into_owned()),
            keys: Cow::Owned(keys.into_owned()),
        },
        PeerRequest::Set { group, key, value } => PeerRequest::Set {
            group: Cow::Owned(group.into_owned()),
            key: Cow::Owned(key.into_owned()),
            value,
        },
        PeerRequest::Purge { group } => PeerRequest::Purge {
            group: Cow::Owned(group.into_owned()),
        },
        PeerRequest::GetMany { group, keys } => PeerRequest::GetMany {
            group: Cow::Owned(group.into_owned()),
            keys: Cow::Owned(keys.into_owned()),
        },
        PeerRequest::HandOver { group, from, items } => PeerRequest::HandOver {
            group: Cow::Owned(group.into_owned()),
            from: Cow::Owned(from.into_owned()),
            items: Cow::Owned(items.into_owned()),
        },
        PeerRequest::Peek { .. } => unreachable!("a peek is parsed as a get"),
    })
}

#[test]
fn a_peek_is_a_get_with_a_query() {
    let peek = PeerRequest::Peek {
        group: "g".into(),
        key: "a b".into(),
    };
    let encoded = peek.encode().unwrap();
    assert_eq!(
        (encoded.method, encoded.path.as_str()),
        (Method::GET, "g/a%20b?peek")
    );
    let get = PeerRequest::Get {
        group: "g".into(),
        key: "a b".into(),
    };
    assert_eq!(round_trip(&get).unwrap(), get);
}

#[test]
fn a_hand_over_of_too_many_values_is_refused() {
    let items: Vec<(String, Value)> = (0..=MAX_HAND_OVER_ITEMS)
        .map(|i| (format!("k{i}"), Value::from("v")))
        .collect();
    let request = PeerRequest::HandOver {
        group: "g".into(),
        from: "http://a:1".into(),
        items: Cow::Borrowed(&items),
    };
    assert_eq!(round_trip(&request).unwrap_err().status(), 413);
    let within = PeerRequest::HandOver {
        group: "g".into(),
        from: "http://a:1".into(),
        items: Cow::Borrowed(&items[..MAX_HAND_OVER_ITEMS]),
    };
    assert_eq!(round_trip(&within).unwrap(), within);
}

#[test]
fn the_wire_form_of_each_request() {
    let value = Value::from("v");
    let cases = [
        (
            PeerRequest::Get {
                group: "g".into(),
                key: "a b".into(),
            },
            "GET",
            "g/a%20b",
            None,
        ),
        (
            PeerRequest::Remove {
                group: "g".into(),
                key: "k".into(),
            },
            "DELETE",
            "g/k",
            None,
        ),
        (
            PeerRequest::RemoveKeys {
                group: "g".into(),
                keys: Cow::Owned(vec!["a".into(), "b".into()]),
            },
            "POST",
            "g/_remove-keys/",
            Some((
                "application/json",
                &br#"{"group":"g","keys":["a","b"]}"#[..],
            )),
        ),
        (
            PeerRequest::Set {
                group: "g".into(),
                key: "k".into(),
                value,
            },
            "PUT",
            "g/k",
            Some((PROTOBUF_CONTENT_TYPE, &b"\n\x01g\x12\x01k\x1a\x01v"[..])),
        ),
        (
            PeerRequest::Purge { group: "g".into() },
            "POST",
            "g/_purge/",
            None,
        ),
        (
            PeerRequest::GetMany {
                group: "g".into(),
                keys: Cow::Owned(vec!["a".into(), "bc".into()]),
            },
            "POST",
            "g/_get-many/",
            Some((PROTOBUF_CONTENT_TYPE, &b"\n\x01a\n\x02bc"[..])),
        ),
    ];
    for (request, method, path, body) in cases {
        let encoded = request.encode().unwrap();
        assert_eq!(encoded.method.as_str(), method, "{request:?}");
        assert_eq!(encoded.path, path, "{request:?}");
        assert_eq!(
            encoded.body.as_ref().map(|(t, b)| (*t, &b[..])),
            body,
            "{request:?}"
        );
        assert_eq!(round_trip(&request).unwrap(), request);
    }
}

#[test]
fn what_parsing_refuses() {
    let parsing = parsing();
    let status =
        |method: Method, path: &str| Head::parse(&method, path, &parsing).unwrap_err().status();
    assert_eq!(status(Method::PATCH, "/_groupcache/g/k"), 405);
    assert_eq!(status(Method::GET, "/_groupcache/g"), 400);
    assert_eq!(status(Method::GET, "/elsewhere/g/k"), 400);
    // A POST elsewhere is refused once its body is read (and its proof
    // checked), as any POST.
    let elsewhere = Head::parse(&Method::POST, "/_groupcache/g/k", &parsing).unwrap();
    assert!(elsewhere.has_body());
    assert_eq!(
        elsewhere.read(Bytes::new(), &parsing).unwrap_err().status(),
        404
    );
    let long = format!("/_groupcache/g/{}", "k".repeat(1025));
    assert_eq!(status(Method::GET, &long), 414);
    let head = Head::parse(&Method::PUT, "/_groupcache/g/k", &parsing).unwrap();
    assert_eq!(
        head.read(Bytes::from_static(b"\xff"), &parsing)
            .unwrap_err()
            .status(),
        400
    );
    let other_group = SetRequest {
        group: Some("h".into()),
        key: Some("k".into()),
        value: None,
        expire: None,
    };
    let head = Head::parse(&Method::PUT, "/_groupcache/g/k", &parsing).unwrap();
    let refused = head
        .read(other_group.encode_to_vec().into(), &parsing)
        .unwrap_err();
    assert_eq!(refused.status(), 400);
    let head = Head::parse(&Method::POST, "/_groupcache/g/_remove-keys/", &parsing).unwrap();
    let too_many = Parsing {
        max_remove_keys: 1000,
        ..parsing.clone()
    };
    let keys: Vec<String> = (0..1001).map(|i| i.to_string()).collect();
    let body = serde_json::to_vec(&RemoveKeysRequest { group: None, keys }).unwrap();
    assert_eq!(head.read(body.into(), &too_many).unwrap_err().status(), 413);
}

#[test]
fn what_batch_parsing_refuses() {
    let parsing = parsing();
    let read = |body: Vec<u8>| {
        let head = Head::parse(&Method::POST, "/_groupcache/g/_get-many/", &parsing).unwrap();
        assert!(head.has_body());
        head.read(body.into(), &parsing)
    };
    let keys = |n: usize, len: usize| GetManyRequest {
        keys: (0..n).map(|i| format!("{i:0len$}")).collect(),
    };
    assert!(read(keys(MAX_GET_MANY_KEYS, 8).encode_to_vec()).is_ok());
    let over = read(keys(MAX_GET_MANY_KEYS + 1, 8).encode_to_vec()).unwrap_err();
    assert_eq!(over.status(), 413);
    assert!(over.reason().contains("more than 1000 keys"), "{over:?}");
    let long = read(keys(1, 1025).encode_to_vec()).unwrap_err();
    assert_eq!(long.status(), 414);
    assert!(long.reason().contains("1024 bytes"), "{long:?}");
    let garbage = read(vec![0x0a, 0x7f, b'a']).unwrap_err();
    assert_eq!(garbage.status(), 400);
    assert!(garbage.reason().contains("GetManyRequest"), "{garbage:?}");
}

proptest! {
    #[test]
    fn every_request_round_trips(
        group in "[^/]{1,20}",
        key in any::<String>(),
        keys in proptest::collection::vec(any::<String>(), 0..5),
        value in any::<Vec<u8>>(),
        expiry in 0i64..i64::MAX,
    ) {
        let value = Value::new(Bytes::from(value)).with_expiry_unix_nanos(expiry);
        for request in [
            PeerRequest::Get { group: group.as_str().into(), key: key.as_str().into() },
            PeerRequest::Remove { group: group.as_str().into(), key: key.as_str().into() },
            PeerRequest::RemoveKeys { group: group.as_str().into(), keys: Cow::Borrowed(&keys) },
            PeerRequest::Set { group: group.as_str().into(), key: key.as_str().into(), value: value.clone() },
            PeerRequest::Purge { group: group.as_str().into() },
            PeerRequest::GetMany { group: group.as_str().into(), keys: Cow::Borrowed(&keys) },
            PeerRequest::HandOver {
                group: group.as_str().into(),
                from: key.as_str().into(),
                items: Cow::Owned(keys.iter().map(|k| (k.clone(), value.clone())).collect()),
            },
        ] {
            prop_assert_eq!(round_trip(&request).unwrap(), request);
        }
    }
}

/// A set's value is kept as a slice of the body only when it is nearly all
/// of it: one padded with an unknown field, or sent twice (the last copy
/// wins), is copied out, so the cache never keeps the padding alive.
#[test]
fn a_padded_set_keeps_only_its_value() {
    let parsing = parsing();
    let value = Bytes::from(vec![b'v'; 4096]);
    let set = SetRequest {
        group: Some("g".into()),
        key: Some("k".into()),
        value: Some(value.clone()),
        expire: None,
    };
    let plain = Bytes::from(set.encode_to_vec());
    let mut padded = set.encode_to_vec();
    // Field 9, length-delimited, 1 MiB: unknown to SetRequest.
    prost::encoding::encode_key(9, prost::encoding::WireType::LengthDelimited, &mut padded);
    prost::encoding::encode_varint(1 << 20, &mut padded);
    padded.resize(padded.len() + (1 << 20), 0);
    let mut twice = SetRequest {
        value: Some(Bytes::from(vec![b'x'; 1 << 20])),
        ..set.clone()
    }
    .encode_to_vec();
    twice.extend_from_slice(&plain);
    for (body, kept) in [
        (plain, true),
        (Bytes::from(padded), false),
        (Bytes::from(twice), false),
    ] {
        let head = Head::parse(&Method::PUT, "/_groupcache/g/k", &parsing).unwrap();
        let Ok(PeerRequest::Set { value: got, .. }) = head.read(body.clone(), &parsing) else {
            panic!("a set");
        };
        assert_eq!(got.as_bytes(), &value[..]);
        let inside = body.as_ptr_range().contains(&got.as_bytes().as_ptr());
        assert_eq!(inside, kept, "body of {} bytes", body.len());
    }
}
