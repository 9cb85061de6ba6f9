//! The internal API for skills (skill-calendar, skill-gmail) and operators:
//! tokens, disconnect, diagnosis, the fetch ledger, the rollout report.
//! Internal API keys only.

use axum::extract::{FromRequestParts, RawQuery, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use crate::http::auth::bearer;
use crate::http::error::{ApiError, ErrorCode};
use crate::http::limits::{identified, ClientIp};
use crate::http::{provider, query, ApiPath, AppState};
use crate::passport::disconnect::Revocation;
use crate::passport::provider::Provider;
use crate::passport::report;
use crate::passport::token::IssuedToken;
use crate::scopes::{ScopeError, ScopeSet};

/// A caller that presented one of `INTERNAL_API_KEYS`, by the key's name.
#[derive(Debug, Clone)]
pub(crate) struct InternalCaller {
    pub name: Arc<str>,
}

/// Which configured key was presented: the presented key is compared with
/// every configured key in constant time, whichever matches.
pub(crate) fn key_index(presented: &str, keys: &[secrecy::SecretString]) -> Option<usize> {
    use subtle::ConditionallySelectable;
    let p = Sha256::digest(presented.as_bytes());
    let mut ok = subtle::Choice::from(0u8);
    let mut index = 0u32;
    for (i, k) in keys.iter().enumerate() {
        let h = Sha256::digest(k.expose_secret().as_bytes());
        let eq = p[..].ct_eq(&h[..]);
        index.conditional_assign(&(i as u32), eq);
        ok |= eq;
    }
    bool::from(ok).then_some(index as usize)
}

impl FromRequestParts<AppState> for InternalCaller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Some(k) = bearer(parts) else {
            return Err(ApiError::unauthorized(
                "send an internal API key as `Authorization: Bearer <key>`",
            ));
        };
        match key_index(k, &app.settings.internal_api_keys) {
            Some(i) => {
                let name = app.settings.internal_key_names[i].clone();
                tracing::Span::current().record("caller", &*name);
                Ok(InternalCaller { name })
            }
            None => Err(ApiError::unauthorized("the internal API key is not valid")),
        }
    }
}

/// `/internal/passport/{provider}/users/{user_id}…`: the provider, the
/// caller's key, then the user id, checked in that order.
fn user_route<'a>(
    app: &'a AppState,
    name: &str,
    caller: Result<InternalCaller, ApiError>,
    user: &str,
) -> Result<(&'a Provider, Uuid), ApiError> {
    let provider = provider::<ApiError>(app, name)?;
    caller?;
    Ok((provider, user_id(user)?))
}

fn user_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::bad_request("user_id must be a UUID"))
}

#[derive(Debug, Deserialize)]
struct TokenRequest {
    user_id: serde_json::Value,
    #[serde(default)]
    scopes: Vec<serde_json::Value>,
}

/// `200` answer of the token API.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct TokenAnswer {
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

/// `POST /internal/passport/{provider}/token`.
pub(crate) async fn token(
    State(app): State<AppState>,
    ApiPath(name): ApiPath<String>,
    caller: Result<InternalCaller, ApiError>,
    ClientIp(ip): ClientIp,
    body: axum::body::Bytes,
) -> Response {
    // Labels only from the configured names (bounded); "-" without a valid key.
    let who: metrics::SharedString = match &caller {
        Ok(c) => c.name.clone().into(),
        Err(_) => "-".into(),
    };
    let result = token_for(&app, &name, caller, ip, &body).await;
    let code = match &result {
        Ok(_) => "ok",
        Err(e) => e.error.as_str(),
    };
    metrics::counter!("passport_token_requests_total", "code" => code, "caller" => who)
        .increment(1);
    match result {
        Ok(t) => Json(TokenAnswer {
            access_token: t.access_token.expose_secret().to_string(),
            expires_at: t.expires_at,
            scopes: t.scopes.short_names(),
            email: t.email,
        })
        .into_response(),
        Err(e) => e.into_response(),
    }
}

