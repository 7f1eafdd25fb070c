//! The `http` source: a missing key is fetched from an origin with `GET`,
//! once for the whole cluster (by the key's owner).
//!
//! 200 is the value; `Cache-Control: max-age=N` makes it expire after N s
//! (`no-store`, `no-cache` or `max-age=0`: served, not cached), and its
//! `stale-while-revalidate=N` and `stale-if-error=N` become the value's own
//! stale windows (`cache_control.rs`), which a group without windows of its
//! own honours; 404 is "not found" (cached only with the group's
//! `cache_not_found`); any other status, a connection failure or the
//! timeout is a load error (503 to the client, not cached), and a 502, 503,
//! 504 or 429, a connection failure or the timeout says the origin is
//! unreachable (`LoadError::unavailable`, which the group's
//! `origin_breaker` counts; a 500 or a body over the limit may be one
//! key's trouble and does not). `https://` origins (feature `tls`, on by
//! default) are checked against the system's
//! root certificates, or, when the group sets `ca`, against that PEM bundle
//! alone (a private origin CA).
//!
//! # Keys to URLs
//!
//! The key comes from a client, so it must not choose more than the group
//! lets it: `{key}` in `url` is replaced by the key with every byte outside
//! `A-Za-z0-9-._~` percent-escaped, `/` kept in the path (a key can name a
//! path under the URL's prefix) and escaped in the query (the key stays one
//! value). `{key}` may be in the path or the query, not in the host. An
//! origin resolves `.` and `..` segments (many decode `%2E` first), so
//! escaping dots would not keep a key under the prefix: a key with a `.` or
//! `..` segment is refused instead — "not found" (404), with no request to
//! the origin, as the `files` source refuses `..`. Segments are split on
//! `/` and on `\` (which some origins read as `/`), and read once more
//! after percent-decoding (origins that decode twice). The URL finally
//! built must not have such a segment in its path either.
//!
//! With `url = "http://127.0.0.1:9000/public/{key}"`:
//!
//! | key (as decoded from `GET /<group>/<key>`) | origin request |
//! | --- | --- |
//! | `a/b c` | `GET /public/a/b%20c` |
//! | `q?x=1#f` | `GET /public/q%3Fx%3D1%23f` |
//! | `a\b`, `100%` | `GET /public/a%5Cb`, `GET /public/100%25` |
//! | `a//b`, `.well-known/x`, `a..b` | `GET /public/a//b`, `/public/.well-known/x`, `/public/a..b` |
//! | `..`, `.`, `../x`, `./x`, `a/../b`, `a/.`, `..\x`, `%2e%2e/x` | none: 404 |
//!
//! With `url = "http://127.0.0.1:9000/get?id={key}"`: `a/b` is
//! `GET /get?id=a%2Fb`, `../x` is `GET /get?id=..%2Fx`, `x&admin=1` is
//! `GET /get?id=x%26admin%3D1`.

use super::CacheControl;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use peercache::{LoadError, Loader, Value};
use std::path::Path;
use std::time::{Duration, SystemTime};

/// Longest origin answer taken (a larger one is a load error).
const MAX_ORIGIN_BYTES: usize = super::MAX_VALUE_BYTES as usize;
/// Default time for an origin request.
const DEFAULT_ORIGIN_TIMEOUT: Duration = Duration::from_secs(5);
/// Where the key goes in `url`.
const KEY: &str = "{key}";

/// How the origin is reached: plain TCP, or TLS over it with the `tls`
/// feature (which also serves `http://` origins).
#[cfg(feature = "tls")]
type OriginConnector = hyper_rustls::HttpsConnector<HttpConnector>;
#[cfg(not(feature = "tls"))]
type OriginConnector = HttpConnector;

