//! Running a service on a listener: the accept loop, HTTP/1.1 and h2c on
//! one port, the limits of [`ServerLimits`], and a graceful shutdown.
//!
//! [`Server`] serves any tower service whose error is `Infallible`: the
//! peer endpoint alone ([`PeerService`]), or an axum router that mounts it
//! beside an application's own routes (as `peercache-server` does). hyper
//! and hyper-util do the HTTP; this module adds what a cache tier needs
//! around them: a [`Guard`] in front of the service, hyper's header-read
//! timeout and HTTP/2 stream limit set from the limits, accept errors (out
//! of file descriptors) retried instead of ending the server, and shutdown
//! that finishes the requests in flight.
//!
//! With the `tls` cargo feature, `Server::tls` serves HTTPS instead: each
//! accepted connection's TLS handshake runs in that connection's own task,
//! never in the accept loop (a client that stalls its handshake delays no
//! one else), and must finish within
//! [`ServerLimits::header_read_timeout`]; the connection is then served
//! exactly as a cleartext one, HTTP/1.1 or HTTP/2 (by ALPN or preface).

use super::limits::{Guard, GuardedBody, LimitCounters, ServerLimits};
use super::server::PeerService;
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

/// How long a shutdown waits for requests in flight.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Serves `node`'s peer endpoint with default options (base path
/// `/_groupcache/`) and default limits on `listener`, until the task is
/// dropped.
pub async fn serve(listener: TcpListener, node: crate::Node) -> io::Result<()> {
    serve_with_shutdown(listener, PeerService::new(node), std::future::pending()).await
}

/// Serves `service` on `listener` (HTTP/1.1 and h2c) with default
/// [`ServerLimits`] until `shutdown` completes, then stops accepting and
/// waits for the requests in flight (at most [`SHUTDOWN_GRACE`]).
pub async fn serve_with_shutdown(
    listener: TcpListener,
    service: PeerService,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    Server::new(ServerLimits::default())?
        .serve(listener, service, shutdown)
        .await
}

/// A server with limits; see the module documentation.
#[derive(Debug)]
pub struct Server {
    limits: ServerLimits,
    counters: Arc<LimitCounters>,
    #[cfg(feature = "tls")]
    tls: Option<Arc<rustls::ServerConfig>>,
}

impl Server {
    /// A server enforcing `limits`; fails (`InvalidInput`, naming the limit)
    /// when they cannot be used.
    pub fn new(limits: ServerLimits) -> io::Result<Self> {
        limits
            .validate()
            .map_err(|reason| io::Error::new(io::ErrorKind::InvalidInput, reason))?;
        Ok(Server {
            limits,
            counters: Arc::default(),
            #[cfg(feature = "tls")]
            tls: None,
        })
    }

    /// Serves HTTPS with `config`'s server certificate (and, if it says so,
    /// refuses clients without a certificate signed by its CA); fails
    /// (`InvalidInput`) when `config` has no server certificate. See the
    /// module documentation.
    #[cfg(feature = "tls")]
    pub fn tls(mut self, config: &super::tls::TlsConfig) -> io::Result<Self> {
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
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(self.limits.header_read_timeout);
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_concurrent_streams(self.limits.max_concurrent_streams);
        #[cfg(feature = "tls")]
        let (tls, handshake_timeout) = (
            self.tls.map(tokio_rustls::TlsAcceptor::from),
            self.limits.header_read_timeout,
        );
        let mut guard = Guard::new(service, self.limits);
        guard.share_counters(self.counters);
        let graceful = GracefulShutdown::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let stream = match accepted {
                        Ok((stream, _)) => stream,
                        Err(error) => {
                            tracing::warn!(%error, "accepting a connection failed; retrying");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    let _ = stream.set_nodelay(true);
                    #[cfg(feature = "tls")]
                    if let Some(acceptor) = &tls {
                        // The handshake runs in the connection's task; the
                        // watcher, taken now, makes a shutdown wait for it.
                        let (acceptor, builder, guard) =
                            (acceptor.clone(), builder.clone(), guard.clone());
                        let watcher = graceful.watcher();
                        tokio::spawn(async move {
                            let stream = match tokio::time::timeout(
                                handshake_timeout,
                                acceptor.accept(stream),
                            )
                            .await
                            {
                                Ok(Ok(stream)) => stream,
                                Ok(Err(error)) => {
                                    tracing::debug!(%error, "TLS handshake failed");
                                    return;
                                }
                                Err(_) => {
                                    tracing::debug!(
                                        "TLS handshake not done within {handshake_timeout:?}; closed"
                                    );
                                    return;
                                }
                            };
                            let connection = builder
                                .serve_connection(TokioIo::new(stream), guard)
                                .into_owned();
                            if let Err(error) = watcher.watch(connection).await {
                                tracing::debug!(%error, "connection ended with an error");
                            }
                        });
                        continue;
                    }
                    let connection = builder
                        .serve_connection(TokioIo::new(stream), guard.clone())
                        .into_owned();
                    let connection = graceful.watch(connection);
                    tokio::spawn(async move {
                        if let Err(error) = connection.await {
                            tracing::debug!(%error, "connection ended with an error");
                        }
                    });
                }
                () = &mut shutdown => break,
            }
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
