//! auth-server: the Gmail Passport service of ro-being.
//!
//! `app(state)` builds the router; `serve(listener, state)` runs it with
//! graceful shutdown. `main.rs` only parses the command line.

pub mod cli;
pub mod config;
pub mod crypto;
pub mod demo;
pub mod error;
pub mod fake_google;
pub mod google;
pub mod http;
pub mod passport;
pub mod state;
pub mod store;
pub mod telemetry;

use std::future::Future;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;

pub use config::Settings;
pub use state::AppState;

/// The service's router, with every layer.
pub fn app(state: AppState) -> Router {
    let routes = http::routes(&state).with_state(state);
    http::with_common_layers(routes)
}

/// Serve until SIGTERM / Ctrl-C, then finish in-flight requests.
pub async fn serve(listener: TcpListener, state: AppState) -> std::io::Result<()> {
    serve_with_shutdown(listener, state, shutdown_signal()).await
}

/// Serve until `shutdown` resolves, then finish in-flight requests.
pub async fn serve_with_shutdown<F>(
    listener: TcpListener,
    state: AppState,
    shutdown: F,
) -> std::io::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    let purge = tokio::spawn(purge_expired_states(state.clone()));
    let cache_listener = tokio::spawn(passport::cache::listen(
        state.db.clone(),
        state.token_cache.clone(),
    ));
    let dispatcher = tokio::spawn(passport::webhooks::run_dispatcher(state.clone()));
    let sweeper = tokio::spawn(passport::sweep::run_sweeper(state.clone()));
    let db = state.db.clone();
    let grace = state.settings.shutdown_grace;
    let (stopping_tx, mut stopping) = tokio::sync::watch::channel(false);
    let signal = async move {
        shutdown.await;
        let _ = stopping_tx.send(true);
    };
    let server = axum::serve(
        listener,
        app(state).into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(signal);
    // In-flight requests may finish, but only for the grace period.
    let deadline = async move {
        let _ = stopping.wait_for(|s| *s).await;
        tokio::time::sleep(grace).await;
    };
    let result = tokio::select! {
        r = async { server.await } => r,
        _ = deadline => {
            tracing::warn!(grace_secs = grace.as_secs(), "grace period over; dropping the remaining connections");
            Ok(())
        }
    };
    purge.abort();
    cache_listener.abort();
    dispatcher.abort();
    sweeper.abort();
    db.close().await;
    tracing::info!("server stopped; database pool closed");
    result
}

/// Delete expired consent attempts every minute.
async fn purge_expired_states(state: AppState) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tick.tick().await;
        state.limiters.shrink();
        match store::oauth_state::purge_expired(&state.db).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(purged = n, "expired consent attempts deleted"),
            Err(e) => tracing::warn!(error = %e, "could not purge expired consent attempts"),
        }
    }
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown signal received; finishing in-flight requests");
}
