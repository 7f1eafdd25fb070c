//! Property test: malformed peer input, from random bytes to near-misses of
//! valid requests, never panics and is refused with a typed, explained error.
//!
//! Everything a peer endpoint reads comes off the network: the path (group
//! and key, percent-escaped), a mailgun `SetRequest` body, a groupcache-go
//! `_remove-keys` JSON body, and on the client side a `GetResponse`. These
//! tests feed those parsers the same functions as the fuzz targets in
//! `fuzz/` (which explore far longer, but only on nightly and on demand), so
//! that every `cargo test` checks a few thousand inputs of two kinds:
//!
//! - random inputs, which mostly exercise the error paths;
//! - mutations of valid inputs (bytes flipped, inserted, deleted, truncated,
//!   spliced from another valid input), which get past the first checks and
//!   so reach the deeper ones; random bytes almost never do.
//!
//! Besides "no panic", each parser has a contract checked here: a path error
//! is exactly the `PathError` an independent reference decoder predicts; a
//! successful parse survives a round trip through the client's escaping,
//! protobuf encoding or JSON serialization. The last test sends whole
//! malformed requests to a `PeerService` in-process and checks the status,
//! the body, and that a value cached in a group the requests cannot reach
//! is still served from the cache afterwards.

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use peercache::http::wire::{self, PathError};
use peercache::http::{HttpOptions, PeerService};
use peercache::http::{PlusInPath, DEFAULT_BASE_PATH};
use peercache::proto::{
    GetManyItem, GetManyRequest, GetManyResponse, GetRequest, GetResponse, RemoveKeysError,
    RemoveKeysRequest, SetRequest,
};
use peercache::{loader_fn, LoadError, Node};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::TestRunner;
use prost::Message;
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

const MODES: [PlusInPath; 2] = [PlusInPath::Space, PlusInPath::Literal];

// ---------------------------------------------------------------------------
// Mutations of valid inputs.

/// One edit of a byte string. Positions are `Index`es so that one edit
/// applies to an input of any length.
#[derive(Debug, Clone)]
enum Edit {
    Flip(Index, u8),
    Overwrite(Index, u8),
    Insert(Index, u8),
    Delete(Index),
    Truncate(Index),
    /// Replaces a range with a range of the other valid input.
    Splice {
        from: Index,
        to: Index,
        other_from: Index,
        other_to: Index,
    },
    /// Repeats a range in place (grows length prefixes' targets, lists).
    Repeat(Index, Index),
}

fn edit() -> impl Strategy<Value = Edit> {
    let index = any::<Index>;
    prop_oneof![
        (index(), 0..8u8).prop_map(|(i, bit)| Edit::Flip(i, bit)),
        (index(), any::<u8>()).prop_map(|(i, b)| Edit::Overwrite(i, b)),
        (index(), any::<u8>()).prop_map(|(i, b)| Edit::Insert(i, b)),
        index().prop_map(Edit::Delete),
        index().prop_map(Edit::Truncate),
        (index(), index(), index(), index()).prop_map(|(from, to, other_from, other_to)| {
            Edit::Splice {
                from,
                to,
                other_from,
                other_to,
            }
        }),
        (index(), index()).prop_map(|(a, b)| Edit::Repeat(a, b)),
    ]
}

/// A range of `0..=len` from two indexes, in order.
fn range(len: usize, a: &Index, b: &Index) -> std::ops::Range<usize> {
    let (a, b) = (a.index(len + 1), b.index(len + 1));
    a.min(b)..a.max(b)
}

