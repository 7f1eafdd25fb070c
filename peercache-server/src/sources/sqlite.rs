//! The `sqlite` source (feature `sqlite`): the database is opened
//! read-only, and `query` takes the key as its one parameter; the first
//! column of the first row is the value (text or blob), no row (or NULL)
//! is not found.
//!
//! The key is a bound parameter, never part of the SQL, and the read-only
//! connection makes a query that writes fail. Queries run on tokio's
//! blocking threads, each on a connection of a small pool, so that a slow
//! query does not stall the node's other requests.

use peercache::{LoadError, Loader, Value};
use std::path::{Path, PathBuf};

/// Connections kept open for a `sqlite` group.
const SQLITE_CONNECTIONS: usize = 4;

/// The loader of a `sqlite` group.
pub struct SqliteSource {
    path: PathBuf,
    query: String,
    idle: std::sync::Arc<std::sync::Mutex<Vec<rusqlite::Connection>>>,
}

impl SqliteSource {
    /// A source running `query` (one `?`) on the database at `path`, opened
    /// read-only; checks now that the database opens and the query
    /// prepares with exactly one parameter.
    pub fn new(path: &Path, query: &str) -> Result<Self, String> {
        let connection = open_read_only(path)?;
        let statement = connection
            .prepare(query)
            .map_err(|e| format!("query {query:?}: {e}"))?;
        if statement.parameter_count() != 1 {
            return Err(format!(
                "query {query:?} has {} parameters: it needs exactly one `?`, the key",
                statement.parameter_count()
            ));
        }
        if statement.column_count() == 0 {
            return Err(format!("query {query:?} returns no column"));
        }
        drop(statement);
        Ok(SqliteSource {
            path: path.to_owned(),
            query: query.to_owned(),
            idle: std::sync::Arc::new(std::sync::Mutex::new(vec![connection])),
        })
    }
}

fn open_read_only(path: &Path) -> Result<rusqlite::Connection, String> {
    use rusqlite::OpenFlags;
    rusqlite::Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| format!("database {}: {e}", path.display()))
}

impl Loader for SqliteSource {
    async fn load(&self, key: &str) -> Result<Value, LoadError> {
        let (path, query, idle) = (self.path.clone(), self.query.clone(), self.idle.clone());
        let key = key.to_owned();
        let work = move || {
            let taken = idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
            let connection = match taken {
                Some(connection) => connection,
                None => open_read_only(&path).map_err(LoadError::msg)?,
            };
            let found = connection
                .prepare_cached(&query)
                .and_then(|mut statement| {
                    let mut rows = statement.query([&key])?;
                    match rows.next()? {
                        None => Ok(None),
                        Some(row) => match row.get_ref(0)? {
                            rusqlite::types::ValueRef::Text(bytes)
                            | rusqlite::types::ValueRef::Blob(bytes) => Ok(Some(bytes.to_vec())),
                            rusqlite::types::ValueRef::Null => Ok(None),
                            other => Ok(Some(format!("{:?}", other).into_bytes())),
                        },
                    }
                })
                .map_err(|e| LoadError::msg(format!("sqlite query for {key:?}: {e}")));
            let mut idle = idle.lock().unwrap_or_else(|p| p.into_inner());
            if idle.len() < SQLITE_CONNECTIONS {
                idle.push(connection);
            }
            drop(idle);
            match found? {
                Some(bytes) => Ok(Value::new(bytes)),
                None => Err(LoadError::NotFound),
            }
        };
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| LoadError::msg(format!("sqlite query task: {e}")))?
    }
}
