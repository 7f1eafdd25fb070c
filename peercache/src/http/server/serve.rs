//! Running a service on a listener ([`Server`], documented there): the
//! accept loop, HTTP/1.1 and h2c on one port, the limits, and a graceful
//! shutdown.

use super::conn::{detect, Protocol, StallTimeout};
use super::guard::{Guard, GuardedBody};
use super::limits::{LimitCounters, ServerLimits};
use super::PeerService;
use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// How often an HTTP/2 connection is pinged, and how long the answer may
/// take before the connection is closed.
const HTTP2_PING_INTERVAL: Duration = Duration::from_secs(20);

/// How long a shutdown waits for requests in flight.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Serves a peer endpoint (from [`crate::http::HttpPool::service`]) with default
/// limits on `listener`, until the task is dropped.
pub async fn serve(listener: TcpListener, service: PeerService) -> io::Result<()> {
    serve_with_shutdown(listener, service, std::future::pending()).await
}

/// Serves `service` on `listener` (HTTP/1.1 and h2c) with default
/// [`ServerLimits`] until `shutdown` completes, then stops accepting and
/// waits for the requests in flight (at most [`SHUTDOWN_GRACE`]).
///
/// See [`crate::http::HttpPool`] for a whole cluster; in a program, the shutdown
/// is typically `tokio::signal::ctrl_c()` mapped to `()`.
pub async fn serve_with_shutdown(
    listener: TcpListener,
    service: PeerService,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    Server::new(ServerLimits::default())
        .serve(listener, service, shutdown)
        .await
}

/// Runs a service on a listener: the accept loop, HTTP/1.1 and h2c on one
/// port, the limits of [`ServerLimits`], and a graceful shutdown.
///
/// [`Server`] serves any tower service whose error is `Infallible`: the
/// peer endpoint alone ([`PeerService`]), or an axum router that mounts it
/// beside an application's own routes (as `peercache-server` does). hyper
/// and hyper-util do the HTTP; the server adds what a cache tier needs
/// around them: a `Guard` in front of the service; a cap on open
/// connections (at the cap, new ones wait in the kernel's backlog); the
/// protocol detected within the header-read timeout and writes that stall
/// closed (`super::conn`); hyper's header-read timeout, HTTP/2 stream limit
/// and pings set from the limits; accept errors (out of file descriptors)
/// retried instead of ending the server; and a shutdown that finishes the
/// requests in flight.
///
/// With the `tls` cargo feature, `Server::tls` serves HTTPS instead: each
/// accepted connection's TLS handshake runs in that connection's own task,
/// never in the accept loop (a client that stalls its handshake delays no
/// one else), and must finish within
/// [`ServerLimits::header_read_timeout`]; the connection is then served
/// exactly as a cleartext one, HTTP/1.1 or HTTP/2 (by ALPN or preface).
///
/// It serves until its shutdown future completes, then finishes the
/// requests in flight:
///
/// ```
/// use peercache::http::{PeerService, Server, ServerLimits};
/// use peercache::Node;
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let limits = ServerLimits::builder()
///     .max_concurrent_requests(1024)
///     .header_read_timeout(Duration::from_secs(5))
///     .build()
///     .expect("usable limits");
/// let server = Server::new(limits);
/// let refusals = server.counters(); // for a stats page
///
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
/// let service = PeerService::without_pool(Node::new());
/// let running = tokio::spawn(server.serve(listener, service, async {
///     let _ = stopped.await;
/// }));
///
/// // ... later, e.g. on SIGTERM:
/// stop.send(()).unwrap();
/// running.await.expect("the server task")?;
/// assert_eq!(refusals.snapshot().shed, 0);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Server {
    limits: ServerLimits,
    counters: Arc<LimitCounters>,
    /// Whether requests carry their client's address.
    client_addrs: bool,
    #[cfg(feature = "tls")]
    tls: Option<Arc<rustls::ServerConfig>>,
}

