//! Peer bodies without extra copies: a whole body read into one buffer
//! ([`read_whole`]), and the peer endpoint's answer written as a chain of
//! buffers ([`PeerBody`]).
//!
//! Why by hand: `http_body_util::BodyExt::collect` keeps every frame hyper
//! hands out (slices of hyper's read buffers, which stay alive until the
//! last one is dropped) and then copies them into one buffer grown to the
//! total; `Full<Bytes>` answers one buffer, so a value had to be copied
//! behind its protobuf framing. For a 1 MiB value that was two copies on
//! the reading side and one on the answering side, on top of the kernel's.
//! Here a body is copied once, frame by frame, into a buffer sized from its
//! `Content-Length` (frames are released as they are read), and an answer
//! is the framing and the value's own shared bytes, written by hyper with
//! vectored writes.

use crate::value::MAX_INSIDE;
use bytes::{Buf, Bytes};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Limited};
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

/// An error reading a body, from the body or from [`Limited`] (its
/// `LengthLimitError` when the body passed the limit).
pub(crate) type BodyError = Box<dyn std::error::Error + Send + Sync>;

/// A whole body, and whose memory it is.
pub(crate) enum Received {
    /// The body arrived as one frame and is that frame: possibly a slice of
    /// a larger read buffer, so what is kept of it must be copied out.
    Shared(Bytes),
    /// The body was copied into a buffer of its own (its length, or within
    /// an eighth of it): slices of it may be kept.
    Own(Bytes),
}

impl Received {
    /// The body's bytes, whoever owns them: for reading them now, not for
    /// keeping slices of them.
    pub(crate) fn into_bytes(self) -> Bytes {
        match self {
            Received::Shared(bytes) | Received::Own(bytes) => bytes,
        }
    }

    /// The body's bytes in a form whose slices may be kept in a cache: a
    /// body of one frame over 1 KiB is copied out of the read buffer it
    /// shares, so a kept value never holds a larger buffer alive. Either
    /// way a large body is copied once (a body read in several frames was
    /// copied by [`read_whole`]).
    pub(crate) fn keepable(self) -> Bytes {
        match self {
            Received::Shared(bytes) if bytes.len() > MAX_INSIDE => Bytes::copy_from_slice(&bytes),
            Received::Shared(bytes) | Received::Own(bytes) => bytes,
        }
    }
}

/// `value`, a slice of a body of `body_len` bytes read whole: as it is when
/// at most `room` bytes of the body surround it, else copied out. A body
/// padded with fields the reader skips (unknown ones, a field sent twice)
/// would otherwise keep megabytes alive behind a value the cache counts as
/// a few bytes.
pub(crate) fn kept_slice(value: Bytes, body_len: usize, room: usize) -> Bytes {
    if body_len.saturating_sub(value.len()) <= room {
        value
    } else {
        Bytes::copy_from_slice(&value)
    }
}

/// The buffer of a body of unknown or claimed length starts at most this
/// large: a peer that announces 64 MiB and sends two bytes does not make
/// this node reserve 64 MiB. A body this size or less with an honest
/// `Content-Length` (a 1 MiB value and its framing) is read into one
/// allocation of exactly its length; a larger one doubles from here.
const FIRST_RESERVE: usize = 2 << 20;

/// Reads all of `body`, at most `limit` bytes (a longer one fails with
/// `LengthLimitError`). A body of one frame is that frame, uncopied; a
/// longer one is copied once into one buffer: of its `Content-Length` when
/// it has one (reserved as the bytes arrive, from [`FIRST_RESERVE`], so a
/// false length costs no more than the bytes sent), doubling otherwise
/// (never past `limit`) and trimmed to its length at the end, so no spare
/// capacity stays behind a kept value. A failed allocation is an error,
/// not an abort.
pub(crate) async fn read_whole<B>(body: B, limit: usize) -> Result<Received, BodyError>
where
    B: Body,
    B::Error: Into<BodyError>,
{
    let expected = body
        .size_hint()
        .exact()
        .map(|n| n.min(limit as u64) as usize);
    let mut body = std::pin::pin!(Limited::new(body, limit));
    let mut first: Option<Bytes> = None;
    let mut own: Option<Vec<u8>> = None;
    while let Some(frame) = body.frame().await {
        let Ok(mut data) = frame?.into_data() else {
            continue; // trailers
        };
        if !data.has_remaining() {
            continue;
        }
        match (&mut own, first.take()) {
            (Some(buffer), _) => {
                grow(buffer, buffer.len() + data.remaining(), expected, limit)?;
                put(buffer, &mut data);
            }
            (None, None) => first = Some(data.copy_to_bytes(data.remaining())),
            (None, Some(earlier)) => {
                let needed = earlier.len() + data.remaining();
                let start = expected.map_or(needed, |e| e.min(FIRST_RESERVE.max(needed)));
                let mut buffer = Vec::new();
                grow(&mut buffer, start.max(needed), None, usize::MAX)?;
                buffer.extend_from_slice(&earlier);
                put(&mut buffer, &mut data);
                own = Some(buffer);
            }
        }
    }
    Ok(match (own, first) {
        (Some(mut buffer), _) => {
            // In place, or by `mremap` for a large block: no copy.
            buffer.shrink_to_fit();
            Received::Own(Bytes::from(buffer))
        }
        (None, first) => Received::Shared(first.unwrap_or_default()),
    })
}

