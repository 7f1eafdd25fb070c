//! `POST /<group>/_get-many`: the values of several keys in one request,
//! read with [`peercache::Group::get_many`] (the misses grouped by owner,
//! one peer request per owner, the keys this node owns loaded in one
//! batch).
//!
//! The body is a JSON array of keys, `["red","green"]` (any content type),
//! at most [`MAX_KEYS`] of them, each within `--max-key-bytes`. The answer
//! is a JSON object with one member per distinct key, in the order asked:
//!
//! ```json
//! {"red":{"value":"#FF0000"},
//!  "bin":{"value_base64":"AP8B","expires_unix_ms":1767225600000},
//!  "mauve":{"error":"not found","status":404},
//!  "slow":{"error":"...","status":503}}
//! ```
//!
//! A value that is UTF-8 is `value`, any other `value_base64` (standard
//! alphabet, padded); `expires_unix_ms` is there when the value expires.
//! The values of one answer total at most `--max-body-bytes` (what a peer
//! answers at most): a value that would pass it is left out as
//! `{"error":"left out: ...","status":413}`, to be asked for alone.
//! One key's failure never fails the others: the answer is 200 whenever
//! the request itself is sound.
//!
//! The body is parsed by a visitor that stops at the first key over the
//! limit, so a large body of empty strings costs at most [`MAX_KEYS`]
//! strings before it is refused.

use super::{check_key, text, Front, Refusal};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, Request};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use peercache::{Error, Value};
use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;
use std::collections::HashSet;

/// Most keys in one `_get-many` request: as many as a peer batch takes.
pub(super) const MAX_KEYS: usize = peercache::http::MAX_GET_MANY_KEYS;

/// What a `POST /<group>/<key>` other than these two is answered (405).
pub(super) fn post_routes(group: &str) -> String {
    format!(
        "POST is only for /{group}/_purge (empties the group on every node) \
         and /{group}/_get-many (the values of a JSON array of keys)"
    )
}

/// `POST /<group>/_get-many`: `request`'s body is the JSON array of keys.
pub(super) async fn get_many(front: &Front, group: &str, request: Request) -> Response {
    let body = Bytes::from_request(request, &()).await;
    match read_keys(front, body) {
        Ok(keys) => {
            let Some(group) = front.node.group(group) else {
                return text(StatusCode::NOT_FOUND, format!("no such group: {group}"));
            };
            let answers = group.get_many(&keys).await;
            answer(&keys, &answers, front.pool.options().max_body_bytes())
        }
        Err((status, message)) => text(status, message),
    }
}

/// The keys of the request, or why it is refused.
fn read_keys(front: &Front, body: Result<Bytes, BytesRejection>) -> Result<Vec<String>, Refusal> {
    let body = super::body_or_refusal(front, body)?;
    let keys = parse_keys(&body, MAX_KEYS)?;
    for key in &keys {
        check_key(front, key)?;
    }
    Ok(keys)
}

/// Parses `body` as a JSON array of at most `max` strings.
fn parse_keys(body: &[u8], max: usize) -> Result<Vec<String>, Refusal> {
    use serde::de::DeserializeSeed;
    let over = std::cell::Cell::new(false);
    let mut reader = serde_json::Deserializer::from_slice(body);
    let parsed = bounded::Keys { max, over: &over }
        .deserialize(&mut reader)
        .and_then(|keys| reader.end().map(|()| keys));
    match parsed {
        Ok(keys) => Ok(keys),
        Err(_) if over.get() => Err((
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("too many keys: at most {max} keys per batch; send them in several requests"),
        )),
        Err(error) => Err((
            StatusCode::BAD_REQUEST,
            format!(
                "the body must be a JSON array of keys (strings), e.g. [\"red\",\"green\"]: {error}"
            ),
        )),
    }
}

/// The 200 answer: `answers[i]` is `keys[i]`'s. Values go in while their
/// bytes stay within `budget` (the peers' `--max-body-bytes`); a value
/// that would pass it is left out, marked 413, for the client to ask alone.
fn answer(keys: &[String], answers: &[Result<Value, Error>], budget: usize) -> Response {
    let answers = Answers {
        keys,
        answers,
        budget,
    };
    match serde_json::to_vec(&answers) {
        Ok(json) => ([(header::CONTENT_TYPE, "application/json")], json).into_response(),
        // Strings and numbers always serialize; kept as a 500, not a panic.
        Err(error) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot write the answer: {error}"),
        ),
    }
}

/// The answer object: one member per distinct key, in the order asked.
struct Answers<'a> {
    keys: &'a [String],
    answers: &'a [Result<Value, Error>],
    budget: usize,
}

impl Serialize for Answers<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seen = HashSet::with_capacity(self.keys.len());
        let mut room = self.budget;
        let mut map = serializer.serialize_map(None)?;
        for (key, answer) in self.keys.iter().zip(self.answers) {
            if !seen.insert(key.as_str()) {
                continue;
            }
            match answer {
                Ok(value) if value.len() > room => {
                    map.serialize_entry(key, &Skipped(self.budget))?
                }
                Ok(value) => {
                    room -= value.len();
                    map.serialize_entry(key, &Entry(answer))?
                }
                Err(_) => map.serialize_entry(key, &Entry(answer))?,
            }
        }
        map.end()
    }
}

/// A value left out of an answer that would pass its budget.
struct Skipped(usize);

impl Serialize for Skipped {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(2))?;
        let reason = format!(
            "left out: the answer's values would pass {} bytes (--max-body-bytes); ask for this key alone",
            self.0
        );
        map.serialize_entry("error", &reason)?;
        map.serialize_entry("status", &413)?;
        map.end()
    }
}

/// One key's member: its value, or why there is none.
struct Entry<'a>(&'a Result<Value, Error>);

