//! The HTTP transport over real sockets on 127.0.0.1: the peer endpoint's
//! bytes against captures of a real golang/groupcache node, malformed
//! requests, clusters of in-process nodes talking HTTP, fallbacks, timeouts
//! and connection reuse.

use peercache::http::{HttpOptions, HttpPool, PlusInPath};
use peercache::{loader_fn, Error, Group, LoadError, Node, Value};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

/// Bound on every wait in these tests.
const WAIT: Duration = Duration::from_secs(10);

/// A node serving its peer endpoint on an ephemeral port.
struct TestNode {
    url: String,
    addr: SocketAddr,
    node: Node,
    pool: Arc<HttpPool>,
    loads: Arc<Mutex<HashMap<String, u32>>>,
    _stop: oneshot::Sender<()>,
}

async fn listen() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    (listener, url)
}

/// The reference loader of the captures: `"v:" + key` repeated to `size`
/// bytes; keys starting with `err` fail, keys starting with `missing` are not
/// found.
fn ref_value(key: &str, size: usize) -> Vec<u8> {
    let unit = format!("v:{key}");
    unit.bytes().cycle().take(size).collect()
}

fn start(listener: TcpListener, url: &str, options: HttpOptions, value_size: usize) -> TestNode {
    let pool = HttpPool::new(url, options).unwrap();
    let node = Node::with_picker(pool.clone());
    let loads = Arc::new(Mutex::new(HashMap::new()));
    let counted = Arc::clone(&loads);
    node.new_group(
        "ref",
        1 << 20,
        loader_fn(move |key: String| {
            *counted.lock().unwrap().entry(key.clone()).or_insert(0) += 1;
            async move {
                if key.starts_with("err") {
                    Err(LoadError::msg(format!(
                        "refnode: loader error for key {key:?}"
                    )))
                } else if key.starts_with("missing") {
                    Err(LoadError::NotFound)
                } else {
                    Ok(Value::new(ref_value(&key, value_size)))
                }
            }
        }),
    )
    .unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let addr = listener.local_addr().unwrap();
    let service = pool.service(node.clone());
    tokio::spawn(peercache::http::serve_with_shutdown(
        listener,
        service,
        async {
            let _ = stopped.await;
        },
    ));
    TestNode {
        url: url.to_owned(),
        addr,
        node,
        pool,
        loads,
        _stop: stop,
    }
}

async fn single(options: HttpOptions, value_size: usize) -> TestNode {
    let (listener, url) = listen().await;
    start(listener, &url, options, value_size)
}

/// `n` nodes that all list each other.
async fn cluster(n: usize, options: HttpOptions) -> Vec<TestNode> {
    let mut bound = Vec::new();
    for _ in 0..n {
        bound.push(listen().await);
    }
    let urls: Vec<String> = bound.iter().map(|(_, url)| url.clone()).collect();
    let nodes: Vec<TestNode> = bound
        .into_iter()
        .map(|(listener, url)| start(listener, &url, options.clone(), 100))
        .collect();
    for node in &nodes {
        node.pool.set_peers(&urls).unwrap();
    }
    nodes
}

impl TestNode {
    fn group(&self) -> Group {
        self.node.group("ref").unwrap()
    }

    fn loads_of(&self, key: &str) -> u32 {
        self.loads.lock().unwrap().get(key).copied().unwrap_or(0)
    }
}

