//! Deploys and scaling without an origin storm (README "Deploys and
//! scaling"): real server processes finding each other through a peers
//! file, in front of an HTTP origin that counts its loads. A fourth node
//! joins a warm cluster, leaves it on SIGTERM, then every node is
//! restarted in turn; after each, every key is read again through every
//! node, and the origin must have been asked for almost none of them.
//! `bench/deploys.py` runs the same under a steady load, at 10,000 keys.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use support::*;

/// Keys of the working set: the first 300 are read from the start, the
/// rest once the fourth node is in (so that it alone holds its share of
/// them when it leaves).
const KEYS: usize = 400;
const FIRST_KEYS: usize = 300;

/// The origin: `GET /items/<key>` answers a 100-byte value and counts.
fn origin() -> (SocketAddr, Arc<AtomicU64>) {
    let loads = Arc::new(AtomicU64::new(0));
    let counted = Arc::clone(&loads);
    let app = axum::Router::new().route(
        "/items/{key}",
        axum::routing::get(
            move |axum::extract::Path(key): axum::extract::Path<String>| {
                counted.fetch_add(1, Ordering::SeqCst);
                async move { format!("{key:<100}") }
            },
        ),
    );
    (spawn_origin(app), loads)
}

fn write_peers(file: &Path, addrs: &[SocketAddr]) {
    let lines: Vec<String> = addrs.iter().map(|a| format!("http://{a}\n")).collect();
    let tmp = file.with_extension("tmp");
    std::fs::write(&tmp, lines.concat()).unwrap();
    std::fs::rename(&tmp, file).unwrap();
}

fn node_args(addr: SocketAddr, peers: &Path, config: &Path) -> Vec<String> {
    [
        "--addr",
        &addr.to_string(),
        "--peers-file",
        &peers.display().to_string(),
        "--discovery-interval",
        "200ms",
        "--config",
        &config.display().to_string(),
        "--peer-timeout",
        "3s",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// What `node`'s `/stats` says of the member `url`: its state, if listed.
fn state_of(node: SocketAddr, url: &str) -> Option<String> {
    let stats = stats(node);
    let peers = stats["peers"].as_array()?;
    let peer = peers.iter().find(|p| p["peer"] == url)?;
    Some(peer["state"].as_str()?.to_owned())
}

/// Waits until every node in `nodes` lists exactly `members`, each up (or
/// itself).
fn wait_settled(nodes: &[SocketAddr], members: &[SocketAddr]) {
    wait_until("every node to see every member up", || {
        nodes.iter().all(|&node| {
            let listed = stats(node)["peers"].as_array().map_or(0, Vec::len);
            listed == members.len()
                && members.iter().all(|m| {
                    let state = state_of(node, &format!("http://{m}"));
                    matches!(state.as_deref(), Some("up" | "self"))
                })
        })
    });
}

/// Reads keys `keys` through `nodes` in turn, each answered in full.
fn read_all(nodes: &[SocketAddr], keys: std::ops::Range<usize>) {
    for i in keys {
        let node = nodes[i % nodes.len()];
        let key = format!("key{i}");
        let (status, body) = get(node, &format!("/items/{key}")).unwrap();
        assert_eq!((status, body.trim_end()), (200, key.as_str()), "via {node}");
    }
}

/// Origin loads of one phase: at most `percent` of the working set.
fn assert_few(phase: &str, loads: &AtomicU64, before: u64, percent: usize) {
    let extra = loads.load(Ordering::SeqCst) - before;
    let bound = (KEYS * percent / 100) as u64;
    assert!(
        extra <= bound,
        "{phase}: {extra} origin loads of {KEYS} keys (bound {bound})"
    );
    eprintln!("{phase}: {extra} extra origin loads of {KEYS} keys");
}

#[test]
fn joins_leaves_and_restarts_reload_almost_nothing() {
    let scratch = Scratch::new("deploys");
    let (origin, loads) = origin();
    let config = scratch.0.join("items.toml");
    std::fs::write(
        &config,
        format!(
            "[[group]]\nname = \"items\"\nsource = \"http\"\nurl = \"http://{origin}/items/{{key}}\"\n"
        ),
    )
    .unwrap();
    let peers = scratch.0.join("peers.txt");
    let addrs = free_addrs(4);
    write_peers(&peers, &addrs[..3]);
    let start_node = |i: usize, name: &str| {
        start(
            &format!("deploy-{name}{i}"),
            &server_binary(),
            &node_args(addrs[i], &peers, &config),
            addrs[i],
        )
        .unwrap()
    };
    let mut nodes: Vec<Proc> = (0..3).map(|i| start_node(i, "node")).collect();
    wait_settled(&addrs[..3], &addrs[..3]);

    read_all(&addrs[..3], 0..FIRST_KEYS);
    assert_eq!(loads.load(Ordering::SeqCst), FIRST_KEYS as u64, "warm-up");

    // Scale out: a fourth node joins; the keys that move to it are peeked.
    let before = loads.load(Ordering::SeqCst);
    nodes.push(start_node(3, "node"));
    write_peers(&peers, &addrs);
    wait_settled(&addrs, &addrs);
    read_all(&addrs, 0..FIRST_KEYS);
    assert_few("join", &loads, before, 1);
    read_all(&addrs, FIRST_KEYS..KEYS);
    let joined = stats(addrs[3]);
    let items = group_in(&joined, "items");
    assert!(items["peek_hits"].as_u64().unwrap() > 0, "{items}");

    // Scale in: the fourth leaves on SIGTERM, handing its keys over (the
    // keys read since it joined are held nowhere else).
    let before = loads.load(Ordering::SeqCst);
    assert!(nodes[3].terminate().success());
    nodes.pop();
    write_peers(&peers, &addrs[..3]);
    wait_settled(&addrs[..3], &addrs[..3]);
    let received: u64 = addrs[..3]
        .iter()
        .map(|&a| counter(a, "items", "handoff_received"))
        .sum();
    assert!(received > 0, "the leaving node's values were kept");
    read_all(&addrs[..3], 0..KEYS);
    assert_few("leave", &loads, before, 1);

    // A rolling restart: each node in turn, waiting until the others
    // have it back in their rings.
    let before = loads.load(Ordering::SeqCst);
    for (i, node) in nodes.iter_mut().enumerate() {
        assert!(node.terminate().success());
        *node = start_node(i, "restarted");
        wait_settled(&addrs[..3], &addrs[..3]);
    }
    read_all(&addrs[..3], 0..KEYS);
    for &addr in &addrs[..3] {
        let g = group_stats(addr, "items");
        let shown = ["local_loads", "peeks", "peek_hits", "handoff_received"];
        let counts: Vec<String> = shown
            .iter()
            .map(|name| format!("{name} {}", g[name]))
            .collect();
        eprintln!("{addr}: {}", counts.join(", "));
    }
    assert_few("rolling restart", &loads, before, 2);
}
