//! The service that enforces [`ServerLimits`] in front of another: sheds
//! load past the request limit, refuses over-long targets, and hands the
//! service a request body bounded in time and in the server's body budget
//! ([`GuardedBody`]). See `limits.rs` for the limits and their answers.

use super::limits::{LimitCounters, ServerLimits};
use crate::http::body::PeerBody;
use crate::http::protocol::Reply;
use bytes::Buf;
use http::header::CONTENT_LENGTH;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use http_body_util::Either;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

/// The address of the client that sent a request: a [`super::Server`]
/// built [`with_client_addrs`](super::Server::with_client_addrs) puts it in
/// every request's extensions (as axum's `ConnectInfo` would), so a
/// service behind it can tell loopback clients from others or limit each
/// client (`request.extensions().get::<ClientAddr>()`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientAddr(pub std::net::SocketAddr);

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
    /// The connection's client, when the guard serves one connection.
    client: Option<ClientAddr>,
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
pub(crate) type GuardBody<B> = Either<PeerBody, Admitted<B>>;

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
            client: None,
        }
    }

    /// This guard for one connection from `client`: its requests carry the
    /// address as a [`ClientAddr`] extension.
    pub(crate) fn for_client(&self, client: std::net::SocketAddr) -> Self
    where
        S: Clone,
    {
        Guard {
            client: Some(ClientAddr(client)),
            ..self.clone()
        }
    }

    /// Counts refusals in `counters` (a [`super::Server`]'s) from now on.
    pub(crate) fn share_counters(&mut self, counters: Arc<LimitCounters>) {
        self.counters = counters;
    }

    fn refuse<B>(&self, reply: Reply) -> Response<GuardBody<B>> {
        reply.into_response().map(Either::Left)
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
            let refusal = self.refuse(Reply::TooLong(format!(
                "request target too long ({target} bytes): the limit is {} bytes (max URI bytes)",
                self.limits.max_uri_bytes
            )));
            return Box::pin(std::future::ready(Ok(refusal)));
        }
        let Ok(permit) = Arc::clone(&self.in_flight).try_acquire_owned() else {
            self.counters.shed.fetch_add(1, Ordering::Relaxed);
            let retry_after = self.limits.retry_after.as_secs().max(1);
            let refusal = self.refuse(Reply::Busy(
                format!(
                    "overloaded: {} requests in flight, the limit (max concurrent requests); retry after {retry_after} s",
                    self.limits.max_concurrent_requests,
                ),
                retry_after,
            ));
            return Box::pin(std::future::ready(Ok(refusal)));
        };
        // Most requests (gets) have no body: no header to read, nothing to
        // hold, no allocation.
        let has_body = !request.body().is_end_stream();
        // A body whose length cannot fit now is refused before it is read;
        // the length itself holds nothing (bytes count as they arrive).
        let length = has_body
            .then(|| request.headers().get(CONTENT_LENGTH))
            .flatten()
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
            .filter(|length| *length > 0);
        if let Some(length) = length {
            let budget = self.limits.max_body_bytes_in_flight;
            if !self.counters.body_bytes_fit(length, budget) {
                let refusal = self.refuse(Reply::Busy(
                    format!(
                        "{}: this request's {length} bytes do not fit",
                        BodyBudgetExceeded { limit: budget }
                    ),
                    self.limits.retry_after.as_secs().max(1),
                ));
                return Box::pin(std::future::ready(Ok(refusal)));
            }
        }
        let held = has_body.then(|| {
            Arc::new(Held {
                counters: Arc::clone(&self.counters),
                bytes: AtomicU64::new(0),
            })
        });
        let mut request = request;
        if let Some(client) = self.client {
            request.extensions_mut().insert(client);
        }
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