/// Makes room in `buffer` for `needed` bytes: at least doubling it, but
/// not past the body's announced length `expected` (when it is at least
/// `needed`) nor past `limit`.
fn grow(
    buffer: &mut Vec<u8>,
    needed: usize,
    expected: Option<usize>,
    limit: usize,
) -> Result<(), BodyError> {
    if buffer.capacity() >= needed {
        return Ok(());
    }
    let mut target = (buffer.capacity() * 2).max(needed).min(limit.max(needed));
    if let Some(expected) = expected.filter(|&e| e >= needed) {
        target = target.min(expected);
    }
    buffer
        .try_reserve_exact(target - buffer.len())
        .map_err(|error| format!("cannot hold a body of {needed} bytes: {error}").into())
}

/// Appends all of `data` to `buffer`.
fn put(buffer: &mut Vec<u8>, data: &mut impl Buf) {
    while data.has_remaining() {
        let chunk = data.chunk();
        buffer.extend_from_slice(chunk);
        let n = chunk.len();
        data.advance(n);
    }
}

/// The body of the peer endpoint's answers: up to three buffers sent one
/// after the other (a get's protobuf framing, the value's own bytes, the
/// expiry), so a large value is written from where the cache keeps it,
/// without being copied into the answer. Its length is known up front
/// (`Content-Length` over HTTP/1.1).
///
/// Any `http_body::Body` user takes it; to read one whole in a test:
///
/// ```
/// use http_body_util::BodyExt;
/// use peercache::http::PeerBody;
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let body = PeerBody::from("no such group: colors\n");
/// let bytes = body.collect().await.unwrap().to_bytes();
/// assert_eq!(bytes, "no such group: colors\n");
/// # });
/// ```
#[derive(Debug, Default)]
pub struct PeerBody {
    chunks: [Bytes; 3],
    next: usize,
}

impl PeerBody {
    /// A body of `chunks`, in order (empty ones are skipped).
    pub(crate) fn chain(chunks: [Bytes; 3]) -> Self {
        PeerBody { chunks, next: 0 }
    }

    fn remaining(&self) -> u64 {
        self.chunks[self.next.min(3)..]
            .iter()
            .map(|chunk| chunk.len() as u64)
            .sum()
    }
}

impl From<Bytes> for PeerBody {
    fn from(bytes: Bytes) -> Self {
        PeerBody::chain([bytes, Bytes::new(), Bytes::new()])
    }
}

impl From<Vec<u8>> for PeerBody {
    fn from(bytes: Vec<u8>) -> Self {
        PeerBody::from(Bytes::from(bytes))
    }
}

impl From<&'static str> for PeerBody {
    fn from(text: &'static str) -> Self {
        PeerBody::from(Bytes::from_static(text.as_bytes()))
    }
}

impl From<String> for PeerBody {
    fn from(text: String) -> Self {
        PeerBody::from(Bytes::from(text))
    }
}

