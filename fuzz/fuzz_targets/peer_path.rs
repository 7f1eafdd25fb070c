//! Fuzz target `peer_path`: the peer endpoint's path parser, fed any bytes.
//!
//! A request path is the first thing a peer server reads from the network,
//! before any group or key exists, so `wire::parse_peer_path` and
//! `wire::decode` must turn every input into either a key or a typed
//! `PathError`, never a panic. Beyond "no panic", a parse that succeeds must
//! survive the client's own spelling: escaping the decoded group and key as
//! `peer_url` does and parsing again gives them back, whichever way `+` is
//! read. That is the property that lets a Rust client and a Rust server (or
//! a Go one) agree on a key.
//!
//! The input is read lossily as UTF-8 (paths are `&str` on the server; hyper
//! hands over only valid ones), so non-UTF-8 seeds still reach the parser as
//! `U+FFFD` characters. Each input is tried as a whole path, as a path under
//! the default base path (so the fuzzer need not rediscover the prefix), and,
//! when it contains a newline, as `<base path>\n<path>` to exercise other
//! base paths.

#![no_main]

use libfuzzer_sys::fuzz_target;
use peercache::http::wire::{self, PathError};
use peercache::http::{PlusInPath, DEFAULT_BASE_PATH};

const MODES: [PlusInPath; 2] = [PlusInPath::Space, PlusInPath::Literal];

fuzz_target!(|data: &[u8]| {
    let input = String::from_utf8_lossy(data);
    let under_base = format!("{DEFAULT_BASE_PATH}{input}");
    let mut cases = vec![
        (input.as_ref(), DEFAULT_BASE_PATH),
        (under_base.as_str(), DEFAULT_BASE_PATH),
    ];
    if let Some((base, path)) = input.split_once('\n') {
        cases.push((path, base));
    }
    for (path, base) in cases {
        for plus in MODES {
            check_path(path, base, plus);
            check_decode(path, plus);
        }
    }
});

/// Parses `path`; a success must round-trip through the client's escaping,
/// and an error must be the one the path's shape calls for.
fn check_path(path: &str, base: &str, plus: PlusInPath) {
    match wire::parse_peer_path(path, base, plus) {
        Ok(parsed) => {
            assert!(!parsed.group.is_empty(), "empty group accepted: {path:?}");
            let url = wire::peer_url("", base, &parsed.group, &parsed.key);
            for again in MODES {
                let back = wire::parse_peer_path(&url, base, again)
                    .unwrap_or_else(|e| panic!("{url:?} (from {path:?}) fails to parse: {e}"));
                assert_eq!(back.group, parsed.group, "group of {path:?} via {url:?}");
                assert_eq!(back.key, parsed.key, "key of {path:?} via {url:?}");
            }
        }
        Err(PathError::NotUnderBasePath { base_path }) => {
            assert_eq!(base_path, base);
            assert!(!path.starts_with(base), "{path:?} is under {base:?}");
        }
        Err(PathError::MissingKey) => {
            assert!(!path[base.len()..].contains('/'), "{path:?} has a key");
        }
        Err(PathError::EmptyGroup) => {
            assert!(path[base.len()..].starts_with('/'), "{path:?} has a group");
        }
        Err(PathError::BadEscape { part, offset }) => {
            let rest = &path[base.len()..];
            let (group, key) = rest.split_once('/').expect("a bad escape needs both parts");
            let text = if part == "group" { group } else { key };
            assert!(part == "group" || part == "key", "part {part:?}");
            assert_eq!(
                text.as_bytes().get(offset),
                Some(&b'%'),
                "{path:?} at {offset}"
            );
        }
        Err(PathError::NotUtf8 { part }) => {
            assert!(part == "group" || part == "key", "part {part:?}");
        }
    }
}

/// Decodes `part` alone; a success must come back unchanged from escaping.
fn check_decode(part: &str, plus: PlusInPath) {
    if let Ok(decoded) = wire::decode(part, "key", plus) {
        let escaped = wire::escape(&decoded).to_string();
        assert!(
            escaped
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~%".contains(&b)),
            "escape({decoded:?}) = {escaped:?} leaves a reserved byte"
        );
        for again in MODES {
            let back = wire::decode(&escaped, "key", again)
                .unwrap_or_else(|e| panic!("{escaped:?} (from {part:?}) fails to decode: {e}"));
            assert_eq!(back, decoded, "{part:?} via {escaped:?}");
        }
    }
}
