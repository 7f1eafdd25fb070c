//! Groups declared in a TOML file (`--config`), each reading through to a
//! data source, so that services in any language can use the cluster as a
//! shared cache in front of a slow origin with `GET /<group>/<key>`.
//!
//! ```toml
//! [[group]]
//! name = "pages"
//! source = "http"
//! url = "http://127.0.0.1:9000/{key}"   # the key, escaped except '/'
//! timeout = "5s"                         # optional, default 5s
//! # ca = "origin-ca.pem"                 # https: trust only this CA
//! cache_bytes = "64MiB"                  # optional, default --cache-bytes
//! ttl = "10m"                            # optional, default --ttl
//!
//! [[group]]
//! name = "assets"
//! source = "files"
//! dir = "examples/data"                  # key = path relative to it
//!
//! [[group]]
//! name = "rows"
//! source = "sqlite"
//! database = "pages.db"                  # opened read-only
//! query = "SELECT body FROM pages WHERE id = ?"
//! ```
//!
//! - `http`: a missing key is fetched from the origin once for the whole
//!   cluster (by the key's owner). 200 is the value; `Cache-Control:
//!   max-age=N` makes it expire after N s (`no-store` or `max-age=0`: served,
//!   not cached); 404 is "not found" (not cached); any other status, a
//!   connection failure or the timeout is a load error (503 to the client,
//!   not cached). `https://` origins (feature `tls`, on by default) are
//!   checked against the system's root certificates, or, when the group
//!   sets `ca`, against that PEM bundle alone (a private origin CA).
//! - `files`: the key is a path relative to `dir`. Absolute paths, `..`,
//!   and symbolic links leading outside `dir` are refused (not found); a
//!   missing file is not found.
//! - `sqlite`: the database is opened read-only; `query` takes the key as
//!   its one parameter and the first column of the first row is the value
//!   (text or blob); no row is not found. Queries run on tokio's blocking
//!   threads, each on a connection of a small pool.
//!
//! Written with what the server already has (hyper-util's client with
//! hyper-rustls for https, tokio's files, serde with the `toml` crate): no
//! new HTTP stack.

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use peercache::{LoadError, Loader, Value};
use serde::Deserialize;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, SystemTime};

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
    /// `sqlite`: the database file.
    pub database: Option<PathBuf>,
    /// `sqlite`: the query, with one `?` for the key.
    pub query: Option<String>,
}

/// The kinds of data source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// An HTTP origin (`url`, `timeout`).
    Http,
    /// A directory (`dir`).
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

/// Longest origin answer taken (a larger one is a load error).
const MAX_ORIGIN_BYTES: usize = 64 << 20;
/// Default time for an origin request.
const DEFAULT_ORIGIN_TIMEOUT: Duration = Duration::from_secs(5);

/// How the origin is reached: plain TCP, or TLS over it with the `tls`
/// feature (which also serves `http://` origins).
#[cfg(feature = "tls")]
type OriginConnector = hyper_rustls::HttpsConnector<HttpConnector>;
#[cfg(not(feature = "tls"))]
type OriginConnector = HttpConnector;

/// The loader of an `http` group.
pub struct HttpSource {
    template: String,
    timeout: Duration,
    client: Client<OriginConnector, Empty<Bytes>>,
}

