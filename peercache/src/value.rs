//! The immutable value a group hands out.
//!
//! A [`Value`] is one pointer to a shared, immutable block holding its
//! bytes and expiry (`value/block.rs`), so cloning it is a single
//! reference-count increment and a cache hit copies nothing: the Rust
//! answer to Go's `ByteView`. The helpers cover what Go's sinks offered
//! (`StringSink`, `ByteViewSink`, `ProtoSink`): read the value as bytes, as
//! UTF-8 text, or as a decoded protobuf message.
//!
//! A value may carry an expiry (an instant in wall-clock time, as the wire's
//! `expire` field has it: Unix nanoseconds). A group never serves a value
//! past its expiry: it loads the key again. Stored as `i64` nanoseconds with
//! 0 for "never", the same encoding as the wire.
//!
//! Why one pointer rather than a `Bytes`: a cache hit clones the value, and
//! on the 2-core machine of BENCHMARKS.md cloning and dropping a shared
//! `Bytes` (two calls through its vtable, two atomic operations) measured
//! 14 ns against 4 ns for an `Arc`: most of a hit. Small values (at most
//! 1 KiB) are copied into the block, one allocation in all; larger ones
//! keep their `Bytes` as given, never copied.
//!
//! A value stored in a cache also carries the key of its entry, in the
//! same block: the cache finds entries by it and stores no key apart. The
//! key is not part of what a value is (it is not compared, hashed or
//! shown), and a value made by a loader has none.

mod block;

/// Values up to this long are copied into their block; longer ones keep
/// their own buffer.
pub(crate) use block::MAX_INSIDE;

use bytes::Bytes;
use std::fmt;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Why a [`Value`] could not be read in the form asked for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValueError {
    /// The value is not valid UTF-8; read it with [`Value::as_bytes`] instead.
    #[error("value is not valid UTF-8 (first bad byte at offset {valid_up_to}); read it as bytes instead")]
    NotUtf8 {
        /// Length of the valid UTF-8 prefix.
        valid_up_to: usize,
    },
    /// The value is not a valid encoding of the requested protobuf message.
    #[error("value is not a valid {message} protobuf message: {reason}")]
    Decode {
        /// Rust type name of the message that was asked for.
        message: &'static str,
        /// What prost reported.
        reason: String,
    },
}

/// An immutable, cheaply clonable cached value.
///
/// Two values are equal when their bytes and their expiries are.
///
/// A loader returns anything that converts into a value (`&'static str`,
/// `String`, `Vec<u8>`, [`Bytes`]); a get hands one back, to be read as
/// text or bytes:
///
/// ```
/// use peercache::{Value, ValueError};
///
/// let text = Value::from("grün");
/// assert_eq!(text.as_str(), Ok("grün"));
/// assert_eq!(text.len(), 5); // bytes, not characters
///
/// let binary = Value::from(vec![0xff, 0x00]);
/// assert_eq!(binary.as_bytes(), [0xff, 0x00]);
/// assert!(matches!(binary.as_str(), Err(ValueError::NotUtf8 { valid_up_to: 0 })));
///
/// // Clones share the bytes: no copy.
/// let copy = binary.clone();
/// assert_eq!(copy.bytes().as_ptr(), binary.bytes().as_ptr());
/// ```
#[derive(Clone)]
pub struct Value(block::Block);

impl Value {
    /// This value with an expiry: after `at`, groups stop serving it and load
    /// the key again. An instant at or before 1970 (the Unix epoch) counts as
    /// already expired.
    ///
    /// A loader uses it to give a value its own lifetime (it overrides the
    /// group's [`ttl`](crate::GroupBuilder::ttl)):
    ///
    /// ```
    /// use peercache::{loader_fn, LoadError, Value};
    /// use std::time::{Duration, SystemTime};
    ///
    /// let tokens = loader_fn(|user: String| async move {
    ///     let token = format!("token-for-{user}");
    ///     let expires = SystemTime::now() + Duration::from_secs(300);
    ///     Ok::<_, LoadError>(Value::from(token).with_expiry(expires))
    /// });
    /// # let _ = tokens;
    ///
    /// let at = SystemTime::now() + Duration::from_secs(60);
    /// let value = Value::from("v").with_expiry(at);
    /// assert_eq!(value.expires_at(), Some(at));
    /// assert!(!value.is_expired_at(at - Duration::from_secs(1)));
    /// assert!(value.is_expired_at(at));
    /// ```
    pub fn with_expiry(self, at: SystemTime) -> Self {
        self.with_expire_nanos(match at.duration_since(UNIX_EPOCH) {
            Ok(since) => i64::try_from(since.as_nanos()).unwrap_or(i64::MAX).max(1),
            Err(_) => 1,
        })
    }

