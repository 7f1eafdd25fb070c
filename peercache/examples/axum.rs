//! A peercache node inside your own axum application.
//!
//! The peer endpoint is an ordinary tower service: mount it under the base
//! path next to your routes. `peercache::http::Server` serves the router with
//! the limits a cache tier needs (load shedding with 503, header and body
//! timeouts, a target-length cap); `axum::serve` works too, without them.
//! Run two nodes and ask either:
//!
//! ```sh
//! cargo run --example axum -- 127.0.0.1:3001 http://127.0.0.1:3001,http://127.0.0.1:3002 &
//! cargo run --example axum -- 127.0.0.1:3002 http://127.0.0.1:3001,http://127.0.0.1:3002 &
//! curl localhost:3001/square/12    # 144, computed once by the key's owner
//! ```

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use peercache::http::{HttpOptions, HttpPool, Server, ServerLimits};
use peercache::{loader_fn, Group, LoadError, Node};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:3001".into());
    let me = format!("http://{addr}");
    let peers = args.next().unwrap_or_else(|| me.clone());

    let pool = HttpPool::new(&me, HttpOptions::default())?;
    pool.set_peers(peers.split(','))?;
    let node = Node::with_picker(pool.clone());
    let squares = node.new_group(
        "squares",
        16 << 20,
        loader_fn(|key: String| async move {
            let n: u64 = key.parse().map_err(|_| LoadError::NotFound)?;
            println!("computing {n}²");
            Ok(n.saturating_mul(n).to_string())
        }),
    )?;

    let app = Router::new()
        .route("/square/{n}", get(square))
        .with_state(squares)
        // The peer endpoint: other nodes ask here for keys this node owns.
        .route_service(&pool.route_path(), pool.service(node));

    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("serving {me}, peers {peers}");
    Server::new(ServerLimits::default())
        .serve(listener, app, std::future::pending())
        .await?;
    Ok(())
}

async fn square(State(squares): State<Group>, Path(n): Path<String>) -> (StatusCode, String) {
    match squares.get(&n).await {
        Ok(value) => (
            StatusCode::OK,
            String::from_utf8_lossy(value.as_bytes()).into(),
        ),
        Err(error) if error.is_not_found() => {
            (StatusCode::NOT_FOUND, format!("{n:?} is not a number\n"))
        }
        Err(error) => (StatusCode::SERVICE_UNAVAILABLE, format!("{error}\n")),
    }
}
