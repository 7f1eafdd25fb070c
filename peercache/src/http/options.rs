//! Options of the HTTP transport, shared by its client and server sides so
//! that the two always agree (base path, how `+` is read).

use super::auth::PeerAuth;
use super::wire::{PlusInPath, DEFAULT_BASE_PATH};
use crate::health::HealthPolicy;
use crate::ring::{HashMode, DEFAULT_REPLICAS};
use crate::InvalidSetting;
use std::sync::Arc;
use std::time::Duration;

/// Default time to open a TCP connection to a peer.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Default time for a whole peer request, the owner's load included.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Default number of idle keep-alive connections kept per peer.
pub const DEFAULT_MAX_IDLE_PER_PEER: usize = 32;
/// Default longest key the peer endpoint accepts, in bytes once decoded.
pub const DEFAULT_MAX_KEY_BYTES: usize = 16 << 10;
/// Default largest request body (a `PUT` value, a `_remove-keys` list) the
/// peer endpoint accepts.
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 << 20;
/// Default most keys in one `_remove-keys` request the peer endpoint takes.
pub const DEFAULT_MAX_REMOVE_KEYS: usize = 10_000;
/// The smallest [`HttpOptions::max_remove_keys`]: what a peercache node
/// sends in one request.
pub const MIN_MAX_REMOVE_KEYS: usize = 1000;

/// How the HTTP transport talks to peers and answers them.
///
/// The defaults join a golang/groupcache cluster; for a mailgun/groupcache
/// (or groupcache-go) cluster use [`HttpOptions::mailgun`]. Change single
/// fields with struct update syntax; every node must agree on the base
/// path, hash mode and replicas.
///
/// ```
/// use peercache::http::{HttpOptions, HttpPool};
/// use peercache::ring::HashMode;
/// use std::time::Duration;
///
/// # fn main() -> Result<(), peercache::http::PoolError> {
/// let options = HttpOptions {
///     request_timeout: Duration::from_secs(2), // above the slowest load
///     max_idle_per_peer: 64,
///     ..HttpOptions::mailgun()
/// };
/// assert_eq!(options.hash_mode, HashMode::Mailgun);
/// assert_eq!(options.base_path, "/_groupcache/");
/// let pool = HttpPool::new("http://10.0.0.1:8080", options)?;
/// # let _ = pool;
///
/// // Options are checked when the pool is made.
/// let bad = HttpOptions { base_path: "groupcache".into(), ..HttpOptions::default() };
/// assert!(bad.validate().is_err());
/// assert!(HttpPool::new("http://10.0.0.1:8080", bad).is_err());
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// Path prefix of the peer endpoint (default `/_groupcache/`). Must start
    /// and end with `/`, and match the other nodes'.
    pub base_path: String,
    /// The ring's hash (default [`HashMode::Golang`]). Must match the other
    /// nodes'.
    pub hash_mode: HashMode,
    /// Points per peer on the ring (default 50, as both Go families). Must
    /// match the other nodes'.
    pub replicas: usize,
    /// What a raw `+` in a peer request path means. `None` (the default)
    /// follows the hash mode: golang clients mean a space, mailgun clients a
    /// plus sign.
    pub plus_in_path: Option<PlusInPath>,
    /// Time allowed to connect to a peer (default 2 s: one lost SYN is
    /// retried within it).
    pub connect_timeout: Duration,
    /// Time allowed for a whole peer request, including the owner's load
    /// (default 5 s). On timeout the key is loaded locally, so set it above
    /// the slowest load you expect: otherwise every asking node also loads a
    /// slow key.
    pub request_timeout: Duration,
    /// Idle keep-alive connections kept per peer (default 32).
    pub max_idle_per_peer: usize,
    /// Speak HTTP/2 over cleartext (h2c, prior knowledge) to peers. Only for
    /// all-peercache clusters: Go peers speak HTTP/1.1. peercache servers
    /// accept both. Default off.
    pub http2: bool,
    /// Longest key the peer endpoint accepts, in bytes once decoded (default
    /// 16 KiB); longer keys get 414.
    pub max_key_bytes: usize,
    /// Largest request body the peer endpoint reads (default 64 MiB): a
    /// `PUT`'s value, a `_remove-keys` list. Larger bodies get 413. Also the
    /// largest value this node reads from a peer's answer (the answer may
    /// be 1 KiB larger, for its framing): a larger one is dropped and
    /// counted as a failure of that peer.
    pub max_body_bytes: usize,
    /// Most keys one `_remove-keys` request may carry (default 10,000, at
    /// least 1,000: what this node sends per request); more get 413.
    pub max_remove_keys: usize,
    /// When a failing peer is taken out of the ring, and how it is probed
    /// until it is back.
    pub health: HealthPolicy,
    /// The cluster secret (default none). When set, every peer request this
    /// node sends carries a proof, and its peer endpoint answers 401 to any
    /// request without a valid one. Every node needs the same secret; Go
    /// nodes cannot take part. See [`super::auth`].
    pub auth: Option<Arc<PeerAuth>>,
    /// TLS to peers whose base URL is `https://` (default none: such peers
    /// are refused by [`super::HttpPool`]). Give the same configuration to
    /// [`super::Server::tls`] to serve HTTPS. See [`super::tls`].
    #[cfg(feature = "tls")]
    pub tls: Option<Arc<super::tls::TlsConfig>>,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            base_path: DEFAULT_BASE_PATH.to_owned(),
            hash_mode: HashMode::Golang,
            replicas: DEFAULT_REPLICAS,
            plus_in_path: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            max_idle_per_peer: DEFAULT_MAX_IDLE_PER_PEER,
            http2: false,
            max_key_bytes: DEFAULT_MAX_KEY_BYTES,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_remove_keys: DEFAULT_MAX_REMOVE_KEYS,
            health: HealthPolicy::default(),
            auth: None,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }
}

