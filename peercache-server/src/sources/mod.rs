//! Groups declared in a TOML file (`--config`), each reading through to a
//! data source, so that services in any language can use the cluster as a
//! shared cache in front of a slow origin with `GET /<group>/<key>`.
//!
//! This module is the file's schema ([`Config`], [`GroupConfig`]) and its
//! checks; each kind of source is a [`peercache::Loader`] of its own:
//!
//! - [`HttpSource`] (`http.rs`): `GET` on an origin URL built from the key;
//!   the key can name a path under the URL's prefix, never outside it.
//! - [`FilesSource`] (`files.rs`): regular files under a directory, one
//!   spelling per file, bounded in size.
//! - `SqliteSource` (`sqlite.rs`, feature `sqlite`): a read-only query.
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
//! ```
//!
//! Written with what the server already has (hyper-util's client with
//! hyper-rustls for https, tokio's files, serde with the `toml` crate): no
//! new HTTP stack.

mod files;
mod http;
#[cfg(feature = "sqlite")]
mod sqlite;

pub use files::FilesSource;
pub use http::HttpSource;
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

/// One `[[group]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupConfig {
    /// The group's name (the first path segment of `/<group>/<key>`).
    pub name: String,
    /// Its budget, e.g. `64MiB` (default: `--cache-bytes`).
    pub cache_bytes: Option<String>,
    /// Its time-to-live, e.g. `10m` (default: `--ttl`).
    pub ttl: Option<String>,
    /// Where values come from.
    pub source: SourceKind,
    /// `http`: the URL template with `{key}`.
    pub url: Option<String>,
    /// `http`: time for the whole origin request (default 5 s).
    pub timeout: Option<String>,
    /// `http` with an `https://` url: the PEM bundle of the CA(s) to trust
    /// instead of the system's (default: the system's root certificates).
    pub ca: Option<PathBuf>,
    /// `files`: the directory.
    pub dir: Option<PathBuf>,
    /// `files`: the largest file served, e.g. `1MiB` (default 64 MiB); a
    /// larger one is a load error (503).
    pub max_file_bytes: Option<String>,
    /// `files`: serve files and directories whose name starts with `.`
    /// (default false: `.env`, `.git/config` are not found).
    pub dotfiles: Option<bool>,
    /// `sqlite`: the database file.
    pub database: Option<PathBuf>,
    /// `sqlite`: the query, with one `?` for the key.
    pub query: Option<String>,
}

/// The kinds of data source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// An HTTP origin (`url`, `timeout`, `ca`).
    Http,
    /// A directory (`dir`, `max_file_bytes`, `dotfiles`).
    Files,
    /// A SQLite database (`database`, `query`).
    Sqlite,
}

impl GroupConfig {
    /// Checks that the fields fit the source; says what is missing or extra.
    pub fn check(&self) -> Result<(), String> {
        match self.source {
            SourceKind::Http if self.url.is_none() => {
                Err("source = \"http\" needs url = \"http://origin/{key}\"".to_owned())
            }
            SourceKind::Http
                if self.ca.is_some()
                    && !self.url.as_deref().unwrap_or_default().starts_with("https://") =>
            {
                Err("ca is for https:// origins; this url is not https".to_owned())
            }
            SourceKind::Files | SourceKind::Sqlite if self.ca.is_some() => {
                Err("ca is for source = \"http\" with an https:// url".to_owned())
            }
            SourceKind::Http if self.dir.is_some() => {
                Err("dir is for source = \"files\"; an http group takes url".to_owned())
            }
            SourceKind::Http | SourceKind::Sqlite
                if self.max_file_bytes.is_some() || self.dotfiles.is_some() =>
            {
                Err(
                    "max_file_bytes and dotfiles are for source = \"files\": remove them from this group"
                        .to_owned(),
                )
            }
            SourceKind::Files if self.dir.is_none() => {
                Err("source = \"files\" needs dir = \"/path/to/dir\"".to_owned())
            }
            SourceKind::Files if self.url.is_some() || self.timeout.is_some() => {
                Err("url and timeout are for source = \"http\"; a files group takes dir".to_owned())
            }
            SourceKind::Sqlite if self.database.is_none() || self.query.is_none() => Err(
                "source = \"sqlite\" needs database = \"file.db\" and query = \"SELECT body FROM t WHERE id = ?\""
                    .to_owned(),
            ),
            SourceKind::Http | SourceKind::Files
                if self.database.is_some() || self.query.is_some() =>
            {
                Err("database and query are for source = \"sqlite\"".to_owned())
            }
            _ => Ok(()),
        }
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
            declared.check().map_err(wrong)?;
            match declared.source {
                SourceKind::Http => {
                    let timeout = declared
                        .timeout
                        .as_deref()
                        .map(parse_duration)
                        .transpose()
                        .map_err(|e| wrong(format!("timeout: {e}")))?;
                    let url = declared.url.as_deref().unwrap_or_default();
                    let ca = declared.ca.as_deref();
                    builder.build(HttpSource::new(url, timeout, ca).map_err(wrong)?)?;
                }
                SourceKind::Files => {
                    let dir = declared.dir.as_deref().unwrap_or(Path::new(""));
                    let files = FilesSource::new(dir, &declared).map_err(wrong)?;
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
                SourceKind::Sqlite => {
                    let database = declared.database.as_deref().unwrap_or(Path::new(""));
                    let query = declared.query.as_deref().unwrap_or_default();
                    builder.build(SqliteSource::new(database, query).map_err(wrong)?)?;
                }
                #[cfg(not(feature = "sqlite"))]
                SourceKind::Sqlite => {
                    return Err(wrong(
                        "this peercache-server was built without the `sqlite` feature: rebuild with default features".to_owned(),
                    )
                    .into());
                }
            }
            tracing::info!(group = %declared.name, source = ?declared.source, "group from --config");
        }
        Ok(())
    }
}

