//! The `sqlite` source (feature `sqlite`): the database is opened
//! read-only, and `query` takes the key as its one parameter; the first
//! column of the first row is the value (text or blob), no row (or NULL)
//! is not found.
//!
//! A batch of keys ([`Loader::load_many`], called once per batch of
//! [`peercache::Group::get_many`] for the keys this node owns) runs in one
//! blocking task on one connection of the pool:
//!
//! - with `query_many`, a query whose one parameter is written `IN (?)`
//!   and which returns the key then the value, e.g. `SELECT id, body FROM
//!   pages WHERE id IN (?)`: its `(?)` is expanded to `(?,?,...)`, one
//!   query per chunk of keys, a chunk being as many keys as the
//!   connection takes parameters (`SQLITE_LIMIT_VARIABLE_NUMBER`, 32766
//!   in the bundled SQLite). The rows are matched back to the keys by
//!   their first column, read as text (an integer `42` answers the key
//!   `"42"`); a key without a row, or whose value is NULL, is not found;
//!   when several rows have a key, the first counts. A failed query fails
//!   the keys of its chunk only.
//! - without it, `query` runs once per key, in turn, on that connection.
//!
//! The keys are bound parameters, never part of the SQL, and the read-only
//! connection makes a query that writes fail. Queries run on tokio's
//! blocking threads, each on a connection of a small pool, so that a slow
//! query does not stall the node's other requests.

use peercache::{LoadError, Loader, Value};
use rusqlite::types::ValueRef;
use rusqlite::Connection;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Connections kept open for a `sqlite` group.
const SQLITE_CONNECTIONS: usize = 4;

/// Parameters in one chunk when the connection cannot tell its limit
/// (SQLite's default before 3.32).
const DEFAULT_MAX_PARAMETERS: usize = 999;

/// The loader of a `sqlite` group.
pub struct SqliteSource {
    path: PathBuf,
    query: String,
    pub(super) query_many: Option<ManyQuery>,
    pub(super) idle: Arc<Mutex<Vec<Connection>>>,
}

/// A `query_many`, split around its `(?)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ManyQuery {
    before: String,
    after: String,
}

impl ManyQuery {
    /// Splits `query` around its one `(?)`, or says why it cannot.
    fn parse(query: &str) -> Result<ManyQuery, String> {
        let found = query.matches("(?)").count();
        match query.split_once("(?)") {
            Some((before, after)) if found == 1 => Ok(ManyQuery {
                before: before.to_owned(),
                after: after.to_owned(),
            }),
            _ => Err(format!(
                "query_many {query:?} holds `(?)` {found} times: it needs it exactly once, as in `WHERE id IN (?)`"
            )),
        }
    }

    /// The query for `n` keys (at least one): `(?)` becomes `(?,?,...)`.
    pub(super) fn expand(&self, n: usize) -> String {
        let mut sql = String::with_capacity(self.before.len() + self.after.len() + 2 * n + 1);
        sql.push_str(&self.before);
        sql.push('(');
        for i in 0..n.max(1) {
            sql.push_str(if i == 0 { "?" } else { ",?" });
        }
        sql.push(')');
        sql.push_str(&self.after);
        sql
    }
}

impl SqliteSource {
    /// A source running `query` (one `?`) on the database at `path`, opened
    /// read-only, and `query_many` (one `IN (?)`, two columns: key, value)
    /// for batches if given; checks now that the database opens and the
    /// queries prepare with exactly one parameter.
    pub fn new(path: &Path, query: &str, query_many: Option<&str>) -> Result<Self, String> {
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
        let query_many = query_many
            .map(|many| check_many(&connection, many))
            .transpose()?;
        Ok(SqliteSource {
            path: path.to_owned(),
            query: query.to_owned(),
            query_many,
            idle: Arc::new(Mutex::new(vec![connection])),
        })
    }
}

/// `query_many` split around its `(?)`, once it prepares with one
/// parameter, two once expanded, and returns at least two columns.
fn check_many(connection: &Connection, query: &str) -> Result<ManyQuery, String> {
    let many = ManyQuery::parse(query)?;
    let statement = connection
        .prepare(query)
        .map_err(|e| format!("query_many {query:?}: {e}"))?;
    if statement.parameter_count() != 1 {
        return Err(format!(
            "query_many {query:?} has {} parameters: it needs exactly one, the `?` of `IN (?)`",
            statement.parameter_count()
        ));
    }
    if statement.column_count() < 2 {
        return Err(format!(
            "query_many {query:?} returns {} column: it needs two, the key then the value",
            statement.column_count()
        ));
    }
    // A `(?)` in a string literal, the real `?` elsewhere, would not expand.
    let two = connection
        .prepare(&many.expand(2))
        .map_err(|e| format!("query_many {query:?} with its `(?)` as `(?,?)`: {e}"))?;
    if two.parameter_count() != 2 {
        return Err(format!(
            "query_many {query:?}: its `(?)` is not its parameter; write the parameter as `IN (?)`"
        ));
    }
    Ok(many)
}

fn open_read_only(path: &Path) -> Result<Connection, String> {
    use rusqlite::OpenFlags;
    Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| format!("database {}: {e}", path.display()))
}