impl Body for PeerBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        while this.next < this.chunks.len() {
            let chunk = std::mem::take(&mut this.chunks[this.next]);
            this.next += 1;
            if !chunk.is_empty() {
                return Poll::Ready(Some(Ok(Frame::data(chunk))));
            }
        }
        Poll::Ready(None)
    }

    fn is_end_stream(&self) -> bool {
        self.remaining() == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{Full, StreamBody};

    fn block_on<F: std::future::Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(future)
    }

    /// A body with the length it claims (`None`: no length).
    struct Hinted<B>(B, Option<u64>);

    impl<B: Body + Unpin> Body for Hinted<B> {
        type Data = B::Data;
        type Error = B::Error;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
            Pin::new(&mut self.0).poll_frame(cx)
        }
        fn size_hint(&self) -> SizeHint {
            self.1.map_or_else(SizeHint::new, SizeHint::with_exact)
        }
    }

    /// `parts` as frames, with their total as length when `exact`.
    fn frames(
        parts: &[&'static [u8]],
        exact: bool,
    ) -> impl Body<Data = Bytes, Error = Infallible> + Unpin {
        let total = parts.iter().map(|p| p.len() as u64).sum();
        let stream = futures_util::stream::iter(
            parts
                .iter()
                .map(|p| Ok::<_, Infallible>(Frame::data(Bytes::from_static(p))))
                .collect::<Vec<_>>(),
        );
        Hinted(StreamBody::new(stream), exact.then_some(total))
    }

    fn read(
        body: impl Body<Data = Bytes, Error = Infallible>,
        limit: usize,
    ) -> Result<Received, BodyError> {
        block_on(read_whole(body, limit))
    }

    #[test]
    fn one_frame_is_kept_as_it_is() {
        let Ok(Received::Shared(bytes)) = read(Full::new(Bytes::from_static(b"abc")), 10) else {
            panic!("one frame should be shared");
        };
        assert_eq!(bytes, "abc");
        assert!(
            matches!(read(Full::new(Bytes::new()), 10), Ok(Received::Shared(b)) if b.is_empty())
        );
    }

    #[test]
    fn frames_are_copied_into_one_buffer_of_the_body_length() {
        for exact in [true, false] {
            let parts: &[&'static [u8]] = &[b"ab", b"", b"cde", b"f"];
            let Ok(Received::Own(bytes)) = read(frames(parts, exact), 100) else {
                panic!("frames should be copied");
            };
            assert_eq!(bytes, "abcdef");
        }
    }

    #[test]
    fn a_body_over_the_limit_fails() {
        let error = read(frames(&[b"abc", b"def"], true), 5).err().unwrap();
        assert!(error.is::<http_body_util::LengthLimitError>(), "{error}");
        assert!(read(frames(&[b"abc", b"de"], true), 5).is_ok());
    }

    /// A body that claims more than it sends, or sends without a length,
    /// leaves a buffer of exactly its bytes.
    #[test]
    fn a_false_or_missing_length_leaves_no_spare_capacity() {
        let parts: Vec<&'static [u8]> = vec![&[7; 3000]; 5];
        let claimed = Hinted(frames(&parts, false), Some(64 << 20));
        let Ok(Received::Own(bytes)) = read(claimed, 64 << 20) else {
            panic!("frames should be copied");
        };
        assert_eq!(bytes.len(), 15_000);
        // `Bytes::from(Vec)` keeps the Vec's allocation: trimmed, it is the
        // body's length. (A `Vec` round trip shows the capacity.)
        let vec: Vec<u8> = bytes.into();
        assert_eq!(vec.capacity(), 15_000);
        let Ok(Received::Own(bytes)) = read(frames(&parts, false), 1 << 20) else {
            panic!("frames should be copied");
        };
        let vec: Vec<u8> = bytes.into();
        assert_eq!((vec.len(), vec.capacity()), (15_000, 15_000));
    }

    /// A large body of one frame is copied before it is kept; a small one,
    /// or one read into a buffer of its own, is not.
    #[test]
    fn keepable_copies_only_a_large_shared_frame() {
        let large = Bytes::from(vec![1u8; 4096]);
        let kept = Received::Shared(large.clone()).keepable();
        assert_eq!(kept, large);
        assert_ne!(kept.as_ptr(), large.as_ptr());
        let small = Bytes::from(vec![1u8; 1024]);
        assert_eq!(
            Received::Shared(small.clone()).keepable().as_ptr(),
            small.as_ptr()
        );
        assert_eq!(
            Received::Own(large.clone()).keepable().as_ptr(),
            large.as_ptr()
        );
    }

    proptest::proptest! {
        /// Whatever the frames, the body read is their concatenation.
        #[test]
        fn reading_joins_the_frames(
            parts in proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..50), 0..8),
            exact in proptest::prelude::any::<bool>(),
        ) {
            let leaked: Vec<&'static [u8]> = parts.iter().map(|p| &*Vec::leak(p.clone())).collect();
            let joined: Vec<u8> = parts.concat();
            let read = read(frames(&leaked, exact), 1000).unwrap().into_bytes();
            proptest::prop_assert_eq!(&read[..], &joined[..]);
        }

        /// A chain answers its chunks in order, with its exact length.
        #[test]
        fn a_chain_is_its_chunks(
            a in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..20),
            b in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..20),
            c in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..20),
        ) {
            let body = PeerBody::chain([Bytes::from(a.clone()), Bytes::from(b.clone()), Bytes::from(c.clone())]);
            proptest::prop_assert_eq!(body.size_hint().exact(), Some((a.len() + b.len() + c.len()) as u64));
            proptest::prop_assert_eq!(body.is_end_stream(), a.is_empty() && b.is_empty() && c.is_empty());
            let bytes = block_on(body.collect()).unwrap().to_bytes();
            proptest::prop_assert_eq!(&bytes[..], &[a, b, c].concat()[..]);
        }
    }
}
