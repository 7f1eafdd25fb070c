//! Limits a server puts on its clients, and the service that enforces them.
//!
//! A cache tier sits in front of every request of a service, so a client
//! that sends too much, too slowly or too often must get a clear refusal
//! while everyone else is still served. [`ServerLimits`] says how much is too
//! much; `Guard` wraps any service (the peer endpoint, an axum router) and
//! answers, before the service sees the request:
//!
//! | limit | answer |
//! | --- | --- |
//! | requests in flight on the whole server ([`ServerLimits::max_concurrent_requests`]) | 503, `Retry-After` |
//! | request target (path and query) longer than [`ServerLimits::max_uri_bytes`] | 414 |
//! | a `Content-Length` over what is left of [`ServerLimits::max_body_bytes_in_flight`] | 503, `Retry-After` |
//!
//! and, while the service runs, fails a request body that is still arriving
//! after [`ServerLimits::body_read_timeout`] (the peer endpoint answers 408),
//! or a body whose bytes would take the server past
//! [`ServerLimits::max_body_bytes_in_flight`] (503). Body bytes count
//! against that budget as they arrive, and until the request is answered
//! (not only while they arrive: a value read whole is still held while it
//! is handled), so slow, stalled or large uploads from many clients cannot
//! hold more than it. A `Content-Length` is only compared with what is
//! left, to refuse at once a body that cannot fit now; announcing a length
//! holds nothing.
//! Every refusal is a short `text/plain` body naming the limit.
//!
//! Two more limits are the connection's, set on hyper by
//! [`super::Server`]: [`ServerLimits::header_read_timeout`] closes a
//! connection whose request head has not arrived in time (a slowloris
//! client, or an idle keep-alive connection), and
//! [`ServerLimits::max_concurrent_streams`] is the HTTP/2 stream limit
//! advertised to each client (an HTTP/1.1 connection carries one request at
//! a time by its nature).
//!
//! Shedding takes no lock: one atomic semaphore permit per request.

