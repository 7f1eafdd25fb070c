//! A custom loader that reads a database: SQLite through rusqlite, opened
//! read-only, queried on tokio's blocking threads so that a slow query never
//! stalls the async workers.
//!
//! The example writes a small database to a temporary file, then serves
//! `articles` from it. Twenty concurrent gets of one missing key run the
//! query once; a missing row is `LoadError::NotFound` (not cached); a
//! database error is a load error naming the key (not cached either). A
//! `get_many` of several keys runs one `SELECT ... WHERE id IN (...)` for
//! all of them ([`Loader::load_many`]), in chunks of SQLite's limit on a
//! statement's parameters.
//!
//! Run it with `cargo run -p peercache --example database`.

use peercache::{LoadError, Loader, Node, Value};
use rusqlite::limits::Limit;
use rusqlite::{Connection, OpenFlags, OptionalExtension};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Loads `articles.body` by id. One connection behind a mutex is enough for
/// an example; a busy service keeps a few (a pool) so that queries of
/// different keys run side by side.
struct Articles {
    conn: Arc<Mutex<Connection>>,
    queries: Arc<AtomicU64>,
}

impl Articles {
    fn open(path: &Path) -> rusqlite::Result<Self> {
        // Read-only: the cache can never write to the source of truth.
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        Ok(Articles {
            conn: Arc::new(Mutex::new(conn)),
            queries: Arc::new(AtomicU64::new(0)),
        })
    }
}

impl Loader for Articles {
    async fn load(&self, key: &str) -> Result<Value, LoadError> {
        let id: i64 = key.parse().map_err(|_| LoadError::NotFound)?;
        let conn = Arc::clone(&self.conn);
        self.queries.fetch_add(1, Ordering::Relaxed);
        let row = tokio::task::spawn_blocking(move || {
            let conn = conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            conn.query_row("SELECT body FROM articles WHERE id = ?1", [id], |row| {
                row.get::<_, String>(0)
            })
            .optional()
        })
        .await
        .map_err(LoadError::other)? // the blocking task panicked
        .map_err(LoadError::other)?; // the query failed
        row.map(Value::from).ok_or(LoadError::NotFound)
    }

    /// One query for the whole batch: `WHERE id IN (?, ?, ...)`, split
    /// where the batch has more keys than a statement may have parameters.
    async fn load_many(&self, keys: &[&str]) -> Vec<Result<Value, LoadError>> {
        let ids: Vec<Option<i64>> = keys.iter().map(|key| key.parse().ok()).collect();
        let wanted: Vec<i64> = ids.iter().flatten().copied().collect();
        let conn = Arc::clone(&self.conn);
        let queries = Arc::clone(&self.queries);
        let rows = tokio::task::spawn_blocking(move || {
            let conn = conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let most = conn.limit(Limit::SQLITE_LIMIT_VARIABLE_NUMBER)?;
            let most = usize::try_from(most).unwrap_or(999).max(1);
            let mut rows = HashMap::new();
            for chunk in wanted.chunks(most) {
                queries.fetch_add(1, Ordering::Relaxed);
                let marks = vec!["?"; chunk.len()].join(",");
                let sql = format!("SELECT id, body FROM articles WHERE id IN ({marks})");
                let mut statement = conn.prepare_cached(&sql)?;
                let found = statement.query_map(rusqlite::params_from_iter(chunk), |row| {
                    Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?))
                })?;
                for row in found {
                    let (id, body) = row?;
                    rows.insert(id, body);
                }
            }
            Ok::<_, rusqlite::Error>(rows)
        })
        .await;
        let rows = match rows {
            Ok(Ok(rows)) => rows,
            // The query (or its task) failed: every key fails with it.
            Ok(Err(error)) => return vec![Err(LoadError::other(error)); keys.len()],
            Err(error) => return vec![Err(LoadError::other(error)); keys.len()],
        };
        ids.iter()
            .map(|id| match id.and_then(|id| rows.get(&id)) {
                Some(body) => Ok(Value::from(body.clone())),
                None => Err(LoadError::NotFound),
            })
            .collect()
    }
}

fn write_example_database() -> rusqlite::Result<PathBuf> {
    let path = std::env::temp_dir().join(format!("peercache-example-{}.db", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let conn = Connection::open(&path)?;
    conn.execute_batch(
        "CREATE TABLE articles (id INTEGER PRIMARY KEY, body TEXT NOT NULL);
         INSERT INTO articles VALUES (1, 'Caches are a memory of the future.');
         INSERT INTO articles VALUES (2, 'Every key has one owner.');
         INSERT INTO articles VALUES (4, 'A batch is one round trip per owner.');
         INSERT INTO articles VALUES (5, 'One query for many keys.');",
    )?;
    Ok(path)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = write_example_database()?;
    let articles = Articles::open(&path)?;
    let queries = Arc::clone(&articles.queries);

    let node = Node::new();
    let group = node
        .group_builder("articles")
        .cache_bytes(32 << 20)
        .ttl(Duration::from_secs(60))
        .load_timeout(Duration::from_secs(2))
        .build(articles)?;

    let gets = (0..20).map(|_| {
        let group = group.clone();
        tokio::spawn(async move { group.get("1").await })
    });
    for get in gets {
        get.await??;
    }
    println!(
        "20 concurrent gets of article 1 -> {} query",
        queries.load(Ordering::Relaxed)
    );
    println!("article 1: {}", group.get("1").await?.as_str()?);
    println!("article 2: {}", group.get("2").await?.as_str()?);
    match group.get("3").await {
        Err(e) if e.is_not_found() => println!("article 3: not found ({e})"),
        other => println!("article 3: unexpected {other:?}"),
    }
    let before = queries.load(Ordering::Relaxed);
    let batch = ["2", "4", "5", "6", "nope"];
    let answers = group.get_many(&batch).await;
    for (key, answer) in batch.iter().zip(&answers) {
        match answer {
            Ok(body) => println!("get_many: article {key}: {}", body.as_str()?),
            Err(e) if e.is_not_found() => println!("get_many: article {key}: not found"),
            Err(e) => return Err(e.clone().into()),
        }
    }
    println!(
        "get_many of {} keys (article 2 cached) -> {} query",
        batch.len(),
        queries.load(Ordering::Relaxed) - before
    );
    println!("queries run: {}", queries.load(Ordering::Relaxed));
    std::fs::remove_file(&path)?;
    Ok(())
}
