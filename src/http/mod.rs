//! HTTP routes grouped by audience, and the layers every request goes through.

pub(crate) mod api;
pub(crate) mod assets;
pub mod auth;
pub(crate) mod copy;
pub(crate) mod error;
pub(crate) mod internal;
pub(crate) mod limits;
pub(crate) mod ops;
pub(crate) mod pages;
pub mod query;
pub(crate) mod risc;
pub(crate) mod server;
pub(crate) mod sessions;
pub(crate) mod state;

pub(crate) use state::AppState;

use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::header::{
    CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tokio_util::sync::CancellationToken;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

use crate::http::error::{ApiError, PageError};

/// Largest request body accepted anywhere.
pub(crate) const MAX_BODY_BYTES: usize = 16 * 1024;
/// When a request is answered 503 `unavailable` instead of by its handler.
#[derive(Clone)]
pub(crate) struct Deadlines {
    /// Longest any request may run (`HTTP_REQUEST_TIMEOUT_SECS`).
    pub request_timeout: Duration,
    /// Cancelled when the shutdown grace is over: every request still
    /// running is answered at once and its work dropped.
    pub cut: CancellationToken,
}

static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
                   frame-ancestors 'none'; base-uri 'none'";

/// A provider name in a URL that this service does not run.
pub(crate) struct UnknownProvider(pub String);

/// The provider a URL names; a 404 page or a JSON 404 otherwise.
pub(crate) fn provider<'a, E: From<UnknownProvider>>(
    app: &'a AppState,
    name: &str,
) -> Result<&'a crate::passport::provider::Provider, E> {
    app.passport
        .provider(name)
        .ok_or_else(|| UnknownProvider(name.to_string()).into())
}

/// A `302 Found` to `location` (Google's authorize URL, `return_to`), with
/// the cookie changes of `jar`.
pub(crate) fn found(location: &str, jar: axum_extra::extract::CookieJar) -> Response {
    (
        StatusCode::FOUND,
        jar,
        [(axum::http::header::LOCATION, location.to_string())],
    )
        .into_response()
}

/// The routes of the service (without the demo's).
pub(crate) fn routes(app: &AppState) -> Router<AppState> {
    let origins: Vec<HeaderValue> = app
        .settings
        .allowed_return_origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(&o.ascii_serialization()).ok())
        .collect();
    let cors = CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_credentials(true)
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([axum::http::header::AUTHORIZATION, CONTENT_TYPE])
        .max_age(Duration::from_secs(600));

    let user_api = Router::new()
        .route("/api/passport/{provider}", get(api::status))
        .route("/api/passport/{provider}/connect", post(api::connect))
        .layer(cors);

    let internal_api = Router::new()
        .route("/internal/passport/{provider}/token", post(internal::token))
        .route(
            "/internal/passport/{provider}/users/{user_id}",
            axum::routing::delete(internal::disconnect),
        )
        .route(
            "/internal/passport/{provider}/users/{user_id}/diagnosis",
            get(internal::diagnosis),
        )
        .route(
            "/internal/passport/{provider}/users/{user_id}/ledger",
            get(internal::ledger),
        )
        .route(
            "/internal/passport/{provider}/report",
            get(internal::report),
        );

    // The pages are compressed (gzip, br) when the browser accepts it.
    let page_routes = Router::new()
        .route("/passport/{provider}", get(pages::item))
        .route("/passport/{provider}/connect", get(pages::connect))
        .route("/passport/{provider}/callback", get(pages::callback))
        .route(
            "/passport/{provider}/disconnect",
            get(pages::disconnect_confirm).post(pages::disconnect),
        )
        .layer(tower_http::compression::CompressionLayer::new());

    Router::new()
        .merge(page_routes)
        .merge(user_api)
        .merge(internal_api)
        .route("/google/risc", post(risc::receive))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .merge(assets::routes())
}

