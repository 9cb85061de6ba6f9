//! `POST /google/risc`: Google's Security Event Tokens (RISC) pushed to us
//! (RFC 8935). Public: Google calls it. 202 when the token verifies (also
//! for one seen before); 400 with RFC 8935's `{"err", "description"}` when
//! it does not, and nothing changes. A refused token counts against its
//! client IP's bucket (`RATE_LIMIT_TOKEN_IP_PER_MIN`), a verified one never.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::{CONTENT_TYPE, RETRY_AFTER};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::http::limits::ClientIp;
use crate::http::AppState;
use crate::passport::risc::RiscError;

/// RFC 8417's media type of a Security Event Token.
const SECEVENT_JWT: &str = "application/secevent+jwt";

fn refused(err: &'static str, description: &str) -> Response {
    let body = serde_json::json!({"err": err, "description": description});
    (StatusCode::BAD_REQUEST, Json(body)).into_response()
}

fn is_secevent(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(SECEVENT_JWT))
}

pub(crate) async fn receive(
    State(app): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let token = match std::str::from_utf8(&body) {
        Ok(t) if is_secevent(&headers) => t.trim(),
        Ok(_) => {
            return count_refused(
                &app,
                ip,
                "invalid_request",
                "Content-Type must be application/secevent+jwt",
            )
        }
        Err(_) => return count_refused(&app, ip, "invalid_request", "the body is not text"),
    };
    match app.passport.receive_security_event(token).await {
        Ok(a) => {
            let event = a.event.name();
            tracing::debug!(
                event,
                marked = a.marked,
                replay = a.replay,
                "RISC: accepted"
            );
            StatusCode::ACCEPTED.into_response()
        }
        Err(RiscError::KeysNotDue(left)) => not_due(&app, ip, left),
        Err(e) => match e.err_code() {
            Some(code) => count_refused(&app, ip, code, &e.to_string()),
            None => unavailable(&e),
        },
    }
}

/// A token that does not verify: 400, or 429 once its client IP has sent
/// too many.
fn count_refused(
    app: &AppState,
    ip: Option<std::net::IpAddr>,
    err: &'static str,
    description: &str,
) -> Response {
    over_limit(app, ip).unwrap_or_else(|| refused(err, description))
}

/// 429 once the client IP has sent too many tokens that were not applied.
fn over_limit(app: &AppState, ip: Option<std::net::IpAddr>) -> Option<Response> {
    let limited = app.limiters.token_ip(ip).err()?;
    let secs = limited.0.as_secs_f64().ceil().max(1.0) as u64;
    Some(
        (
            StatusCode::TOO_MANY_REQUESTS,
            [(RETRY_AFTER, secs.to_string())],
        )
            .into_response(),
    )
}

/// An unknown key before Google's keys may be fetched again: 503 with the
/// time left, so Google delivers again once a key it has just rotated in can
/// be fetched; counted against the client IP like a refused token (made-up
/// keys cost their sender).
fn not_due(app: &AppState, ip: Option<std::net::IpAddr>, left: std::time::Duration) -> Response {
    over_limit(app, ip).unwrap_or_else(|| {
        let secs = left.as_secs_f64().ceil().max(1.0) as u64;
        (
            StatusCode::SERVICE_UNAVAILABLE,
            [(RETRY_AFTER, secs.to_string())],
        )
            .into_response()
    })
}

/// Our failure (Google's keys out of reach, the database): no body with
/// internal text; Google delivers again later.
fn unavailable(e: &RiscError) -> Response {
    tracing::warn!(error = %e, "RISC: security event not processed");
    let status = match e {
        RiscError::Database(db) if !crate::store::is_unavailable(db) => {
            StatusCode::INTERNAL_SERVER_ERROR
        }
        _ => StatusCode::SERVICE_UNAVAILABLE,
    };
    (status, [(RETRY_AFTER, "5")]).into_response()
}
