//! Finding the peers: a [`Discovery`] source polled by [`watch`].
//!
//! A static list ([`super::HttpPool::set_peers`]) is enough for a fixed
//! cluster. When nodes come and go, a [`Discovery`] says who the members are
//! now, and [`watch`] polls it and hands each new list to the pool:
//!
//! - [`DnsDiscovery`] resolves a name and takes every A and AAAA record as a
//!   peer (`http://<address>:<port>`), which is how a Kubernetes headless
//!   service lists its ready pods;
//! - [`FileDiscovery`] reads a file with one base URL per line, for
//!   configuration management or a mounted ConfigMap;
//! - any other source implements the trait.
//!
//! Every node must build the same ring from the same members, and a ring
//! depends on the order peers are added when two peers' points collide, so
//! [`watch`] sorts the list. This node's own URL is added when the source
//! does not list it (a pod is not in its service's DNS until it is ready), and
//! an empty answer or a failed poll keeps the current list: a DNS outage must
//! not turn every node into a cluster of one.
//!
//! ```
//! use peercache::http::discovery::{watch, DEFAULT_DISCOVERY_INTERVAL};
//! use peercache::http::discovery::{DnsDiscovery, FileDiscovery};
//! use peercache::http::{HttpOptions, HttpPool};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let pool = HttpPool::new("http://10.0.0.1:8080", HttpOptions::default())?;
//!
//! // In Kubernetes, the pods behind a headless service:
//! let dns = DnsDiscovery::parse("peercache.default.svc.cluster.local:8080")?;
//! # let _ = dns;
//! // Or a file with one base URL per line:
//! let file = FileDiscovery::new("/etc/peercache/peers");
//! let watcher = watch(&pool, file, DEFAULT_DISCOVERY_INTERVAL);
//! // ... the pool follows the file until the task is aborted or the pool dropped.
//! watcher.abort();
//! # Ok(())
//! # }
//! ```

use super::pool::HttpPool;
use crate::loader::BoxFuture;
use crate::trace::Escaped;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Default time between two polls of a discovery source.
pub const DEFAULT_DISCOVERY_INTERVAL: Duration = Duration::from_secs(5);

/// Why a discovery source gave no list.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DiscoveryError {
    /// The source's description is malformed.
    #[error("invalid discovery source {spec:?}: {reason}")]
    Spec {
        /// What was given.
        spec: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The name could not be resolved.
    #[error("resolving {name:?} failed: {reason}; check the name (a Kubernetes headless service: <service>.<namespace>.svc.cluster.local)")]
    Lookup {
        /// The name.
        name: String,
        /// The resolver's error.
        reason: String,
    },
    /// The peers file could not be read.
    #[error("reading the peers file {path:?} failed: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        reason: String,
    },
}

/// A source of the cluster's member list.
pub trait Discovery: Send + Sync + 'static {
    /// The base URLs of the members now (this node's may be missing).
    fn discover(&self) -> BoxFuture<'_, Result<Vec<String>, DiscoveryError>>;

    /// What is polled, for logs.
    fn describe(&self) -> String;
}

impl<D: Discovery + ?Sized> Discovery for Box<D> {
    fn discover(&self) -> BoxFuture<'_, Result<Vec<String>, DiscoveryError>> {
        (**self).discover()
    }

    fn describe(&self) -> String {
        (**self).describe()
    }
}

/// Peers from the A and AAAA records of a name, all on one port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsDiscovery {
    name: String,
    port: u16,
}

impl DnsDiscovery {
    /// Peers at `http://<each address of name>:<port>`.
    pub fn new(name: &str, port: u16) -> Self {
        DnsDiscovery {
            name: name.to_owned(),
            port,
        }
    }

    /// Parses `NAME:PORT`, as the server's `--peers-dns` takes it.
    pub fn parse(spec: &str) -> Result<Self, DiscoveryError> {
        let invalid = |reason: &str| DiscoveryError::Spec {
            spec: spec.to_owned(),
            reason: reason.to_owned(),
        };
        let (name, port) = spec.rsplit_once(':').ok_or_else(|| {
            invalid("expected NAME:PORT, e.g. peercache.default.svc.cluster.local:8080")
        })?;
        let port: u16 = port
            .parse()
            .map_err(|_| invalid("the port must be a number from 1 to 65535"))?;
        if name.is_empty() || port == 0 {
            return Err(invalid("both a name and a non-zero port are needed"));
        }
        Ok(DnsDiscovery::new(name, port))
    }
}

