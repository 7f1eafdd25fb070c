//! What a node refuses, over real sockets on 127.0.0.1: the server limits
//! (shedding with 503 + `Retry-After`, 414, slow bodies, slow headers, the
//! HTTP/2 stream limit) and peer authentication (401 without a valid proof,
//! replayed and tampered requests, nodes with another secret). Each refusal
//! is checked for its status, its plain-text reason, and that the node keeps
//! serving afterwards.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use peercache::clock::ManualClock;
use peercache::http::LimitCounters;
use peercache::http::{HttpOptions, HttpPool, PeerAuth, Server, ServerLimits};
use peercache::{loader_fn, Node, Value};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, Semaphore};

/// Bound on every wait in these tests.
const WAIT: Duration = Duration::from_secs(10);

/// A node with group `g`: keys starting with `slow` wait for a permit of
/// `gate` (counting how many are waiting); others load at once.
struct Served {
    addr: SocketAddr,
    node: Node,
    pool: Arc<HttpPool>,
    gate: Arc<Semaphore>,
    waiting: Arc<AtomicUsize>,
    counters: Arc<LimitCounters>,
    _stop: oneshot::Sender<()>,
}

async fn serve(limits: ServerLimits, options: HttpOptions) -> Served {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let pool = HttpPool::new(&format!("http://{addr}"), options).unwrap();
    let node = Node::with_picker(pool.clone());
    let gate = Arc::new(Semaphore::new(0));
    let waiting = Arc::new(AtomicUsize::new(0));
    let (gate2, waiting2) = (gate.clone(), waiting.clone());
    node.new_group(
        "g",
        1 << 20,
        loader_fn(move |key: String| {
            let (gate, waiting) = (gate2.clone(), waiting2.clone());
            async move {
                if key.starts_with("slow") {
                    waiting.fetch_add(1, Ordering::SeqCst);
                    gate.acquire().await.unwrap().forget();
                    waiting.fetch_sub(1, Ordering::SeqCst);
                }
                Ok(Value::from(format!("value of {key}")))
            }
        }),
    )
    .unwrap();
    let server = Server::new(limits);
    let counters = server.counters();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(server.serve(listener, pool.service(node.clone()), async {
        let _ = stopped.await;
    }));
    Served {
        addr,
        node,
        pool,
        gate,
        waiting,
        counters,
        _stop: stop,
    }
}

/// A response as raw parts.
#[derive(Debug)]
struct Raw {
    status: u16,
    head: String,
    body: String,
}

impl Raw {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.split("\r\n").skip(1).find_map(|line| {
            let (n, v) = line.split_once(": ")?;
            n.eq_ignore_ascii_case(name).then_some(v)
        })
    }

    /// A refusal: `status`, plain text, saying `reason`.
    fn assert_refusal(&self, status: u16, reason: &str) {
        assert_eq!(self.status, status, "{self:?}");
        assert_eq!(
            self.header("content-type"),
            Some("text/plain; charset=utf-8"),
            "{self:?}"
        );
        assert!(self.body.contains(reason), "{self:?} should say {reason:?}");
    }
}

/// Writes `request` (a whole raw HTTP/1.1 request) and reads the answer
/// until the server closes or `Connection: close` ends it.
async fn exchange(addr: SocketAddr, request: &[u8]) -> Raw {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(request).await.unwrap();
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer).await;
        answer
    };
    let answer = tokio::time::timeout(WAIT, exchange)
        .await
        .expect("no answer in time");
    parse(&answer)
}

fn parse(answer: &[u8]) -> Raw {
    let text = String::from_utf8_lossy(answer);
    let (head, body) = text.split_once("\r\n\r\n").expect("no end of head");
    Raw {
        status: head.split(' ').nth(1).unwrap().parse().unwrap(),
        head: head.to_owned(),
        body: body.to_owned(),
    }
}