impl HttpOptions {
    /// Options to join a mailgun/groupcache v2 or groupcache-go v3 cluster:
    /// its ring hash (and a plain 404 read as "not found"). To also fill the
    /// hot cache as mailgun does, set the node's default:
    /// `node.set_hot_cache_default(HotCachePolicy::Always)`.
    pub fn mailgun() -> Self {
        HttpOptions {
            hash_mode: HashMode::Mailgun,
            ..HttpOptions::default()
        }
    }

    /// What a raw `+` in a request path means with these options.
    pub fn plus(&self) -> PlusInPath {
        self.plus_in_path.unwrap_or(match self.hash_mode {
            HashMode::Golang => PlusInPath::Space,
            HashMode::Mailgun => PlusInPath::Literal,
        })
    }

    /// Whether these options can reach `https://` peers: TLS is compiled in
    /// and configured with a CA to trust.
    pub fn speaks_https(&self) -> bool {
        #[cfg(feature = "tls")]
        {
            self.tls
                .as_ref()
                .is_some_and(|t| t.client_config().is_some())
        }
        #[cfg(not(feature = "tls"))]
        {
            false
        }
    }

    /// Checks the options that can be wrong; names the setting and says why.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        let path = &self.base_path;
        if path.len() < 3 || !path.starts_with('/') || !path.ends_with('/') {
            return Err(InvalidSetting::new(
                "base_path",
                format!("{path:?} must start and end with '/' and name a directory, such as {DEFAULT_BASE_PATH:?}"),
            ));
        }
        if let Some(bad) = path
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || "/-._~".contains(*c)))
        {
            return Err(InvalidSetting::new(
                "base_path",
                format!(
                    "{path:?} contains {bad:?}: use letters, digits, '/', '-', '.', '_' and '~'"
                ),
            ));
        }
        if self.replicas == 0 {
            return Err(InvalidSetting::new(
                "replicas",
                "must be at least 1 (Go's default is 50)",
            ));
        }
        if self.connect_timeout.is_zero() {
            return Err(InvalidSetting::new(
                "connect_timeout",
                "must be greater than zero (default 2 s)",
            ));
        }
        if self.request_timeout.is_zero() {
            return Err(InvalidSetting::new(
                "request_timeout",
                "must be greater than zero (default 5 s)",
            ));
        }
        if self.max_remove_keys < MIN_MAX_REMOVE_KEYS {
            return Err(InvalidSetting::new(
                "max_remove_keys",
                format!(
                    "{} is too small: peercache nodes send up to {MIN_MAX_REMOVE_KEYS} keys per remove-keys request (default 10,000)",
                    self.max_remove_keys
                ),
            ));
        }
        self.health.validate().map_err(|e| e.within("health"))?;
        Ok(())
    }
}
