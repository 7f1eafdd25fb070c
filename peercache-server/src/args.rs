//! The command line of `peercache-server`, and the parsers of its values
//! (byte sizes, durations, hot-cache policies), each refusing bad input with
//! a message that names the flag's expected form.

use crate::error::ServerError;
use clap::{Parser, ValueEnum};
use peercache::health::HealthPolicy;
use peercache::http;
use peercache::http::{HttpOptions, ServerLimits, DEFAULT_BASE_PATH};
use peercache::HotCachePolicy;
use std::path::PathBuf;
use std::time::Duration;

mod deploys;
mod front;
mod parse;

pub use deploys::DeployArgs;
pub use front::FrontArgs;
#[cfg(test)]
use parse::MAX_DURATION;
pub use parse::{parse_bytes, parse_duration, parse_failures, parse_hot_cache, parse_wait};
use parse::{parse_count, trimmed};

/// A peercache node: serves the built-in `colors` group (and, with
/// `--echo-group`, `echo`) to clients, and the groupcache peer protocol to
/// the other nodes, Go groupcache nodes included.
#[derive(Debug, Parser)]
#[command(name = "peercache-server", version, about, long_about = None)]
pub struct Args {
    /// Address to listen on, HOST:PORT (port 0 picks a free port; Go's
    /// `:PORT` listens on every interface): the peer endpoint, and the front
    /// API unless --front-addr is given
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: String,

    /// This node's base URL, exactly as the other nodes list it in --pool
    /// [default: http://ADDR, or the one --pool URL naming this machine on
    /// the listening port]
    #[arg(long = "self", value_name = "URL")]
    pub self_url: Option<String>,

    /// Base URLs of every node in the cluster, this one included,
    /// comma-separated (spaces around commas are ignored) [default: this
    /// node alone]
    #[arg(long, value_name = "URL,URL,...", value_delimiter = ',', value_parser = trimmed, conflicts_with_all = ["peers_dns", "peers_file"])]
    pub pool: Vec<String>,

    /// Find the peers by DNS: every A/AAAA record of NAME is a peer at
    /// http://ADDRESS:PORT (a Kubernetes headless service), polled every
    /// --discovery-interval; needs --self http://<this pod's IP>:PORT
    #[arg(long, value_name = "NAME:PORT", conflicts_with = "peers_file")]
    pub peers_dns: Option<String>,

    /// Read the peers from a file, one base URL per line ('#' comments),
    /// re-read every --discovery-interval
    #[arg(long, value_name = "PATH")]
    pub peers_file: Option<std::path::PathBuf>,

    /// How often --peers-dns or --peers-file is polled
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub discovery_interval: Duration,

    /// Failures in a row (refused, timeout, 5xx) that take a peer out of the
    /// ring until a background probe finds it answering again; 0 never does
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub failures_to_down: u32,

