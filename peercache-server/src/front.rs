//! The HTTP routes of `peercache-server`: the client-facing API and, under the
//! base path, the peer endpoint the other nodes call.
//!
//! | route | answer |
//! | --- | --- |
//! | `GET /color?name=NAME` | `#RRGGBB`; 404 for an unknown colour, 400 without `name` |
//! | `PUT /color?name=NAME[&ttl=30s]`, body the value | sets the colour for the whole cluster |
//! | `DELETE /color?name=NAME` | removes the colour from the whole cluster (the next get loads it) |
//! | `GET /<group>/<key>` | the raw value of any group (read-through) |
//! | `PUT /<group>/<key>[?ttl=30s]`, `DELETE /<group>/<key>` | set, remove in any group |
//! | `POST /<group>/_purge` | empties the group on every node |
//! | `POST /<group>/_get-many`, body `["k1","k2"]` | JSON: each key's value or error ([`many`]) |
//! | `GET /status` (and `GET /` from a browser) | an HTML status page rendering `/stats` every 2 s |
//! | `GET /stats` | JSON: this node, its peers and their health, every group's counters |
//! | `GET /metrics` | Prometheus text format, mailgun/groupcache's metric names ([`peercache::metrics`]) |
//! | `<base path><group>/<key>` | the groupcache peer protocol |
//!
//! A change that did not reach every peer answers 502 with the peers that
//! failed and why (what did reach them is done).

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{header, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;
use peercache::http::HttpPool;
use peercache::http::LimitCounters;
use peercache::{Error, Group, Node};
use serde::Deserialize;
use std::sync::Arc;

pub mod access;
mod changes;
mod many;
mod pages;
mod rate;
mod stats;
pub mod tokens;

use access::Access;
use changes::{change_failed, done, remove, set};

/// What the handlers share.
#[derive(Clone)]
struct Front {
    node: Node,
    pool: Arc<HttpPool>,
    limits: Arc<LimitCounters>,
    metrics: PrometheusHandle,
    max_body_bytes: usize,
    access: Arc<Access>,
}

/// The front API's own settings.
#[derive(Debug, Clone)]
pub struct FrontSettings {
    /// Largest body of a front `PUT` (`--max-front-body-bytes`).
    pub max_body_bytes: usize,
    /// The names the front port answers to ([`crate::origin`]).
    pub allowed_hosts: crate::origin::AllowedHosts,
    /// The names the peer port answers to: the same as the front's on one
    /// port; with `--front-addr`, each port takes the local network's
    /// names only if it listens beyond loopback.
    pub peer_hosts: crate::origin::AllowedHosts,
    /// Who may call the front API ([`access`]).
    pub access: access::AccessSettings,
}

/// The routers of a node: the front API, and the peer endpoint (the
/// groupcache protocol the other nodes call).
pub struct Routers {
    /// The front API: client routes, status page, `/stats`, `/metrics`,
    /// `/openapi.json`, behind [`access`].
    pub front: Router,
    /// The peer endpoint under the base path, without its `Host` and
    /// `Origin` checks (added last, so they also cover the peer port's
    /// fallback).
    peers: Router,
    /// The names the peer port answers to.
    peer_hosts: crate::origin::AllowedHosts,
}

impl Routers {
    /// Both on one port (no `--front-addr`).
    pub fn merged(self) -> Router {
        let peers = self.peers.layer(axum::middleware::from_fn_with_state(
            self.peer_hosts,
            crate::origin::guard,
        ));
        self.front.merge(peers)
    }

    /// The front API and the peer endpoint on ports of their own
    /// (`--front-addr`): the peer port answers anything but the peer
    /// protocol with a 404 naming the front port.
    pub fn split(self, front_url: String) -> (Router, Router) {
        let peers = self.peers.fallback(move |uri: Uri| async move {
            text(
                StatusCode::NOT_FOUND,
                format!(
                    "no route for {}: this is the peer port; the front API is at {front_url}",
                    uri.path()
                ),
            )
        });
        let peers = peers.layer(axum::middleware::from_fn_with_state(
            self.peer_hosts,
            crate::origin::guard,
        ));
        (self.front, peers)
    }
}

/// The node's routers. `limits` are the server's refusal counters, shown
/// in `/stats`; `metrics` renders `/metrics`; `access` decides who may
/// call the front API.
pub fn routers(
    node: Node,
    pool: Arc<HttpPool>,
    limits: Arc<LimitCounters>,
    metrics: PrometheusHandle,
    settings: FrontSettings,
    access: Arc<Access>,
) -> Routers {
    let peers = pool.service(node.clone());
    let hosts = settings.allowed_hosts.clone();
    let peer_routes = Router::new()
        .route_service(&pool.route_path(), peers.clone())
        .route_service(pool.options().base_path(), peers);
    let max_body = settings.max_body_bytes;
    let front = Router::new()
        .route("/", get(pages::index))
        .route("/status", get(pages::status_page))
        .route("/openapi.json", get(pages::openapi))
        .route("/color", get(color).put(set_color).delete(remove_color))
        .route("/stats", get(stats::stats))
        .route("/metrics", get(stats::prometheus))
        .route(
            "/{group}/{*key}",
            get(read_through).put(set_key).delete(remove_key).post(post),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body))
        .layer(axum::middleware::from_fn_with_state(
            access::Gate {
                hosts,
                access: Arc::clone(&access),
            },
            access::guard,
        ))
        .with_state(Front {
            node,
            pool,
            limits,
            metrics,
            max_body_bytes: max_body,
            access,
        });
    Routers {
        front,
        peers: peer_routes,
        peer_hosts: settings.peer_hosts,
    }
}

