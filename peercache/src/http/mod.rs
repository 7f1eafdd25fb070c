//! The HTTP transport: the groupcache peer protocol over HTTP, as Go speaks it.
//!
//! - [`HttpPool`] ([`pool`]): the peer picker of an HTTP cluster. It holds the
//!   ring over the peers' base URLs and a pooled keep-alive client.
//! - [`PeerService`] ([`server`]): the peer endpoint, answering
//!   `GET <base path><group>/<key>` with a protobuf `GetResponse`. A tower
//!   and hyper service, so it mounts in axum or any hyper server.
//! - [`Server`] ([`serve`](mod@serve)): runs a service (the peer endpoint alone, or an
//!   axum router mounting it) on a listener, with the [`ServerLimits`]
//!   ([`limits`]) that keep hostile or overeager clients from hurting others.
//! - [`discovery`]: keeping the peer list in step with DNS (a Kubernetes
//!   headless service), a file, or any [`Discovery`] source.
//! - [`auth`]: the optional cluster secret that signs and checks every peer
//!   request ([`PeerAuth`]).
//! - `tls` (with the `tls` cargo feature): TLS between peers, `https://`
//!   peer URLs, a CA to trust and optional client certificates
//!   (`TlsConfig`).
//! - [`wire`]: how group and key are escaped into, and read from, a path.
//! - [`client`] (requests to peers, [`HttpPeer`], over the shared hyper client of `connector.rs`) and [`server`] (answers, behind the limits of `guard.rs`)
//!   share `protocol.rs` (the names on the wire, the plain-text refusal);
//!   neither imports the other, and a peer reports its health to the pool
//!   through a callback.
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

pub mod auth;
pub mod client;
mod conn;
mod connector;
pub mod discovery;
mod guard;
pub mod limits;
pub mod options;
pub mod pool;
mod protocol;
pub mod serve;
pub mod server;
#[cfg(feature = "tls")]
pub mod tls;
pub mod wire;

pub use auth::{AuthError, PeerAuth};
pub use client::HttpPeer;
pub use discovery::{Discovery, DiscoveryError, DnsDiscovery, FileDiscovery};
pub use limits::{LimitStats, ServerLimits, ServerLimitsBuilder};
pub use options::{HttpOptions, HttpOptionsBuilder};
pub use pool::{HttpPool, PoolError};
pub use serve::{serve, serve_with_shutdown, Server, SHUTDOWN_GRACE};
pub use server::PeerService;
#[cfg(feature = "tls")]
pub use tls::{Pem, TlsConfig, TlsError};
pub use wire::{PlusInPath, DEFAULT_BASE_PATH};
