//! `POST /<group>/_get-many` on a live three-node cluster: one front
//! request for many keys answers a JSON object naming each key once (found,
//! not found, non-UTF-8 values in base64, expiries), the keys owned by the
//! other nodes are asked of them in peer batches, and malformed, oversized
//! or misdirected requests are refused with a clear reason while the
//! cache keeps what it held.

mod support;

use peercache::ring::{HashMode, Ring};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{SystemTime, UNIX_EPOCH};
use support::*;

/// `POST target` with `body`: status, head (lower case) and body of the
/// answer. A server that answers before reading the whole body (413) may
/// reset the connection: what arrived before counts.
fn post(addr: SocketAddr, target: &str, body: &[u8]) -> (u16, String, String) {
    let mut stream = TcpStream::connect_timeout(&addr, WAIT).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream.set_write_timeout(Some(WAIT)).unwrap();
    write!(
        stream,
        "POST {target} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    let _ = stream.write_all(body);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let answer = String::from_utf8(answer).unwrap();
    let (head, body) = answer
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("POST {target}: no answer: {answer:?}"));
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, head.to_ascii_lowercase(), body.to_owned())
}

/// `POST /<group>/_get-many` with `keys`, which must answer 200 JSON: the
/// answer's text (to check the order of its members) and its value.
fn get_many(addr: SocketAddr, group: &str, keys: &[&str]) -> (String, serde_json::Value) {
    let body = serde_json::to_vec(keys).unwrap();
    let (status, head, text) = post(addr, &format!("/{group}/_get-many"), &body);
    assert_eq!(status, 200, "{text}");
    assert!(head.contains("content-type: application/json"), "{head}");
    let json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    (text, json)
}

/// `POST target` with `body`, which must be refused with `status`: the
/// plain-text reason.
fn refused(addr: SocketAddr, target: &str, body: &[u8], status: u16) -> String {
    let (got, head, text) = post(addr, target, body);
    assert_eq!(got, status, "{text}");
    assert!(head.contains("content-type: text/plain"), "{head}");
    text
}

#[test]
fn one_request_reads_many_keys_through_peer_batches() {
    let nodes = start_servers(3, &[]);
    let colors = colors();
    let urls: Vec<String> = nodes.iter().map(|n| n.url.clone()).collect();
    let ring = Ring::with_peers(HashMode::Golang, 50, &urls).unwrap();

    // Every colour, an unknown one, and a repeat.
    let mut keys: Vec<&str> = colors.iter().map(|(name, _)| name.as_str()).collect();
    keys.insert(1, "mauve");
    keys.push(&colors[0].0);
    let (text, answer) = get_many(nodes[0].addr, "colors", &keys);
    let members = answer.as_object().unwrap();
    assert_eq!(members.len(), colors.len() + 1, "{text}");
    for (name, hex) in &colors {
        assert_eq!(answer[name], serde_json::json!({ "value": hex }), "{name}");
    }
    assert_eq!(
        answer["mauve"],
        serde_json::json!({"error": "not found", "status": 404})
    );
    // Members in the order asked, each once.
    let at: Vec<usize> = keys[..keys.len() - 1]
        .iter()
        .map(|key| text.find(&format!("\"{key}\":{{")).unwrap())
        .collect();
    assert!(at.is_sorted(), "{text}");
    assert_eq!(text.matches(&format!("\"{}\":{{", colors[0].0)).count(), 1);

    // Each other node was asked for its keys in batches, not key by key.
    for node in &nodes[1..] {
        let owned = colors
            .iter()
            .filter(|(name, _)| ring.owner(name) == Some(&node.url))
            .count();
        assert!(owned > 0, "{} owns no colour: pick other keys", node.url);
        let stats = group_stats(node.addr, "colors");
        let batches = stats["server_batches"].as_u64().unwrap();
        assert!(batches >= 1, "{}: {stats}", node.url);
        assert_eq!(stats["local_loads"], owned as u64, "{}: {stats}", node.url);
    }
    let front = group_stats(nodes[0].addr, "colors");
    assert_eq!(front["server_batches"], 0, "{front}");
    assert_eq!(front["peer_errors"], 0, "{front}");
    let loaded = front["local_loads"].as_u64().unwrap() + front["peer_loads"].as_u64().unwrap();
    assert_eq!(loaded, colors.len() as u64, "{front}");

    // A second batch from another node is served from the caches: no load.
    let loads = |addr| counter(addr, "colors", "local_loads");
    let before: Vec<u64> = nodes.iter().map(|n| loads(n.addr)).collect();
    let (_, again) = get_many(nodes[1].addr, "colors", &keys);
    assert_eq!(again, answer);
    let after: Vec<u64> = nodes.iter().map(|n| loads(n.addr)).collect();
    assert_eq!(before, after);
}

#[test]
fn binary_values_are_base64_and_expiries_are_shown() {
    let nodes = start_servers(3, &[]);
    for (target, body) in [
        ("/colors/bin", &[0u8, 0xff, 1][..]),
        ("/colors/brief?ttl=60m", b"short-lived"),
        ("/colors/empty", b""),
    ] {
        let (status, body) = request(nodes[0].addr, "PUT", target, body).unwrap();
        assert_eq!(status, 200, "{target}: {body}");
    }
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    for node in &nodes {
        let (_, answer) = get_many(node.addr, "colors", &["bin", "brief", "empty", "red"]);
        assert_eq!(answer["bin"], serde_json::json!({"value_base64": "AP8B"}));
        assert_eq!(answer["empty"], serde_json::json!({"value": ""}));
        assert_eq!(answer["red"], serde_json::json!({"value": "#FF0000"}));
        assert_eq!(answer["brief"]["value"], "short-lived", "{answer}");
        let expires = answer["brief"]["expires_unix_ms"].as_u64().unwrap();
        let hour = 3_600_000;
        assert!(
            expires > now_ms + hour - 60_000 && expires < now_ms + hour + 60_000,
            "{expires} vs now {now_ms}"
        );
    }
}

