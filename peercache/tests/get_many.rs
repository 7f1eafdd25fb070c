//! `Group::get_many` and batch loaders: answers per key in order, merged
//! loads with single gets, failures kept to their keys, and, over real
//! HTTP on 127.0.0.1, one request per owner in a 3-node cluster, fallback
//! when an owner is down, and the batch endpoint's refusals.

use peercache::http::{HttpOptions, HttpPool, PeerAuth};
use peercache::proto::{GetManyRequest, GetManyResponse, ItemStatus};
use peercache::{batch_loader_fn, loader_fn, Error, LoadError, Loader, Node, Value};
use prost::Message;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, Semaphore};

/// Bound on every wait in these tests.
const WAIT: Duration = Duration::from_secs(10);

/// Polls `condition` until it holds, within [`WAIT`].
async fn until(what: &str, condition: impl Fn() -> bool) {
    let waited = tokio::time::timeout(WAIT, async {
        while !condition() {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "timed out waiting until {what}");
}

/// The batches a loader was called with.
type Calls = Arc<Mutex<Vec<Vec<String>>>>;

/// A batch loader answering `v:<key>`, not-found for keys starting with
/// `missing`, recording its calls.
fn recording_loader(calls: &Calls) -> impl Loader {
    let calls = Arc::clone(calls);
    batch_loader_fn(move |keys: Vec<String>| {
        calls.lock().unwrap().push(keys.clone());
        async move {
            Ok(keys
                .into_iter()
                .filter(|k| !k.starts_with("missing"))
                .map(|k| (k.clone(), format!("v:{k}")))
                .collect::<Vec<_>>())
        }
    })
}

fn text(answer: &Result<Value, Error>) -> String {
    answer.as_ref().unwrap().as_str().unwrap().to_owned()
}

#[tokio::test]
async fn answers_in_order_with_duplicates_asked_once_and_one_loader_call() {
    let calls = Calls::default();
    let group = Node::new()
        .new_group("g", 1 << 20, recording_loader(&calls))
        .unwrap();
    group.get("b").await.unwrap(); // cached before the batch
    calls.lock().unwrap().clear();
    let answers = group.get_many(&["a", "b", "missing-1", "a", "c"]).await;
    assert_eq!(answers.len(), 5);
    assert_eq!(text(&answers[0]), "v:a");
    assert_eq!(text(&answers[1]), "v:b");
    assert!(answers[2].as_ref().unwrap_err().is_not_found());
    assert_eq!(text(&answers[3]), "v:a");
    assert_eq!(text(&answers[4]), "v:c");
    assert_eq!(
        *calls.lock().unwrap(),
        [["a", "missing-1", "c"]],
        "one call, for the misses only, each once"
    );
    let stats = group.stats();
    assert_eq!((stats.cache_hits, stats.local_loads), (1, 3));
    assert!(group.get_many::<&str>(&[]).await.is_empty());
}

/// A loader whose batch answers a different error per key, or too few
/// results, or panics.
struct Picky;

impl Loader for Picky {
    async fn load(&self, key: &str) -> Result<Value, LoadError> {
        Ok(Value::from(key.to_owned()))
    }

    async fn load_many(&self, keys: &[&str]) -> Vec<Result<Value, LoadError>> {
        if keys.contains(&"panic") {
            panic!("the batch source broke");
        }
        let mut answers: Vec<_> = keys
            .iter()
            .map(|k| match *k {
                "bad" => Err(LoadError::msg("no such row: bad")),
                k => Ok(Value::from(k.to_owned())),
            })
            .collect();
        if keys.contains(&"short") {
            answers.pop();
        }
        answers
    }
}

#[tokio::test]
async fn one_keys_failure_never_fails_the_others() {
    let group = Node::new().new_group("g", 1 << 20, Picky).unwrap();
    let answers = group.get_many(&["ok", "bad"]).await;
    assert_eq!(text(&answers[0]), "ok");
    match &answers[1] {
        Err(Error::Load { key, source, .. }) => {
            assert_eq!(&**key, "bad");
            assert_eq!(source.to_string(), "no such row: bad");
        }
        other => panic!("{other:?}"),
    }
    // Too few results: the key left without one fails, naming why.
    let answers = group.get_many(&["short", "last"]).await;
    assert_eq!(text(&answers[0]), "short");
    let error = answers[1].as_ref().unwrap_err().to_string();
    assert!(error.contains("answered 1 results for 2 keys"), "{error}");
    // A panic fails the batch's keys, as a panic fails a get; nothing hangs,
    // and the keys load again afterwards.
    let answers = tokio::time::timeout(WAIT, group.get_many(&["panic", "x"]))
        .await
        .unwrap();
    for answer in &answers {
        assert!(
            matches!(answer, Err(Error::Panicked { message, .. }) if message.contains("the batch source broke")),
            "{answer:?}"
        );
    }
    assert_eq!(text(&group.get("x").await), "x");
    assert!(
        !group
            .cached_keys(peercache::CacheKind::Main)
            .contains(&"bad".to_owned()),
        "errors are not cached"
    );
}

#[tokio::test]
async fn a_key_being_loaded_is_joined_not_loaded_again() {
    let gate = Arc::new(Semaphore::new(0));
    let loads: Arc<Mutex<Vec<String>>> = Arc::default();
    let (gate_in, loads_in) = (Arc::clone(&gate), Arc::clone(&loads));
    let group = Node::new()
        .new_group(
            "g",
            1 << 20,
            loader_fn(move |key: String| {
                loads_in.lock().unwrap().push(key.clone());
                let gate = Arc::clone(&gate_in);
                async move {
                    gate.acquire().await.unwrap().forget();
                    Ok(format!("v:{key}"))
                }
            }),
        )
        .unwrap();
    let single = tokio::spawn({
        let group = group.clone();
        async move { group.get("k").await }
    });
    until("the single get's load started", || {
        loads.lock().unwrap().len() == 1
    })
    .await;
    let batch = tokio::spawn({
        let group = group.clone();
        async move { group.get_many(&["k", "j", "k"]).await }
    });
    until("the batch's own load started", || {
        loads.lock().unwrap().len() == 2
    })
    .await;
    gate.add_permits(2);
    let single = tokio::time::timeout(WAIT, single).await.unwrap().unwrap();
    let batch = tokio::time::timeout(WAIT, batch).await.unwrap().unwrap();
    assert_eq!(text(&single), "v:k");
    assert_eq!(
        batch.iter().map(text).collect::<Vec<_>>(),
        ["v:k", "v:j", "v:k"]
    );
    assert_eq!(*loads.lock().unwrap(), ["k", "j"], "k loaded once");
    let stats = group.stats();
    assert_eq!((stats.loads, stats.loads_deduped), (3, 2));
}

#[tokio::test]
async fn a_dropped_batch_still_fills_the_cache() {
    let gate = Arc::new(Semaphore::new(0));
    let calls = Arc::new(AtomicUsize::new(0));
    let (gate_in, calls_in) = (Arc::clone(&gate), Arc::clone(&calls));
    let group = Node::new()
        .new_group(
            "g",
            1 << 20,
            batch_loader_fn(move |keys: Vec<String>| {
                calls_in.fetch_add(1, Ordering::SeqCst);
                let gate = Arc::clone(&gate_in);
                async move {
                    gate.acquire().await.unwrap().forget();
                    Ok(keys.into_iter().map(|k| (k.clone(), k)).collect::<Vec<_>>())
                }
            }),
        )
        .unwrap();
    let batch = tokio::spawn({
        let group = group.clone();
        async move { group.get_many(&["a", "b"]).await }
    });
    until("the batch load started", || {
        calls.load(Ordering::SeqCst) == 1
    })
    .await;
    batch.abort();
    let _ = batch.await;
    gate.add_permits(1);
    until("both keys are cached", || {
        group.stats().main_cache.items == 2
    })
    .await;
    assert_eq!(text(&group.get("a").await), "a");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

/// A node serving its peer endpoint on 127.0.0.1, with a recording batch
/// loader.
struct TestNode {
    addr: SocketAddr,
    node: Node,
    calls: Calls,
    _stop: oneshot::Sender<()>,
}

async fn cluster(n: usize) -> Vec<TestNode> {
    cluster_with(n, HttpOptions::default()).await
}

async fn cluster_with(n: usize, options: HttpOptions) -> Vec<TestNode> {
    let mut bound = Vec::new();
    for _ in 0..n {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        bound.push((listener, url));
    }
    let urls: Vec<String> = bound.iter().map(|(_, url)| url.clone()).collect();
    let mut nodes = Vec::new();
    for (listener, url) in bound {
        let pool = HttpPool::new(&url, options.clone()).unwrap();
        pool.set_peers(&urls).unwrap();
        let node = Node::with_picker(pool.clone());
        let calls = Calls::default();
        node.new_group("g", 64 << 20, recording_loader(&calls))
            .unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(peercache::http::serve_with_shutdown(
            listener,
            pool.service(node.clone()),
            async {
                let _ = stopped.await;
            },
        ));
        nodes.push(TestNode {
            addr,
            node,
            calls,
            _stop: stop,
        });
    }
    nodes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_request_per_owner_and_every_key_loaded_once_cluster_wide() {
    let nodes = cluster(3).await;
    let keys: Vec<String> = (0..1000).map(|i| format!("key-{i}")).collect();
    let answers = tokio::time::timeout(WAIT, nodes[0].node.group("g").unwrap().get_many(&keys))
        .await
        .unwrap();
    for (key, answer) in keys.iter().zip(&answers) {
        assert_eq!(text(answer), format!("v:{key}"));
    }
    let mut loaded: HashMap<String, usize> = HashMap::new();
    for (i, node) in nodes.iter().enumerate() {
        let calls = node.calls.lock().unwrap();
        assert_eq!(calls.len(), 1, "node {i}: one loader call for its keys");
        for key in &calls[0] {
            *loaded.entry(key.clone()).or_default() += 1;
        }
        let stats = node.node.group("g").unwrap().stats();
        if i > 0 {
            assert_eq!(stats.server_batches, 1, "node {i}: one batch request");
            assert_eq!(
                stats.server_requests as usize,
                calls[0].len(),
                "node {i}: its keys came in the batch, none alone"
            );
        }
    }
    assert_eq!(loaded.len(), 1000);
    assert!(loaded.values().all(|n| *n == 1), "every key loaded once");
    // Again: all hits (main or hot cache), no request, no load.
    let again = nodes[0].node.group("g").unwrap().get_many(&keys).await;
    assert!(again.iter().all(|a| a.is_ok()));
    let calls: usize = nodes.iter().map(|n| n.calls.lock().unwrap().len()).sum();
    assert_eq!(calls, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_of_an_owner_that_is_down_are_loaded_here() {
    let mut nodes = cluster(3).await;
    let down = nodes.pop().unwrap();
    drop(down._stop); // stops its server
    let keys: Vec<String> = (0..300).map(|i| format!("key-{i}")).collect();
    let group = nodes[0].node.group("g").unwrap();
    let answers = tokio::time::timeout(WAIT, group.get_many(&keys))
        .await
        .unwrap();
    for (key, answer) in keys.iter().zip(&answers) {
        assert_eq!(text(answer), format!("v:{key}"));
    }
    assert!(
        group.stats().peer_errors > 0,
        "the down owner's keys failed over"
    );
    let local: usize = nodes[0].calls.lock().unwrap().iter().map(Vec::len).sum();
    let remote: usize = nodes[1].calls.lock().unwrap().iter().map(Vec::len).sum();
    assert_eq!(
        local + remote,
        300,
        "every key loaded once, here or at node 1"
    );
}

/// Sends a `POST` of `body` to `target` and reads the answer: status,
/// the `x-peercache` header, body.
async fn post(addr: SocketAddr, target: &str, body: &[u8]) -> (u16, Option<String>, Vec<u8>) {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let head = format!(
            "POST {target} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
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
    let status = head[9..12].parse().unwrap();
    let marker = head
        .split("\r\n")
        .filter_map(|l| l.split_once(": "))
        .find(|(n, _)| n.eq_ignore_ascii_case("x-peercache"))
        .map(|(_, v)| v.to_owned());
    (status, marker, answer[split + 4..].to_vec())
}

#[tokio::test]
async fn the_batch_endpoint_answers_per_key_and_refuses_bad_batches() {
    let nodes = cluster(1).await;
    let group = nodes[0].node.group("g").unwrap();
    group.get("cached").await.unwrap();
    let at = "/_groupcache/g/_get-many/";
    let request = GetManyRequest {
        keys: vec!["cached".into(), "missing-x".into(), "new".into()],
    };
    let (status, marker, body) = post(nodes[0].addr, at, &request.encode_to_vec()).await;
    assert_eq!(
        (status, marker.as_deref()),
        (200, Some("get-many, copies-only, peek, hand-over"))
    );
    let answer = GetManyResponse::decode(&body[..]).unwrap();
    let statuses: Vec<_> = answer.items.iter().map(|i| i.status()).collect();
    assert_eq!(
        statuses,
        [ItemStatus::Found, ItemStatus::NotFound, ItemStatus::Found]
    );
    assert_eq!(answer.items[2].value.as_deref(), Some(&b"v:new"[..]));

    let over = GetManyRequest {
        keys: (0..1001).map(|i| i.to_string()).collect(),
    };
    let (status, _, body) = post(nodes[0].addr, at, &over.encode_to_vec()).await;
    assert_eq!(status, 413);
    assert!(String::from_utf8_lossy(&body).contains("more than 1000 keys"));
    let long = GetManyRequest {
        keys: vec!["k".repeat(20 << 10)],
    };
    let (status, _, body) = post(nodes[0].addr, at, &long.encode_to_vec()).await;
    assert_eq!(status, 414, "{}", String::from_utf8_lossy(&body));
    let (status, _, body) = post(nodes[0].addr, at, b"\x0a\x7fnot protobuf").await;
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&body).contains("GetManyRequest"));
    // Nothing cached was lost, and the refusals loaded nothing.
    let before = group.stats();
    group.get("cached").await.unwrap();
    group.get("new").await.unwrap();
    let after = group.stats();
    assert_eq!(after.cache_hits - before.cache_hits, 2);
    assert_eq!(after.local_loads, before.local_loads);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_are_signed_in_a_cluster_with_a_secret_and_unsigned_ones_refused() {
    let secret = PeerAuth::new(b"a cluster secret of at least 32 bytes!").unwrap();
    let options = HttpOptions::builder().auth(secret).build().unwrap();
    let nodes = cluster_with(2, options).await;
    let keys: Vec<String> = (0..200).map(|i| format!("key-{i}")).collect();
    let answers = tokio::time::timeout(WAIT, nodes[0].node.group("g").unwrap().get_many(&keys))
        .await
        .unwrap();
    for (key, answer) in keys.iter().zip(&answers) {
        assert_eq!(text(answer), format!("v:{key}"));
    }
    let other = nodes[1].node.group("g").unwrap().stats();
    assert_eq!(other.server_batches, 1, "the signed batch was served");
    assert_eq!(nodes[0].node.group("g").unwrap().stats().peer_errors, 0);
    let request = GetManyRequest {
        keys: vec!["key-1".into()],
    };
    let (status, marker, body) = post(
        nodes[1].addr,
        "/_groupcache/g/_get-many/",
        &request.encode_to_vec(),
    )
    .await;
    assert_eq!(status, 401, "{}", String::from_utf8_lossy(&body));
    assert_eq!(
        marker.as_deref(),
        Some("get-many, copies-only, peek, hand-over")
    );
    assert_eq!(nodes[1].node.group("g").unwrap().stats().server_batches, 1);
}

/// What a fake golang/groupcache node was asked: method and path.
type Asked = Arc<Mutex<Vec<(String, String)>>>;

/// A stand-in for a golang/groupcache node: answers every request under
/// the base path as a get of `<group>/<key>` (as Go does, whatever the
/// method), 400 for the bare base path, and never sends `x-peercache`.
async fn fake_go_node() -> (String, Asked) {
    use axum::body::Bytes;
    use axum::http::{Method, StatusCode, Uri};
    let asked = Asked::default();
    let seen = Arc::clone(&asked);
    let app = axum::Router::new().fallback(move |method: Method, uri: Uri| {
        let seen = Arc::clone(&seen);
        async move {
            let path = uri.path().to_owned();
            seen.lock()
                .unwrap()
                .push((method.to_string(), path.clone()));
            let protobuf = [("content-type", "application/x-protobuf")];
            let Some((_, key)) = path
                .strip_prefix("/_groupcache/")
                .and_then(|rest| rest.split_once('/'))
            else {
                return (
                    StatusCode::BAD_REQUEST,
                    protobuf,
                    Bytes::from_static(b"bad request"),
                );
            };
            let answer = peercache::proto::GetResponse {
                value: Some(Bytes::from(format!("go:{key}"))),
                ..Default::default()
            };
            (
                StatusCode::OK,
                protobuf,
                Bytes::from(answer.encode_to_vec()),
            )
        }
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, asked)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_go_owner_gets_single_gets_never_a_batch() {
    let (go_url, asked) = fake_go_node().await;
    let own_url = "http://127.0.0.1:9"; // never asked: it only fetches
    let pool = HttpPool::new(own_url, HttpOptions::default()).unwrap();
    pool.set_peers([own_url, go_url.as_str()]).unwrap();
    let node = Node::with_picker(pool.clone());
    let calls = Calls::default();
    let group = node
        .new_group("g", 1 << 20, recording_loader(&calls))
        .unwrap();
    let keys: Vec<String> = (0..100).map(|i| format!("key-{i}")).collect();
    let answers = tokio::time::timeout(WAIT, group.get_many(&keys))
        .await
        .unwrap();
    let mut at_go = 0;
    for (key, answer) in keys.iter().zip(&answers) {
        if pool.owner(key) == go_url {
            at_go += 1;
            assert_eq!(text(answer), format!("go:{key}"));
        } else {
            assert_eq!(text(answer), format!("v:{key}"));
        }
    }
    assert!(at_go > 10, "the Go node owns some keys ({at_go})");
    let asked = asked.lock().unwrap().clone();
    assert!(
        asked
            .iter()
            .all(|(method, path)| method == "GET" && !path.contains("_get-many")),
        "{asked:?}"
    );
    // The probe (the bare base path), then one GET per key it owns.
    assert_eq!(asked[0].1, "/_groupcache/");
    assert_eq!(asked.len(), 1 + at_go);
    assert_eq!(group.stats().peer_errors, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_over_the_limit_goes_alone_and_the_batch_still_goes() {
    let options = HttpOptions::builder().max_key_bytes(64).build().unwrap();
    let nodes = cluster_with(2, options).await;
    let long = "k".repeat(100);
    let remote_url = format!("http://{}", nodes[1].addr);
    let ring = peercache::ring::Ring::with_peers(
        peercache::ring::HashMode::Golang,
        50,
        &[format!("http://{}", nodes[0].addr), remote_url.clone()],
    )
    .unwrap();
    let mut keys: Vec<String> = (0..60).map(|i| format!("key-{i}")).collect();
    // A long key the other node owns: it refuses it (414), so it is loaded
    // here; the batch of the other keys still reaches the owner.
    let long = (0..)
        .map(|i| format!("{long}{i}"))
        .find(|k| ring.owner(k) == Some(&remote_url))
        .unwrap();
    keys.push(long.clone());
    let group = nodes[0].node.group("g").unwrap();
    let answers = tokio::time::timeout(WAIT, group.get_many(&keys))
        .await
        .unwrap();
    for (key, answer) in keys.iter().zip(&answers) {
        assert_eq!(text(answer), format!("v:{key}"));
    }
    let owner = nodes[1].node.group("g").unwrap().stats();
    assert_eq!(owner.server_batches, 1);
    let here: Vec<String> = nodes[0].calls.lock().unwrap().concat();
    assert!(here.contains(&long), "the long key was loaded here");
    let there: Vec<String> = nodes[1].calls.lock().unwrap().concat();
    assert_eq!(here.len() + there.len(), keys.len(), "each key loaded once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_batch_loader_answers_every_key_and_frees_them() {
    let gate = Arc::new(Semaphore::new(0));
    let started = Arc::new(AtomicUsize::new(0));
    let (gate_in, started_in) = (Arc::clone(&gate), Arc::clone(&started));
    let group = Node::new()
        .new_group(
            "g",
            1 << 20,
            batch_loader_fn(move |keys: Vec<String>| {
                // A panic as the closure is called, before any future.
                assert!(!keys.contains(&"boom".to_owned()), "boom as called");
                started_in.fetch_add(1, Ordering::SeqCst);
                let (gate, late) = (Arc::clone(&gate_in), keys.contains(&"late".to_owned()));
                async move {
                    if late {
                        gate.acquire().await.unwrap().forget();
                        panic!("boom while loading");
                    }
                    Ok(keys.into_iter().map(|k| (k.clone(), k)).collect::<Vec<_>>())
                }
            }),
        )
        .unwrap();
    let answers = tokio::time::timeout(WAIT, group.get_many(&["boom", "x"]))
        .await
        .unwrap();
    for answer in &answers {
        assert!(
            matches!(answer, Err(Error::Panicked { message, .. }) if message.contains("boom as called")),
            "{answer:?}"
        );
    }
    assert_eq!(
        text(&group.get_many(&["x"]).await[0]),
        "x",
        "x is free again"
    );
    // Dropped while loading, then the loader panics: each run moved to a
    // task of its own, and every one ends (none waits on a poisoned call).
    let batch = tokio::spawn({
        let group = group.clone();
        async move { group.get_many(&["late", "y", "z"]).await }
    });
    until("the late batch started", || {
        started.load(Ordering::SeqCst) == 2
    })
    .await;
    batch.abort();
    let _ = batch.await;
    gate.add_permits(10); // the late key panics again when asked alone
    for key in ["late", "y", "z"] {
        let again = tokio::time::timeout(WAIT, group.get(key)).await;
        assert!(again.is_ok(), "a get of {key} hung after the panic");
    }
}
