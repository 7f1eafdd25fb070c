//! What the command line asks for, checked and derived without sockets or
//! files: the address to bind, this node's URL, the peer list, the options
//! of the transport, the server and the front API, the groups' defaults,
//! and the warnings to log. `main` binds the listener (with
//! [`bind_addr`]), passes the bound address to [`Plan::from_args`], and
//! wires what it returns.
//!
//! Everything here is a pure function of [`Args`], the bound address and
//! the machine's host name, so it is unit-tested without a network.

use crate::args::Args;
use crate::error::ServerError;
use crate::front::FrontSettings;
use crate::origin::AllowedHosts;
use peercache::http::discovery::Discovery;
use peercache::http::discovery::{DnsDiscovery, FileDiscovery};
use peercache::http::{HttpOptions, ServerLimits};
use peercache::{GroupBuilder, KeyInTraces, Node};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// The address to bind for `--addr`: Go's `:8080` spelling listens on
/// every interface (`0.0.0.0:8080`); anything else is bound as given.
pub fn bind_addr(addr: &str) -> String {
    match addr.strip_prefix(':') {
        Some(port) => format!("0.0.0.0:{port}"),
        None => addr.to_owned(),
    }
}

/// The node the command line describes, checked.
#[derive(Debug, Clone)]
pub struct Plan {
    /// `https` when this node serves TLS (`--tls-cert`), else `http`.
    pub scheme: &'static str,
    /// This node's base URL: `--self`, or derived (see [`SelfFrom`]).
    pub self_url: String,
    /// Where [`Plan::self_url`] comes from.
    pub self_from: SelfFrom,
    /// The peers to start with: `--pool`, or this node alone.
    pub peers: Vec<String>,
    /// Where later peer lists come from (`--peers-dns`, `--peers-file`).
    pub discovery: Option<PeerSource>,
    /// The transport's options, without TLS and peer authentication (which
    /// read files: `main` adds them).
    pub options: HttpOptions,
    /// The server's limits.
    pub limits: ServerLimits,
    /// The front API's settings.
    pub front: FrontSettings,
    /// What every group gets unless `--config` says otherwise.
    pub groups: GroupDefaults,
    /// Things to log as warnings before serving (the node still starts).
    pub warnings: Vec<&'static str>,
}

/// Where this node's URL comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelfFrom {
    /// `--self`.
    Flag,
    /// `--addr` (or the bound address, for port 0 or every interface).
    Addr,
    /// The one `--pool` URL naming this machine on the listening port.
    Pool,
}

/// A source of peer lists polled while the node runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerSource {
    /// `--peers-dns NAME:PORT`.
    Dns(DnsDiscovery),
    /// `--peers-file PATH`.
    File(PathBuf),
}

impl PeerSource {
    /// The source, ready for [`peercache::http::discovery::watch`].
    pub fn into_discovery(self) -> Box<dyn Discovery> {
        match self {
            PeerSource::Dns(dns) => Box::new(dns),
            PeerSource::File(path) => Box::new(FileDiscovery::new(path)),
        }
    }
}

/// The settings every group gets from the flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupDefaults {
    /// `--cache-bytes`.
    pub cache_bytes: u64,
    /// `--ttl`.
    pub ttl: Option<Duration>,
    /// `--load-timeout`.
    pub load_timeout: Option<Duration>,
    /// `--max-concurrent-loads` and `--load-admission-wait`.
    pub admission: Option<(usize, Duration)>,
    /// `--origin-breaker` and `--origin-breaker-cool-down`.
    pub breaker: Option<(u32, Duration)>,
    /// `--load-admission-wait` and `--origin-breaker-cool-down` as given
    /// (or their defaults), for a `--config` group that sets its own cap or
    /// breaker when the flag's is not set.
    pub waits: (Duration, Duration),
    /// `--stale-while-revalidate`.
    pub stale_while_revalidate: Option<Duration>,
    /// `--stale-if-error`.
    pub stale_if_error: Option<Duration>,
    /// `--cache-not-found`.
    pub cache_not_found: Option<Duration>,
    /// `--trace-keys`.
    pub key_in_traces: KeyInTraces,
    /// `--change-timeout`.
    pub change_timeout: Duration,
    /// `--hot-max-age`.
    pub hot_max_age: Duration,
}

