//! The internal API for skills (skill-calendar, skill-gmail) and operators:
//! tokens, disconnect, diagnosis, the rollout report. Internal API keys only.

use std::time::Duration;

use crate::http::ApiPath;
use axum::extract::{FromRequestParts, RawQuery, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use crate::error::ApiError;
use crate::http::auth::bearer;
use crate::http::limits::ClientIp;
use crate::http::query;
use crate::passport::disconnect::{self, Revocation};
use crate::passport::provider::Provider;
use crate::passport::scopes::{ScopeError, ScopeSet};
use crate::passport::token::{self, TokenError};
use crate::passport::{diagnosis, report};
use crate::state::AppState;

/// A caller that presented one of `INTERNAL_API_KEYS`.
#[derive(Debug, Clone, Copy)]
pub struct InternalCaller;

/// Compare a presented key with every configured key in constant time.
pub fn key_matches(presented: &str, keys: &[secrecy::SecretString]) -> bool {
    let p = Sha256::digest(presented.as_bytes());
    let mut ok = subtle::Choice::from(0u8);
    for k in keys {
        let h = Sha256::digest(k.expose_secret().as_bytes());
        ok |= p[..].ct_eq(&h[..]);
    }
    ok.into()
}

impl FromRequestParts<AppState> for InternalCaller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &AppState,
    ) -> Result<Self, Self::Rejection> {
        match bearer(parts) {
            Some(k) if key_matches(k, &app.settings.internal_api_keys) => Ok(InternalCaller),
            Some(_) => Err(ApiError::unauthorized("the internal API key is not valid")),
            None => Err(ApiError::unauthorized(
                "send an internal API key as `Authorization: Bearer <key>`",
            )),
        }
    }
}

fn provider<'a>(app: &'a AppState, name: &str) -> Result<&'a Provider, ApiError> {
    app.providers
        .get(name)
        .ok_or_else(|| ApiError::not_found(format!("no passport provider named `{name}`")))
}

/// `/internal/passport/{provider}/users/{user_id}…`: the provider, the
/// caller's key, then the user id, checked in that order.
fn user_route<'a>(
    app: &'a AppState,
    name: &str,
    caller: Result<InternalCaller, ApiError>,
    user: &str,
) -> Result<(&'a Provider, Uuid), ApiError> {
    let provider = provider(app, name)?;
    caller?;
    Ok((provider, user_id(user)?))
}

fn user_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::bad_request("user_id must be a UUID"))
}

fn reauth_url(app: &AppState, provider: &Provider) -> String {
    app.settings
        .public_url(&format!("/passport/{}/connect", provider.name))
        .to_string()
}

#[derive(Debug, Deserialize)]
struct TokenRequest {
    user_id: serde_json::Value,
    #[serde(default)]
    scopes: Vec<serde_json::Value>,
}

/// `200` answer of the token API.
#[derive(Debug, Serialize, Deserialize)]
pub struct TokenAnswer {
    pub access_token: String,
    pub expires_at: Option<DateTime<Utc>>,
    pub scopes: Vec<String>,
    pub email: Option<String>,
}

fn parse_token_request(body: &[u8]) -> Result<(Uuid, ScopeSet), ApiError> {
    let req: TokenRequest = serde_json::from_slice(body).map_err(|_| {
        ApiError::bad_request(
            r#"body must be JSON like {"user_id": "<uuid>", "scopes": ["calendar.events"]}"#,
        )
    })?;
    let user = req
        .user_id
        .as_str()
        .and_then(|s| Uuid::parse_str(s).ok())
        .ok_or_else(|| ApiError::bad_request("user_id must be a UUID string"))?;
    let mut names = Vec::new();
    for s in &req.scopes {
        names.push(
            s.as_str()
                .ok_or_else(|| ApiError::bad_request("scopes must be an array of strings"))?,
        );
    }
    let scopes = if names.is_empty() {
        ScopeSet::new()
    } else {
        ScopeSet::parse_known(names.iter().copied()).map_err(|e| match e {
            ScopeError::Unknown(s) => ApiError::bad_request(format!(
                "unknown scope `{}`; use short names such as calendar.events or full URLs",
                s.chars().take(100).collect::<String>()
            )),
            ScopeError::Empty => ApiError::bad_request("scopes must not hold empty names"),
        })?
    };
    Ok((user, scopes))
}

fn token_error(app: &AppState, provider: &Provider, e: TokenError) -> ApiError {
    match e {
        TokenError::NotConnected => ApiError {
            reauth_url: Some(reauth_url(app, provider)),
            ..ApiError::new(
                StatusCode::NOT_FOUND,
                "not_connected",
                "this user has not connected a Gmail Passport; they must connect it in Settings > Items > Gmail",
            )
        },
        TokenError::ScopeMissing(missing) => ApiError {
            reauth_url: Some(reauth_url(app, provider)),
            missing: Some(missing.short_names()),
            ..ApiError::new(
                StatusCode::FORBIDDEN,
                "scope_missing",
                format!(
                    "the user's Google grant lacks {missing}; the user must press 재인증 and tick those permissions (the grant itself is fine)"
                ),
            )
        },
        TokenError::ReauthRequired(why) => ApiError {
            reauth_url: Some(reauth_url(app, provider)),
            ..ApiError::new(
                StatusCode::CONFLICT,
                "reauth_required",
                format!(
                    "Google no longer accepts this user's refresh token ({}); the user must press 재인증",
                    why.split(':').next().unwrap_or("invalid_grant")
                ),
            )
        },
        TokenError::Unavailable { reason, .. } => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "upstream_unavailable",
            format!("{reason}; nothing was changed, try again later"),
        ),
        TokenError::Crypto(e) => ApiError {
            // Names the key id, never a secret.
            message: format!("{e}; operators: check TOKEN_ENCRYPTION_KEYS"),
            ..ApiError::internal(&e)
        },
        TokenError::Database(e) => ApiError::internal(&e),
    }
}

