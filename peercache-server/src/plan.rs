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
    /// `--trace-keys`.
    pub key_in_traces: KeyInTraces,
}

impl GroupDefaults {
    /// A builder for group `name` on `node` with these settings.
    pub fn builder<'n>(&self, node: &'n Node, name: &str) -> GroupBuilder<'n> {
        let mut builder = node
            .group_builder(name)
            .cache_bytes(self.cache_bytes)
            .key_in_traces(self.key_in_traces);
        if let Some(ttl) = self.ttl {
            builder = builder.ttl(ttl);
        }
        if let Some(timeout) = self.load_timeout {
            builder = builder.load_timeout(timeout);
        }
        builder
    }
}

const TLS_CLIENT_CERT_MISSING: &str = "--tls-require-client-cert without --tls-client-cert: peers that require client certificates, as this node does, will refuse this node";
const FRONT_WITHOUT_SECRET: &str = "the peer endpoint requires the secret, but the front API on the same port does not: its PUT, DELETE and purge reach every node; let only trusted clients reach this port";
const OPEN_PEER_ENDPOINT: &str = "serving the peer endpoint beyond loopback without authentication: anyone who can reach this port can read every key and change or remove them; give every node --peer-secret-file, or firewall the port to the cluster";

impl Plan {
    /// Checks `args` and derives the node from them, `local` being the
    /// address the listener was bound to and `hostname` this machine's name
    /// (if known: a `--pool` URL naming it can be this node's).
    pub fn from_args(
        args: &Args,
        local: SocketAddr,
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
        let beyond_loopback = !local.ip().is_loopback();
        let mut warnings = Vec::new();
        if args.tls_require_client_cert && args.tls_client_cert.is_none() {
            warnings.push(TLS_CLIENT_CERT_MISSING);
        }
        if beyond_loopback {
            if args.peer_secret_file.is_some() {
                warnings.push(FRONT_WITHOUT_SECRET);
            } else if !args.tls_require_client_cert {
                warnings.push(OPEN_PEER_ENDPOINT);
            }
        }
        let front = FrontSettings {
            max_body_bytes: usize::try_from(args.max_front_body_bytes).unwrap_or(usize::MAX),
            allowed_hosts: AllowedHosts::new(&self_url, &args.allowed_hosts, beyond_loopback),
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
                key_in_traces: args.trace_keys.into(),
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
mod tests {
    use super::*;
    use clap::Parser;

    fn args(argv: &[&str]) -> Args {
        Args::parse_from(std::iter::once("peercache-server").chain(argv.iter().copied()))
    }

    fn at(addr: &str) -> SocketAddr {
        addr.parse().unwrap()
    }

    fn plan(argv: &[&str], local: &str) -> Result<Plan, ServerError> {
        Plan::from_args(&args(argv), at(local), Some("cachebox"))
    }

    #[test]
    fn go_port_spelling_binds_every_interface() {
        assert_eq!(bind_addr(":8080"), "0.0.0.0:8080");
        assert_eq!(bind_addr(":0"), "0.0.0.0:0");
        assert_eq!(bind_addr("127.0.0.1:8080"), "127.0.0.1:8080");
        assert_eq!(bind_addr("[::1]:8080"), "[::1]:8080");
    }

    #[test]
    fn self_url_defaults_to_the_address() {
        let alone = plan(&[], "127.0.0.1:8080").unwrap();
        assert_eq!(alone.self_url, "http://127.0.0.1:8080");
        assert_eq!(alone.self_from, SelfFrom::Addr);
        assert_eq!(alone.peers, ["http://127.0.0.1:8080"]);
        assert!(alone.warnings.is_empty());
        // Port 0: the port picked.
        let picked = plan(&["--addr", "127.0.0.1:0"], "127.0.0.1:41234").unwrap();
        assert_eq!(picked.self_url, "http://127.0.0.1:41234");
        // As spelled in --addr when the pool lists it so.
        let named = plan(
            &[
                "--addr",
                "localhost:8080",
                "--pool",
                "http://localhost:8080",
            ],
            "127.0.0.1:8080",
        )
        .unwrap();
        assert_eq!(named.self_url, "http://localhost:8080");
        assert_eq!(named.self_from, SelfFrom::Addr);
        // Every interface and no peers: the bound address.
        let open = plan(&["--addr", ":8080"], "0.0.0.0:8080").unwrap();
        assert_eq!(open.self_url, "http://0.0.0.0:8080");
        assert_eq!(open.warnings, [OPEN_PEER_ENDPOINT]);
        // --self wins.
        let given = plan(
            &[
                "--addr",
                ":8080",
                "--self",
                "http://10.0.0.1:8080",
                "--pool",
                "http://10.0.0.1:8080",
            ],
            "0.0.0.0:8080",
        )
        .unwrap();
        assert_eq!(given.self_url, "http://10.0.0.1:8080");
        assert_eq!(given.self_from, SelfFrom::Flag);
    }

    #[test]
    fn self_url_is_derived_from_the_one_pool_url_naming_this_machine() {
        // The seed's command line: -addr=:8080 -pool=http://127.0.0.1:8080.
        let seed = plan(
            &["--addr", ":8080", "--pool", "http://127.0.0.1:8080"],
            "0.0.0.0:8080",
        )
        .unwrap();
        assert_eq!(seed.self_url, "http://127.0.0.1:8080");
        assert_eq!(seed.self_from, SelfFrom::Pool);
        assert_eq!(seed.peers, ["http://127.0.0.1:8080"]);
        for (pool, mine) in [
            // Other nodes on other ports or hosts do not count.
            (
                "http://127.0.0.1:8081,http://localhost:8080,http://10.0.0.2:8080",
                "http://localhost:8080",
            ),
            (
                "http://cachebox:8080,http://otherbox:8080",
                "http://cachebox:8080",
            ),
            (
                "http://CacheBox.:8080,http://otherbox:8080",
                "http://CacheBox.:8080",
            ),
            (
                "http://127.0.0.2:8080,http://10.0.0.2:8080",
                "http://127.0.0.2:8080",
            ),
        ] {
            let derived = plan(&["--addr", ":8080", "--pool", pool], "0.0.0.0:8080").unwrap();
            assert_eq!(derived.self_url, mine, "{pool}");
        }
        // [::] takes IPv6 loopback too; 0.0.0.0 does not listen there.
        let v6 = plan(
            &[
                "--addr",
                "[::]:8080",
                "--pool",
                "http://[::1]:8080,http://10.0.0.2:8080",
            ],
            "[::]:8080",
        )
        .unwrap();
        assert_eq!(v6.self_url, "http://[::1]:8080");
        assert!(plan(
            &[
                "--addr",
                ":8080",
                "--pool",
                "http://[::1]:8080,http://10.0.0.2:8080"
            ],
            "0.0.0.0:8080",
        )
        .is_err());
        // A loopback address: `localhost` on its port.
        let local = plan(
            &[
                "--addr",
                "127.0.0.1:8080",
                "--pool",
                "http://localhost:8080,http://localhost:8081",
            ],
            "127.0.0.1:8080",
        )
        .unwrap();
        assert_eq!(local.self_url, "http://localhost:8080");
        assert_eq!(local.self_from, SelfFrom::Pool);
        // Port 0 matches the port the listener got.
        let picked = plan(
            &[
                "--addr",
                ":0",
                "--pool",
                "http://127.0.0.1:41234,http://127.0.0.1:41235",
            ],
            "0.0.0.0:41234",
        )
        .unwrap();
        assert_eq!(picked.self_url, "http://127.0.0.1:41234");
        // A TLS node takes only https:// URLs.
        #[cfg(feature = "tls")]
        {
            let tls = plan(
                &[
                    "--addr",
                    ":8443",
                    "--pool",
                    "http://127.0.0.1:8443,https://localhost:8443",
                    "--tls-cert",
                    "c.pem",
                    "--tls-key",
                    "k.pem",
                ],
                "0.0.0.0:8443",
            )
            .unwrap();
            assert_eq!(tls.self_url, "https://localhost:8443");
            let default_port = plan(
                &[
                    "--addr",
                    ":443",
                    "--pool",
                    "https://localhost",
                    "--tls-cert",
                    "c.pem",
                    "--tls-key",
                    "k.pem",
                ],
                "0.0.0.0:443",
            )
            .unwrap();
            assert_eq!(default_port.self_url, "https://localhost");
        }
    }

    #[test]
    fn self_url_is_not_guessed_when_the_pool_is_ambiguous_or_elsewhere() {
        for pool in [
            // Two spellings of this machine.
            "http://127.0.0.1:8080,http://localhost:8080",
            // No URL on this port.
            "http://127.0.0.1:8081,http://127.0.0.1:8082",
            // Not this machine.
            "http://10.0.0.1:8080,http://10.0.0.2:8080",
            "http://otherbox:8080",
            // Not the scheme this node serves.
            "https://127.0.0.1:8080",
        ] {
            let error = plan(&["--addr", ":8080", "--pool", pool], "0.0.0.0:8080")
                .unwrap_err()
                .to_string();
            assert!(
                error.starts_with("--addr :8080 listens on every interface")
                    && error.contains("give --self http://<this host's address>:8080"),
                "{pool}: {error}"
            );
        }
        // Without the machine's name, a URL naming it is not recognised.
        let unnamed = Plan::from_args(
            &args(&["--addr", ":8080", "--pool", "http://cachebox:8080"]),
            at("0.0.0.0:8080"),
            None,
        );
        assert!(matches!(unnamed, Err(ServerError::NeedSelf { .. })));
        // Discovery has no list to look in.
        let dns = plan(
            &["--addr", ":8080", "--peers-dns", "peercache.svc:8080"],
            "0.0.0.0:8080",
        );
        assert!(matches!(dns, Err(ServerError::NeedSelf { port: 8080, .. })));
        // A specific address is not replaced by another host's URL: the
        // pool's own check says this node is missing.
        let elsewhere = plan(
            &["--addr", "127.0.0.1:0", "--pool", "http://127.0.0.1:1"],
            "127.0.0.1:41234",
        )
        .unwrap();
        assert_eq!(elsewhere.self_url, "http://127.0.0.1:41234");
        let other_ip = plan(
            &[
                "--addr",
                "10.0.0.1:8080",
                "--pool",
                "http://10.0.0.2:8080,http://localhost:8080",
            ],
            "10.0.0.1:8080",
        )
        .unwrap();
        assert_eq!(other_ip.self_url, "http://10.0.0.1:8080");
    }

    #[test]
    fn pool_entries_are_trimmed() {
        let spaced = plan(
            &[
                "--pool",
                "http://127.0.0.1:8080, http://127.0.0.1:8081 ,\thttp://127.0.0.1:8082",
            ],
            "127.0.0.1:8080",
        )
        .unwrap();
        assert_eq!(
            spaced.peers,
            [
                "http://127.0.0.1:8080",
                "http://127.0.0.1:8081",
                "http://127.0.0.1:8082"
            ]
        );
        assert_eq!(spaced.self_url, "http://127.0.0.1:8080");
    }

    #[test]
    fn a_refused_setting_names_its_flag() {
        for (argv, flag, reason) in [
            (
                ["--max-connections", "0"],
                "--max-connections",
                "setting max_connections: must be at least 1",
            ),
            (
                ["--replicas", "0"],
                "--replicas",
                "setting replicas: must be at least 1",
            ),
            (
                ["--max-remove-keys", "10"],
                "--max-remove-keys",
                "setting max_remove_keys: 10 is too small",
            ),
            (
                ["--max-uri-bytes", "100"],
                "--max-uri-bytes",
                "setting max_uri_bytes: 100 is too small",
            ),
        ] {
            let error = plan(&argv, "127.0.0.1:8080").unwrap_err().to_string();
            assert!(
                error.starts_with(&format!("bad {flag}: {reason}")),
                "{argv:?}: {error}"
            );
        }
        // The one setting whose flag has another name.
        let timeout =
            ServerError::setting(peercache::InvalidSetting::new("request_timeout", "why"));
        assert_eq!(
            timeout.to_string(),
            "bad --peer-timeout: setting request_timeout: why"
        );
    }

    #[test]
    fn scheme_and_conflict_checks_keep_their_messages() {
        let https_self = plan(&["--self", "https://127.0.0.1:8080"], "127.0.0.1:8080")
            .unwrap_err()
            .to_string();
        assert!(
            https_self.contains("is https:// but this node serves cleartext"),
            "{https_self}"
        );
        #[cfg(feature = "tls")]
        {
            let tls = ["--tls-cert", "c.pem", "--tls-key", "k.pem"];
            let http_self = plan(
                &[&["--self", "http://127.0.0.1:8080"][..], &tls[..]].concat(),
                "127.0.0.1:8080",
            )
            .unwrap_err()
            .to_string();
            assert!(http_self.contains("must be https://"), "{http_self}");
            let derived = plan(&tls, "127.0.0.1:8080").unwrap();
            assert_eq!(derived.self_url, "https://127.0.0.1:8080");
            assert!(derived.serves_tls());
            let dns = plan(
                &[&["--peers-dns", "peercache.svc:8080"][..], &tls[..]].concat(),
                "127.0.0.1:8080",
            );
            assert!(matches!(dns, Err(ServerError::DnsWithTls)));
        }
        let front = plan(
            &["--max-body-bytes", "1MiB", "--max-front-body-bytes", "1MiB"],
            "127.0.0.1:8080",
        )
        .unwrap_err()
        .to_string();
        assert!(
            front.starts_with("--max-front-body-bytes 1048576 leaves no room for the key within --max-body-bytes 1048576"),
            "{front}"
        );
        let fits = plan(
            &[
                "--max-body-bytes",
                "1MiB",
                "--max-front-body-bytes",
                "512KiB",
            ],
            "127.0.0.1:8080",
        )
        .unwrap();
        assert_eq!(fits.front.max_body_bytes, 512 << 10);
        let window = plan(&["--peer-auth-window", "500ms"], "127.0.0.1:8080")
            .unwrap_err()
            .to_string();
        assert!(window.contains("is too short"), "{window}");
        let dns = plan(&["--peers-dns", "no-port-here"], "127.0.0.1:8080")
            .unwrap_err()
            .to_string();
        assert!(
            dns.contains("--peers-dns") && dns.contains("NAME:PORT"),
            "{dns}"
        );
    }

    #[cfg(not(feature = "tls"))]
    #[test]
    fn tls_flags_say_they_need_the_feature() {
        let error = plan(&["--tls-ca", "ca.pem"], "127.0.0.1:8080")
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("--tls-ca needs TLS") && error.contains("--features tls"),
            "{error}"
        );
    }

    #[test]
    fn peer_sources_and_warnings() {
        let dns = plan(&["--peers-dns", "peercache.svc:8080"], "127.0.0.1:8080").unwrap();
        assert_eq!(
            dns.discovery,
            Some(PeerSource::Dns(DnsDiscovery::new("peercache.svc", 8080)))
        );
        let file = plan(&["--peers-file", "peers.txt"], "127.0.0.1:8080").unwrap();
        assert_eq!(file.discovery, Some(PeerSource::File("peers.txt".into())));
        let open = plan(&["--addr", "10.0.0.1:8080"], "10.0.0.1:8080").unwrap();
        assert_eq!(open.warnings, [OPEN_PEER_ENDPOINT]);
        let signed = plan(
            &["--addr", "10.0.0.1:8080", "--peer-secret-file", "secret"],
            "10.0.0.1:8080",
        )
        .unwrap();
        assert_eq!(signed.warnings, [FRONT_WITHOUT_SECRET]);
        let local = plan(&["--peer-secret-file", "secret"], "127.0.0.1:8080").unwrap();
        assert!(local.warnings.is_empty());
    }

    #[test]
    fn groups_get_the_flags_settings() {
        let defaults = plan(
            &[
                "--cache-bytes",
                "1MiB",
                "--ttl",
                "30s",
                "--trace-keys",
                "hashed",
            ],
            "127.0.0.1:8080",
        )
        .unwrap()
        .groups;
        assert_eq!(
            defaults,
            GroupDefaults {
                cache_bytes: 1 << 20,
                ttl: Some(Duration::from_secs(30)),
                load_timeout: None,
                key_in_traces: KeyInTraces::Hashed,
            }
        );
    }
}
