//! Groups declared in a TOML file (`--config`), each reading through to a
//! data source, so that services in any language can use the cluster as a
//! shared cache in front of a slow origin with `GET /<group>/<key>`.
//!
//! This module is the file's schema ([`Config`], [`GroupConfig`], and a
//! typed [`Source`] per group, each kind with its own fields: a field of
//! another kind is refused when the file is read, naming it); each kind of
//! source is a [`peercache::Loader`] of its own:
//!
//! - [`HttpSource`] (`http.rs`): `GET` on an origin URL built from the key;
//!   the key can name a path under the URL's prefix, never outside it.
//! - [`FilesSource`] (`files.rs`): regular files under a directory, one
//!   spelling per file, bounded in size.
//! - `SqliteSource` (`sqlite.rs`, feature `sqlite`): a read-only query,
//!   and optionally one for a batch of keys (`query_many`).
//!
//! Keys come from clients: every source treats them as hostile, and a key
//! that could reach outside what the group declares is "not found" (404),
//! before any request to the origin or the file system.
//!
//! ```toml
//! [[group]]
//! name = "pages"
//! source = "http"
//! url = "http://127.0.0.1:9000/{key}"   # see http.rs for how keys map
//! timeout = "5s"                         # optional, default 5s
//! # ca = "origin-ca.pem"                 # https: trust only this CA
//! cache_bytes = "64MiB"                  # optional, default --cache-bytes
//! ttl = "10m"                            # optional, default --ttl
//! # optional, each defaulting to its flag (see the README, "When the
//! # origin is slow or down"):
//! stale_while_revalidate = "30s"
//! stale_if_error = "1h"
//! cache_not_found = "10s"
//! max_concurrent_loads = 16
//! load_admission_wait = "500ms"
//! origin_breaker = 5
//! origin_breaker_cool_down = "5s"
//!
//! [[group]]
//! name = "assets"
//! source = "files"
//! dir = "examples/data"                  # key = path relative to it
//! max_file_bytes = "64MiB"               # optional, default 64MiB
//! dotfiles = false                       # optional: serve .env, .git/...?
//!
//! [[group]]
//! name = "rows"
//! source = "sqlite"
//! database = "pages.db"                  # opened read-only
//! query = "SELECT body FROM pages WHERE id = ?"
//! # optional: one query per batch of get_many (key, then value)
//! query_many = "SELECT id, body FROM pages WHERE id IN (?)"
//! ```
//!
//! Written with what the server already has (hyper-util's client with
//! hyper-rustls for https, tokio's files, serde with the `toml` crate): no
//! new HTTP stack.

mod cache_control;
mod files;
mod http;
mod protection;
#[cfg(feature = "sqlite")]
mod sqlite;

pub use cache_control::CacheControl;
pub use files::FilesSource;
pub use http::HttpSource;
pub use protection::Protection;
use protection::PROTECTION_KEYS;
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteSource;

use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The `--config` file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The groups, each with its source.
    #[serde(default, rename = "group")]
    pub groups: Vec<GroupConfig>,
}

/// One `[[group]]`: its name, what it overrides of the flags, and its
/// source, typed: a field of another kind of source is refused when the
/// file is read, naming the field.
#[derive(Debug)]
pub struct GroupConfig {
    /// The group's name (the first path segment of `/<group>/<key>`).
    pub name: String,
    /// Its budget, e.g. `64MiB` (default: `--cache-bytes`).
    pub cache_bytes: Option<String>,
    /// Its time-to-live, e.g. `10m` (default: `--ttl`).
    pub ttl: Option<String>,
    /// How it protects its origin (each default: its flag).
    pub protection: Protection,
    /// Where values come from (`source = "..."` and that source's fields).
    pub source: Source,
}

/// A group's data source: the `source` field picks the variant, whose
/// struct takes that source's fields and no other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `source = "http"`: an HTTP origin.
    Http(HttpConfig),
    /// `source = "files"`: a directory.
    Files(FilesConfig),
    /// `source = "sqlite"`: a SQLite database.
    Sqlite(SqliteConfig),
}

/// The fields of `source = "http"`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// The URL template with `{key}`.
    pub url: String,
    /// Time for the whole origin request (default 5 s).
    pub timeout: Option<String>,
    /// With an `https://` url: the PEM bundle of the CA(s) to trust
    /// instead of the system's (default: the system's root certificates).
    pub ca: Option<PathBuf>,
}

