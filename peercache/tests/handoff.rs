//! Warm handoff over HTTP (README "Deploys and scaling"), with nodes on
//! 127.0.0.1 in this process: a node that joins peeks the keys' previous
//! owners instead of loading them; a node that leaves tells the others and
//! hands its values to their new owners, and is not put back in a ring
//! while it drains; a Go node is never sent a peek; and the wire's
//! refusals (a handoff too large or malformed, a leave notice for a
//! stranger).

#[path = "wire/mod.rs"]
mod wire;

use peercache::http::HttpPool;
use peercache::{loader_fn, CacheKind, Group, Handoff, Node};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One node: its address, pool, node, group `items` (value of `k` is
/// `v:k`) and how many times its loader ran.
struct Member {
    addr: SocketAddr,
    url: String,
    pool: Arc<HttpPool>,
    node: Node,
    group: Group,
    loads: Arc<AtomicU64>,
}

async fn listener() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").await.unwrap()
}

/// Starts a node on `listener` whose pool lists `members`.
fn member(listener: TcpListener, members: &[String]) -> Member {
    let addr = listener.local_addr().unwrap();
    let url = format!("http://{addr}");
    let pool = HttpPool::new(&url, wire::settling_at_once()).unwrap();
    pool.set_peers(members).unwrap();
    let node = Node::with_picker(pool.clone());
    let loads = Arc::new(AtomicU64::new(0));
    let counted = Arc::clone(&loads);
    let group = node
        .new_group(
            "items",
            1 << 20,
            loader_fn(move |k: String| {
                counted.fetch_add(1, Ordering::SeqCst);
                async move { Ok(format!("v:{k}")) }
            }),
        )
        .unwrap();
    tokio::spawn(peercache::http::serve(listener, pool.service(node.clone())));
    Member {
        addr,
        url,
        pool,
        node,
        group,
        loads,
    }
}

async fn until(what: &str, mut done: impl FnMut() -> bool) {
    tokio::time::timeout(Duration::from_secs(10), async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("not within 10 s: {what}"));
}

fn loads(members: &[&Member]) -> u64 {
    members.iter().map(|m| m.loads.load(Ordering::SeqCst)).sum()
}

