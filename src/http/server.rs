//! The HTTP server: hyper's HTTP/1.1 connections under an accept loop of our
//! own, because `axum::serve` sets no timer. So a client that is slow to send
//! its request head, or idle (before its first request or between two on a
//! keep-alive), is disconnected after `HTTP_HEADER_READ_TIMEOUT_SECS`; at most
//! `HTTP_MAX_CONNECTIONS` connections are open at once (more wait in the listen
//! backlog); the open-file limit is raised to fit them; and on shutdown the
//! connections are drained through hyper-util's `GracefulShutdown`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::config::HttpSettings;

/// Open files kept for everything but client connections: the database pool,
/// calls to Google and the webhook receiver, the listener, logs.
const RESERVED_FILES: u64 = 256;

/// Pause after an accept error that is not the client's (e.g. out of file
/// descriptors), so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Serve `app` on `listener` until `stop_accepting` is cancelled; then stop
/// accepting, ask every connection to close after its request in flight,
/// and resolve once all are closed. The caller bounds that wait.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    limits: HttpSettings,
    stop_accepting: CancellationToken,
) {
    let permits = Arc::new(Semaphore::new(fit_open_files(limits.max_connections)));
    let mut http1 = hyper::server::conn::http1::Builder::new();
    http1
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    let graceful = GracefulShutdown::new();
    loop {
        let permit = tokio::select! {
            _ = stop_accepting.cancelled() => break,
            p = permits.clone().acquire_owned() => p.expect("the semaphore is never closed"),
        };
        let (stream, remote) = tokio::select! {
            _ = stop_accepting.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    accept_failed(&e).await;
                    continue;
                }
            },
        };
        let conn = http1.serve_connection(TokioIo::new(stream), service(app.clone(), remote));
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            // Timeouts, resets and clients hanging up end here: not our failures.
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection closed");
            }
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// The router as a hyper service for one connection, with the client's
/// address for `ConnectInfo<SocketAddr>` (rate limits, client IP).
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

async fn accept_failed(e: &std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if !matches!(
        e.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        tracing::warn!(error = %e, "accept error");
        tokio::time::sleep(ACCEPT_BACKOFF).await;
    }
}

/// Raise the open-file soft limit so `max_connections` fit beside the
/// service's own files; the connection cap actually used (lower, with a
/// warning, when the hard limit does not allow it).
fn fit_open_files(max_connections: usize) -> usize {
    let wanted = max_connections as u64 + RESERVED_FILES;
    match rlimit::increase_nofile_limit(wanted) {
        Ok(limit) if limit >= wanted => max_connections,
        Ok(limit) => {
            let cap = limit.saturating_sub(RESERVED_FILES).max(1) as usize;
            tracing::warn!(
                open_file_limit = limit,
                max_connections = cap,
                "the open-file limit is below HTTP_MAX_CONNECTIONS + {RESERVED_FILES}; connections capped lower"
            );
            cap
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot read or raise the open-file limit");
            max_connections
        }
    }
}