impl GroupDefaults {
    /// A builder for group `name` on `node` with these settings.
    pub fn builder<'n>(&self, node: &'n Node, name: &str) -> GroupBuilder<'n> {
        let mut builder = node
            .group_builder(name)
            .cache_bytes(self.cache_bytes)
            .key_in_traces(self.key_in_traces)
            .change_timeout(self.change_timeout)
            .hot_max_age(self.hot_max_age);
        if let Some(ttl) = self.ttl {
            builder = builder.ttl(ttl);
        }
        if let Some(timeout) = self.load_timeout {
            builder = builder.load_timeout(timeout);
        }
        if let Some((limit, wait)) = self.admission {
            builder = builder.max_concurrent_loads(limit, wait);
        }
        if let Some((failures, cool_down)) = self.breaker {
            builder = builder.origin_breaker(failures, cool_down);
        }
        if let Some(window) = self.stale_while_revalidate {
            builder = builder.stale_while_revalidate(window);
        }
        if let Some(window) = self.stale_if_error {
            builder = builder.stale_if_error(window);
        }
        if let Some(ttl) = self.cache_not_found {
            builder = builder.cache_not_found(ttl);
        }
        builder
    }
}

const TLS_CLIENT_CERT_MISSING: &str = "--tls-require-client-cert without --tls-client-cert: peers that require client certificates, as this node does, will refuse this node";
const OPEN_FRONT: &str = "--front-open: the front API serves every client that can reach it beyond loopback without a token; give --front-token-file to know who reads, or firewall the port";
const OPEN_FRONT_WRITES: &str = "--front-open with --front-writes: every client that can reach the front API beyond loopback can change and purge the cache on every node; give --front-token-file with write tokens instead, or firewall the port";
const OPEN_PEER_ENDPOINT: &str = "serving the peer endpoint beyond loopback without authentication: anyone who can reach this port can read every key and change or remove them; give every node --peer-secret-file, or firewall the port to the cluster";

impl Plan {
    /// Checks `args` and derives the node from them, `local` being the
    /// address the listener was bound to, `front_local` the front
    /// listener's (`--front-addr`), and `hostname` this machine's name
    /// (if known: a `--pool` URL naming it can be this node's).
    pub fn from_args(
        args: &Args,
        local: SocketAddr,
        front_local: Option<SocketAddr>,
        hostname: Option<&str>,
    ) -> Result<Plan, ServerError> {
        #[cfg(not(feature = "tls"))]
        if let Some(flag) = args.tls_flag() {
            return Err(ServerError::NoTlsFeature { flag });
        }
        let serves_tls = args.tls_cert.is_some();
        let scheme = if serves_tls { "https" } else { "http" };
        if serves_tls && args.peers_dns.is_some() {
            return Err(ServerError::DnsWithTls);
        }
        let (self_url, self_from) = self_url(args, local, hostname, scheme)?;
        if serves_tls && !self_url.starts_with("https://") {
            return Err(ServerError::SelfScheme {
                self_url,
                reason: "must be https:// when this node serves HTTPS (--tls-cert): the other nodes would speak cleartext to a TLS port",
            });
        }
        if !serves_tls && self_url.starts_with("https://") {
            return Err(ServerError::SelfScheme {
                self_url,
                reason: "is https:// but this node serves cleartext: give --tls-cert and --tls-key",
            });
        }
        // A front PUT becomes a peer PUT: its value, key and framing must
        // fit the peers' body limit.
        if args
            .max_front_body_bytes
            .saturating_add(args.max_key_bytes)
            .saturating_add(1024)
            > args.max_body_bytes
        {
            return Err(ServerError::FrontBody {
                front: args.max_front_body_bytes,
                peer: args.max_body_bytes,
            });
        }
        // Tokens on the front, and beside it on the same port a peer
        // endpoint anyone may call: the tokens would protect nothing.
        if args.front.front_token_file.is_some()
            && args.front.front_addr.is_none()
            && args.peer_secret_file.is_none()
            && !args.tls_require_client_cert
        {
            return Err(ServerError::TokensBesideOpenPeers);
        }
        if args.peer_auth_window < Duration::from_secs(1) {
            return Err(ServerError::AuthWindow(args.peer_auth_window));
        }
        let discovery = match (&args.peers_dns, &args.peers_file) {
            (Some(spec), _) => Some(PeerSource::Dns(DnsDiscovery::parse(spec)?)),
            (None, Some(path)) => Some(PeerSource::File(path.clone())),
            (None, None) => None,
        };
        let peers = if args.pool.is_empty() {
            vec![self_url.clone()]
        } else {
            args.pool.clone()
        };
        let peers_beyond_loopback = !local.ip().is_loopback();
        let front_beyond_loopback = !front_local.unwrap_or(local).ip().is_loopback();
        let mut warnings = Vec::new();
        if args.tls_require_client_cert && args.tls_client_cert.is_none() {
            warnings.push(TLS_CLIENT_CERT_MISSING);
        }
        if peers_beyond_loopback && args.peer_secret_file.is_none() && !args.tls_require_client_cert
        {
            warnings.push(OPEN_PEER_ENDPOINT);
        }
        if front_beyond_loopback && args.front.front_open {
            warnings.push(match args.front.front_writes {
                true => OPEN_FRONT_WRITES,
                false => OPEN_FRONT,
            });
        }
        let front = FrontSettings {
            max_body_bytes: usize::try_from(args.max_front_body_bytes).unwrap_or(usize::MAX),
            allowed_hosts: AllowedHosts::new(&self_url, &args.allowed_hosts, front_beyond_loopback),
            peer_hosts: AllowedHosts::new(&self_url, &args.allowed_hosts, peers_beyond_loopback),
            access: args.front.access(),
        };
        Ok(Plan {
            scheme,
            self_url,
            self_from,
            peers,
            discovery,
            options: args.http_options()?,
            limits: args.server_limits()?,
            front,
            groups: GroupDefaults {
                cache_bytes: args.cache_bytes,
                ttl: args.ttl,
                load_timeout: args.load_timeout,
                admission: args
                    .max_concurrent_loads
                    .map(|limit| (limit, args.load_admission_wait)),
                waits: (args.load_admission_wait, args.origin_breaker_cool_down),
                breaker: args
                    .origin_breaker
                    .map(|failures| (failures, args.origin_breaker_cool_down)),
                stale_while_revalidate: args.stale_while_revalidate,
                stale_if_error: args.stale_if_error,
                cache_not_found: args.cache_not_found,
                key_in_traces: args.trace_keys.into(),
                change_timeout: args.change_timeout,
                hot_max_age: args.hot_max_age,
            },
            warnings,
        })
    }