/// `n` keys `key`'s owner on `pool`'s ring is `url`.
fn keys_of(pool: &HttpPool, url: &str, n: usize) -> Vec<String> {
    (0..)
        .map(|i| format!("k{i}"))
        .filter(|k| pool.owner(k) == url)
        .take(n)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joining_node_peeks_the_previous_owners_instead_of_loading() {
    let listeners = [listener().await, listener().await, listener().await];
    let urls: Vec<String> = (listeners.iter())
        .map(|l| format!("http://{}", l.local_addr().unwrap()))
        .collect();
    let [a, b, c] = listeners;
    let (a, b) = (member(a, &urls[..2]), member(b, &urls[..2]));
    for i in 0..200 {
        a.group.get(&format!("k{i}")).await.unwrap();
    }
    let warm = loads(&[&a, &b]);
    assert_eq!(warm, 200);

    // The third node joins: every node lists it.
    let c = member(c, &urls);
    a.pool.set_peers(&urls).unwrap();
    b.pool.set_peers(&urls).unwrap();
    let moved = keys_of(&c.pool, &c.url, 20);
    let moved: Vec<&String> = moved
        .iter()
        .filter(|k| k[1..].parse::<u32>().unwrap() < 200)
        .collect();
    assert!(!moved.is_empty());
    for key in &moved {
        let value = c.group.get(key).await.unwrap();
        assert_eq!(value.as_str().unwrap(), format!("v:{key}"));
    }
    assert_eq!(c.loads.load(Ordering::SeqCst), 0, "no key was loaded again");
    let stats = c.group.stats();
    assert_eq!(stats.peek_hits, moved.len() as u64);
    assert_eq!(
        stats.main_cache.items,
        moved.len() as u64,
        "kept as its own"
    );

    // A key no node held: one peek missed, then the loader.
    let fresh = keys_of(&c.pool, &c.url, 400)
        .into_iter()
        .find(|k| k[1..].parse::<u32>().unwrap() >= 200)
        .unwrap();
    c.group.get(&fresh).await.unwrap();
    assert_eq!(c.loads.load(Ordering::SeqCst), 1);
    assert_eq!(c.group.stats().peek_misses, 1);
    // The peeked nodes served from their caches and loaded nothing.
    assert_eq!(loads(&[&a, &b]), warm);
    let served = a.group.stats().peeks_served + b.group.stats().peeks_served;
    assert_eq!(served, moved.len() as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leaving_node_hands_its_values_over_and_stays_out_while_it_drains() {
    let listeners = [listener().await, listener().await, listener().await];
    let urls: Vec<String> = (listeners.iter())
        .map(|l| format!("http://{}", l.local_addr().unwrap()))
        .collect();
    let members: Vec<Member> = listeners.into_iter().map(|l| member(l, &urls)).collect();
    let leaver = &members[2];
    let its_keys = keys_of(&leaver.pool, &leaver.url, 30);
    for key in &its_keys {
        members[0].group.get(key).await.unwrap();
    }
    assert_eq!(leaver.loads.load(Ordering::SeqCst), its_keys.len() as u64);

    let report = leaver.node.leave(Handoff::default()).await;
    assert!(leaver.node.is_leaving());
    assert_eq!((report.sent, report.kept), (30, 30), "{report:?}");
    assert!(report.failed.is_empty() && !report.timed_out, "{report:?}");
    let kept: u64 = members[..2]
        .iter()
        .map(|m| m.group.stats().handoff_received)
        .sum();
    assert_eq!(kept, 30);
    assert_eq!(leaver.group.stats().handed_over, 30);

    // Out of every ring at once, its own included; its keys are served by
    // their new owners without a load.
    for m in &members {
        for key in &its_keys {
            assert_ne!(
                m.pool.owner(key),
                leaver.url,
                "{} still routes {key} to it",
                m.url
            );
        }
    }
    let before = loads(&[&members[0], &members[1]]);
    for key in &its_keys {
        let value = members[1].group.get(key).await.unwrap();
        assert_eq!(value.as_str().unwrap(), format!("v:{key}"));
    }
    assert_eq!(loads(&[&members[0], &members[1]]), before);

    // While it drains it still takes changes (it may be peeked).
    let removed = &its_keys[0];
    assert!(leaver.group.cached_keys(CacheKind::Main).contains(removed));
    let applied = members[0].group.remove(removed).await.unwrap();
    assert!(applied.pending().is_empty(), "{:?}", applied.pending());
    assert!(!leaver.group.cached_keys(CacheKind::Main).contains(removed));

    // While it drains, it answers probes, saying it leaves: it stays out.
    let status = |m: &Member| {
        let all = m.pool.peer_status();
        all.into_iter().find(|s| s.peer == leaver.url).unwrap()
    };
    let failures = status(&members[0]).failures;
    until("a few probes of the leaving node", || {
        status(&members[0]).failures >= failures + 3
    })
    .await;
    assert_eq!(
        status(&members[0]).state,
        peercache::health::PeerState::Down
    );
}

/// A peer that answers as golang/groupcache does (no `x-peercache`
/// header: 400 to the bare base path, a value to any get), recording each
/// request's target.
async fn go_like_peer(listener: TcpListener, seen: Arc<Mutex<Vec<String>>>) {
    loop {
        let (mut stream, _) = listener.accept().await.unwrap();
        let seen = Arc::clone(&seen);
        tokio::spawn(async move {
            let mut buf = vec![0; 4096];
            let mut got = Vec::new();
            while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
            }
            let head = String::from_utf8_lossy(&got).into_owned();
            let target = head.split(' ').nth(1).unwrap_or_default().to_owned();
            seen.lock().unwrap().push(target.clone());
            let answer: &[u8] = if target.ends_with("/_groupcache/") {
                b"HTTP/1.1 400 Bad Request\r\nContent-Length: 11\r\nConnection: close\r\n\r\nbad request"
            } else {
                // A GetResponse of "go".
                b"HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 4\r\nConnection: close\r\n\r\n\x0a\x02go"
            };
            let _ = stream.write_all(answer).await;
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_go_node_is_never_sent_a_peek() {
    let (mine, go) = (listener().await, listener().await);
    let urls = [
        format!("http://{}", mine.local_addr().unwrap()),
        format!("http://{}", go.local_addr().unwrap()),
    ];
    let seen = Arc::new(Mutex::new(Vec::new()));
    tokio::spawn(go_like_peer(go, Arc::clone(&seen)));
    // A node that starts peeks its keys' owner on the ring without it:
    // here the Go node, which must only be probed.
    let me = member(mine, &urls);
    let own = keys_of(&me.pool, &me.url, 5);
    for key in &own {
        assert_eq!(
            me.group.get(key).await.unwrap().as_str().unwrap(),
            format!("v:{key}")
        );
    }
    assert_eq!(me.loads.load(Ordering::SeqCst), 5);
    let seen = seen.lock().unwrap().clone();
    assert!(seen.iter().all(|t| !t.contains('?')), "{seen:?}");
    assert!(!seen.is_empty(), "the Go node was probed once");
}

/// A raw request to `addr`: the status code of the answer.
async fn status_of(addr: SocketAddr, method: &str, target: &str, body: &[u8]) -> u16 {
    let head = format!(
        "{method} {target} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    String::from_utf8_lossy(&answer)[9..12].parse().unwrap()
}

/// A `HandOverRequest` from `from` of `n` values `k<i>` = `x`.
fn hand_over_body(from: &str, keys: &[String]) -> Vec<u8> {
    use prost::Message;
    let items = keys
        .iter()
        .map(|k| peercache::proto::SetRequest {
            key: Some(k.clone()),
            value: Some("x".into()),
            ..Default::default()
        })
        .collect();
    let request = peercache::proto::HandOverRequest {
        from: Some(from.to_owned()),
        items,
    };
    request.encode_to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wire_refuses_what_it_must_and_a_peek_never_loads() {
    let (l1, l2) = (listener().await, listener().await);
    let urls = [
        format!("http://{}", l1.local_addr().unwrap()),
        format!("http://{}", l2.local_addr().unwrap()),
    ];
    let (m, other) = (member(l1, &urls), member(l2, &urls));
    let path = "/_groupcache/items/_hand-over/";

    // Too many values, a body that is not a HandOverRequest.
    let many: Vec<String> = (0..1001).map(|i| format!("k{i}")).collect();
    let body = hand_over_body(&other.url, &many);
    assert_eq!(status_of(m.addr, "POST", path, &body).await, 413);
    assert_eq!(status_of(m.addr, "POST", path, b"\xff\xff\xff").await, 400);
    // Values of keys this node does not own are not kept.
    let not_mine = keys_of(&m.pool, &other.url, 3);
    let body = hand_over_body(&other.url, &not_mine);
    assert_eq!(status_of(m.addr, "POST", path, &body).await, 200);
    assert_eq!(m.group.stats().handoff_received, 0);
    assert_eq!(m.group.stats().main_cache.items, 0);
    // Those it owns are.
    let mine = keys_of(&m.pool, &m.url, 3);
    let body = hand_over_body(&other.url, &mine);
    assert_eq!(status_of(m.addr, "POST", path, &body).await, 200);
    assert_eq!(m.group.stats().handoff_received, 3);
    assert_eq!(m.group.get(&mine[0]).await.unwrap().as_str().unwrap(), "x");
    // A handed value counts as a copy for the second round of a change
    // (`?copies-only`): it may be one its sender kept after a change it
    // missed. The node's own values stay.
    let copies_only = |k: &str| format!("/_groupcache/items/{k}?copies-only");
    assert_eq!(
        status_of(m.addr, "DELETE", &copies_only(&mine[2]), b"").await,
        200
    );
    assert!(!m.group.cached_keys(CacheKind::Main).contains(&mine[2]));
    let own = keys_of(&m.pool, &m.url, 4).pop().unwrap();
    m.group.get(&own).await.unwrap();
    assert_eq!(
        status_of(m.addr, "DELETE", &copies_only(&own), b"").await,
        200
    );
    assert!(m.group.cached_keys(CacheKind::Main).contains(&own));

    // A leave notice for a stranger, or not UTF-8.
    let notice = "/_groupcache/_leave";
    assert_eq!(
        status_of(m.addr, "POST", notice, b"http://10.9.9.9:1").await,
        404
    );
    assert_eq!(status_of(m.addr, "POST", notice, b"\xff").await, 400);
    assert!(m
        .pool
        .peer_status()
        .iter()
        .all(|s| s.state != peercache::health::PeerState::Down));

    // A peek answers from the caches only: 204 for a key not held, never
    // loaded; 200 for one held.
    let target = |k: &str| format!("/_groupcache/items/{k}?peek");
    let loaded = m.loads.load(Ordering::SeqCst);
    assert_eq!(status_of(m.addr, "GET", &target("absent"), b"").await, 204);
    assert_eq!(m.loads.load(Ordering::SeqCst), loaded);
    assert_eq!(status_of(m.addr, "GET", &target(&mine[1]), b"").await, 200);
    assert_eq!(m.group.stats().peeks_served, 1);
}