/// Wrap a router with the layers every route shares: request ids, tracing
/// spans named by route template, metrics, limits, and (outermost, so that
/// every answer gets them, the limits' 413 and 431 included) the security
/// headers.
pub(crate) fn with_common_layers(router: Router, deadlines: Deadlines) -> Router {
    let router = router
        .fallback(fallback)
        .layer(middleware::from_fn_with_state(deadlines, deadline))
        .layer(middleware::from_fn(track_metrics))
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES))
        .layer(middleware::from_fn(limits::header_limit))
        .layer(middleware::from_fn(json_limits))
        .layer(PropagateRequestIdLayer::new(X_REQUEST_ID.clone()))
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &Request| {
                // Never the full URI: callback queries carry codes.
                let route = req
                    .extensions()
                    .get::<MatchedPath>()
                    .map(|m| m.as_str().to_string())
                    .unwrap_or_else(|| "unmatched".into());
                let request_id = req
                    .headers()
                    .get(&X_REQUEST_ID)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-")
                    .to_string();
                // `caller`: the internal API key's name, once it is known.
                tracing::info_span!("http", method = %req.method(), route = %route, request_id = %request_id, caller = tracing::field::Empty)
            }),
        )
        .layer(SetRequestIdLayer::new(X_REQUEST_ID.clone(), MakeRequestUuid));
    with_security_headers(router)
}

/// The security headers, on every answer the router gives.
fn with_security_headers(router: Router) -> Router {
    router
        .layer(SetResponseHeaderLayer::if_not_present(
            CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            axum::http::header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
}

async fn track_metrics(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    // A fixed set: made-up methods must not create new time series.
    let method = match *req.method() {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        _ => "OTHER",
    };
    let resp = next.run(req).await;
    let status = resp.status().as_u16().to_string();
    metrics::counter!("http_requests_total", "method" => method, "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("http_request_duration_seconds", "method" => method, "route" => route)
        .record(start.elapsed().as_secs_f64());
    resp
}

/// The handler's answer, unless the request timeout or the shutdown
/// deadline comes first: then a JSON 503 `unavailable` (with `Retry-After`),
/// and the handler's work is dropped.
async fn deadline(State(d): State<Deadlines>, req: Request, next: Next) -> Response {
    tokio::select! {
        resp = next.run(req) => resp,
        _ = tokio::time::sleep(d.request_timeout) => ApiError::unavailable(format!(
            "the request took longer than {} s; try again",
            d.request_timeout.as_secs()
        ))
        .into_response(),
        _ = d.cut.cancelled() => {
            ApiError::unavailable("the server is restarting; try again").into_response()
        }
    }
}

/// API routes answer limit violations (body too large, wrong method) in JSON too.
async fn json_limits(req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let api = path.starts_with("/api/") || path.starts_with("/internal/");
    let resp = next.run(req).await;
    if !api {
        return resp;
    }
    let is_json = resp
        .headers()
        .get(CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    match resp.status() {
        StatusCode::PAYLOAD_TOO_LARGE if !is_json => crate::http::error::ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            crate::http::error::ErrorCode::BadRequest,
            format!("the body is larger than {MAX_BODY_BYTES} bytes"),
        )
        .into_response(),
        StatusCode::METHOD_NOT_ALLOWED if !is_json => crate::http::error::ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            crate::http::error::ErrorCode::BadRequest,
            "method not allowed on this route",
        )
        .into_response(),
        _ => resp,
    }
}

async fn fallback() -> Response {
    PageError::NotFound.into_response()
}

/// A path parameter for pages: a malformed one is a 404 page, not plain text.
pub(crate) struct PagePath<T>(pub T);

impl<T, S> axum::extract::FromRequestParts<S> for PagePath<T>
where
    T: serde::de::DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = PageError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(t)| PagePath(t))
            .map_err(|_| PageError::NotFound)
    }
}

/// A path parameter for the JSON APIs: a malformed one is a JSON 400.
pub(crate) struct ApiPath<T>(pub T);

impl<T, S> axum::extract::FromRequestParts<S> for ApiPath<T>
where
    T: serde::de::DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = crate::http::error::ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(t)| ApiPath(t))
            .map_err(|_| crate::http::error::ApiError::bad_request("malformed path"))
    }
}