    /// This value with the expiry given as Unix nanoseconds, the wire's
    /// `expire` field; 0 or a negative number means no expiry (as mailgun
    /// reads it).
    pub fn with_expiry_unix_nanos(self, nanos: i64) -> Self {
        self.with_expire_nanos(nanos.max(0))
    }

    /// This value with `expire_nanos` (already normalised): a new block
    /// (large bytes are shared, not copied).
    fn with_expire_nanos(self, expire_nanos: i64) -> Self {
        if self.expiry_unix_nanos() == expire_nanos {
            return self;
        }
        Value(block::remake(&self.0, self.key_bytes(), expire_nanos))
    }

    /// When this value expires, or `None` if it never does.
    pub fn expires_at(&self) -> Option<SystemTime> {
        let nanos = self.expiry_unix_nanos();
        (nanos > 0).then(|| UNIX_EPOCH + Duration::from_nanos(nanos.unsigned_abs()))
    }

    /// The expiry as Unix nanoseconds (the wire's `expire`), 0 for none.
    #[inline]
    pub fn expiry_unix_nanos(&self) -> i64 {
        block::expiry(&self.0)
    }

    /// True if the value has an expiry and `now` is at or past it.
    pub fn is_expired_at(&self, now: SystemTime) -> bool {
        self.expiry_unix_nanos() > 0 && self.expires_at().is_some_and(|at| now >= at)
    }

    /// This value with stale windows of its own, as an HTTP origin's
    /// `Cache-Control: stale-while-revalidate=N, stale-if-error=N` gives
    /// them: how long past its expiry a group may serve it while
    /// refreshing it, and when loading it again fails. A group's own
    /// windows ([`crate::GroupBuilder::stale_while_revalidate`],
    /// [`crate::GroupBuilder::stale_if_error`]) override them; a group
    /// without its own uses these. Whole seconds (rounded down, at most
    /// `u32::MAX`); zero for none. They matter only with an expiry. The
    /// peer protocol does not carry them: the owner, which holds the value,
    /// serves it stale to the peers that ask.
    ///
    /// ```
    /// use peercache::Value;
    /// use std::time::Duration;
    ///
    /// let page = Value::from("<html>").with_stale_windows(Duration::from_secs(30), Duration::from_secs(3600));
    /// assert_eq!(page.stale_windows(), (Duration::from_secs(30), Duration::from_secs(3600)));
    /// assert_eq!(Value::from("x").stale_windows(), (Duration::ZERO, Duration::ZERO));
    /// ```
    pub fn with_stale_windows(self, while_revalidate: Duration, if_error: Duration) -> Self {
        let seconds = |d: Duration| u32::try_from(d.as_secs()).unwrap_or(u32::MAX);
        let windows = [seconds(while_revalidate), seconds(if_error)];
        if block::windows(&self.0) == windows {
            return self;
        }
        let expiry = self.expiry_unix_nanos();
        Value(block::remake_with(
            &self.0,
            self.key_bytes(),
            expiry,
            windows,
        ))
    }

    /// The value's own stale windows ([`Value::with_stale_windows`]):
    /// `(while_revalidate, if_error)`, zero for none.
    pub fn stale_windows(&self) -> (Duration, Duration) {
        let [revalidate, if_error] = block::windows(&self.0);
        (
            Duration::from_secs(revalidate.into()),
            Duration::from_secs(if_error.into()),
        )
    }

    /// Whether the value carries stale windows of its own.
    #[inline]
    pub(crate) fn has_stale_windows(&self) -> bool {
        block::windows(&self.0) != [0; 2]
    }

