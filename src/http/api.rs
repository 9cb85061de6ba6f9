//! The user JSON API: connection status and starting a consent from a script.

use crate::http::ApiPath;
use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, SET_COOKIE};
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::http::auth::ApiUser;
use crate::http::limits::ClientIp;
use crate::http::pages::flow_cookie;
use crate::passport::flow::{self, FlowError};
use crate::passport::provider::Provider;
use crate::passport::status;
use crate::state::AppState;

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

fn provider<'a>(app: &'a AppState, name: &str) -> Result<&'a Provider, ApiError> {
    app.providers
        .get(name)
        .ok_or_else(|| ApiError::not_found(format!("no passport provider named `{name}`")))
}

/// `GET /api/passport/{provider}` answer.
#[derive(Debug, Serialize, Deserialize)]
pub struct StatusBody {
    pub connected: bool,
    pub email: Option<String>,
    pub status: Option<String>,
    pub granted_scopes: Vec<String>,
    pub missing_scopes: Vec<String>,
    pub needs_reauth: bool,
    pub expires_at: Option<DateTime<Utc>>,
    pub reauth_url: String,
}

pub async fn status(
    State(app): State<AppState>,
    ApiPath(name): ApiPath<String>,
    user: Result<ApiUser, ApiError>,
) -> Result<Response, ApiError> {
    let provider = provider(&app, &name)?;
    let ApiUser(user_id) = user?;
    let st = status::load(&app.db, provider, user_id).await?;
    let body = StatusBody {
        connected: st.connected,
        email: st.email.clone(),
        status: st.status.clone(),
        granted_scopes: st.granted.short_names(),
        missing_scopes: st.missing.short_names(),
        needs_reauth: st.needs_reauth(),
        expires_at: st.expires_at,
        reauth_url: app
            .settings
            .public_url(&format!("/passport/{}/connect", provider.name))
            .to_string(),
    };
    let mut resp = Json(body).into_response();
    resp.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectBody {
    pub return_to: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ConnectAnswer {
    pub authorize_url: String,
}

/// `POST /api/passport/{provider}/connect` `{"return_to"?: URL}` →
/// `{"authorize_url": …}`, with the flow cookie set on this browser.
pub async fn connect(
    State(app): State<AppState>,
    ApiPath(name): ApiPath<String>,
    user: Result<ApiUser, ApiError>,
    ClientIp(ip): ClientIp,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let provider = provider(&app, &name)?;
    app.limiters.browser_ip(ip)?;
    let ApiUser(user_id) = user?;
    if !allowed_origin(&headers, &app) {
        return Err(ApiError::new(
            axum::http::StatusCode::FORBIDDEN,
            "forbidden",
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
    let started = flow::start(&app, provider, user_id, body.return_to.as_deref())
        .await
        .map_err(|e| match e {
            FlowError::ReturnTo(r) => ApiError::bad_request(format!(
                "{r}; allowed origins are PUBLIC_BASE_URL and ALLOWED_RETURN_ORIGINS"
            )),
            FlowError::Database(e) => ApiError::from(e),
            FlowError::Crypto(e) => ApiError::internal(&e),
            other => ApiError::internal(&other),
        })?;
    let cookie = flow_cookie(
        &app,
        provider.name,
        started.cookie_name,
        started.browser_nonce,
    );
    let mut resp = Json(ConnectAnswer {
        authorize_url: started.authorize_url.to_string(),
    })
    .into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie.to_string()) {
        resp.headers_mut().append(SET_COOKIE, v);
    }
    resp.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}