async fn not_found(uri: Uri) -> Response {
    text(
        StatusCode::NOT_FOUND,
        format!("no route for {}: see GET / for the routes", uri.path()),
    )
}

async fn method_not_allowed(method: Method, uri: Uri) -> Response {
    text(
        StatusCode::METHOD_NOT_ALLOWED,
        format!(
            "method {method} not allowed on {}: see GET / for the routes",
            uri.path()
        ),
    )
}

/// A refusal: status and the plain-text reason.
type Refusal = (StatusCode, String);

/// A request body, or the refusal saying which limit it broke.
fn body_or_refusal(front: &Front, body: Result<Bytes, BytesRejection>) -> Result<Bytes, Refusal> {
    body.map_err(|rejection| {
        let reason = rejection.body_text();
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            (
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "request body too large: the limit is {} bytes (--max-front-body-bytes)",
                    front.max_body_bytes
                ),
            )
        } else if reason.contains("max body bytes in flight") {
            (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("{reason} (--max-body-bytes-in-flight)"),
            )
            // (`text` adds `Retry-After` to every 503.)
        } else if reason.contains("body read timeout") {
            (
                StatusCode::REQUEST_TIMEOUT,
                format!("request timeout: {reason} (--body-read-timeout)"),
            )
        } else {
            (StatusCode::BAD_REQUEST, format!("bad request: {reason}"))
        }
    })
}

/// Refuses a key longer than the peers accept: it could never be fetched
/// from its owner.
fn check_key(front: &Front, key: &str) -> Result<(), Refusal> {
    let limit = front.pool.options().max_key_bytes();
    if key.len() > limit {
        return Err((
            StatusCode::URI_TOO_LONG,
            format!(
                "key too long ({} bytes): the limit is {limit} bytes (--max-key-bytes)",
                key.len()
            ),
        ));
    }
    Ok(())
}

#[derive(Deserialize)]
struct ColorQuery {
    name: Option<String>,
    ttl: Option<String>,
}

#[derive(Deserialize)]
struct TtlQuery {
    ttl: Option<String>,
}

/// The colours group and the normalised `name`, or the error to answer.
fn color_and_name(
    front: &Front,
    query: &ColorQuery,
) -> Result<(Group, String), (StatusCode, String)> {
    let name = query
        .name
        .as_deref()
        .map(|n| n.trim().to_ascii_lowercase())
        .unwrap_or_default();
    if name.is_empty() {
        return Err((
            StatusCode::BAD_REQUEST,
            "missing name parameter: use /color?name=red".into(),
        ));
    }
    check_key(front, &name)?;
    match front.node.group("colors") {
        Some(colors) => Ok((colors, name)),
        None => Err((StatusCode::NOT_FOUND, "no such group: colors".into())),
    }
}

async fn set_color(
    State(front): State<Front>,
    Query(query): Query<ColorQuery>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body_or_refusal(&front, body) {
        Ok(body) => body,
        Err((status, message)) => return text(status, message),
    };
    match color_and_name(&front, &query) {
        Ok((colors, name)) => set(&colors, &name, query.ttl.as_deref(), body).await,
        Err((status, message)) => text(status, message),
    }
}

