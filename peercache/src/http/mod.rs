//! The HTTP transport: the groupcache peer protocol over HTTP, as Go speaks it.
//!
//! - [`HttpPool`] ([`pool`]): the peer picker of an HTTP cluster. It holds the
//!   ring over the peers' base URLs and a pooled keep-alive client.
//! - [`PeerService`] ([`server`]): the peer endpoint, answering
//!   `GET <base path><group>/<key>` with a protobuf `GetResponse`. A tower
//!   and hyper service, so it mounts in axum or any hyper server.
//! - [`serve`]: runs a [`PeerService`] on a listener by itself.
//! - [`discovery`]: keeping the peer list in step with DNS (a Kubernetes
//!   headless service), a file, or any [`Discovery`] source.
//! - [`wire`]: how group and key are escaped into, and read from, a path.
//!
//! ```no_run
//! use peercache::http::{HttpOptions, HttpPool};
//! use peercache::{loader_fn, Node};
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let me = "http://10.0.0.1:8080";
//! let pool = HttpPool::new(me, HttpOptions::default())?;
//! pool.set_peers([me, "http://10.0.0.2:8080", "http://10.0.0.3:8080"])?;
//! let node = Node::with_picker(pool.clone());
//! node.new_group("colors", 64 << 20, loader_fn(|key: String| async move {
//!     Ok(format!("the value of {key}"))
//! }))?;
//! let listener = tokio::net::TcpListener::bind("10.0.0.1:8080").await?;
//! peercache::http::serve_with_shutdown(listener, pool.service(node), std::future::pending()).await?;
//! # Ok(())
//! # }
//! ```

pub mod client;
pub mod discovery;
pub mod options;
pub mod pool;
pub mod server;
pub mod wire;

pub use client::HttpPeer;
pub use discovery::{Discovery, DiscoveryError, DnsDiscovery, FileDiscovery};
pub use options::HttpOptions;
pub use pool::{HttpPool, PoolError};
pub use server::PeerService;
pub use wire::{PlusInPath, DEFAULT_BASE_PATH};

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use std::future::Future;
use std::io;
use std::time::Duration;
use tokio::net::TcpListener;

/// How long a shutdown waits for requests in flight.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Serves `node`'s peer endpoint with default options (base path
/// `/_groupcache/`) on `listener`, until the task is dropped.
pub async fn serve(listener: TcpListener, node: crate::Node) -> io::Result<()> {
    serve_with_shutdown(listener, PeerService::new(node), std::future::pending()).await
}

/// Serves `service` on `listener` (HTTP/1.1 and h2c) until `shutdown`
/// completes, then stops accepting and waits for the requests in flight (at
/// most [`SHUTDOWN_GRACE`]).
///
/// Accept errors (such as running out of file descriptors) are logged and
/// retried after a short pause rather than ending the server.
pub async fn serve_with_shutdown(
    listener: TcpListener,
    service: PeerService,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // With a timer, hyper drops a connection whose request head takes more
    // than 30 s to arrive (hyper's default header-read timeout).
    builder.http1().timer(TokioTimer::new());
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
                let connection = builder
                    .serve_connection(TokioIo::new(stream), service.clone())
                    .into_owned();
                let connection = graceful.watch(connection);
                tokio::spawn(async move {
                    if let Err(error) = connection.await {
                        tracing::debug!(%error, "peer connection ended with an error");
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
        tracing::warn!("connections still open {SHUTDOWN_GRACE:?} after shutdown; closing them");
    }
    Ok(())
}
