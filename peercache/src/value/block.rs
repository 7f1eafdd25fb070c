//! The one block a value lives in: its bytes (when small), its expiry and
//! the key of the cache entry holding it, behind a thin shared pointer.
//!
//! A cache of small values pays more for bookkeeping than for data: as a
//! loader makes it, a 12-byte value under a 20-byte key was three
//! allocations (the bytes, an `Arc` around them and their expiry, and the
//! key's `Arc<str>`), about 110 bytes as malloc counts them. Here it is
//! one: a [`triomphe::ThinArc`] (a count, no weak count, the header
//! below, the slice's length, then the slice):
//!
//! ```text
//! header   the bytes when they live elsewhere (large values, not copied);
//!          the key's length, whose top bits say an expiry follows the key,
//!          that stale windows follow it, and that the block is a cached
//!          not-found
//! slice    key bytes, then the expiry (i64 little-endian Unix nanoseconds,
//!          only with its bit), then the value's own stale windows (two u32
//!          little-endian seconds, only with theirs), then the value's bytes
//!          when they are inside
//! ```
//!
//! The pointer is one word, so a [`crate::Value`] fits a register: a hit
//! clones it with one atomic increment and hands it back without a copy
//! through memory (a two-word value costs a hit about 8 ns on a stalled
//! store-to-load forward: BENCHMARKS.md). Keeping the key beside the value
//! lets the cache's hash index hold slot numbers and find keys through the
//! values.
//!
//! Values of at most [`MAX_INSIDE`] bytes are copied in (tens of
//! nanoseconds, once, less than the allocations it saves); larger ones keep
//! their [`Bytes`] where they are, in an `Arc` of their own so the header
//! stays two words and a re-keyed copy shares them.
//!
//! triomphe rather than a hand-written thin pointer: a thin `Arc` over a
//! header and a slice is exactly what it provides, and it is a well-kept
//! crate (the reference counting of Servo and rust-analyzer); this module
//! adds no `unsafe`. The slice is assembled in a buffer and copied in with
//! the block's one allocation, and read through checked slicing.

use bytes::Bytes;
use triomphe::{Arc, ThinArc};

/// The largest value copied into its block. At 1 KiB the copy costs tens
/// of nanoseconds; above it, the bytes saved are a few percent of the
/// value and the copy grows with it.
pub(crate) const MAX_INSIDE: usize = 1024;

/// Key-length bit: an expiry follows the key.
const HAS_EXPIRY: usize = 1 << (usize::BITS - 1);
/// Key-length bit: the block is a cached not-found (no value, only a key
/// and an expiry), never handed to an application.
const NEGATIVE: usize = 1 << (usize::BITS - 2);
/// Key-length bit: the value's stale windows follow the expiry.
const HAS_STALE: usize = 1 << (usize::BITS - 3);
/// Every flag bit of the key's length.
const FLAGS: usize = HAS_EXPIRY | NEGATIVE | HAS_STALE;

const EXPIRY: usize = 8;
const STALE: usize = 8;

/// A value's own stale windows, in seconds: how long past its expiry it may
/// be served while it is refreshed, and when its load fails. `[0, 0]`:
/// none.
pub(crate) type Windows = [u32; 2];

/// The fixed part of a block.
pub(crate) struct Head {
    /// The value's bytes when they are not in the slice, shared by the
    /// blocks made from this one (so re-keying never clones the `Bytes`,
    /// which would make a loader's `Vec` allocate a shared header).
    outside: Option<Arc<Bytes>>,
    /// The key's length, with [`HAS_EXPIRY`] and [`NEGATIVE`].
    key_len: usize,
}

/// A value's block.
pub(crate) type Block = ThinArc<Head, u8>;

/// A block holding `key`, `expire_nanos` (0 for none) and `value`: copied
/// in when it is at most [`MAX_INSIDE`] bytes, else kept as it is.
pub(crate) fn make(key: &[u8], expire_nanos: i64, value: Bytes) -> Block {
    if value.len() <= MAX_INSIDE {
        copied(key, expire_nanos, &value)
    } else {
        fill(key, expire_nanos, [0; 2], &[], Some(Arc::new(value)), 0)
    }
}

/// A block holding copies of `key`, `expire_nanos` and `value`: the value
/// inside when it is at most [`MAX_INSIDE`] bytes, else in a buffer of its
/// own. One copy of the bytes, wherever they come from.
pub(crate) fn copied(key: &[u8], expire_nanos: i64, value: &[u8]) -> Block {
    if value.len() <= MAX_INSIDE {
        fill(key, expire_nanos, [0; 2], value, None, 0)
    } else {
        let bytes = Bytes::copy_from_slice(value);
        fill(key, expire_nanos, [0; 2], &[], Some(Arc::new(bytes)), 0)
    }
}