/// The loader of an `http` group.
pub struct HttpSource {
    template: String,
    /// Where the path starts in `template` (after the host), and where the
    /// query starts (the first `?` after it, or the end): a key can change
    /// neither, as it cannot hold a bare `?`.
    path_at: usize,
    query_at: usize,
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
        let host_at = if https {
            "https://".len()
        } else if template.starts_with("http://") {
            "http://".len()
        } else {
            return Err(format!(
                "url {template:?} must start with http:// or https://"
            ));
        };
        if !template.contains(KEY) {
            return Err(format!("url {template:?} must contain {KEY}"));
        }
        if template.contains('#') {
            return Err(format!(
                "url {template:?} has a fragment (#...), which is never sent to the origin: remove it"
            ));
        }
        let path_at = template[host_at..]
            .find(['/', '?'])
            .map(|at| host_at + at)
            .filter(|&at| !template[..at].contains(KEY))
            .ok_or_else(|| {
                format!(
                    "url {template:?} has {KEY} in its host: put it in the path or the query, e.g. http://origin/{KEY}, so that a key cannot choose the host"
                )
            })?;
        let query_at = template[path_at..]
            .find('?')
            .map_or(template.len(), |at| path_at + at);
        if has_dot_segment(&template[path_at..query_at].replace(KEY, "k")) {
            return Err(format!(
                "url {template:?} has a `.` or `..` segment in its path: write the path the origin serves, without them"
            ));
        }
        let sample = template.replace(KEY, "k");
        sample
            .parse::<http::Uri>()
            .map_err(|e| format!("url {template:?} is not a valid URL: {e}"))?;
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(Duration::from_secs(2)));
        let connector = origin_connector(connector, https, ca)?;
        Ok(HttpSource {
            template: template.to_owned(),
            path_at,
            query_at,
            timeout: timeout.unwrap_or(DEFAULT_ORIGIN_TIMEOUT),
            client: Client::builder(TokioExecutor::new()).build(connector),
        })
    }

    /// The origin URL of `key`, or why the key is refused (see the module
    /// documentation).
    fn url_for(&self, key: &str) -> Result<String, &'static str> {
        let (path, query) = self.template.split_at(self.query_at);
        if path.contains(KEY) && has_dot_segment(key) {
            return Err("the key has a `.` or `..` segment, which would leave the url's path");
        }
        let mut url = path.replace(KEY, &escape_key(key, Part::Path));
        let path_end = url.len();
        url.push_str(&query.replace(KEY, &escape_key(key, Part::Query)));
        if has_dot_segment(&url[self.path_at..path_end]) {
            return Err("the origin URL's path would have a `.` or `..` segment");
        }
        Ok(url)
    }

    async fn fetch(&self, key: &str) -> Result<Value, LoadError> {
        let url = self.url_for(key).map_err(|reason| {
            // The key itself is left to the group's traces (--trace-keys).
            tracing::debug!(reason, "http source: key refused, answered not found");
            LoadError::NotFound
        })?;
        let uri: http::Uri = url
            .parse()
            .map_err(|e| LoadError::msg(format!("bad origin URL {url:?}: {e}")))?;
        let exchange = async {
            let response = self.client.get(uri).await.map_err(|e| {
                LoadError::unavailable(format!("origin {url}: {}", with_causes(&e)))
            })?;
            let status = response.status();
            let control = CacheControl::of(response.headers());
            let body = Limited::new(response.into_body(), MAX_ORIGIN_BYTES)
                .collect()
                .await
                .map_err(|e| {
                    let message = format!("origin {url}: reading the body: {e}");
                    // A body over the limit is this key's; a connection
                    // broken mid-body, the origin's.
                    if e.is::<http_body_util::LengthLimitError>() {
                        LoadError::msg(message)
                    } else {
                        LoadError::unavailable(message)
                    }
                })?
                .to_bytes();
            Ok::<_, LoadError>((status, control, body))
        };
        let (status, control, body) = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| {
                LoadError::unavailable(format!("origin {url}: no answer within {:?}", self.timeout))
            })??;
        match status {
            http::StatusCode::OK => {
                let value = Value::new(body);
                if !control.cacheable() {
                    // Served to the waiting callers, never cached (nor
                    // served stale).
                    return Ok(value.with_expiry(SystemTime::now()));
                }
                // The origin's stale windows, for a group that sets none.
                let value = value
                    .with_stale_windows(control.stale_while_revalidate, control.stale_if_error);
                Ok(match control.max_age {
                    // An age past the clock's range (an origin can send
                    // any number) means no expiry, never an overflow.
                    Some(age) => match SystemTime::now().checked_add(age) {
                        Some(at) => value.with_expiry(at),
                        None => value,
                    },
                    None => value,
                })
            }
            http::StatusCode::NOT_FOUND => Err(LoadError::NotFound),
            // A gateway's 502, 503 or 504, or a 429, says the origin is down
            // or shedding load (the breaker counts them); another status,
            // a 500 included, may be this key's alone.
            http::StatusCode::BAD_GATEWAY
            | http::StatusCode::SERVICE_UNAVAILABLE
            | http::StatusCode::GATEWAY_TIMEOUT
            | http::StatusCode::TOO_MANY_REQUESTS => Err(LoadError::unavailable(format!(
                "origin {url} answered {status}"
            ))),
            status => Err(LoadError::msg(format!("origin {url} answered {status}"))),
        }
    }
}

