//! The floor of the cluster benchmarks: a do-nothing HTTP/1.1 server that
//! answers every request with the same fixed body (100 bytes by default),
//! on hyper alone. Driven by the same load generator as the nodes, it
//! shows what the HTTP stack and the client cost before any cache work.
//!
//! With `--upstream`, it is the second hop of a two-hop floor: every
//! request is relayed to a floor at that address (one upstream keep-alive
//! connection per client connection), its body read whole and answered:
//! two serves of the body and one read of it, the least a node fetching a
//! value from its owner must do.
//!
//! ```text
//! floor --listen 127.0.0.1:9100 [--body-size 100] [--upstream 127.0.0.1:9101]
//! ```

use bytes::Bytes;
use clap::Parser;
use http::{Request, Response, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::Mutex;

#[derive(Parser, Debug)]
#[command(about = "a do-nothing HTTP server: the floor of the cluster benchmarks")]
struct Args {
    /// Address to listen on.
    #[arg(long)]
    listen: SocketAddr,
    /// Length of the fixed answer.
    #[arg(long, default_value_t = 100)]
    body_size: usize,
    /// Relay every request to the floor at this address instead.
    #[arg(long)]
    upstream: Option<SocketAddr>,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let body = Bytes::from(vec![b'x'; args.body_size]);
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    eprintln!("floor listening on {}", args.listen);
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let body = body.clone();
        let upstream = args.upstream;
        tokio::spawn(async move {
            let Some(upstream) = upstream else {
                let service = service_fn(move |_: Request<Incoming>| {
                    let body = body.clone();
                    async move { Ok::<_, Infallible>(Response::new(Full::new(body))) }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
                return;
            };
            let Ok(sender) = connect(upstream).await else {
                return;
            };
            let sender = Arc::new(Mutex::new(sender));
            let service = service_fn(move |request: Request<Incoming>| {
                let sender = Arc::clone(&sender);
                async move { Ok::<_, Infallible>(relay(&sender, upstream, request).await) }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

type Sender = hyper::client::conn::http1::SendRequest<Empty<Bytes>>;

async fn connect(upstream: SocketAddr) -> Result<Sender, Box<dyn std::error::Error>> {
    let stream = tokio::net::TcpStream::connect(upstream).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    Ok(sender)
}

/// Asks the upstream floor, reads its body whole, answers it.
async fn relay(
    sender: &Mutex<Sender>,
    upstream: SocketAddr,
    request: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let path = request.uri().path_and_query().map_or("/", |p| p.as_str());
    let ask = Request::get(path)
        .header(http::header::HOST, upstream.to_string())
        .body(Empty::new())
        .expect("a GET request");
    let answer = async {
        let response = sender.lock().await.send_request(ask).await?;
        // One copy into one buffer of the body's length, as a node reads a
        // value from its owner.
        let mut body = response.into_body();
        let length = body.size_hint().exact().unwrap_or(0);
        let mut buffer = Vec::with_capacity(length as usize);
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame?.into_data() {
                buffer.extend_from_slice(&data);
            }
        }
        Ok::<_, hyper::Error>(Bytes::from(buffer))
    };
    match answer.await {
        Ok(body) => Response::new(Full::new(body)),
        Err(error) => {
            let mut response = Response::new(Full::new(Bytes::from(error.to_string())));
            *response.status_mut() = StatusCode::BAD_GATEWAY;
            response
        }
    }
}
