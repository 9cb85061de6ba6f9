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
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Settings;
use crate::http::AppState;
use crate::passport::{ledger, retention, sweep, webhooks, Passport};
use crate::store::legacy::AdoptError;
use crate::{http, store, telemetry};

/// How often expired consent attempts are purged and idle rate-limit keys
/// forgotten.
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(60);
/// How often the Prometheus recorder folds recorded histogram samples into
/// its buckets (the crate's own default); without it they pile up in memory
/// until something scrapes `/metrics`.
const METRICS_UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// After the grace: time for the 503s to be written, for cancelled background
/// tasks to return, and for the pool to close. Together under one second.
const FLUSH_ANSWERS: Duration = Duration::from_millis(250);
const STOP_TASKS: Duration = Duration::from_millis(400);
const CLOSE_POOL: Duration = Duration::from_millis(200);

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
        let pool =
            connect_with_retry(settings.database_url.expose_secret(), &settings.database).await?;
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
    /// stop accepting and let in-flight requests finish until
    /// `SHUTDOWN_GRACE_SECS`. Requests still running then are answered 503
    /// `unavailable`; the background tasks are cancelled and the pool is
    /// closed, each step bounded, so the process is gone within the grace
    /// plus a second.
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
        let (grace, limits) = (state.settings.shutdown_grace, state.settings.http);
        let deadlines = http::Deadlines {
            request_timeout: limits.request_timeout,
            cut: CancellationToken::new(),
        };
        let (stop, stop_accepting) = (CancellationToken::new(), CancellationToken::new());
        let tasks = start_background(&state, &stop);
        let app: Router = http::with_common_layers(routes.with_state(state), deadlines.clone());
        let server = http::server::serve(listener, app, limits, stop_accepting.clone());
        tokio::pin!(server);
        let ended_by_itself = tokio::select! {
            () = &mut server => true,
            () = shutdown => false,
        };
        let deadline = Instant::now() + grace;
        if !ended_by_itself {
            stop_accepting.cancel();
            drain(server, deadline, &deadlines.cut).await;
        }
        stop.cancel();
        tasks.close();
        if tokio::time::timeout_at(deadline.max(Instant::now()) + STOP_TASKS, tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("background tasks still running after the grace period; leaving them");
        }
        if tokio::time::timeout(CLOSE_POOL, passport.db().close())
            .await
            .is_err()
        {
            tracing::warn!("database connections still in use; leaving them");
        }
        tracing::info!("server stopped; database pool closed");
        Ok(())
    }
}

/// Wait for the connections to close until `deadline`; then answer the
/// requests still running 503 (`cut`) and give those answers
/// [`FLUSH_ANSWERS`] to go out.
async fn drain(
    mut server: std::pin::Pin<&mut impl Future<Output = ()>>,
    deadline: Instant,
    cut: &CancellationToken,
) {
    if tokio::time::timeout_at(deadline, &mut server).await.is_ok() {
        return;
    }
    tracing::warn!("grace period over; answering 503 to the requests still running");
    cut.cancel();
    if tokio::time::timeout(FLUSH_ANSWERS, server).await.is_err() {
        tracing::warn!("connections still open after the grace period; leaving them");
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
    tasks.spawn(retention::run_pruner(state.passport.clone(), stop.clone()));
    tasks.spawn(ledger::run_flusher(state.passport.clone(), stop.clone()));
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
pub(crate) async fn connect_with_retry(
    url: &str,
    pool: &crate::config::PoolSettings,
) -> anyhow::Result<PgPool> {
    let mut delay = Duration::from_millis(500);
    let attempts = 10;
    for attempt in 1..=attempts {
        match store::connect_and_migrate(url, pool).await {
            Ok(pool) => return Ok(pool),
            Err(AdoptError::Database(e)) if store::is_unavailable(&e) && attempt < attempts => {
                tracing::warn!(attempt, retry_in_ms = delay.as_millis() as u64, error = %e, "database unreachable; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(10));
            }
            Err(AdoptError::Refused(r)) => return Err(anyhow::anyhow!("{r}")),
            Err(AdoptError::Locked(l)) => return Err(anyhow::anyhow!("{l}")),
            Err(AdoptError::Database(e)) => return Err(anyhow::anyhow!("database: {e}")),
        }
    }
    unreachable!("the last attempt returns")
}

/// The passport for an operator command: settings from the environment, a
/// pool, no migrations and no background tasks.
pub(crate) async fn operator_passport() -> anyhow::Result<Passport> {
    let settings = Settings::from_env().map_err(|e| anyhow::anyhow!("{e}"))?;
    telemetry::init(settings.log_format);
    let options =
        store::connect_options(settings.database_url.expose_secret(), &settings.database)?;
    let pool = store::pool_options(&settings.database)
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
