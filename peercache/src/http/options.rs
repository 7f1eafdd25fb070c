//! Options of the HTTP transport, shared by its client and server sides so
//! that the two always agree (base path, how `+` is read).
//!
//! They are built, never written field by field: [`HttpOptionsBuilder`]
//! checks every setting in `build` and names the one at fault, a new
//! setting is a new method (not a breaking change to a struct literal), and
//! settings of cargo features (`tls`) are methods that exist with the
//! feature instead of fields that make a struct literal compile or not.

use super::auth::PeerAuth;
use crate::health::HealthPolicy;
use crate::ring::{HashMode, DEFAULT_REPLICAS};
use crate::InvalidSetting;
use std::sync::Arc;
use std::time::Duration;

/// The base path of the peer endpoint in both Go families.
pub const DEFAULT_BASE_PATH: &str = "/_groupcache/";

/// What a raw `+` in a request path means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlusInPath {
    /// `+` is a space: what golang/groupcache clients mean by it.
    Space,
    /// `+` is a plus sign: what mailgun/groupcache clients mean by it, and how
    /// both Go servers read it.
    Literal,
}

/// Default time to open a TCP connection to a peer.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Default time for a whole peer request, the owner's load included.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Default time after a planned ring change (a start, a new member list, a
/// leave) during which a node peeks a key's previous owner before loading
/// it (README "Deploys and scaling"). Long
/// enough for the keys of a working set to be asked again, measured by
/// `bench/deploys.py`; a peek costs one short request, and only for a key
/// that moved.
pub const DEFAULT_PEEK_WINDOW: Duration = Duration::from_secs(60);
/// Default time a peek may take: it is answered from memory, so a slower
/// answer means a node in trouble, whose keys are then loaded.
pub const DEFAULT_PEEK_TIMEOUT: Duration = Duration::from_millis(250);
/// Default number of idle keep-alive connections kept per peer.
pub const DEFAULT_MAX_IDLE_PER_PEER: usize = 32;
/// Default longest key the peer endpoint accepts, in bytes once decoded.
pub const DEFAULT_MAX_KEY_BYTES: usize = 16 << 10;
/// Default largest request body (a `PUT` value, a `_remove-keys` list) the
/// peer endpoint accepts.
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 << 20;
/// Default most keys in one `_remove-keys` request the peer endpoint takes.
pub const DEFAULT_MAX_REMOVE_KEYS: usize = 10_000;
/// The smallest [`HttpOptionsBuilder::max_remove_keys`]: what a peercache node
/// sends in one request.
pub const MIN_MAX_REMOVE_KEYS: usize = 1000;