async fn remove_color(State(front): State<Front>, Query(query): Query<ColorQuery>) -> Response {
    match color_and_name(&front, &query) {
        Ok((colors, name)) => remove(&colors, &name).await,
        Err((status, message)) => text(status, message),
    }
}

async fn set_key(
    State(front): State<Front>,
    Path((group, key)): Path<(String, String)>,
    Query(query): Query<TtlQuery>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body_or_refusal(&front, body) {
        Ok(body) => body,
        Err((status, message)) => return text(status, message),
    };
    if let Err((status, message)) = check_key(&front, &key) {
        return text(status, message);
    }
    match front.node.group(&group) {
        Some(group) => set(&group, &key, query.ttl.as_deref(), body).await,
        None => text(StatusCode::NOT_FOUND, format!("no such group: {group}")),
    }
}

async fn remove_key(
    State(front): State<Front>,
    Path((group, key)): Path<(String, String)>,
) -> Response {
    if let Err((status, message)) = check_key(&front, &key) {
        return text(status, message);
    }
    match front.node.group(&group) {
        Some(group) => remove(&group, &key).await,
        None => text(StatusCode::NOT_FOUND, format!("no such group: {group}")),
    }
}

/// `POST /<group>/_purge`, and `POST /<group>/_get-many` (only it reads the body).
async fn post(
    State(front): State<Front>,
    Path((group, key)): Path<(String, String)>,
    request: Request,
) -> Response {
    match key.as_str() {
        "_purge" => {}
        "_get-many" => return many::get_many(&front, &group, request).await,
        _ => return text(StatusCode::METHOD_NOT_ALLOWED, many::post_routes(&group)),
    }
    let Some(group) = front.node.group(&group) else {
        return text(StatusCode::NOT_FOUND, format!("no such group: {group}"));
    };
    match group.purge().await {
        Ok(applied) => done(
            format!("purged group {:?} on every node", group.name()),
            &applied,
        ),
        Err(error) => change_failed(&error),
    }
}

async fn color(State(front): State<Front>, Query(query): Query<ColorQuery>) -> Response {
    let (colors, name) = match color_and_name(&front, &query) {
        Ok(found) => found,
        Err((status, message)) => return text(status, message),
    };
    match colors.get(&name).await {
        Ok(value) => text(
            StatusCode::OK,
            String::from_utf8_lossy(value.as_bytes()).into_owned(),
        ),
        Err(error) if error.is_not_found() => not_found_key(format!(
            "no colour named {name:?}; try red, green, blue, black, white"
        )),
        Err(error) => failure(&error),
    }
}

async fn read_through(
    State(front): State<Front>,
    Path((group, key)): Path<(String, String)>,
) -> Response {
    if let Err((status, message)) = check_key(&front, &key) {
        return text(status, message);
    }
    let Some(group) = front.node.group(&group) else {
        return text(StatusCode::NOT_FOUND, format!("no such group: {group}"));
    };
    match group.get(&key).await {
        Ok(value) => (
            [(header::CONTENT_TYPE, "application/octet-stream")],
            value.into_bytes(),
        )
            .into_response(),
        Err(error) if error.is_not_found() => not_found_key(error.to_string()),
        Err(error) => failure(&error),
    }
}

/// 404 for a key the group's loader found nothing for, marked
/// `x-peercache-not-found: 1` so a client tells it from a 404 for a
/// missing group or route.
fn not_found_key(message: String) -> Response {
    let mut response = text(StatusCode::NOT_FOUND, message);
    response.headers_mut().insert(
        "x-peercache-not-found",
        axum::http::HeaderValue::from_static("1"),
    );
    response
}

/// 503: a get failed. The error names the key, so it is logged only at
/// debug level (the group's `key_in_traces` governs keys in its own logs).
fn failure(error: &Error) -> Response {
    tracing::debug!(error = %peercache::trace::Escaped(error), "get failed");
    text(StatusCode::SERVICE_UNAVAILABLE, error.to_string())
}

fn text(status: StatusCode, mut body: String) -> Response {
    body.push('\n');
    let mut response = (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response();
    if status == StatusCode::SERVICE_UNAVAILABLE {
        // A load that failed, or a body over the node's budget: both may
        // pass shortly.
        response.headers_mut().insert(
            header::RETRY_AFTER,
            axum::http::HeaderValue::from_static("1"),
        );
    }
    response
}