    /// How long a peer that answers again waits before it is back in the
    /// ring: time for the changes it missed to reach it first; keep it
    /// above --change-timeout (0: at once)
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = parse_wait)]
    pub rejoin_delay: Duration,

    /// Default time-to-live of cached values, e.g. 30s, 10m [default: none,
    /// values live until evicted or removed]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub ttl: Option<Duration>,

    /// Cache budget of each group, main and hot caches together: bytes, or
    /// with a suffix KiB, MiB, GiB
    #[arg(long, value_name = "SIZE", default_value = "64MiB", value_parser = parse_bytes)]
    pub cache_bytes: u64,

    /// Ring hash of the cluster: golang (golang/groupcache) or mailgun
    /// (mailgun/groupcache, groupcache-go)
    #[arg(long, value_enum, default_value_t = Ring::Golang)]
    pub hash_mode: Ring,

    /// Points per node on the ring; must match the other nodes
    #[arg(long, default_value_t = peercache::ring::DEFAULT_REPLICAS)]
    pub replicas: usize,

    /// Path prefix of the peer endpoint; must match the other nodes
    #[arg(long, default_value = DEFAULT_BASE_PATH)]
    pub base_path: String,

    /// Keep values fetched from peers in the hot cache: frequent (by how
    /// often the key is asked), never, always, or one-in-N (golang's is
    /// one-in-10) [default: frequent with golang, always with mailgun]
    #[arg(long, value_name = "POLICY", value_parser = parse_hot_cache)]
    pub hot_cache: Option<HotCachePolicy>,

    /// Time to connect to a peer, e.g. 500ms, 2s
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = parse_duration)]
    pub connect_timeout: Duration,

    /// Time for a whole peer request, the owner's load included; after it
    /// the key is loaded here
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub peer_timeout: Duration,

    /// Talk HTTP/2 (h2c) to peers: only when every node is peercache
    #[arg(long)]
    pub http2: bool,

    /// A TOML file declaring more groups, each reading through to a data
    /// source: an HTTP origin, a directory or a SQLite query (see the README,
    /// "Data sources")
    #[arg(long, value_name = "PATH")]
    pub config: Option<std::path::PathBuf>,

    /// Also serve group `echo`, whose value for a key is the key itself: a
    /// smoke test of key escaping across a cluster
    #[arg(long)]
    pub echo_group: bool,

    /// Cancel a load by this node's loader after this long, e.g. 2s (the
    /// waiting requests get 503); keep it below the peers' --peer-timeout
    /// [default: no limit]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub load_timeout: Option<Duration>,

    /// Run at most N loads of each group at once on this node: a burst of
    /// distinct misses waits for a place (--load-admission-wait), then
    /// gets 503, instead of opening N+ origin queries [default: no cap]
    #[arg(long, value_name = "N", value_parser = parse_count)]
    pub max_concurrent_loads: Option<usize>,

    /// How long a load over --max-concurrent-loads waits for a place
    /// before its request gets 503 (0: not at all)
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_wait)]
    pub load_admission_wait: Duration,

    /// After N loads in a row that found the origin unreachable (refused,
    /// timed out, 5xx), fail loads at once for --origin-breaker-cool-down
    /// instead of calling it; then one trial load [default: no breaker]
    #[arg(long, value_name = "N", value_parser = parse_failures)]
    pub origin_breaker: Option<u32>,

    /// How long --origin-breaker pauses loads before a trial
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub origin_breaker_cool_down: Duration,

    /// Serve a value up to this long past its expiry at once while one
    /// refresh runs in the background, e.g. 30s (RFC 5861
    /// stale-while-revalidate) [default: none]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub stale_while_revalidate: Option<Duration>,

    /// Serve a value up to this long past its expiry when loading it again
    /// fails (origin down, timeout, over --max-concurrent-loads), e.g. 1h
    /// (RFC 5861 stale-if-error) [default: none]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub stale_if_error: Option<Duration>,

    /// How long a set, remove or purge waits for a node that does not own
    /// the key; past it the node is pending (named in the answer's
    /// `peercache-pending` header) and the change is delivered when it
    /// answers again. Keep it below --peer-timeout
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
    pub change_timeout: Duration,

    /// Serve a hot copy (another node's key, mirrored here) at most this
    /// long, then ask its owner again: how long a node can serve a value
    /// after a change it missed; 0 for no limit
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_wait)]
    pub hot_max_age: Duration,

    /// Cache "not found" answers this long, e.g. 30s, so a missing key is
    /// asked of the origin once per window, cluster-wide [default: never]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub cache_not_found: Option<Duration>,

    /// File holding the cluster secret (at least 16 bytes; a trailing
    /// newline is ignored). Every peer request is then signed and unsigned
    /// ones get 401; every node needs the same file. Go nodes cannot join a
    /// cluster with a secret [default: no authentication]
    #[arg(long, value_name = "PATH")]
    pub peer_secret_file: Option<std::path::PathBuf>,

    /// How far a signed request's timestamp may be from this node's clock
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub peer_auth_window: Duration,

    /// Serve HTTPS (peers and clients alike) with this PEM certificate
    /// chain, this node's certificate first; needs --tls-key. --self then
    /// defaults to https://ADDR, and the other nodes list this one as
    /// https://. Needs the `tls` build feature
    #[arg(long, value_name = "PATH", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// The PEM private key of --tls-cert (PKCS#8, PKCS#1 or SEC1,
    /// unencrypted)
    #[arg(long, value_name = "PATH", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Trust the CA certificates in this PEM bundle: https:// peers must
    /// present a certificate signed by one of them (naming the host of their
    /// URL), and so must clients under --tls-require-client-cert. Needed for
    /// https:// peer URLs. Needs the `tls` build feature
    #[arg(long, value_name = "PATH")]
    pub tls_ca: Option<PathBuf>,

    /// Present this PEM certificate chain to peers that require a client
    /// certificate (mutual TLS); needs --tls-client-key and --tls-ca
    #[arg(long, value_name = "PATH", requires_all = ["tls_client_key", "tls_ca"])]
    pub tls_client_cert: Option<PathBuf>,

    /// The PEM private key of --tls-client-cert
    #[arg(long, value_name = "PATH", requires = "tls_client_cert")]
    pub tls_client_key: Option<PathBuf>,

    /// Mutual TLS: refuse, at the handshake, every client (peer or not)
    /// without a certificate signed by --tls-ca; needs --tls-cert and
    /// --tls-ca. Peers then need --tls-client-cert
    #[arg(long, requires_all = ["tls_cert", "tls_ca"])]
    pub tls_require_client_cert: bool,

    /// Requests handled at once; more are answered 503 with Retry-After
    #[arg(long, value_name = "N", default_value_t = http::DEFAULT_MAX_CONCURRENT_REQUESTS)]
    pub max_concurrent_requests: usize,

    /// Connections open at once; at the cap new clients wait in the kernel's
    /// backlog (keep it below `ulimit -n`)
    #[arg(long, value_name = "N", default_value_t = http::DEFAULT_MAX_CONNECTIONS)]
    pub max_connections: usize,

    /// Time a write to a client may stall before the client is disconnected
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub write_timeout: Duration,

    /// HTTP/2 streams open at once on one connection
    #[arg(long, value_name = "N", default_value_t = http::DEFAULT_MAX_CONCURRENT_STREAMS)]
    pub max_concurrent_streams: u32,

    /// Time for a request's headers to arrive, from connecting or from the
    /// previous answer (so also how long an idle HTTP/1.1 connection is kept)
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub header_read_timeout: Duration,

    /// Time for a request's body to arrive (408 after it)
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub body_read_timeout: Duration,

    /// Longest request target (path and query) accepted (414 beyond)
    #[arg(long, value_name = "SIZE", default_value = "64KiB", value_parser = parse_bytes)]
    pub max_uri_bytes: u64,

    /// Longest key accepted, once percent-decoded (414 beyond)
    #[arg(long, value_name = "SIZE", default_value = "16KiB", value_parser = parse_bytes)]
    pub max_key_bytes: u64,

    /// Largest body of a peer request (a peer's PUT value, a remove-keys
    /// list; 413 beyond) and of a peer's answer (beyond it the answer is
    /// dropped and counted as that peer's failure)
    #[arg(long, value_name = "SIZE", default_value = "64MiB", value_parser = parse_bytes)]
    pub max_body_bytes: u64,

    /// Largest body of a front API request: a PUT's value (413 beyond);
    /// must leave room for the key within --max-body-bytes
    #[arg(long, value_name = "SIZE", default_value = "8MiB", value_parser = parse_bytes)]
    pub max_front_body_bytes: u64,

    /// Bytes of request bodies held at once by the whole node; a request
    /// that does not fit is answered 503 with Retry-After
    #[arg(long, value_name = "SIZE", default_value = "128MiB", value_parser = parse_bytes)]
    pub max_body_bytes_in_flight: u64,

    /// Most keys in one remove-keys request from a peer (413 beyond)
    #[arg(long, value_name = "N", default_value_t = http::DEFAULT_MAX_REMOVE_KEYS)]
    pub max_remove_keys: usize,

    /// Host names this node answers to besides localhost and its --self
    /// host (IP addresses always pass; `*`: any name). A request for
    /// another name gets 421: protection against DNS rebinding
    #[arg(long, value_name = "NAME,...", value_delimiter = ',')]
    pub allowed_hosts: Vec<String>,

    /// How keys appear in logs and traces: plain, hashed (sha256 prefix) or
    /// hidden. RUST_LOG=peercache=debug logs every miss, load, peer fetch and
    /// change with its key, outcome and duration
    #[arg(long, value_enum, default_value_t = TraceKeys::Plain)]
    pub trace_keys: TraceKeys,

    /// Log lines as plain text or JSON; the level comes from RUST_LOG
    /// (default info)
    #[arg(long, value_enum, default_value_t = LogFormat::Plain)]
    pub log_format: LogFormat,

    /// The front API's port and access.
    #[command(flatten)]
    pub front: FrontArgs,

    #[command(flatten)]
    pub deploys: DeployArgs,
}

