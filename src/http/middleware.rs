//! The layers of our own that every request goes through, in two functions
//! so that a request pays for two boxed middleware steps, not four:
//!
//! * [`limits`] (outside the body limit): headers too large → 431, and on
//!   the APIs a limit answer from a layer below (413, 405) rewritten as JSON;
//! * [`measured`] (inside it): the request counted and timed by route
//!   template, and answered 503 if it outlives its deadline.
//!
//! Nothing here allocates per request: labels are `&'static str`, and each
//! (route, method, status) has its counter and histogram looked up once.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics::{Counter, Histogram};

use crate::http::error::{ApiError, ErrorCode};
use crate::http::limits::MAX_HEADER_BYTES;
use crate::http::{Deadlines, MAX_BODY_BYTES};

/// The state of [`measured`]: the deadlines and the metric handles.
#[derive(Clone)]
pub(crate) struct Measured {
    pub deadlines: Deadlines,
    handles: Arc<RouteMetrics>,
}

impl Measured {
    pub(crate) fn new(deadlines: Deadlines) -> Self {
        Self {
            deadlines,
            handles: Arc::default(),
        }
    }
}

/// Refuse headers larger than [`MAX_HEADER_BYTES`]; answer limit violations
/// of the API routes (body too large, wrong method) in JSON too.
pub(crate) async fn limits(req: Request, next: Next) -> Response {
    if header_bytes(&req) > MAX_HEADER_BYTES {
        return (
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "request headers too large",
        )
            .into_response();
    }
    let path = req.uri().path();
    let api = path.starts_with("/api/") || path.starts_with("/internal/");
    let resp = next.run(req).await;
    if api {
        json_limit_answer(resp)
    } else {
        resp
    }
}

/// The size of the request head as the limit counts it: every header
/// (name, value and 4 bytes of framing) and the request target.
fn header_bytes(req: &Request) -> usize {
    let uri = req.uri();
    let target = uri.path_and_query().map_or(1, |p| p.as_str().len())
        + uri.scheme_str().map_or(0, |s| s.len() + 3)
        + uri.authority().map_or(0, |a| a.as_str().len());
    req.headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum::<usize>()
        + target
}

fn json_limit_answer(resp: Response) -> Response {
    let is_json = resp
        .headers()
        .get(CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    match resp.status() {
        StatusCode::PAYLOAD_TOO_LARGE if !is_json => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::BadRequest,
            format!("the body is larger than {MAX_BODY_BYTES} bytes"),
        )
        .into_response(),
        StatusCode::METHOD_NOT_ALLOWED if !is_json => ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::BadRequest,
            "method not allowed on this route",
        )
        .into_response(),
        _ => resp,
    }
}

/// Count and time the request by route template; answer it with a JSON 503
/// `unavailable` (and drop the handler's work) when the request timeout or
/// the shutdown deadline comes first.
pub(crate) async fn measured(State(m): State<Measured>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str);
    let key = (m.handles.route(route), method_label(req.method()));
    let resp = within_deadline(&m.deadlines, next.run(req)).await;
    m.handles
        .record(key, resp.status(), start.elapsed().as_secs_f64());
    resp
}

async fn within_deadline(d: &Deadlines, answer: impl Future<Output = Response>) -> Response {
    tokio::select! {
        resp = answer => resp,
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

/// A fixed set: made-up methods must not create new time series.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        _ => "OTHER",
    }
}

type Key = (&'static str, &'static str, u16);

/// The counter and histogram of each (route, method, status), registered
/// with the recorder once and then only looked up. Route templates are the
/// router's own (plus `unmatched`), so both maps stay small; each template
/// is kept as a `&'static str` for the process's life.
#[derive(Default)]
struct RouteMetrics {
    routes: RwLock<std::collections::HashSet<&'static str>>,
    handles: RwLock<HashMap<Key, (Counter, Histogram)>>,
}

impl RouteMetrics {
    fn route(&self, template: &str) -> &'static str {
        if let Some(r) = self.read_routes().get(template) {
            return r;
        }
        let mut routes = self.routes.write().unwrap_or_else(|p| p.into_inner());
        if let Some(r) = routes.get(template) {
            return r;
        }
        let interned: &'static str = Box::leak(template.to_owned().into_boxed_str());
        routes.insert(interned);
        interned
    }

    fn read_routes(
        &self,
    ) -> std::sync::RwLockReadGuard<'_, std::collections::HashSet<&'static str>> {
        self.routes.read().unwrap_or_else(|p| p.into_inner())
    }

    fn record(&self, (route, method): (&'static str, &'static str), status: StatusCode, secs: f64) {
        let key = (route, method, status.as_u16());
        if let Some((requests, duration)) = self.read_handles().get(&key) {
            requests.increment(1);
            duration.record(secs);
            return;
        }
        let (requests, duration) = self.register(key, status);
        requests.increment(1);
        duration.record(secs);
    }

    fn read_handles(&self) -> std::sync::RwLockReadGuard<'_, HashMap<Key, (Counter, Histogram)>> {
        self.handles.read().unwrap_or_else(|p| p.into_inner())
    }

    fn register(&self, key: Key, status: StatusCode) -> (Counter, Histogram) {
        let (route, method, _) = key;
        let status: &'static str = status_label(status);
        let handles = (
            metrics::counter!("http_requests_total", "method" => method, "route" => route, "status" => status),
            metrics::histogram!("http_request_duration_seconds", "method" => method, "route" => route),
        );
        self.handles
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key)
            .or_insert(handles)
            .clone()
    }
}

/// A status code as a label, without an allocation per request: the code's
/// three digits, kept once per code.
fn status_label(status: StatusCode) -> &'static str {
    static LABELS: std::sync::LazyLock<Vec<String>> =
        std::sync::LazyLock::new(|| (0..1000).map(|c| format!("{c:03}")).collect());
    LABELS
        .get(usize::from(status.as_u16()))
        .map_or("other", String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_route_template_is_kept_once() {
        let m = RouteMetrics::default();
        let a = m.route(&String::from("/healthz"));
        let b = m.route(&String::from("/healthz"));
        assert!(std::ptr::eq(a, b));
        assert_eq!(m.read_routes().len(), 1);
    }

    #[test]
    fn status_labels_are_the_three_digits() {
        assert_eq!(status_label(StatusCode::OK), "200");
        assert_eq!(status_label(StatusCode::SERVICE_UNAVAILABLE), "503");
    }
}
