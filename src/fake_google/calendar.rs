//! The Google Calendar API stand-in: the primary calendar, event insertion
//! and the events list (each account sees its own events), with Google's API
//! error bodies.

use axum::extract::{Path, State};
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
                "status": match status {
                    StatusCode::UNAUTHORIZED => "UNAUTHENTICATED",
                    StatusCode::NOT_FOUND => "NOT_FOUND",
                    StatusCode::BAD_REQUEST => "INVALID_ARGUMENT",
                    _ => "PERMISSION_DENIED",
                },
            }
        })),
    )
        .into_response()
}

/// A refusal in Google's words: status, reason, domain and message.
struct Refusal(StatusCode, &'static str, &'static str, &'static str);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        api_error(self.0, self.1, self.2, self.3)
    }
}

/// Check a Calendar API call: a live token, the API enabled, one of `needed`.
/// The account (`sub`) the token belongs to, or Google's refusal.
fn calendar_access(
    fake: &FakeGoogle,
    headers: &HeaderMap,
    endpoint: &'static str,
    needed: &[&str],
) -> Result<String, Refusal> {
    let mut s = fake.lock();
    s.count(endpoint);
    let Some(grant) = bearer_grant(&s, headers) else {
        return Err(Refusal(
            StatusCode::UNAUTHORIZED,
            "authError",
            "global",
            "Request had invalid authentication credentials.",
        ));
    };
    if s.behaviour.calendar_api_disabled {
        return Err(Refusal(
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
        return Err(Refusal(
            StatusCode::FORBIDDEN,
            "insufficientPermissions",
            "global",
            "Request had insufficient authentication scopes.",
        ));
    }
    Ok(grant.sub.clone())
}

/// Is `calendar_id` the account's primary calendar (`primary` or its
/// address)? Google answers 404 `notFound` for a calendar it does not show
/// the account.
fn own_calendar(fake: &FakeGoogle, sub: &str, calendar_id: &str) -> Result<(), Refusal> {
    let email = fake
        .config
        .accounts
        .iter()
        .find(|a| a.sub == sub)
        .map(|a| a.email.as_str());
    if calendar_id == "primary" || email.is_some_and(|e| e.eq_ignore_ascii_case(calendar_id)) {
        Ok(())
    } else {
        Err(Refusal(
            StatusCode::NOT_FOUND,
            "notFound",
            "global",
            "Not Found",
        ))
    }
}

/// `GET /calendar/v3/users/me/calendarList/primary`.
pub(super) async fn primary(State(fake): State<FakeGoogle>, headers: HeaderMap) -> Response {
    if let Err(refusal) = calendar_access(
        &fake,
        &headers,
        "calendar.calendarList",
        &["calendar", "calendar.readonly"],
    ) {
        return refusal.into_response();
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

/// `GET /calendar/v3/calendars/{calendarId}/events`: the account's events in
/// the order they were created, in Google's `calendar#events` shape.
pub(super) async fn list_events(
    State(fake): State<FakeGoogle>,
    Path(calendar_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let sub = match calendar_access(
        &fake,
        &headers,
        "calendar.events.list",
        &[
            "calendar",
            "calendar.readonly",
            "calendar.events",
            "calendar.events.readonly",
        ],
    ) {
        Ok(sub) => sub,
        Err(refusal) => return refusal.into_response(),
    };
    if let Err(refusal) = own_calendar(&fake, &sub, &calendar_id) {
        return refusal.into_response();
    }
    let items: Vec<serde_json::Value> = fake
        .lock()
        .events
        .iter()
        .filter(|(owner, _)| *owner == sub)
        .map(|(_, event)| event.clone())
        .collect();
    let summary = fake
        .config
        .accounts
        .iter()
        .find(|a| a.sub == sub)
        .map(|a| a.email.clone())
        .unwrap_or_default();
    Json(json!({
        "kind": "calendar#events",
        "etag": format!("\"{}\"", items.len()),
        "summary": summary,
        "timeZone": "Asia/Seoul",
        "accessRole": "owner",
        "defaultReminders": [],
        "items": items,
    }))
    .into_response()
}

/// `POST /calendar/v3/calendars/{calendarId}/events`.
pub(super) async fn insert_event(
    State(fake): State<FakeGoogle>,
    Path(calendar_id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let sub = match calendar_access(
        &fake,
        &headers,
        "calendar.events.insert",
        &["calendar", "calendar.events"],
    ) {
        Ok(sub) => sub,
        Err(refusal) => return refusal.into_response(),
    };
    if let Err(refusal) = own_calendar(&fake, &sub, &calendar_id) {
        return refusal.into_response();
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
    fake.lock().events.push((sub, event.clone()));
    Json(event).into_response()
}
