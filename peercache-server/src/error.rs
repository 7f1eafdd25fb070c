//! Why the server could not start, or stopped: each message names the flag
//! (or the `--config` group) to change.

use peercache::http::PoolError;
use peercache::InvalidSetting;

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen on {flag} {addr}: {source}")]
    Listen {
        flag: &'static str,
        addr: String,
        source: std::io::Error,
    },
    #[error("--addr {addr} listens on every interface, so this node's URL cannot be derived from it: give --self {scheme}://<this host's address>:{port}, spelled as in --pool (or as DNS lists it, for --peers-dns)")]
    NeedSelf {
        addr: String,
        port: u16,
        scheme: &'static str,
    },
    #[error("bad --pool, --self or --base-path: {0}")]
    Pool(#[from] PoolError),
    #[error("bad --peers-dns: {0}")]
    Discovery(#[from] peercache::http::discovery::DiscoveryError),
    #[error("cannot create a group: {0}")]
    Group(#[from] peercache::Error),
    #[error("--peer-auth-window {0:?} is too short: nodes' clocks and the network need at least 1s (default 30s)")]
    AuthWindow(std::time::Duration),
    #[error("bad --peer-secret-file: {0}")]
    Secret(#[from] peercache::http::AuthError),
    #[cfg(not(feature = "tls"))]
    #[error("{flag} needs TLS, which this peercache-server was built without: build it with `cargo build --release -p peercache-server --features tls`")]
    NoTlsFeature { flag: &'static str },
    #[cfg(feature = "tls")]
    #[error("bad --tls-* flag: {0}")]
    Tls(#[from] peercache::http::TlsError),
    #[error("--self {self_url} {reason}")]
    SelfScheme {
        self_url: String,
        reason: &'static str,
    },
    #[error("--peers-dns finds peers at http:// URLs, but this node serves HTTPS (--tls-cert): list the https:// peers with --pool or --peers-file")]
    DnsWithTls,
    #[error("bad {flag}: {source}")]
    Setting {
        flag: String,
        source: InvalidSetting,
    },
    #[error("--max-front-body-bytes {front} leaves no room for the key within --max-body-bytes {peer}: a value set on the front API is sent to the peers with its key; lower the first or raise the second (by --max-key-bytes + 1KiB)")]
    FrontBody { front: u64, peer: u64 },
    #[error("cannot set up the metrics recorder: {0}")]
    Metrics(String),
    #[error("{0}")]
    Config(#[from] crate::sources::ConfigError),
    #[error("{0}")]
    Tokens(#[from] crate::front::tokens::TokenFileError),
    #[error("--front-token-file protects the front API, but the peer endpoint on the same port answers anyone who reaches it (reads, sets, removes, purges): give --front-addr to serve the front on a port of its own (and firewall --addr to the cluster), or --peer-secret-file")]
    TokensBesideOpenPeers,
    #[error("serving failed: {0}")]
    Serve(std::io::Error),
}

impl ServerError {
    /// A setting refused by the library, named by the flag that sets it.
    pub fn setting(source: InvalidSetting) -> Self {
        let flag = match source.setting() {
            "request_timeout" => "--peer-timeout".to_owned(),
            setting => format!("--{}", setting.replace('_', "-")),
        };
        ServerError::Setting { flag, source }
    }
}