/// A copy of `block` under another key or expiry; the value's bytes are
/// shared when they live outside, copied when inside.
pub(crate) fn remake(block: &Block, key: &[u8], expire_nanos: i64) -> Block {
    remake_with(block, key, expire_nanos, windows(block))
}

/// [`remake`] with other stale windows.
pub(crate) fn remake_with(block: &Block, key: &[u8], expire_nanos: i64, windows: Windows) -> Block {
    let flags = block.header.header.key_len & NEGATIVE;
    match &block.header.header.outside {
        Some(bytes) => fill(key, expire_nanos, windows, &[], Some(bytes.clone()), flags),
        None => fill(key, expire_nanos, windows, value(block), None, flags),
    }
}

/// A cached not-found of `key`, until `expire_nanos`: no value.
pub(crate) fn negative(key: &[u8], expire_nanos: i64) -> Block {
    fill(key, expire_nanos, [0; 2], &[], None, NEGATIVE)
}

/// Whether a block is a cached not-found.
#[inline(always)]
pub(crate) fn is_negative(block: &Block) -> bool {
    block.header.header.key_len & NEGATIVE != 0
}

/// Slices up to this long are assembled in a small stack buffer (zeroed
/// first: the common entry should not pay for clearing a large one), up
/// to [`ON_STACK`] in a larger one, longer ones (long keys) in a `Vec`.
const SMALL: usize = 128;
const ON_STACK: usize = MAX_INSIDE + 256;

/// `flags`: 0 or [`NEGATIVE`].
fn fill(
    key: &[u8],
    expire_nanos: i64,
    windows: Windows,
    inside: &[u8],
    outside: Option<Arc<Bytes>>,
    flags: usize,
) -> Block {
    let expiry = if expire_nanos != 0 { EXPIRY } else { 0 };
    let stale = if windows != [0; 2] { STALE } else { 0 };
    let mut flags = flags;
    if expiry != 0 {
        flags |= HAS_EXPIRY;
    }
    if stale != 0 {
        flags |= HAS_STALE;
    }
    let head = Head {
        outside,
        key_len: key.len() | flags,
    };
    let mut stale_bytes = [0u8; STALE];
    stale_bytes[..4].copy_from_slice(&windows[0].to_le_bytes());
    stale_bytes[4..].copy_from_slice(&windows[1].to_le_bytes());
    let parts = [
        key,
        &expire_nanos.to_le_bytes()[..expiry],
        &stale_bytes[..stale],
        inside,
    ];
    let len = key.len() + expiry + stale + inside.len();
    if len <= SMALL {
        ThinArc::from_header_and_slice(head, joined(&mut [0u8; SMALL], parts))
    } else if len <= ON_STACK {
        ThinArc::from_header_and_slice(head, joined(&mut [0u8; ON_STACK], parts))
    } else {
        ThinArc::from_header_and_slice(head, &parts.concat())
    }
}

/// `parts` one after another at the start of `buf`, which is long enough.
fn joined<'b>(buf: &'b mut [u8], parts: [&[u8]; 4]) -> &'b [u8] {
    let mut at = 0;
    for part in parts {
        buf[at..at + part.len()].copy_from_slice(part);
        at += part.len();
    }
    &buf[..at]
}

/// The key's length and whether an expiry follows it.
#[inline(always)]
fn key_len(block: &Block) -> (usize, bool) {
    let len = block.header.header.key_len;
    (len & !FLAGS, len & HAS_EXPIRY != 0)
}

/// The value's own stale windows (`[0, 0]`: none).
pub(crate) fn windows(block: &Block) -> Windows {
    let flags = block.header.header.key_len;
    if flags & HAS_STALE == 0 {
        return [0; 2];
    }
    let at = (flags & !FLAGS) + EXPIRY * usize::from(flags & HAS_EXPIRY != 0);
    match block
        .slice
        .get(at..)
        .and_then(|rest| rest.first_chunk::<STALE>())
    {
        Some(w) => [
            u32::from_le_bytes([w[0], w[1], w[2], w[3]]),
            u32::from_le_bytes([w[4], w[5], w[6], w[7]]),
        ],
        None => [0; 2],
    }
}

