//! Origin protection on a live three-node cluster over an `http` origin
//! served by this test on loopback: with `--stale-if-error`, expired pages
//! keep being served (200, their old bodies) through every node while the
//! origin fails, and the serves are counted; with `--cache-not-found`, a
//! missing page is asked of the origin once, whichever node and whichever
//! API (single gets, front batches) asks, the owner telling the other nodes
//! over the peer protocol how long to keep the answer.

mod support;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get as route_get;
use axum::Router;
use peercache::ring::{HashMode, Ring};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use support::*;

/// The origin: down or not, and the requests each path received.
#[derive(Default)]
struct Origin {
    down: AtomicBool,
    asked: Mutex<HashMap<String, usize>>,
}

impl Origin {
    fn asked(&self, key: &str) -> usize {
        self.asked.lock().unwrap().get(key).copied().unwrap_or(0)
    }

    fn total(&self) -> usize {
        self.asked.lock().unwrap().values().sum()
    }
}

async fn page(State(origin): State<Arc<Origin>>, Path(key): Path<String>) -> Response {
    *origin.asked.lock().unwrap().entry(key.clone()).or_default() += 1;
    if origin.down.load(Ordering::SeqCst) {
        return (StatusCode::SERVICE_UNAVAILABLE, "database down").into_response();
    }
    if key.starts_with("missing") {
        return (StatusCode::NOT_FOUND, "no such page").into_response();
    }
    let body = format!("page {key}");
    if key.starts_with("cc-") {
        // The origin's own freshness and stale windows.
        let control = [(header::CACHE_CONTROL, "max-age=1, stale-if-error=3600")];
        return (control, body).into_response();
    }
    body.into_response()
}

/// Starts the origin on a thread of its own; a config file with group
/// `pages` over it.
fn origin(name: &str) -> (String, Arc<Origin>) {
    let origin = Arc::new(Origin::default());
    let app = Router::new()
        .route("/pages/{*key}", route_get(page))
        .with_state(Arc::clone(&origin));
    let addr = spawn_origin(app);
    let config = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("{name}-{}.toml", std::process::id()));
    std::fs::write(
        &config,
        format!(
            "[[group]]\nname = \"pages\"\nsource = \"http\"\nurl = \"http://{addr}/pages/{{key}}\"\n"
        ),
    )
    .unwrap();
    (config.to_str().unwrap().to_owned(), origin)
}

fn sum(nodes: &[Proc], name: &str) -> u64 {
    nodes.iter().map(|n| counter(n.addr, "pages", name)).sum()
}

/// Reads every key of `keys` through node 0 (from the origin), then takes
/// the origin down.
fn warm_then_take_down(nodes: &[Proc], origin: &Origin, keys: &[String]) {
    for key in keys {
        assert_eq!(
            get_ok(nodes[0].addr, &format!("/pages/{key}")),
            format!("page {key}")
        );
    }
    origin.down.store(true, Ordering::SeqCst);
}

#[test]
fn expired_pages_are_served_through_every_node_while_the_origin_fails() {
    let (config, origin) = origin("stale-if-error");
    let flags = ["--config", &config, "--ttl", "1s", "--stale-if-error", "1h"];
    let nodes = start_servers(3, &flags);
    let keys: Vec<String> = (0..12).map(|i| format!("p{i}")).collect();
    warm_then_take_down(&nodes, &origin, &keys);
    // Once the pages expired (after 1 s), every get tries the origin, which
    // fails: each node answers with the expired page, and counts it.
    wait_until("the pages expired and were served stale", || {
        let _ = get(nodes[1].addr, "/pages/p0");
        sum(&nodes, "stale_if_error") > 0
    });
    let asked = origin.total();
    for node in &nodes {
        for key in &keys {
            let (status, body) = get(node.addr, &format!("/pages/{key}")).unwrap();
            assert_eq!(
                (status, body.as_str()),
                (200, format!("page {key}").as_str())
            );
        }
    }
    assert!(origin.total() > asked, "the origin was tried again");
    assert!(sum(&nodes, "stale_if_error") >= keys.len() as u64);
    // The origin is back: fresh pages again (the next load succeeds).
    origin.down.store(false, Ordering::SeqCst);
    let before = sum(&nodes, "stale_if_error");
    for key in &keys {
        assert_eq!(
            get_ok(nodes[2].addr, &format!("/pages/{key}")),
            format!("page {key}")
        );
    }
    assert_eq!(sum(&nodes, "stale_if_error"), before);
}

