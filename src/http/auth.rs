//! Who is calling: the ro-being session (a HS256 JWT whose `sub` is the user's
//! UUID, from the session cookie or an `Authorization: Bearer` header).
//!
//! The claims policy (docs/security.md, "Sessions: what is checked"): HS256
//! only; `sub` (a UUID) and `exp` required; `exp`, `nbf` and `iat` checked against the clock
//! with [`LEEWAY_SECS`] of tolerance, so a session that is expired, not yet
//! valid or issued in the future is refused; `aud` and `iss` as
//! [`SessionPolicy`] says; and `exp` at most `SESSION_JWT_MAX_LIFETIME_SECS`
//! ahead when that is set.
//!
//! Both places may hold a session: one that does not verify never hides one
//! that does, and two that verify must name the same user. Each is verified
//! through the session cache ([`crate::http::sessions`]), which answers for
//! exact bytes that verified before, until their `exp`.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum_extra::extract::CookieJar;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{decode, Algorithm, DecodingKey, Validation};
use secrecy::ExposeSecret;
use serde::Deserialize;
use uuid::Uuid;

use crate::config::SessionPolicy;
use crate::http::error::{ApiError, PageError};
use crate::http::state::AppState;

/// Clock tolerance, in seconds, for `exp`, `nbf`, `iat` and the lifetime.
pub const LEEWAY_SECS: u64 = 30;

#[derive(Debug, Deserialize)]
struct Claims {
    sub: String,
    exp: u64,
    /// NumericDate: may carry a fraction.
    iat: Option<f64>,
}

/// Why a session was not accepted (for logs; callers only see 401).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionError {
    Missing,
    /// Not a JWT, a bad signature, another algorithm, or a required claim
    /// (`sub`, `exp`) missing or malformed.
    Invalid,
    Expired,
    /// `nbf` or `iat` later than now (beyond the leeway).
    NotYetValid,
    /// `exp` further ahead than `SESSION_JWT_MAX_LIFETIME_SECS`.
    TooLong,
    /// An `aud` this service is not (or none where one is required).
    WrongAudience,
    /// Another `iss` than `SESSION_JWT_ISSUER` (or none).
    WrongIssuer,
    BadSubject,
    /// The cookie and the Bearer header each verify, for different users.
    TwoUsers,
}

/// The bearer token of an `Authorization` header, if it is one.
pub(crate) fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

/// Verify the session JWT against `policy` and return the user id.
pub fn verify_session(
    token: &str,
    secret: &[u8],
    policy: &SessionPolicy,
) -> Result<Uuid, SessionError> {
    verify_session_claims(token, secret, policy).map(|(user, _)| user)
}

/// [`verify_session`], with the session's `exp` (seconds since the epoch).
pub(crate) fn verify_session_claims(
    token: &str,
    secret: &[u8],
    policy: &SessionPolicy,
) -> Result<(Uuid, u64), SessionError> {
    let data = decode::<Claims>(
        token,
        &DecodingKey::from_secret(secret),
        &validation(policy),
    )
    .map_err(|e| refusal(e.kind()))?;
    let claims = data.claims;
    let now = chrono::Utc::now().timestamp() as f64;
    let leeway = LEEWAY_SECS as f64;
    if claims.iat.is_some_and(|iat| iat > now + leeway) {
        return Err(SessionError::NotYetValid);
    }
    if let Some(max) = policy.max_lifetime {
        if claims.exp as f64 > now + (max.as_secs() + LEEWAY_SECS) as f64 {
            return Err(SessionError::TooLong);
        }
    }
    let user = Uuid::parse_str(&claims.sub).map_err(|_| SessionError::BadSubject)?;
    Ok((user, claims.exp))
}

fn validation(policy: &SessionPolicy) -> Validation {
    let mut v = Validation::new(Algorithm::HS256);
    v.algorithms = vec![Algorithm::HS256];
    let mut required = vec!["exp", "sub"];
    v.validate_exp = true;
    v.validate_nbf = true;
    v.leeway = LEEWAY_SECS;
    // With no audience set, jsonwebtoken refuses any token that carries one.
    v.validate_aud = true;
    if let Some(aud) = &policy.audience {
        v.set_audience(&[aud]);
        required.push("aud");
    }
    if let Some(iss) = &policy.issuer {
        v.set_issuer(&[iss]);
        required.push("iss");
    }
    v.set_required_spec_claims(&required);
    v
}

fn refusal(kind: &ErrorKind) -> SessionError {
    match kind {
        ErrorKind::ExpiredSignature => SessionError::Expired,
        ErrorKind::ImmatureSignature => SessionError::NotYetValid,
        ErrorKind::InvalidAudience => SessionError::WrongAudience,
        ErrorKind::InvalidIssuer => SessionError::WrongIssuer,
        ErrorKind::MissingRequiredClaim(c) if c == "aud" => SessionError::WrongAudience,
        ErrorKind::MissingRequiredClaim(c) if c == "iss" => SessionError::WrongIssuer,
        _ => SessionError::Invalid,
    }
}

/// The user of a request from its Bearer header and its session cookie,
/// each verified on its own (`None`: not sent): a credential that is refused
/// does not hide one that verifies; two that verify must agree. When none
/// verifies, the Bearer header's reason is reported first.
pub fn choose_session(
    bearer: Option<Result<Uuid, SessionError>>,
    cookie: Option<Result<Uuid, SessionError>>,
) -> Result<Uuid, SessionError> {
    match (bearer, cookie) {
        (Some(Ok(a)), Some(Ok(b))) if a != b => Err(SessionError::TwoUsers),
        (Some(Ok(user)), _) | (_, Some(Ok(user))) => Ok(user),
        (Some(Err(e)), _) | (None, Some(Err(e))) => Err(e),
        (None, None) => Err(SessionError::Missing),
    }
}

fn session_user(parts: &Parts, app: &AppState) -> Result<Uuid, SessionError> {
    let secret = app.settings.session_jwt_secret.expose_secret().as_bytes();
    let policy = &app.settings.session_policy;
    let verify = |token: &str| app.sessions.verify(token, secret, policy);
    let jar = CookieJar::from_headers(&parts.headers);
    let cookie = jar
        .get(&app.settings.session_cookie_name)
        .map(|c| verify(c.value()));
    let r = choose_session(bearer(parts).map(verify), cookie);
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
                SessionError::BadSubject => "the session does not name a user; sign in again",
                SessionError::TwoUsers => {
                    "the session cookie and the Authorization header name different users; sign in again"
                }
                _ => "the session is invalid or expired; sign in again",
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
            .map_err(|_| sign_in_needed(app, &return_page(parts, app)))
    }
}

/// The sign-in-needed page, whose button leads to ro-being's sign-in
/// (`LOGIN_URL`) and from there back to `back`.
pub(crate) fn sign_in_needed(app: &AppState, back: &url::Url) -> PageError {
    PageError::SignInNeeded(app.settings.login.link(back).map(String::from))
}

/// Where to come back to after signing in: the page asked for (a GET of our
/// own, on `PUBLIC_BASE_URL`), otherwise the inventory page (a form sent
/// without a session cannot be sent again by a link).
fn return_page(parts: &Parts, app: &AppState) -> url::Url {
    if parts.method != axum::http::Method::GET {
        return app.settings.inventory_url.clone();
    }
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", axum::http::uri::PathAndQuery::as_str);
    app.settings.public_url(path)
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
