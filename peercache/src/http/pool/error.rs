//! What a peer list may hold, and why a pool refuses one: [`PoolError`] and
//! the check of each peer's base URL.

use crate::ring::RingError;

/// Why a pool could not be made or its peers set.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum PoolError {
    /// A peer URL cannot be used as a base URL.
    #[error(
        "peer URL {url:?} is not usable: {reason}; give a base URL such as http://10.0.0.1:8080"
    )]
    InvalidUrl {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// This node's own URL is not in the peer list.
    #[error("this node's URL {self_url:?} is not in the peer list {peers:?}: list every node, this one included, spelled exactly as its own URL (--self)")]
    SelfMissing {
        /// This node's URL.
        self_url: String,
        /// The list given.
        peers: Vec<String>,
    },
    /// A URL appears twice in the peer list.
    #[error("peer URL {url:?} appears twice in the peer list; list each node once")]
    Duplicate {
        /// The repeated URL.
        url: String,
    },
    /// A peer URL is `https://` but this node cannot speak TLS to it.
    #[error("peer URL {url:?} is https:// but {reason}")]
    NoTls {
        /// The URL given.
        url: String,
        /// What is missing.
        reason: &'static str,
    },
    /// A cleartext peer in a cluster whose nodes speak TLS.
    #[error("peer URL {url:?} is http:// but this node is {self_url:?}: a TLS cluster cannot have cleartext members (keys, values and changes would cross the network unencrypted); give every node an https:// URL")]
    Cleartext {
        /// The cleartext URL.
        url: String,
        /// This node's URL.
        self_url: String,
    },
    /// The ring refused a peer.
    #[error(transparent)]
    Ring(#[from] RingError),
}

/// Whether `url`'s scheme is `scheme`, in any case (as a URI parser reads it).
pub(super) fn scheme_is(url: &str, scheme: &str) -> bool {
    url.split_once("://")
        .is_some_and(|(given, _)| given.eq_ignore_ascii_case(scheme))
}

/// A base URL must be `http://host[:port]` (or `https://` when `https`,
/// TLS being configured), optionally with a path prefix, and no query or
/// fragment: requests are built by appending to it.
pub(super) fn check_url(url: &str, https: bool) -> Result<(), PoolError> {
    let invalid = |reason: &str| PoolError::InvalidUrl {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    let uri: http::Uri = url.parse().map_err(|_| invalid("not a URL"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") if https => {}
        Some("https") => {
            return Err(PoolError::NoTls {
                url: url.to_owned(),
                reason: if cfg!(feature = "tls") {
                    "no TLS is configured: give HttpOptionsBuilder::tls a configuration with a CA to trust (peercache-server: --tls-ca)"
                } else {
                    "peercache was built without TLS: enable its `tls` cargo feature (peercache-server: build with --features tls)"
                },
            })
        }
        Some(_) => return Err(invalid("only http:// and https:// peer URLs are supported")),
        None => return Err(invalid("it has no scheme (http://)")),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(invalid("it has no host"));
    }
    if uri.query().is_some() || url.contains('#') {
        return Err(invalid("it has a query or fragment"));
    }
    if url.ends_with('/') {
        return Err(invalid(
            "it ends with '/' (the base path supplies the slash)",
        ));
    }
    Ok(())
}