fn apply(mut bytes: Vec<u8>, other: &[u8], edits: &[Edit]) -> Vec<u8> {
    for edit in edits {
        let len = bytes.len();
        match edit {
            Edit::Flip(i, bit) if len > 0 => bytes[i.index(len)] ^= 1 << bit,
            Edit::Overwrite(i, b) if len > 0 => bytes[i.index(len)] = *b,
            Edit::Insert(i, b) => bytes.insert(i.index(len + 1), *b),
            Edit::Delete(i) if len > 0 => {
                bytes.remove(i.index(len));
            }
            Edit::Truncate(i) => bytes.truncate(i.index(len + 1)),
            Edit::Splice {
                from,
                to,
                other_from,
                other_to,
            } => {
                let donor = other[range(other.len(), other_from, other_to)].to_vec();
                bytes.splice(range(len, from, to), donor);
            }
            Edit::Repeat(a, b) => {
                let r = range(len, a, b);
                let copy = bytes[r.clone()].to_vec();
                bytes.splice(r.end..r.end, copy);
            }
            _ => {}
        }
    }
    bytes
}

/// Valid inputs from `seeds`, each changed by one to three edits.
fn mutated<S>(seeds: S) -> impl Strategy<Value = Vec<u8>>
where
    S: Strategy<Value = Vec<u8>> + Clone,
{
    // Few edits: each one more is likelier to break what the next check
    // looks at, and the point is to get past the first checks.
    (seeds.clone(), seeds, vec(edit(), 1..4))
        .prop_map(|(seed, other, edits)| apply(seed, &other, &edits))
}

// ---------------------------------------------------------------------------
// Paths.

/// Pieces that peer paths are made of, valid and not: escapes good and bad,
/// `+`, separators, multi-byte and control characters.
#[rustfmt::skip]
const PATH_TOKENS: &[&str] = &[
    "/", "/", "+", " ", "?", "#",
    "%", "%2F", "%2f", "%2B", "%20", "%zz", "%4", "%G1", "%FF", "%C3", "%BC", "%00",
    "a", "Z", "0", "-", ".", "_", "~", "ü", "\0", "\u{FFFD}",
    "ref", "colors", "red", "_remove-keys/", "_purge/", "_get-many/", "/_groupcache/", "_groupcache",
];

fn token_path() -> impl Strategy<Value = String> {
    (
        prop_oneof![1 => Just(""), 4 => Just(DEFAULT_BASE_PATH), 1 => Just("/_groupcache")],
        vec(prop::sample::select(PATH_TOKENS), 0..12),
    )
        .prop_map(|(prefix, tokens)| format!("{prefix}{}", tokens.concat()))
}

fn valid_paths() -> impl Strategy<Value = Vec<u8>> + Clone {
    prop_oneof![
        Just(b"/_groupcache/colors/red".to_vec()),
        Just(b"/_groupcache/ref/x%2Fy/z".to_vec()),
        Just(b"/_groupcache/ref/a+b%2Bc%20d".to_vec()),
        Just(b"/_groupcache/r%65f/u%C3%BC%00".to_vec()),
        Just(b"/_groupcache/ref/".to_vec()),
        Just(b"/_groupcache/ref/_remove-keys/".to_vec()),
        // The client's own spelling of arbitrary group names and keys.
        ("[^/]{1,8}", any::<String>()).prop_map(|(group, key)| {
            wire::peer_url("", DEFAULT_BASE_PATH, &group, &key).into_bytes()
        }),
    ]
}

fn any_path() -> impl Strategy<Value = String> {
    prop_oneof![
        1 => any::<String>(),
        3 => token_path(),
        3 => mutated(valid_paths()).prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
    ]
}

/// The decoding `wire::decode` must perform, written another way (split at
/// `%` rather than scanned byte by byte), as an oracle. `Err` is the offset
/// of the first bad `%`.
fn reference_decode(part: &str, plus: PlusInPath) -> Result<Vec<u8>, usize> {
    let literal = |text: &str| -> Vec<u8> {
        match plus {
            PlusInPath::Space => text.replace('+', " ").into_bytes(),
            PlusInPath::Literal => text.as_bytes().to_vec(),
        }
    };
    let mut pieces = part.split('%');
    let first = pieces.next().unwrap_or_default();
    let mut out = literal(first);
    let mut offset = first.len();
    for piece in pieces {
        // `from_str_radix` alone would take "+1": only two hex digits count.
        let hex = piece
            .get(..2)
            .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or(offset)?;
        out.push(u8::from_str_radix(hex, 16).expect("two hex digits"));
        out.extend(literal(&piece[2..]));
        offset += 1 + piece.len();
    }
    Ok(out)
}