/// The key in a block.
#[inline(always)]
pub(crate) fn key(block: &Block) -> &[u8] {
    let (len, _) = key_len(block);
    block.slice.get(..len).unwrap_or_default()
}

/// The expiry in a block (Unix nanoseconds, 0 for none).
#[inline(always)]
pub(crate) fn expiry(block: &Block) -> i64 {
    match key_len(block) {
        (len, true) => block
            .slice
            .get(len..)
            .and_then(|rest| rest.first_chunk::<EXPIRY>())
            .map_or(0, |e| i64::from_le_bytes(*e)),
        _ => 0,
    }
}

/// The value's bytes.
#[inline(always)]
pub(crate) fn value(block: &Block) -> &[u8] {
    match &block.header.header.outside {
        Some(bytes) => bytes,
        None => {
            let flags = block.header.header.key_len;
            let at = (flags & !FLAGS)
                + EXPIRY * usize::from(flags & HAS_EXPIRY != 0)
                + STALE * usize::from(flags & HAS_STALE != 0);
            block.slice.get(at..).unwrap_or_default()
        }
    }
}

/// The value's bytes as a shared handle, when they live outside the block.
pub(crate) fn outside(block: &Block) -> Option<&Bytes> {
    block.header.header.outside.as_deref()
}

/// The bytes living outside a block, taken out without a clone when
/// nothing else shares them (the block is being consumed).
pub(crate) fn take_outside(block: &mut Block) -> Option<Bytes> {
    let taken = block
        .with_arc_mut(|arc| Arc::get_mut(arc).and_then(|block| block.header_mut().outside.take()));
    match taken {
        Some(bytes) => Some(Arc::try_unwrap(bytes).unwrap_or_else(|shared| Bytes::clone(&shared))),
        None => outside(block).cloned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// What goes in comes out, inside and outside, with or without an
        /// expiry, and again after a remake under another key.
        #[test]
        fn blocks_round_trip(
            key in proptest::collection::vec(any::<u8>(), 0..300),
            value in proptest::collection::vec(any::<u8>(), 0..=MAX_INSIDE + 10),
            expiry in prop_oneof![Just(0i64), any::<i64>()],
        ) {
            let block = make(&key, expiry, Bytes::from(value.clone()));
            prop_assert_eq!(super::key(&block), &key[..]);
            prop_assert_eq!(super::value(&block), &value[..]);
            prop_assert_eq!(super::expiry(&block), expiry);
            prop_assert_eq!(outside(&block).is_some(), value.len() > MAX_INSIDE);
            let again = remake(&block, b"other", 7);
            prop_assert_eq!(super::key(&again), b"other");
            prop_assert_eq!(super::value(&again), &value[..]);
            prop_assert_eq!(super::expiry(&again), 7);
            prop_assert!(!is_negative(&again));
            let windowed = remake_with(&block, b"w", expiry, [7, 0]);
            prop_assert_eq!(windows(&windowed), [7, 0]);
            prop_assert_eq!(super::value(&windowed), &value[..]);
            prop_assert_eq!(super::expiry(&windowed), expiry);
            let again = remake(&windowed, b"x", 9);
            prop_assert_eq!(windows(&again), [7, 0], "kept by a remake");
            prop_assert_eq!(super::value(&again), &value[..]);
            prop_assert_eq!(super::key(&again), b"x");
            prop_assert_eq!(windows(&block), [0, 0]);
            let negative = negative(&key, expiry);
            prop_assert!(is_negative(&negative));
            prop_assert_eq!(super::key(&negative), &key[..]);
            prop_assert_eq!(super::expiry(&negative), expiry);
            prop_assert_eq!(super::value(&negative), b"");
            let again = remake(&negative, b"other", 7);
            prop_assert!(is_negative(&again));
            prop_assert_eq!(super::expiry(&again), 7);
        }
    }

    #[test]
    fn a_block_is_one_word_and_large_values_are_not_copied() {
        assert_eq!(std::mem::size_of::<Block>(), std::mem::size_of::<usize>());
        assert_eq!(
            std::mem::size_of::<Option<Block>>(),
            std::mem::size_of::<usize>()
        );
        let large = Bytes::from(vec![7u8; MAX_INSIDE + 1]);
        let block = make(b"k", 0, large.clone());
        assert_eq!(value(&block).as_ptr(), large.as_ptr());
        let again = remake(&block, b"j", 0);
        assert_eq!(value(&again).as_ptr(), large.as_ptr(), "shared, not copied");
    }
}