impl Serialize for Entry<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        match self.0 {
            Ok(value) => {
                match value.as_str() {
                    Ok(text) => map.serialize_entry("value", text)?,
                    Err(_) => map.serialize_entry(
                        "value_base64",
                        &base64::engine::general_purpose::STANDARD.encode(value.as_bytes()),
                    )?,
                }
                let expiry = value.expiry_unix_nanos();
                if expiry != 0 {
                    map.serialize_entry("expires_unix_ms", &(expiry / 1_000_000))?;
                }
            }
            Err(error) if error.is_not_found() => {
                map.serialize_entry("error", "not found")?;
                map.serialize_entry("status", &404)?;
            }
            Err(error) => {
                // The error names the key: logged at debug level only, as a
                // single get's failure is.
                tracing::debug!(error = %peercache::trace::Escaped(error), "get failed");
                map.serialize_entry("error", &error.to_string())?;
                map.serialize_entry("status", &503)?;
            }
        }
        map.end()
    }
}

/// A serde visitor for the array of keys that stops at a key count.
mod bounded {
    use serde::de::{self, DeserializeSeed, SeqAccess, Visitor};
    use std::cell::Cell;
    use std::fmt;

    /// The keys; `over` is set when the limit stopped the parse.
    pub(super) struct Keys<'a> {
        pub(super) max: usize,
        pub(super) over: &'a Cell<bool>,
    }

    impl<'de> DeserializeSeed<'de> for Keys<'_> {
        type Value = Vec<String>;

        fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_seq(self)
        }
    }

    impl<'de> Visitor<'de> for Keys<'_> {
        type Value = Vec<String>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an array of strings")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut keys = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(self.max));
            while let Some(key) = seq.next_element::<String>()? {
                if keys.len() == self.max {
                    self.over.set(true);
                    return Err(de::Error::custom(format_args!(
                        "more than {} keys",
                        self.max
                    )));
                }
                keys.push(key);
            }
            Ok(keys)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_within_the_limit() {
        assert_eq!(parse_keys(br#"["a","b","a"]"#, 3).unwrap(), ["a", "b", "a"]);
        assert_eq!(parse_keys(b" [] ", 3).unwrap(), Vec::<String>::new());
        let (status, message) = parse_keys(br#"["a","b","c","d"]"#, 3).unwrap_err();
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert!(message.contains("at most 3 keys per batch"), "{message}");
        for bad in [
            &br#"{"a":1}"#[..],
            b"[1]",
            b"\"a\"",
            b"",
            b"[\"a\"] x",
            b"[\"a\"",
        ] {
            let (status, message) = parse_keys(bad, 3).unwrap_err();
            assert_eq!(status, StatusCode::BAD_REQUEST, "{bad:?}");
            assert!(message.contains("JSON array of keys"), "{message}");
        }
    }

    #[tokio::test]
    async fn answers_name_each_key_once_in_order() {
        let group = peercache::Node::new()
            .new_group(
                "t",
                1 << 20,
                peercache::loader_fn(|key: String| async move {
                    let at =
                        std::time::UNIX_EPOCH + std::time::Duration::from_millis(4_102_444_800_000);
                    match key.as_str() {
                        "t" => Ok(Value::from("héllo")),
                        "b" => Ok(Value::new(vec![0u8, 0xff, 1]).with_expiry(at)),
                        "e" => Err(peercache::LoadError::msg("boom")),
                        _ => Err(peercache::LoadError::NotFound),
                    }
                }),
            )
            .unwrap();
        let keys: Vec<String> = ["t", "b", "t", "x", "e"].map(String::from).into();
        let answers = group.get_many(&keys).await;
        let text = serde_json::to_string(&Answers {
            keys: &keys,
            answers: &answers,
            budget: 1 << 20,
        })
        .unwrap();
        let at: Vec<usize> = ["\"t\":{", "\"b\":{", "\"x\":{", "\"e\":{"]
            .iter()
            .map(|member| text.find(member).unwrap())
            .collect();
        assert!(
            at.is_sorted() && text.matches("\"t\":{").count() == 1,
            "{text}"
        );
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(json["t"], serde_json::json!({"value": "héllo"}));
        assert_eq!(
            json["b"],
            serde_json::json!({"value_base64": "AP8B", "expires_unix_ms": 4_102_444_800_000_u64})
        );
        assert_eq!(
            json["x"],
            serde_json::json!({"error": "not found", "status": 404})
        );
        assert_eq!(json["e"]["status"], 503);
        assert!(
            json["e"]["error"].as_str().unwrap().contains("boom"),
            "{json}"
        );
    }
}

#[cfg(test)]
mod budget_tests {
    use super::*;

    #[tokio::test]
    async fn values_past_the_budget_are_left_out_for_the_client_to_ask_alone() {
        let group = peercache::Node::new()
            .new_group(
                "t",
                1 << 20,
                peercache::loader_fn(|key: String| async move { Ok(key.repeat(4)) }),
            )
            .unwrap();
        let keys: Vec<String> = ["aa", "bbbbbb", "c"].map(String::from).into();
        let answers = group.get_many(&keys).await;
        // 8 bytes of "aa", then 24 of "bbbbbb" would pass 12; 4 of "c" fit.
        let text = serde_json::to_string(&Answers {
            keys: &keys,
            answers: &answers,
            budget: 12,
        })
        .unwrap();
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(json["aa"]["value"], "aaaaaaaa");
        assert_eq!(json["bbbbbb"]["status"], 413, "{json}");
        assert!(json["bbbbbb"]["error"]
            .as_str()
            .unwrap()
            .contains("ask for this key alone"));
        assert_eq!(json["c"]["value"], "cccc");
    }
}
