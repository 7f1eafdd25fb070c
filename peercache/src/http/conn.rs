//! Protections of one connection that hyper does not give on its own.
//!
//! - **Protocol detection with a deadline.** hyper-util's automatic HTTP/1 or
//!   HTTP/2 detection reads the first bytes with no timer, before hyper's
//!   header-read timeout starts: a client that connects and sends nothing
//!   (or half of the HTTP/2 preface) would hold its socket forever.
//!   [`detect`] peeks at the first bytes itself, within the header-read
//!   timeout, and the connection is then served with its protocol fixed.
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
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
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

/// Waits, at most `deadline`, for the first bytes of `stream` and tells its
/// protocol without consuming them; `None` when the client sent nothing in
/// time or closed.
pub(crate) async fn detect(stream: &TcpStream, deadline: Duration) -> Option<Protocol> {
    let detect = async {
        let mut first = [0u8; 24];
        loop {
            let n = stream.peek(&mut first).await.ok()?;
            if n == 0 {
                return None;
            }
            if first[..n] != H2_PREFACE[..n] {
                return Some(Protocol::Http1);
            }
            if n == H2_PREFACE.len() {
                return Some(Protocol::Http2);
            }
            // A preface split across segments (rare): peek again shortly;
            // the data already there would make `peek` return at once.
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    };
    tokio::time::timeout(deadline, detect).await.ok().flatten()
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
        let found = detect(&server, Duration::from_secs(5)).await;
        assert_eq!(found, Some(Protocol::Http1));

        let (mut client, server) = pair().await;
        client.write_all(&H2_PREFACE[..10]).await.unwrap();
        let detecting = tokio::spawn(async move {
            let found = detect(&server, Duration::from_secs(5)).await;
            (found, server)
        });
        client.write_all(&H2_PREFACE[10..]).await.unwrap();
        let (found, mut server) = detecting.await.unwrap();
        assert_eq!(found, Some(Protocol::Http2));
        // Nothing was consumed.
        let mut preface = [0u8; 24];
        server.read_exact(&mut preface).await.unwrap();
        assert_eq!(&preface, H2_PREFACE);

        let (_client, server) = pair().await;
        let silent = detect(&server, Duration::from_millis(100)).await;
        assert_eq!(silent, None);
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
