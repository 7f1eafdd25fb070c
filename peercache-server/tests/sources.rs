//! Groups from `--config` on a live three-node cluster: an `http` group in
//! front of an origin served by this test on loopback (each key fetched
//! from the origin once for the whole cluster, 404 not cached, errors not
//! cached, `Cache-Control: max-age` honoured), a `files` group (no way out
//! of its directory), and `sqlite` groups on a database built here (opened
//! read-only). Then hostile keys: `..%2F` against an origin that resolves
//! `..` as many do (refused before the origin is asked, on the front API
//! and the peer endpoint), and a directory holding a FIFO, a file over
//! `max_file_bytes`, a dotfile and other spellings of a file.

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
    } else if key.starts_with("forever") {
        // The largest age a header can say: past any clock's range.
        (
            [(header::CACHE_CONTROL, "max-age=18446744073709551615")],
            format!("page {key}"),
        )
            .into_response()
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
    let app = Router::new()
        .route("/pages/{*key}", route_get(origin_page))
        .with_state(hits.clone());
    let addr = spawn_origin(app);
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
    // An age past the clock's range is no expiry, not an overflow.
    assert_eq!(get_ok(nodes[0].addr, "/pages/forever-1"), "page forever-1");
    assert_eq!(get_ok(nodes[1].addr, "/pages/forever-1"), "page forever-1");
    assert_eq!(hits_of(&hits, "forever-1"), 1);
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
    // Files larger than peers take from each other (64 MiB by default
    // against a 1 MiB --max-body-bytes) would make owners look failing.
    std::fs::write(
        &config,
        format!(
            "[[group]]\nname = \"files\"\nsource = \"files\"\ndir = {:?}\n",
            scratch.display().to_string()
        ),
    )
    .unwrap();
    let (code, out) = run_to_exit(
        &server_binary(),
        &[
            "--addr",
            "127.0.0.1:0",
            "--max-body-bytes",
            "1MiB",
            "--max-front-body-bytes",
            "512KiB",
            "--config",
            config.to_str().unwrap(),
        ],
    );
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("group \"files\"")
            && out.contains("max_file_bytes")
            && out.contains("--max-body-bytes"),
        "{out}"
    );
    let _ = std::fs::remove_dir_all(&scratch);
}

/// Every path an origin was asked for, as received.
type Seen = Arc<Mutex<Vec<String>>>;

/// `path` with its `.` and `..` segments resolved, `%2E` read as `.`
/// first: what many origins (nginx, python's http.server, ...) serve for
/// it.
fn normalised(path: &str) -> String {
    let decoded = path.replace("%2E", ".").replace("%2e", ".");
    let mut segments: Vec<&str> = Vec::new();
    for segment in decoded.split('/').skip(1) {
        match segment {
            "." => {}
            ".." => {
                segments.pop();
            }
            other => segments.push(other),
        }
    }
    format!("/{}", segments.join("/"))
}

/// An origin that normalises paths, as many do: `/public/<key>` is public,
/// `/private/secret` is not meant to be reachable through the cache.
async fn normalising_origin(
    State(seen): State<Seen>,
    uri: axum::http::Uri,
) -> (StatusCode, String) {
    seen.lock().unwrap().push(uri.path().to_owned());
    let path = normalised(uri.path());
    if path == "/private/secret" {
        (StatusCode::OK, "TOP SECRET".to_owned())
    } else if let Some(key) = path.strip_prefix("/public/") {
        (StatusCode::OK, format!("public {key}"))
    } else {
        (StatusCode::NOT_FOUND, "no such page".to_owned())
    }
}

/// Starts the normalising origin on a thread of its own: its address and
/// the paths it was asked for.
fn normalising_origin_server() -> (std::net::SocketAddr, Seen) {
    let seen: Seen = Arc::default();
    let app = Router::new()
        .fallback(normalising_origin)
        .with_state(seen.clone());
    let addr = spawn_origin(app);
    (addr, seen)
}
#[test]
fn http_keys_cannot_leave_the_url_prefix() {
    let (origin, seen) = normalising_origin_server();
    let scratch = Scratch::new("http-prefix");
    let config = scratch.0.join("peercache.toml");
    std::fs::write(
        &config,
        format!(
            "[[group]]\nname = \"pages\"\nsource = \"http\"\nurl = \"http://{origin}/public/{{key}}\"\ntimeout = \"2s\"\n\n\
             [[group]]\nname = \"query\"\nsource = \"http\"\nurl = \"http://{origin}/public/get?id={{key}}\"\ntimeout = \"2s\"\n"
        ),
    )
    .unwrap();
    let nodes = start_servers(2, &["--config", config.to_str().unwrap()]);

    // The origin works: a key is a path under /public/.
    assert_eq!(get_ok(nodes[0].addr, "/pages/a%20b/c"), "public a%20b/c");
    // In the query string, '/' is escaped too: the key stays one value.
    assert_eq!(
        get_ok(nodes[0].addr, "/query/..%2Fprivate%2Fsecret"),
        "public get"
    );

    for node in &nodes {
        for target in [
            "/pages/..%2Fprivate%2Fsecret",
            "/pages/%2E%2E%2Fprivate%2Fsecret",
            "/pages/a%2F..%2F..%2Fprivate%2Fsecret",
            "/pages/.%2F..%2Fprivate%2Fsecret",
            "/pages/..",
            "/_groupcache/pages/..%2Fprivate%2Fsecret",
            "/_groupcache/pages/x%2F..%2F..%2Fprivate%2Fsecret",
        ] {
            let (status, body) = get(node.addr, target).unwrap();
            assert_eq!(status, 404, "{target}: {body}");
            assert!(!body.contains("SECRET"), "{target}: {body}");
        }
    }
    let seen = seen.lock().unwrap().clone();
    for path in &seen {
        assert!(
            normalised(path).starts_with("/public/") && !path.contains(".."),
            "the origin was asked for {path} (all: {seen:?})"
        );
    }
}