/// The ring hash, as a flag value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Ring {
    /// golang/groupcache: CRC-32.
    Golang,
    /// mailgun/groupcache and groupcache-go: FNV-1 over MD5.
    Mailgun,
}

/// How keys appear in traces, as a flag value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TraceKeys {
    /// The key itself.
    Plain,
    /// `sha256:` and 16 hex digits of the key's hash.
    Hashed,
    /// `-`.
    Hidden,
}

impl From<TraceKeys> for peercache::KeyInTraces {
    fn from(keys: TraceKeys) -> Self {
        match keys {
            TraceKeys::Plain => peercache::KeyInTraces::Plain,
            TraceKeys::Hashed => peercache::KeyInTraces::Hashed,
            TraceKeys::Hidden => peercache::KeyInTraces::Hidden,
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Plain,
    /// One JSON object per line.
    Json,
}

impl Args {
    /// Whether the peers come from a discovery source, not a static list.
    pub fn discovers_peers(&self) -> bool {
        self.peers_dns.is_some() || self.peers_file.is_some()
    }

    /// The first TLS flag given, if any.
    pub fn tls_flag(&self) -> Option<&'static str> {
        [
            (self.tls_cert.is_some(), "--tls-cert"),
            (self.tls_key.is_some(), "--tls-key"),
            (self.tls_ca.is_some(), "--tls-ca"),
            (self.tls_client_cert.is_some(), "--tls-client-cert"),
            (self.tls_client_key.is_some(), "--tls-client-key"),
            (self.tls_require_client_cert, "--tls-require-client-cert"),
        ]
        .into_iter()
        .find_map(|(given, flag)| given.then_some(flag))
    }

    /// The TLS configuration these flags ask for, if any.
    #[cfg(feature = "tls")]
    pub fn tls_config(
        &self,
    ) -> Result<Option<peercache::http::TlsConfig>, peercache::http::TlsError> {
        use peercache::http::{Pem, TlsConfig};
        if self.tls_flag().is_none() {
            return Ok(None);
        }
        let mut builder = TlsConfig::builder().require_client_cert(self.tls_require_client_cert);
        if let Some(ca) = &self.tls_ca {
            builder = builder.ca(Pem::file(ca));
        }
        if let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) {
            builder = builder.server_cert(Pem::file(cert), Pem::file(key));
        }
        if let (Some(cert), Some(key)) = (&self.tls_client_cert, &self.tls_client_key) {
            builder = builder.client_cert(Pem::file(cert), Pem::file(key));
        }
        builder.build().map(Some)
    }

