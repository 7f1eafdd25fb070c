//! `peercache-server`: one node of a peercache cluster, ready to run.
//!
//! It serves the built-in `colors` group (the example of groupcache's own
//! documentation) to clients on `/color?name=...`, any group on
//! `/<group>/<key>`, its counters on `/stats`, and the groupcache peer
//! protocol on `/_groupcache/` to the other nodes, which may be Go
//! groupcache nodes. See `--help` and the README.
//!
//! - [`args`]: the command line (Go's `-addr`, `-pool`, `-self` too).
//! - [`plan`]: the command line checked, and what follows from it (this
//!   node's URL, its peers, its options), without sockets.
//! - [`error`]: why the server stops.
//! - [`colors`]: the `colors` table and loader.
//! - [`front`]: the HTTP routes.
//! - [`origin`]: the `Host` and `Origin` checks.
//! - [`sources`]: the groups of `--config` and their data sources.

mod args;
mod colors;
mod error;
mod front;
mod origin;
mod plan;
mod sources;

use args::{Args, LogFormat};
use clap::Parser;
use error::ServerError;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use peercache::http::discovery;
use peercache::http::{HttpPool, PeerAuth, Server};
use peercache::Node;
use plan::Plan;
use std::process::ExitCode;
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let args = Args::parse_from(args::go_style_flags(std::env::args_os()));
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
    // Files first (TLS, --config: a bad one stops the node before it
    // binds), then the listener, whose address the plan needs (port 0,
    // every interface).
    #[cfg(feature = "tls")]
    let tls = args.tls_config()?.map(std::sync::Arc::new);
    let config = args
        .config
        .as_deref()
        .map(sources::Config::load)
        .transpose()?;
    if let Some(path) = &args.front.front_token_file {
        warn_if_readable_by_others(path, "the front token file");
    }
    let access = std::sync::Arc::new(front::access::Access::new(&args.front.access())?);
    if access.token_count() == Some(0) {
        tracing::warn!("{NO_TOKENS}");
    }
    let listener = listen("--addr", &args.addr).await?;
    let front_listener = match &args.front.front_addr {
        Some(addr) => Some(listen("--front-addr", addr).await?),
        None => None,
    };
    let local = listener.local_addr().map_err(ServerError::Serve)?;
    let front_local = front_listener
        .as_ref()
        .map(TcpListener::local_addr)
        .transpose()
        .map_err(ServerError::Serve)?;
    let plan = Plan::from_args(&args, local, front_local, machine_hostname().as_deref())?;
    for warning in &plan.warnings {
        tracing::warn!(addr = %local, "{warning}");
    }

    let mut options = plan.options.to_builder();
    #[cfg(feature = "tls")]
    if let Some(tls) = &tls {
        options = options.tls(tls.clone());
    }
    if let Some(path) = &args.peer_secret_file {
        warn_if_readable_by_others(path, "the peer secret file");
        let auth = PeerAuth::from_file(path)?.with_window(args.peer_auth_window);
        options = options.auth(auth);
    }
    let options = options.build().map_err(ServerError::setting)?;
    // Each listener: the limits, TLS when the node serves it, and each
    // request's client address (the front's access rules read it). With
    // --front-addr, the front's server shares the peer server's counters
    // and body budget.
    let new_server = || -> Result<Server, ServerError> {
        let server = Server::new(plan.limits.clone()).with_client_addrs();
        #[cfg(feature = "tls")]
        if let (Some(tls), true) = (&tls, plan.serves_tls()) {
            return server.tls(tls).map_err(ServerError::Serve);
        }
        Ok(server)
    };
    let server = new_server()?;
    let front_server = match front_listener.is_some() {
        true => Some(new_server()?.share_counters(server.counters())),
        false => None,
    };
    let pool = HttpPool::new(&plan.self_url, options)?;
    pool.set_peers(&plan.peers)?;
    if let Some(source) = plan.discovery.clone() {
        let source = source.into_discovery();
        // A first poll before serving, so the node starts with its peers when
        // the source answers; a failure is logged and polled again.
        if let Err(error) = discovery::refresh(&pool, source.as_ref()).await {
            tracing::warn!(%error, "first peer discovery failed; starting alone and retrying");
        }
        discovery::watch(&pool, source, args.discovery_interval);
    }

    let node = Node::with_picker(pool.clone());
    node.set_hot_cache_default(args.hot_cache_default());
    plan.groups
        .builder(&node, "colors")
        .build(colors::loader())?;
    if args.echo_group {
        plan.groups
            .builder(&node, "echo")
            .build(peercache::loader_fn(|key: String| async move { Ok(key) }))?;
    }
    if let (Some(config), Some(path)) = (config, &args.config) {
        config.build(path, &node, &plan.groups, args.max_body_bytes)?;
    }

    tracing::info!(
        self_url = %plan.self_url,
        self_from = ?plan.self_from,
        addr = %local,
        front_addr = %front_local.unwrap_or(local),
        front_tokens = plan.front.access.token_file.is_some(),
        front_writes = plan.front.access.writes,
        front_open = plan.front.access.open,
        peers = ?pool.peers(),
        cache_bytes = args.cache_bytes,
        peer_auth = args.peer_secret_file.is_some(),
        tls = plan.serves_tls(),
        client_certs_required = args.tls_require_client_cert,
        "peercache-server listening"
    );
    let metrics = install_metrics()?;
    if args.front.front_token_file.is_some() {
        reload_tokens_on_hangup(std::sync::Arc::clone(&access));
    }
    let scheme = plan.scheme;
    let stopping = leave_on_signal(node.clone(), args.deploys.handoff());
    let routers = front::routers(node, pool, server.counters(), metrics, plan.front, access);
    match (front_listener, front_local, front_server) {
        (Some(front_listener), Some(front_local), Some(front_server)) => {
            let front_at = match front_local.ip().is_unspecified() {
                true => format!("port {} of this host", front_local.port()),
                false => format!("{scheme}://{front_local}"),
            };
            let (front_app, peer_app) = routers.split(front_at);
            let (stop, stopped) = tokio::sync::watch::channel(false);
            tokio::spawn(async move {
                stopping.await;
                let _ = stop.send(true);
            });
            let until_stopped = |mut stopped: tokio::sync::watch::Receiver<bool>| async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            };
            let (peers, front) = tokio::join!(
                server.serve(listener, peer_app, until_stopped(stopped.clone())),
                front_server.serve(front_listener, front_app, until_stopped(stopped)),
            );
            peers.and(front).map_err(ServerError::Serve)?;
        }
        _ => server
            .serve(listener, routers.merged(), stopping)
            .await
            .map_err(ServerError::Serve)?,
    }
    tracing::info!("peercache-server stopped");
    Ok(())
}

