//! Who is calling: the ro-being session (a HS256 JWT whose `sub` is the user's
//! UUID, from the session cookie or an `Authorization: Bearer` header).

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum_extra::extract::CookieJar;
use jsonwebtoken::{decode, Algorithm, DecodingKey, Validation};
use secrecy::ExposeSecret;
use serde::Deserialize;
use uuid::Uuid;

use crate::http::error::{ApiError, PageError};
use crate::http::state::AppState;

#[derive(Debug, Deserialize)]
struct Claims {
    sub: String,
}

/// Why a session was not accepted (for logs; callers only see 401).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionError {
    Missing,
    Invalid,
    BadSubject,
}

/// The bearer token of an `Authorization` header, if it is one.
pub(crate) fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

/// Verify the session JWT and return the user id.
pub fn verify_session(token: &str, secret: &[u8]) -> Result<Uuid, SessionError> {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.algorithms = vec![Algorithm::HS256];
    validation.set_required_spec_claims(&["exp", "sub"]);
    validation.validate_exp = true;
    validation.leeway = 30;
    let data = decode::<Claims>(token, &DecodingKey::from_secret(secret), &validation)
        .map_err(|_| SessionError::Invalid)?;
    Uuid::parse_str(&data.claims.sub).map_err(|_| SessionError::BadSubject)
}

fn session_user(parts: &Parts, app: &AppState) -> Result<Uuid, SessionError> {
    let jar = CookieJar::from_headers(&parts.headers);
    let token = match jar.get(&app.settings.session_cookie_name) {
        Some(c) => c.value().to_string(),
        None => bearer(parts).ok_or(SessionError::Missing)?.to_string(),
    };
    let r = verify_session(
        &token,
        app.settings.session_jwt_secret.expose_secret().as_bytes(),
    );
    if let Err(e) = r {
        tracing::debug!(reason = ?e, "session refused");
    }
    r
}

/// A signed-in user, for the JSON API (401 JSON otherwise).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ApiUser(pub Uuid);

impl FromRequestParts<AppState> for ApiUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &AppState,
    ) -> Result<Self, Self::Rejection> {
        session_user(parts, app).map(ApiUser).map_err(|e| {
            ApiError::unauthorized(match e {
                SessionError::Missing => "sign in to ro-being first (no session)",
                SessionError::Invalid => "the session is invalid or expired; sign in again",
                SessionError::BadSubject => "the session does not name a user; sign in again",
            })
        })
    }
}

/// A signed-in user, for browser pages (the sign-in-needed page otherwise).
#[derive(Debug, Clone, Copy)]
pub(crate) struct PageUser(pub Uuid);

impl FromRequestParts<AppState> for PageUser {
    type Rejection = PageError;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &AppState,
    ) -> Result<Self, Self::Rejection> {
        session_user(parts, app)
            .map(PageUser)
            .map_err(|_| PageError::SignInNeeded)
    }
}

/// The signed-in user if there is one; never rejects.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MaybeUser(pub Option<Uuid>);

impl FromRequestParts<AppState> for MaybeUser {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(MaybeUser(session_user(parts, app).ok()))
    }
}
