//! A mixed cluster: two `peercache-server` processes and one golang/groupcache
//! node (`interop/go`, built here from Debian's Go packages in GOPATH mode).
//! Every node must answer every key, and each key must be loaded once in the
//! whole cluster, with requests crossing both ways (Rust asking Go, Go asking
//! Rust) and awkward keys round-tripping through both escapings; a batch read
//! through a Rust node reaches the Go node as single gets.
//!
//! Needs `golang-go` and `golang-github-golang-groupcache-dev` (`.ci/run`
//! installs them). Without them the test passes saying it skipped and what
//! to install, unless `CI` or `PEERCACHE_FULL_TESTS` is set, where it fails
//! ([`support::require`]); `PEERCACHE_SKIP_GO_INTEROP=1` skips it knowingly.

mod support;

use peercache::ring::{HashMode, Ring};
use std::net::SocketAddr;
use support::*;

/// A group's counters from either kind of node's `/stats`, by Go's name.
fn counter(addr: SocketAddr, is_go: bool, group: &str, go_name: &str) -> u64 {
    let stats = stats(addr);
    if is_go {
        stats[group][go_name].as_u64().unwrap()
    } else {
        let rust_name = match go_name {
            "LocalLoads" => "local_loads",
            "PeerLoads" => "peer_loads",
            "PeerErrors" => "peer_errors",
            "ServerRequests" => "server_requests",
            other => panic!("no mapping for {other}"),
        };
        let groups = stats["groups"].as_array().unwrap();
        let found = groups.iter().find(|g| g["name"] == group).unwrap();
        found[rust_name].as_u64().unwrap()
    }
}

/// The payload of an HTTP/1.1 chunked body (hex sizes, CRLFs, a last
/// chunk of 0).
fn dechunked(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16)
            .unwrap_or_else(|_| panic!("not a chunk size: {size:?}"));
        if size == 0 {
            break;
        }
        out.push_str(&after[..size]);
        rest = &after[size + 2..];
    }
    out
}

