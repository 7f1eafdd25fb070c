//! The peer endpoint mounted in an axum application, reached by another
//! node's HTTP pool over real sockets.

use axum::routing::get;
use axum::Router;
use peercache::http::{HttpOptions, HttpPool, DEFAULT_BASE_PATH};
use peercache::{loader_fn, Node};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_endpoint_mounted_in_axum_serves_other_nodes() {
    let owner_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let owner_url = format!("http://{}", owner_listener.local_addr().unwrap());
    let asker_url = "http://127.0.0.1:9"; // never asked: it only fetches

    let owner_pool = HttpPool::new(&owner_url, HttpOptions::default()).unwrap();
    owner_pool.set_peers([&owner_url]).unwrap();
    let owner = Node::with_picker(owner_pool.clone());
    owner
        .new_group(
            "g",
            1 << 20,
            loader_fn(|key: String| async move { Ok(format!("<{key}>")) }),
        )
        .unwrap();
    let app = Router::new()
        .route("/hello", get(|| async { "hello" }))
        .route_service(
            &format!("{DEFAULT_BASE_PATH}{{*rest}}"),
            owner_pool.service(owner.clone()),
        );
    let server = tokio::spawn(async move { axum::serve(owner_listener, app).await });

    let asker_pool = HttpPool::new(asker_url, HttpOptions::default()).unwrap();
    let asker = Node::with_picker(asker_pool.clone());
    let group = asker
        .new_group(
            "g",
            1 << 20,
            loader_fn(|_: String| async {
                Err::<String, _>(peercache::LoadError::msg("the asker must not load"))
            }),
        )
        .unwrap();
    // The asker's ring holds both nodes; keys the owner owns are fetched
    // through the axum application.
    asker_pool
        .set_peers([asker_url, owner_url.as_str()])
        .unwrap();
    let keys: Vec<String> = (0..1000)
        .map(|i| format!("k {i}/x"))
        .filter(|k| asker_pool.owner(k) == owner_url)
        .take(20)
        .collect();
    for key in &keys {
        let value = tokio::time::timeout(Duration::from_secs(10), group.get(key))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(value.as_str().unwrap(), format!("<{key}>"));
    }
    assert_eq!(
        owner.group("g").unwrap().stats().server_requests,
        keys.len() as u64
    );
    assert_eq!(group.stats().peer_errors, 0);
    server.abort();
}