/// `POST /internal/passport/{provider}/token`.
pub async fn token(
    State(app): State<AppState>,
    ApiPath(name): ApiPath<String>,
    caller: Result<InternalCaller, ApiError>,
    ClientIp(ip): ClientIp,
    body: axum::body::Bytes,
) -> Response {
    let result: Result<token::IssuedToken, ErrorWithRetry> = async {
        let provider = provider(&app, &name)?;
        app.limiters.token_ip(ip).map_err(ApiError::from)?;
        caller?;
        let (user, scopes) = parse_token_request(&body)?;
        app.limiters.token_user(user).map_err(ApiError::from)?;
        token::token_for(&app, provider, user, &scopes)
            .await
            .map_err(|e| {
                let retry = match &e {
                    TokenError::Unavailable { retry_after, .. } => Some(*retry_after),
                    _ => None,
                };
                ErrorWithRetry(token_error(&app, provider, e), retry)
            })
    }
    .await;
    let (code, resp) = match result {
        Ok(t) => {
            let answer = TokenAnswer {
                access_token: t.access_token.expose_secret().to_string(),
                expires_at: t.expires_at,
                scopes: t.scopes.short_names(),
                email: t.email,
            };
            let mut r = Json(answer).into_response();
            r.headers_mut()
                .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
            ("ok", r)
        }
        Err(ErrorWithRetry(e, retry)) => {
            let code = e.error;
            let mut r = e.into_response();
            if let Some(d) = retry {
                if let Ok(v) = HeaderValue::from_str(&d.as_secs().max(1).to_string()) {
                    r.headers_mut().insert(RETRY_AFTER, v);
                }
            }
            (code, r)
        }
    };
    metrics::counter!("passport_token_requests_total", "code" => code).increment(1);
    resp
}

/// An API error and, for `upstream_unavailable`, when to retry.
pub struct ErrorWithRetry(ApiError, Option<Duration>);

impl From<ApiError> for ErrorWithRetry {
    fn from(e: ApiError) -> Self {
        Self(e, None)
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct DisconnectAnswer {
    pub disconnected: bool,
    pub revocation: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoke_error: Option<String>,
}

pub(crate) fn disconnect_answer(r: &Revocation) -> DisconnectAnswer {
    DisconnectAnswer {
        disconnected: true,
        revocation: r.code().to_string(),
        revoke_error: match r {
            Revocation::Failed(why) => Some(why.clone()),
            _ => None,
        },
    }
}

/// `DELETE /internal/passport/{provider}/users/{user_id}`.
pub async fn disconnect(
    State(app): State<AppState>,
    ApiPath((name, user)): ApiPath<(String, String)>,
    caller: Result<InternalCaller, ApiError>,
) -> Result<Response, ApiError> {
    let (provider, user) = user_route(&app, &name, caller, &user)?;
    match disconnect::disconnect(&app, provider, user).await? {
        Some(r) => Ok(Json(disconnect_answer(&r)).into_response()),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_connected",
            "this user has no Gmail Passport connection",
        )),
    }
}

/// `GET /internal/passport/{provider}/users/{user_id}/diagnosis`.
pub async fn diagnosis(
    State(app): State<AppState>,
    ApiPath((name, user)): ApiPath<(String, String)>,
    caller: Result<InternalCaller, ApiError>,
) -> Result<Response, ApiError> {
    let (provider, user) = user_route(&app, &name, caller, &user)?;
    let d = diagnosis::diagnose(&app, provider, user).await?;
    Ok(Json(d).into_response())
}

/// `GET /internal/passport/{provider}/report[?missing=calendar&format=csv]`.
pub async fn report(
    State(app): State<AppState>,
    ApiPath(name): ApiPath<String>,
    caller: Result<InternalCaller, ApiError>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let provider = provider(&app, &name)?;
    caller?;
    let q = query::parse(raw.as_deref())
        .map_err(|_| ApiError::bad_request("duplicated or oversized query"))?;
    let format = q.get("format").map(String::as_str).unwrap_or("json");
    if !matches!(format, "json" | "csv") {
        return Err(ApiError::bad_request("format must be json or csv"));
    }
    match q.get("missing") {
        None => {
            let r = report::build(&app.db, provider).await?;
            if format == "csv" {
                return Err(ApiError::bad_request("format=csv needs missing=<scope>"));
            }
            Ok(Json(r).into_response())
        }
        Some(scope) => {
            let scope = ScopeSet::parse_known([scope.as_str()]).map_err(|_| {
                ApiError::bad_request("missing must name a known scope, e.g. calendar")
            })?;
            let users = report::missing_users(&app.db, &scope).await?;
            if format == "csv" {
                Ok((
                    [(CONTENT_TYPE, "text/csv; charset=utf-8")],
                    report::to_csv(&users),
                )
                    .into_response())
            } else {
                Ok(
                    Json(serde_json::json!({"missing": scope.short_names(), "users": users}))
                        .into_response(),
                )
            }
        }
    }
}