use super::protocol::text;
use crate::InvalidSetting;
use bytes::Buf;
use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_LENGTH, RETRY_AFTER};
use http::{Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{Either, Full};
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

/// Default for [`ServerLimits::max_concurrent_requests`].
pub const DEFAULT_MAX_CONCURRENT_REQUESTS: usize = 4096;
/// Default for [`ServerLimits::max_concurrent_streams`].
pub const DEFAULT_MAX_CONCURRENT_STREAMS: u32 = 256;
/// Default for [`ServerLimits::header_read_timeout`].
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Default for [`ServerLimits::body_read_timeout`].
pub const DEFAULT_BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Default for [`ServerLimits::max_connections`].
pub const DEFAULT_MAX_CONNECTIONS: usize = 8192;
/// Default for [`ServerLimits::write_timeout`].
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Default for [`ServerLimits::max_body_bytes_in_flight`].
pub const DEFAULT_MAX_BODY_BYTES_IN_FLIGHT: u64 = 128 << 20;
/// Default for [`ServerLimits::max_uri_bytes`]: room for a 16 KiB key
/// escaped three bytes per byte, and a group name.
pub const DEFAULT_MAX_URI_BYTES: usize = 64 << 10;

/// How much a server takes from its clients before it refuses.
///
/// Give it to [`super::Server::new`], which checks it; change single limits
/// with struct update syntax:
///
/// ```
/// use peercache::http::{Server, ServerLimits};
/// use std::time::Duration;
///
/// let limits = ServerLimits {
///     max_connections: 1000,                    // below `ulimit -n`
///     body_read_timeout: Duration::from_secs(5),
///     ..ServerLimits::default()
/// };
/// assert!(limits.validate().is_ok());
///
/// let unusable = ServerLimits { max_concurrent_requests: 0, ..ServerLimits::default() };
/// let error = Server::new(unusable).unwrap_err();
/// assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerLimits {
    /// Requests handled at once by the whole server (default 4096). One
    /// more is answered at once with 503 and `Retry-After`, without touching
    /// the cache: shedding load early keeps the requests already admitted
    /// fast.
    pub max_concurrent_requests: usize,
    /// HTTP/2 streams one connection may have open at once (default 256),
    /// advertised in the connection's settings; a client that opens more has
    /// them refused (`REFUSED_STREAM`, safe to retry).
    pub max_concurrent_streams: u32,
    /// Time for a request head (request line and headers) to arrive (default
    /// 10 s), counted from when the connection is ready for it: a client that
    /// trickles its headers, or leaves a keep-alive connection idle that
    /// long, is disconnected.
    pub header_read_timeout: Duration,
    /// Time for a whole request body to arrive (default 30 s).
    pub body_read_timeout: Duration,
    /// Longest request target, path and query, in bytes (default 64 KiB);
    /// longer gets 414. (Beyond about 400 KiB hyper refuses the request head
    /// itself, with an empty body.)
    pub max_uri_bytes: usize,
    /// The `Retry-After` sent with a 503 when shedding (default 1 s).
    pub retry_after: Duration,
    /// Connections open at once (default 8192). At the cap the server stops
    /// accepting until one closes; new clients wait in the kernel's backlog.
    /// Keep it below the process's file-descriptor limit (`ulimit -n`).
    pub max_connections: usize,
    /// Time a write to a client may stall (default 30 s): a client that
    /// stops reading its answers is disconnected, freeing the answer's
    /// memory and its request slot.
    pub write_timeout: Duration,
    /// Bytes of request bodies held at once by the whole server (default
    /// 128 MiB): a request whose `Content-Length` does not fit in what is
    /// left is answered 503 with `Retry-After` before its body is read, and
    /// a body without a length fails (503) at the frame that would pass
    /// the budget.
    pub max_body_bytes_in_flight: u64,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            max_concurrent_requests: DEFAULT_MAX_CONCURRENT_REQUESTS,
            max_concurrent_streams: DEFAULT_MAX_CONCURRENT_STREAMS,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            body_read_timeout: DEFAULT_BODY_READ_TIMEOUT,
            max_uri_bytes: DEFAULT_MAX_URI_BYTES,
            retry_after: Duration::from_secs(1),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            write_timeout: DEFAULT_WRITE_TIMEOUT,
            max_body_bytes_in_flight: DEFAULT_MAX_BODY_BYTES_IN_FLIGHT,
        }
    }
}

impl ServerLimits {
    /// Checks the limits that can be wrong; names the limit and says why.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        let at_least_one = |setting: &str| InvalidSetting::new(setting, "must be at least 1");
        if self.max_concurrent_requests == 0 {
            return Err(at_least_one("max_concurrent_requests"));
        }
        if self.max_concurrent_streams == 0 {
            return Err(at_least_one("max_concurrent_streams"));
        }
        if self.max_connections == 0 {
            return Err(at_least_one("max_connections"));
        }
        if self.max_body_bytes_in_flight == 0 {
            return Err(at_least_one("max_body_bytes_in_flight"));
        }
        if self.max_concurrent_requests > Semaphore::MAX_PERMITS {
            return Err(InvalidSetting::new(
                "max_concurrent_requests",
                format!("must be at most {}", Semaphore::MAX_PERMITS),
            ));
        }
        if self.max_connections > Semaphore::MAX_PERMITS {
            return Err(InvalidSetting::new(
                "max_connections",
                format!("must be at most {}", Semaphore::MAX_PERMITS),
            ));
        }
        for (setting, timeout) in [
            ("header_read_timeout", self.header_read_timeout),
            ("body_read_timeout", self.body_read_timeout),
            ("write_timeout", self.write_timeout),
        ] {
            if timeout.is_zero() {
                return Err(InvalidSetting::new(setting, "must be greater than zero"));
            }
        }
        if self.max_uri_bytes < 256 {
            return Err(InvalidSetting::new(
                "max_uri_bytes",
                format!(
                    "{} is too small: a peer request needs the base path, a group and a key (at least 256)",
                    self.max_uri_bytes
                ),
            ));
        }
        Ok(())
    }
}