/// A raw request with optional extra headers and body.
fn request(method: &str, target: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("{method} {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n");
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

async fn get(addr: SocketAddr, target: &str) -> Raw {
    exchange(addr, &request("GET", target, &[], b"")).await
}

/// Polls `condition` every millisecond, at most [`WAIT`].
async fn wait_until(what: &str, condition: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// A served key answers with its value (a GetResponse holding it).
async fn assert_serves(addr: SocketAddr, key: &str) {
    let answer = get(addr, &format!("/_groupcache/g/{key}")).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert!(
        answer.body.contains(&format!("value of {key}")),
        "{answer:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_concurrency_limit_requests_get_503_with_retry_after() {
    let limits = ServerLimits::builder()
        .max_concurrent_requests(4)
        .build()
        .unwrap();
    let served = serve(limits, HttpOptions::default()).await;
    let addr = served.addr;
    let held: Vec<_> = (0..4)
        .map(|i| tokio::spawn(async move { get(addr, &format!("/_groupcache/g/slow-{i}")).await }))
        .collect();
    wait_until("four requests are in the loader", || {
        served.waiting.load(Ordering::SeqCst) == 4
    })
    .await;
    let shed = get(addr, "/_groupcache/g/fast").await;
    shed.assert_refusal(503, "max concurrent requests");
    assert_eq!(shed.header("retry-after"), Some("1"));
    assert_eq!(served.counters.snapshot().shed, 1);
    // The admitted requests finish normally, and the node takes new ones.
    served.gate.add_permits(4);
    for (i, request) in held.into_iter().enumerate() {
        let answer = request.await.unwrap();
        assert_eq!(answer.status, 200, "{answer:?}");
        assert!(answer.body.contains(&format!("value of slow-{i}")));
    }
    assert_serves(addr, "fast").await;
}

#[tokio::test]
async fn over_long_targets_and_keys_get_414_and_nothing_is_lost() {
    let limits = ServerLimits::builder().max_uri_bytes(1024).build().unwrap();
    let options = HttpOptions::builder().max_key_bytes(100).build().unwrap();
    let served = serve(limits, options).await;
    assert_serves(served.addr, "kept").await;
    let long_target = format!("/_groupcache/g/{}", "k".repeat(2000));
    get(served.addr, &long_target)
        .await
        .assert_refusal(414, "the limit is 1024 bytes");
    let long_key = format!("/_groupcache/g/{}", "k".repeat(101));
    get(served.addr, &long_key)
        .await
        .assert_refusal(414, "key too long (101 bytes)");
    assert_eq!(served.counters.snapshot().uri_too_long, 1);
    let group = served.node.group("g").unwrap();
    assert_eq!(group.stats().main_cache.items, 1, "the cached key is kept");
    assert_serves(served.addr, "kept").await;
}

#[tokio::test]
async fn a_body_that_does_not_arrive_in_time_gets_408() {
    let limits = ServerLimits::builder()
        .body_read_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let served = serve(limits, HttpOptions::default()).await;
    let answer = tokio::time::timeout(WAIT, async {
        let mut stream = TcpStream::connect(served.addr).await.unwrap();
        // Promise 100 bytes, send 10, then wait for the answer.
        let head = "PUT /_groupcache/g/k HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n";
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(&[0u8; 10]).await.unwrap();
        let mut answer = vec![0u8; 4096];
        let n = stream.read(&mut answer).await.unwrap();
        answer.truncate(n);
        answer
    })
    .await
    .expect("no answer to a slow body");
    parse(&answer).assert_refusal(408, "body read timeout");
    assert_eq!(served.counters.snapshot().body_timeouts, 1);
    assert_serves(served.addr, "after").await;
}

#[tokio::test]
async fn a_client_trickling_its_headers_is_disconnected() {
    let limits = ServerLimits::builder()
        .header_read_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let served = serve(limits, HttpOptions::default()).await;
    let mut stream = TcpStream::connect(served.addr).await.unwrap();
    stream
        .write_all(b"GET /_groupcache/g/k HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // The rest of the head never comes: the server must hang up (with a
    // 408 or without a word) well within the bound.
    let mut answer = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut answer))
        .await
        .expect("the slow client was not disconnected")
        .ok();
    if !answer.is_empty() {
        assert_eq!(parse(&answer).status, 408);
    }
    assert_serves(served.addr, "after").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_http2_connection_gets_at_most_its_stream_limit_at_once() {
    let limits = ServerLimits::builder()
        .max_concurrent_streams(2)
        .build()
        .unwrap();
    let served = serve(limits, HttpOptions::default()).await;
    let stream = TcpStream::connect(served.addr).await.unwrap();
    let (sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection);
    // Streams opened before the server's settings arrive may be refused
    // (REFUSED_STREAM: never processed, safe to retry); once the client
    // knows the limit it queues. Each request retries until answered.
    let requests: Vec<_> = (0..6)
        .map(|i| {
            let sender = sender.clone();
            let uri = format!("http://{}/_groupcache/g/slow-h2-{i}", served.addr);
            tokio::spawn(async move {
                let mut refused = 0;
                loop {
                    let mut sender = sender.clone();
                    let request = http::Request::get(&uri)
                        .body(Full::new(Bytes::new()))
                        .unwrap();
                    sender.ready().await.unwrap();
                    match sender.send_request(request).await {
                        Ok(response) => {
                            let status = response.status();
                            let body = response.into_body().collect().await.unwrap();
                            return (status, body.to_bytes(), refused);
                        }
                        Err(error) => {
                            let refusal = format!("{error:?}");
                            assert!(refusal.contains("REFUSED_STREAM"), "{refusal}");
                            refused += 1;
                        }
                    }
                }
            })
        })
        .collect();
    wait_until("two streams are in the loader", || {
        served.waiting.load(Ordering::SeqCst) == 2
    })
    .await;
    // A round trip on another connection lets the server run; a third
    // stream, had it been admitted, would be in the loader by now.
    assert_serves(served.addr, "other").await;
    assert_eq!(served.waiting.load(Ordering::SeqCst), 2);
    served.gate.add_permits(6);
    for request in requests {
        let (status, body, _refused) = tokio::time::timeout(WAIT, request)
            .await
            .expect("an HTTP/2 request never finished")
            .unwrap();
        assert_eq!(status, 200);
        assert!(!body.is_empty());
    }
}

#[tokio::test]
async fn unknown_methods_get_405_naming_the_allowed_ones() {
    let served = serve(ServerLimits::default(), HttpOptions::default()).await;
    let answer = exchange(served.addr, &request("PATCH", "/_groupcache/g/k", &[], b"")).await;
    answer.assert_refusal(405, "method PATCH not allowed");
    assert!(answer.header("allow").is_some_and(|a| a.contains("GET")));
}

#[tokio::test]
async fn a_client_that_connects_and_says_nothing_is_disconnected() {
    let limits = ServerLimits::builder()
        .header_read_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let served = serve(limits, HttpOptions::default()).await;
    // Silent from the start (before any protocol is known), and half of
    // the HTTP/2 preface: both are closed within the header-read timeout.
    let mut silent = TcpStream::connect(served.addr).await.unwrap();
    let mut half = TcpStream::connect(served.addr).await.unwrap();
    half.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
    for stream in [&mut silent, &mut half] {
        let mut answer = Vec::new();
        tokio::time::timeout(WAIT, stream.read_to_end(&mut answer))
            .await
            .expect("an idle connection was never closed")
            .ok();
        assert!(answer.is_empty(), "{:?}", String::from_utf8_lossy(&answer));
    }
    assert_serves(served.addr, "after").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_connection_cap_new_clients_wait_for_a_free_slot() {
    let limits = ServerLimits::builder().max_connections(2).build().unwrap();
    let served = serve(limits, HttpOptions::default()).await;
    // Two connections hold both slots (each waits in a slow load).
    let addr = served.addr;
    let held: Vec<_> = (0..2)
        .map(|i| {
            tokio::spawn(async move { get(addr, &format!("/_groupcache/g/slow-cap-{i}")).await })
        })
        .collect();
    wait_until("both slots are taken", || {
        served.waiting.load(Ordering::SeqCst) == 2
    })
    .await;
    // A third client connects (the kernel's backlog takes it) and sends its
    // request, but gets no answer while both slots are taken: absence can
    // only be checked for a while, here 300 ms.
    let mut third = TcpStream::connect(addr).await.unwrap();
    third
        .write_all(&request("GET", "/_groupcache/g/third", &[], b""))
        .await
        .unwrap();
    let mut answer = Vec::new();
    let early =
        tokio::time::timeout(Duration::from_millis(300), third.read_to_end(&mut answer)).await;
    assert!(
        early.is_err(),
        "served beyond the connection cap: {answer:?}"
    );
    assert!(served.counters.snapshot().connection_waits >= 1);
    // Once a slot frees, it is served.
    served.gate.add_permits(2);
    for request in held {
        assert_eq!(request.await.unwrap().status, 200);
    }
    tokio::time::timeout(WAIT, third.read_to_end(&mut answer))
        .await
        .expect("the waiting client was never served")
        .unwrap();
    let answer = parse(&answer);
    assert_eq!(answer.status, 200, "{answer:?}");
}

/// Options with the cluster secret `secret`.
fn with_secret(secret: &[u8]) -> HttpOptions {
    HttpOptions::builder()
        .auth(Arc::new(PeerAuth::new(secret).unwrap()))
        .build()
        .unwrap()
}

const SECRET: &[u8] = b"a cluster secret of 32 bytes....";

/// Two nodes sharing `options`; returns them and a key the second owns.
async fn pair(first: HttpOptions, second: HttpOptions) -> (Served, Served, String) {
    let a = serve(ServerLimits::default(), first).await;
    let b = serve(ServerLimits::default(), second).await;
    let urls = [format!("http://{}", a.addr), format!("http://{}", b.addr)];
    a.pool.set_peers(&urls).unwrap();
    b.pool.set_peers(&urls).unwrap();
    let key = (0..)
        .map(|i| format!("key-{i}"))
        .find(|k| a.pool.owner(k) == urls[1])
        .unwrap();
    (a, b, key)
}

#[tokio::test]
async fn nodes_sharing_a_secret_serve_each_other_and_refuse_strangers() {
    let (a, b, key) = pair(with_secret(SECRET), with_secret(SECRET)).await;
    let value = a.node.group("g").unwrap().get(&key).await.unwrap();
    assert_eq!(value, Value::from(format!("value of {key}")));
    let stats = a.node.group("g").unwrap().stats();
    assert_eq!((stats.peer_loads, stats.peer_errors), (1, 0));
    // A request without a proof, as a Go node or anyone else would send it.
    let stranger = get(b.addr, &format!("/_groupcache/g/{key}")).await;
    stranger.assert_refusal(401, "no PeerCache-HMAC-SHA256 proof");
    assert_eq!(
        stranger.header("www-authenticate"),
        Some("PeerCache-HMAC-SHA256")
    );
    let forged = exchange(
        b.addr,
        &request(
            "GET",
            &format!("/_groupcache/g/{key}"),
            &[("Authorization", "Bearer let-me-in")],
            b"",
        ),
    )
    .await;
    forged.assert_refusal(401, "malformed");
}

#[tokio::test]
async fn a_node_with_another_secret_is_refused_and_loads_for_itself() {
    let (a, b, key) = pair(
        with_secret(b"the wrong secret, 32 bytes long."),
        with_secret(SECRET),
    )
    .await;
    // Refused by the owner, a loads the key itself: served, not shared.
    let value = a.node.group("g").unwrap().get(&key).await.unwrap();
    assert_eq!(value, Value::from(format!("value of {key}")));
    let stats = a.node.group("g").unwrap().stats();
    assert_eq!(
        (stats.peer_loads, stats.peer_errors, stats.local_loads),
        (0, 1, 1)
    );
    assert_eq!(b.node.group("g").unwrap().stats().server_requests, 0);
    // A refusal does not take the owner out of the ring: it is alive.
    let status = a.pool.peer_status();
    assert!(status
        .iter()
        .all(|p| p.state != peercache::health::PeerState::Down));
}

#[tokio::test]
async fn replayed_stale_and_tampered_requests_are_refused() {
    let served = serve(ServerLimits::default(), with_secret(SECRET)).await;
    let signer = PeerAuth::new(SECRET).unwrap();
    let group = served.node.served_group("g").unwrap();
    group.set("victim", Value::from("original"));

    // A signed DELETE works once; the same bytes again are a replay.
    let path = "/_groupcache/g/victim";
    let me = format!("http://{}", served.addr);
    let proof = signer.sign("DELETE", &me, path, b"");
    let delete = request(
        "DELETE",
        path,
        &[("Authorization", proof.to_str().unwrap())],
        b"",
    );
    assert_eq!(exchange(served.addr, &delete).await.status, 200);
    group.set("victim", Value::from("original"));
    exchange(served.addr, &delete)
        .await
        .assert_refusal(401, "already used");

    // A proof stamped 60 s ago is outside the 30 s window.
    let past = ManualClock::at(std::time::SystemTime::now() - Duration::from_secs(60));
    let old = PeerAuth::new(SECRET).unwrap().with_clock(past);
    let proof = old.sign("GET", &me, path, b"");
    exchange(
        served.addr,
        &request(
            "GET",
            path,
            &[("Authorization", proof.to_str().unwrap())],
            b"",
        ),
    )
    .await
    .assert_refusal(401, "outside the 30s window");

    // A PUT whose body is not the one signed changes nothing.
    let body = peercache::proto::SetRequest {
        group: Some("g".into()),
        key: Some("victim".into()),
        value: Some(Bytes::from_static(b"forged")),
        expire: None,
    };
    let body = prost::Message::encode_to_vec(&body);
    let put_with = |proof: http::HeaderValue| {
        let headers = [("Authorization", proof.to_str().unwrap().to_owned())];
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        request("PUT", path, &headers, &body)
    };
    let tampered = put_with(signer.sign("PUT", &me, path, b"what was signed"));
    exchange(served.addr, &tampered)
        .await
        .assert_refusal(401, "does not match the signed digest");
    // A proof for another path does not carry over.
    let elsewhere = put_with(signer.sign("PUT", &me, "/_groupcache/g/other", &body));
    exchange(served.addr, &elsewhere)
        .await
        .assert_refusal(401, "signature does not match");
    // A proof made for another node cannot be replayed to this one.
    let other_node = put_with(signer.sign("PUT", "http://10.9.9.9:8080", path, &body));
    exchange(served.addr, &other_node)
        .await
        .assert_refusal(401, "proof is for \"http://10.9.9.9:8080\"");
    assert_eq!(group.get("victim").await.unwrap(), Value::from("original"));
}