#[test]
fn a_missing_page_is_asked_of_the_origin_once_cluster_wide() {
    let (config, origin) = origin("cache-not-found");
    let flags = ["--config", &config, "--cache-not-found", "1h"];
    let nodes = start_servers(3, &flags);
    for round in 0..3 {
        for node in &nodes {
            let (status, _) = get(node.addr, "/pages/missing-1").unwrap();
            assert_eq!(status, 404, "round {round}");
            // A front batch through the same node: the owner's answer
            // comes back in a peer batch for the nodes that do not own it.
            let (status, body) = request(
                node.addr,
                "POST",
                "/pages/_get-many",
                br#"["missing-1", "missing-2"]"#,
            )
            .unwrap();
            assert_eq!(status, 200, "{body}");
            let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert_eq!(answer["missing-1"]["status"], 404, "{body}");
            assert_eq!(answer["missing-2"]["status"], 404, "{body}");
        }
    }
    assert_eq!(
        origin.asked("missing-1"),
        1,
        "one origin request cluster-wide"
    );
    assert_eq!(
        origin.asked("missing-2"),
        1,
        "one origin request cluster-wide"
    );
    // The owners cached their answers, and the two other nodes kept the
    // owner's (for as long): each asked the owner of each key once, where
    // without it they would have asked in every round.
    assert_eq!(
        sum(&nodes, "server_requests"),
        2 * 2,
        "one peer ask per key and node"
    );
    assert!(
        sum(&nodes, "negative_hits") >= 2 * 3 * 2,
        "{}",
        sum(&nodes, "negative_hits")
    );
    // A page that appears is served once the group is told (a set clears
    // the cached not-found on every node).
    let (status, body) = request(nodes[1].addr, "PUT", "/pages/missing-1", b"new page").unwrap();
    assert_eq!(status, 200, "{body}");
    for node in &nodes {
        assert_eq!(get_ok(node.addr, "/pages/missing-1"), "new page");
    }
}

#[test]
fn the_origin_breaker_stops_asking_a_failing_origin_while_stale_pages_are_served() {
    let (config, origin) = origin("origin-breaker");
    let flags = [
        "--config",
        &config,
        "--ttl",
        "1s",
        "--stale-if-error",
        "1h",
        "--origin-breaker",
        "3",
        "--origin-breaker-cool-down",
        "1h",
    ];
    let nodes = start_servers(3, &flags);
    let keys: Vec<String> = (0..12).map(|i| format!("p{i}")).collect();
    warm_then_take_down(&nodes, &origin, &keys);
    // Once the pages expired, each owner's loads fail until its breaker
    // opens (3 in a row); then nothing more reaches the origin.
    wait_until("every owner's breaker opened", || {
        for node in &nodes {
            for key in &keys {
                let _ = get(node.addr, &format!("/pages/{key}"));
            }
        }
        nodes
            .iter()
            .filter(|n| counter(n.addr, "pages", "local_loads") > 0)
            .all(|n| counter(n.addr, "pages", "loads_failed_fast") > 0)
    });
    let asked = origin.total();
    for _ in 0..5 {
        for node in &nodes {
            for key in &keys {
                let (status, body) = get(node.addr, &format!("/pages/{key}")).unwrap();
                assert_eq!(
                    (status, body.as_str()),
                    (200, format!("page {key}").as_str())
                );
            }
        }
    }
    assert_eq!(
        origin.total(),
        asked,
        "no request reached the origin while the breaker was open"
    );
    // A page never cached, owned by a node whose breaker is open, has no
    // stale value: 503 at once, naming the breaker.
    let urls: Vec<String> = nodes.iter().map(|n| n.url.clone()).collect();
    let ring = Ring::with_peers(HashMode::Golang, 50, &urls).unwrap();
    let open = nodes
        .iter()
        .find(|n| counter(n.addr, "pages", "loads_failed_fast") > 0)
        .unwrap();
    let key = (0..)
        .map(|i| format!("never-cached-{i}"))
        .find(|key| ring.owner(key) == Some(open.url.as_str()))
        .unwrap();
    let (status, body) = get(nodes[0].addr, &format!("/pages/{key}")).unwrap();
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("origin_breaker"), "{body}");
}

#[test]
fn the_origins_stale_if_error_is_honoured_when_the_group_sets_none() {
    let (config, origin) = origin("cache-control");
    let nodes = start_servers(3, &["--config", &config]);
    let keys: Vec<String> = (0..6).map(|i| format!("cc-{i}")).collect();
    warm_then_take_down(&nodes, &origin, &keys);
    // `max-age=1`: once expired, each get tries the origin, which fails,
    // and the page is served within its `stale-if-error=3600`.
    wait_until("the pages expired and were served stale", || {
        let _ = get(nodes[1].addr, "/pages/cc-0");
        sum(&nodes, "stale_if_error") > 0
    });
    for node in &nodes {
        for key in &keys {
            let (status, body) = get(node.addr, &format!("/pages/{key}")).unwrap();
            assert_eq!(
                (status, body.as_str()),
                (200, format!("page {key}").as_str())
            );
        }
    }
    assert!(sum(&nodes, "stale_if_error") >= keys.len() as u64);
}
