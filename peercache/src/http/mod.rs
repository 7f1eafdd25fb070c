//! The HTTP transport: the groupcache peer protocol over HTTP, as Go speaks it.
//!
//! - [`HttpPool`]: the peer picker of an HTTP cluster. It holds the ring over
//!   the peers' base URLs and a pooled keep-alive client, and builds this
//!   node's peer endpoint with the same settings ([`HttpPool::service`]).
//! - [`HttpOptions`]: the settings both sides share (base path, hash, `+`
//!   reading, timeouts, the endpoint's key and body limits, secret, TLS).
//! - [`PeerService`]: the peer endpoint, answering
//!   `GET <base path><group>/<key>` with a protobuf `GetResponse` (its
//!   documentation has every answer). A tower and hyper service, so it
//!   mounts in axum or any hyper server.
//! - [`Server`]: runs a service (the peer endpoint alone, or an axum router
//!   mounting it) on a listener, with the [`ServerLimits`] that keep hostile
//!   or overeager clients from hurting others.
//! - [`discovery`]: keeping the peer list in step with DNS (a Kubernetes
//!   headless service), a file, or any [`discovery::Discovery`] source.
//! - [`PeerAuth`]: the optional cluster secret that signs and checks every
//!   peer request.
//! - `TlsConfig` (with the `tls` cargo feature): TLS between peers,
//!   `https://` peer URLs, a CA to trust and optional client certificates.
//! - [`wire`]: how group and key are escaped into, and read from, a path.
//!
//! Inside, the code splits where the protocol does: `client/` sends
//! requests to peers ([`HttpPeer`], over one shared hyper client) and
//! `server/` answers them (the endpoint, the listener, its limits and
//! their guard). Both use `protocol/`: one request type that the client
//! encodes and the server parses, and one table of answers that the server
//! writes and the client reads, so the two sides cannot disagree. Neither
//! side imports the other; a peer reports its health to the pool through a
//! callback.
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

mod auth;
mod body;
mod client;
pub mod discovery;
mod options;
mod pool;
mod protocol;
mod server;
#[cfg(feature = "tls")]
mod tls;
pub mod wire;

pub use auth::{AuthError, PeerAuth, Verified, DEFAULT_AUTH_WINDOW, MIN_SECRET_BYTES};
pub use body::PeerBody;
pub use client::HttpPeer;
pub use options::{
    HttpOptions, HttpOptionsBuilder, PlusInPath, DEFAULT_BASE_PATH, DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_IDLE_PER_PEER, DEFAULT_MAX_KEY_BYTES,
    DEFAULT_MAX_REMOVE_KEYS, DEFAULT_PEEK_TIMEOUT, DEFAULT_PEEK_WINDOW, DEFAULT_REQUEST_TIMEOUT,
    MIN_MAX_REMOVE_KEYS,
};
pub use pool::{HttpPool, PoolError};
pub use protocol::MAX_GET_MANY_KEYS;
pub use server::{
    serve, serve_with_shutdown, BodyBudgetExceeded, BodyTimeout, ClientAddr, GuardedBody,
    LimitCounters, LimitStats, PeerService, ResponseFuture, Server, ServerLimits,
    ServerLimitsBuilder, DEFAULT_BODY_READ_TIMEOUT, DEFAULT_HEADER_READ_TIMEOUT,
    DEFAULT_MAX_BODY_BYTES_IN_FLIGHT, DEFAULT_MAX_CONCURRENT_REQUESTS,
    DEFAULT_MAX_CONCURRENT_STREAMS, DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_URI_BYTES,
    DEFAULT_WRITE_TIMEOUT, SHUTDOWN_GRACE,
};
#[cfg(feature = "tls")]
pub use tls::{rustls, Pem, TlsBuilder, TlsConfig, TlsError};
