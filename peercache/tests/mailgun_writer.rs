//! A set from a writer that is not peercache: mailgun/groupcache and
//! groupcache-go send their set (`PUT` of a `SetRequest`) to the key's
//! owner only and leave the other nodes' copies. A peercache owner that
//! receives such a set drops the copies itself; a peercache writer marks
//! its sets (`x-peercache-writer`), having dropped them already, so the
//! owner does not do it twice. Three HTTP nodes on 127.0.0.1; the sets are
//! sent as raw requests shaped as mailgun's Go client sends them. Also the
//! removal of copies only (`?copies-only`, the second round of hinted
//! handoff): a hot copy goes, a value the node owns stays.

#[path = "wire/mod.rs"]
mod wire;

use peercache::http::HttpPool;
use peercache::{loader_fn, CacheKind, Group, HotCachePolicy, Node, PeerPicker};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Three nodes sharing group `ref` (value of `k` = `v:k`), hot copies
/// always kept, each with a view of the cluster that settles at once (so a
/// change drops copies once, not twice: `PeerPicker::settling`).
async fn cluster() -> Vec<(SocketAddr, Group, std::sync::Arc<HttpPool>)> {
    let mut listeners = Vec::new();
    for _ in 0..3 {
        listeners.push(TcpListener::bind("127.0.0.1:0").await.unwrap());
    }
    let urls: Vec<String> = (listeners.iter())
        .map(|l| format!("http://{}", l.local_addr().unwrap()))
        .collect();
    let mut nodes = Vec::new();
    for (listener, url) in listeners.into_iter().zip(&urls) {
        let addr = listener.local_addr().unwrap();
        let pool = HttpPool::new(url, wire::settling_at_once()).unwrap();
        pool.set_peers(&urls).unwrap();
        let node = Node::with_picker(pool.clone());
        let group = node
            .group_builder("ref")
            .hot_cache(HotCachePolicy::Always)
            .build(loader_fn(|k: String| async move { Ok(format!("v:{k}")) }))
            .unwrap();
        tokio::spawn(peercache::http::serve(listener, pool.service(node)));
        nodes.push((addr, group, pool));
    }
    let settled = || nodes.iter().all(|(_, _, pool)| !pool.settling());
    until("the nodes' views settle", settled).await;
    nodes
}

/// A set as mailgun's Go client sends it (`marked`: with peercache's
/// writer header); the status line of the answer.
async fn put(addr: SocketAddr, key: &str, value: &str, marked: bool) -> String {
    let body = wire::set_request("ref", key, value);
    let mark = if marked {
        "x-peercache-writer: drops-copies\r\n"
    } else {
        ""
    };
    let head = format!(
        "PUT /_groupcache/ref/{key} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: Go-http-client/1.1\r\n\
         Content-Length: {}\r\n{mark}Accept-Encoding: gzip\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&body).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer).into_owned();
    answer.lines().next().unwrap_or_default().to_owned()
}

async fn until(what: &str, mut done: impl FnMut() -> bool) {
    tokio::time::timeout(Duration::from_secs(10), async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("not within 10 s: {what}"));
}

fn holds(group: &Group, key: &str) -> bool {
    group.cached_keys(CacheKind::Hot).contains(&key.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_drops_the_copies_for_a_writer_that_does_not() {
    let nodes = cluster().await;
    let (owner_url, pool) = (&nodes[0].2.self_url().to_owned(), &nodes[0].2);
    // Two keys the first node owns, copied on the second.
    let keys: Vec<String> = (0..)
        .map(|i| format!("k{i}"))
        .filter(|k| pool.owner(k) == *owner_url)
        .take(2)
        .collect();
    let (owner, copier) = (&nodes[0], &nodes[1]);
    for key in &keys {
        copier.1.get(key).await.unwrap();
        assert!(holds(&copier.1, key));
    }

    // mailgun's set, to the owner only: the owner drops the copy.
    assert!(put(owner.0, &keys[0], "new", false).await.contains("200"));
    until("the copy is dropped", || !holds(&copier.1, &keys[0])).await;
    let value = copier.1.get(&keys[0]).await.unwrap();
    assert_eq!(value.as_str().unwrap(), "new");

    // A peercache writer's set is marked: the owner leaves the copies to
    // the writer. (An unmarked set of the other key, sent after it, is
    // dropped: had the marked one started a drop, it would have landed by
    // then too.)
    assert!(put(owner.0, &keys[0], "newer", true).await.contains("200"));
    assert!(put(owner.0, &keys[1], "other", false).await.contains("200"));
    until("the other key's copy is dropped", || {
        !holds(&copier.1, &keys[1])
    })
    .await;
    assert!(holds(&copier.1, &keys[0]), "the marked set dropped no copy");
    let value = owner.1.get(&keys[0]).await.unwrap();
    assert_eq!(value.as_str().unwrap(), "newer", "the owner stored it");
}

/// `method target` on a fresh connection; the status line.
async fn raw(addr: SocketAddr, method: &str, target: &str) -> String {
    let head = format!(
        "{method} {target} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer).into_owned();
    answer.lines().next().unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removal_of_copies_only_leaves_what_a_node_owns() {
    let nodes = cluster().await;
    let (owner, copier) = (&nodes[0], &nodes[1]);
    let owner_url = owner.2.self_url().to_owned();
    let key = (0..)
        .map(|i| format!("k{i}"))
        .find(|k| owner.2.owner(k) == owner_url)
        .unwrap();
    copier.1.get(&key).await.unwrap();
    assert!(holds(&copier.1, &key));
    assert!(owner.1.cached_keys(CacheKind::Main).contains(&key));
    let target = format!("/_groupcache/ref/{key}?copies-only");
    for node in [owner, copier] {
        assert!(raw(node.0, "DELETE", &target).await.contains("200"));
    }
    assert!(!holds(&copier.1, &key), "the copy is gone");
    assert!(
        owner.1.cached_keys(CacheKind::Main).contains(&key),
        "the owner keeps its value"
    );
    // The same for several keys (`_remove-keys`).
    copier.1.get(&key).await.unwrap();
    let body = format!(r#"{{"group":"ref","keys":["{key}","other"]}}"#);
    let head = format!(
        "POST /_groupcache/ref/_remove-keys/?copies-only HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        copier.0,
        body.len()
    );
    let mut stream = TcpStream::connect(copier.0).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"));
    assert!(!holds(&copier.1, &key));
}
