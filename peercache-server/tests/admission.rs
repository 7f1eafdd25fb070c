//! Origin protection on a live node, in front of an origin served by this
//! test on loopback.
//!
//! `--max-concurrent-loads`: ten concurrent front gets of distinct keys of
//! an `http` group whose origin holds every request until the test lets it
//! go, with a cap of two loads and no wait: the origin never sees more
//! than two requests at once, the other eight answer 503 at once naming
//! the cap, and the two admitted answer 200 once the origin does.
//!
//! `--breaker-failures`: after two failures in a row from the origin, a
//! get answers 503 at once naming the breaker, and the origin is not asked.

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

/// `broken-*` keys fail (500); others answer. Every request is counted.
async fn flaky_page(
    State(origin): State<Arc<Origin>>,
    Path(key): Path<String>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    origin.most.fetch_add(1, Ordering::SeqCst);
    if key.starts_with("broken") {
        (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "origin bug").into_response()
    } else {
        format!("page {key}").into_response()
    }
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
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new()
        .route("/pages/{*key}", route_get(held_page))
        .route("/flaky/{*key}", route_get(flaky_page))
        .with_state(Arc::clone(&origin));
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
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

#[test]
fn failures_in_a_row_open_the_breaker_and_the_origin_is_left_alone() {
    let (addr, origin) = origin();
    let config = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("breaker-{}.toml", std::process::id()));
    std::fs::write(
        &config,
        format!(
            "[[group]]\nname = \"flaky\"\nsource = \"http\"\nurl = \"http://{addr}/flaky/{{key}}\"\n"
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap().to_owned();
    let flags = [
        "--config",
        &config,
        "--breaker-failures",
        "2",
        "--breaker-cool-down",
        "1h",
    ];
    let nodes = start_servers(1, &flags);
    let node = nodes[0].addr;
    for key in ["broken-1", "broken-2"] {
        let (status, body) = get(node, &format!("/flaky/{key}")).unwrap();
        assert_eq!(status, 503, "{body}");
        assert!(!body.contains("breaker"), "{body}");
    }
    let asked = origin.most.load(Ordering::SeqCst);
    assert_eq!(asked, 2);
    let (status, body) = get(node, "/flaky/fine-1").unwrap();
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("failed 2 times in a row") && body.contains("breaker"),
        "{body}"
    );
    assert_eq!(
        origin.most.load(Ordering::SeqCst),
        asked,
        "the origin was not asked"
    );
    assert_eq!(counter(node, "flaky", "loads_refused"), 1);
}
