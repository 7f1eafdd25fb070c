//! A set's deadline on the wire: a peercache server stores a `PUT` only if
//! it arrives before the `x-peercache-deadline` its sender gave it (Unix
//! milliseconds), so a set its sender gave up on (delayed in a hung process
//! or in TCP retransmission across a partition) cannot bring back an old
//! value after newer changes; without the header (Go and mailgun nodes) a
//! set is stored as before.

#[path = "wire/mod.rs"]
mod wire;

use peercache::http::{HttpOptions, HttpPool};
use peercache::{loader_fn, CacheKind, Node};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// `PUT` of `key` with an optional deadline header; the status line.
async fn put(addr: std::net::SocketAddr, key: &str, deadline: Option<u128>) -> String {
    let body = wire::set_request("g", key, "new");
    let header = deadline.map_or(String::new(), |d| format!("x-peercache-deadline: {d}\r\n"));
    let head = format!(
        "PUT /_groupcache/g/{key} HTTP/1.1\r\nHost: {addr}\r\n{header}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&body).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
        .await
        .expect("an answer within 10 s")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer).into_owned();
    answer.lines().next().unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_set_past_its_deadline_is_not_stored() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let pool = HttpPool::new(&format!("http://{addr}"), HttpOptions::default()).unwrap();
    let node = Node::with_picker(pool.clone());
    let group = node
        .new_group("g", 1 << 20, loader_fn(|k: String| async move { Ok(k) }))
        .unwrap();
    tokio::spawn(peercache::http::serve(listener, pool.service(node)));
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis();

    let late = put(addr, "late", Some(now - 1)).await;
    assert!(late.contains("408"), "{late}");
    let in_time = put(addr, "in-time", Some(now + 60_000)).await;
    assert!(in_time.contains("200"), "{in_time}");
    let go = put(addr, "from-go", None).await;
    assert!(go.contains("200"), "{go}");
    let mut stored = group.cached_keys(CacheKind::Main);
    stored.sort();
    assert_eq!(stored, ["from-go", "in-time"]);
}
