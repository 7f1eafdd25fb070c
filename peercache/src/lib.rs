//! peercache: groupcache for Rust.
//!
//! A distributed cache-filling library. Every process embeds a cache; every
//! key has one owner among the peers, chosen by a consistent-hash ring; a miss
//! is filled by asking the owner, and only the owner runs the [`Loader`] that
//! reads the real source; concurrent gets of one key share one load; popular
//! keys owned elsewhere are mirrored in a small hot cache. The ring and (with
//! the HTTP transport) the wire protocol are compatible with Go's
//! golang/groupcache and mailgun/groupcache, so Rust and Go nodes can share a
//! cluster.
//!
//! ```
//! use peercache::{loader_fn, LoadError, Node};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), peercache::Error> {
//! let node = Node::new();
//! let colors = node.new_group("colors", 64 << 20, loader_fn(|name: String| async move {
//!     match name.as_str() {
//!         "red" => Ok("#FF0000"),
//!         "green" => Ok("#00FF00"),
//!         _ => Err(LoadError::NotFound),
//!     }
//! }))?;
//! assert_eq!(colors.get("red").await?.as_str().unwrap(), "#FF0000");
//! assert!(colors.get("mauve").await.unwrap_err().is_not_found());
//! # Ok(())
//! # }
//! ```
//!
//! # Layout
//!
//! Each module is one concept; the small ones (`cache`, `flight`, `ring`)
//! depend on nothing else in the crate, like Go's `lru`, `singleflight` and
//! `consistenthash` packages. The types an application uses are at the
//! crate root, each with one path; the modules that only define them are
//! private (their files are named below).
//!
//! - `node.rs`: a [`Node`] owns this process's groups and its peer picker
//!   (no global state); [`GroupBuilder`].
//! - `group/`: a [`Group`] and its read path, `get` ([`Get`]): main cache →
//!   hot cache → owning peer → loader; changes across the cluster; and the
//!   peer-facing [`ServedGroup`], whose gets never forward. One concern per
//!   file (handle, load path, changes, local state, served side).
//! - `loader.rs`: the [`Loader`] trait (Go's `Getter`) and [`loader_fn`]
//!   for async closures.
//! - `value.rs`: the immutable [`Value`] (`bytes::Bytes` inside) and its
//!   views as text or protobuf.
//! - [`cache`]: the byte-budgeted main + hot [`cache::Cache`] with groupcache's
//!   eviction rule and exact accounting.
//! - [`clock`]: the wall clock expiry is read from, and a manual one for
//!   tests.
//! - `fence`: keeps a load that overlapped a remove, set or purge from
//!   caching the old value.
//! - [`flight`]: merging concurrent loads of one key, panic-safe and
//!   cancellation-safe; usable alone.
//! - [`ring`]: the consistent-hash [`ring::Ring`], reproducing Go's hashes,
//!   with removal and weights.
//! - [`health`]: a peer's health: up, or out of the ring and probed with
//!   back-off.
//! - `peers.rs`: the [`PeerPicker`] and [`Peer`] traits a transport
//!   implements (how to write one is on [`PeerPicker`]).
//! - [`http`]: the HTTP transport, wire-compatible with Go groupcache: the
//!   peer pool ([`http::HttpPool`]) and its options ([`http::HttpOptions`]),
//!   the peer endpoint ([`http::PeerService`]), the server with its limits
//!   ([`http::Server`], [`http::ServerLimits`]), peer authentication
//!   ([`http::PeerAuth`]) and the wire escaping. Inside, `client/` and
//!   `server/` share `protocol/`: one request type and one table of
//!   answers, so neither side imports the other.
//! - [`proto`]: the protobuf messages of the peer protocol (prost derive).
//! - [`in_process`]: an in-process transport, for tests and single-process
//!   clusters.
//! - `stats.rs`: per-group counters with Go's names ([`GroupStats`]).
//! - [`trace`]: the tracing spans of misses, loads, fetches and changes,
//!   and how keys show in them ([`KeyInTraces`]).
//! - [`metrics`]: those counters, latencies and peer health through the
//!   `metrics` facade, with mailgun's Prometheus names.
//! - `error.rs`: the typed [`Error`] and [`PeerFailure`]; `setting.rs`:
//!   [`InvalidSetting`], the error of every settings type.

#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(unsafe_code)]
#![warn(missing_docs)]

mod batch_loader;
pub mod cache;
pub mod clock;
mod error;
mod fence;
pub mod flight;
mod group;
pub mod health;
pub mod http;
pub mod in_process;
mod loader;
pub mod metrics;
mod node;
mod peers;
pub mod proto;
// The one module with `unsafe`: a lock, whose soundness argument is its docs.
#[allow(unsafe_code)]
mod read_mostly;
pub mod ring;
mod setting;
mod stats;
pub mod trace;
#[cfg(feature = "typed")]
#[cfg_attr(docsrs, doc(cfg(feature = "typed")))]
pub mod typed;
mod value;

pub use batch_loader::{batch_loader_fn, BatchLoaderFn};
pub use cache::policy::HotCachePolicy;
pub use cache::stats::{CacheKind, CacheStats};
pub use error::{Applied, Error, PeerFailure};
pub use group::{Get, Group, HintLimits, PendingHints, ServedGroup};
pub use loader::{loader_fn, BoxFuture, LoadError, Loader, LoaderFn, LOAD_MANY_CONCURRENCY};
pub use node::{
    GroupBuilder, Handoff, LeaveReport, Node, DEFAULT_CACHE_BYTES, DEFAULT_CHANGE_TIMEOUT,
    DEFAULT_HOT_MAX_AGE, MAX_GROUP_NAME_LEN,
};
pub use peers::{FetchError, Peer, PeerError, PeerPicker, FETCH_MANY_CONCURRENCY};
pub use setting::InvalidSetting;
pub use stats::GroupStats;
pub use trace::setting::KeyInTraces;
pub use value::{Value, ValueError};

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;