impl HttpSource {
    /// A source reading `template` (with `{key}`), each request bounded by
    /// `timeout`; an `https://` origin is trusted through the PEM bundle
    /// `ca`, or without one through the system's root certificates. The
    /// error says what to fix.
    pub fn new(
        template: &str,
        timeout: Option<Duration>,
        ca: Option<&Path>,
    ) -> Result<Self, String> {
        let https = template.starts_with("https://");
        if !https && !template.starts_with("http://") {
            return Err(format!(
                "url {template:?} must start with http:// or https://"
            ));
        }
        if !template.contains("{key}") {
            return Err(format!("url {template:?} must contain {{key}}"));
        }
        let sample = template.replace("{key}", "k");
        sample
            .parse::<http::Uri>()
            .map_err(|e| format!("url {template:?} is not a valid URL: {e}"))?;
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(Duration::from_secs(2)));
        let connector = origin_connector(connector, https, ca)?;
        Ok(HttpSource {
            template: template.to_owned(),
            timeout: timeout.unwrap_or(DEFAULT_ORIGIN_TIMEOUT),
            client: Client::builder(TokioExecutor::new()).build(connector),
        })
    }

    async fn fetch(&self, key: &str) -> Result<Value, LoadError> {
        let url = self.template.replace("{key}", &escape_key(key));
        let uri: http::Uri = url
            .parse()
            .map_err(|e| LoadError::msg(format!("bad origin URL {url:?}: {e}")))?;
        let exchange = async {
            let response = self
                .client
                .get(uri)
                .await
                .map_err(|e| LoadError::msg(format!("origin {url}: {}", with_causes(&e))))?;
            let status = response.status();
            let max_age = max_age(response.headers());
            let body = Limited::new(response.into_body(), MAX_ORIGIN_BYTES)
                .collect()
                .await
                .map_err(|e| LoadError::msg(format!("origin {url}: reading the body: {e}")))?
                .to_bytes();
            Ok::<_, LoadError>((status, max_age, body))
        };
        let (status, max_age, body) = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| {
                LoadError::msg(format!("origin {url}: no answer within {:?}", self.timeout))
            })??;
        match status {
            http::StatusCode::OK => {
                let value = Value::new(body);
                Ok(match max_age {
                    // Served to the waiting callers, never cached.
                    Some(Duration::ZERO) => value.with_expiry(SystemTime::now()),
                    Some(age) => value.with_expiry(SystemTime::now() + age),
                    None => value,
                })
            }
            http::StatusCode::NOT_FOUND => Err(LoadError::NotFound),
            status => Err(LoadError::msg(format!("origin {url} answered {status}"))),
        }
    }
}

/// The connector for an origin: TLS for `https` with the trust asked for.
#[cfg(feature = "tls")]
fn origin_connector(
    tcp: HttpConnector,
    https: bool,
    ca: Option<&Path>,
) -> Result<OriginConnector, String> {
    let mut tcp = tcp;
    // hyper-rustls dispatches on the scheme itself.
    tcp.enforce_http(false);
    let provider = rustls::crypto::ring::default_provider();
    let builder = match ca {
        Some(ca) => {
            let tls = peercache::http::TlsConfig::builder()
                .ca(peercache::http::Pem::file(ca))
                .build()
                .map_err(|e| format!("ca: {e}"))?;
            let config = tls.client_config().ok_or("ca: the bundle gave no client settings")?;
            hyper_rustls::HttpsConnectorBuilder::new().with_tls_config((*config).clone())
        }
        None if https => hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_native_roots(provider)
            .map_err(|e| {
                format!(
                    "no trusted root certificates for https origins ({e}): install the system's CA certificates (Debian: apt-get install ca-certificates), or set ca = \"origin-ca.pem\" for the group"
                )
            })?,
        // Never used for TLS: an http:// origin needs no roots.
        None => hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(trust_nothing(provider)?),
    };
    Ok(builder.https_or_http().enable_http1().wrap_connector(tcp))
}

/// A client config trusting nothing, for a connector that only speaks
/// plain HTTP.
#[cfg(feature = "tls")]
fn trust_nothing(provider: rustls::crypto::CryptoProvider) -> Result<rustls::ClientConfig, String> {
    Ok(
        rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth(),
    )
}

/// Without the `tls` feature only `http://` origins can be read.
#[cfg(not(feature = "tls"))]
fn origin_connector(
    tcp: HttpConnector,
    https: bool,
    _ca: Option<&Path>,
) -> Result<OriginConnector, String> {
    if https {
        return Err(
            "https:// origins need the `tls` feature: this peercache-server was built without it (rebuild with default features)"
                .to_owned(),
        );
    }
    Ok(tcp)
}

impl Loader for HttpSource {
    async fn load(&self, key: &str) -> Result<Value, LoadError> {
        self.fetch(key).await
    }
}

/// An error and its causes, `a: b: c` (hyper-util's client error alone
/// says only "client error (Connect)").
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        cause = inner.source();
    }
    text
}

