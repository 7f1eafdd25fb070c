//! Protections of one connection that hyper does not give on its own.
//!
//! - **Protocol detection with a deadline.** hyper-util's automatic HTTP/1 or
//!   HTTP/2 detection reads the first bytes with no timer, before hyper's
//!   header-read timeout starts: a client that connects and sends nothing
//!   (or half of the HTTP/2 preface) would hold its socket forever.
//!   [`detect`] reads the first bytes itself, within the header-read
//!   timeout, waiting for the socket to be readable (never polling on a
//!   timer, so a thousand half-prefaces cost no CPU), and notices a client
//!   that closed; the connection is then served with its protocol fixed,
//!   the bytes read replayed first by [`Prefixed`].
//! - **Writes that stall.** A client that never reads its answers (a zero
//!   TCP window) would hold the connection, the answer's memory and its
//!   request slot forever. [`StallTimeout`] fails a write that makes no
//!   progress for [`super::ServerLimits::write_timeout`], and the connection
//!   is closed.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Sleep;

/// The HTTP/2 connection preface a client sends first.
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The protocol a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protocol {
    /// HTTP/1.x.
    Http1,
    /// HTTP/2 (h2c with prior knowledge, or by ALPN over TLS).
    Http2,
}

/// Reads, within at most `deadline`, the first bytes of `stream`, enough to
/// tell its protocol; `None` when the client sent nothing in time or
/// closed. The bytes read are in the returned stream, to be read again.
pub(crate) async fn detect(
    mut stream: TcpStream,
    deadline: Duration,
) -> Option<(Protocol, Prefixed<TcpStream>)> {
    let detect = async {
        let mut first = [0u8; H2_PREFACE.len()];
        let mut filled = 0;
        let protocol = loop {
            // `read` waits for readability; 0 is the client closing.
            let n = stream.read(&mut first[filled..]).await.ok()?;
            if n == 0 {
                return None;
            }
            filled += n;
            if first[..filled] != H2_PREFACE[..filled] {
                break Protocol::Http1;
            }
            if filled == H2_PREFACE.len() {
                break Protocol::Http2;
            }
        };
        Some((protocol, first[..filled].to_vec()))
    };
    let (protocol, read) = tokio::time::timeout(deadline, detect)
        .await
        .ok()
        .flatten()?;
    Some((protocol, Prefixed::new(read, stream)))
}

/// An IO whose reads first return bytes already read from it.
#[derive(Debug)]
pub(crate) struct Prefixed<IO> {
    prefix: Vec<u8>,
    /// How much of `prefix` was read again.
    taken: usize,
    io: IO,
}

impl<IO> Prefixed<IO> {
    pub(crate) fn new(prefix: Vec<u8>, io: IO) -> Self {
        Prefixed {
            prefix,
            taken: 0,
            io,
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Prefixed<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let rest = &this.prefix[this.taken..];
        if rest.is_empty() {
            return Pin::new(&mut this.io).poll_read(cx, buf);
        }
        let n = rest.len().min(buf.remaining());
        buf.put_slice(&rest[..n]);
        this.taken += n;
        if this.taken == this.prefix.len() {
            this.prefix = Vec::new();
            this.taken = 0;
        }
        Poll::Ready(Ok(()))
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Prefixed<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// An IO whose writes fail with `TimedOut` once one has been pending, with
/// no progress, for longer than the timeout.
#[derive(Debug)]
pub(crate) struct StallTimeout<IO> {
    io: IO,
    timeout: Duration,
    /// Armed when a write is pending, disarmed by progress.
    stalled: Option<Pin<Box<Sleep>>>,
}

impl<IO> StallTimeout<IO> {
    pub(crate) fn new(io: IO, timeout: Duration) -> Self {
        StallTimeout {
            io,
            timeout,
            stalled: None,
        }
    }

    /// What a write-side poll of the IO gave: progress disarms the stall
    /// timer, `Pending` arms it (or fails once it has fired).
    fn progress<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        match polled {
            Poll::Pending => self.pending(cx),
            ready => {
                self.stalled = None;
                ready
            }
        }
    }

    /// `Pending` from the IO: still waiting, or the stall has lasted too
    /// long.
    fn pending<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        let timeout = self.timeout;
        let stalled = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match stalled.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("the client read nothing for {timeout:?} (write timeout)"),
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for StallTimeout<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for StallTimeout<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.io).poll_write(cx, buf);
        this.progress(cx, polled)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.progress(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.io).poll_flush(cx);
        this.progress(cx, polled)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.io).poll_shutdown(cx);
        this.progress(cx, polled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (client, server)
    }

    #[tokio::test]
    async fn detects_each_protocol_and_gives_up_on_silence() {
        let (mut client, server) = pair().await;
        client.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        let (found, mut server) = detect(server, Duration::from_secs(5)).await.unwrap();
        assert_eq!(found, Protocol::Http1);
        // What was read to tell comes first, then the rest.
        client.write_all(b"Host: x\r\n").await.unwrap();
        let mut head = [0u8; 25];
        server.read_exact(&mut head).await.unwrap();
        assert_eq!(&head, b"GET / HTTP/1.1\r\nHost: x\r\n");

        let (mut client, server) = pair().await;
        client.write_all(&H2_PREFACE[..10]).await.unwrap();
        let detecting = tokio::spawn(detect(server, Duration::from_secs(5)));
        client.write_all(&H2_PREFACE[10..]).await.unwrap();
        let (found, mut server) = detecting.await.unwrap().unwrap();
        assert_eq!(found, Protocol::Http2);
        let mut preface = [0u8; 24];
        server.read_exact(&mut preface).await.unwrap();
        assert_eq!(&preface, H2_PREFACE);

        let (_client, server) = pair().await;
        let silent = detect(server, Duration::from_millis(100)).await;
        assert!(silent.is_none());
    }

    #[tokio::test]
    async fn a_client_that_closes_after_half_a_preface_is_noticed_at_once() {
        let (mut client, server) = pair().await;
        client.write_all(&H2_PREFACE[..16]).await.unwrap();
        let detecting = tokio::spawn(detect(server, Duration::from_secs(3600)));
        drop(client);
        // Well before the hour-long deadline: the close itself ends it.
        let found = tokio::time::timeout(Duration::from_secs(10), detecting)
            .await
            .expect("detection did not notice the client closed")
            .unwrap();
        assert!(found.is_none());
    }

    #[tokio::test]
    async fn a_write_that_stalls_fails_after_the_timeout() {
        let (_client, server) = pair().await;
        let mut server = StallTimeout::new(server, Duration::from_millis(200));
        // The client never reads: the socket buffers fill, then writes stall.
        let chunk = vec![0u8; 1 << 20];
        let error = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                if let Err(error) = server.write_all(&chunk).await {
                    return error;
                }
            }
        })
        .await
        .expect("the stalled write never failed");
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
    }
}
