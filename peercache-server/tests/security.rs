//! What a client, a peer or a browser page could make a node do, each
//! tried against a real `peercache-server` process on loopback (SECURITY.md
//! lists the limits these check):
//!
//! - a remove-keys list of millions of keys (capped, 413);
//! - a peer answering a body of 1.5 GiB (read up to the limit, dropped,
//!   counted as the peer's failure; the key is loaded here);
//! - stalled uploads holding memory (one body budget for the node, 503);
//!   the front API's own, lower body limit;
//! - cross-site requests and DNS rebinding (403, 421), `nosniff`;
//! - a `ttl` so large that adding it to the clock overflows (400, no panic);
//! - keys that would forge log lines (escaped);
//! - half an HTTP/2 preface on many connections (no CPU spent waiting).

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::*;

/// One exchange on a fresh connection: status, head and body.
fn exchange(addr: SocketAddr, head: &str, body: &[u8]) -> (u16, String, String) {
    let mut stream = TcpStream::connect_timeout(&addr, WAIT).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream.write_all(head.as_bytes()).unwrap();
    // A refusal may come (and the connection close) before the body is read.
    let _ = stream.write_all(body);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no answer: {text:?}"));
    (status, head.to_ascii_lowercase(), body.to_owned())
}

fn put_head(addr: SocketAddr, target: &str, length: usize) -> String {
    format!(
        "PUT {target} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n"
    )
}

#[test]
fn remove_keys_lists_are_capped() {
    let nodes = start_servers(1, &["--echo-group"]);
    let addr = nodes[0].addr;
    let target = "/_groupcache/echo/_remove-keys/";
    let list = |n: usize| {
        let keys = vec!["\"\""; n].join(",");
        format!("{{\"group\":\"echo\",\"keys\":[{keys}]}}").into_bytes()
    };
    // The default cap, 10,000 keys: taken; one more: refused, naming it.
    let (status, _) = request(addr, "POST", target, &list(10_000)).unwrap();
    assert_eq!(status, 200);
    let (status, body) = request(addr, "POST", target, &list(10_001)).unwrap();
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("max remove keys"), "{body}");
    // Millions of empty keys (about 4 MiB): refused as fast, the node well.
    let started = Instant::now();
    let (status, _) = request(addr, "POST", target, &list(1_000_000)).unwrap();
    assert_eq!(status, 413);
    println!("1,000,000 keys refused in {:?}", started.elapsed());
    assert_eq!(get_ok(addr, "/echo/still-here"), "still-here");
}

/// A peer that answers every request with a 200 whose body claims 1.5 GiB
/// and streams zeros until the asker hangs up (at most 2 GiB or 60 s).
fn huge_peer() -> (SocketAddr, Arc<AtomicBool>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let stopping = Arc::clone(&stop);
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let started = Instant::now();
        while !stopping.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(60) {
            let Ok((mut stream, _)) = listener.accept() else {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            };
            std::thread::spawn(move || {
                stream.set_nonblocking(false).unwrap();
                stream.set_write_timeout(Some(WAIT)).unwrap();
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap_or(0) == 1 {
                    head.push(byte[0]);
                }
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 1610612736\r\n\r\n",
                );
                let chunk = vec![0u8; 64 << 10];
                for _ in 0..(2usize << 30) / chunk.len() {
                    if stream.write_all(&chunk).is_err() {
                        break;
                    }
                }
            });
        }
    });
    (addr, stop)
}

/// A node serving group `echo` in a cluster of itself and `other` (a
/// member this test plays or leaves dead), with `extra` flags.
fn node_beside(other: &str, extra: &[&str]) -> Proc {
    start_cluster(1, |_, addrs| {
        let pool = format!("http://{},{other}", addrs[0]);
        let mut args: Vec<String> = ["--addr", &addrs[0].to_string(), "--pool", &pool]
            .iter()
            .map(|s| s.to_string())
            .collect();
        args.push("--echo-group".to_owned());
        args.extend(extra.iter().map(|s| s.to_string()));
        start("node", &server_binary(), &args, addrs[0])
    })
    .remove(0)
}

