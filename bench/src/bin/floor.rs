//! The floor of the cluster benchmarks: a do-nothing HTTP/1.1 server that
//! answers every request with the same fixed body (100 bytes by default),
//! on hyper alone. Driven by the same load generator as the nodes, it
//! shows what the HTTP stack and the client cost before any cache work.
//!
//! ```text
//! floor --listen 127.0.0.1:9100 [--body-size 100]
//! ```

use bytes::Bytes;
use clap::Parser;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::net::SocketAddr;

#[derive(Parser, Debug)]
#[command(about = "a do-nothing HTTP server: the floor of the cluster benchmarks")]
struct Args {
    /// Address to listen on.
    #[arg(long)]
    listen: SocketAddr,
    /// Length of the fixed answer.
    #[arg(long, default_value_t = 100)]
    body_size: usize,
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
        tokio::spawn(async move {
            let service = service_fn(move |_: Request<Incoming>| {
                let body = body.clone();
                async move { Ok::<_, Infallible>(Response::new(Full::new(body))) }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