/// The fields of `source = "files"`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilesConfig {
    /// The directory.
    pub dir: PathBuf,
    /// The largest file served, e.g. `1MiB` (default 64 MiB); a larger one
    /// is a load error (503).
    pub max_file_bytes: Option<String>,
    /// Serve files and directories whose name starts with `.` (default
    /// false: `.env`, `.git/config` are not found).
    #[serde(default)]
    pub dotfiles: bool,
}

/// The fields of `source = "sqlite"`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqliteConfig {
    /// The database file.
    pub database: PathBuf,
    /// The query, with one `?` for the key.
    pub query: String,
    /// The query for a batch of keys, with its one parameter written
    /// `IN (?)` (the text `(?)` exactly once) and two columns, the key then
    /// the value, e.g. `SELECT id, body FROM pages WHERE id IN (?)`: a
    /// batch of `get_many` is then one query (per chunk of as many keys as
    /// SQLite takes parameters) instead of one per key. Checked at start-up.
    pub query_many: Option<String>,
}

impl Source {
    /// The value of `source` naming this kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Source::Http(_) => "http",
            Source::Files(_) => "files",
            Source::Sqlite(_) => "sqlite",
        }
    }

    /// What a group of kind `kind` takes, for error messages.
    fn usage(kind: &str) -> &'static str {
        match kind {
            "http" => "source = \"http\" needs url = \"http://origin/{key}\" and takes timeout and ca",
            "files" => "source = \"files\" needs dir = \"/path/to/dir\" and takes max_file_bytes and dotfiles",
            "sqlite" => "source = \"sqlite\" needs database = \"file.db\" and query = \"SELECT body FROM t WHERE id = ?\" and takes query_many = \"SELECT id, body FROM t WHERE id IN (?)\"",
            _ => "source is \"http\", \"files\" or \"sqlite\"",
        }
    }

    /// The source that `fields` (a group's table without its own fields)
    /// describe. Each kind is read from the table directly, not through
    /// serde's internally tagged enums, which buffer the fields and so
    /// lose their names in type errors (`dotfiles = "yes"`).
    fn from_table(mut fields: toml::Table) -> Result<Source, String> {
        let kind = match fields.remove("source") {
            Some(toml::Value::String(kind)) => kind,
            Some(other) => {
                return Err(format!(
                    "source is a {}, not a string; {}",
                    other.type_str(),
                    Source::usage("")
                ))
            }
            None => return Err(format!("missing field `source`; {}", Source::usage(""))),
        };
        let fields = toml::Value::Table(fields);
        let parsed = match kind.as_str() {
            "http" => fields.try_into().map(Source::Http),
            "files" => fields.try_into().map(Source::Files),
            "sqlite" => fields.try_into().map(Source::Sqlite),
            _ => return Err(format!("unknown source {kind:?}; {}", Source::usage(""))),
        };
        let source =
            parsed.map_err(|error| format!("{}; {}", one_line(&error), Source::usage(&kind)))?;
        if let Source::Http(http) = &source {
            if http.ca.is_some() && !http.url.starts_with("https://") {
                return Err("ca is for https:// origins; this url is not https".to_owned());
            }
        }
        Ok(source)
    }
}

/// A TOML error as one line: `invalid type: ..., expected a boolean, in
/// `dotfiles``.
fn one_line(error: &toml::de::Error) -> String {
    error
        .to_string()
        .trim()
        .replace("\nin `", ", in `")
        .replace('\n', " ")
}

impl<'de> Deserialize<'de> for GroupConfig {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        /// The fields every group has.
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Common {
            name: String,
            cache_bytes: Option<String>,
            ttl: Option<String>,
        }
        use serde::de::Error;
        let mut fields = toml::Table::deserialize(deserializer)?;
        let common: toml::Table = ["name", "cache_bytes", "ttl"]
            .into_iter()
            .filter_map(|key| Some((key.to_owned(), fields.remove(key)?)))
            .collect();
        let Common {
            name,
            cache_bytes,
            ttl,
        } = toml::Value::Table(common)
            .try_into()
            .map_err(|error| D::Error::custom(one_line(&error)))?;
        let protection: toml::Table = PROTECTION_KEYS
            .into_iter()
            .filter_map(|key| Some((key.to_owned(), fields.remove(key)?)))
            .collect();
        let protection: Protection = toml::Value::Table(protection)
            .try_into()
            .map_err(|error| D::Error::custom(format!("group {name:?}: {}", one_line(&error))))?;
        let source = Source::from_table(fields)
            .map_err(|message| D::Error::custom(format!("group {name:?}: {message}")))?;
        Ok(GroupConfig {
            name,
            cache_bytes,
            ttl,
            protection,
            source,
        })
    }
}