#[test]
fn an_oversized_peer_answer_is_dropped_and_counted_as_a_failure() {
    let (fake, stop) = huge_peer();
    let fake_url = format!("http://{fake}");
    let node = node_beside(
        &fake_url,
        &[
            "--max-body-bytes",
            "1MiB",
            "--max-front-body-bytes",
            "256KiB",
            "--peer-timeout",
            "10s",
        ],
    );
    let rss_before = node.rss_bytes().unwrap();
    // About half of these keys are the fake peer's: each still gets its
    // value, loaded here once the peer's answer is refused.
    for i in 0..16 {
        assert_eq!(get_ok(node.addr, &format!("/echo/k{i}")), format!("k{i}"));
    }
    let rss_after = node.rss_bytes().unwrap();
    stop.store(true, Ordering::Relaxed);
    let stats = stats(node.addr);
    let peer = stats["peers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["url"] == fake_url.as_str() || p["peer"] == fake_url.as_str())
        .unwrap_or_else(|| panic!("no {fake_url} in {stats}"))
        .clone();
    assert!(peer["failures"].as_u64().unwrap() >= 1, "{peer}");
    let last = peer["last_error"].as_str().unwrap_or_default();
    assert!(last.contains("over 1048576 bytes"), "{peer}");
    println!(
        "RSS {:.1} MiB before, {:.1} MiB after",
        rss_before as f64 / 1048576.0,
        rss_after as f64 / 1048576.0
    );
    assert!(
        rss_after < rss_before + (64 << 20),
        "RSS grew from {rss_before} to {rss_after}"
    );
}

#[test]
fn request_bodies_share_one_budget_and_the_front_has_its_own_limit() {
    let nodes = start_servers(
        1,
        &[
            "--echo-group",
            "--max-body-bytes-in-flight",
            "1MiB",
            "--body-read-timeout",
            "30s",
        ],
    );
    let addr = nodes[0].addr;
    // Announcing a length holds nothing: a request that sends only its
    // head cannot take the budget from others.
    let mut liar = TcpStream::connect(addr).unwrap();
    liar.write_all(put_head(addr, "/echo/liar", 1 << 20).as_bytes())
        .unwrap();
    // Two uploads that announce 500 KiB each and stall after 400 KiB: the
    // bytes that arrived are held.
    let stalled: Vec<TcpStream> = (0..2)
        .map(|i| {
            let mut stream = TcpStream::connect(addr).unwrap();
            stream
                .write_all(put_head(addr, &format!("/echo/stalled-{i}"), 500 << 10).as_bytes())
                .unwrap();
            stream.write_all(&[b'x'; 400 << 10]).unwrap();
            stream
        })
        .collect();
    wait_until("the stalled uploads hold the budget", || {
        stats(addr)["limits"]["body_bytes_in_flight"] == 800 << 10
    });
    // A third does not fit in what is left: refused on its head alone.
    let body = vec![b'v'; 400 << 10];
    let (status, head, text) = exchange(addr, &put_head(addr, "/echo/third", body.len()), b"");
    assert_eq!(status, 503, "{text}");
    assert!(head.contains("retry-after"), "{head}");
    assert!(text.contains("max body bytes in flight"), "{text}");
    // A body without a length counts as it arrives.
    let chunked = format!(
        "PUT /echo/chunked HTTP/1.1\r\nHost: {addr}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    let mut chunks = Vec::new();
    for _ in 0..8 {
        chunks.extend_from_slice(format!("{:x}\r\n", 64 << 10).as_bytes());
        chunks.extend_from_slice(&[b'c'; 64 << 10]);
        chunks.extend_from_slice(b"\r\n");
    }
    chunks.extend_from_slice(b"0\r\n\r\n");
    let (status, _, text) = exchange(addr, &chunked, &chunks);
    assert_eq!(status, 503, "{text}");
    assert!(text.contains("--max-body-bytes-in-flight"), "{text}");
    // The stalled uploads gone, their bytes are given back.
    drop(stalled);
    drop(liar);
    wait_until("the budget is given back", || {
        exchange(addr, &put_head(addr, "/echo/third", body.len()), &body).0 == 200
    });
    let limits = &stats(addr)["limits"];
    assert!(limits["body_budget"].as_u64().unwrap() >= 2, "{limits}");
    assert_eq!(limits["body_bytes_in_flight"], 0, "{limits}");
    // The front API's own limit: 8 MiB by default, named in the refusal
    // (on a node with the default budget, which such a body fits).
    let nodes = start_servers(1, &["--echo-group"]);
    let addr = nodes[0].addr;
    let big = vec![b'b'; (8 << 20) + 1];
    let (status, _, text) = exchange(addr, &put_head(addr, "/echo/big", big.len()), &big);
    assert_eq!(status, 413, "{text}");
    assert!(text.contains("--max-front-body-bytes"), "{text}");
}

#[test]
fn pages_of_other_sites_and_rebound_names_are_refused() {
    let nodes = start_servers(1, &["--echo-group"]);
    let addr = nodes[0].addr;
    assert_eq!(get_ok(addr, "/echo/kept"), "kept");
    let loads = counter(addr, "echo", "loads");
    // A simple cross-site POST (no preflight in a browser).
    let purge = |headers: &str| {
        exchange(
            addr,
            &format!(
                "POST /echo/_purge HTTP/1.1\r\nHost: localhost:{}\r\n{headers}Content-Type: text/plain\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                addr.port()
            ),
            b"",
        )
    };
    let (status, head, text) = purge("Origin: https://evil.example\r\n");
    assert_eq!(status, 403, "{text}");
    assert!(text.contains("cross-origin"), "{text}");
    assert!(head.contains("x-content-type-options: nosniff"), "{head}");
    let (status, _, text) = purge("Sec-Fetch-Site: cross-site\r\n");
    assert_eq!(status, 403, "{text}");
    // Not purged: the cached key loads nothing.
    assert_eq!(get_ok(addr, "/echo/kept"), "kept");
    assert_eq!(counter(addr, "echo", "loads"), loads);
    // After DNS rebinding, a page's requests name the attacker's host.
    let (status, _, text) = exchange(
        addr,
        "GET /echo/kept HTTP/1.1\r\nHost: rebind.evil.example\r\nConnection: close\r\n\r\n",
        b"",
    );
    assert_eq!(status, 421, "{text}");
    assert!(text.contains("--allowed-hosts"), "{text}");
    // The node's own page, and names of its own, are answered.
    let (status, head, _) = purge(&format!("Origin: http://localhost:{}\r\n", addr.port()));
    assert_eq!(status, 200);
    assert!(head.contains("x-content-type-options: nosniff"), "{head}");
    let with_host = |host: &str| {
        exchange(
            addr,
            &format!("GET /echo/k HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
            b"",
        )
    };
    for host in ["localhost", "app.localhost", "127.0.0.1", "[::1]:1"] {
        let (status, _, text) = with_host(host);
        assert_eq!(status, 200, "Host {host}: {text}");
    }
    // Names the local network resolves (mDNS, LLMNR) could rebind a page
    // to a node on loopback: refused there.
    for host in ["cache", "printer.local"] {
        let (status, _, text) = with_host(host);
        assert_eq!(status, 421, "Host {host}: {text}");
    }
}

#[test]
fn a_ttl_past_the_clock_is_a_bad_request_not_a_panic() {
    let nodes = start_servers(1, &["--echo-group"]);
    let node = &nodes[0];
    let (status, body) =
        request(node.addr, "PUT", "/echo/k?ttl=18000000000000000000s", b"v").unwrap();
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("ttl") && body.contains("too long"), "{body}");
    // The longest ttl taken (100 years) works.
    let (status, body) = request(node.addr, "PUT", "/echo/k?ttl=3153600000s", b"v").unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(get_ok(node.addr, "/echo/k"), "v");
    assert!(!node.log().contains("panicked"), "{}", node.log());
}

#[test]
fn keys_cannot_forge_log_lines() {
    // The second member is a port nobody listens on: fetching its keys
    // fails, which logs the key at the default level. Without peeks: a
    // node that starts peeks the keys it owns at the other member, and
    // those refused peeks would take it out of the ring before any of its
    // keys was fetched (and logged).
    let dead = free_addrs(1)[0];
    let node = node_beside(&format!("http://{dead}"), &["--peek-window", "0"]);
    for i in 0..12 {
        let target = format!("/echo/k{i}%0AFORGED%20ERROR%20line%0D%1B[2J");
        let (status, _) = get(node.addr, &target).unwrap();
        assert_eq!(status, 200);
    }
    let log = node.log();
    assert!(
        log.contains("\\nFORGED ERROR line"),
        "no key logged:\n{log}"
    );
    for line in log.lines() {
        assert!(!line.starts_with("FORGED"), "forged line in:\n{log}");
        assert!(!line.contains('\u{1b}'), "escape sequence in:\n{log}");
    }
}

/// CPU time (user + system) of a process so far, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The fields after the command (which may hold spaces) in parentheses.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// Ticks per second of `/proc/PID/stat` (USER_HZ, 100 on Linux).
const TICKS: u64 = 100;

#[test]
fn half_http2_prefaces_cost_no_cpu() {
    let nodes = start_servers(1, &["--header-read-timeout", "60s"]);
    let node = &nodes[0];
    let pid = node.pid().unwrap();
    let half = &b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"[..16];
    let mut conns: Vec<TcpStream> = (0..400)
        .map(|_| {
            let mut stream = TcpStream::connect(node.addr).unwrap();
            stream.write_all(half).unwrap();
            stream
        })
        .collect();
    // CPU spent over a 2 s window while they wait (this measures a
    // window; there is no condition to poll).
    let window = |what: &str| {
        let (ticks, started) = (cpu_ticks(pid), Instant::now());
        std::thread::sleep(Duration::from_secs(2));
        let used = (cpu_ticks(pid) - ticks) as f64 / TICKS as f64;
        let share = used / started.elapsed().as_secs_f64();
        println!("{what}: {:.0} % of a core", share * 100.0);
        share
    };
    let open = window("400 half prefaces open");
    assert_eq!(get_ok(node.addr, "/color?name=red"), "#FF0000\n");
    conns.clear();
    let closed = window("after they closed");
    assert!(
        open < 0.15,
        "{:.0} % of a core spent on idle connections",
        open * 100.0
    );
    assert!(
        closed < 0.15,
        "{:.0} % of a core spent after they closed",
        closed * 100.0
    );
}
