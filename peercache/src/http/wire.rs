//! The peer URL: how group and key travel in a request path, both ways.
//!
//! Client side, every byte outside `A-Za-z0-9-._~` is percent-escaped. That is
//! stricter than either Go family (golang query-escapes, turning a space into
//! `+`; mailgun path-escapes, leaving `+` as is), and it is the one spelling
//! that every Go server decodes back to the same key.
//!
//! Server side, the path after the base path is split at its first `/`
//! (group before, key after: a key may contain `/`), then each part is
//! percent-decoded. What a raw `+` means depends on who sent it: a golang
//! client only ever sends `+` for a space (it escapes a real `+` as `%2B`),
//! a mailgun client sends a real `+` raw. [`PlusInPath`] says which reading
//! a server uses. Go servers read `+` literally, which is why golang nodes
//! load `a+b` when asked for `a b` (see PROTOCOL.md); peercache in golang
//! mode reads it as a space and so loads the key the client meant.
//!
//! Keys are Rust `&str`, so a request whose key is not UTF-8 once decoded
//! (Go allows any bytes) is refused with 400; a golang client then loads
//! that key itself, a mailgun client reports the error.
//!
//! The decoder is written here, not taken from `percent-encoding`: that
//! crate passes a malformed escape such as `%zz` through unchanged, where a
//! server must refuse it (Go answers 400), so that two spellings can never
//! name one key.

use super::options::PlusInPath;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use std::borrow::Cow;
use std::fmt;

/// Bytes left unescaped in a peer URL: RFC 3986's unreserved set.
const ESCAPED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A group name or key escaped for a peer URL: every byte outside
/// `A-Za-z0-9-._~` as `%XX`.
pub fn escape(part: &str) -> impl fmt::Display + '_ {
    utf8_percent_encode(part, ESCAPED)
}

/// The URL of `key` in `group` at the peer whose base URL is `base_url`:
/// `<base_url><base_path><escape(group)>/<escape(key)>`, as Go builds it.
///
/// ```
/// use peercache::http::wire::peer_url;
/// use peercache::http::DEFAULT_BASE_PATH;
///
/// let url = peer_url("http://10.0.0.2:8080", DEFAULT_BASE_PATH, "pages", "docs/a b+c");
/// assert_eq!(url, "http://10.0.0.2:8080/_groupcache/pages/docs%2Fa%20b%2Bc");
/// ```
pub fn peer_url(base_url: &str, base_path: &str, group: &str, key: &str) -> String {
    format!("{base_url}{base_path}{}/{}", escape(group), escape(key))
}

/// Why a peer request path was refused. Answered with 400.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// The path does not start with the base path.
    #[error("the path is not under the peer base path {base_path:?}")]
    NotUnderBasePath {
        /// The configured base path.
        base_path: String,
    },
    /// Nothing separates group and key.
    #[error("the path has no '/' after the group name: ask for <base path><group>/<key>")]
    MissingKey,
    /// The group part is empty.
    #[error("the group name in the path is empty: ask for <base path><group>/<key>")]
    EmptyGroup,
    /// A `%` not followed by two hex digits.
    #[error("the {part} has an invalid percent-escape at byte {offset}: '%' must be followed by two hex digits")]
    BadEscape {
        /// `"group"` or `"key"`.
        part: &'static str,
        /// Offset of the `%` in the escaped part.
        offset: usize,
    },
    /// The decoded bytes are not UTF-8.
    #[error("the {part} is not UTF-8 once percent-decoded; peercache keys and group names are UTF-8 text")]
    NotUtf8 {
        /// `"group"` or `"key"`.
        part: &'static str,
    },
}

/// Group and key of a peer request, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerPath<'a> {
    /// The group name.
    pub group: Cow<'a, str>,
    /// The key (may be empty, as golang allows).
    pub key: Cow<'a, str>,
}

/// Splits and decodes a request path (without query) of the peer endpoint.
///
/// ```
/// use peercache::http::wire::{parse_peer_path, PathError};
/// use peercache::http::{PlusInPath, DEFAULT_BASE_PATH};
///
/// // The group ends at the first '/'; a key may contain more.
/// let parsed = parse_peer_path("/_groupcache/pages/docs/a+b", DEFAULT_BASE_PATH, PlusInPath::Space).unwrap();
/// assert_eq!((&*parsed.group, &*parsed.key), ("pages", "docs/a b")); // golang's '+' is a space
/// let parsed = parse_peer_path("/_groupcache/pages/a+b", DEFAULT_BASE_PATH, PlusInPath::Literal).unwrap();
/// assert_eq!(parsed.key, "a+b"); // mailgun's '+' is a plus
///
/// let bad = parse_peer_path("/_groupcache/pages/%zz", DEFAULT_BASE_PATH, PlusInPath::Space);
/// assert!(matches!(bad, Err(PathError::BadEscape { part: "key", .. })));
/// ```
pub fn parse_peer_path<'a>(
    path: &'a str,
    base_path: &str,
    plus: PlusInPath,
) -> Result<PeerPath<'a>, PathError> {
    let rest = path
        .strip_prefix(base_path)
        .ok_or_else(|| PathError::NotUnderBasePath {
            base_path: base_path.to_owned(),
        })?;
    let (group, key) = rest.split_once('/').ok_or(PathError::MissingKey)?;
    if group.is_empty() {
        return Err(PathError::EmptyGroup);
    }
    Ok(PeerPath {
        group: decode(group, "group", plus)?,
        key: decode(key, "key", plus)?,
    })
}

