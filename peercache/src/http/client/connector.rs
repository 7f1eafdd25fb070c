//! The hyper client every peer of a pool shares: keep-alive connections
//! per peer, HTTP/1.1 or h2c, and (feature `tls`) TLS for `https://` peers
//! with the pool's CA and client certificate.

use crate::http::options::HttpOptions;
use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::time::Duration;

/// How the shared client connects: plain TCP, or (with the `tls` feature)
/// TLS for `https://` peers and plain TCP for `http://` ones.
#[cfg(not(feature = "tls"))]
pub(crate) type PeerConnector = HttpConnector;
/// How the shared client connects: plain TCP, or (with the `tls` feature)
/// TLS for `https://` peers and plain TCP for `http://` ones.
#[cfg(feature = "tls")]
pub(crate) type PeerConnector = hyper_rustls::HttpsConnector<HttpConnector>;

/// The hyper client all peers of a pool share.
pub(crate) type PeerClient = Client<PeerConnector, Full<Bytes>>;

/// Idle keep-alive connections are closed after this long unused: less than
/// a peercache server's default header-read timeout (10 s), which closes a
/// connection left idle that long, so this side lets go first instead of
/// racing the server's close with a new request.
const IDLE_TIMEOUT: Duration = Duration::from_secs(8);

/// HTTP/2 flow control on the client, which receives the values: frames
/// of up to 1 MiB (the protocol's default is 16 KiB, so a 1 MiB value took
/// 64 frames), and receive windows of 4 MiB a stream and 16 MiB a
/// connection (hyper's are 2 and 5 MiB), so that several large answers
/// flow at once on the one connection to a peer without waiting for
/// window updates. Fixed windows rather than hyper's adaptive ones: those
/// start at 64 KiB and grow by measuring round trips, which costs the
/// first large answers of every new connection a few round trips on a
/// real network. The client reads every answer at once (up to the body
/// limit), so the windows cost no memory it would not spend anyway. The
/// server keeps hyper's defaults: its receive windows hold request bodies
/// from anyone. Measured in BENCHMARKS.md, "Large values".
const H2_MAX_FRAME: u32 = 1 << 20;
const H2_STREAM_WINDOW: u32 = 4 << 20;
const H2_CONNECTION_WINDOW: u32 = 16 << 20;

/// The client all peers of a pool share, with `options`' connection
/// settings: keep-alive pool per peer, h2c or HTTP/1.1, TLS for `https://`
/// peers (feature `tls`).
pub(crate) fn build_client(options: &HttpOptions) -> PeerClient {
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(options.max_idle_per_peer)
        .pool_idle_timeout(IDLE_TIMEOUT)
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .http2_only(options.http2)
        .http2_max_frame_size(H2_MAX_FRAME)
        .http2_initial_stream_window_size(H2_STREAM_WINDOW)
        .http2_initial_connection_window_size(H2_CONNECTION_WINDOW)
        .build(connector(options))
}

/// The connector of the shared client: TCP with the connect timeout and
/// `TCP_NODELAY`, wrapped (with the `tls` feature) in TLS for `https://`
/// peers.
fn connector(options: &HttpOptions) -> PeerConnector {
    let mut http = HttpConnector::new();
    http.set_connect_timeout(Some(options.connect_timeout));
    http.set_nodelay(true);
    #[cfg(feature = "tls")]
    {
        // The TLS layer passes http:// through and needs to see https://.
        http.enforce_http(false);
        let config = options
            .tls
            .as_ref()
            .and_then(|tls| tls.client_config())
            .unwrap_or_else(crate::http::tls::untrusting_client_config);
        let builder = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config((*config).clone())
            .https_or_http();
        if options.http2 {
            builder.enable_http2().wrap_connector(http)
        } else {
            builder.enable_http1().wrap_connector(http)
        }
    }
    #[cfg(not(feature = "tls"))]
    http
}