#[test]
fn bad_batches_are_refused_and_nothing_is_lost() {
    let nodes = start_servers(3, &["--max-front-body-bytes", "64KiB"]);
    let addr = nodes[0].addr;
    let (status, body) = request(addr, "PUT", "/colors/kept", &[0xfe, 0]).unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(get_ok(nodes[1].addr, "/color?name=teal").len(), 8);

    let target = "/colors/_get-many";
    for body in [&br#"{"a":1}"#[..], b"[1]", b"", b"[\"a\"", b"red"] {
        let reason = refused(addr, target, body, 400);
        assert!(
            reason.contains("must be a JSON array of keys (strings)"),
            "{reason}"
        );
    }
    let many: Vec<String> = (0..1001).map(|i| format!("k{i}")).collect();
    let reason = refused(addr, target, &serde_json::to_vec(&many).unwrap(), 413);
    assert!(reason.contains("at most 1000 keys per batch"), "{reason}");
    let exactly: Vec<&str> = many[..1000].iter().map(String::as_str).collect();
    let (_, answer) = get_many(addr, "colors", &exactly);
    assert_eq!(answer.as_object().unwrap().len(), 1000);
    assert_eq!(answer["k7"]["status"], 404);

    let long = "x".repeat(16 * 1024 + 1);
    let body = serde_json::to_vec(&["red", long.as_str()]).unwrap();
    let reason = refused(addr, target, &body, 414);
    assert!(
        reason.contains("key too long (16385 bytes)") && reason.contains("--max-key-bytes"),
        "{reason}"
    );
    let reason = refused(addr, "/nosuch/_get-many", br#"["a"]"#, 404);
    assert_eq!(reason, "no such group: nosuch\n");
    let reason = refused(addr, "/colors/_other", b"", 405);
    assert!(
        reason.contains("/colors/_purge") && reason.contains("/colors/_get-many"),
        "{reason}"
    );
    let over = vec![b' '; 65 << 10];
    let reason = refused(addr, target, &over, 413);
    assert!(reason.contains("--max-front-body-bytes"), "{reason}");

    // What was cached before is still there, on every node: `kept` exists
    // only in the caches (the loader does not know it).
    for node in &nodes {
        let (_, answer) = get_many(node.addr, "colors", &["kept", "teal"]);
        assert_eq!(answer["kept"], serde_json::json!({"value_base64": "/gA="}));
        assert_eq!(answer["teal"]["value"].as_str().unwrap().len(), 7);
    }
}

/// A `sqlite` group with `query_many`: a front batch loads every key with
/// it, at each owner (its values are told apart from `query`'s by a prefix).
#[cfg(feature = "sqlite")]
#[test]
fn sqlite_groups_load_batches_with_query_many() {
    let scratch = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("get-many-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).unwrap();
    let database = scratch.join("pages.db");
    let _ = std::fs::remove_file(&database);
    let db = rusqlite::Connection::open(&database).unwrap();
    db.execute_batch("CREATE TABLE pages (id TEXT PRIMARY KEY, body TEXT)")
        .unwrap();
    for i in 0..30 {
        db.execute(
            "INSERT INTO pages VALUES (?1, ?2)",
            [format!("p{i}"), format!("page {i}")],
        )
        .unwrap();
    }
    db.execute_batch("INSERT INTO pages VALUES ('null', NULL), ('solo', 'alone')")
        .unwrap();
    drop(db);
    let config = scratch.join("peercache.toml");
    std::fs::write(
        &config,
        format!(
            "[[group]]\nname = \"rows\"\nsource = \"sqlite\"\ndatabase = \"{}\"\n\
             query = \"SELECT 'single ' || body FROM pages WHERE id = ?\"\n\
             query_many = \"SELECT id, 'batch ' || body FROM pages WHERE id IN (?)\"\n",
            database.display()
        ),
    )
    .unwrap();
    let nodes = start_servers(3, &["--config", config.to_str().unwrap()]);

    let keys: Vec<String> = (0..30).map(|i| format!("p{i}")).collect();
    let mut asked: Vec<&str> = keys.iter().map(String::as_str).collect();
    asked.extend(["null", "missing"]);
    let (_, answer) = get_many(nodes[0].addr, "rows", &asked);
    for (i, key) in keys.iter().enumerate() {
        assert_eq!(answer[key]["value"], format!("batch page {i}"), "{answer}");
    }
    assert_eq!(answer["null"]["status"], 404);
    assert_eq!(answer["missing"]["status"], 404);
    let loads: u64 = nodes
        .iter()
        .map(|n| counter(n.addr, "rows", "local_loads"))
        .sum();
    assert_eq!(loads, 30);
    // A single get still runs `query`; what a batch loaded stays cached.
    assert_eq!(get_ok(nodes[1].addr, "/rows/solo"), "single alone");
    assert_eq!(get_ok(nodes[2].addr, "/rows/p7"), "batch page 7");
    let _ = std::fs::remove_dir_all(&scratch);
}
