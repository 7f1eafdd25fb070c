//! The life of a cluster, with real `peercache-server` processes on
//! 127.0.0.1: keys set, removed, expired and purged through the front API;
//! nodes joining and leaving through a peers file; a node killed and
//! restarted; a node hung with SIGSTOP and resumed.

mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};
use support::*;

/// The state (`self`, `up`, `down`) of `peer` in `at`'s `/stats`.
fn peer_state(at: SocketAddr, peer: &str) -> String {
    stats(at)["peers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["peer"] == peer)
        .map(|p| p["state"].as_str().unwrap().to_owned())
        .unwrap_or_else(|| "absent".to_owned())
}

fn send(addr: SocketAddr, method: &str, target: &str, body: &str) -> (u16, String) {
    request(addr, method, target, body.as_bytes())
        .unwrap_or_else(|e| panic!("{method} {target} on {addr}: {e}"))
}

#[test]
fn set_remove_and_purge_reach_every_node() {
    let nodes = start_servers(3, &["--hot-cache", "always"]);
    let owner = owner_index(&nodes, "red");
    let other = (owner + 1) % 3;
    // Every node holds red: the owner in main, the others in hot.
    for node in &nodes {
        assert_eq!(get_ok(node.addr, "/color?name=red"), "#FF0000\n");
    }
    for (i, node) in nodes.iter().enumerate() {
        let kind = if i == owner {
            "main_cache"
        } else {
            "hot_cache"
        };
        assert_eq!(group_stats(node.addr, "colors")[kind]["items"], 1);
    }

    // A set from a non-owner: every node serves the new value at once, the
    // hot copies included (mailgun leaves them stale).
    let (status, body) = send(nodes[other].addr, "PUT", "/color?name=red", "#123456");
    assert_eq!(status, 200, "{body}");
    for node in &nodes {
        assert_eq!(get_ok(node.addr, "/color?name=red"), "#123456\n");
    }
    assert_eq!(counter(nodes[owner].addr, "colors", "local_loads"), 1);

    // A remove: every node loads the colour again, from its owner, once.
    let (status, body) = send(nodes[other].addr, "DELETE", "/color?name=red", "");
    assert_eq!(status, 200, "{body}");
    for node in &nodes {
        assert_eq!(get_ok(node.addr, "/color?name=red"), "#FF0000\n");
    }
    let loads: u64 = nodes
        .iter()
        .map(|n| counter(n.addr, "colors", "local_loads"))
        .sum();
    assert_eq!(loads, 2, "red loaded once before and once after the remove");

    // Any group, any key: PUT and DELETE on /<group>/<key>.
    let (status, _) = send(nodes[0].addr, "PUT", "/colors/ultraviolet", "#7F00FF");
    assert_eq!(status, 200);
    assert_eq!(get_ok(nodes[2].addr, "/colors/ultraviolet"), "#7F00FF");

    // A purge empties every node.
    let (status, body) = send(nodes[1].addr, "POST", "/colors/_purge", "");
    assert_eq!(status, 200, "{body}");
    for node in &nodes {
        let colors = group_stats(node.addr, "colors");
        assert_eq!(colors["main_cache"]["items"], 0, "{colors}");
        assert_eq!(colors["hot_cache"]["items"], 0, "{colors}");
    }
    let (status, body) = get(nodes[0].addr, "/colors/ultraviolet").unwrap();
    assert_eq!(status, 404, "a set value is gone after a purge: {body}");

    // Bad requests get a clear answer.
    let (status, body) = send(nodes[0].addr, "PUT", "/color?name=red&ttl=soon", "#000001");
    assert_eq!(status, 400);
    assert!(body.contains("bad ttl"), "{body}");
    let (status, _) = send(nodes[0].addr, "DELETE", "/color", "");
    assert_eq!(status, 400);
}

#[test]
fn values_expire_on_the_owner_and_in_hot_copies() {
    let nodes = start_servers(2, &["--hot-cache", "always"]);
    let owner = owner_index(&nodes, "navy");
    let other = 1 - owner;
    // A set with a one-second life, read through the other node (hot copy).
    let (status, body) = send(
        nodes[owner].addr,
        "PUT",
        "/color?name=navy&ttl=1s",
        "#111111",
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(get_ok(nodes[other].addr, "/color?name=navy"), "#111111\n");
    assert_eq!(
        group_stats(nodes[other].addr, "colors")["hot_cache"]["items"],
        1
    );
    // Once the second is over, both nodes serve the loader's value again.
    wait_until("navy expires", || {
        get_ok(nodes[other].addr, "/color?name=navy") == "#000080\n"
    });
    assert_eq!(get_ok(nodes[owner].addr, "/color?name=navy"), "#000080\n");
    assert_eq!(counter(nodes[owner].addr, "colors", "local_loads"), 1);
}

#[test]
fn a_group_ttl_reloads_keys_after_it_passes() {
    let nodes = start_servers(1, &["--ttl", "500ms"]);
    let addr = nodes[0].addr;
    assert_eq!(get_ok(addr, "/color?name=red"), "#FF0000\n");
    assert_eq!(counter(addr, "colors", "local_loads"), 1);
    wait_until("red reloads after its TTL", || {
        get_ok(addr, "/color?name=red");
        counter(addr, "colors", "local_loads") == 2
    });
    // The sweeper drops expired entries without a get touching them.
    wait_until("the expired entry is reclaimed", || {
        let main = &group_stats(addr, "colors")["main_cache"];
        main["items"] == 0 && main["expired"].as_u64().unwrap() >= 1
    });
}

#[test]
fn nodes_join_and_leave_through_a_peers_file() {
    let file = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("peers-{}.txt", std::process::id()));
    let addrs = free_addrs(3);
    let url = |i: usize| format!("http://{}", addrs[i]);
    std::fs::write(&file, format!("# the cluster\n{}\n{}\n", url(0), url(1))).unwrap();
    let args = |i: usize| {
        vec![
            "--addr".to_owned(),
            addrs[i].to_string(),
            "--peers-file".to_owned(),
            file.display().to_string(),
            "--discovery-interval".to_owned(),
            "100ms".to_owned(),
            "--hot-cache".to_owned(),
            "never".to_owned(),
        ]
    };
    let start_node = |i: usize| {
        start(&format!("node{i}"), &server_binary(), &args(i), addrs[i])
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let members = |at: SocketAddr| stats(at)["peers"].as_array().unwrap().len();
    let mut nodes = vec![start_node(0), start_node(1)];
    assert_eq!(members(addrs[0]), 2);

    // Join: node 2 is added to the file and started.
    std::fs::write(&file, format!("{}\n{}\n{}\n", url(0), url(1), url(2))).unwrap();
    nodes.push(start_node(2));
    wait_until("every node sees three members", || {
        addrs.iter().all(|a| members(*a) == 3)
    });
    let colors = colors();
    for node in &nodes {
        for (name, hex) in &colors {
            assert_eq!(
                get_ok(node.addr, &format!("/color?name={name}")),
                format!("{hex}\n")
            );
        }
    }
    let loads: u64 = nodes
        .iter()
        .map(|n| counter(n.addr, "colors", "local_loads"))
        .sum();
    assert_eq!(
        loads,
        colors.len() as u64,
        "each colour loaded once in the cluster"
    );

    // Leave: node 1 is taken out of the file, then stopped. The others stop
    // routing to it before it goes, so no request fails or waits.
    std::fs::write(&file, format!("{}\n{}\n", url(0), url(2))).unwrap();
    wait_until("nodes 0 and 2 see two members", || {
        members(addrs[0]) == 2 && members(addrs[2]) == 2
    });
    nodes[1].terminate();
    for node in [&nodes[0], &nodes[2]] {
        for (name, hex) in &colors {
            assert_eq!(
                get_ok(node.addr, &format!("/color?name={name}")),
                format!("{hex}\n")
            );
        }
        assert_eq!(counter(node.addr, "colors", "peer_errors"), 0);
    }
    let _ = std::fs::remove_file(&file);
}

/// Clients asking `at` for fresh `echo` keys until `stop`: each key is new, so
/// every request needs its owner. Returns (requests, failures, slowest).
fn stream(
    at: SocketAddr,
    stop: Arc<AtomicBool>,
    tag: &'static str,
) -> mpsc::Receiver<(u64, Vec<String>, Duration)> {
    let (done, results) = mpsc::channel();
    let sent = Arc::new(AtomicU64::new(0));
    for worker in 0..4 {
        let (stop, done, sent) = (stop.clone(), done.clone(), sent.clone());
        std::thread::spawn(move || {
            let (mut count, mut failures, mut slowest) = (0, Vec::new(), Duration::ZERO);
            while !stop.load(Ordering::Relaxed) {
                let n = sent.fetch_add(1, Ordering::Relaxed);
                let key = format!("{tag}-{worker}-{n}");
                let began = Instant::now();
                match get(at, &format!("/echo/{key}")) {
                    Ok((200, body)) if body == key => {}
                    other => failures.push(format!("{key}: {other:?}")),
                }
                slowest = slowest.max(began.elapsed());
                count += 1;
            }
            let _ = done.send((count, failures, slowest));
        });
    }
    results
}

fn finish(
    stop: &AtomicBool,
    results: mpsc::Receiver<(u64, Vec<String>, Duration)>,
) -> (u64, Vec<String>, Duration) {
    stop.store(true, Ordering::Relaxed);
    let mut total = (0, Vec::new(), Duration::ZERO);
    for _ in 0..4 {
        let (count, failures, slowest) = results.recv_timeout(WAIT).expect("a client hung");
        total.0 += count;
        total.1.extend(failures);
        total.2 = total.2.max(slowest);
    }
    total
}

/// Flags of the kill and hang tests: the echo group (fresh keys), a peer out
/// after 2 failures, a 1 s peer timeout.
const EXTRA: [&str; 5] = [
    "--echo-group",
    "--failures-to-down",
    "2",
    "--peer-timeout",
    "1s",
];

/// Panics listing the first failed requests, if any failed.
fn assert_no_failures(count: u64, failures: &[String]) {
    assert!(
        failures.is_empty(),
        "{} of {count} requests failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
}

#[test]
fn a_killed_node_leaves_the_ring_and_rejoins_when_restarted() {
    let mut nodes = start_servers(3, &EXTRA);
    let (watcher, victim) = (nodes[0].addr, nodes[2].url.clone());
    let stop = Arc::new(AtomicBool::new(false));
    let results = stream(watcher, stop.clone(), "kill");
    wait_until("the stream reaches node 2", || {
        counter(nodes[2].addr, "echo", "server_requests") > 20
    });

    nodes[2].kill();
    wait_until("node 2 is out of node 0's ring", || {
        peer_state(watcher, &victim) == "down"
    });
    // While it is out, requests no longer try it: once the requests that were
    // in flight when it went down are done, peer errors stop growing.
    let requests = counter(watcher, "echo", "gets");
    wait_until("requests in flight finish", || {
        counter(watcher, "echo", "gets") > requests + 50
    });
    let errors = counter(watcher, "echo", "peer_errors");
    let requests = counter(watcher, "echo", "gets");
    wait_until("more requests are served", || {
        counter(watcher, "echo", "gets") > requests + 100
    });
    assert_eq!(counter(watcher, "echo", "peer_errors"), errors);

    // Restarted on the same address, it is probed back into the ring.
    let args = server_args(
        nodes[2].addr,
        &[nodes[0].addr, nodes[1].addr, nodes[2].addr],
        &EXTRA,
    );
    nodes[2] = start("node2-again", &server_binary(), &args, nodes[2].addr).unwrap();
    wait_until("node 2 is back in node 0's ring", || {
        peer_state(watcher, &victim) == "up"
    });
    wait_until("the stream reaches node 2 again", || {
        counter(nodes[2].addr, "echo", "server_requests") > 20
    });

    let (count, failures, _) = finish(&stop, results);
    assert_no_failures(count, &failures);
}

#[test]
fn a_hung_node_costs_one_timeout_then_is_bypassed_until_it_resumes() {
    let timeout = Duration::from_secs(1);
    let nodes = start_servers(3, &EXTRA);
    let (watcher, victim) = (nodes[0].addr, nodes[2].url.clone());
    let stop = Arc::new(AtomicBool::new(false));
    let results = stream(watcher, stop.clone(), "hang");
    wait_until("the stream reaches node 2", || {
        counter(nodes[2].addr, "echo", "server_requests") > 20
    });

    // SIGSTOP: node 2 still accepts connections (the kernel does) but never
    // answers.
    nodes[2].signal("STOP");
    wait_until("node 2 is out of node 0's ring", || {
        peer_state(watcher, &victim) == "down"
    });
    let requests = counter(watcher, "echo", "gets");
    wait_until("requests flow around it", || {
        counter(watcher, "echo", "gets") > requests + 100
    });

    nodes[2].signal("CONT");
    wait_until("node 2 is back in node 0's ring", || {
        peer_state(watcher, &victim) == "up"
    });
    let served = counter(nodes[2].addr, "echo", "server_requests");
    wait_until("the stream reaches node 2 again", || {
        counter(nodes[2].addr, "echo", "server_requests") > served + 20
    });

    let (count, failures, slowest) = finish(&stop, results);
    assert_no_failures(count, &failures);
    // The echo loader is instant: no request waited much longer than one
    // peer timeout (the slack covers a loaded 2-core machine).
    assert!(
        slowest < timeout + Duration::from_secs(2),
        "a request took {slowest:?} with a {timeout:?} peer timeout"
    );
}

#[test]
fn dns_discovery_finds_this_node_by_name() {
    let nodes = start_cluster(1, |_, addrs| {
        let port = addrs[0].port().to_string();
        let args: Vec<String> = [
            "--addr",
            &addrs[0].to_string(),
            "--peers-dns",
            &format!("localhost:{port}"),
            "--discovery-interval",
            "100ms",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        start("dns", &server_binary(), &args, addrs[0])
    });
    let stats = stats(nodes[0].addr);
    let peers = stats["peers"].as_array().unwrap();
    // localhost is 127.0.0.1 (this node) and possibly ::1 (nobody listens
    // there: it goes down, which is the health check at work).
    assert!(
        peers
            .iter()
            .any(|p| p["peer"] == nodes[0].url.as_str() && p["state"] == "self"),
        "{stats}"
    );
    for peer in peers {
        let url = peer["peer"].as_str().unwrap();
        assert!(
            url == nodes[0].url || url.starts_with("http://[::1]:"),
            "{url}"
        );
    }
    assert_eq!(get_ok(nodes[0].addr, "/color?name=red"), "#FF0000\n");

    let (code, output) = run_to_exit(
        &server_binary(),
        &["--addr", "127.0.0.1:0", "--peers-dns", "no-port-here"],
    );
    assert_eq!(code, Some(1));
    assert!(
        output.contains("--peers-dns") && output.contains("NAME:PORT"),
        "{output}"
    );
}