    /// The hot-cache policy of groups: `--hot-cache`, else what the hash
    /// mode's Go family does best (`frequent`; mailgun mirrors always).
    pub fn hot_cache_default(&self) -> HotCachePolicy {
        self.hot_cache.unwrap_or(match self.hash_mode {
            Ring::Golang => HotCachePolicy::Frequent,
            Ring::Mailgun => HotCachePolicy::Always,
        })
    }

    /// The transport options these flags ask for; the error names the flag.
    pub fn http_options(&self) -> Result<HttpOptions, ServerError> {
        let base = match self.hash_mode {
            Ring::Golang => HttpOptions::default(),
            Ring::Mailgun => HttpOptions::mailgun(),
        };
        let health = HealthPolicy::builder()
            .failures_to_down(self.failures_to_down)
            .rejoin_delay(self.rejoin_delay)
            .build()
            .map_err(ServerError::setting)?;
        base.to_builder()
            .base_path(self.base_path.clone())
            .replicas(self.replicas)
            .connect_timeout(self.connect_timeout)
            .request_timeout(self.peer_timeout)
            .http2(self.http2)
            .max_key_bytes(usize::try_from(self.max_key_bytes).unwrap_or(usize::MAX))
            .max_body_bytes(usize::try_from(self.max_body_bytes).unwrap_or(usize::MAX))
            .max_remove_keys(self.max_remove_keys)
            .peek_window(self.deploys.peek_window)
            .peek_timeout(self.deploys.peek_timeout)
            .health(health)
            .build()
            .map_err(ServerError::setting)
    }

