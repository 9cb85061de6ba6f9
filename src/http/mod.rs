//! HTTP routes grouped by audience, and the layers every request goes through.

pub(crate) mod api;
pub(crate) mod assets;
pub mod auth;
pub(crate) mod copy;
pub(crate) mod error;
pub(crate) mod internal;
pub(crate) mod limits;
pub(crate) mod middleware;
pub(crate) mod ops;
pub(crate) mod pages;
pub mod query;
pub(crate) mod risc;
pub(crate) mod server;
pub(crate) mod sessions;
pub(crate) mod state;

pub(crate) use state::AppState;

use std::time::Duration;

use axum::extract::{MatchedPath, Request};
use axum::http::header::{
    CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tokio_util::sync::CancellationToken;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

use crate::http::error::PageError;

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
    // One `ServiceBuilder` stack, applied once: each `Router::layer` call
    // boxes the routes again, and a request clones every box on its way in.
    // Outermost first.
    let layers = tower::ServiceBuilder::new()
        .layer(SetResponseHeaderLayer::overriding(
            REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            axum::http::header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        ))
        .layer(SetRequestIdLayer::new(
            X_REQUEST_ID.clone(),
            MakeRequestUuid,
        ))
        .layer(TraceLayer::new_for_http().make_span_with(span))
        .layer(PropagateRequestIdLayer::new(X_REQUEST_ID.clone()))
        .layer(axum::middleware::from_fn(middleware::limits))
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES))
        .map_request(|req: Request<_>| req.map(axum::body::Body::new))
        .layer(axum::middleware::from_fn_with_state(
            middleware::Measured::new(deadlines),
            middleware::measured,
        ));
    router.fallback(fallback).layer(layers)
}

/// The request's span: method, route template (never the full URI: callback
/// queries carry codes), request id; `caller` is the internal API key's name,
/// once it is known.
fn span(req: &Request) -> tracing::Span {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str);
    let request_id = req
        .headers()
        .get(&X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    tracing::info_span!("http", method = %req.method(), route = %route, request_id = %request_id, caller = tracing::field::Empty)
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
