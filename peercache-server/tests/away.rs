//! A node that was away when a key changed, with real `peercache-server`
//! processes on 127.0.0.1: a node holding a hot copy is hung (SIGSTOP)
//! while another node sets the key. The set answers at once, the hung node
//! named as pending; resumed, it gets the change (the hint) and serves the
//! new value. When the writer that kept the hint is killed, the hot copies'
//! maximum age still bounds what the resumed node serves.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};
use support::*;

fn send(addr: SocketAddr, method: &str, target: &str, body: &str) -> (u16, String) {
    request(addr, method, target, body.as_bytes())
        .unwrap_or_else(|e| panic!("{method} {target} on {addr}: {e}"))
}

/// Indexes of green's owner, of a node holding a hot copy of it, and of
/// the writer, in a cluster of three.
fn roles(nodes: &[Proc]) -> (usize, usize, usize) {
    let owner = owner_index(nodes, "green");
    (owner, (owner + 1) % 3, (owner + 2) % 3)
}

#[test]
fn a_set_does_not_wait_for_a_hung_copy_holder_and_reaches_it_once_resumed() {
    let nodes = start_servers(3, &["--hot-cache", "always"]);
    let (owner, holder, writer) = roles(&nodes);
    assert_eq!(get_ok(nodes[holder].addr, "/color?name=green"), "#00FF00\n");

    nodes[holder].signal("STOP");
    let started = Instant::now();
    let (status, body) = send(nodes[writer].addr, "PUT", "/color?name=green", "#111111");
    let took = started.elapsed();
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains(&nodes[holder].url) && body.contains("kept for them"),
        "the hung node is named as pending: {body}"
    );
    assert_eq!(get_ok(nodes[owner].addr, "/color?name=green"), "#111111\n");
    let pending = stats(nodes[writer].addr)["hints"].clone();
    assert_eq!(pending[0]["peer"], nodes[holder].url.as_str(), "{pending}");

    nodes[holder].signal("CONT");
    let resumed = Instant::now();
    wait_until("the resumed node serves the new value", || {
        get_ok(nodes[holder].addr, "/color?name=green") == "#111111\n"
    });
    let served_after = resumed.elapsed();
    let writer_stats = group_stats(nodes[writer].addr, "colors");
    assert!(
        writer_stats["hints_delivered"].as_u64().unwrap() >= 1,
        "{writer_stats}"
    );
    wait_until("no hint left", || {
        group_stats(nodes[writer].addr, "colors")["hints_pending"] == 0
    });
    println!(
        "set answered in {:.2} s with a hung copy holder; the holder served the new value {:.2} s after it resumed",
        took.as_secs_f64(),
        served_after.as_secs_f64()
    );
}

#[test]
fn with_its_hint_lost_a_resumed_node_serves_the_old_value_no_longer_than_the_hot_max_age() {
    const MAX_AGE: Duration = Duration::from_secs(2);
    let nodes = start_servers(3, &["--hot-cache", "always", "--hot-max-age", "2s"]);
    let (owner, holder, writer) = roles(&nodes);
    let mut nodes = nodes;
    assert_eq!(get_ok(nodes[holder].addr, "/color?name=green"), "#00FF00\n");
    // The holder's copy was fetched before this instant.
    let fetched = Instant::now();

    nodes[holder].signal("STOP");
    let (status, body) = send(nodes[writer].addr, "PUT", "/color?name=green", "#111111");
    assert_eq!(status, 200, "{body}");
    nodes[writer].kill(); // with the hint it kept for the holder
    nodes[holder].signal("CONT");

    // Every read that starts past the copy's maximum age gets the new value.
    let mut reads = Vec::new();
    wait_until("the resumed node serves the new value", || {
        let at = fetched.elapsed();
        let value = get_ok(nodes[holder].addr, "/color?name=green");
        reads.push((at, value.clone()));
        value == "#111111\n"
    });
    for (at, value) in &reads {
        assert!(
            *at < MAX_AGE || value == "#111111\n",
            "{value:?} read {at:?} after the copy was fetched (maximum age {MAX_AGE:?})"
        );
    }
    let aged = group_stats(nodes[holder].addr, "colors")["hot_cache"]["aged"]
        .as_u64()
        .unwrap();
    assert_eq!(aged, 1, "the copy was dropped for its age");
    assert_eq!(get_ok(nodes[owner].addr, "/color?name=green"), "#111111\n");
    println!(
        "old value served for {:.2} s after the fetch, new from {:.2} s ({} reads)",
        reads
            .iter()
            .filter(|(_, v)| v != "#111111\n")
            .map(|(at, _)| at.as_secs_f64())
            .fold(0.0, f64::max),
        reads.last().unwrap().0.as_secs_f64(),
        reads.len()
    );
}
