//! The Google Calendar API stand-in: the primary calendar and event insertion,
//! with Google's API error bodies.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::oauth::bearer_grant;
use super::FakeGoogle;
use crate::passport::random_token;
use crate::scopes::GOOGLE_SCOPE_PREFIX;

/// Google's API error body (`{"error": {"code", "message", "errors", "status"}}`).
fn api_error(status: StatusCode, reason: &str, domain: &str, message: &str) -> Response {
    (
        status,
        Json(json!({
            "error": {
                "code": status.as_u16(),
                "message": message,
                "errors": [{"message": message, "domain": domain, "reason": reason}],
                "status": if status == StatusCode::UNAUTHORIZED { "UNAUTHENTICATED" } else { "PERMISSION_DENIED" },
            }
        })),
    )
        .into_response()
}

/// Check a Calendar API call: a live token, the API enabled, one of `needed`.
fn calendar_access(
    fake: &FakeGoogle,
    headers: &HeaderMap,
    endpoint: &'static str,
    needed: &[&str],
) -> Option<Response> {
    let mut s = fake.lock();
    s.count(endpoint);
    let Some(grant) = bearer_grant(&s, headers) else {
        return Some(api_error(
            StatusCode::UNAUTHORIZED,
            "authError",
            "global",
            "Request had invalid authentication credentials.",
        ));
    };
    if s.behaviour.calendar_api_disabled {
        return Some(api_error(
            StatusCode::FORBIDDEN,
            "accessNotConfigured",
            "usageLimits",
            "Google Calendar API has not been used in this project before or it is disabled. Enable it in the Cloud Console, then retry.",
        ));
    }
    if !needed
        .iter()
        .any(|n| grant.scopes.contains(&format!("{GOOGLE_SCOPE_PREFIX}{n}")))
    {
        return Some(api_error(
            StatusCode::FORBIDDEN,
            "insufficientPermissions",
            "global",
            "Request had insufficient authentication scopes.",
        ));
    }
    None
}

/// `GET /calendar/v3/users/me/calendarList/primary`.
pub(super) async fn primary(State(fake): State<FakeGoogle>, headers: HeaderMap) -> Response {
    if let Some(resp) = calendar_access(
        &fake,
        &headers,
        "calendar.calendarList",
        &["calendar", "calendar.readonly"],
    ) {
        return resp;
    }
    Json(json!({
        "kind": "calendar#calendarListEntry",
        "id": "primary",
        "summary": "primary",
        "timeZone": "Asia/Seoul",
        "accessRole": "owner",
        "primary": true,
    }))
    .into_response()
}

/// `POST /calendar/v3/calendars/primary/events`.
pub(super) async fn insert_event(
    State(fake): State<FakeGoogle>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Some(resp) = calendar_access(
        &fake,
        &headers,
        "calendar.events.insert",
        &["calendar", "calendar.events"],
    ) {
        return resp;
    }
    let Ok(mut event) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return api_error(
            StatusCode::BAD_REQUEST,
            "parseError",
            "global",
            "Parse Error",
        );
    };
    let has_time = |k: &str| {
        event
            .get(k)
            .and_then(|v| v.get("dateTime").or_else(|| v.get("date")))
            .is_some()
    };
    if !has_time("start") || !has_time("end") {
        return api_error(
            StatusCode::BAD_REQUEST,
            "required",
            "global",
            "Missing end time.",
        );
    }
    event["id"] = json!(format!(
        "fakeevent{}",
        random_token().to_ascii_lowercase().replace(['-', '_'], "")
    ));
    event["status"] = json!("confirmed");
    event["kind"] = json!("calendar#event");
    fake.lock().events.push(event.clone());
    Json(event).into_response()
}
