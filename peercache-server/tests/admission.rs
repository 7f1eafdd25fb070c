//! `--max-concurrent-loads` on a live node: ten concurrent front gets of
//! distinct keys of an `http` group, whose origin (served by this test on
//! loopback) holds every request until the test lets it go, with a cap of
//! two loads and no wait: the origin never sees more than two requests at
//! once, the other eight answer 503 at once naming the cap, and the two
//! admitted answer 200 once the origin does.

mod support;

use axum::extract::{Path, State};
use axum::routing::get as route_get;
use axum::Router;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use support::*;
use tokio::sync::Semaphore;

/// The origin's requests in flight, the most at once, and its gate.
struct Origin {
    running: AtomicUsize,
    most: AtomicUsize,
    gate: Semaphore,
}

async fn held_page(State(origin): State<Arc<Origin>>, Path(key): Path<String>) -> String {
    let now = origin.running.fetch_add(1, Ordering::SeqCst) + 1;
    origin.most.fetch_max(now, Ordering::SeqCst);
    origin.gate.acquire().await.unwrap().forget();
    origin.running.fetch_sub(1, Ordering::SeqCst);
    format!("page {key}")
}

/// Starts the origin on a thread of its own.
fn origin() -> (std::net::SocketAddr, Arc<Origin>) {
    let origin = Arc::new(Origin {
        running: AtomicUsize::new(0),
        most: AtomicUsize::new(0),
        gate: Semaphore::new(0),
    });
    let app = Router::new()
        .route("/pages/{*key}", route_get(held_page))
        .with_state(Arc::clone(&origin));
    let addr = spawn_origin(app);
    (addr, origin)
}

#[test]
fn a_burst_of_misses_never_opens_more_origin_requests_than_the_cap() {
    let (addr, origin) = origin();
    let config = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("admission-{}.toml", std::process::id()));
    std::fs::write(
        &config,
        format!(
            "[[group]]\nname = \"pages\"\nsource = \"http\"\nurl = \"http://{addr}/pages/{{key}}\"\ntimeout = \"30s\"\n"
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap().to_owned();
    let flags = [
        "--config",
        &config,
        "--max-concurrent-loads",
        "2",
        "--load-admission-wait",
        "0",
    ];
    let nodes = start_servers(1, &flags);
    let node = nodes[0].addr;
    let answers: Vec<_> = (0..10)
        .map(|i| std::thread::spawn(move || get(node, &format!("/pages/slow-{i}")).unwrap()))
        .collect();
    wait_until("8 gets refused and 2 loads at the origin", || {
        counter(node, "pages", "loads_refused") == 8 && origin.running.load(Ordering::SeqCst) == 2
    });
    origin.gate.add_permits(2);
    let (mut ok, mut refused) = (0, 0);
    for answer in answers {
        let (status, body) = answer.join().unwrap();
        match status {
            200 => {
                assert!(body.starts_with("page slow-"), "{body}");
                ok += 1;
            }
            503 => {
                assert!(body.contains("max_concurrent_loads"), "{body}");
                refused += 1;
            }
            other => panic!("{other}: {body}"),
        }
    }
    assert_eq!((ok, refused), (2, 8));
    assert_eq!(
        origin.most.load(Ordering::SeqCst),
        2,
        "never more than the cap"
    );
}