/// `GET target` answered within `limit`: status and body.
fn get_within(
    addr: std::net::SocketAddr,
    target: &str,
    limit: std::time::Duration,
) -> std::io::Result<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect_timeout(&addr, limit)?;
    stream.set_read_timeout(Some(limit))?;
    write!(
        stream,
        "GET {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer)?;
    parse_answer(&answer)
}

#[cfg(unix)]
#[test]
fn files_serve_regular_canonical_bounded_files_only() {
    use std::time::{Duration, Instant};
    let scratch = Scratch::new("files-hostile");
    let dir = scratch.0.join("data");
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    std::fs::write(dir.join("x"), "plain x").unwrap();
    std::fs::write(dir.join("sub/y"), "plain y").unwrap();
    std::fs::write(dir.join("big.bin"), vec![7u8; 4096]).unwrap();
    std::fs::write(dir.join(".env"), "SECRET=1").unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(dir.join("pipe"))
        .status()
        .unwrap();
    assert!(made.success(), "mkfifo failed");
    let config = scratch.0.join("peercache.toml");
    std::fs::write(
        &config,
        format!(
            "[[group]]\nname = \"files\"\nsource = \"files\"\ndir = \"{dir}\"\nmax_file_bytes = \"1KiB\"\n\n\
             [[group]]\nname = \"dotted\"\nsource = \"files\"\ndir = \"{dir}\"\ndotfiles = true\n",
            dir = dir.display()
        ),
    )
    .unwrap();
    let nodes = start_servers(1, &["--config", config.to_str().unwrap()]);
    let node = nodes[0].addr;

    // A FIFO is not a value: answered at once, and the node goes on.
    let limit = Duration::from_secs(10);
    for _ in 0..3 {
        let started = Instant::now();
        let (status, body) = get_within(node, "/files/pipe", limit)
            .unwrap_or_else(|e| panic!("GET /files/pipe: no answer within {limit:?}: {e}"));
        assert_eq!(status, 404, "{body}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
    }
    assert_eq!(get_ok(node, "/files/x"), "plain x");

    // Over max_file_bytes: an error naming the setting.
    let (status, body) = get(node, "/files/big.bin").unwrap();
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("max_file_bytes") && body.contains("4096") && body.contains("big.bin"),
        "{body}"
    );
    // The other group has the default bound.
    assert_eq!(get_ok(node, "/dotted/big.bin").len(), 4096);

    // Dotfiles only where the group allows them.
    let (status, body) = get(node, "/files/.env").unwrap();
    assert_eq!(status, 404, "{body}");
    assert!(!body.contains("SECRET"), "{body}");
    assert_eq!(get_ok(node, "/dotted/.env"), "SECRET=1");

    // One file, one key: other spellings are not found.
    assert_eq!(get_ok(node, "/files/sub/y"), "plain y");
    for group in ["files", "dotted"] {
        for key in [
            ".%2Fx",
            "%2E%2Fx",
            ".%2F.%2Fx",
            "sub%2F.%2Fy",
            "sub%2F%2Fy",
            "sub%2Fy%2F",
            "sub%2F..%2Fx",
            "%2Fx",
            "sub",
        ] {
            let target = format!("/{group}/{key}");
            let (status, body) = get(node, &target).unwrap();
            assert_eq!(status, 404, "{target}: {body}");
        }
    }
    assert_eq!(get_ok(node, "/files/x"), "plain x");
}

/// A file far larger than memory should hold, with a bound raised to take
/// it and a short `--load-timeout`: the timeout fails the get, and the
/// reading stops with it (chunk by chunk), instead of going on in a
/// blocking thread to fill the node's memory with the whole file.
#[cfg(unix)]
#[test]
fn a_load_timeout_stops_reading_a_huge_file() {
    use std::time::{Duration, Instant};
    const SIZE: u64 = 2 << 30;
    let scratch = Scratch::new("files-huge");
    let dir = scratch.0.join("data");
    std::fs::create_dir_all(&dir).unwrap();
    // Sparse: 2 GiB to read, no disk used.
    std::fs::File::create(dir.join("huge.bin"))
        .unwrap()
        .set_len(SIZE)
        .unwrap();
    let config = scratch.0.join("peercache.toml");
    std::fs::write(
        &config,
        format!(
            "[[group]]\nname = \"files\"\nsource = \"files\"\ndir = \"{}\"\nmax_file_bytes = \"3GiB\"\n",
            dir.display()
        ),
    )
    .unwrap();
    let nodes = start_servers(
        1,
        &[
            "--config",
            config.to_str().unwrap(),
            "--max-body-bytes",
            "3GiB",
            "--load-timeout",
            "200ms",
        ],
    );
    let node = &nodes[0];
    let (status, body) = get(node.addr, "/files/huge.bin").unwrap();
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("timed out") || body.contains("timeout"),
        "{body}"
    );
    // Memory over the next two seconds: a read that went on would take it
    // towards the file's 2 GiB (this watches a window; nothing to poll).
    let mut peak = 0;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(2) {
        peak = peak.max(node.rss_bytes().unwrap());
        std::thread::sleep(Duration::from_millis(20));
    }
    println!("peak RSS after the timeout: {} MiB", peak >> 20);
    assert!(peak < 768 << 20, "RSS reached {} MiB", peak >> 20);
    assert_eq!(get(node.addr, "/color?name=red").unwrap().0, 200);
}