/// How often each limit refused a request, since the server started.
#[derive(Debug, Default)]
pub struct LimitCounters {
    shed: AtomicU64,
    uri_too_long: AtomicU64,
    body_timeouts: AtomicU64,
    connection_waits: AtomicU64,
    body_budget: AtomicU64,
    /// Request body bytes held now, against the server's budget.
    body_bytes_in_flight: AtomicU64,
}

/// A copy of [`LimitCounters`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LimitStats {
    /// Requests answered 503 because too many were in flight.
    pub shed: u64,
    /// Requests answered 414 because their target was too long.
    pub uri_too_long: u64,
    /// Request bodies that did not arrive within the body read timeout.
    pub body_timeouts: u64,
    /// Times the server stopped accepting because it had its maximum of
    /// connections open.
    pub connection_waits: u64,
    /// Requests refused (503) because request bodies held the whole
    /// [`ServerLimits::max_body_bytes_in_flight`].
    #[serde(default)]
    pub body_budget: u64,
    /// Request body bytes held now (a gauge, not a count of refusals).
    #[serde(default)]
    pub body_bytes_in_flight: u64,
}

impl LimitCounters {
    /// The counts now.
    pub fn snapshot(&self) -> LimitStats {
        LimitStats {
            shed: self.shed.load(Ordering::Relaxed),
            uri_too_long: self.uri_too_long.load(Ordering::Relaxed),
            body_timeouts: self.body_timeouts.load(Ordering::Relaxed),
            connection_waits: self.connection_waits.load(Ordering::Relaxed),
            body_budget: self.body_budget.load(Ordering::Relaxed),
            body_bytes_in_flight: self.body_bytes_in_flight.load(Ordering::Relaxed),
        }
    }

    /// Whether `bytes` more would fit in the body budget `limit` now (a
    /// refusal is counted when not).
    fn body_bytes_fit(&self, bytes: u64, limit: u64) -> bool {
        let fit = self
            .body_bytes_in_flight
            .load(Ordering::Acquire)
            .checked_add(bytes)
            .is_some_and(|after| after <= limit);
        if !fit {
            self.body_budget.fetch_add(1, Ordering::Relaxed);
        }
        fit
    }

    /// Takes `bytes` of the body budget `limit`, or nothing (and counts a
    /// refusal) if they do not fit.
    fn take_body_bytes(&self, bytes: u64, limit: u64) -> bool {
        let taken = self
            .body_bytes_in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|after| *after <= limit)
            })
            .is_ok();
        if !taken {
            self.body_budget.fetch_add(1, Ordering::Relaxed);
        }
        taken
    }

    fn give_back_body_bytes(&self, bytes: u64) {
        self.body_bytes_in_flight.fetch_sub(bytes, Ordering::AcqRel);
    }

    /// Counts one wait for a connection slot.
    pub(crate) fn note_connection_cap(&self) {
        self.connection_waits.fetch_add(1, Ordering::Relaxed);
    }
}

/// A request body would take the server past
/// [`ServerLimits::max_body_bytes_in_flight`].
#[derive(Debug, Clone, thiserror::Error)]
#[error("request bodies in flight on this server would pass {limit} bytes (max body bytes in flight); retry shortly")]
pub struct BodyBudgetExceeded {
    /// The budget.
    pub limit: u64,
}

/// The bytes one request's body holds of the server's body budget; given
/// back when both the body and the request's answer are gone.
#[derive(Debug)]
struct Held {
    counters: Arc<LimitCounters>,
    bytes: AtomicU64,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.counters
            .give_back_body_bytes(self.bytes.load(Ordering::Acquire));
    }
}

