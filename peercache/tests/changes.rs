//! Changes on the wire, byte for byte: the `PUT`, `DELETE`, `_remove-keys`
//! and `_purge` exchanges as PROTOCOL.md describes them (mailgun/groupcache
//! v2 and groupcache-go v3), both as a peercache server reads them and as a
//! peercache client sends them; and a failing peer leaving the ring.

#[path = "wire/mod.rs"]
mod wire;

use peercache::http::{HttpOptions, HttpPool};
use peercache::{loader_fn, Group, Node, PeerPicker, Value};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

const WAIT: Duration = Duration::from_secs(10);

/// 2100-01-01T00:00:00Z in Unix nanoseconds, and its protobuf varint.
const EXPIRE: i64 = 4_102_444_800_000_000_000;
const EXPIRE_VARINT: [u8; 9] = [0x80, 0x80, 0x98, 0xb5, 0xf5, 0xf9, 0xb3, 0xf7, 0x38];

/// A node serving group `ref` (value of `k` = `v:k`) on an ephemeral port,
/// counting its loads.
struct TestNode {
    addr: SocketAddr,
    url: String,
    group: Group,
    pool: Arc<HttpPool>,
    loads: Arc<Mutex<HashMap<String, u32>>>,
}

async fn node() -> TestNode {
    node_with(HttpOptions::default()).await
}

async fn node_with(options: HttpOptions) -> TestNode {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let url = format!("http://{addr}");
    let pool = HttpPool::new(&url, options).unwrap();
    let node = Node::with_picker(pool.clone());
    let loads = Arc::new(Mutex::new(HashMap::new()));
    let counted = Arc::clone(&loads);
    let group = node
        .new_group(
            "ref",
            1 << 20,
            loader_fn(move |key: String| {
                *counted.lock().unwrap().entry(key.clone()).or_insert(0) += 1;
                async move { Ok(format!("v:{key}")) }
            }),
        )
        .unwrap();
    tokio::spawn(peercache::http::serve(listener, pool.service(node)));
    TestNode {
        addr,
        url,
        group,
        pool,
        loads,
    }
}

impl TestNode {
    fn loads_of(&self, key: &str) -> u32 {
        self.loads.lock().unwrap().get(key).copied().unwrap_or(0)
    }
}

