//! Values of every size cross between peers intact: empty, on both sides of
//! the 1 KiB a value's own block holds, far above it, and above a group's
//! whole budget (served, not cached). Real HTTP between two nodes on
//! loopback, each value with an expiry, which travels with it.

use peercache::http::{HttpOptions, HttpPool};
use peercache::{loader_fn, HotCachePolicy, LoadError, Node, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Each group's budget, main and hot cache together.
const BUDGET: u64 = 1 << 20;

/// The value of `key`: `key` repeated and cut to `size` bytes.
fn value_of(key: &str, size: usize) -> Vec<u8> {
    key.bytes().cycle().take(size).collect()
}

struct Peer {
    pool: Arc<HttpPool>,
    node: Node,
    loads: Arc<AtomicU64>,
    server: tokio::task::JoinHandle<()>,
}

async fn two_nodes(size: usize, expires: SystemTime) -> [Peer; 2] {
    let listeners = [
        tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
        tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
    ];
    let urls: Vec<String> = listeners
        .iter()
        .map(|l| format!("http://{}", l.local_addr().unwrap()))
        .collect();
    listeners.map(|listener| {
        let url = format!("http://{}", listener.local_addr().unwrap());
        let pool = HttpPool::new(&url, HttpOptions::default()).unwrap();
        pool.set_peers(&urls).unwrap();
        let node = Node::with_picker(pool.clone());
        let loads = Arc::new(AtomicU64::new(0));
        let counted = Arc::clone(&loads);
        node.group_builder("sizes")
            .cache_bytes(BUDGET)
            .hot_cache(HotCachePolicy::Always)
            .build(loader_fn(move |key: String| {
                counted.fetch_add(1, Ordering::Relaxed);
                async move { Ok::<_, LoadError>(Value::new(value_of(&key, size)).with_expiry(expires)) }
            }))
            .unwrap();
        let service = pool.service(node.clone());
        let server = tokio::spawn(async move {
            let _ = peercache::http::serve_with_shutdown(listener, service, std::future::pending())
                .await;
        });
        Peer {
            pool,
            node,
            loads,
            server,
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_of_every_size_cross_between_peers() {
    let expires = SystemTime::now() + Duration::from_secs(3600);
    for size in [0, 1, 1023, 1024, 1025, 200 << 10, 2 << 20] {
        let [asker, owner] = two_nodes(size, expires).await;
        let owner_url = owner.pool.self_url().to_owned();
        let key = (0..)
            .map(|i| format!("key-{i}"))
            .find(|k| asker.pool.owner(k) == owner_url)
            .unwrap();
        let group = asker.node.group("sizes").unwrap();
        let first = group.get(&key).await.unwrap();
        assert_eq!(first.as_bytes(), value_of(&key, size), "{size} bytes");
        let at = first
            .expires_at()
            .expect("the expiry crossed with the value");
        let off = at.duration_since(expires).unwrap_or_else(|e| e.duration());
        assert!(
            off < Duration::from_micros(1),
            "{size} bytes: expiry {at:?}"
        );
        let again = group.get(&key).await.unwrap();
        assert_eq!(again, first, "{size} bytes, asked again");
        let fits = size as u64 + key.len() as u64 <= BUDGET;
        let stats = group.stats();
        assert_eq!(
            stats.peer_loads,
            if fits { 1 } else { 2 },
            "{size} bytes: {stats:?}"
        );
        assert_eq!(stats.hot_cache.items, u64::from(fits), "{size} bytes");
        assert_eq!(
            owner.loads.load(Ordering::Relaxed),
            if fits { 1 } else { 2 }
        );
        asker.server.abort();
        owner.server.abort();
    }
}
