//! The `/__fake/…` endpoints: call counts, behaviour switches and seeded
//! grants, for tests, scripts and benchmarks that run the fake in another
//! process.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::oauth::oauth_error;
use super::{Behaviour, FakeGoogle, ACCESS_TOKEN_SECS};

/// `GET /__fake/calls`: every endpoint's call count, as a JSON object.
pub(super) async fn calls(State(fake): State<FakeGoogle>) -> Response {
    let s = fake.lock();
    let map: serde_json::Map<String, serde_json::Value> = s
        .calls
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    Json(serde_json::Value::Object(map)).into_response()
}

/// `PUT /__fake/behaviour` with a [`Behaviour`] as JSON.
pub(super) async fn set_behaviour(
    State(fake): State<FakeGoogle>,
    Json(b): Json<Behaviour>,
) -> Response {
    fake.set_behaviour(b);
    Json(json!({"ok": true})).into_response()
}

#[derive(serde::Deserialize)]
pub(super) struct SeedGrant {
    email: String,
    scopes: Vec<String>,
}

/// `POST /__fake/seed-grant` `{"email", "scopes"}` → `{"access_token",
/// "refresh_token", "expires_in"}`: a grant as if the account had consented.
pub(super) async fn seed_grant(
    State(fake): State<FakeGoogle>,
    Json(req): Json<SeedGrant>,
) -> Response {
    let scopes: Vec<&str> = req.scopes.iter().map(String::as_str).collect();
    match fake.seed_grant(&req.email, &scopes) {
        Some((access, refresh)) => Json(json!({
            "access_token": access,
            "refresh_token": refresh,
            "expires_in": ACCESS_TOKEN_SECS,
        }))
        .into_response(),
        None => oauth_error(
            StatusCode::BAD_REQUEST,
            "unknown_account",
            "no such account at the fake",
        ),
    }
}