/// Status, headers (lower-case names) and body of one raw exchange.
struct Raw {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

async fn raw(addr: SocketAddr, method: &str, target: &str, body: &[u8]) -> Raw {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let head = format!(
            "{method} {target} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(body).await.unwrap();
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.unwrap();
        answer
    };
    let answer = tokio::time::timeout(WAIT, exchange)
        .await
        .expect("no answer");
    let split = answer.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8(answer[..split].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap()[9..12].parse().unwrap();
    let headers = lines
        .map(|l| {
            let (n, v) = l.split_once(": ").unwrap();
            (n.to_ascii_lowercase(), v.to_owned())
        })
        .collect();
    Raw {
        status,
        headers,
        body: answer[split + 4..].to_vec(),
    }
}

impl Raw {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Go's answer to a change it carried out: 200, empty body.
    fn assert_done(&self) {
        assert_eq!(self.status, 200, "{}", String::from_utf8_lossy(&self.body));
        assert_eq!(self.header("content-length"), Some("0"));
        assert!(self.body.is_empty());
    }
}

/// A `SetRequest{group: "ref", key, value, expire: EXPIRE}`, hand-encoded.
fn set_request(key: &str, value: &str) -> Vec<u8> {
    let mut bytes = wire::set_request("ref", key, value);
    bytes.push(0x20);
    bytes.extend(EXPIRE_VARINT);
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_carries_out_mailgun_and_v3_changes() {
    let node = node().await;
    // PUT: stored under the body's key, served with its expiry (field 3).
    raw(
        node.addr,
        "PUT",
        "/_groupcache/ref/k1",
        &set_request("k1", "hello"),
    )
    .await
    .assert_done();
    let got = raw(node.addr, "GET", "/_groupcache/ref/k1", b"").await;
    let mut expected = vec![0x0a, 5];
    expected.extend_from_slice(b"hello");
    expected.push(0x18);
    expected.extend(EXPIRE_VARINT);
    assert_eq!(got.status, 200);
    assert_eq!(got.header("content-type"), Some("application/x-protobuf"));
    assert_eq!(got.body, expected);
    assert_eq!(node.loads_of("k1"), 0, "a set value is not loaded");

    // DELETE: the next get loads again.
    raw(node.addr, "DELETE", "/_groupcache/ref/k1", b"")
        .await
        .assert_done();
    let got = raw(node.addr, "GET", "/_groupcache/ref/k1", b"").await;
    assert_eq!(got.body, b"\x0a\x04v:k1");
    assert_eq!(node.loads_of("k1"), 1);

    // v3's _remove-keys: JSON body, every key listed is dropped.
    for key in ["a", "b", "c"] {
        raw(node.addr, "GET", &format!("/_groupcache/ref/{key}"), b"").await;
    }
    raw(
        node.addr,
        "POST",
        "/_groupcache/ref/_remove-keys/",
        br#"{"group":"ref","keys":["a","b"]}"#,
    )
    .await
    .assert_done();
    for key in ["a", "b", "c"] {
        raw(node.addr, "GET", &format!("/_groupcache/ref/{key}"), b"").await;
    }
    assert_eq!(
        [node.loads_of("a"), node.loads_of("b"), node.loads_of("c")],
        [2, 2, 1]
    );

    // peercache's _purge: everything goes.
    raw(node.addr, "POST", "/_groupcache/ref/_purge/", b"")
        .await
        .assert_done();
    assert_eq!(node.group.stats().main_cache.items, 0);

    // Malformed bodies and a group mismatch are refused, nothing is lost.
    raw(node.addr, "GET", "/_groupcache/ref/kept", b"").await;
    for (method, target, body, status) in [
        ("PUT", "/_groupcache/ref/x", &b"\xff\xff"[..], 400),
        (
            "PUT",
            "/_groupcache/ref/x",
            &b"\x0a\x05other\x12\x01x"[..],
            400,
        ),
        (
            "POST",
            "/_groupcache/ref/_remove-keys/",
            &b"{\"keys\":"[..],
            400,
        ),
        (
            "POST",
            "/_groupcache/ref/_remove-keys/",
            &b"{\"group\":\"other\",\"keys\":[\"kept\"]}"[..],
            400,
        ),
    ] {
        let got = raw(node.addr, method, target, body).await;
        assert_eq!(got.status, status, "{method} {body:?}");
    }
    assert_eq!(
        node.group.stats().main_cache.items,
        1,
        "kept is still cached"
    );
}

/// One request as a capture peer saw it.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    line: String,
    content_type: Option<String>,
    body: Vec<u8>,
}

/// A peer that records every request and answers 200 with an empty body, or
/// (when `golang` is set) with a GetResponse, as a golang node answers any
/// method.
async fn capture_peer(golang: Arc<AtomicBool>) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (record, golang) = (Arc::clone(&record), Arc::clone(&golang));
            tokio::spawn(async move {
                let mut stream = BufReader::new(stream);
                loop {
                    let mut line = String::new();
                    if stream.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let (mut length, mut content_type) = (0, None);
                    loop {
                        let mut header = String::new();
                        stream.read_line(&mut header).await.unwrap();
                        let header = header.trim_end();
                        if header.is_empty() {
                            break;
                        }
                        let (name, value) = header.split_once(": ").unwrap();
                        match name.to_ascii_lowercase().as_str() {
                            "content-length" => length = value.parse().unwrap(),
                            "content-type" => content_type = Some(value.to_owned()),
                            _ => {}
                        }
                    }
                    let mut body = vec![0; length];
                    stream.read_exact(&mut body).await.unwrap();
                    record.lock().unwrap().push(Seen {
                        line: line.trim_end().to_owned(),
                        content_type,
                        body,
                    });
                    let answer: &[u8] = if golang.load(Ordering::SeqCst) {
                        b"HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 2\r\n\r\n\x0a\x00"
                    } else {
                        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
                    };
                    stream.get_mut().write_all(answer).await.unwrap();
                }
            });
        }
    });
    (url, seen)
}