impl Server {
    /// A server enforcing `limits` (checked when they were built).
    pub fn new(limits: ServerLimits) -> Self {
        Server {
            limits,
            counters: Arc::default(),
            client_addrs: false,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }

    /// Puts each request's client address in its extensions, as a
    /// [`ClientAddr`](super::ClientAddr), for a service that tells
    /// loopback clients from others or limits each client (as axum's
    /// `ConnectInfo` would). Off by default: it costs an allocation per
    /// request that the peer endpoint does not need.
    pub fn with_client_addrs(mut self) -> Self {
        self.client_addrs = true;
        self
    }

    /// Serves HTTPS with `config`'s server certificate (and, if it says so,
    /// refuses clients without a certificate signed by its CA); fails
    /// (`InvalidInput`) when `config` has no server certificate. See
    /// [`Server`] for how handshakes are run.
    #[cfg(feature = "tls")]
    pub fn tls(mut self, config: &crate::http::tls::TlsConfig) -> io::Result<Self> {
        let server = config.server_config().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "the TLS configuration has no server certificate and key to serve HTTPS with",
            )
        })?;
        self.tls = Some(server);
        Ok(self)
    }

    /// Whether this server serves HTTPS.
    pub fn is_tls(&self) -> bool {
        #[cfg(feature = "tls")]
        {
            self.tls.is_some()
        }
        #[cfg(not(feature = "tls"))]
        {
            false
        }
    }

    /// How often each limit has refused a request; share it with a stats
    /// page before calling [`Server::serve`].
    pub fn counters(&self) -> Arc<LimitCounters> {
        Arc::clone(&self.counters)
    }

    /// Counts refusals in `counters` (another server's, from
    /// [`Server::counters`]) and shares its body budget
    /// ([`ServerLimits::max_body_bytes_in_flight`]): two listeners of one
    /// node, say a peer port and a client port, then show one set of
    /// counters and hold at most one budget of bodies between them. Each
    /// listener keeps its own caps on requests and connections.
    pub fn share_counters(mut self, counters: Arc<LimitCounters>) -> Self {
        self.counters = counters;
        self
    }

    /// Serves `service` on `listener` until `shutdown` completes, then stops
    /// accepting and waits for the requests in flight (at most
    /// [`SHUTDOWN_GRACE`]). Accept errors are logged and retried after a
    /// short pause.
    pub async fn serve<S, B>(
        self,
        listener: TcpListener,
        service: S,
        shutdown: impl Future<Output = ()>,
    ) -> io::Result<()>
    where
        S: tower_service::Service<
                Request<GuardedBody<Incoming>>,
                Response = Response<B>,
                Error = Infallible,
            > + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send,
        B: Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let mut base = auto::Builder::new(TokioExecutor::new());
        base.http1()
            .timer(TokioTimer::new())
            .header_read_timeout(self.limits.header_read_timeout);
        // Pings find HTTP/2 clients that vanished; one that answers pings but
        // opens no stream holds a connection slot (max_connections).
        base.http2()
            .timer(TokioTimer::new())
            .max_concurrent_streams(self.limits.max_concurrent_streams)
            .keep_alive_interval(Some(HTTP2_PING_INTERVAL))
            .keep_alive_timeout(HTTP2_PING_INTERVAL);
        let builders = Arc::new((base.clone().http1_only(), base.http2_only()));
        let (first_bytes, write_timeout) =
            (self.limits.header_read_timeout, self.limits.write_timeout);
        #[cfg(feature = "tls")]
        let tls = self.tls.map(tokio_rustls::TlsAcceptor::from);
        let slots = Arc::new(Semaphore::new(self.limits.max_connections));
        let counters = Arc::clone(&self.counters);
        let client_addrs = self.client_addrs;
        let mut guard = Guard::new(service, self.limits);
        guard.share_counters(self.counters);
        let graceful = GracefulShutdown::new();
        tokio::pin!(shutdown);
        loop {
            // A connection slot first: at the cap, new connections wait in
            // the kernel's backlog instead of costing a file descriptor.
            let slot = match Arc::clone(&slots).try_acquire_owned() {
                Ok(slot) => slot,
                Err(_) => {
                    counters.note_connection_cap();
                    tokio::select! {
                        slot = Arc::clone(&slots).acquire_owned() => slot.expect("never closed"),
                        () = &mut shutdown => break,
                    }
                }
            };
            let (stream, client) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        tracing::warn!(%error, "accepting a connection failed; retrying");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            let _ = stream.set_nodelay(true);
            // Everything slow (TLS handshake, waiting for the first bytes)
            // happens in the connection's task; the watcher, taken now,
            // makes a shutdown wait for it.
            let (builders, guard, watcher) = (
                Arc::clone(&builders),
                match client_addrs {
                    true => guard.for_client(client),
                    false => guard.clone(),
                },
                graceful.watcher(),
            );
            #[cfg(feature = "tls")]
            let tls = tls.clone();
            tokio::spawn(async move {
                let _slot = slot;
                #[cfg(feature = "tls")]
                if let Some(acceptor) = tls {
                    let stream =
                        match tokio::time::timeout(first_bytes, acceptor.accept(stream)).await {
                            Ok(Ok(stream)) => stream,
                            Ok(Err(error)) => {
                                tracing::debug!(%error, "TLS handshake failed");
                                return;
                            }
                            Err(_) => {
                                tracing::debug!(
                                    "TLS handshake not done within {first_bytes:?}; closed"
                                );
                                return;
                            }
                        };
                    let builder = match stream.get_ref().1.alpn_protocol() {
                        Some(b"h2") => &builders.1,
                        _ => &builders.0,
                    };
                    let io = TokioIo::new(StallTimeout::new(stream, write_timeout));
                    let connection = builder.serve_connection(io, guard).into_owned();
                    if let Err(error) = watcher.watch(connection).await {
                        tracing::debug!(%error, "connection ended with an error");
                    }
                    return;
                }
                let (builder, stream) = match detect(stream, first_bytes).await {
                    Some((Protocol::Http1, stream)) => (&builders.0, stream),
                    Some((Protocol::Http2, stream)) => (&builders.1, stream),
                    None => {
                        tracing::debug!("no request within {first_bytes:?} of connecting; closed");
                        return;
                    }
                };
                let io = TokioIo::new(StallTimeout::new(stream, write_timeout));
                let connection = builder.serve_connection(io, guard).into_owned();
                if let Err(error) = watcher.watch(connection).await {
                    tracing::debug!(%error, "connection ended with an error");
                }
            });
        }
        drop(listener);
        if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!(
                "connections still open {SHUTDOWN_GRACE:?} after shutdown; closing them"
            );
        }
        Ok(())
    }
}
