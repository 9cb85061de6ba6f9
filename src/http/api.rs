//! The user JSON API: connection status and starting a consent from a script.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use axum_extra::extract::CookieJar;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::http::auth::ApiUser;
use crate::http::error::ApiError;
use crate::http::limits::{identified, ClientIp};
use crate::http::pages::flow_cookie;
use crate::http::{provider, ApiPath, AppState};
use crate::store::gmail_token::ConnectionStatus;

/// A browser request must come from our origin or an allowed one; script
/// callers (no `Origin`, no `Sec-Fetch-Site`) are judged by their session only.
fn allowed_origin(headers: &axum::http::HeaderMap, app: &AppState) -> bool {
    match headers
        .get(axum::http::header::ORIGIN)
        .and_then(|o| o.to_str().ok())
    {
        Some(origin) => url::Url::parse(origin)
            .map(|u| app.settings.allowed_return_origins.contains(&u.origin()))
            .unwrap_or(false),
        None => headers
            .get("sec-fetch-site")
            .is_none_or(|s| s.as_bytes() == b"same-origin" || s.as_bytes() == b"none"),
    }
}

/// `GET /api/passport/{provider}` answer.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct StatusBody {
    pub connected: bool,
    pub email: Option<String>,
    pub status: Option<ConnectionStatus>,
    pub granted_scopes: Vec<String>,
    pub missing_scopes: Vec<String>,
    pub needs_reauth: bool,
    /// Why the connection needs 재인증, when a stored reason says so (the
    /// `ReauthCause` code: `invalid_grant`, `invalid_rapt`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
    pub reauth_url: String,
}

pub(crate) async fn status(
    State(app): State<AppState>,
    ApiPath(name): ApiPath<String>,
    user: Result<ApiUser, ApiError>,
) -> Result<Response, ApiError> {
    let provider = provider::<ApiError>(&app, &name)?;
    let ApiUser(user_id) = user?;
    let st = app.passport.status(provider, user_id).await?;
    let body = StatusBody {
        connected: st.connected,
        email: st.email.clone(),
        status: st.status,
        granted_scopes: st.granted.short_names(),
        missing_scopes: st.missing.short_names(),
        needs_reauth: st.needs_reauth(),
        cause: st.cause.as_ref().map(|c| c.code().to_string()),
        expires_at: st.expires_at,
        reauth_url: app.passport.reauth_url(provider).to_string(),
    };
    Ok(Json(body).into_response())
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConnectBody {
    pub return_to: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ConnectAnswer {
    pub authorize_url: String,
}

/// `POST /api/passport/{provider}/connect` `{"return_to"?: URL}` →
/// `{"authorize_url": …}`, with the flow cookie set on this browser.
pub(crate) async fn connect(
    State(app): State<AppState>,
    ApiPath(name): ApiPath<String>,
    user: Result<ApiUser, ApiError>,
    ClientIp(ip): ClientIp,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let provider = provider::<ApiError>(&app, &name)?;
    let ApiUser(user_id) = identified(user, || app.limiters.anonymous_ip(ip))?;
    if !allowed_origin(&headers, &app) {
        return Err(ApiError::new(
            axum::http::StatusCode::FORBIDDEN,
            crate::http::error::ErrorCode::Forbidden,
            "this request comes from a site that is not allowed to start a consent",
        ));
    }
    app.limiters.connect_user(user_id)?;
    let body: ConnectBody = if body.iter().all(u8::is_ascii_whitespace) {
        ConnectBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::bad_request(format!(
                "body must be JSON like {{\"return_to\": \"https://…\"}} ({e})"
            ))
        })?
    };
    let started = app
        .passport
        .start_consent(provider, user_id, body.return_to.as_deref())
        .await?;
    let cookie = flow_cookie(
        &app,
        provider.name,
        started.cookie_name,
        started.browser_nonce,
    );
    let answer = ConnectAnswer {
        authorize_url: started.authorize_url.to_string(),
    };
    Ok((CookieJar::new().add(cookie), Json(answer)).into_response())
}