impl Loader for HttpSource {
    async fn load(&self, key: &str) -> Result<Value, LoadError> {
        self.fetch(key).await
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

/// Which part of the URL a key goes in.
#[derive(Clone, Copy)]
enum Part {
    /// `/` is kept: a key can name a path.
    Path,
    /// `/` is escaped too: a key is one value.
    Query,
}

/// The key for a URL: every byte outside `A-Za-z0-9-._~` (and `/` in the
/// path) as `%XX`, so that a key cannot add a query, a parameter or a
/// fragment.
fn escape_key(key: &str, part: Part) -> String {
    let mut out = String::with_capacity(key.len());
    for byte in key.bytes() {
        let kept = byte.is_ascii_alphanumeric()
            || b"-._~".contains(&byte)
            || (byte == b'/' && matches!(part, Part::Path));
        if kept {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// True when `path`, split on `/` and `\`, has a `.` or `..` segment, as
/// it is or once or twice percent-decoded (what an origin may resolve).
fn has_dot_segment(path: &str) -> bool {
    let mut text = path.to_owned();
    for _ in 0..3 {
        if text.split(['/', '\\']).any(|s| s == "." || s == "..") {
            return true;
        }
        let decoded = percent_decode(&text);
        if decoded == text {
            return false;
        }
        text = decoded;
    }
    false
}

/// `text` with each `%XX` replaced by its byte (invalid UTF-8 replaced).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(url: &str) -> HttpSource {
        HttpSource::new(url, None, None).unwrap()
    }

    #[test]
    fn keys_escape_but_keep_slashes_in_the_path() {
        assert_eq!(escape_key("a/b c?d#e", Part::Path), "a/b%20c%3Fd%23e");
        assert_eq!(escape_key("ü", Part::Path), "%C3%BC");
        assert_eq!(escape_key("a\\b%&=+;", Part::Path), "a%5Cb%25%26%3D%2B%3B");
        let pages = source("http://o:9000/public/{key}");
        for (key, url) in [
            ("a/b c", "http://o:9000/public/a/b%20c"),
            ("q?x=1#f", "http://o:9000/public/q%3Fx%3D1%23f"),
            ("a\\b", "http://o:9000/public/a%5Cb"),
            ("100%", "http://o:9000/public/100%25"),
            ("a//b", "http://o:9000/public/a//b"),
            (".well-known/x", "http://o:9000/public/.well-known/x"),
            ("a..b/...", "http://o:9000/public/a..b/..."),
        ] {
            assert_eq!(pages.url_for(key).as_deref(), Ok(url), "{key:?}");
        }
    }

    #[test]
    fn dot_segments_cannot_leave_the_prefix() {
        let pages = source("http://o:9000/public/{key}");
        for key in [
            "..",
            ".",
            "./x",
            "../x",
            "a/../b",
            "a/..",
            "a/.",
            "../../private/secret",
            "..\\x",
            "a\\..\\..\\x",
            "%2e%2e/x",
            "%2E",
            "%252e%252e/x",
        ] {
            assert!(pages.url_for(key).is_err(), "{key:?}");
        }
        // Dots the template adds after the key count too.
        let dotted = source("http://o/files/{key}.");
        assert!(dotted.url_for("a/").is_err());
        assert_eq!(dotted.url_for("a").as_deref(), Ok("http://o/files/a."));
        // Inside a segment, `..` is a name, not a way up.
        let item = source("http://o/item-{key}.json");
        assert_eq!(item.url_for("..x").as_deref(), Ok("http://o/item-..x.json"));
    }

    #[test]
    fn keys_in_the_query_are_one_value() {
        let query = source("http://o/public/get?id={key}&v=1");
        for (key, url) in [
            ("a/b", "http://o/public/get?id=a%2Fb&v=1"),
            ("../x", "http://o/public/get?id=..%2Fx&v=1"),
            ("..", "http://o/public/get?id=..&v=1"),
            (
                "x&admin=1#f",
                "http://o/public/get?id=x%26admin%3D1%23f&v=1",
            ),
        ] {
            assert_eq!(query.url_for(key).as_deref(), Ok(url), "{key:?}");
        }
        let both = source("http://o/{key}?id={key}");
        assert_eq!(both.url_for("a/b").as_deref(), Ok("http://o/a/b?id=a%2Fb"));
        assert!(both.url_for("../b").is_err());
        let no_path = source("http://o?id={key}");
        assert_eq!(no_path.url_for("a/b").as_deref(), Ok("http://o?id=a%2Fb"));
    }

    #[test]
    fn templates_keep_the_key_out_of_the_host() {
        for url in [
            "http://{key}.example.com/",
            "http://o{key}",
            "http://o{key}/x",
            "http://user:{key}@o/x",
        ] {
            let error = HttpSource::new(url, None, None).err().unwrap();
            assert!(error.contains("in its host"), "{url}: {error}");
        }
        let error = HttpSource::new("http://o/x#{key}", None, None)
            .err()
            .unwrap();
        assert!(error.contains("fragment"), "{error}");
        let error = HttpSource::new("http://o/a/../{key}", None, None)
            .err()
            .unwrap();
        assert!(error.contains("`..` segment"), "{error}");
    }
}