/// Longest value a source hands to the cache by default: an origin's answer
/// (always) and a file (unless the group sets `max_file_bytes`).
const MAX_VALUE_BYTES: u64 = 64 << 20;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_parse_and_unknown_fields_are_refused() {
        let config: Config = toml::from_str(
            r#"
            [[group]]
            name = "pages"
            source = "http"
            url = "http://127.0.0.1:9000/{key}"
            timeout = "2s"

            [[group]]
            name = "assets"
            source = "files"
            dir = "/srv/assets"
            cache_bytes = "16MiB"
            max_file_bytes = "1MiB"
            dotfiles = true
            "#,
        )
        .unwrap();
        assert_eq!(config.groups.len(), 2);
        assert_eq!(config.groups[0].source, SourceKind::Http);
        assert_eq!(config.groups[1].dotfiles, Some(true));
        assert!(config.groups.iter().all(|g| g.check().is_ok()));
        let mixed: Config = toml::from_str(
            "[[group]]\nname = \"x\"\nsource = \"files\"\nurl = \"http://a/{key}\"\n",
        )
        .unwrap();
        assert!(mixed.groups[0].check().unwrap_err().contains("needs dir"));
        let bad = toml::from_str::<Config>("[[group]]\nname = \"x\"\nsource = \"ftp\"\n");
        assert!(bad.is_err());
        assert!(HttpSource::new("ftp://x/{key}", None, None).is_err());
        assert!(HttpSource::new("http://x/", None, None).is_err());
        let ca_on_http: Config = toml::from_str(
            "[[group]]\nname = \"x\"\nsource = \"http\"\nurl = \"http://a/{key}\"\nca = \"ca.pem\"\n",
        )
        .unwrap();
        assert!(ca_on_http.groups[0].check().unwrap_err().contains("https"));
    }

    #[test]
    fn file_settings_are_for_files_groups_only() {
        for (source, extra) in [
            (
                "source = \"http\"\nurl = \"http://a/{key}\"",
                "dotfiles = true",
            ),
            (
                "source = \"http\"\nurl = \"http://a/{key}\"",
                "max_file_bytes = \"1MiB\"",
            ),
            (
                "source = \"sqlite\"\ndatabase = \"a.db\"\nquery = \"SELECT 1 WHERE ? = 1\"",
                "dotfiles = false",
            ),
        ] {
            let config: Config =
                toml::from_str(&format!("[[group]]\nname = \"x\"\n{source}\n{extra}\n")).unwrap();
            let error = config.groups[0].check().unwrap_err();
            assert!(
                error.contains("max_file_bytes and dotfiles are for source = \"files\""),
                "{extra}: {error}"
            );
        }
        let wrong_type = toml::from_str::<Config>(
            "[[group]]\nname = \"x\"\nsource = \"files\"\ndir = \"d\"\ndotfiles = \"yes\"\n",
        );
        assert!(wrong_type.unwrap_err().to_string().contains("dotfiles"));
    }
}