    /// The longer of the value's own stale windows, in nanoseconds.
    #[inline]
    pub(crate) fn own_grace_nanos(&self) -> i64 {
        let [revalidate, if_error] = block::windows(&self.0);
        i64::from(revalidate.max(if_error)) * 1_000_000_000
    }

    /// The key of the cache entry this value is stored as (empty for a
    /// value that is not).
    #[inline(always)]
    pub(crate) fn key_bytes(&self) -> &[u8] {
        block::key(&self.0)
    }

    /// A cached not-found of `key` until `expire_nanos` (Unix nanoseconds):
    /// kept in a cache like a value, answered as not-found, never handed to
    /// an application.
    pub(crate) fn negative(key: &[u8], expire_nanos: i64) -> Self {
        Value(block::negative(key, expire_nanos.max(1)))
    }

    /// Whether this is a cached not-found ([`Value::negative`]).
    #[inline(always)]
    pub(crate) fn is_negative(&self) -> bool {
        block::is_negative(&self.0)
    }

    /// This value as a cache keeps it under `key`: the same bytes and
    /// expiry in a block that carries the key (small bytes are copied,
    /// large ones shared). A value already kept under `key` is returned as
    /// it is.
    pub(crate) fn keyed(self, key: &[u8]) -> Self {
        let expiry = self.expiry_unix_nanos();
        self.keyed_expiring(key, expiry)
    }

    /// A value holding a copy of `bytes`, already in the form a cache keeps
    /// under `key`, with the wire's expiry `expire_nanos` (0 or less for
    /// none): one copy, for bytes that must not stay where they are (a
    /// slice of a network read buffer).
    pub(crate) fn copied_keyed(key: &[u8], bytes: &[u8], expire_nanos: i64) -> Self {
        Value(block::copied(key, expire_nanos.max(0), bytes))
    }

    /// A value of `bytes` (a buffer of its own, as the network read it:
    /// kept, not copied, when it is large; small ones are copied into the
    /// block), in the form a cache keeps under `key`, with the wire's expiry.
    pub(crate) fn owned_keyed(key: &[u8], bytes: Bytes, expire_nanos: i64) -> Self {
        Value(block::make(key, expire_nanos.max(0), bytes))
    }

    /// The value's bytes as a shared handle when they live in a buffer of
    /// their own (values over 1 KiB): lent without a copy.
    pub(crate) fn shared_bytes(&self) -> Option<&Bytes> {
        block::outside(&self.0)
    }

    /// [`Value::keyed`] with the expiry `expire_nanos` (0 for none), in
    /// one step (one block made, at most).
    pub(crate) fn keyed_expiring(self, key: &[u8], expire_nanos: i64) -> Self {
        if self.key_bytes() == key && self.expiry_unix_nanos() == expire_nanos {
            return self;
        }
        Value(block::remake(&self.0, key, expire_nanos))
    }

    /// Wraps bytes as a value: up to 1 KiB they are copied into the value's
    /// own block (one allocation, the least memory in a cache); larger ones
    /// are kept as they are, without a copy.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use peercache::Value;
    ///
    /// let value = Value::new(Bytes::from_static(b"\x89PNG"));
    /// assert_eq!(value.as_bytes(), b"\x89PNG");
    /// assert_eq!(Value::new(vec![1, 2, 3]).len(), 3);
    /// ```
    pub fn new(bytes: impl Into<Bytes>) -> Self {
        Value(block::make(&[], 0, bytes.into()))
    }

    /// A value of bytes that live for the whole program: copied into the
    /// value's block up to 1 KiB, as [`Value::new`] does, kept where they
    /// are above.
    pub fn from_static(bytes: &'static [u8]) -> Self {
        Value::new(Bytes::from_static(bytes))
    }

    /// Encodes a protobuf message as a value (what Go's `ProtoSink` stored);
    /// [`Value::decode`] reads it back. Any `prost` message works:
    ///
    /// ```
    /// use peercache::{Value, ValueError};
    ///
    /// #[derive(Clone, PartialEq, prost::Message)]
    /// struct User {
    ///     #[prost(string, tag = "1")]
    ///     name: String,
    ///     #[prost(uint32, tag = "2")]
    ///     age: u32,
    /// }
    ///
    /// let ada = User { name: "Ada".into(), age: 36 };
    /// let value = Value::encode(&ada);
    /// assert_eq!(value.decode::<User>(), Ok(ada));
    ///
    /// let garbage = Value::from_static(b"\x0a\xff");
    /// assert!(matches!(garbage.decode::<User>(), Err(ValueError::Decode { .. })));
    /// ```
    pub fn encode<M: prost::Message>(message: &M) -> Self {
        Value::new(message.encode_to_vec())
    }