/// Strict percent-decoding: `%XX` with two hex digits, `+` per `plus`.
pub fn decode<'a>(
    part: &'a str,
    what: &'static str,
    plus: PlusInPath,
) -> Result<Cow<'a, str>, PathError> {
    let special = |b: &u8| *b == b'%' || (*b == b'+' && plus == PlusInPath::Space);
    if !part.as_bytes().iter().any(special) {
        return Ok(Cow::Borrowed(part));
    }
    let bytes = part.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = |j: usize| bytes.get(j).and_then(|b| (*b as char).to_digit(16));
                match (hex(i + 1), hex(i + 2)) {
                    (Some(hi), Some(lo)) => out.push((hi * 16 + lo) as u8),
                    _ => {
                        return Err(PathError::BadEscape {
                            part: what,
                            offset: i,
                        })
                    }
                }
                i += 3;
            }
            b'+' if plus == PlusInPath::Space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out)
        .map(Cow::Owned)
        .map_err(|_| PathError::NotUtf8 { part: what })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::DEFAULT_BASE_PATH;

    fn parse(path: &str, plus: PlusInPath) -> Result<(String, String), PathError> {
        parse_peer_path(path, DEFAULT_BASE_PATH, plus).map(|p| (p.group.into(), p.key.into()))
    }

    #[test]
    fn escapes_every_byte_outside_the_unreserved_set() {
        assert_eq!(escape("a b+c/d%e").to_string(), "a%20b%2Bc%2Fd%25e");
        assert_eq!(escape("üx?#&=").to_string(), "%C3%BCx%3F%23%26%3D");
        assert_eq!(escape("AZaz09-._~").to_string(), "AZaz09-._~");
        assert_eq!(
            peer_url("http://h:1", "/_groupcache/", "g", "x/y"),
            "http://h:1/_groupcache/g/x%2Fy"
        );
    }

    #[test]
    fn splits_at_the_first_slash_and_decodes() {
        let lit = PlusInPath::Literal;
        assert_eq!(
            parse("/_groupcache/ref/x%2Fy", lit),
            Ok(("ref".into(), "x/y".into()))
        );
        assert_eq!(
            parse("/_groupcache/ref/x/y", lit),
            Ok(("ref".into(), "x/y".into()))
        );
        assert_eq!(
            parse("/_groupcache/ref/", lit),
            Ok(("ref".into(), "".into()))
        );
        assert_eq!(
            parse("/_groupcache/ref/a+b", lit),
            Ok(("ref".into(), "a+b".into()))
        );
        let space = PlusInPath::Space;
        assert_eq!(
            parse("/_groupcache/ref/a+b", space),
            Ok(("ref".into(), "a b".into()))
        );
        assert_eq!(
            parse("/_groupcache/ref/a%2Bb", space),
            Ok(("ref".into(), "a+b".into()))
        );
        assert_eq!(
            parse("/_groupcache/ref/u%C3%BC", space),
            Ok(("ref".into(), "uü".into()))
        );
    }

    #[test]
    fn refuses_malformed_paths() {
        let lit = PlusInPath::Literal;
        assert_eq!(parse("/_groupcache/ref", lit), Err(PathError::MissingKey));
        assert_eq!(parse("/_groupcache/", lit), Err(PathError::MissingKey));
        assert_eq!(parse("/_groupcache//k", lit), Err(PathError::EmptyGroup));
        assert!(matches!(
            parse("/other/ref/k", lit),
            Err(PathError::NotUnderBasePath { .. })
        ));
        for bad in ["%", "%4", "%zz", "a%g1"] {
            assert!(
                matches!(
                    parse(&format!("/_groupcache/ref/{bad}"), lit),
                    Err(PathError::BadEscape { part: "key", .. })
                ),
                "{bad}"
            );
        }
        assert_eq!(
            parse("/_groupcache/ref/%FF", lit),
            Err(PathError::NotUtf8 { part: "key" })
        );
    }

    proptest::proptest! {
        #[test]
        fn every_key_round_trips(group in "[^/]{1,20}", key in proptest::prelude::any::<String>()) {
            for plus in [PlusInPath::Space, PlusInPath::Literal] {
                let url = peer_url("", DEFAULT_BASE_PATH, &group, &key);
                let parsed = parse_peer_path(&url, DEFAULT_BASE_PATH, plus).unwrap();
                proptest::prop_assert_eq!(&parsed.group, &group);
                proptest::prop_assert_eq!(&parsed.key, &key);
            }
        }

        #[test]
        fn arbitrary_paths_never_panic(path in proptest::prelude::any::<String>()) {
            let _ = parse_peer_path(&path, DEFAULT_BASE_PATH, PlusInPath::Space);
            let _ = parse_peer_path(&format!("{DEFAULT_BASE_PATH}{path}"), DEFAULT_BASE_PATH, PlusInPath::Literal);
        }
    }
}