/// How the HTTP transport talks to peers and answers them.
///
/// The defaults join a golang/groupcache cluster; for a mailgun/groupcache
/// (or groupcache-go) cluster start from [`HttpOptions::mailgun`]. Change
/// settings with [`HttpOptions::builder`] (or [`HttpOptions::to_builder`]),
/// which checks them; every node must agree on the base path, hash mode
/// and replicas.
///
/// The peer endpoint's own limits (longest key, largest body, most keys per
/// remove-keys request) are set here too: the pool builds the endpoint
/// ([`super::HttpPool::service`]), so it and the client read one set of
/// settings. The listener's limits (connections, timeouts, the body budget)
/// are the server's: [`super::ServerLimits`].
///
/// ```
/// use peercache::http::{HttpOptions, HttpPool};
/// use peercache::ring::HashMode;
/// use std::time::Duration;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let options = HttpOptions::mailgun()
///     .to_builder()
///     .request_timeout(Duration::from_secs(2)) // above the slowest load
///     .max_idle_per_peer(64)
///     .build()?;
/// assert_eq!(options.hash_mode(), HashMode::Mailgun);
/// assert_eq!(options.base_path(), "/_groupcache/");
/// let pool = HttpPool::new("http://10.0.0.1:8080", options)?;
/// # let _ = pool;
///
/// // A setting that cannot work is refused by name.
/// let bad = HttpOptions::builder().base_path("groupcache").build().unwrap_err();
/// assert_eq!(bad.setting(), "base_path");
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct HttpOptions {
    pub(crate) base_path: String,
    pub(crate) hash_mode: HashMode,
    pub(crate) replicas: usize,
    pub(crate) plus_in_path: Option<PlusInPath>,
    pub(crate) connect_timeout: Duration,
    pub(crate) request_timeout: Duration,
    pub(crate) peek_window: Duration,
    pub(crate) peek_timeout: Duration,
    pub(crate) max_idle_per_peer: usize,
    pub(crate) http2: bool,
    pub(crate) max_key_bytes: usize,
    pub(crate) max_body_bytes: usize,
    pub(crate) max_remove_keys: usize,
    pub(crate) health: HealthPolicy,
    pub(crate) auth: Option<Arc<PeerAuth>>,
    #[cfg(feature = "tls")]
    pub(crate) tls: Option<Arc<super::tls::TlsConfig>>,
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
            peek_window: DEFAULT_PEEK_WINDOW,
            peek_timeout: DEFAULT_PEEK_TIMEOUT,
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
    /// A builder starting from the defaults (a golang/groupcache cluster).
    pub fn builder() -> HttpOptionsBuilder {
        HttpOptions::default().to_builder()
    }

    /// A builder starting from these options.
    pub fn to_builder(&self) -> HttpOptionsBuilder {
        HttpOptionsBuilder {
            options: self.clone(),
        }
    }

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

    /// Path prefix of the peer endpoint.
    pub fn base_path(&self) -> &str {
        &self.base_path
    }

    /// The ring's hash.
    pub fn hash_mode(&self) -> HashMode {
        self.hash_mode
    }

    /// Points per peer on the ring.
    pub fn replicas(&self) -> usize {
        self.replicas
    }

    /// What a raw `+` in a request path means with these options: the
    /// setting if given, else what the hash mode's clients mean.
    pub fn plus(&self) -> PlusInPath {
        self.plus_in_path.unwrap_or(match self.hash_mode {
            HashMode::Golang => PlusInPath::Space,
            HashMode::Mailgun => PlusInPath::Literal,
        })
    }

    /// Time allowed to connect to a peer.
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// Time allowed for a whole peer request, the owner's load included.
    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
    }

    /// How long after a ring change a node peeks a key's previous owner.
    pub fn peek_window(&self) -> Duration {
        self.peek_window
    }

    /// Time allowed for a peek.
    pub fn peek_timeout(&self) -> Duration {
        self.peek_timeout
    }

    /// Idle keep-alive connections kept per peer.
    pub fn max_idle_per_peer(&self) -> usize {
        self.max_idle_per_peer
    }

    /// Whether peers are spoken to in HTTP/2.
    pub fn http2(&self) -> bool {
        self.http2
    }

    /// Longest key the peer endpoint accepts, in bytes once decoded.
    pub fn max_key_bytes(&self) -> usize {
        self.max_key_bytes
    }

    /// Largest request body the peer endpoint reads, and largest value read
    /// from a peer's answer.
    pub fn max_body_bytes(&self) -> usize {
        self.max_body_bytes
    }

    /// Most keys one remove-keys request may carry.
    pub fn max_remove_keys(&self) -> usize {
        self.max_remove_keys
    }

    /// When a failing peer is taken out of the ring, and how it is probed.
    pub fn health(&self) -> HealthPolicy {
        self.health
    }

    /// The cluster secret, if one is set.
    pub fn auth(&self) -> Option<&Arc<PeerAuth>> {
        self.auth.as_ref()
    }

    /// The TLS configuration, if one is set.
    #[cfg(feature = "tls")]
    pub fn tls(&self) -> Option<&Arc<super::tls::TlsConfig>> {
        self.tls.as_ref()
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
    pub(crate) fn validate(&self) -> Result<(), InvalidSetting> {
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
        if self.peek_timeout.is_zero() {
            return Err(InvalidSetting::new(
                "peek_timeout",
                "must be greater than zero (default 250 ms); turn peeks off with a peek window of zero",
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
        Ok(())
    }
}

/// Builds [`HttpOptions`]; [`HttpOptionsBuilder::build`] checks them.
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct HttpOptionsBuilder {
    options: HttpOptions,
}

impl HttpOptionsBuilder {
    /// Path prefix of the peer endpoint (default `/_groupcache/`). Must
    /// start and end with `/`, and match the other nodes'.
    pub fn base_path(mut self, path: impl Into<String>) -> Self {
        self.options.base_path = path.into();
        self
    }

    /// The ring's hash (default [`HashMode::Golang`]). Must match the other
    /// nodes'.
    pub fn hash_mode(mut self, mode: HashMode) -> Self {
        self.options.hash_mode = mode;
        self
    }

    /// Points per peer on the ring (default 50, as both Go families). Must
    /// match the other nodes'.
    pub fn replicas(mut self, replicas: usize) -> Self {
        self.options.replicas = replicas;
        self
    }

    /// What a raw `+` in a peer request path means. Unset (the default),
    /// it follows the hash mode: golang clients mean a space, mailgun
    /// clients a plus sign.
    pub fn plus_in_path(mut self, plus: PlusInPath) -> Self {
        self.options.plus_in_path = Some(plus);
        self
    }

    /// Time allowed to connect to a peer (default 2 s: one lost SYN is
    /// retried within it).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.options.connect_timeout = timeout;
        self
    }

    /// Time allowed for a whole peer request, including the owner's load
    /// (default 5 s). On timeout the key is loaded locally, so set it above
    /// the slowest load you expect: otherwise every asking node also loads
    /// a slow key. The README's "Peer timeout" measures the choice.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.options.request_timeout = timeout;
        self
    }

    /// How long after a planned change of this node's ring (its start, a
    /// new member list, a member's leave notice; not a failure) it asks a
    /// key's owner on an earlier ring for the key's cached value before
    /// loading it (default 60 s; zero turns peeks off). README "Deploys and
    /// scaling".
    pub fn peek_window(mut self, window: Duration) -> Self {
        self.options.peek_window = window;
        self
    }

    /// Time allowed for a peek (default 250 ms); past it the key is loaded.
    pub fn peek_timeout(mut self, timeout: Duration) -> Self {
        self.options.peek_timeout = timeout;
        self
    }

    /// Idle keep-alive connections kept per peer (default 32).
    pub fn max_idle_per_peer(mut self, idle: usize) -> Self {
        self.options.max_idle_per_peer = idle;
        self
    }

    /// Speak HTTP/2 over cleartext (h2c, prior knowledge) to peers. Only
    /// for all-peercache clusters: Go peers speak HTTP/1.1. peercache
    /// servers accept both. Default off.
    pub fn http2(mut self, http2: bool) -> Self {
        self.options.http2 = http2;
        self
    }

    /// Longest key the peer endpoint accepts, in bytes once decoded
    /// (default 16 KiB); longer keys get 414.
    pub fn max_key_bytes(mut self, bytes: usize) -> Self {
        self.options.max_key_bytes = bytes;
        self
    }

    /// Largest request body the peer endpoint reads (default 64 MiB): a
    /// `PUT`'s value, a `_remove-keys` list. Larger bodies get 413. Also
    /// the largest value this node reads from a peer's answer (the answer
    /// may be 1 KiB larger, for its framing): a larger one is dropped and
    /// counted as a failure of that peer.
    pub fn max_body_bytes(mut self, bytes: usize) -> Self {
        self.options.max_body_bytes = bytes;
        self
    }

    /// Most keys one `_remove-keys` request may carry (default 10,000, at
    /// least 1,000: what this node sends per request); more get 413.
    pub fn max_remove_keys(mut self, keys: usize) -> Self {
        self.options.max_remove_keys = keys;
        self
    }

    /// When a failing peer is taken out of the ring, and how it is probed
    /// until it is back (default [`HealthPolicy::default`]).
    pub fn health(mut self, policy: HealthPolicy) -> Self {
        self.options.health = policy;
        self
    }

    /// The cluster secret (default none). When set, every peer request this
    /// node sends carries a proof, and its peer endpoint answers 401 to any
    /// request without a valid one. Every node needs the same secret; Go
    /// nodes cannot take part. See [`PeerAuth`].
    pub fn auth(mut self, auth: impl Into<Arc<PeerAuth>>) -> Self {
        self.options.auth = Some(auth.into());
        self
    }

    /// TLS to peers whose base URL is `https://` (default none: such peers
    /// are refused by [`super::HttpPool`]). Give the same configuration to
    /// [`super::Server::tls`] to serve HTTPS. See [`super::TlsConfig`].
    #[cfg(feature = "tls")]
    pub fn tls(mut self, tls: impl Into<Arc<super::tls::TlsConfig>>) -> Self {
        self.options.tls = Some(tls.into());
        self
    }

    /// The options, once every setting is checked; the error names the
    /// setting at fault and says what to give instead.
    pub fn build(self) -> Result<HttpOptions, InvalidSetting> {
        self.options.validate()?;
        Ok(self.options)
    }
}