/// The body of a request that must arrive before a deadline, within the
/// server's body budget; what a `Guard` hands its service.
pub struct GuardedBody<B> {
    inner: B,
    /// [`ServerLimits::max_body_bytes_in_flight`].
    budget: u64,
    /// What this request holds of the budget (shared with its answer);
    /// `None` for a request that has no body.
    held: Option<Arc<Held>>,
    started: Instant,
    limit: Duration,
    /// Armed at the first poll that has to wait: most requests (gets) have
    /// no body and never need a timer.
    deadline: Option<Pin<Box<Sleep>>>,
    counters: Arc<LimitCounters>,
}

impl<B> std::fmt::Debug for GuardedBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuardedBody")
            .field("limit", &self.limit)
            .finish()
    }
}

/// A request body did not arrive within [`ServerLimits::body_read_timeout`].
#[derive(Debug, Clone, thiserror::Error)]
#[error("the request body did not arrive within the body read timeout ({limit:?})")]
pub struct BodyTimeout {
    /// The timeout.
    pub limit: Duration,
}

impl<B> Body for GuardedBody<B>
where
    B: Body + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = B::Data;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            if let Some(Ok(data)) = frame.as_ref().map(|f| f.as_ref().map(Frame::data_ref)) {
                let bytes = data.map_or(0, |d| d.remaining() as u64);
                if let (Some(held), true) = (&this.held, bytes > 0) {
                    if !this.counters.take_body_bytes(bytes, this.budget) {
                        return Poll::Ready(Some(Err(Box::new(BodyBudgetExceeded {
                            limit: this.budget,
                        }))));
                    }
                    held.bytes.fetch_add(bytes, Ordering::AcqRel);
                }
            }
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        let deadline = this.deadline.get_or_insert_with(|| {
            let left = this.limit.saturating_sub(this.started.elapsed());
            Box::pin(tokio::time::sleep(left))
        });
        match deadline.as_mut().poll(cx) {
            Poll::Ready(()) => {
                this.counters.body_timeouts.fetch_add(1, Ordering::Relaxed);
                Poll::Ready(Some(Err(Box::new(BodyTimeout { limit: this.limit }))))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Enforces [`ServerLimits`] in front of a service; one per connection,
/// sharing the server-wide count of requests in flight.
#[derive(Clone)]
pub(crate) struct Guard<S> {
    inner: S,
    limits: Arc<ServerLimits>,
    in_flight: Arc<Semaphore>,
    counters: Arc<LimitCounters>,
}

impl<S> std::fmt::Debug for Guard<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard")
            .field("limits", &self.limits)
            .finish()
    }
}

/// The body of a `Guard`'s answers: a refusal, or the service's own,
/// holding its request slot until it has been sent.
pub(crate) type GuardBody<B> = Either<Full<Bytes>, Admitted<B>>;

/// An admitted request's answer body. It holds the request's slot of
/// [`ServerLimits::max_concurrent_requests`] until it has been sent (or the
/// connection dropped): answers being written to slow readers count as in
/// flight, so the limit bounds their memory too.
#[derive(Debug)]
pub(crate) struct Admitted<B> {
    inner: B,
    _slot: OwnedSemaphorePermit,
}

impl<B: Body + Unpin> Body for Admitted<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The future of a `Guard`'s answer.
pub(crate) type GuardFuture<B> =
    Pin<Box<dyn Future<Output = Result<Response<GuardBody<B>>, Infallible>> + Send>>;

impl<S> Guard<S> {
    /// Guards `inner` with `limits`. Clones share the count of requests in
    /// flight and the counters.
    pub(crate) fn new(inner: S, limits: ServerLimits) -> Self {
        let in_flight = Arc::new(Semaphore::new(limits.max_concurrent_requests));
        Guard {
            inner,
            limits: Arc::new(limits),
            in_flight,
            counters: Arc::default(),
        }
    }

    /// Counts refusals in `counters` (a [`super::Server`]'s) from now on.
    pub(crate) fn share_counters(&mut self, counters: Arc<LimitCounters>) {
        self.counters = counters;
    }