/// Why the config file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read --config {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The TOML is malformed or has unknown fields.
    #[error("bad --config {path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// What and where.
        message: String,
    },
    /// A group's settings are wrong.
    #[error("--config {path}, group {group:?}: {message}")]
    Group {
        /// The file.
        path: String,
        /// The group.
        group: String,
        /// What is wrong, and what to write instead.
        message: String,
    },
}

impl Config {
    /// Reads and parses the file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: shown.clone(),
            source,
        })?;
        toml::from_str(&text).map_err(|error| ConfigError::Parse {
            path: shown,
            message: error.to_string(),
        })
    }
}

impl Config {
    /// Builds every group of the file (read from `path`) on `node`, with
    /// `defaults` for what a group leaves out; `max_body_bytes` is the
    /// largest value peers take from each other (`--max-body-bytes`).
    pub fn build(
        self,
        path: &Path,
        node: &peercache::Node,
        defaults: &crate::plan::GroupDefaults,
        max_body_bytes: u64,
    ) -> Result<(), crate::error::ServerError> {
        use crate::args::{parse_bytes, parse_duration};
        for declared in self.groups {
            let wrong = |message: String| ConfigError::Group {
                path: path.display().to_string(),
                group: declared.name.clone(),
                message,
            };
            let mut builder = defaults.builder(node, &declared.name);
            if let Some(bytes) = &declared.cache_bytes {
                builder = builder.cache_bytes(
                    parse_bytes(bytes).map_err(|e| wrong(format!("cache_bytes: {e}")))?,
                );
            }
            if let Some(ttl) = &declared.ttl {
                builder = builder.ttl(parse_duration(ttl).map_err(|e| wrong(format!("ttl: {e}")))?);
            }
            builder = declared
                .protection
                .apply(builder, defaults)
                .map_err(wrong)?;
            match &declared.source {
                Source::Http(http) => {
                    let timeout = http
                        .timeout
                        .as_deref()
                        .map(parse_duration)
                        .transpose()
                        .map_err(|e| wrong(format!("timeout: {e}")))?;
                    let source = HttpSource::new(&http.url, timeout, http.ca.as_deref());
                    builder.build(source.map_err(wrong)?)?;
                }
                Source::Files(config) => {
                    let files = FilesSource::new(config).map_err(wrong)?;
                    // A larger value could not be fetched by the peers: they
                    // would count its owner as failing.
                    if files.max_file_bytes() > max_body_bytes {
                        return Err(wrong(format!(
                            "max_file_bytes ({} bytes) is over --max-body-bytes ({} bytes), the largest value peers take from each other: lower max_file_bytes or raise --max-body-bytes",
                            files.max_file_bytes(),
                            max_body_bytes
                        ))
                        .into());
                    }
                    builder.build(files)?;
                }
                #[cfg(feature = "sqlite")]
                Source::Sqlite(sqlite) => {
                    let source = SqliteSource::new(
                        &sqlite.database,
                        &sqlite.query,
                        sqlite.query_many.as_deref(),
                    );
                    builder.build(source.map_err(wrong)?)?;
                }
                #[cfg(not(feature = "sqlite"))]
                Source::Sqlite(_) => {
                    return Err(wrong(
                        "this peercache-server was built without the `sqlite` feature: rebuild with default features".to_owned(),
                    )
                    .into());
                }
            }
            tracing::info!(group = %declared.name, source = declared.source.kind(), "group from --config");
        }
        Ok(())
    }
}

/// Longest value a source hands to the cache by default: an origin's answer
/// (always) and a file (unless the group sets `max_file_bytes`).
const MAX_VALUE_BYTES: u64 = 64 << 20;

#[cfg(test)]
mod tests;
