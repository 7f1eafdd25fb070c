//! The front API as an application (and an attacker) sees it, with real
//! server processes: changes refused by default, clients beyond loopback
//! refused without a token, bearer tokens and their scopes, rotation on
//! SIGHUP, the front and peer ports apart, the rate limit, and the OpenAPI
//! document against the router.

mod support;

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::PathBuf;
use support::*;

/// An answer: status, head (lower-cased) and body.
struct Answer {
    status: u16,
    head: String,
    body: String,
}

/// `method target` with `token` as a bearer token, from `from` (an address
/// of this machine to connect from) if given.
fn call_from(
    from: Option<IpAddr>,
    addr: SocketAddr,
    method: &str,
    target: &str,
    token: Option<&str>,
    body: &[u8],
) -> Answer {
    let stream = match from {
        None => TcpStream::connect_timeout(&addr, WAIT).unwrap(),
        Some(ip) => connect_from(ip, addr),
    };
    exchange(stream, method, target, &addr.to_string(), token, body)
}

/// Sends one request on `stream` (`Host: host`) and reads its answer to
/// the end of the connection.
fn exchange(
    mut stream: TcpStream,
    method: &str,
    target: &str,
    host: &str,
    token: Option<&str>,
    body: &[u8],
) -> Answer {
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "{method} {target} HTTP/1.1\r\nHost: {host}\r\n{auth}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    stream.write_all(body).unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).unwrap();
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = answer.split_once("\r\n\r\n").expect("an HTTP answer");
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    Answer {
        status,
        head: head.to_ascii_lowercase(),
        body: body.to_owned(),
    }
}

/// A blocking stream to `addr` from the local address `ip`.
fn connect_from(ip: IpAddr, addr: SocketAddr) -> TcpStream {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let stream = runtime.block_on(async {
        let socket = match ip {
            IpAddr::V4(_) => tokio::net::TcpSocket::new_v4(),
            IpAddr::V6(_) => tokio::net::TcpSocket::new_v6(),
        }
        .unwrap();
        socket.bind(SocketAddr::new(ip, 0)).unwrap();
        tokio::time::timeout(WAIT, socket.connect(addr))
            .await
            .expect("connect within WAIT")
            .unwrap()
    });
    let stream = stream.into_std().unwrap();
    stream.set_nonblocking(false).unwrap();
    stream
}

fn call(addr: SocketAddr, method: &str, target: &str, token: Option<&str>) -> Answer {
    call_from(None, addr, method, target, token, b"")
}

