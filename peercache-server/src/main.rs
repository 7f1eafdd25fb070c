//! `peercache-server`: one node of a peercache cluster, ready to run.
//!
//! It serves the built-in `colors` group (the example of groupcache's own
//! documentation) to clients on `/color?name=...`, any group on
//! `/<group>/<key>`, its counters on `/stats`, and the groupcache peer
//! protocol on `/_groupcache/` to the other nodes, which may be Go
//! groupcache nodes. See `--help` and the README.
//!
//! - [`args`]: the command line.
//! - [`colors`]: the `colors` table and loader.
//! - [`front`]: the HTTP routes.

mod args;
mod colors;
mod front;
mod origin;
mod sources;

use args::{Args, LogFormat};
use clap::Parser;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use peercache::http::discovery::{self, Discovery};
use peercache::http::{DnsDiscovery, FileDiscovery, HttpPool, PeerAuth, PoolError, Server};
use peercache::Node;
use std::process::ExitCode;
use std::sync::Arc;
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
enum ServerError {
    #[error("cannot listen on --addr {addr}: {source}")]
    Listen {
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
    Discovery(#[from] peercache::http::DiscoveryError),
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
    #[error("bad limit flag (--max-concurrent-requests, --max-concurrent-streams, --max-connections, --header-read-timeout, --body-read-timeout, --write-timeout, --max-uri-bytes): {0}")]
    Limits(std::io::Error),
    #[error("--max-front-body-bytes {front} leaves no room for the key within --max-body-bytes {peer}: a value set on the front API is sent to the peers with its key; lower the first or raise the second (by --max-key-bytes + 1KiB)")]
    FrontBody { front: u64, peer: u64 },
    #[error("cannot set up the metrics recorder: {0}")]
    Metrics(String),
    #[error("{0}")]
    Config(#[from] sources::ConfigError),
    #[error("serving failed: {0}")]
    Serve(std::io::Error),
}

fn main() -> ExitCode {
    let args = Args::parse();
    init_logging(args.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("peercache-server: cannot start the tokio runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "peercache-server stopped");
            eprintln!("peercache-server: {error}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // A line when a span closes: with RUST_LOG=peercache=debug, one line
    // per miss, load, peer fetch and change, with its outcome and duration.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Plain => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn run(args: Args) -> Result<(), ServerError> {
    #[cfg(not(feature = "tls"))]
    if let Some(flag) = args.tls_flag() {
        return Err(ServerError::NoTlsFeature { flag });
    }
    #[cfg(feature = "tls")]
    let tls = args.tls_config()?.map(Arc::new);
    let serves_tls = args.tls_cert.is_some();
    let scheme = if serves_tls { "https" } else { "http" };
    if serves_tls && args.peers_dns.is_some() {
        return Err(ServerError::DnsWithTls);
    }
    // ":8080" (Go's spelling) listens on every interface.
    let bind_addr = match args.addr.strip_prefix(':') {
        Some(port) => format!("0.0.0.0:{port}"),
        None => args.addr.clone(),
    };
    let listener = TcpListener::bind(&bind_addr)
        .await
        .map_err(|source| ServerError::Listen {
            addr: args.addr.clone(),
            source,
        })?;
    let local = listener.local_addr().map_err(ServerError::Serve)?;
    let self_url = match &args.self_url {
        Some(url) => url.clone(),
        // Peers cannot reach "http://0.0.0.0:8080": this node's URL must be
        // given when it has peers.
        None if local.ip().is_unspecified()
            && (!args.pool.is_empty() || args.discovers_peers()) =>
        {
            return Err(ServerError::NeedSelf {
                addr: args.addr.clone(),
                port: local.port(),
                scheme,
            })
        }
        // With port 0 (or every interface) the address given is not the
        // one to advertise.
        None if local.ip().is_unspecified() || args.addr.ends_with(":0") => {
            format!("{scheme}://{local}")
        }
        None => format!("{scheme}://{}", args.addr),
    };
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
    // A front PUT becomes a peer PUT: its value, key and framing must fit
    // the peers' body limit.
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
    let mut options = args.http_options();
    #[cfg(feature = "tls")]
    {
        options.tls = tls.clone();
    }
    if args.tls_require_client_cert && args.tls_client_cert.is_none() {
        tracing::warn!(
            "--tls-require-client-cert without --tls-client-cert: peers that require client certificates, as this node does, will refuse this node"
        );
    }
    if args.peer_auth_window < std::time::Duration::from_secs(1) {
        return Err(ServerError::AuthWindow(args.peer_auth_window));
    }
    if let Some(path) = &args.peer_secret_file {
        warn_if_readable_by_others(path);
        let auth = PeerAuth::from_file(path)?.with_window(args.peer_auth_window);
        options.auth = Some(Arc::new(auth));
        if !local.ip().is_loopback() {
            tracing::warn!(
                addr = %local,
                "the peer endpoint requires the secret, but the front API on the same port does not: its PUT, DELETE and purge reach every node; let only trusted clients reach this port"
            );
        }
    } else if !local.ip().is_loopback() && !args.tls_require_client_cert {
        tracing::warn!(
            addr = %local,
            "serving the peer endpoint beyond loopback without authentication: anyone who can reach this port can read every key and change or remove them; give every node --peer-secret-file, or firewall the port to the cluster"
        );
    }
    let server = Server::new(args.server_limits()).map_err(ServerError::Limits)?;
    #[cfg(feature = "tls")]
    let server = match &tls {
        Some(tls) if serves_tls => server.tls(tls).map_err(ServerError::Serve)?,
        _ => server,
    };
    let pool = HttpPool::new(&self_url, options)?;
    let peers: Vec<String> = if args.pool.is_empty() {
        vec![self_url.clone()]
    } else {
        args.pool.iter().map(|p| p.trim().to_owned()).collect()
    };
    pool.set_peers(&peers)?;
    let source: Option<Box<dyn Discovery>> = match (&args.peers_dns, &args.peers_file) {
        (Some(spec), _) => Some(Box::new(DnsDiscovery::parse(spec)?)),
        (None, Some(path)) => Some(Box::new(FileDiscovery::new(path))),
        (None, None) => None,
    };
    if let Some(source) = source {
        // A first poll before serving, so the node starts with its peers when
        // the source answers; a failure is logged and polled again.
        if let Err(error) = discovery::refresh(&pool, source.as_ref()).await {
            tracing::warn!(%error, "first peer discovery failed; starting alone and retrying");
        }
        discovery::watch(&pool, source, args.discovery_interval);
    }

    let node = Node::with_picker(pool.clone());
    let group = |name: &str| {
        let mut builder = node.group_builder(name).cache_bytes(args.cache_bytes);
        if let Some(ttl) = args.ttl {
            builder = builder.ttl(ttl);
        }
        if let Some(timeout) = args.load_timeout {
            builder = builder.load_timeout(timeout);
        }
        builder = builder.key_in_traces(args.trace_keys.into());
        builder
    };
    group("colors").build(colors::loader())?;
    if args.echo_group {
        group("echo").build(peercache::loader_fn(|key: String| async move { Ok(key) }))?;
    }
    if let Some(path) = &args.config {
        for declared in sources::Config::load(path)?.groups {
            let wrong = |message: String| sources::ConfigError::Group {
                path: path.display().to_string(),
                group: declared.name.clone(),
                message,
            };
            let mut builder = group(&declared.name);
            if let Some(bytes) = &declared.cache_bytes {
                builder = builder.cache_bytes(
                    args::parse_bytes(bytes).map_err(|e| wrong(format!("cache_bytes: {e}")))?,
                );
            }
            if let Some(ttl) = &declared.ttl {
                builder =
                    builder.ttl(args::parse_duration(ttl).map_err(|e| wrong(format!("ttl: {e}")))?);
            }
            declared.check().map_err(wrong)?;
            match declared.source {
                sources::SourceKind::Http => {
                    let timeout = declared
                        .timeout
                        .as_deref()
                        .map(args::parse_duration)
                        .transpose()
                        .map_err(|e| wrong(format!("timeout: {e}")))?;
                    let url = declared.url.as_deref().unwrap_or_default();
                    let ca = declared.ca.as_deref();
                    builder.build(sources::HttpSource::new(url, timeout, ca).map_err(wrong)?)?;
                }
                sources::SourceKind::Files => {
                    let dir = declared.dir.as_deref().unwrap_or(std::path::Path::new(""));
                    let files = sources::FilesSource::new(dir, &declared).map_err(wrong)?;
                    // A larger value could not be fetched by the peers: they
                    // would count its owner as failing.
                    if files.max_file_bytes() > args.max_body_bytes {
                        return Err(wrong(format!(
                            "max_file_bytes ({} bytes) is over --max-body-bytes ({} bytes), the largest value peers take from each other: lower max_file_bytes or raise --max-body-bytes",
                            files.max_file_bytes(),
                            args.max_body_bytes
                        ))
                        .into());
                    }
                    builder.build(files)?;
                }
                #[cfg(feature = "sqlite")]
                sources::SourceKind::Sqlite => {
                    let database = declared
                        .database
                        .as_deref()
                        .unwrap_or(std::path::Path::new(""));
                    let query = declared.query.as_deref().unwrap_or_default();
                    builder.build(sources::SqliteSource::new(database, query).map_err(wrong)?)?;
                }
                #[cfg(not(feature = "sqlite"))]
                sources::SourceKind::Sqlite => {
                    return Err(wrong(
                        "this peercache-server was built without the `sqlite` feature: rebuild with default features".to_owned(),
                    )
                    .into());
                }
            }
            tracing::info!(group = %declared.name, source = ?declared.source, "group from --config");
        }
    }

    tracing::info!(
        self_url = %self_url,
        addr = %local,
        peers = ?pool.peers(),
        cache_bytes = args.cache_bytes,
        peer_auth = args.peer_secret_file.is_some(),
        tls = serves_tls,
        client_certs_required = args.tls_require_client_cert,
        "peercache-server listening"
    );
    let metrics = install_metrics()?;
    let settings = front::FrontSettings {
        max_body_bytes: usize::try_from(args.max_front_body_bytes).unwrap_or(usize::MAX),
        allowed_hosts: origin::AllowedHosts::new(
            &self_url,
            &args.allowed_hosts,
            !local.ip().is_loopback(),
        ),
    };
    let app = front::router(node, pool, server.counters(), metrics, settings);
    server
        .serve(listener, app, shutdown_signal())
        .await
        .map_err(ServerError::Serve)?;
    tracing::info!("peercache-server stopped");
    Ok(())
}

/// How often the metrics recorder folds histogram samples into buckets.
const METRICS_UPKEEP: std::time::Duration = std::time::Duration::from_secs(5);

/// Installs the Prometheus recorder of `GET /metrics`: load and peer-fetch
/// latencies as histograms, from 0.5 ms to 10 s.
fn install_metrics() -> Result<PrometheusHandle, ServerError> {
    const BUCKETS: &[f64] = &[
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ];
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_duration_seconds".to_owned()), BUCKETS)
        .and_then(PrometheusBuilder::install_recorder)
        .map_err(|error| ServerError::Metrics(error.to_string()))?;
    peercache::metrics::describe();
    // The recorder keeps every histogram sample until its upkeep folds them
    // into the buckets; a render does it too, but a node nobody scrapes
    // would hold each sample forever (about 10 bytes a miss).
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(METRICS_UPKEEP);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            upkeep.run_upkeep();
        }
    });
    Ok(handle)
}

/// A secret others can read is no secret: say so (the node still starts,
/// as the file's owner may have reasons).
fn warn_if_readable_by_others(path: &std::path::Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path) {
            let mode = meta.permissions().mode();
            if mode & 0o077 != 0 {
                tracing::warn!(
                    path = %path.display(),
                    mode = format!("{:o}", mode & 0o777),
                    "the peer secret file is readable by other users: chmod 600 it"
                );
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = interrupt => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(_) => {
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
    tracing::info!("shutting down: finishing requests in flight");
}

#[cfg(all(test, not(feature = "tls")))]
mod tests {
    use super::*;

    #[test]
    fn tls_flags_say_they_need_the_feature() {
        let args = Args::parse_from(["peercache-server", "--tls-ca", "ca.pem"]);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let error = runtime.block_on(run(args)).unwrap_err().to_string();
        assert!(
            error.starts_with("--tls-ca needs TLS") && error.contains("--features tls"),
            "{error}"
        );
    }
}
