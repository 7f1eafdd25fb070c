//! The pages that describe the node: `GET /` (a text summary, or the
//! status page for a browser), `GET /status` (HTML rendering `/stats`)
//! and `GET /openapi.json` (the front API's description, kept in the
//! repository as `peercache-server/openapi.json` and tested against the
//! router).

use super::Front;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

/// The front API as an OpenAPI 3.0 document.
pub const OPENAPI: &str = include_str!("../../openapi.json");

/// `GET /openapi.json`.
pub(super) async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

/// The status page: HTML that renders `/stats` every 2 s, self-contained.
const STATUS_PAGE: &str = include_str!("../status.html");

pub(super) async fn status_page() -> Response {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        STATUS_PAGE,
    )
        .into_response()
}

/// `GET /`: the status page for a browser, a text summary for anyone else.
pub(super) async fn index(State(front): State<Front>, headers: header::HeaderMap) -> Response {
    let wants_html = headers
        .get(header::ACCEPT)
        .and_then(|a| a.to_str().ok())
        .is_some_and(|a| a.contains("text/html"));
    if wants_html {
        return status_page().await;
    }
    summary(&front).into_response()
}

fn summary(front: &Front) -> String {
    let mut groups: Vec<String> = front
        .node
        .groups()
        .iter()
        .map(|g| g.name().to_owned())
        .collect();
    groups.sort();
    format!(
        "peercache-server {}\nthis node: {}\npeers: {}\ngroups: {}\n\n\
         GET /color?name=red            a colour's #RRGGBB\n\
         PUT /color?name=red[&ttl=30s]  set it (body: the value) on every node\n\
         DELETE /color?name=red         remove it from every node\n\
         GET /<group>/<key>             any group's value (PUT, DELETE too)\n\
         POST /<group>/_purge           empty a group on every node\n\
         POST /<group>/_get-many        values of a JSON list of keys (JSON)\n\
         GET /status                    this page's HTML view, refreshing itself\n\
         GET /stats                     counters and peer health (JSON)\n\
         GET /metrics                   the same for Prometheus\n\
         GET /openapi.json              these routes, as an OpenAPI document\n",
        env!("CARGO_PKG_VERSION"),
        front.pool.self_url(),
        front.pool.peers().join(", "),
        groups.join(", "),
    )
}
