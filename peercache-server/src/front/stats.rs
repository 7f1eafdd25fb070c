//! `GET /stats` (JSON: this node, its peers and their health, every
//! group's counters, the ring's shares, the server's and the front's
//! refusals) and
//! `GET /metrics` (the Prometheus text format): what operators read.

use super::access::AccessStats;
use super::Front;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use peercache::health::PeerStatus;
use peercache::http::LimitStats;
use peercache::{GroupStats, PendingHints};
use serde::{Deserialize, Serialize};

/// One member's share of the keys.
#[derive(Serialize, Deserialize)]
pub struct RingShare {
    /// The member's base URL.
    pub peer: String,
    /// The fraction of the hash space it owns (0 to 1).
    pub share: f64,
}

/// The body of `GET /stats`.
#[derive(Serialize, Deserialize)]
pub struct Stats {
    /// This node's base URL.
    pub self_url: String,
    /// The members, this node included, with their health (`state`: self,
    /// up, or down = out of the ring and probed).
    pub peers: Vec<PeerStatus>,
    /// Every group's counters.
    pub groups: Vec<GroupStats>,
    /// Each member's share of the ring (of the keys), this node included.
    pub ring: Vec<RingShare>,
    /// Requests refused by the server's limits since it started.
    pub limits: LimitStats,
    /// Front requests refused by the front's access rules (tokens, writes
    /// off, loopback only, rate limit) since it started.
    #[serde(default)]
    pub front: AccessStats,
    /// Changes waiting for peers that did not answer them, per group and
    /// peer (README "Updating and removing keys").
    #[serde(default)]
    pub hints: Vec<GroupHints>,
}

/// The changes of one group waiting for one peer.
#[derive(Serialize, Deserialize)]
pub struct GroupHints {
    /// The group.
    pub group: String,
    /// The peer and what waits for it.
    #[serde(flatten)]
    pub pending: PendingHints,
}

pub(super) async fn stats(State(front): State<Front>) -> Json<Stats> {
    let mut groups = front.node.stats();
    groups.sort_by(|a, b| a.name.cmp(&b.name));
    let hints = groups
        .iter()
        .filter(|g| g.hints_pending > 0)
        .filter_map(|g| front.node.group(&g.name))
        .flat_map(|group| {
            let name = group.name().to_owned();
            group
                .pending_hints()
                .into_iter()
                .map(move |pending| GroupHints {
                    group: name.clone(),
                    pending,
                })
        })
        .collect();
    Json(Stats {
        self_url: front.pool.self_url().to_owned(),
        peers: front.pool.peer_status(),
        groups,
        ring: front
            .pool
            .shares()
            .into_iter()
            .map(|(peer, share)| RingShare { peer, share })
            .collect(),
        limits: front.limits.snapshot(),
        front: front.access.stats(),
        hints,
    })
}

/// `GET /metrics`: the Prometheus text format, counters copied from the
/// groups and peers at each scrape.
pub(super) async fn prometheus(State(front): State<Front>) -> Response {
    peercache::metrics::record(&front.node);
    peercache::metrics::record_peers(&front.pool.peer_status());
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        front.metrics.render(),
    )
        .into_response()
}