    /// The server limits these flags ask for; the error names the flag.
    pub fn server_limits(&self) -> Result<ServerLimits, ServerError> {
        ServerLimits::builder()
            .max_concurrent_requests(self.max_concurrent_requests)
            .max_concurrent_streams(self.max_concurrent_streams)
            .header_read_timeout(self.header_read_timeout)
            .body_read_timeout(self.body_read_timeout)
            .max_uri_bytes(usize::try_from(self.max_uri_bytes).unwrap_or(usize::MAX))
            .max_connections(self.max_connections)
            .write_timeout(self.write_timeout)
            .max_body_bytes_in_flight(self.max_body_bytes_in_flight)
            .build()
            .map_err(ServerError::setting)
    }
}

/// The flags of golang/groupcache's example server that `peercache-server`
/// shares, which Go's flag package spells with one dash (`-addr=:8080`,
/// `-pool http://127.0.0.1:8080`).
const GO_FLAGS: [&str; 3] = ["addr", "pool", "self"];

/// The command line with Go's single-dash spellings of [`GO_FLAGS`]
/// (`-addr=V`, `-addr V`) rewritten to clap's (`--addr=V`, `--addr V`), so
/// the seed's `peercache-server -addr=:8080 -pool=http://127.0.0.1:8080`
/// works verbatim. Other arguments, anything after `--`, and values
/// (an argument following a flag that takes one) are left alone.
pub fn go_style_flags<I, T>(argv: I) -> Vec<std::ffi::OsString>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString>,
{
    let command = <Args as clap::CommandFactory>::command();
    let takes_value = |long: &str| {
        command
            .get_arguments()
            .any(|arg| arg.get_long() == Some(long) && arg.get_action().takes_values())
    };
    let mut out = Vec::new();
    let mut value_next = false;
    let mut args = argv.into_iter().map(Into::into);
    out.extend(args.next()); // the program
    while let Some(arg) = args.next() {
        if std::mem::take(&mut value_next) {
            out.push(arg);
            continue;
        }
        let text = arg.to_str().unwrap_or_default();
        if text == "--" {
            out.push(arg);
            out.extend(args);
            break;
        }
        let go_flag = GO_FLAGS.iter().any(|name| {
            text.strip_prefix('-')
                .and_then(|rest| rest.strip_prefix(*name))
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('='))
        });
        // `--flag V` and `-addr V`: V is a value even if it starts with `-`.
        value_next =
            !text.contains('=') && (go_flag || text.strip_prefix("--").is_some_and(takes_value));
        if go_flag {
            let mut long = std::ffi::OsString::from("-");
            long.push(&arg);
            out.push(long);
        } else {
            out.push(arg);
        }
    }
    out
}

#[cfg(test)]
mod tests;