    /// The value's bytes.
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        block::value(&self.0)
    }

    /// The value's bytes as a shared [`Bytes`] handle (no copy; a small
    /// value's handle keeps its block alive).
    ///
    /// ```
    /// use peercache::Value;
    ///
    /// let value = Value::from("hello world");
    /// let hello = value.bytes().slice(..5); // shares the value's memory
    /// assert_eq!(hello, "hello");
    /// ```
    pub fn bytes(&self) -> Bytes {
        self.clone().into_bytes()
    }

    /// Consumes the value and returns its [`Bytes`] (no copy).
    pub fn into_bytes(mut self) -> Bytes {
        match block::take_outside(&mut self.0) {
            Some(bytes) => bytes,
            // The handle keeps the block alive and reads the value in it.
            None => Bytes::from_owner(self),
        }
    }

    /// The value as UTF-8 text, or [`ValueError::NotUtf8`].
    ///
    /// ```
    /// use peercache::Value;
    ///
    /// assert_eq!(Value::from(String::from("red")).as_str(), Ok("red"));
    /// let err = Value::from(vec![b'o', b'k', 0xff]).as_str().unwrap_err();
    /// assert!(err.to_string().contains("offset 2"));
    /// ```
    pub fn as_str(&self) -> Result<&str, ValueError> {
        std::str::from_utf8(self.as_bytes()).map_err(|e| ValueError::NotUtf8 {
            valid_up_to: e.valid_up_to(),
        })
    }

    /// Decodes the value as the protobuf message `M`, or [`ValueError::Decode`].
    pub fn decode<M: prost::Message + Default>(&self) -> Result<M, ValueError> {
        M::decode(self.as_bytes()).map_err(|e| ValueError::Decode {
            message: std::any::type_name::<M>(),
            reason: e.to_string(),
        })
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.as_bytes().len()
    }

    /// True when the value has no bytes (an empty value is a valid value).
    pub fn is_empty(&self) -> bool {
        self.as_bytes().is_empty()
    }
}

impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        self.expiry_unix_nanos() == other.expiry_unix_nanos() && self.as_bytes() == other.as_bytes()
    }
}

impl Eq for Value {}

impl std::hash::Hash for Value {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
        self.expiry_unix_nanos().hash(state);
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Values can be large; show a bounded prefix.
        const SHOWN: usize = 64;
        let bytes = self.as_bytes();
        let shown = &bytes[..bytes.len().min(SHOWN)];
        write!(
            f,
            "Value({} bytes: {:?}",
            bytes.len(),
            Bytes::copy_from_slice(shown)
        )?;
        if bytes.len() > SHOWN {
            f.write_str("…")?;
        }
        f.write_str(")")
    }
}

impl From<Bytes> for Value {
    fn from(bytes: Bytes) -> Self {
        Value::new(bytes)
    }
}

impl Default for Value {
    /// The empty value, without an expiry. Every default value shares one
    /// allocation.
    fn default() -> Self {
        static EMPTY: OnceLock<Value> = OnceLock::new();
        EMPTY.get_or_init(|| Value::new(Bytes::new())).clone()
    }
}

impl From<Vec<u8>> for Value {
    fn from(bytes: Vec<u8>) -> Self {
        Value::new(bytes)
    }
}

impl From<String> for Value {
    fn from(text: String) -> Self {
        Value::new(text)
    }
}

impl From<&'static str> for Value {
    fn from(text: &'static str) -> Self {
        Value::from_static(text.as_bytes())
    }
}

impl From<&'static [u8]> for Value {
    fn from(bytes: &'static [u8]) -> Self {
        Value::from_static(bytes)
    }
}

impl AsRef<[u8]> for Value {
    fn as_ref(&self) -> &[u8] {
        self.as_bytes()
    }
}

#[cfg(test)]
mod tests;