impl Discovery for DnsDiscovery {
    fn discover(&self) -> BoxFuture<'_, Result<Vec<String>, DiscoveryError>> {
        Box::pin(async move {
            let addresses = tokio::net::lookup_host((self.name.as_str(), self.port))
                .await
                .map_err(|e| DiscoveryError::Lookup {
                    name: self.name.clone(),
                    reason: e.to_string(),
                })?;
            Ok(addresses
                .map(|a: SocketAddr| format!("http://{a}"))
                .collect())
        })
    }

    fn describe(&self) -> String {
        format!("DNS {}:{}", self.name, self.port)
    }
}

/// Peers from a file: one base URL per line; blank lines and lines starting
/// with `#` are skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileDiscovery {
    path: PathBuf,
}

impl FileDiscovery {
    /// Reads the list from `path` at every poll.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        FileDiscovery { path: path.into() }
    }
}

impl Discovery for FileDiscovery {
    fn discover(&self) -> BoxFuture<'_, Result<Vec<String>, DiscoveryError>> {
        Box::pin(async move {
            let text =
                tokio::fs::read_to_string(&self.path)
                    .await
                    .map_err(|e| DiscoveryError::File {
                        path: self.path.clone(),
                        reason: e.to_string(),
                    })?;
            Ok(text
                .lines()
                .map(str::trim)
                .filter(|line| !line.is_empty() && !line.starts_with('#'))
                .map(str::to_owned)
                .collect())
        })
    }

    fn describe(&self) -> String {
        format!("file {}", self.path.display())
    }
}

/// Asks `discovery` once and, if the members changed, sets them on `pool`.
/// Returns whether the list changed. A failed poll or an empty answer keeps
/// the current list (and is an error, or `Ok(false)`, respectively); a list
/// the pool refuses (say, a malformed URL in a file) is logged and kept out.
pub async fn refresh(pool: &HttpPool, discovery: &dyn Discovery) -> Result<bool, DiscoveryError> {
    let mut members = discovery.discover().await?;
    if members.is_empty() {
        tracing::warn!(source = %discovery.describe(), "discovery found no peers; keeping the current list");
        return Ok(false);
    }
    if !members.iter().any(|m| m == pool.self_url()) {
        members.push(pool.self_url().to_owned());
    }
    members.sort();
    members.dedup();
    let mut current = pool.peers();
    current.sort();
    if members == current {
        return Ok(false);
    }
    match pool.set_peers(&members) {
        Ok(()) => Ok(true),
        Err(error) => {
            tracing::error!(source = %discovery.describe(), error = %Escaped(&error), "discovered peer list refused; keeping the current list");
            Ok(false)
        }
    }
}

/// Polls `discovery` every `every` and keeps `pool`'s members in step, until
/// the returned task is aborted or the pool is dropped.
pub fn watch(
    pool: &Arc<HttpPool>,
    discovery: impl Discovery,
    every: Duration,
) -> tokio::task::JoinHandle<()> {
    let pool = Arc::downgrade(pool);
    tokio::spawn(async move {
        loop {
            let Some(live) = pool.upgrade() else { return };
            if let Err(error) = refresh(&live, &discovery).await {
                tracing::warn!(source = %discovery.describe(), error = %Escaped(&error), "peer discovery failed; keeping the current list");
            }
            drop(live);
            tokio::time::sleep(every).await;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_specs_are_checked() {
        assert_eq!(
            DnsDiscovery::parse("peercache.default.svc.cluster.local:8080").unwrap(),
            DnsDiscovery::new("peercache.default.svc.cluster.local", 8080)
        );
        for bad in [
            "nameonly",
            "name:",
            ":80",
            "name:0",
            "name:99999",
            "name:http",
        ] {
            assert!(
                matches!(DnsDiscovery::parse(bad), Err(DiscoveryError::Spec { .. })),
                "{bad:?} accepted"
            );
        }
    }

    #[tokio::test]
    async fn dns_lists_every_address_of_a_name() {
        let found = DnsDiscovery::new("localhost", 8080)
            .discover()
            .await
            .unwrap();
        assert!(
            found.contains(&"http://127.0.0.1:8080".to_owned()),
            "{found:?}"
        );
        for url in &found {
            assert!(
                url == "http://127.0.0.1:8080" || url == "http://[::1]:8080",
                "{url}"
            );
        }
    }
}
