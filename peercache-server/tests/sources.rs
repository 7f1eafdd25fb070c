//! Groups from `--config` on a live three-node cluster: an `http` group in
//! front of an origin served by this test on loopback (each key fetched
//! from the origin once for the whole cluster, 404 not cached, errors not
//! cached, `Cache-Control: max-age` honoured), a `files` group (no way out
//! of its directory), and `sqlite` groups on a database built here (opened
//! read-only).

mod support;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get as route_get;
use axum::Router;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use support::*;

/// How often the origin was asked for each key.
type Hits = Arc<Mutex<HashMap<String, u32>>>;

async fn origin_page(
    State(hits): State<Hits>,
    Path(key): Path<String>,
) -> axum::response::Response {
    *hits.lock().unwrap().entry(key.clone()).or_default() += 1;
    if key.starts_with("missing") {
        (StatusCode::NOT_FOUND, "no such page").into_response()
    } else if key.starts_with("broken") {
        (StatusCode::INTERNAL_SERVER_ERROR, "origin bug").into_response()
    } else if key.starts_with("short") {
        (
            [(header::CACHE_CONTROL, "max-age=1")],
            format!("page {key}"),
        )
            .into_response()
    } else {
        format!("page {key}").into_response()
    }
}

/// Starts the origin on a thread of its own; its address and hit counts.
fn origin() -> (std::net::SocketAddr, Hits) {
    let hits: Hits = Arc::default();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new()
        .route("/pages/{*key}", route_get(origin_page))
        .with_state(hits.clone());
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
    (addr, hits)
}

fn hits_of(hits: &Hits, key: &str) -> u32 {
    hits.lock().unwrap().get(key).copied().unwrap_or(0)
}

#[test]
fn groups_read_through_to_an_origin_and_a_directory() {
    let (origin, hits) = origin();
    let scratch =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("sources-{}", std::process::id()));
    let files = scratch.join("files");
    std::fs::create_dir_all(files.join("sub")).unwrap();
    std::fs::write(files.join("sub/page.html"), "<p>hello</p>").unwrap();
    std::fs::write(scratch.join("secret"), "outside").unwrap();
    let database = scratch.join("pages.db");
    let _ = std::fs::remove_file(&database);
    {
        let db = rusqlite::Connection::open(&database).unwrap();
        db.execute_batch(
            "CREATE TABLE pages (id TEXT PRIMARY KEY, body BLOB);
             INSERT INTO pages VALUES ('home', '<h1>home</h1>'), ('about', x'00ff01');",
        )
        .unwrap();
    }
    let config = scratch.join("peercache.toml");
    std::fs::write(
        &config,
        format!(
            "[[group]]\nname = \"pages\"\nsource = \"http\"\nurl = \"http://{origin}/pages/{{key}}\"\ntimeout = \"2s\"\n\n\
             [[group]]\nname = \"assets\"\nsource = \"files\"\ndir = \"{}\"\n\n\
             [[group]]\nname = \"rows\"\nsource = \"sqlite\"\ndatabase = \"{db}\"\nquery = \"SELECT body FROM pages WHERE id = ?\"\n\n\
             [[group]]\nname = \"writer\"\nsource = \"sqlite\"\ndatabase = \"{db}\"\nquery = \"DELETE FROM pages WHERE id = ? RETURNING body\"\n",
            files.display(),
            db = database.display()
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap().to_owned();
    let nodes = start_servers(3, &["--config", &config]);

    // Every node serves the page; the origin is asked once.
    for node in &nodes {
        assert_eq!(get_ok(node.addr, "/pages/a%20b/c"), "page a b/c");
    }
    assert_eq!(hits_of(&hits, "a b/c"), 1);

    // Not found: 404 everywhere, and not cached (asked again).
    for node in &nodes {
        let (status, _) = get(node.addr, "/pages/missing-1").unwrap();
        assert_eq!(status, 404);
    }
    assert!(hits_of(&hits, "missing-1") >= 2, "a 404 was cached");

    // An origin error is an error (503), not cached.
    for node in &nodes {
        let (status, body) = get(node.addr, "/pages/broken-1").unwrap();
        assert_eq!(status, 503, "{body}");
        assert!(body.contains("500"), "{body}");
    }
    assert!(hits_of(&hits, "broken-1") >= 2, "an error was cached");

    // max-age=1: cached, then fetched again once it expired.
    assert_eq!(get_ok(nodes[0].addr, "/pages/short-1"), "page short-1");
    assert_eq!(get_ok(nodes[0].addr, "/pages/short-1"), "page short-1");
    assert_eq!(hits_of(&hits, "short-1"), 1);
    wait_until("short-1 expires and is fetched again", || {
        get_ok(nodes[0].addr, "/pages/short-1");
        hits_of(&hits, "short-1") == 2
    });

    // Files: served, and nothing outside the directory.
    for node in &nodes {
        assert_eq!(get_ok(node.addr, "/assets/sub/page.html"), "<p>hello</p>");
    }
    for outside in [
        "/assets/..%2Fsecret",
        "/assets/%2E%2E/secret",
        "/assets/sub/..%2F..%2Fsecret",
    ] {
        let (status, body) = get(nodes[0].addr, outside).unwrap();
        assert_eq!(status, 404, "{outside}: {body}");
        assert!(!body.contains("outside"), "{outside}: {body}");
    }
    // SQLite: a row by its key, blobs as they are, no row is not found.
    for node in &nodes {
        assert_eq!(get_ok(node.addr, "/rows/home"), "<h1>home</h1>");
        let (status, _) = get(node.addr, "/rows/nobody").unwrap();
        assert_eq!(status, 404);
    }
    // The database is opened read-only: a query that writes fails, and
    // changes nothing.
    let (status, body) = get(nodes[0].addr, "/writer/about").unwrap();
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("readonly") || body.contains("read-only"),
        "{body}"
    );
    let db = rusqlite::Connection::open(&database).unwrap();
    let rows: i64 = db
        .query_row("SELECT count(*) FROM pages", [], |row| row.get(0))
        .unwrap();
    assert_eq!(rows, 2);
    let _ = std::fs::remove_dir_all(&scratch);
}

#[test]
fn a_bad_config_stops_the_server_naming_the_group() {
    let scratch = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("badconfig-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).unwrap();
    let config = scratch.join("bad.toml");
    std::fs::write(&config, "[[group]]\nname = \"pages\"\nsource = \"http\"\n").unwrap();
    let (code, out) = run_to_exit(
        &server_binary(),
        &[
            "--addr",
            "127.0.0.1:0",
            "--config",
            config.to_str().unwrap(),
        ],
    );
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("group \"pages\"") && out.contains("needs url"),
        "{out}"
    );
    std::fs::write(&config, "[[group]]\nname = \"x\"\nsource = \"ftp\"\n").unwrap();
    let (code, out) = run_to_exit(
        &server_binary(),
        &[
            "--addr",
            "127.0.0.1:0",
            "--config",
            config.to_str().unwrap(),
        ],
    );
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("bad --config") && out.contains("ftp"), "{out}");
    let _ = std::fs::remove_dir_all(&scratch);
}
