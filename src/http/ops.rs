//! Operations: liveness, readiness, metrics.

use axum::extract::State;
use axum::http::{header::CONTENT_TYPE, StatusCode};
use axum::response::IntoResponse;
use axum::Json;

use crate::http::AppState;

/// `/readyz` answers within this, whatever the database does (a probe that
/// hangs tells an orchestrator nothing).
const READY_WITHIN: std::time::Duration = std::time::Duration::from_millis(500);

/// `GET /healthz`: the process is up.
pub(crate) async fn healthz() -> &'static str {
    "ok"
}

/// `GET /readyz`: the database answers within [`READY_WITHIN`] and the
/// migrations are applied.
pub(crate) async fn readyz(State(app): State<AppState>) -> impl IntoResponse {
    let ready = tokio::time::timeout(READY_WITHIN, app.passport.ready()).await;
    if ready == Ok(true) {
        (StatusCode::OK, Json(serde_json::json!({"status": "ready"})))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(
                serde_json::json!({"status": "not_ready", "message": "database unreachable, too slow, or migrations not applied"}),
            ),
        )
    }
}

/// `GET /metrics`: Prometheus text format.
pub(crate) async fn metrics(State(app): State<AppState>) -> impl IntoResponse {
    publish_cache_sizes(&app);
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.metrics.render(),
    )
}

/// The caches' sizes and evictions, read when scraped (nothing per request).
fn publish_cache_sizes(app: &AppState) {
    let (tokens, token_evictions) = app.passport.token_cache.sizes();
    metrics::gauge!("passport_token_cache_entries").set(tokens as f64);
    metrics::counter!("passport_token_cache_evictions_total").absolute(token_evictions);
    let (sessions, session_evictions) = app.sessions.sizes();
    metrics::gauge!("session_cache_entries").set(sessions as f64);
    metrics::counter!("session_cache_evictions_total").absolute(session_evictions);
}