    /// Whether this node serves HTTPS.
    pub fn serves_tls(&self) -> bool {
        self.scheme == "https"
    }
}

/// This node's URL: `--self`; else `--addr` (or the bound address) when
/// the pool lists it, or when there is no pool; else the one `--pool` URL
/// that names this machine on the listening port.
fn self_url(
    args: &Args,
    local: SocketAddr,
    hostname: Option<&str>,
    scheme: &'static str,
) -> Result<(String, SelfFrom), ServerError> {
    if let Some(url) = &args.self_url {
        return Ok((url.clone(), SelfFrom::Flag));
    }
    let every_interface = local.ip().is_unspecified();
    // With port 0 (or every interface) the address given is not the one to
    // advertise.
    let from_addr = if every_interface || args.addr.ends_with(":0") {
        format!("{scheme}://{local}")
    } else {
        format!("{scheme}://{}", args.addr)
    };
    if !every_interface && (args.pool.is_empty() || args.pool.contains(&from_addr)) {
        return Ok((from_addr, SelfFrom::Addr));
    }
    let mut mine = args
        .pool
        .iter()
        .filter(|url| names_this_node(url, scheme, local, hostname));
    if let (Some(url), None) = (mine.next(), mine.next()) {
        return Ok((url.clone(), SelfFrom::Pool));
    }
    // Peers cannot reach "http://0.0.0.0:8080": this node's URL must be
    // given when it has peers.
    if every_interface && (!args.pool.is_empty() || args.discovers_peers()) {
        return Err(ServerError::NeedSelf {
            addr: args.addr.clone(),
            port: local.port(),
            scheme,
        });
    }
    // A pool without this node: the pool's own check names it.
    Ok((from_addr, SelfFrom::Addr))
}

/// Whether base URL `url` reaches this node, listening on `local`: the
/// same scheme and port, and a host that is the bound address, `localhost`
/// for a loopback address, or, when listening on every interface, a
/// loopback address or this machine's `hostname`.
fn names_this_node(url: &str, scheme: &str, local: SocketAddr, hostname: Option<&str>) -> bool {
    let Ok(uri) = url.parse::<http::Uri>() else {
        return false;
    };
    let Some(given) = uri.scheme_str() else {
        return false;
    };
    let default_port = match scheme {
        "https" => 443,
        _ => 80,
    };
    if !given.eq_ignore_ascii_case(scheme) || uri.port_u16().unwrap_or(default_port) != local.port()
    {
        return false;
    }
    let Some(host) = uri.host() else {
        return false;
    };
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .trim_end_matches('.')
        .to_ascii_lowercase();
    let bound = local.ip();
    match host.parse::<IpAddr>() {
        Ok(ip) if bound.is_unspecified() => {
            // 0.0.0.0 listens on IPv4 only; [::] on both, as a rule.
            ip.is_loopback() && (bound.is_ipv6() || ip.is_ipv4())
        }
        Ok(ip) => ip == bound,
        Err(_) if host == "localhost" => bound.is_loopback() || bound.is_unspecified(),
        Err(_) => {
            bound.is_unspecified()
                && hostname.is_some_and(|name| {
                    !name.is_empty() && name.trim_end_matches('.').eq_ignore_ascii_case(&host)
                })
        }
    }
}

#[cfg(test)]
mod tests;
