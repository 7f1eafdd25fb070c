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
//!
//! Any `tracing` subscriber sees the spans (for logs, `tracing-subscriber`'s
//! `fmt` with the filter `peercache=debug`; for distributed traces,
//! `tracing-opentelemetry`). Here a small layer lists them:
//!
//! ```
//! use peercache::{loader_fn, KeyInTraces, Node};
//! use std::sync::{Arc, Mutex};
//! use tracing::{field::Field, span, Subscriber};
//! use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
//!
//! struct Spans(Arc<Mutex<Vec<String>>>);
//!
//! impl<S: Subscriber> Layer<S> for Spans {
//!     fn on_new_span(&self, attrs: &span::Attributes<'_>, _: &span::Id, _: Context<'_, S>) {
//!         let mut key = String::new();
//!         attrs.record(&mut |field: &Field, value: &dyn std::fmt::Debug| {
//!             if field.name() == "key" {
//!                 key = format!("{value:?}");
//!             }
//!         });
//!         self.0.lock().unwrap().push(format!("{} key={key}", attrs.metadata().name()));
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), peercache::Error> {
//! let spans = Arc::new(Mutex::new(Vec::new()));
//! let _subscriber = tracing::subscriber::set_default(
//!     tracing_subscriber::registry().with(Spans(Arc::clone(&spans))),
//! );
//!
//! let group = Node::new()
//!     .group_builder("users")
//!     .key_in_traces(KeyInTraces::Hashed)
//!     .build(loader_fn(|id: String| async move { Ok(format!("user {id}")) }))?;
//! group.get("ada@example.com").await?; // a miss: a get span and a load span
//! group.get("ada@example.com").await?; // a hit: no span
//!
//! let spans = spans.lock().unwrap();
//! assert_eq!(spans.len(), 2);
//! assert!(spans[0].starts_with("peercache.get key=sha256:"));
//! assert!(spans[1].starts_with("peercache.load key=sha256:"));
//! # Ok(())
//! # }
//! ```

use sha2::{Digest, Sha256};
use std::fmt;
use std::time::Instant;
use tracing::Span;

/// [`KeyInTraces`] is a group's setting, at the crate root: defined in a
/// private module so that it has that one path.
pub(crate) mod setting {
    /// How keys appear in tracing spans and events.
    ///
    /// Set per group with [`crate::GroupBuilder::key_in_traces`]; the
    /// [`trace`](crate::trace) module shows the spans.
    ///
    /// ```
    /// use peercache::{loader_fn, KeyInTraces, Node};
    ///
    /// # fn main() -> Result<(), peercache::Error> {
    /// let node = Node::new();
    /// // Follow one key's story across spans without writing it down.
    /// node.group_builder("sessions")
    ///     .key_in_traces(KeyInTraces::Hashed)
    ///     .build(loader_fn(|token: String| async move { Ok(token.len().to_string()) }))?;
    /// assert_eq!(KeyInTraces::default(), KeyInTraces::Plain);
    /// # Ok(())
    /// # }
    /// ```
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
}
pub(crate) use setting::KeyInTraces;

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
            KeyInTraces::Plain => fmt::Display::fmt(&Escaped(self.key), f),
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

/// Text from outside (a key, a peer's answer, an error naming them) made
/// safe for a log line: control characters, line and paragraph separators
/// and bidirectional overrides are written escaped as Rust writes them
/// (`\n`, `\u{1b}`, `\u{2028}`), so a key cannot end a log line and forge
/// the next one, reorder what a reader sees, or send escape sequences to a
/// terminal. Everything else, non-ASCII letters included, is written as
/// it is.
///
/// ```
/// use peercache::trace::Escaped;
///
/// let key = "k\nERROR forged line";
/// assert_eq!(Escaped(key).to_string(), "k\\nERROR forged line");
/// assert_eq!(Escaped("grün").to_string(), "grün");
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Escaped<T>(pub T);

impl<T: fmt::Display> fmt::Display for Escaped<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Escaping<'a, 'b>(&'a mut fmt::Formatter<'b>);
        impl fmt::Write for Escaping<'_, '_> {
            fn write_str(&mut self, text: &str) -> fmt::Result {
                let mut rest = text;
                while let Some(at) = rest.find(needs_escape) {
                    self.0.write_str(&rest[..at])?;
                    let c = rest[at..].chars().next().unwrap_or_default();
                    write!(self.0, "{}", c.escape_default())?;
                    rest = &rest[at + c.len_utf8()..];
                }
                self.0.write_str(rest)
            }
        }
        fmt::write(&mut Escaping(f), format_args!("{}", self.0))
    }
}

/// Control characters, and the characters that move or reorder text on a
/// screen: line and paragraph separators, bidirectional overrides.
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
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
        assert_eq!(
            KeyInTraces::Plain
                .show("a\r\nb\u{1b}[31m\u{7f}")
                .to_string(),
            "a\\r\\nb\\u{1b}[31m\\u{7f}"
        );
        assert_eq!(
            Escaped("a\u{2028}b\u{202e}c\u{2066}").to_string(),
            "a\\u{2028}b\\u{202e}c\\u{2066}"
        );
        assert_ne!(hashed, KeyInTraces::Hashed.show("user:43").to_string());
    }
}