/// The token API's checks, in order: provider, key (a request without a
/// valid one counts against its IP's limit), body, per-user limit; then the
/// passport.
async fn token_for(
    app: &AppState,
    name: &str,
    caller: Result<InternalCaller, ApiError>,
    ip: Option<std::net::IpAddr>,
    body: &[u8],
) -> Result<IssuedToken, ApiError> {
    let provider = provider::<ApiError>(app, name)?;
    let caller = identified(caller, || app.limiters.token_ip(ip))?;
    let (user, scopes) = parse_token_request(body)?;
    app.limiters.token_user(user)?;
    let reauth = |e| ApiError::from(e).with_reauth_url(&app.passport.reauth_url(provider));
    let issued = app
        .passport
        .token_for(provider, user, &scopes)
        .await
        .map_err(reauth)?;
    app.passport
        .record_fetch(caller.name, provider, user, scopes);
    Ok(issued)
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct DisconnectAnswer {
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
pub(crate) async fn disconnect(
    State(app): State<AppState>,
    ApiPath((name, user)): ApiPath<(String, String)>,
    caller: Result<InternalCaller, ApiError>,
) -> Result<Response, ApiError> {
    let (provider, user) = user_route(&app, &name, caller, &user)?;
    match app.passport.disconnect(provider, user).await? {
        Some(r) => Ok(Json(disconnect_answer(&r)).into_response()),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::NotConnected,
            "this user has no Gmail Passport connection",
        )),
    }
}

/// `GET /internal/passport/{provider}/users/{user_id}/diagnosis`.
pub(crate) async fn diagnosis(
    State(app): State<AppState>,
    ApiPath((name, user)): ApiPath<(String, String)>,
    caller: Result<InternalCaller, ApiError>,
) -> Result<Response, ApiError> {
    let (provider, user) = user_route(&app, &name, caller, &user)?;
    let d = app.passport.diagnose(provider, user).await?;
    Ok(Json(d).into_response())
}

/// `GET /internal/passport/{provider}/report[?missing=calendar&format=csv]`.
pub(crate) async fn report(
    State(app): State<AppState>,
    ApiPath(name): ApiPath<String>,
    caller: Result<InternalCaller, ApiError>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let provider = provider::<ApiError>(&app, &name)?;
    caller?;
    let q = query::parse(raw.as_deref())
        .map_err(|_| ApiError::bad_request("duplicated or oversized query"))?;
    let format = q.get("format").map(String::as_str).unwrap_or("json");
    if !matches!(format, "json" | "csv") {
        return Err(ApiError::bad_request("format must be json or csv"));
    }
    match q.get("missing") {
        None => {
            let r = app.passport.report(provider).await?;
            if format == "csv" {
                return Err(ApiError::bad_request("format=csv needs missing=<scope>"));
            }
            Ok(Json(r).into_response())
        }
        Some(scope) => {
            let scope = ScopeSet::parse_known([scope.as_str()]).map_err(|_| {
                ApiError::bad_request("missing must name a known scope, e.g. calendar")
            })?;
            let users = app.passport.missing_users(&scope).await?;
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

/// `GET /internal/passport/{provider}/users/{user_id}/ledger[?since=RFC3339&caller=name]`.
pub(crate) async fn ledger(
    State(app): State<AppState>,
    ApiPath((name, user)): ApiPath<(String, String)>,
    caller: Result<InternalCaller, ApiError>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let (provider, user) = user_route(&app, &name, caller, &user)?;
    let q = query::parse(raw.as_deref())
        .map_err(|_| ApiError::bad_request("duplicated or oversized query"))?;
    if let Some(k) = q.keys().find(|k| !matches!(k.as_str(), "since" | "caller")) {
        return Err(ApiError::bad_request(format!(
            "unknown query parameter `{}`; use since and caller",
            k.chars().take(40).collect::<String>()
        )));
    }
    let since = match q.get("since") {
        None => None,
        Some(s) => Some(
            DateTime::parse_from_rfc3339(s)
                .map_err(|_| ApiError::bad_request("since must be an RFC 3339 time"))?
                .with_timezone(&Utc),
        ),
    };
    let who = q.get("caller").map(String::as_str);
    if who.is_some_and(|w| !crate::config::is_key_name(w)) {
        return Err(ApiError::bad_request("caller must be a key name"));
    }
    let view = app.passport.ledger(provider, user, since, who).await?;
    Ok(Json(view).into_response())
}