    fn refuse<B>(&self, status: StatusCode, message: String) -> Response<GuardBody<B>> {
        text(status, message).map(Either::Left)
    }

    /// Answers `request` through the service, or refuses it.
    pub(crate) fn call<B, RB>(&self, request: Request<B>) -> GuardFuture<RB>
    where
        S: tower_service::Service<
                Request<GuardedBody<B>>,
                Response = Response<RB>,
                Error = Infallible,
            > + Clone
            + Send
            + 'static,
        S::Future: Send,
        B: Body + Unpin + Send + 'static,
        RB: Send + 'static,
    {
        let target = request
            .uri()
            .path_and_query()
            .map_or(0, |p| p.as_str().len());
        if target > self.limits.max_uri_bytes {
            self.counters.uri_too_long.fetch_add(1, Ordering::Relaxed);
            let refusal = self.refuse(
                StatusCode::URI_TOO_LONG,
                format!(
                    "request target too long ({target} bytes): the limit is {} bytes (max URI bytes)",
                    self.limits.max_uri_bytes
                ),
            );
            return Box::pin(std::future::ready(Ok(refusal)));
        }
        let Ok(permit) = Arc::clone(&self.in_flight).try_acquire_owned() else {
            self.counters.shed.fetch_add(1, Ordering::Relaxed);
            let mut refusal = self.refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "overloaded: {} requests in flight, the limit (max concurrent requests); retry after {} s",
                    self.limits.max_concurrent_requests,
                    self.limits.retry_after.as_secs().max(1)
                ),
            );
            refusal.headers_mut().insert(
                RETRY_AFTER,
                HeaderValue::from(self.limits.retry_after.as_secs().max(1)),
            );
            return Box::pin(std::future::ready(Ok(refusal)));
        };
        // A body whose length cannot fit now is refused before it is read;
        // the length itself holds nothing (bytes count as they arrive).
        let length = request
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
            .filter(|length| *length > 0);
        if let Some(length) = length {
            let budget = self.limits.max_body_bytes_in_flight;
            if !self.counters.body_bytes_fit(length, budget) {
                let mut refusal = self.refuse(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!(
                        "{}: this request's {length} bytes do not fit",
                        BodyBudgetExceeded { limit: budget }
                    ),
                );
                refusal.headers_mut().insert(
                    RETRY_AFTER,
                    HeaderValue::from(self.limits.retry_after.as_secs().max(1)),
                );
                return Box::pin(std::future::ready(Ok(refusal)));
            }
        }
        // Most requests (gets) have no body: nothing to hold, no allocation.
        let held = (!request.body().is_end_stream()).then(|| {
            Arc::new(Held {
                counters: Arc::clone(&self.counters),
                bytes: AtomicU64::new(0),
            })
        });
        let request = request.map(|body| GuardedBody {
            inner: body,
            budget: self.limits.max_body_bytes_in_flight,
            held: held.clone(),
            started: Instant::now(),
            limit: self.limits.body_read_timeout,
            deadline: None,
            counters: Arc::clone(&self.counters),
        });
        let mut service = self.inner.clone();
        Box::pin(async move {
            // The body's bytes stay counted until the request is answered.
            let _held = held;
            std::future::poll_fn(|cx| service.poll_ready(cx)).await?;
            let response = service.call(request).await?;
            Ok(response.map(|inner| {
                Either::Right(Admitted {
                    inner,
                    _slot: permit,
                })
            }))
        })
    }
}

impl<S, B, RB> hyper::service::Service<Request<B>> for Guard<S>
where
    S: tower_service::Service<Request<GuardedBody<B>>, Response = Response<RB>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
    B: Body + Unpin + Send + 'static,
    RB: Send + 'static,
{
    type Response = Response<GuardBody<RB>>;
    type Error = Infallible;
    type Future = GuardFuture<RB>;

    fn call(&self, request: Request<B>) -> Self::Future {
        Guard::call(self, request)
    }
}