/// A response as raw parts.
#[derive(Debug)]
struct Raw {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Raw {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Sends `method target` as a raw HTTP/1.1 request (so malformed targets
/// reach the server unmodified) and reads the whole answer.
async fn raw(addr: SocketAddr, method: &str, target: &str) -> Raw {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let request =
            format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.unwrap();
        answer
    };
    let answer = tokio::time::timeout(WAIT, exchange)
        .await
        .expect("no answer in time");
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("no end of head");
    let head = String::from_utf8(answer[..split].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .map(|l| {
            let (n, v) = l.split_once(": ").unwrap();
            (n.to_owned(), v.to_owned())
        })
        .collect();
    Raw {
        status,
        headers,
        body: answer[split + 4..].to_vec(),
    }
}

fn golden(name: &str, part: &str) -> Vec<u8> {
    let path: PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "tests/data/golang-wire",
        &format!("{name}.{part}"),
    ]
    .iter()
    .collect();
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Status, content type and body equal the golden capture's.
fn assert_golden(name: &str, got: &Raw) {
    let status: u16 = String::from_utf8(golden(name, "status"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(got.status, status, "{name}: status");
    let headers = String::from_utf8(golden(name, "headers")).unwrap();
    let content_type = headers
        .lines()
        .find_map(|l| l.strip_prefix("Content-Type: "))
        .unwrap();
    assert_eq!(
        got.header("content-type"),
        Some(content_type),
        "{name}: content type"
    );
    assert_eq!(got.body, golden(name, "body"), "{name}: body");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_byte_for_byte_as_a_golang_node() {
    let node = single(HttpOptions::default(), 100).await;
    for (name, target) in [
        ("peer_owner_beta", "/_groupcache/ref/beta"),
        ("escaped_slash_in_key", "/_groupcache/ref/x%2Fy"),
        ("empty_key", "/_groupcache/ref/"),
        ("query_ignored", "/_groupcache/ref/beta?x=1"),
        ("unknown_group", "/_groupcache/nosuchgroup/beta"),
    ] {
        assert_golden(name, &raw(node.addr, "GET", target).await);
    }
    assert_eq!(
        raw(node.addr, "GET", "/_groupcache/ref/beta")
            .await
            .header("x-content-type-options"),
        None
    );
    let empty = single(HttpOptions::default(), 0).await;
    assert_golden(
        "peer_value_size_0",
        &raw(empty.addr, "GET", "/_groupcache/ref/k1").await,
    );
    let big = single(HttpOptions::default(), 300).await;
    assert_golden(
        "peer_value_size_300",
        &raw(big.addr, "GET", "/_groupcache/ref/k1").await,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_raw_plus_is_read_per_the_client_family() {
    // Go servers read '+' literally (the capture); that is mailgun clients'
    // meaning, and peercache's with PlusInPath::Literal.
    let literal = single(
        HttpOptions::builder()
            .plus_in_path(PlusInPath::Literal)
            .build()
            .unwrap(),
        100,
    )
    .await;
    assert_golden(
        "plus_in_key",
        &raw(literal.addr, "GET", "/_groupcache/ref/a+b").await,
    );
    assert_eq!(literal.loads_of("a+b"), 1);
    // A golang client sends a space as '+': in golang mode that is a space.
    let golang = single(HttpOptions::default(), 100).await;
    let answer = raw(golang.addr, "GET", "/_groupcache/ref/a+b").await;
    assert_eq!(answer.status, 200);
    assert_eq!(golang.loads_of("a b"), 1);
    assert_eq!(golang.loads_of("a+b"), 0);
    raw(golang.addr, "GET", "/_groupcache/ref/a%2Bb").await;
    assert_eq!(golang.loads_of("a+b"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_a_clear_4xx_and_nothing_cached_is_lost() {
    let node = single(HttpOptions::default(), 100).await;
    assert_eq!(
        raw(node.addr, "GET", "/_groupcache/ref/kept").await.status,
        200
    );
    let huge_key = format!("/_groupcache/ref/{}", "k".repeat(20 << 10));
    let cases: Vec<(&str, String, u16, &str)> = vec![
        (
            "GET",
            "/_groupcache/ref".into(),
            400,
            "no '/' after the group",
        ),
        ("GET", "/_groupcache/".into(), 400, "no '/' after the group"),
        (
            "GET",
            "/_groupcache//k".into(),
            400,
            "group name in the path is empty",
        ),
        (
            "GET",
            "/_groupcache/ref/a%zzb".into(),
            400,
            "invalid percent-escape",
        ),
        (
            "GET",
            "/_groupcache/ref/a%4".into(),
            400,
            "invalid percent-escape",
        ),
        (
            "GET",
            "/_groupcache/r%GGf/k".into(),
            400,
            "invalid percent-escape",
        ),
        ("GET", "/_groupcache/ref/%FF%FE".into(), 400, "not UTF-8"),
        (
            "GET",
            "/elsewhere/ref/k".into(),
            400,
            "not under the peer base path",
        ),
        (
            "GET",
            "/_groupcache/nosuchgroup/k".into(),
            404,
            "no such group: nosuchgroup",
        ),
        (
            "GET",
            "/_groupcache/no%20such/k".into(),
            404,
            "no such group: no such",
        ),
        ("GET", huge_key, 414, "limit is 16384 bytes"),
        (
            "POST",
            "/_groupcache/ref/k".into(),
            404,
            "invalid path for POST",
        ),
        (
            "PATCH",
            "/_groupcache/ref/kept".into(),
            405,
            "method PATCH not allowed",
        ),
        (
            "PUT",
            "/_groupcache/ref/kept".into(),
            400,
            "no key (field 2)",
        ),
        (
            "POST",
            "/_groupcache/ref/_remove-keys/".into(),
            400,
            "not a JSON RemoveKeysRequest",
        ),
    ];
    for (method, target, status, text) in &cases {
        let answer = raw(node.addr, method, target).await;
        let body = String::from_utf8_lossy(&answer.body);
        assert_eq!(answer.status, *status, "{method} {target:.80}: {body}");
        assert!(
            body.contains(text),
            "{method} {target:.80}: {body:?} lacks {text:?}"
        );
        assert!(body.ends_with('\n'));
    }
    // A path far beyond any limit is refused by the HTTP layer, not served.
    let enormous = format!("/_groupcache/ref/{}", "k".repeat(1 << 20));
    let answer = raw(node.addr, "GET", &enormous).await;
    assert!((400..500).contains(&answer.status), "{}", answer.status);
    // The node still serves, from its cache.
    assert_eq!(
        raw(node.addr, "GET", "/_groupcache/ref/kept").await.status,
        200
    );
    assert_eq!(node.loads_of("kept"), 1);
    assert_eq!(node.group().stats().main_cache.items, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loader_errors_at_the_owner_map_to_statuses_mailgun_clients_respect() {
    let node = single(HttpOptions::default(), 100).await;
    let missing = raw(node.addr, "GET", "/_groupcache/ref/missing1").await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.header("x-peercache-not-found"), Some("1"));
    assert!(String::from_utf8_lossy(&missing.body).contains("not found"));
    let failed = raw(node.addr, "GET", "/_groupcache/ref/errkey1").await;
    assert_eq!(failed.status, 503);
    assert!(
        String::from_utf8_lossy(&failed.body).contains("refnode: loader error for key \"errkey1\"")
    );
    assert_eq!(failed.header("retry-after"), None);
    assert_eq!(node.group().stats().server_requests, 2);
}

/// Finds a key `pick` accepts, trying k0, k1, ...
fn key_where(pick: impl Fn(&str) -> bool) -> String {
    (0..100_000)
        .map(|i| format!("k{i}"))
        .find(|k| pick(k))
        .expect("no such key in 100,000 tries")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_node_cluster_loads_each_key_once_at_its_owner() {
    let nodes = cluster(3, HttpOptions::default()).await;
    let keys: Vec<String> = (0..60)
        .map(|i| format!("key-{i}"))
        .chain(["a b", "a+b", "x/y", "100%", "ü/ñ?#&=", ""].map(String::from))
        .collect();
    for node in &nodes {
        for key in &keys {
            let value = node.group().get(key).await.unwrap();
            assert_eq!(value.as_bytes(), ref_value(key, 100), "key {key:?}");
        }
    }
    for key in &keys {
        let owner = nodes[0].pool.owner(key);
        let loads: Vec<u32> = nodes.iter().map(|n| n.loads_of(key)).collect();
        assert_eq!(loads.iter().sum::<u32>(), 1, "key {key:?} loads {loads:?}");
        let loader = nodes.iter().position(|n| n.loads_of(key) == 1).unwrap();
        assert_eq!(nodes[loader].url, owner, "key {key:?} loaded off its owner");
    }
    for node in &nodes {
        let stats = node.group().stats();
        let owned = keys
            .iter()
            .filter(|k| node.pool.owner(k) == node.url)
            .count() as u64;
        assert_eq!(stats.local_loads, owned);
        // Keys owned elsewhere are fetched once each (the hot cache may keep
        // some, but the first get of each key here is a peer load).
        assert_eq!(stats.peer_loads, keys.len() as u64 - owned);
        assert_eq!(stats.peer_errors, 0);
        assert_eq!(stats.server_requests, 2 * owned);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_with_disagreeing_lists_never_forward_or_wait_on_each_other() {
    // Node a hashes like golang, node b like mailgun: for the key chosen, each
    // thinks the other owns it. In Go, a asks b, b forwards to a, ... Here the
    // served request is answered from the server's own loader.
    let (la, a_url) = listen().await;
    let (lb, b_url) = listen().await;
    let a = start(la, &a_url, HttpOptions::default(), 100);
    let b = start(lb, &b_url, HttpOptions::mailgun(), 100);
    a.pool.set_peers([&a_url, &b_url]).unwrap();
    b.pool.set_peers([&a_url, &b_url]).unwrap();
    let key = key_where(|k| a.pool.owner(k) == b_url && b.pool.owner(k) == a_url);
    // Both gets at once: if either served request were forwarded, each node
    // would wait on the other's load of the same key.
    let (ga, gb) = (a.group(), b.group());
    let (ka, kb) = (key.clone(), key.clone());
    let both = async move { tokio::join!(ga.get(&ka), gb.get(&kb)) };
    let (va, vb) = tokio::time::timeout(WAIT, both).await.expect("deadlock");
    assert_eq!(va.unwrap().as_bytes(), ref_value(&key, 100));
    assert_eq!(vb.unwrap().as_bytes(), ref_value(&key, 100));
    let mut served = 0;
    for node in [&a, &b] {
        let stats = node.group().stats();
        assert_eq!(
            stats.peer_errors, 0,
            "a fetch timed out: the request was forwarded"
        );
        served += stats.server_requests;
    }
    // Usually both ask each other; when one node has already cached the key
    // from serving the other's request, only one asks.
    assert!(served >= 1, "neither node asked the other");
}

/// Gets from `node` a key that `peer_url` owns: the fetch must fail and the
/// key be loaded here, counted as one peer error and one local load.
async fn assert_loaded_here_after_a_peer_error(node: &TestNode, peer_url: &str) {
    let key = key_where(|k| node.pool.owner(k) == peer_url);
    let value = tokio::time::timeout(WAIT, node.group().get(&key))
        .await
        .expect("the fallback took too long")
        .unwrap();
    assert_eq!(value.as_bytes(), ref_value(&key, 100));
    let stats = node.group().stats();
    assert_eq!(
        (stats.peer_errors, stats.local_loads, stats.peer_loads),
        (1, 1, 0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_down_peer_means_a_local_load_and_a_counted_peer_error() {
    let (listener, url) = listen().await;
    let node = start(listener, &url, HttpOptions::default(), 100);
    let (gone, gone_url) = listen().await;
    drop(gone); // nothing listens there now: connections are refused
    node.pool.set_peers([&url, &gone_url]).unwrap();
    assert_loaded_here_after_a_peer_error(&node, &gone_url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_peer_times_out_into_a_local_load() {
    let (listener, url) = listen().await;
    let options = HttpOptions::builder()
        .request_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let node = start(listener, &url, options, 100);
    // A peer that accepts connections and never answers.
    let (hung, hung_url) = listen().await;
    let held = tokio::spawn(async move {
        let mut streams = Vec::new();
        while let Ok((stream, _)) = hung.accept().await {
            streams.push(stream);
        }
    });
    node.pool.set_peers([&url, &hung_url]).unwrap();
    assert_loaded_here_after_a_peer_error(&node, &hung_url).await;
    held.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owners_loader_errors_come_back_without_a_second_load() {
    let nodes = cluster(2, HttpOptions::default()).await;
    let (asker, owner) = (&nodes[0], &nodes[1]);
    let missing =
        key_where(|k| k.len() > 1 && asker.pool.owner(&format!("missing{k}")) == owner.url);
    let missing = format!("missing{missing}");
    match asker.group().get(&missing).await {
        Err(Error::NotFound {
            peer: Some(peer), ..
        }) => assert_eq!(&*peer, owner.url),
        other => panic!("expected not found at the owner, got {other:?}"),
    }
    let failing = format!(
        "err{}",
        key_where(|k| asker.pool.owner(&format!("err{k}")) == owner.url)
    );
    match asker.group().get(&failing).await {
        Err(Error::Load {
            peer: Some(peer),
            source,
            ..
        }) => {
            assert_eq!(&*peer, owner.url);
            assert!(
                source.to_string().contains("refnode: loader error"),
                "{source}"
            );
        }
        other => panic!("expected the owner's load error, got {other:?}"),
    }
    assert_eq!((asker.loads_of(&missing), asker.loads_of(&failing)), (0, 0));
    assert_eq!((owner.loads_of(&missing), owner.loads_of(&failing)), (1, 1));
    let stats = asker.group().stats();
    assert_eq!(
        (stats.peer_errors, stats.local_loads, stats.local_load_errs),
        (0, 0, 0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_misrouted_404_is_a_peer_error_in_golang_mode() {
    // A "peer" whose base path is wrong answers 404 page not found, as Go's
    // mux does: not the owner's verdict on the key, so load here.
    let (listener, url) = listen().await;
    let node = start(listener, &url, HttpOptions::default(), 100);
    let (other, other_url) = listen().await;
    let misrouted = tokio::spawn(async move {
        while let Ok((mut stream, _)) = other.accept().await {
            tokio::spawn(async move {
                let mut head = [0u8; 4096];
                let _ = stream.read(&mut head).await;
                let answer = "HTTP/1.1 404 Not Found\r\nContent-Length: 19\r\nConnection: close\r\n\r\n404 page not found\n";
                let _ = stream.write_all(answer.as_bytes()).await;
            });
        }
    });
    node.pool.set_peers([&url, &other_url]).unwrap();
    assert_loaded_here_after_a_peer_error(&node, &other_url).await;
    misrouted.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_travels_with_the_value() {
    let nodes = cluster(2, HttpOptions::default()).await;
    let at = SystemTime::now() + Duration::from_secs(3600);
    // A second group whose loader sets an expiry, on both nodes.
    for node in &nodes {
        node.node
            .new_group(
                "expiring",
                1 << 20,
                loader_fn(move |key: String| async move { Ok(Value::from(key).with_expiry(at)) }),
            )
            .unwrap();
    }
    let key = key_where(|k| nodes[0].pool.owner(k) == nodes[1].url);
    let value = nodes[0]
        .node
        .group("expiring")
        .unwrap()
        .get(&key)
        .await
        .unwrap();
    assert_eq!(value.as_str().unwrap(), key);
    let nanos = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64;
    assert_eq!(value.expiry_unix_nanos(), nanos);
    assert_eq!(
        nodes[0].node.group("expiring").unwrap().stats().peer_loads,
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_to_a_peer_are_reused_under_load() {
    // The owner is served by an accept loop that counts connections.
    let (asker_listener, asker_url) = listen().await;
    let asker = start(asker_listener, &asker_url, HttpOptions::default(), 100);
    let (owner_listener, owner_url) = listen().await;
    let owner_node = Node::new();
    owner_node
        .new_group(
            "ref",
            1 << 20,
            loader_fn(|key: String| async move { Ok(key) }),
        )
        .unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&accepted);
    let service = peercache::http::PeerService::without_pool(owner_node);
    let server = tokio::spawn(async move {
        loop {
            let (stream, _) = owner_listener.accept().await.unwrap();
            counter.fetch_add(1, Ordering::SeqCst);
            let service = service.clone();
            tokio::spawn(async move {
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .await;
            });
        }
    });
    asker.pool.set_peers([&asker_url, &owner_url]).unwrap();
    let keys: Vec<String> = (0..20_000)
        .map(|i| format!("key-{i}"))
        .filter(|k| asker.pool.owner(k) == owner_url)
        .take(2_000)
        .collect();
    const CONCURRENCY: usize = 8;
    let mut workers = Vec::new();
    for chunk in keys.chunks(keys.len() / CONCURRENCY) {
        let (group, chunk) = (asker.group(), chunk.to_vec());
        workers.push(tokio::spawn(async move {
            for key in chunk {
                assert_eq!(group.get(&key).await.unwrap().as_str().unwrap(), key);
            }
        }));
    }
    for worker in workers {
        tokio::time::timeout(WAIT, worker).await.unwrap().unwrap();
    }
    let stats = asker.group().stats();
    assert_eq!(stats.peer_loads, keys.len() as u64);
    assert_eq!(stats.peer_errors, 0);
    // hyper's pool returns a connection a moment after its response is read,
    // so a request racing that moment opens another: about CONCURRENCY to
    // 2 x CONCURRENCY connections in all (15 seen), where golang opens
    // close to one per request beyond its 2 idle connections.
    let connections = accepted.load(Ordering::SeqCst);
    assert!(
        connections <= 3 * CONCURRENCY,
        "{} requests used {connections} connections",
        keys.len()
    );
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_can_talk_http2() {
    let nodes = cluster(2, HttpOptions::builder().http2(true).build().unwrap()).await;
    let key = key_where(|k| nodes[0].pool.owner(k) == nodes[1].url);
    let value = nodes[0].group().get(&key).await.unwrap();
    assert_eq!(value.as_bytes(), ref_value(&key, 100));
    assert_eq!(nodes[0].group().stats().peer_loads, 1);
    assert_eq!(nodes[1].loads_of(&key), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_peer_list_is_checked_and_swapped_whole() {
    use peercache::http::PoolError;
    let me = "http://127.0.0.1:1";
    let pool = HttpPool::new(me, HttpOptions::default()).unwrap();
    assert!(matches!(
        pool.set_peers(["http://127.0.0.1:2"]),
        Err(PoolError::SelfMissing { .. })
    ));
    assert!(matches!(
        pool.set_peers([me, me]),
        Err(PoolError::Duplicate { .. })
    ));
    assert!(matches!(
        pool.set_peers([me, "127.0.0.1:3"]),
        Err(PoolError::InvalidUrl { .. })
    ));
    let err = pool
        .set_peers(["http://localhost:1"])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("http://127.0.0.1:1") && err.contains("--self"),
        "{err}"
    );
    assert_eq!(pool.peers(), [me], "a refused list must leave the old one");
    assert!(matches!(
        HttpPool::new("localhost:1", HttpOptions::default()),
        Err(PoolError::InvalidUrl { .. })
    ));
    let refused = HttpOptions::builder()
        .base_path("nope")
        .build()
        .unwrap_err();
    assert_eq!(refused.setting(), "base_path");
    // Readers racing with writers always see one whole list.
    let lists = [
        vec![me.to_owned(), "http://127.0.0.1:2".to_owned()],
        vec![
            me.to_owned(),
            "http://127.0.0.1:3".to_owned(),
            "http://127.0.0.1:4".to_owned(),
        ],
    ];
    pool.set_peers(&lists[0]).unwrap();
    let writer = {
        let (pool, lists) = (Arc::clone(&pool), lists.clone());
        std::thread::spawn(move || {
            for i in 0..2_000 {
                pool.set_peers(&lists[i % 2]).unwrap();
            }
        })
    };
    while !writer.is_finished() {
        let peers = pool.peers();
        assert!(lists.contains(&peers), "{peers:?}");
        let owner = pool.owner("some key");
        assert!(lists.iter().any(|l| l.contains(&owner)));
    }
    writer.join().unwrap();
}

/// Fetches a key from a peer that is `app` (not a peer endpoint): the
/// reason the fetch was unavailable, and the peer's URL.
async fn unavailable_from(app: axum::Router) -> (String, String) {
    let (listener, other) = listen().await;
    tokio::spawn(async move { axum::serve(listener, app).await });
    let me = "http://127.0.0.1:9";
    let pool = HttpPool::new(me, HttpOptions::default()).unwrap();
    pool.set_peers([me, other.as_str()]).unwrap();
    let key = key_where(|key| pool.owner(key) == other);
    let peer = peercache::PeerPicker::pick(&*pool, &key).expect("the other node owns it");
    match peer.fetch("g", &key).await {
        Err(peercache::FetchError::Unavailable(reason)) => (reason, other),
        other => panic!("expected an unavailable peer, got {other:?}"),
    }
}

#[tokio::test]
async fn a_peer_endpoint_not_mounted_where_the_pool_says_is_named_in_the_error() {
    // A node whose server answers 404 to every peer path: its application
    // is there, its peer endpoint is not (mounted elsewhere, or not at all).
    let app = axum::Router::new().route("/healthz", axum::routing::get(|| async { "ok" }));
    let (reason, other) = unavailable_from(app).await;
    assert!(
        reason.contains("404")
            && reason.contains("is its peer endpoint mounted there")
            && reason.contains(&format!("{other}/_groupcache/g/")),
        "{reason}"
    );
    assert!(reason.contains("route_path"), "{reason}");
}

#[tokio::test]
async fn a_200_that_is_not_a_get_response_is_not_taken_for_a_value() {
    // A server that answers every path 200 with an empty text body (a
    // catch-all route, a proxy's default page): an empty body decodes as an
    // empty GetResponse, so it must not be read as an empty value.
    let (reason, _) = unavailable_from(axum::Router::new().fallback(|| async { "" })).await;
    assert!(reason.contains("200 OK without a GetResponse"), "{reason}");
}
