//! Tracing spans of a group's slow paths, and how keys appear in them.
//!
//! Every get that misses this node's caches, every load by this node's
//! loader, every fetch from an owner, and every remove, set and purge runs in
//! a `tracing` span (level `DEBUG`, target `peercache`):
//!
//! | span | fields |
//! | --- | --- |
//! | `peercache.get` (a miss; hits are not traced: a span would cost more than the hit) | `group`, `key`, `outcome`, `duration_us` |
//! | `peercache.serve_peer` (a peer's request that missed) | `group`, `key`, `outcome`, `duration_us` |
//! | `peercache.load` | `group`, `key`, `outcome`, `duration_us` |
//! | `peercache.peer_fetch` | `group`, `key`, `peer`, `outcome`, `duration_us` |
//! | `peercache.remove`, `peercache.set`, `peercache.purge` | `group`, `key` (or `keys`, a count), `outcome`, `failed_peers`, `duration_us` |
//!
//! `outcome` is `ok`, `not_found`, `error` or, for a fetch, `unavailable`
//! (the key was then loaded here); for a change, `ok` or `partial` (some
//! peers failed, named in `failed_peers`). With no subscriber interested,
//! a span costs a check of a static flag.
//!
//! Keys can be personal data. [`KeyInTraces`] (set per group with
//! [`crate::GroupBuilder::key_in_traces`]) says how they appear: as they are,
//! as a short hash, or not at all. The hash is formatted only when a
//! subscriber records the field.

use sha2::{Digest, Sha256};
use std::fmt;
use std::time::Instant;
use tracing::Span;

/// How keys appear in tracing spans and events.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum KeyInTraces {
    /// The key itself (the default).
    #[default]
    Plain,
    /// `sha256:` and the first 8 bytes of the key's SHA-256, in hex: the
    /// same key always shows the same value, so one key's story can be
    /// followed. Not a secret: a key from a small space (user ids) can be
    /// found by hashing every candidate.
    Hashed,
    /// `-`: keys never appear.
    Hidden,
}

/// A key as [`KeyInTraces`] says to show it; formatted lazily.
pub(crate) struct Shown<'a> {
    key: &'a str,
    how: KeyInTraces,
}

impl KeyInTraces {
    pub(crate) fn show(self, key: &str) -> Shown<'_> {
        Shown { key, how: self }
    }
}

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.how {
            KeyInTraces::Plain => f.write_str(self.key),
            KeyInTraces::Hidden => f.write_str("-"),
            KeyInTraces::Hashed => {
                f.write_str("sha256:")?;
                for byte in &Sha256::digest(self.key.as_bytes())[..8] {
                    write!(f, "{byte:02x}")?;
                }
                Ok(())
            }
        }
    }
}

/// The start of a traced operation: records `outcome` and `duration_us`
/// on its span when finished. Reads the clock only if the span is enabled.
pub(crate) struct Timed {
    span: Span,
    started: Option<Instant>,
}

impl Timed {
    pub(crate) fn start(span: Span) -> Timed {
        let started = (!span.is_disabled()).then(Instant::now);
        Timed { span, started }
    }

    pub(crate) fn span(&self) -> &Span {
        &self.span
    }

    pub(crate) fn finish(&self, outcome: &'static str) {
        if let Some(started) = self.started {
            self.span.record("outcome", outcome);
            self.span
                .record("duration_us", started.elapsed().as_micros() as u64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_show_as_configured() {
        assert_eq!(KeyInTraces::Plain.show("user:42").to_string(), "user:42");
        assert_eq!(KeyInTraces::Hidden.show("user:42").to_string(), "-");
        let hashed = KeyInTraces::Hashed.show("user:42").to_string();
        assert!(
            hashed.starts_with("sha256:") && hashed.len() == 7 + 16,
            "{hashed}"
        );
        assert!(!hashed.contains("user"));
        assert_eq!(hashed, KeyInTraces::Hashed.show("user:42").to_string());
        assert_ne!(hashed, KeyInTraces::Hashed.show("user:43").to_string());
    }
}
