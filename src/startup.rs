//! The composition root: the one place that builds the service from its
//! settings, wires the passport, the HTTP layer and the background tasks,
//! runs it, and stops it. `serve`, `demo` and the tests all start here.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use secrecy::ExposeSecret;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Settings;
use crate::http::AppState;
use crate::passport::{sweep, webhooks, Passport};
use crate::{http, store, telemetry};

/// How often expired consent attempts are purged and idle rate-limit keys
/// forgotten.
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(60);
/// How often the Prometheus recorder folds recorded histogram samples into
/// its buckets (the crate's own default); without it they pile up in memory
/// until something scrapes `/metrics`.
const METRICS_UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// A built service, bound to its port, not yet serving.
pub struct Application {
    listener: TcpListener,
    state: AppState,
    routes: axum::Router<AppState>,
}

impl Application {
    /// Connect to the database (waiting for it), apply the migrations and
    /// bind `BIND_ADDR`.
    pub(crate) async fn build(settings: Settings) -> anyhow::Result<Self> {
        let pool = connect_with_retry(settings.database_url.expose_secret()).await?;
        let listener = TcpListener::bind(settings.bind_addr)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", settings.bind_addr))?;
        Ok(Self::with_parts(settings, pool, listener))
    }

    /// Wire a service from a pool and a listener that are already there.
    pub fn with_parts(settings: Settings, pool: PgPool, listener: TcpListener) -> Self {
        let settings = Arc::new(settings);
        let passport = Arc::new(Passport::new(settings.clone(), pool));
        let state = AppState::new(passport, settings, telemetry::metrics_handle());
        let routes = http::routes(&state);
        Self {
            listener,
            state,
            routes,
        }
    }

    /// Add routes (the demo's sign-in pages) next to the service's own.
    pub(crate) fn merge_routes(mut self, extra: axum::Router<AppState>) -> Self {
        self.routes = self.routes.merge(extra);
        self
    }

    pub(crate) fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serve, with the background tasks, until `shutdown` resolves; then
    /// finish in-flight requests within `SHUTDOWN_GRACE_SECS`, stop the tasks
    /// and close the pool.
    pub async fn run_until_stopped<F>(self, shutdown: F) -> std::io::Result<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let Self {
            listener,
            state,
            routes,
        } = self;
        let passport = state.passport.clone();
        let grace = state.settings.shutdown_grace;
        let stop = CancellationToken::new();
        let tasks = start_background(&state, &stop);
        let app: Router = http::with_common_layers(routes.with_state(state));
        let result = serve(listener, app, shutdown, grace).await;
        stop.cancel();
        tasks.close();
        if tokio::time::timeout(grace, tasks.wait()).await.is_err() {
            tracing::warn!("background tasks still running after the grace period");
        }
        passport.db().close().await;
        tracing::info!("server stopped; database pool closed");
        result
    }
}

/// Serve until `shutdown` resolves, then let in-flight requests finish, but
/// only for `grace`.
async fn serve<F>(
    listener: TcpListener,
    app: Router,
    shutdown: F,
    grace: Duration,
) -> std::io::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    let stopping = CancellationToken::new();
    let signal = {
        let stopping = stopping.clone();
        async move {
            shutdown.await;
            stopping.cancel();
        }
    };
    let server = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(signal);
    let deadline = async move {
        stopping.cancelled().await;
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        r = async { server.await } => r,
        _ = deadline => {
            tracing::warn!(grace_secs = grace.as_secs(), "grace period over; dropping the remaining connections");
            Ok(())
        }
    }
}

/// The background tasks, one place, stopped through `stop`.
fn start_background(state: &AppState, stop: &CancellationToken) -> TaskTracker {
    let tasks = TaskTracker::new();
    let p = state.passport.clone();
    let token = stop.clone();
    tasks.spawn(async move { token.run_until_cancelled(p.listen_for_changes()).await });
    tasks.spawn(webhooks::run_dispatcher(
        state.passport.clone(),
        stop.clone(),
    ));
    tasks.spawn(sweep::run_sweeper(state.passport.clone(), stop.clone()));
    let (metrics, token) = (state.metrics.clone(), stop.clone());
    tasks.spawn(async move {
        let mut tick = tokio::time::interval(METRICS_UPKEEP_EVERY);
        while token.run_until_cancelled(tick.tick()).await.is_some() {
            metrics.run_upkeep();
        }
    });
    let (limiters, token) = (state.limiters.clone(), stop.clone());
    tasks.spawn(async move {
        let mut tick = tokio::time::interval(HOUSEKEEPING_EVERY);
        while token.run_until_cancelled(tick.tick()).await.is_some() {
            limiters.shrink();
        }
    });
    let (p, token) = (state.passport.clone(), stop.clone());
    tasks.spawn(async move {
        let mut tick = tokio::time::interval(HOUSEKEEPING_EVERY);
        while token.run_until_cancelled(tick.tick()).await.is_some() {
            match p.purge_expired_attempts().await {
                Ok(0) => {}
                Ok(n) => tracing::debug!(purged = n, "expired consent attempts deleted"),
                Err(e) => tracing::warn!(error = %e, "could not purge expired consent attempts"),
            }
        }
    });
    tasks
}

/// Connect to the database, retrying with backoff while it is unreachable,
/// then apply the migrations.
pub(crate) async fn connect_with_retry(url: &str) -> anyhow::Result<PgPool> {
    let mut delay = Duration::from_millis(500);
    let attempts = 10;
    for attempt in 1..=attempts {
        match store::connect_and_migrate(url).await {
            Ok(pool) => return Ok(pool),
            Err(e @ (sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut)) if attempt < attempts => {
                tracing::warn!(attempt, retry_in_ms = delay.as_millis() as u64, error = %e, "database unreachable; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(10));
            }
            Err(e) => return Err(anyhow::anyhow!("database: {e}")),
        }
    }
    unreachable!("the last attempt returns")
}

/// The passport for an operator command: settings from the environment, a
/// pool, no migrations and no background tasks.
pub(crate) async fn operator_passport() -> anyhow::Result<Passport> {
    let settings = Settings::from_env().map_err(|e| anyhow::anyhow!("{e}"))?;
    telemetry::init(settings.log_format);
    let options = store::connect_options(settings.database_url.expose_secret())?;
    let pool = store::pool_options()
        .connect_with(options)
        .await
        .map_err(|e| anyhow::anyhow!("database: {e}"))?;
    Ok(Passport::new(Arc::new(settings), pool))
}

/// Resolves on SIGTERM or Ctrl-C.
pub(crate) async fn shutdown_signal() {
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
