//! The HTTP routes of `peercache-server`: the client-facing API and, under the
//! base path, the peer endpoint the other nodes call.
//!
//! | route | answer |
//! | --- | --- |
//! | `GET /color?name=NAME` | `#RRGGBB`; 404 for an unknown colour, 400 without `name` |
//! | `GET /<group>/<key>` | the raw value of any group (read-through) |
//! | `GET /stats` | JSON: this node, its peers, every group's counters |
//! | `<base path><group>/<key>` | the groupcache peer protocol |

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use peercache::http::HttpPool;
use peercache::{Error, GroupStats, Node};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// What the handlers share.
#[derive(Clone)]
struct Front {
    node: Node,
    pool: Arc<HttpPool>,
}

/// The whole application: front API and peer endpoint.
pub fn router(node: Node, pool: Arc<HttpPool>) -> Router {
    let peers = pool.service(node.clone());
    let base = pool.options().base_path.clone();
    Router::new()
        .route("/", get(index))
        .route("/color", get(color))
        .route("/stats", get(stats))
        .route("/{group}/{*key}", get(read_through))
        .route_service(&format!("{base}{{*rest}}"), peers.clone())
        .route_service(&base, peers)
        .with_state(Front { node, pool })
}

async fn index(State(front): State<Front>) -> String {
    let mut groups: Vec<String> = front
        .node
        .groups()
        .iter()
        .map(|g| g.name().to_owned())
        .collect();
    groups.sort();
    format!(
        "peercache-server {}\nthis node: {}\npeers: {}\ngroups: {}\n\n\
         GET /color?name=red      a colour's #RRGGBB\n\
         GET /<group>/<key>       any group's value\n\
         GET /stats               counters (JSON)\n",
        env!("CARGO_PKG_VERSION"),
        front.pool.self_url(),
        front.pool.peers().join(", "),
        groups.join(", "),
    )
}

#[derive(Deserialize)]
struct ColorQuery {
    name: Option<String>,
}

async fn color(State(front): State<Front>, Query(query): Query<ColorQuery>) -> Response {
    let name = query
        .name
        .map(|n| n.trim().to_ascii_lowercase())
        .unwrap_or_default();
    if name.is_empty() {
        return text(
            StatusCode::BAD_REQUEST,
            "missing name parameter: ask for /color?name=red".into(),
        );
    }
    let Some(colors) = front.node.group("colors") else {
        return text(StatusCode::NOT_FOUND, "no such group: colors".into());
    };
    match colors.get(&name).await {
        Ok(value) => text(
            StatusCode::OK,
            String::from_utf8_lossy(value.as_bytes()).into_owned(),
        ),
        Err(error) if error.is_not_found() => text(
            StatusCode::NOT_FOUND,
            format!("no colour named {name:?}; try red, green, blue, black, white"),
        ),
        Err(error) => failure(&error),
    }
}

async fn read_through(
    State(front): State<Front>,
    Path((group, key)): Path<(String, String)>,
) -> Response {
    let Some(group) = front.node.group(&group) else {
        return text(StatusCode::NOT_FOUND, format!("no such group: {group}"));
    };
    match group.get(&key).await {
        Ok(value) => (
            [(header::CONTENT_TYPE, "application/octet-stream")],
            value.into_bytes(),
        )
            .into_response(),
        Err(error) if error.is_not_found() => text(StatusCode::NOT_FOUND, error.to_string()),
        Err(error) => failure(&error),
    }
}

/// The body of `GET /stats`.
#[derive(Serialize, Deserialize)]
pub struct Stats {
    /// This node's base URL.
    pub self_url: String,
    /// The peer list, this node included.
    pub peers: Vec<String>,
    /// Every group's counters.
    pub groups: Vec<GroupStats>,
}

async fn stats(State(front): State<Front>) -> Json<Stats> {
    let mut groups = front.node.stats();
    groups.sort_by(|a, b| a.name.cmp(&b.name));
    Json(Stats {
        self_url: front.pool.self_url().to_owned(),
        peers: front.pool.peers(),
        groups,
    })
}

fn failure(error: &Error) -> Response {
    tracing::warn!(%error, "get failed");
    text(StatusCode::SERVICE_UNAVAILABLE, error.to_string())
}

fn text(status: StatusCode, mut body: String) -> Response {
    body.push('\n');
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}
