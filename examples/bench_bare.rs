//! The bare HTTP server of issue 16 (`bench/run.sh`, scenario 0): the
//! physical limit our own stack is measured against.
//!
//! ```sh
//! cargo run --release --example bench_bare -- --bind 127.0.0.1:58182
//! ```
//!
//! One route, `GET /`, answering a small static body; no middleware. It runs
//! on the service's runtime (tokio's default multi-thread runtime with
//! `enable_all`, as `src/cli.rs` builds it) and serves the way
//! `src/http/server.rs` does: an accept loop of its own, hyper's HTTP/1.1
//! `Builder` with the tokio timer, a header-read timeout and keep-alive, each
//! connection spawned as a task, each request handed to the axum `Router`
//! through `oneshot` with `ConnectInfo` inserted. `axum::serve` would be
//! shorter but is a different accept path (no timer, its own connection
//! handling), so `/healthz` ÷ bare would then also measure that difference
//! rather than only our routing and middleware. Left out: the connection
//! semaphore and graceful shutdown (per connection, not per request; the
//! benchmark keeps its connections open).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::routing::get;
use axum::Router;
use clap::Parser;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tower::ServiceExt;

#[derive(Parser, Debug)]
#[command(about = "A bare axum/hyper server with one route, for benchmarks")]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:58182")]
    bind: SocketAddr,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(serve(args.bind))
}

async fn serve(bind: SocketAddr) -> anyhow::Result<()> {
    let listener = TcpListener::bind(bind).await?;
    let app = Router::new().route("/", get(|| async { "ok" }));
    let mut http1 = hyper::server::conn::http1::Builder::new();
    http1
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(10))
        .keep_alive(true);
    loop {
        let (stream, remote) = match listener.accept().await {
            Ok(a) => a,
            Err(_) => continue,
        };
        let conn = http1.serve_connection(TokioIo::new(stream), service(app.clone(), remote));
        tokio::spawn(async move {
            let _ = conn.await;
        });
    }
}

fn service(
    app: Router,
    remote: SocketAddr,
) -> impl hyper::service::Service<
    hyper::Request<Incoming>,
    Response = axum::response::Response,
    Error = Infallible,
    Future = impl Send,
> + Clone {
    hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(remote));
        app.clone().oneshot(req.map(axum::body::Body::new))
    })
}