const NO_TOKENS: &str = "the front token file lists no token: every front request but /status and /openapi.json is refused";

/// Binds `addr` (Go's `:PORT` on every interface); the error names `flag`.
async fn listen(flag: &'static str, addr: &str) -> Result<TcpListener, ServerError> {
    TcpListener::bind(plan::bind_addr(addr))
        .await
        .map_err(|source| ServerError::Listen {
            flag,
            addr: addr.to_owned(),
            source,
        })
}

/// Re-reads the front token file on each SIGHUP: new tokens take effect at
/// once (an empty file revokes them all); a file that fails to read or
/// parse is logged and the tokens in force stay. Only with a token file:
/// otherwise SIGHUP keeps its default (the process ends).
fn reload_tokens_on_hangup(access: std::sync::Arc<front::access::Access>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hangups) = signal(SignalKind::hangup()) else {
            tracing::warn!("cannot listen for SIGHUP: the front token file is read at start only");
            return;
        };
        tokio::spawn(async move {
            while hangups.recv().await.is_some() {
                match access.reload() {
                    Ok(Some(0)) => tracing::warn!("SIGHUP: {NO_TOKENS}"),
                    Ok(Some(clients)) => {
                        tracing::info!(clients, "SIGHUP: front token file read again")
                    }
                    Ok(None) => {}
                    Err(error) => tracing::error!(
                        %error,
                        "SIGHUP: front token file refused; the tokens in force stay"
                    ),
                }
            }
        });
    }
    #[cfg(not(unix))]
    let _ = access;
}

/// This machine's host name, if the system says (a `--pool` URL naming it
/// can be this node's own).
fn machine_hostname() -> Option<String> {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|path| std::fs::read_to_string(path).ok())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
}

/// How often the metrics recorder folds histogram samples into buckets.
const METRICS_UPKEEP: std::time::Duration = std::time::Duration::from_secs(5);

/// Installs the Prometheus recorder of `GET /metrics`: load and peer-fetch
/// latencies as histograms, from 0.5 ms to 10 s.
fn install_metrics() -> Result<PrometheusHandle, ServerError> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Suffix("_duration_seconds".to_owned()),
            peercache::metrics::DURATION_BUCKETS,
        )
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
/// as the file's owner may have reasons). `what` names the file.
fn warn_if_readable_by_others(path: &std::path::Path, what: &str) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path) {
            let mode = meta.permissions().mode();
            if mode & 0o077 != 0 {
                tracing::warn!(
                    path = %path.display(),
                    mode = format!("{:o}", mode & 0o777),
                    "{what} is readable by other users: chmod 600 it"
                );
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

/// Ends when the node has left the cluster after SIGTERM or Ctrl-C: the
/// other nodes told, the most valuable values handed over within
/// `handoff` (README "Deploys and scaling"). The servers go on answering
/// until then, and drain their requests in flight after.
async fn leave_on_signal(node: Node, handoff: peercache::Handoff) {
    shutdown_signal().await;
    node.leave(handoff).await;
    tracing::info!("shutting down: finishing requests in flight");
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
    tracing::info!("shutting down: leaving the cluster");
}