/// The key for a URL: every byte outside `A-Za-z0-9-._~/` as `%XX`, so a
/// key can name a path on the origin but cannot add a query or a fragment.
fn escape_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for byte in key.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~/".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The `max-age` of a `Cache-Control` header; `no-store` and `no-cache`
/// count as 0.
fn max_age(headers: &http::HeaderMap) -> Option<Duration> {
    let value = headers.get(http::header::CACHE_CONTROL)?.to_str().ok()?;
    let mut age = None;
    for directive in value.split(',').map(str::trim) {
        let lower = directive.to_ascii_lowercase();
        if lower == "no-store" || lower == "no-cache" {
            return Some(Duration::ZERO);
        }
        if let Some(seconds) = lower.strip_prefix("max-age=") {
            age = seconds
                .trim_matches('"')
                .parse()
                .ok()
                .map(Duration::from_secs);
        }
    }
    age
}

/// The loader of a `files` group.
pub struct FilesSource {
    root: PathBuf,
}

impl FilesSource {
    /// A source reading files under `dir`, which must be a directory.
    pub fn new(dir: &Path) -> Result<Self, String> {
        let root = dir
            .canonicalize()
            .map_err(|e| format!("dir {}: {e}", dir.display()))?;
        if !root.is_dir() {
            return Err(format!("dir {} is not a directory", dir.display()));
        }
        Ok(FilesSource { root })
    }

    /// The file a key names, if it is inside the directory.
    fn path_of(&self, key: &str) -> Option<PathBuf> {
        let relative = Path::new(key);
        if key.is_empty()
            || key.contains('\0')
            || !relative
                .components()
                .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
        {
            return None;
        }
        // Symbolic links are followed, then the result must still be inside.
        let path = self.root.join(relative).canonicalize().ok()?;
        path.starts_with(&self.root).then_some(path)
    }
}

impl Loader for FilesSource {
    async fn load(&self, key: &str) -> Result<Value, LoadError> {
        let Some(path) = self.path_of(key) else {
            return Err(LoadError::NotFound);
        };
        match tokio::fs::read(&path).await {
            Ok(bytes) => Ok(Value::new(bytes)),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Err(LoadError::NotFound),
            // A directory, or unreadable: not a value.
            Err(error) if path.is_dir() => {
                let _ = error;
                Err(LoadError::NotFound)
            }
            Err(error) => Err(LoadError::msg(format!("reading {key:?}: {error}"))),
        }
    }
}

/// Connections kept open for a `sqlite` group.
#[cfg(feature = "sqlite")]
const SQLITE_CONNECTIONS: usize = 4;

/// The loader of a `sqlite` group.
#[cfg(feature = "sqlite")]
pub struct SqliteSource {
    path: PathBuf,
    query: String,
    idle: std::sync::Arc<std::sync::Mutex<Vec<rusqlite::Connection>>>,
}

#[cfg(feature = "sqlite")]
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

#[cfg(feature = "sqlite")]
fn open_read_only(path: &Path) -> Result<rusqlite::Connection, String> {
    use rusqlite::OpenFlags;
    rusqlite::Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| format!("database {}: {e}", path.display()))
}

#[cfg(feature = "sqlite")]
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_escape_but_keep_slashes() {
        assert_eq!(escape_key("a/b c?d#e"), "a/b%20c%3Fd%23e");
        assert_eq!(escape_key("ü"), "%C3%BC");
    }

    #[test]
    fn max_age_reads_cache_control() {
        let mut headers = http::HeaderMap::new();
        assert_eq!(max_age(&headers), None);
        headers.insert("cache-control", "public, max-age=30".parse().unwrap());
        assert_eq!(max_age(&headers), Some(Duration::from_secs(30)));
        headers.insert("cache-control", "no-store".parse().unwrap());
        assert_eq!(max_age(&headers), Some(Duration::ZERO));
    }

    #[test]
    fn file_keys_cannot_leave_the_directory() {
        let dir = std::env::temp_dir().join(format!("peercache-files-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("sub/page.html"), "hi").unwrap();
        let source = FilesSource::new(&dir).unwrap();
        assert!(source.path_of("sub/page.html").is_some());
        assert!(source.path_of("./sub/page.html").is_some());
        for bad in ["../etc/passwd", "/etc/passwd", "sub/../../x", "", "a\0b"] {
            assert_eq!(source.path_of(bad), None, "{bad:?}");
        }
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink("/etc", dir.join("escape")).unwrap();
            assert_eq!(source.path_of("escape/hostname"), None);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

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
            "#,
        )
        .unwrap();
        assert_eq!(config.groups.len(), 2);
        assert_eq!(config.groups[0].source, SourceKind::Http);
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
}
