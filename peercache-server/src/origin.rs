//! Who may call the node from a browser: the `Host` and `Origin` checks in
//! front of every route, and the headers every answer carries.
//!
//! The front API changes and empties the cache on every node with plain
//! `PUT`, `DELETE` and `POST` requests. A web page in a browser that can
//! reach a node could send them: a simple cross-site `POST` needs no CORS
//! preflight, and after DNS rebinding (a name of the attacker's that
//! resolves to the node) a page can also read the answers. So, on every
//! route:
//!
//! - a `Host` must be a name no attacker can point at the node: rebinding
//!   needs a name whose answers the attacker controls. An IP address
//!   passes, and so do `localhost`, `*.localhost`, the host of the node's
//!   `--self` URL and the names given with `--allowed-hosts` (`*` allows
//!   any). A node that listens beyond loopback also takes the names only
//!   its local network resolves: single-label names (`cache`, a Kubernetes
//!   or Compose service) and names under `.internal`, `.local` and `.lan`;
//!   whoever can answer for those on the local network can reach such a
//!   node directly anyway, while a node on loopback is reachable from the
//!   machine only, so there they are refused (a LAN host answering an
//!   mDNS or LLMNR query could otherwise rebind a page to it). A request
//!   without `Host` (HTTP/1.0, not a browser) passes. Any other name: 421
//!   Misdirected Request, saying which flag allows it.
//! - a request carrying an `Origin` other than the node's own (the same
//!   host and port as its `Host`), or `Sec-Fetch-Site: cross-site`, is
//!   refused with 403: the API is for services, not for other sites' pages.
//!   Peers and command-line clients send neither.
//!
//! Every answer carries `X-Content-Type-Options: nosniff`, so a browser
//! never renders a cached value as something else than its type says.

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

/// The names under which this node may be called.
#[derive(Debug, Clone)]
pub struct AllowedHosts {
    /// Lower-case host names (no port); IP addresses need no entry.
    names: Arc<[String]>,
    /// `--allowed-hosts '*'`: no check.
    any: bool,
    /// Whether names only the local network resolves pass (the node
    /// listens beyond loopback).
    local_names: bool,
}

impl AllowedHosts {
    /// `localhost`, the host of `self_url`, and `extra` (`*` for any);
    /// with `beyond_loopback`, also the local network's names.
    pub fn new(self_url: &str, extra: &[String], beyond_loopback: bool) -> Self {
        let mut names = vec!["localhost".to_owned()];
        if let Some(host) = self_url
            .parse::<axum::http::Uri>()
            .ok()
            .and_then(|uri| uri.host().map(str::to_ascii_lowercase))
        {
            names.push(host);
        }
        let mut any = false;
        for name in extra.iter().map(|n| n.trim()).filter(|n| !n.is_empty()) {
            if name == "*" {
                any = true;
            }
            names.push(name.trim_end_matches('.').to_ascii_lowercase());
        }
        AllowedHosts {
            names: names.into(),
            any,
            local_names: beyond_loopback,
        }
    }

    /// Whether a request whose `Host` is `authority` (host and optional
    /// port) may be answered.
    pub fn allows(&self, authority: &str) -> bool {
        if self.any {
            return true;
        }
        let host = host_of(authority);
        if host.parse::<std::net::IpAddr>().is_ok() {
            return true;
        }
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let local = !host.contains('.') || LOCAL_SUFFIXES.iter().any(|s| host.ends_with(s));
        host.ends_with(".localhost") || (self.local_names && local) || self.names.contains(&host)
    }
}

/// Suffixes of names that only the local network answers for.
const LOCAL_SUFFIXES: &[&str] = &[".internal", ".local", ".lan"];

/// The host of `host[:port]` or `[v6]:port`, brackets removed.
fn host_of(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or_default();
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => authority,
    }
}

/// The middleware: refuses what the module documentation says, and adds
/// `nosniff` to every answer.
pub async fn guard(State(allowed): State<AllowedHosts>, request: Request, next: Next) -> Response {
    let mut response = match refusal(&allowed, &request) {
        Some(refused) => refused,
        None => next.run(request).await,
    };
    nosniff(&mut response);
    response
}