/// A token file in the tests' scratch directory, readable by its owner only.
fn token_file(name: &str, text: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

/// One node at a free port with exactly `flags` besides its address.
fn node(flags: &[&str]) -> Proc {
    start_cluster(1, |_, addrs| {
        let mut args = vec![
            "--addr".to_owned(),
            addrs[0].to_string(),
            "--pool".to_owned(),
            format!("http://{}", addrs[0]),
        ];
        args.extend(flags.iter().map(|f| f.to_string()));
        start_tokened("node", &args, addrs[0])
    })
    .remove(0)
}

#[test]
fn changes_are_refused_by_default_and_nothing_cached_is_lost() {
    let node = node(&[]);
    let addr = node.addr;
    assert_eq!(get_ok(addr, "/color?name=red"), "#FF0000\n");
    for (method, target) in [
        ("PUT", "/color?name=red"),
        ("DELETE", "/color?name=red"),
        ("PUT", "/colors/red"),
        ("DELETE", "/colors/red"),
        ("POST", "/colors/_purge"),
        ("POST", "/colors/%5Fpurge"),
    ] {
        let answer = call_from(None, addr, method, target, None, b"#000000");
        assert_eq!(answer.status, 403, "{method} {target}: {}", answer.body);
        assert!(answer.body.contains("--front-writes"), "{}", answer.body);
    }
    // Reads still work, and the cached value is still there (no load).
    assert_eq!(get_ok(addr, "/color?name=red"), "#FF0000\n");
    assert_eq!(counter(addr, "colors", "loads"), 1);
    assert_eq!(stats(addr)["front"]["forbidden"], 6);
}

const READER: &str = "r-0123456789abcdef0123";
const WRITER: &str = "w-0123456789abcdef0123";
const OPS: &str = "a-0123456789abcdef0123";
const SCRAPER: &str = "m-0123456789abcdef0123";
const FORGED: &str = "r-0123456789abcdef0124";

#[test]
fn tokens_allow_each_scope_what_it_names_and_rotate_on_sighup() {
    let file = token_file(
        "front-tokens",
        &format!(
            "# name scopes token\nreader read {READER}\nwriter write {WRITER}\n\
             ops admin {OPS}\nprometheus metrics {SCRAPER}\n"
        ),
    );
    let file_arg = file.display().to_string();
    // Tokens on a port shared with the peer endpoint need its secret.
    let secret = token_file("front-secret", "0123456789abcdef0123456789abcdef\n");
    let secret_arg = secret.display().to_string();
    let node = node(&[
        "--front-token-file",
        &file_arg,
        "--peer-secret-file",
        &secret_arg,
    ]);
    let addr = node.addr;

    let missing = call(addr, "GET", "/color?name=red", None);
    assert_eq!(missing.status, 401, "{}", missing.body);
    assert!(missing
        .head
        .contains("www-authenticate: bearer realm=\"peercache\""));
    let forged = call(addr, "GET", "/color?name=red", Some(FORGED));
    assert_eq!(forged.status, 401);
    assert!(forged.head.contains("error=\"invalid_token\""));

    let table: [(&str, &str, [u16; 4]); 10] = [
        // method, target, [reader, writer, ops, prometheus]
        ("GET", "/color?name=red", [200, 200, 200, 403]),
        ("GET", "/colors/green", [200, 200, 200, 403]),
        ("HEAD", "/colors/green", [200, 200, 200, 403]),
        ("POST", "/colors/%5Fpurge", [403, 403, 200, 403]),
        ("POST", "/colors/_get-many", [200, 200, 200, 403]),
        ("PUT", "/color?name=red", [403, 200, 200, 403]),
        ("DELETE", "/colors/green", [403, 200, 200, 403]),
        ("POST", "/colors/_purge", [403, 403, 200, 403]),
        ("GET", "/stats", [403, 403, 200, 200]),
        ("GET", "/metrics", [403, 403, 200, 200]),
    ];
    for (method, target, expected) in table {
        for (token, want) in [READER, WRITER, OPS, SCRAPER].into_iter().zip(expected) {
            let body: &[u8] = match target {
                "/colors/_get-many" => br#"["red"]"#,
                _ => b"#010203",
            };
            let answer = call_from(None, addr, method, target, Some(token), body);
            assert_eq!(
                answer.status,
                want,
                "{method} {target} with {}: {}",
                &token[..2],
                answer.body
            );
            if want == 403 && method != "HEAD" {
                assert!(answer.body.contains("scope"), "{}", answer.body);
            }
        }
    }
    // The status page and the API's description need no token.
    assert_eq!(call(addr, "GET", "/status", None).status, 200);
    assert_eq!(call(addr, "GET", "/openapi.json", None).status, 200);

    // Rotation: the reader's token out, a new one in, on SIGHUP.
    let fresh = "r2-0123456789abcdef0123";
    std::fs::write(&file, format!("reader2 read {fresh}\nops admin {OPS}\n")).unwrap();
    node.signal("HUP");
    wait_until("the rotated token is accepted", || {
        call(addr, "GET", "/colors/red", Some(fresh)).status == 200
    });
    assert_eq!(call(addr, "GET", "/colors/red", Some(READER)).status, 401);
    // A broken file is refused; the tokens in force stay.
    std::fs::write(&file, "reader3 read short\n").unwrap();
    node.signal("HUP");
    wait_until("the broken file is logged", || {
        node.log().contains("front token file refused")
    });
    assert_eq!(call(addr, "GET", "/colors/red", Some(fresh)).status, 200);

    let front =
        &serde_json::from_str::<serde_json::Value>(&call(addr, "GET", "/stats", Some(OPS)).body)
            .unwrap()["front"];
    assert!(front["unauthorized"].as_u64().unwrap() >= 3, "{front}");
    assert!(front["forbidden"].as_u64().unwrap() >= 18, "{front}");
    // The peer endpoint beside it takes signed requests only.
    let (status, _) = get(addr, "/_groupcache/colors/red").unwrap();
    assert_eq!(status, 401);
    // No token, right or wrong, is ever written to the log.
    let log = node.log();
    for token in [READER, WRITER, OPS, SCRAPER, FORGED, fresh] {
        assert!(!log.contains(token), "the log holds a token: {log}");
    }
}

#[test]
fn the_front_and_the_peer_ports_are_apart() {
    let mut peer_ports = Vec::new();
    let nodes = start_cluster(3, |i, addrs| {
        peer_ports = addrs.to_vec();
        let front = free_addrs(1)[0];
        let mut args = server_args(addrs[i], addrs, &[]);
        args.extend(["--front-addr".to_owned(), front.to_string()]);
        start(&format!("node{i}"), &server_binary(), &args, front)
    });
    // Every colour through node 0's front port: the owners are asked on
    // their peer ports.
    for (name, value) in colors() {
        assert_eq!(
            get_ok(nodes[0].addr, &format!("/color?name={name}")),
            format!("{value}\n")
        );
    }
    let loads: Vec<u64> = nodes
        .iter()
        .map(|node| counter(node.addr, "colors", "local_loads"))
        .collect();
    assert_eq!(
        loads.iter().sum::<u64>(),
        colors().len() as u64,
        "{loads:?}"
    );
    assert!(loads.iter().filter(|n| **n > 0).count() >= 2, "{loads:?}");
    // The peer port serves the peer protocol only, and says where the
    // front is; the front port has no peer endpoint.
    let peer = peer_ports[1];
    let (status, body) = get(peer, "/color?name=red").unwrap();
    assert_eq!(status, 404);
    assert!(
        body.contains(&format!("the front API is at http://{}", nodes[1].addr)),
        "{body}"
    );
    assert_eq!(get(peer, "/stats").unwrap().0, 404);
    assert_eq!(request(peer, "PUT", "/colors/red", b"x").unwrap().0, 404);
    assert_eq!(get(peer, "/_groupcache/colors/red").unwrap().0, 200);
    let (status, body) = get(nodes[1].addr, "/_groupcache/colors/red").unwrap();
    assert_eq!(
        (status, body.as_str()),
        (404, "no such group: _groupcache\n")
    );
}

/// `GET target` on `addr` with `Host: host`.
fn get_as(addr: SocketAddr, target: &str, host: &str) -> Answer {
    let stream = TcpStream::connect_timeout(&addr, WAIT).unwrap();
    exchange(stream, "GET", target, host, None, b"")
}

#[test]
fn each_port_answers_to_its_own_names_and_marks_every_answer_nosniff() {
    // The peers beyond loopback, the front on it: a name only the local
    // network resolves (DNS rebinding by mDNS or LLMNR) passes on the peer
    // port only.
    let nodes = start_cluster(1, |_, addrs| {
        let port = addrs[0].port();
        let front = free_addrs(1)[0];
        let args: Vec<String> = [
            "--addr",
            &format!("0.0.0.0:{port}"),
            "--self",
            &format!("http://127.0.0.1:{port}"),
            "--front-addr",
            &front.to_string(),
        ]
        .map(str::to_owned)
        .to_vec();
        start_tokened("node", &args, front).map(|mut proc| {
            proc.url = format!("http://127.0.0.1:{port}");
            proc
        })
    });
    let front = nodes[0].addr;
    let peer: SocketAddr = nodes[0].url.trim_start_matches("http://").parse().unwrap();
    let on_front = get_as(front, "/color?name=red", &format!("cache:{}", front.port()));
    assert_eq!(on_front.status, 421, "{}", on_front.body);
    let on_peer = get_as(
        peer,
        "/_groupcache/colors/red",
        &format!("cache:{}", peer.port()),
    );
    assert_eq!(on_peer.status, 200, "{}", on_peer.body);
    // The peer port's fallback is behind the same checks.
    let foreign = get_as(peer, "/color?name=red", "evil.example");
    assert_eq!(foreign.status, 421, "{}", foreign.body);
    let fallback = get_as(peer, "/color?name=red", &peer.to_string());
    assert_eq!(fallback.status, 404, "{}", fallback.body);
    for answer in [&on_front, &on_peer, &foreign, &fallback] {
        assert!(
            answer.head.contains("x-content-type-options: nosniff"),
            "{}",
            answer.head
        );
    }
    // A not-found key is marked as such; a missing group is not.
    let missing = call(front, "GET", "/colors/mauve", None);
    assert_eq!(missing.status, 404);
    assert!(
        missing.head.contains("x-peercache-not-found: 1"),
        "{}",
        missing.head
    );
    let no_group = call(front, "GET", "/nosuch/mauve", None);
    assert_eq!(no_group.status, 404);
    assert!(
        !no_group.head.contains("x-peercache-not-found"),
        "{}",
        no_group.head
    );
}

/// An address of this machine other than loopback, if it has one: the
/// source address of a route to a documentation address (nothing is sent).
fn non_loopback_addr() -> Option<IpAddr> {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.connect("192.0.2.1:9").ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

#[test]
fn clients_beyond_loopback_need_a_token_or_front_open() {
    let Some(ip) = non_loopback_addr() else {
        assert!(
            !env_set("CI"),
            "this machine has no address beyond loopback to test from"
        );
        let line = "skipped the beyond-loopback front test: no address beyond loopback\n";
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
        return;
    };
    for open in [false, true] {
        let nodes = start_cluster(1, |_, addrs| {
            let port = addrs[0].port();
            let mut args = vec![
                "--addr".to_owned(),
                format!("0.0.0.0:{port}"),
                "--self".to_owned(),
                format!("http://127.0.0.1:{port}"),
            ];
            if open {
                args.push("--front-open".to_owned());
            }
            start("node", &server_binary(), &args, addrs[0])
        });
        let there = SocketAddr::new(ip, nodes[0].addr.port());
        let from_afar = call_from(Some(ip), there, "GET", "/color?name=red", None, b"");
        let from_here = call(nodes[0].addr, "GET", "/color?name=red", None);
        assert_eq!(from_here.status, 200);
        if open {
            assert_eq!(from_afar.status, 200, "{}", from_afar.body);
            assert!(nodes[0]
                .log()
                .contains("--front-open: the front API serves every client"));
        } else {
            assert_eq!(from_afar.status, 403, "{}", from_afar.body);
            assert!(
                from_afar.body.contains("--front-token-file"),
                "{}",
                from_afar.body
            );
            // The status page holds no data: open to all.
            let page = call_from(Some(ip), there, "GET", "/status", None, b"");
            assert_eq!(page.status, 200);
        }
    }
}

/// Whether the route `template` (OpenAPI path, `{key}` taking the rest)
/// matches `path`.
fn matches(template: &str, path: &str) -> bool {
    let mut want = template.split('/');
    let mut got = path.split('/');
    loop {
        match (want.next(), got.next()) {
            (None, None) => return true,
            (Some("{key}"), Some(segment)) => return !segment.is_empty(),
            (Some(w), Some(g)) if w.starts_with('{') && !g.is_empty() => {}
            (Some(w), Some(g)) if w == g => {}
            _ => return false,
        }
    }
}

#[test]
fn the_openapi_document_matches_the_router() {
    let file =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json")).unwrap();
    let doc: serde_json::Value = serde_json::from_str(&file).unwrap();
    let paths = doc["paths"].as_object().unwrap();
    let nodes = start_cluster(1, |_, addrs| {
        let front = free_addrs(1)[0];
        let mut args = server_args(addrs[0], addrs, &[]);
        args.extend(["--front-addr".to_owned(), front.to_string()]);
        start("node", &server_binary(), &args, front)
    });
    let front = nodes[0].addr;
    // The node serves the document kept in the repository.
    let served = get_ok(front, "/openapi.json");
    assert_eq!(served, file);

    let sample = |template: &str| {
        template
            .replace("{group}", "colors")
            .replace("{key}", "red")
    };
    let mut probes: Vec<String> = paths.keys().map(|t| sample(t)).collect();
    // Paths the document's templates do not all cover.
    probes.extend([
        "/nope".to_owned(),
        "/color/x".to_owned(),
        "/stats/x".to_owned(),
    ]);
    for path in probes {
        let documented: Vec<String> = paths
            .iter()
            .filter(|(template, _)| matches(template, &path))
            .flat_map(|(_, item)| item.as_object().unwrap().keys().cloned())
            .collect();
        for method in ["GET", "PUT", "DELETE", "POST", "PATCH"] {
            let target = match path.as_str() {
                "/color" => "/color?name=red".to_owned(),
                _ => path.clone(),
            };
            let body: &[u8] = if path.ends_with("_get-many") {
                br#"["red"]"#
            } else {
                b"#010203"
            };
            let answer = call_from(None, front, method, &target, None, body);
            let no_route = (answer.status == 404 && answer.body.starts_with("no route for"))
                || answer.status == 405;
            let listed = documented.contains(&method.to_ascii_lowercase());
            assert_eq!(
                !no_route,
                listed,
                "{method} {target}: the router answers {} {:?}; the document {} it",
                answer.status,
                answer.body,
                if listed { "lists" } else { "does not list" }
            );
        }
    }
}

#[test]
fn a_token_file_others_can_read_is_warned_about() {
    use std::os::unix::fs::PermissionsExt;
    let tokens = token_file("front-tokens-open", &format!("reader read {READER}\n"));
    std::fs::set_permissions(&tokens, std::fs::Permissions::from_mode(0o644)).unwrap();
    let secret = token_file("front-secret-closed", "0123456789abcdef0123456789abcdef\n");
    let (tokens, secret) = (tokens.display().to_string(), secret.display().to_string());
    let node = node(&["--front-token-file", &tokens, "--peer-secret-file", &secret]);
    let log = node.log();
    assert!(
        log.contains("the front token file is readable by other users: chmod 600 it"),
        "{log}"
    );
    assert!(!log.contains("the peer secret file is readable"), "{log}");
    assert_eq!(
        call(node.addr, "GET", "/colors/red", Some(READER)).status,
        200
    );
}

#[test]
fn tokens_beside_an_open_peer_endpoint_are_refused_at_start() {
    let file = token_file("front-tokens-alone", &format!("reader read {READER}\n"));
    let (code, out) = run_to_exit(
        &server_binary(),
        &[
            "--addr",
            "127.0.0.1:0",
            "--front-token-file",
            &file.display().to_string(),
        ],
    );
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("the peer endpoint on the same port answers anyone")
            && out.contains("--front-addr")
            && out.contains("--peer-secret-file"),
        "{out}"
    );
    assert!(!out.contains(READER), "{out}");
}

#[test]
fn a_burst_over_the_rate_limit_gets_429_with_retry_after() {
    // One request in 1000 s after a burst of 20 (the start-up's polls of
    // /status took some): no refill during the test.
    let node = node(&["--front-rate-limit", "0.001", "--front-rate-burst", "20"]);
    let addr = node.addr;
    let statuses: Vec<u16> = (0..30)
        .map(|_| call(addr, "GET", "/color?name=red", None).status)
        .collect();
    let served = statuses.iter().take_while(|s| **s == 200).count();
    assert!((1..20).contains(&served), "{statuses:?}");
    assert!(statuses[served..].iter().all(|s| *s == 429), "{statuses:?}");
    let refused = call(addr, "GET", "/color?name=red", None);
    assert_eq!(refused.status, 429);
    let retry: u64 = refused
        .head
        .lines()
        .find_map(|line| line.strip_prefix("retry-after: "))
        .expect("a Retry-After header")
        .parse()
        .unwrap();
    assert!((900..=1000).contains(&retry), "{}", refused.head);
    assert!(refused.body.contains("--front-rate-limit"));
    // Another loopback address is another client, with its own burst.
    let other = Some("127.0.0.2".parse().unwrap());
    let answer = call_from(other, addr, "GET", "/stats", None, b"");
    assert_eq!(answer.status, 200, "{}", answer.body);
    let stats: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
    let limited = stats["front"]["rate_limited"].as_u64().unwrap();
    assert_eq!(limited, 30 - served as u64 + 1);
}