#[test]
fn rust_and_go_nodes_share_one_cluster() {
    let Some(go) = go_node("peercache-interop-go", "the Go interop test") else {
        return;
    };
    let nodes = start_cluster(3, |i, addrs| {
        if i < 2 {
            let args = server_args(addrs[i], addrs, &["--echo-group"]);
            start(&format!("rust{i}"), &server_binary(), &args, addrs[i])
        } else {
            start("go", &go, &go_node_args(addrs, i, &[]), addrs[i])
        }
    });
    let is_go = |i: usize| i == 2;
    let urls: Vec<String> = nodes.iter().map(|n| n.url.clone()).collect();
    let ring = Ring::with_peers(HashMode::Golang, 50, &urls).unwrap();

    let mut keys = Vec::new();
    for base in [
        "plain",
        "a b",
        "a+b",
        "x/y",
        "100%",
        "ü",
        "grüße/ñ",
        "q?x=1&y",
        "h#1",
        "%2F",
        "~t",
        "é è",
    ] {
        for suffix in ["", "-1", "-2"] {
            keys.push(format!("{base}{suffix}"));
        }
    }
    let owners = |i: usize| {
        keys.iter()
            .filter(|k| ring.owner(k) == Some(&urls[i]))
            .count()
    };
    assert!(
        owners(2) > 0 && owners(0) + owners(1) > 0,
        "keys must cover both kinds of owner"
    );

    let colors = colors();
    for node in &nodes {
        for (name, hex) in &colors {
            let body = get_ok(node.addr, &format!("/color?name={name}"));
            assert_eq!(body, format!("{hex}\n"), "{} colour {name}", node.name);
        }
        for key in &keys {
            let body = get_ok(node.addr, &format!("/echo/{}", escape(key)));
            assert_eq!(&body, key, "{} key {key:?}", node.name);
        }
    }

    for (group, count) in [("colors", colors.len()), ("echo", keys.len())] {
        let loads: Vec<u64> = (0..3)
            .map(|i| counter(nodes[i].addr, is_go(i), group, "LocalLoads"))
            .collect();
        assert_eq!(
            loads.iter().sum::<u64>(),
            count as u64,
            "{group}: loads per node {loads:?}"
        );
        for (i, node) in nodes.iter().enumerate() {
            let owned = match group {
                "colors" => colors
                    .iter()
                    .filter(|(n, _)| ring.owner(n) == Some(&urls[i]))
                    .count(),
                _ => owners(i),
            };
            assert_eq!(
                loads[i], owned as u64,
                "{group}: {} loaded keys it does not own",
                node.name
            );
            assert_eq!(
                counter(node.addr, is_go(i), group, "PeerErrors"),
                0,
                "{group} {}",
                node.name
            );
            // Every key not owned here crossed to its owner once.
            let peer_loads = counter(node.addr, is_go(i), group, "PeerLoads");
            assert_eq!(
                peer_loads,
                (count - owned) as u64,
                "{group}: {} peer loads",
                node.name
            );
        }
    }

    // A batch read through a Rust node: the Rust owner gets one batch, the
    // Go node single GETs (a batch would reach its loader as a get of the
    // key "_get-many/"); every key is answered and loaded once.
    let fresh: Vec<String> = keys.iter().map(|k| format!("{k}-batch")).collect();
    let owned_by = |i: usize| {
        fresh
            .iter()
            .filter(|k| ring.owner(k) == Some(&urls[i]))
            .count() as u64
    };
    assert!(owned_by(1) > 0 && owned_by(2) > 0, "both kinds of owner");
    let before: Vec<(u64, u64)> = (0..3)
        .map(|i| {
            (
                counter(nodes[i].addr, is_go(i), "echo", "LocalLoads"),
                counter(nodes[i].addr, is_go(i), "echo", "ServerRequests"),
            )
        })
        .collect();
    let body = serde_json::to_vec(&fresh).unwrap();
    let (status, answer) = request(nodes[0].addr, "POST", "/echo/_get-many", &body).unwrap();
    assert_eq!(status, 200, "{answer}");
    let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
    for key in &fresh {
        assert_eq!(answer[key]["value"], key.as_str(), "{key}: {answer}");
    }
    for i in 0..3 {
        let loads = counter(nodes[i].addr, is_go(i), "echo", "LocalLoads") - before[i].0;
        assert_eq!(
            loads,
            owned_by(i),
            "{} loaded its keys and nothing else",
            nodes[i].name
        );
    }
    let go_served = counter(nodes[2].addr, true, "echo", "ServerRequests") - before[2].1;
    assert_eq!(
        go_served,
        owned_by(2),
        "the Go node: one GET per key it owns"
    );
    let rust = group_in(&stats(nodes[1].addr), "echo");
    assert_eq!(rust["server_batches"], 1, "the Rust owner: one batch");
    assert_eq!(
        counter(nodes[1].addr, false, "echo", "ServerRequests") - before[1].1,
        owned_by(1)
    );

    // Values over Go's 2 KiB chunking threshold (an echo key of 12,000
    // bytes is its own value): a Go owner answers them chunked, without a
    // Content-Length, and a Rust owner answers with its framing and the
    // value written apart; every node reads the other kind's answer.
    for owner in [2, 0] {
        let key = (0..)
            .map(|i| format!("{i}-{}", "v".repeat(12_000)))
            .find(|k| ring.owner(k) == Some(&urls[owner]))
            .unwrap();
        for (i, node) in nodes.iter().enumerate() {
            let body = get_ok(node.addr, &format!("/echo/{}", escape(&key)));
            // Go's front answers a large body chunked as well.
            let body = if is_go(i) { dechunked(&body) } else { body };
            assert!(
                body == key,
                "{}: a {}-byte value owned by {} came back as {} bytes",
                node.name,
                key.len(),
                nodes[owner].name,
                body.len()
            );
        }
    }
    for (i, node) in nodes.iter().enumerate() {
        assert_eq!(
            counter(node.addr, is_go(i), "echo", "PeerErrors"),
            0,
            "{} after the large values",
            node.name
        );
    }
}