/// The refusal of `request` by the `Host` and `Origin` checks, if any
/// (without the `nosniff` header: [`nosniff`] adds it to every answer).
pub fn refusal(allowed: &AllowedHosts, request: &Request) -> Option<Response> {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| request.uri().authority().map(|a| a.as_str().to_owned()));
    let (status, mut message) = match &host {
        Some(host) if !allowed.allows(host) => (
            StatusCode::MISDIRECTED_REQUEST,
            format!(
                "Host {host:?} is not a name of this node: call it by its IP address, localhost or its --self host, or add the name with --allowed-hosts"
            ),
        ),
        _ => {
            let origin = foreign_origin(request, host.as_deref())?;
            (
                StatusCode::FORBIDDEN,
                format!(
                    "cross-origin request refused (Origin {origin:?}): this API is for services, not for web pages of other sites"
                ),
            )
        }
    };
    message.push('\n');
    Some(
        (
            status,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            message,
        )
            .into_response(),
    )
}

/// Marks `response` `X-Content-Type-Options: nosniff`.
pub fn nosniff(response: &mut Response) {
    response.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
}

/// The request's `Origin` (or `Sec-Fetch-Site`) when it names another
/// site than the node as called.
fn foreign_origin(request: &Request, host: Option<&str>) -> Option<String> {
    let headers = request.headers();
    if headers
        .get("sec-fetch-site")
        .is_some_and(|site| site.as_bytes().eq_ignore_ascii_case(b"cross-site"))
    {
        let origin = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok());
        return Some(origin.unwrap_or("a cross-site page").to_owned());
    }
    let origin = headers.get(header::ORIGIN)?;
    let origin = String::from_utf8_lossy(origin.as_bytes()).into_owned();
    // "scheme://host[:port]"; "null" (sandboxed pages, file://) is foreign.
    let authority = origin.split_once("://").map(|(_, rest)| rest);
    let same = match (authority, host) {
        (Some(authority), Some(host)) => {
            authority.eq_ignore_ascii_case(host)
                || default_port_spelled(&origin, authority).eq_ignore_ascii_case(host)
        }
        _ => false,
    };
    (!same).then_some(origin)
}

/// `authority` without the scheme's default port (`:80`, `:443`), as a
/// `Host` header spells it.
fn default_port_spelled<'a>(origin: &str, authority: &'a str) -> &'a str {
    let default = if origin.starts_with("https://") {
        ":443"
    } else {
        ":80"
    };
    authority.strip_suffix(default).unwrap_or(authority)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_must_be_the_nodes_own_and_addresses_always_pass() {
        let extra = ["Cache.Example.".to_owned()];
        let beyond = AllowedHosts::new("http://cache-1.example:8080", &extra, true);
        let loopback = AllowedHosts::new("http://127.0.0.1:8080", &extra, false);
        for ok in [
            "localhost:8080",
            "LOCALHOST",
            "app.localhost",
            "127.0.0.1:8080",
            "10.1.2.3",
            "[::1]:8080",
            "cache.example",
        ] {
            assert!(beyond.allows(ok) && loopback.allows(ok), "{ok}");
        }
        assert!(beyond.allows("cache-1.example:8080"));
        // The local network's names: only for a node it can reach anyway.
        for local in ["cache-1", "x", "node.internal", "printer.local", "box.lan"] {
            assert!(beyond.allows(local), "{local}");
            assert!(!loopback.allows(local), "{local}");
        }
        for refused in [
            "rebind.evil.example",
            "evil.localhost.example:8080",
            "internal.evil.example",
        ] {
            assert!(
                !beyond.allows(refused) && !loopback.allows(refused),
                "{refused}"
            );
        }
        assert!(
            AllowedHosts::new("http://127.0.0.1:1", &["*".into()], false).allows("any.example")
        );
    }

    #[test]
    fn only_the_nodes_own_origin_passes() {
        let request = |origin: Option<&str>, site: Option<&str>| {
            let mut builder = Request::builder().uri("/pages/_purge");
            if let Some(origin) = origin {
                builder = builder.header("origin", origin);
            }
            if let Some(site) = site {
                builder = builder.header("sec-fetch-site", site);
            }
            builder.body(axum::body::Body::empty()).unwrap()
        };
        let host = Some("localhost:18080");
        assert_eq!(foreign_origin(&request(None, None), host), None);
        assert_eq!(
            foreign_origin(&request(Some("http://localhost:18080"), None), host),
            None
        );
        assert_eq!(
            foreign_origin(&request(Some("http://cache"), None), Some("cache")),
            None
        );
        assert_eq!(
            foreign_origin(&request(Some("http://cache:80"), None), Some("cache")),
            None
        );
        for foreign in ["https://evil.example", "null", "http://localhost:9999"] {
            assert_eq!(
                foreign_origin(&request(Some(foreign), None), host).as_deref(),
                Some(foreign)
            );
        }
        assert!(foreign_origin(&request(None, Some("cross-site")), host).is_some());
        assert_eq!(
            foreign_origin(&request(None, Some("same-origin")), host),
            None
        );
    }
}