/// What `parse_peer_path` must answer, from the reference decoder.
fn expected_parse(path: &str, base: &str, plus: PlusInPath) -> Result<(String, String), PathError> {
    let rest = path
        .strip_prefix(base)
        .ok_or_else(|| PathError::NotUnderBasePath {
            base_path: base.to_owned(),
        })?;
    let (group, key) = rest.split_once('/').ok_or(PathError::MissingKey)?;
    if group.is_empty() {
        return Err(PathError::EmptyGroup);
    }
    let decode = |text: &str, part: &'static str| {
        let bytes =
            reference_decode(text, plus).map_err(|offset| PathError::BadEscape { part, offset })?;
        String::from_utf8(bytes).map_err(|_| PathError::NotUtf8 { part })
    };
    Ok((decode(group, "group")?, decode(key, "key")?))
}

fn check_path(path: &str, base: &str) -> Result<(), TestCaseError> {
    for plus in MODES {
        let got = wire::parse_peer_path(path, base, plus)
            .map(|p| (p.group.into_owned(), p.key.into_owned()));
        prop_assert_eq!(
            &got,
            &expected_parse(path, base, plus),
            "{:?} {:?}",
            path,
            plus
        );
        if let Ok((group, key)) = got {
            // The client's spelling of what was parsed names the same key,
            // whichever way the server reads `+`.
            let url = wire::peer_url("", base, &group, &key);
            for again in MODES {
                let back = wire::parse_peer_path(&url, base, again);
                prop_assert!(back.is_ok(), "{:?} from {:?}: {:?}", url, path, back);
                let back = back.unwrap();
                prop_assert_eq!(&back.group, &group);
                prop_assert_eq!(&back.key, &key);
            }
        }
        // A part alone: decode and re-escape.
        let decoded = wire::decode(path, "key", plus);
        let expected = reference_decode(path, plus)
            .map_err(|offset| PathError::BadEscape {
                part: "key",
                offset,
            })
            .and_then(|b| String::from_utf8(b).map_err(|_| PathError::NotUtf8 { part: "key" }));
        prop_assert_eq!(decoded.as_deref(), expected.as_deref());
        if let Ok(decoded) = decoded {
            let escaped = wire::escape(&decoded).to_string();
            for again in MODES {
                let back = wire::decode(&escaped, "key", again);
                prop_assert_eq!(back.as_deref(), Ok(&*decoded));
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Protobuf.

fn set_request() -> impl Strategy<Value = SetRequest> {
    (
        proptest::option::of("[a-z]{0,6}"),
        proptest::option::of(any::<String>()),
        proptest::option::of(vec(any::<u8>(), 0..40)),
        proptest::option::of(any::<i64>()),
    )
        .prop_map(|(group, key, value, expire)| SetRequest {
            group,
            key,
            value: value.map(Bytes::from),
            expire,
        })
}

fn get_response() -> impl Strategy<Value = GetResponse> {
    (
        proptest::option::of(vec(any::<u8>(), 0..200)),
        proptest::option::of(any::<f64>()),
        proptest::option::of(any::<i64>()),
    )
        .prop_map(|(value, minute_qps, expire)| GetResponse {
            value: value.map(Bytes::from),
            minute_qps,
            expire,
        })
}

/// Valid encodings: golang/groupcache's own answers, and messages of each
/// type with random fields.
fn valid_protobuf() -> impl Strategy<Value = Vec<u8>> + Clone {
    prop_oneof![
        Just(include_bytes!("data/golang-wire/peer_owner_beta.body").to_vec()),
        Just(include_bytes!("data/golang-wire/peer_value_size_0.body").to_vec()),
        Just(include_bytes!("data/golang-wire/peer_value_size_300.body").to_vec()),
        set_request().prop_map(|m| m.encode_to_vec()),
        get_response().prop_map(|m| m.encode_to_vec()),
        ("[a-z]{0,6}", any::<String>())
            .prop_map(|(group, key)| GetRequest { group, key }.encode_to_vec()),
    ]
}

/// Encodes, decodes and encodes again: prost's own encoding must decode, and
/// the bytes must be stable (the input need not come back: unknown fields
/// are dropped).
fn re_decode<M: Message + Default>(message: &M) -> Result<M, TestCaseError> {
    let bytes = message.encode_to_vec();
    prop_assert_eq!(bytes.len(), message.encoded_len());
    let again = M::decode(bytes.as_slice());
    prop_assert!(again.is_ok(), "{:?}", again.err());
    let again = again.unwrap();
    prop_assert_eq!(again.encode_to_vec(), bytes);
    Ok(again)
}

/// `minute_qps` is an f64: a NaN never equals itself, so compare bits.
fn response_fields(r: &GetResponse) -> (Option<Bytes>, Option<u64>, Option<i64>) {
    (r.value.clone(), r.minute_qps.map(f64::to_bits), r.expire)
}

fn check_protobuf(bytes: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(first) = GetRequest::decode(bytes) {
        prop_assert_eq!(&re_decode(&first)?, &first);
    }
    if let Ok(first) = SetRequest::decode(bytes) {
        prop_assert_eq!(&re_decode(&first)?, &first);
    }
    if let Ok(first) = GetResponse::decode(bytes) {
        let second = re_decode(&first)?;
        prop_assert_eq!(response_fields(&second), response_fields(&first));
    }
    Ok(())
}

/// A field of a prefix-decoded message is absent or the original's: a cut
/// inside a field must be an error, never a shortened value.
fn prefix_field<T: PartialEq + std::fmt::Debug>(
    cut: &Option<T>,
    whole: &Option<T>,
) -> Result<(), TestCaseError> {
    prop_assert!(cut.is_none() || cut == whole, "{:?} from {:?}", cut, whole);
    Ok(())
}

// ---------------------------------------------------------------------------
// Batch gets (what `fuzz/fuzz_targets/get_many.rs` checks at length).

/// The cap of keys and items in these checks, and of a key's length.
const BATCH_CAP: usize = 3;
const BATCH_KEY_BYTES: usize = 8;

fn valid_batch() -> impl Strategy<Value = Vec<u8>> + Clone {
    let item = (
        0i32..5,
        proptest::option::of(vec(any::<u8>(), 0..12)),
        proptest::option::of(any::<i64>()),
        proptest::option::of("[a-z ]{0,12}"),
    )
        .prop_map(|(status, value, expire, error)| GetManyItem {
            status,
            value: value.map(Bytes::from),
            expire,
            error,
        });
    prop_oneof![
        vec("[a-z/ü]{0,10}", 0..5).prop_map(|keys| GetManyRequest { keys }.encode_to_vec()),
        vec(item, 0..5).prop_map(|items| GetManyResponse { items }.encode_to_vec()),
    ]
}

fn check_batch(bytes: &[u8]) -> Result<(), TestCaseError> {
    // The bounded decoders agree with prost on what they accept, hold no
    // more than their caps, and refuse nothing prost reads within them.
    let derived = GetManyRequest::decode(bytes);
    match GetManyRequest::decode_bounded(bytes, BATCH_CAP, BATCH_KEY_BYTES) {
        Ok(request) => {
            prop_assert!(request.keys.len() <= BATCH_CAP);
            prop_assert_eq!(derived.ok(), Some(request));
        }
        Err(error) => {
            if let Ok(derived) = derived {
                prop_assert!(
                    derived.keys.len() > BATCH_CAP
                        || derived.keys.iter().any(|k| k.len() > BATCH_KEY_BYTES),
                    "{:?} refused: {}",
                    derived,
                    error
                );
            }
        }
    }
    let derived = GetManyResponse::decode(bytes);
    match GetManyResponse::decode_bounded(Bytes::copy_from_slice(bytes), BATCH_CAP) {
        Ok(answer) => {
            prop_assert!(answer.items.len() <= BATCH_CAP);
            prop_assert_eq!(derived.ok(), Some(answer));
        }
        Err(error) => {
            if let Ok(derived) = derived {
                prop_assert!(
                    derived.items.len() > BATCH_CAP,
                    "{:?} refused: {}",
                    derived,
                    error
                );
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// JSON.

fn remove_keys_request() -> impl Strategy<Value = RemoveKeysRequest> {
    (
        proptest::option::of(any::<String>()),
        vec(any::<String>(), 0..4),
    )
        .prop_map(|(group, keys)| RemoveKeysRequest { group, keys })
}

fn valid_json() -> impl Strategy<Value = Vec<u8>> + Clone {
    prop_oneof![
        Just(br#"{"group":"colors","keys":["a","b"]}"#.to_vec()),
        Just(br#"{"keys":["x/y","a b","\u00fc","\ud83d\ude00"]}"#.to_vec()),
        Just(br#" {"group" : null , "keys" : [ ] , "extra" : {"n": [1, 2.5e3]}} "#.to_vec()),
        remove_keys_request().prop_map(|r| serde_json::to_vec(&r).expect("serializes")),
    ]
}

fn check_json(bytes: &[u8]) -> Result<(), TestCaseError> {
    // The bounded parser the peer endpoint uses agrees with serde's derived
    // one on what it accepts, and never holds more keys than its cap.
    let derived = serde_json::from_slice::<RemoveKeysRequest>(bytes);
    match RemoveKeysRequest::from_json(bytes, 2) {
        Ok(bounded) => {
            prop_assert!(bounded.keys.len() <= 2);
            prop_assert_eq!(derived.as_ref().ok(), Some(&bounded));
        }
        Err(RemoveKeysError::TooManyKeys { max }) => {
            prop_assert_eq!(max, 2);
            if let Ok(derived) = &derived {
                prop_assert!(derived.keys.len() > 2);
            }
        }
        Err(_) => {}
    }
    if let Ok(request) = derived {
        let json = serde_json::to_vec(&request).expect("a request always serializes");
        let back = serde_json::from_slice::<RemoveKeysRequest>(&json);
        prop_assert_eq!(back.ok(), Some(request));
    }
    Ok(())
}

// ---------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn paths_parse_to_a_round_tripping_key_or_the_predicted_error(path in any_path()) {
        check_path(&path, DEFAULT_BASE_PATH)?;
        // Random text is rarely under the base path; this copy always is.
        check_path(&format!("{DEFAULT_BASE_PATH}{path}"), DEFAULT_BASE_PATH)?;
        // Other base paths, including ones a validated option would refuse.
        check_path(&path, "/")?;
        check_path(&path, "")?;
        check_path(&format!("/cache/v1/{path}"), "/cache/v1/")?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1500, ..ProptestConfig::default() })]

    #[test]
    fn protobuf_bodies_decode_stably_or_fail(
        bytes in prop_oneof![
            1 => vec(any::<u8>(), 0..64),
            1 => valid_protobuf(),
            3 => mutated(valid_protobuf()),
        ]
    ) {
        check_protobuf(&bytes)?;
    }

    #[test]
    fn batch_bodies_decode_within_their_caps_as_prost_does(
        bytes in prop_oneof![
            1 => vec(any::<u8>(), 0..64),
            1 => valid_batch(),
            3 => mutated(valid_batch()),
        ]
    ) {
        check_batch(&bytes)?;
    }

    #[test]
    fn json_bodies_parse_and_round_trip_or_fail(
        bytes in prop_oneof![
            1 => vec(any::<u8>(), 0..64),
            1 => valid_json(),
            3 => mutated(valid_json()),
        ]
    ) {
        check_json(&bytes)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

    #[test]
    fn truncated_protobuf_errors_or_keeps_whole_fields(
        set in set_request(),
        response in get_response(),
        cut in any::<Index>(),
    ) {
        let bytes = set.encode_to_vec();
        if let Ok(prefix) = SetRequest::decode(&bytes[..cut.index(bytes.len() + 1)]) {
            prefix_field(&prefix.group, &set.group)?;
            prefix_field(&prefix.key, &set.key)?;
            prefix_field(&prefix.value, &set.value)?;
            prefix_field(&prefix.expire, &set.expire)?;
        }
        let bytes = response.encode_to_vec();
        if let Ok(prefix) = GetResponse::decode(&bytes[..cut.index(bytes.len() + 1)]) {
            let (cut, whole) = (response_fields(&prefix), response_fields(&response));
            prefix_field(&cut.0, &whole.0)?;
            prefix_field(&cut.1, &whole.1)?;
            prefix_field(&cut.2, &whole.2)?;
        }
    }

    #[test]
    fn serialized_remove_keys_round_trip_and_their_prefixes_fail(
        request in remove_keys_request(),
        cut in any::<Index>(),
    ) {
        let json = serde_json::to_vec(&request).expect("serializes");
        let back = serde_json::from_slice::<RemoveKeysRequest>(&json);
        prop_assert_eq!(back.ok(), Some(request.clone()));
        let bounded = RemoveKeysRequest::from_json(&json, 4);
        prop_assert_eq!(bounded.ok(), Some(request));
        // An object missing its closing brace is never complete JSON.
        let cut = cut.index(json.len());
        prop_assert!(serde_json::from_slice::<RemoveKeysRequest>(&json[..cut]).is_err());
    }
}

// ---------------------------------------------------------------------------
// The whole peer endpoint.

const MAX_KEY_BYTES: usize = 64;
const MAX_BODY_BYTES: usize = 4096;
/// The group the random requests cannot name: no token, seed or mutation
/// spells it (the generated group names are a few letters at most).
const PROTECTED: &str = "protected-group-not-generated";

/// A request as generated: method, path and body, before `http` validates
/// them.
#[derive(Debug, Clone)]
struct RawRequest {
    method: String,
    path: String,
    body: Vec<u8>,
}

/// Path pieces a `http::Uri` accepts (no raw space, `#` or non-ASCII: hyper
/// refuses those before any service sees them).
#[rustfmt::skip]
const URI_TOKENS: &[&str] = &[
    "/", "+", "a", "k", "~", ".",
    "%", "%2F", "%2B", "%20", "%zz", "%4", "%FF", "%C3%BC", "%00",
    "_remove-keys/", "_purge/", "?q=1", "_purge", "_get-many/", "_get-many",
];

fn endpoint_path() -> impl Strategy<Value = String> {
    let group = prop_oneof![
        4 => Just("ref"),
        1 => Just("r%65f"),
        1 => Just("nosuch"),
        1 => Just(""),
        1 => Just("r%zz"),
        1 => Just("%FF"),
    ];
    // The loader of `ref` answers by the key's start: not found, failure,
    // or a value.
    let start = prop::sample::select(&["", "", "missing", "err"][..]);
    let tokens = vec(prop::sample::select(URI_TOKENS), 0..6);
    let in_ref =
        valid_paths().prop_filter("only group ref", |p| p.starts_with(b"/_groupcache/ref/"));
    prop_oneof![
        8 => (group, start, tokens).prop_map(|(group, start, key)| {
            format!("{DEFAULT_BASE_PATH}{group}/{start}{}", key.concat())
        }),
        2 => mutated(in_ref).prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
        // Over the key limit (414), and over the whole path limit (414 too).
        1 => (MAX_KEY_BYTES + 1..MAX_KEY_BYTES * 4)
            .prop_map(|n| format!("/_groupcache/ref/{}", "k".repeat(n))),
        1 => Just(format!("/_groupcache/ref/{}", "%41".repeat(1000))),
        1 => Just("/elsewhere/ref/k".to_owned()),
    ]
}

fn endpoint_body() -> impl Strategy<Value = Vec<u8>> {
    let set = (
        prop_oneof![
            Just(None),
            Just(Some("ref".to_owned())),
            Just(Some("other".to_owned()))
        ],
        proptest::option::of(prop_oneof![
            "[a-z]{0,6}",
            Just("k".repeat(MAX_KEY_BYTES + 1))
        ]),
        proptest::option::of(vec(any::<u8>(), 0..32)),
        proptest::option::of(any::<i64>()),
    )
        .prop_map(|(group, key, value, expire)| {
            SetRequest {
                group,
                key,
                value: value.map(Bytes::from),
                expire,
            }
            .encode_to_vec()
        })
        .boxed();
    prop_oneof![
        Just(Vec::new()),
        set.clone(),
        mutated(set),
        valid_json(),
        mutated(valid_json()),
        valid_batch(),
        mutated(valid_batch()),
        Just(format!(r#"{{"keys":["{}"]}}"#, "k".repeat(MAX_KEY_BYTES + 1)).into_bytes()),
        vec(any::<u8>(), 0..64),
        Just(vec![b'x'; MAX_BODY_BYTES + 1]),
    ]
}

fn endpoint_request() -> impl Strategy<Value = RawRequest> {
    let answered = prop::sample::select(&["GET", "HEAD", "PUT", "DELETE", "POST"][..]);
    let refused = prop::sample::select(&["PATCH", "OPTIONS", "TRACE", "CONNECT"][..]);
    let method = prop_oneof![
        8 => answered.prop_map(str::to_owned),
        1 => refused.prop_map(str::to_owned),
        1 => "[A-Z][A-Za-z-]{0,7}",
    ];
    (method, endpoint_path(), endpoint_body()).prop_map(|(method, path, body)| RawRequest {
        method,
        path,
        body,
    })
}

/// A node with two groups: `ref`, which the random requests address, and
/// [`PROTECTED`], holding one value loaded before they start.
struct Endpoint {
    service: PeerService,
    protected_loads: Arc<AtomicUsize>,
    node: Node,
}

impl Endpoint {
    fn new() -> Self {
        let node = Node::new();
        node.new_group(
            "ref",
            1 << 20,
            loader_fn(|key: String| async move {
                if key.starts_with("missing") {
                    Err(LoadError::NotFound)
                } else if key.starts_with("err") {
                    Err(LoadError::msg(format!("no value for {key:?}")))
                } else {
                    Ok(format!("v:{key}"))
                }
            }),
        )
        .expect("group ref");
        let protected_loads = Arc::new(AtomicUsize::new(0));
        let loads = Arc::clone(&protected_loads);
        node.new_group(
            PROTECTED,
            1 << 20,
            loader_fn(move |key: String| {
                loads.fetch_add(1, Ordering::SeqCst);
                async move { Ok(format!("kept:{key}")) }
            }),
        )
        .expect("protected group");
        let options = HttpOptions::builder()
            .max_key_bytes(MAX_KEY_BYTES)
            .max_body_bytes(MAX_BODY_BYTES)
            .build()
            .unwrap();
        Endpoint {
            service: PeerService::for_node_at(node.clone(), &options, "http://127.0.0.1:1"),
            protected_loads,
            node,
        }
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Vec<u8>,
    ) -> (StatusCode, String, Bytes, bool) {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .body(Full::new(Bytes::from(body)))
            .expect("method and path were validated");
        let response = self.service.answer(request).await.expect("infallible");
        let status = response.status();
        let content_type = response
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let allow = response.headers().contains_key(http::header::ALLOW);
        let body = response
            .into_body()
            .collect()
            .await
            .expect("a full body")
            .to_bytes();
        (status, content_type, body, allow)
    }

    /// Gets `key` the way a peer does and returns the value.
    async fn peer_get(&self, group: &str, key: &str) -> Result<Bytes, String> {
        let path = wire::peer_url("", DEFAULT_BASE_PATH, group, key);
        let (status, _, body, _) = self.send(Method::GET, &path, Vec::new()).await;
        if status != StatusCode::OK {
            return Err(format!("{status}: {}", String::from_utf8_lossy(&body)));
        }
        let response = GetResponse::decode(body).map_err(|e| e.to_string())?;
        response.value.ok_or_else(|| "no value".to_owned())
    }
}

#[test]
fn the_peer_endpoint_refuses_garbage_clearly_and_keeps_its_cache() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let endpoint = runtime.block_on(async { Endpoint::new() });
    let kept = runtime.block_on(endpoint.peer_get(PROTECTED, "kept"));
    assert_eq!(kept.as_deref(), Ok(&b"kept:kept"[..]));

    let allowed = [200, 400, 404, 405, 413, 414, 503];
    // The runner takes an `Fn`, hence the cells.
    let statuses = RefCell::new(BTreeMap::<u16, usize>::new());
    let unsendable = Cell::new(0usize);
    let fresh = Cell::new(0usize);
    let mut runner = TestRunner::new(ProptestConfig {
        cases: 300,
        // A hand-run runner has no source file to keep regressions next to.
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let outcome = runner.run(&vec(endpoint_request(), 1..8), |requests| {
        runtime.block_on(async {
            for raw in &requests {
                // What `http` refuses to build, hyper refuses to parse: it
                // never reaches a service.
                let Ok(method) = Method::from_bytes(raw.method.as_bytes()) else {
                    unsendable.set(unsendable.get() + 1);
                    continue;
                };
                if http::Uri::try_from(raw.path.as_str()).is_err() {
                    unsendable.set(unsendable.get() + 1);
                    continue;
                }
                let (status, content_type, body, allow) =
                    endpoint.send(method, &raw.path, raw.body.clone()).await;
                *statuses.borrow_mut().entry(status.as_u16()).or_default() += 1;
                prop_assert!(allowed.contains(&status.as_u16()), "{:?}: {}", raw, status);
                if status == StatusCode::OK {
                    continue;
                }
                prop_assert!(
                    content_type.starts_with("text/plain"),
                    "{:?}: {:?}",
                    raw,
                    content_type
                );
                prop_assert!(
                    !body.trim_ascii().is_empty(),
                    "{:?}: empty {} body",
                    raw,
                    status
                );
                prop_assert_eq!(status == StatusCode::METHOD_NOT_ALLOWED, allow, "{:?}", raw);
            }
            // Still served from the cache: no reload, same value.
            let kept = endpoint.peer_get(PROTECTED, "kept").await;
            prop_assert_eq!(kept.as_deref(), Ok(&b"kept:kept"[..]));
            prop_assert_eq!(endpoint.protected_loads.load(Ordering::SeqCst), 1);
            // And `ref` still loads: nothing is wedged. The generator never
            // spells `fresh`, so no request set or removed this key.
            fresh.set(fresh.get() + 1);
            let key = format!("fresh-{}", fresh.get());
            let value = endpoint.peer_get("ref", &key).await;
            prop_assert_eq!(value, Ok(Bytes::from(format!("v:{key}"))));
            Ok(())
        })
    });
    if let Err(failure) = outcome {
        panic!("{failure}");
    }
    let protected = endpoint
        .node
        .group(PROTECTED)
        .expect("protected group")
        .stats();
    assert_eq!(protected.main_cache.items, 1);
    // Every status the endpoint can give to garbage was reached, so the
    // generator covers each refusal, not just the first check.
    let statuses = statuses.into_inner();
    for status in allowed {
        assert!(
            statuses.contains_key(&status),
            "no {status} in {statuses:?}"
        );
    }
    let unsendable = unsendable.get();
    assert!(
        unsendable < statuses.values().sum::<usize>(),
        "{unsendable} unsendable of {statuses:?}"
    );
}