/// Keys owned by `peer` on `pool`'s ring.
fn keys_of(pool: &HttpPool, peer: &str, n: usize) -> Vec<String> {
    (0..)
        .map(|i| format!("key-{i}"))
        .filter(|k| pool.owner(k) == peer)
        .take(n)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_sends_changes_as_mailgun_and_v3_do() {
    let golang = Arc::new(AtomicBool::new(false));
    let (peer, seen) = capture_peer(Arc::clone(&golang)).await;
    let me = node_with(wire::settling_at_once()).await;
    me.pool.set_peers([me.url.as_str(), peer.as_str()]).unwrap();
    tokio::time::timeout(WAIT, async {
        while me.pool.settling() {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the pool's view settles within 2 ms");
    let mut owned = keys_of(&me.pool, &peer, 2);
    owned.sort();
    let take = || std::mem::take(&mut *seen.lock().unwrap());

    me.group
        .set(
            &owned[0],
            "hello",
            Some(UNIX_EPOCH + Duration::from_nanos(EXPIRE as u64)),
        )
        .await
        .unwrap();
    let mut body = vec![0x0a, 3];
    body.extend_from_slice(b"ref");
    body.extend([0x12, owned[0].len() as u8]);
    body.extend_from_slice(owned[0].as_bytes());
    body.extend([0x1a, 5]);
    body.extend_from_slice(b"hello");
    body.push(0x20);
    body.extend(EXPIRE_VARINT);
    assert_eq!(
        take(),
        [Seen {
            line: format!("PUT /_groupcache/ref/{} HTTP/1.1", owned[0]),
            content_type: Some("application/x-protobuf".into()),
            body,
        }]
    );

    me.group.remove(&owned[0]).await.unwrap();
    assert_eq!(
        take(),
        [Seen {
            line: format!("DELETE /_groupcache/ref/{} HTTP/1.1", owned[0]),
            content_type: None,
            body: Vec::new(),
        }]
    );

    me.group.remove_keys(&owned).await.unwrap();
    let json = format!(
        r#"{{"group":"ref","keys":["{}","{}"]}}"#,
        owned[0], owned[1]
    );
    assert_eq!(
        take(),
        [Seen {
            line: "POST /_groupcache/ref/_remove-keys/ HTTP/1.1".into(),
            content_type: Some("application/json".into()),
            body: json.into_bytes(),
        }]
    );

    me.group.purge().await.unwrap();
    let purge = Seen {
        line: "POST /_groupcache/ref/_purge/ HTTP/1.1".into(),
        content_type: None,
        body: Vec::new(),
    };
    assert_eq!(take(), [purge.clone(), purge], "two rounds");

    // A golang node answers every method as a get: that is no removal.
    golang.store(true, Ordering::SeqCst);
    let error = me.group.remove(&owned[1]).await.unwrap_err();
    let failed = error.failed_peers();
    assert_eq!(failed.len(), 1, "{error}");
    assert_eq!(&*failed[0].peer, peer.as_str());
    assert!(failed[0].owner);
    assert!(error.to_string().contains("golang"), "{error}");
    // ... and a multi-key remove falls back to DELETEs, which fail the same.
    take();
    let error = me.group.remove_keys(&owned).await.unwrap_err();
    assert_eq!(error.failed_peers().len(), 1, "{error}");
    let lines: Vec<String> = take().into_iter().map(|s| s.line).collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(lines[0].starts_with("POST /_groupcache/ref/_remove-keys/"));
    assert!(
        lines[1..].iter().all(|l| l.starts_with("DELETE ")),
        "{lines:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_peer_leaves_the_ring_and_only_its_keys_move() {
    let a = node().await;
    let b = node().await;
    // A peer that refuses connections: bound, then closed.
    let dead = {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let members = [a.url.as_str(), b.url.as_str(), dead.as_str()];
    a.pool.set_peers(members).unwrap();
    b.pool.set_peers(members).unwrap();
    let keys: Vec<String> = (0..3000).map(|i| format!("k{i}")).collect();
    let before: Vec<String> = keys.iter().map(|k| a.pool.owner(k)).collect();
    let dead_keys = keys_of(&a.pool, &dead, 3);

    // Three failures in a row (the default) take it out of the ring.
    for key in &dead_keys {
        assert_eq!(
            a.group.get(key).await.unwrap(),
            Value::from(format!("v:{key}"))
        );
    }
    let status = a.pool.peer_status();
    let dead_status = status.iter().find(|s| s.peer == dead).unwrap();
    assert_eq!(
        dead_status.state,
        peercache::health::PeerState::Down,
        "{status:?}"
    );
    assert_eq!(a.group.stats().peer_errors, 3);

    // Only its keys moved; each went to a live node.
    for (key, was) in keys.iter().zip(&before) {
        let now = a.pool.owner(key);
        if *was == dead {
            assert_ne!(now, dead);
        } else {
            assert_eq!(&now, was, "{key} moved though its owner is up");
        }
    }
    // Its keys now go straight to their new owner: no more peer errors.
    let moved_to_b = keys
        .iter()
        .zip(&before)
        .find(|(k, was)| **was == dead && a.pool.owner(k) == b.url)
        .map(|(k, _)| k.clone())
        .expect("some key of the dead peer moved to b");
    a.group.get(&moved_to_b).await.unwrap();
    assert_eq!(a.group.stats().peer_errors, 3);
    assert_eq!(b.loads_of(&moved_to_b), 1);
    // Changes are not sent to a peer out of the ring: they are pending
    // there, kept for it until it answers.
    let applied = a.group.remove("k1").await.unwrap();
    assert_eq!(applied.pending(), [std::sync::Arc::from(dead.as_str())]);
    assert_eq!(a.group.pending_hints()[0].peer, dead);
    // The live members still appear among the picker's others.
    assert_eq!(a.pool.others().len(), 2);
}