/// The value of a value column: text or blob as they are; NULL is none.
fn value_bytes(value: ValueRef<'_>) -> Option<Vec<u8>> {
    match value {
        ValueRef::Text(bytes) | ValueRef::Blob(bytes) => Some(bytes.to_vec()),
        ValueRef::Null => None,
        other => Some(format!("{other:?}").into_bytes()),
    }
}

/// A key column as text, to match it to a key; `None` for NULL and for
/// bytes that are not UTF-8 (no key can equal them).
fn key_text(key: ValueRef<'_>) -> Option<String> {
    match key {
        ValueRef::Text(bytes) | ValueRef::Blob(bytes) => {
            std::str::from_utf8(bytes).ok().map(str::to_owned)
        }
        ValueRef::Integer(n) => Some(n.to_string()),
        ValueRef::Real(x) => Some(x.to_string()),
        ValueRef::Null => None,
    }
}

/// `query` for one `key` on `connection`.
fn read_one(connection: &Connection, query: &str, key: &str) -> Result<Value, LoadError> {
    let found = connection
        .prepare_cached(query)
        .and_then(|mut statement| {
            let mut rows = statement.query([key])?;
            match rows.next()? {
                None => Ok(None),
                Some(row) => Ok(value_bytes(row.get_ref(0)?)),
            }
        })
        .map_err(|e| LoadError::msg(format!("sqlite query for {key:?}: {e}")))?;
    found.map(Value::new).ok_or(LoadError::NotFound)
}

/// `keys`' answers, in order, on `connection`: with `many`, one query per
/// chunk of keys; without, `query` for each key.
fn read_many(
    connection: &Connection,
    query: &str,
    many: Option<&ManyQuery>,
    keys: &[String],
) -> Vec<Result<Value, LoadError>> {
    let Some(many) = many else {
        return keys
            .iter()
            .map(|key| read_one(connection, query, key))
            .collect();
    };
    let limit = connection
        .limit(rusqlite::limits::Limit::SQLITE_LIMIT_VARIABLE_NUMBER)
        .ok()
        .and_then(|n| usize::try_from(n).ok())
        .filter(|&n| n > 0)
        .unwrap_or(DEFAULT_MAX_PARAMETERS);
    keys.chunks(limit)
        .flat_map(|chunk| read_chunk(connection, many, chunk))
        .collect()
}

/// One query for `chunk`'s keys: their answers, in order.
fn read_chunk(
    connection: &Connection,
    many: &ManyQuery,
    chunk: &[String],
) -> Vec<Result<Value, LoadError>> {
    let sql = many.expand(chunk.len());
    let rows = connection.prepare_cached(&sql).and_then(|mut statement| {
        let mut found: HashMap<String, Option<Vec<u8>>> = HashMap::new();
        let mut rows = statement.query(rusqlite::params_from_iter(chunk))?;
        while let Some(row) = rows.next()? {
            if let Some(key) = key_text(row.get_ref(0)?) {
                let value = value_bytes(row.get_ref(1)?);
                found.entry(key).or_insert(value);
            }
        }
        Ok(found)
    });
    match rows {
        Ok(found) => chunk
            .iter()
            .map(|key| match found.get(key.as_str()) {
                Some(Some(bytes)) => Ok(Value::new(bytes.clone())),
                _ => Err(LoadError::NotFound),
            })
            .collect(),
        Err(e) => {
            let error = LoadError::msg(format!(
                "sqlite query_many for {} keys (the first {:?}): {e}",
                chunk.len(),
                chunk[0]
            ));
            vec![Err(error); chunk.len()]
        }
    }
}

impl SqliteSource {
    /// Runs `work` on a pooled connection (opened if none is idle) in a
    /// blocking task, and gives the connection back.
    async fn with_connection<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection) -> T + Send + 'static,
    ) -> Result<T, LoadError> {
        let (path, idle) = (self.path.clone(), self.idle.clone());
        let blocking = move || {
            let taken = idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
            let connection = match taken {
                Some(connection) => connection,
                None => open_read_only(&path).map_err(LoadError::msg)?,
            };
            let done = work(&connection);
            let mut idle = idle.lock().unwrap_or_else(|p| p.into_inner());
            if idle.len() < SQLITE_CONNECTIONS {
                idle.push(connection);
            }
            Ok(done)
        };
        tokio::task::spawn_blocking(blocking)
            .await
            .map_err(|e| LoadError::msg(format!("sqlite query task: {e}")))?
    }
}

impl Loader for SqliteSource {
    async fn load(&self, key: &str) -> Result<Value, LoadError> {
        let (query, key) = (self.query.clone(), key.to_owned());
        self.with_connection(move |connection| read_one(connection, &query, &key))
            .await?
    }

    async fn load_many(&self, keys: &[&str]) -> Vec<Result<Value, LoadError>> {
        let (query, many) = (self.query.clone(), self.query_many.clone());
        let owned: Vec<String> = keys.iter().map(|&key| key.to_owned()).collect();
        let work =
            move |connection: &Connection| read_many(connection, &query, many.as_ref(), &owned);
        match self.with_connection(work).await {
            Ok(answers) => answers,
            Err(error) => vec![Err(error); keys.len()],
        }
    }
}
