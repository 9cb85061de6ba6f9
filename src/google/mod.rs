//! Everything that talks HTTP to Google: the OAuth endpoints through the
//! `oauth2` crate, and userinfo / tokeninfo / revoke with the shared reqwest
//! client. No other module calls Google.

use std::time::Duration;

use chrono::{DateTime, Utc};
use oauth2::basic::{BasicClient, BasicErrorResponseType};
use oauth2::{
    AsyncHttpClient, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet,
    EndpointSet, HttpClientError, HttpRequest, HttpResponse, PkceCodeChallenge, PkceCodeVerifier,
    RedirectUrl, RefreshToken, RequestTokenError, Scope, TokenResponse, TokenUrl,
};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

use crate::config::{GoogleEndpoints, Settings};
use crate::scopes::ScopeSet;

mod risc;

type OAuthClient =
    BasicClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointSet>;

/// The one HTTP client of the application: no redirects, timeouts on.
pub(crate) fn http_client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(5))
        .pool_idle_timeout(Duration::from_secs(60))
        .user_agent(concat!("auth-server/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("reqwest client builds")
}

/// Why a call to Google did not give us what we asked for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum GoogleError {
    /// Google answered with an OAuth error (`invalid_grant`, `invalid_client`, …).
    #[error("google refused: {code}")]
    Rejected {
        code: String,
        description: Option<String>,
        /// Google's `error_subtype` (`invalid_rapt`, …), when it sent one.
        subtype: Option<String>,
    },
    /// Google could not be reached, timed out, or answered 5xx.
    #[error("google unavailable: {0}")]
    Unavailable(String),
    /// Google limits our calls (429, or 403 `rateLimitExceeded` /
    /// `userRateLimitExceeded`), with its `Retry-After` when it sent one.
    #[error("google rate limit")]
    RateLimited { retry_after: Option<Duration> },
    /// Google answered something we could not understand.
    #[error("unexpected answer from google: {0}")]
    Protocol(String),
}

/// What a refusal of Google's means, from its `error` and `error_subtype`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// `invalid_grant`: revoked, expired, password change, token limit,
    /// Testing-mode expiry.
    InvalidGrant,
    /// `invalid_grant` with `error_subtype` `invalid_rapt`: a Workspace
    /// re-authentication policy.
    InvalidRapt,
    /// `admin_policy_enforced` (as `error` or `error_subtype`).
    AdminPolicyEnforced,
    /// `org_internal`: the app is limited to its organisation's users.
    OrgInternal,
    /// `access_denied`.
    AccessDenied,
    /// `invalid_scope`: a scope we ask for is not valid (ours to fix).
    InvalidScope,
    /// `invalid_client`, `unauthorized_client`, `deleted_client`: our client.
    ClientRefused,
    /// Any other refusal.
    Other,
}

impl Refusal {
    fn of(code: &str, subtype: Option<&str>, description: Option<&str>) -> Self {
        let named = |c: &str| {
            subtype == Some(c)
                || (code == "invalid_grant" && description.is_some_and(|d| d.contains(c)))
        };
        if named("invalid_rapt") {
            return Self::InvalidRapt;
        }
        if named("admin_policy_enforced") {
            return Self::AdminPolicyEnforced;
        }
        match code {
            "invalid_grant" => Self::InvalidGrant,
            "admin_policy_enforced" => Self::AdminPolicyEnforced,
            "org_internal" => Self::OrgInternal,
            "access_denied" => Self::AccessDenied,
            "invalid_scope" => Self::InvalidScope,
            "invalid_client" | "unauthorized_client" | "deleted_client" => Self::ClientRefused,
            _ => Self::Other,
        }
    }
}

impl GoogleError {
    /// What Google's refusal means; `None` when Google did not refuse.
    pub(crate) fn refusal(&self) -> Option<Refusal> {
        match self {
            Self::Rejected {
                code,
                description,
                subtype,
            } => Some(Refusal::of(
                code,
                subtype.as_deref(),
                description.as_deref(),
            )),
            _ => None,
        }
    }

    /// Google says the token is not (or no longer) valid.
    pub(crate) fn is_token_invalid(&self) -> bool {
        matches!(self, Self::Rejected { code, .. }
            if code == "invalid_token" || code == "invalid_grant")
    }

    /// Google did not answer usefully (down, slow, 5xx, garbled): what the
    /// circuit breaker counts. A rate limit is not an outage: Google answers,
    /// and says when to come back.
    pub(crate) fn is_outage(&self) -> bool {
        matches!(self, Self::Unavailable(_) | Self::Protocol(_))
    }

    /// How long Google asked us to wait (its `Retry-After` on a rate limit).
    pub(crate) fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after } => *retry_after,
            _ => None,
        }
    }

    /// Google's description of a refusal, if it gave one.
    pub(crate) fn description(&self) -> Option<&str> {
        match self {
            Self::Rejected { description, .. } => description.as_deref(),
            _ => None,
        }
    }
}

/// The tokens of a successful token-endpoint answer. Secrets stay secret.
pub(crate) struct Tokens {
    pub access_token: SecretString,
    pub refresh_token: Option<SecretString>,
    pub token_type: String,
    pub expires_at: Option<DateTime<Utc>>,
    /// The `scope` field, when Google sent one.
    pub scopes: Option<ScopeSet>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("access_token", &"[redacted]")
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "[redacted]"),
            )
            .field("token_type", &self.token_type)
            .field("expires_at", &self.expires_at)
            .field("scopes", &self.scopes)
            .finish()
    }
}

/// The account behind an access token (OpenID Connect userinfo).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct UserInfo {
    pub sub: String,
    pub email: Option<String>,
}

/// What Google's tokeninfo says about an access token.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct TokenInfo {
    pub aud: Option<String>,
    pub scope: Option<String>,
}

/// What the Calendar API says to a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CalendarProbe {
    /// The primary calendar answered.
    Works,
    /// 403 `insufficientPermissions`: the token lacks a Calendar scope.
    ScopeMissing,
    /// 403 `accessNotConfigured`: the Calendar API is not enabled in the
    /// Cloud project of our OAuth client.
    ApiDisabled,
    /// 401: the access token is not valid.
    Unauthorized,
    /// Anything else, with the HTTP status and Google's reason.
    Other(String),
}

/// A prepared authorization request: the URL to send the browser to.
pub(crate) struct AuthorizeRequest {
    pub url: Url,
}

/// The Google client: OAuth endpoints and the shared HTTP client.
pub(crate) struct Google {
    http: reqwest::Client,
    endpoints: GoogleEndpoints,
    client_id: String,
    client_secret: SecretString,
    /// At most `GOOGLE_MAX_CONCURRENT_CALLS` calls at once; the others wait.
    turns: tokio::sync::Semaphore,
}

/// Wraps the shared reqwest client so that 5xx and 429 answers of the token
/// endpoint become "unavailable" errors instead of unparseable bodies.
struct StatusAware(reqwest::Client);

#[derive(Debug, thiserror::Error)]
enum TransportError {
    #[error("google answered HTTP {0}")]
    Status(u16),
    #[error("google rate limit")]
    RateLimited(Option<Duration>),
    /// An OAuth refusal, read here rather than by the `oauth2` crate, which
    /// drops Google's `error_subtype`.
    #[error("google refused: {code}")]
    Refused {
        code: String,
        description: Option<String>,
        subtype: Option<String>,
    },
    #[error("{0}")]
    Http(HttpClientError<reqwest::Error>),
}

impl<'c> AsyncHttpClient<'c> for StatusAware {
    type Error = TransportError;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<HttpResponse, Self::Error>> + Send + Sync + 'c>,
    >;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(async move {
            let resp = self.0.call(request).await.map_err(TransportError::Http)?;
            let status = resp.status().as_u16();
            if status == 429 {
                return Err(TransportError::RateLimited(retry_after(resp.headers())));
            }
            if status >= 500 {
                return Err(TransportError::Status(status));
            }
            if (400..500).contains(&status) {
                if let Some(refusal) = read_refusal(resp.body()) {
                    return Err(refusal);
                }
            }
            Ok(resp)
        })
    }
}

/// Google's `Retry-After` in seconds (it does not always send one).
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let secs: u64 = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(secs.min(3600)))
}

/// The reasons of a Google API error body (`{"error": {"errors": [{"reason"}],
/// "status"}}`), as rate limits are told on 403.
fn api_reasons(error: &serde_json::Value) -> Vec<&str> {
    let mut reasons: Vec<&str> = error["errors"]
        .as_array()
        .map(|a| a.iter().filter_map(|e| e["reason"].as_str()).collect())
        .unwrap_or_default();
    reasons.extend(error["status"].as_str());
    reasons
}

fn is_rate_limit(reason: &str) -> bool {
    matches!(
        reason,
        "rateLimitExceeded" | "userRateLimitExceeded" | "RESOURCE_EXHAUSTED"
    )
}

/// A 4xx token-endpoint body as a refusal: an OAuth error (with Google's
/// `error_subtype`) or a rate limit told with 403. `None` for a body that
/// is neither (the `oauth2` crate reads it then).
fn read_refusal(body: &[u8]) -> Option<TransportError> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let error = v.get("error")?;
    if let Some(code) = error.as_str() {
        let text = |k: &str| v.get(k).and_then(|d| d.as_str()).map(str::to_string);
        return Some(TransportError::Refused {
            code: code.to_string(),
            description: text("error_description"),
            subtype: text("error_subtype"),
        });
    }
    api_reasons(error)
        .into_iter()
        .any(is_rate_limit)
        .then_some(TransportError::RateLimited(None))
}

fn describe_transport(e: &TransportError) -> String {
    match e {
        TransportError::Status(s) => format!("HTTP {s}"),
        TransportError::RateLimited(_) => "rate limited".into(),
        TransportError::Refused { code, .. } => format!("refused: {code}"),
        TransportError::Http(HttpClientError::Reqwest(r)) if r.is_timeout() => "timeout".into(),
        TransportError::Http(HttpClientError::Reqwest(r)) if r.is_connect() => {
            "connection failed".into()
        }
        TransportError::Http(_) => "request failed".into(),
    }
}

type TokenError =
    RequestTokenError<TransportError, oauth2::StandardErrorResponse<BasicErrorResponseType>>;

fn map_token_error(e: TokenError) -> GoogleError {
    match e {
        RequestTokenError::ServerResponse(r) => GoogleError::Rejected {
            code: r.error().as_ref().to_string(),
            description: r.error_description().cloned(),
            subtype: None,
        },
        RequestTokenError::Request(TransportError::Refused {
            code,
            description,
            subtype,
        }) => GoogleError::Rejected {
            code,
            description,
            subtype,
        },
        RequestTokenError::Request(TransportError::RateLimited(retry_after)) => {
            GoogleError::RateLimited { retry_after }
        }
        RequestTokenError::Request(t) => GoogleError::Unavailable(describe_transport(&t)),
        // Never include the body: it may hold tokens.
        RequestTokenError::Parse(_, _) => {
            GoogleError::Protocol("token response is not valid JSON".into())
        }
        RequestTokenError::Other(_) => {
            GoogleError::Protocol("token response was not understood".into())
        }
    }
}

fn describe_reqwest(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timeout".into()
    } else if e.is_connect() {
        "connection failed".into()
    } else {
        "request failed".into()
    }
}

#[derive(Deserialize)]
struct GoogleErrorBody {
    error: Option<serde_json::Value>,
    error_description: Option<String>,
}

/// Turn a non-2xx answer from a Google API into a [`GoogleError`].
async fn error_from_response(resp: reqwest::Response) -> GoogleError {
    let status = resp.status();
    if status.as_u16() == 429 {
        return GoogleError::RateLimited {
            retry_after: retry_after(resp.headers()),
        };
    }
    if status.is_server_error() {
        return GoogleError::Unavailable(format!("HTTP {}", status.as_u16()));
    }
    let body: Option<GoogleErrorBody> = resp.json().await.ok();
    let (code, description) = match body {
        Some(GoogleErrorBody {
            error: Some(serde_json::Value::String(c)),
            error_description,
        }) => (c, error_description),
        Some(GoogleErrorBody {
            error: Some(obj), ..
        }) => (
            obj.get("status")
                .and_then(|s| s.as_str())
                .unwrap_or("error")
                .to_string(),
            obj.get("message")
                .and_then(|m| m.as_str())
                .map(str::to_string),
        ),
        _ => (format!("http_{}", status.as_u16()), None),
    };
    GoogleError::Rejected {
        code,
        description,
        subtype: None,
    }
}

impl Google {
    pub(crate) fn new(settings: &Settings, http: reqwest::Client) -> Self {
        Self {
            http,
            endpoints: settings.google.clone(),
            client_id: settings.google_client_id.clone(),
            client_secret: settings.google_client_secret.clone(),
            turns: tokio::sync::Semaphore::new(settings.google_calls.max_concurrent),
        }
    }

    pub(crate) fn client_id(&self) -> &str {
        &self.client_id
    }

    /// Wait for a free slot: a slow Google cannot tie up more than
    /// `GOOGLE_MAX_CONCURRENT_CALLS` of this instance's tasks at once.
    async fn turn(&self) -> tokio::sync::SemaphorePermit<'_> {
        self.turns
            .acquire()
            .await
            .expect("the semaphore is never closed")
    }

    fn oauth(&self, redirect_uri: &Url) -> OAuthClient {
        BasicClient::new(ClientId::new(self.client_id.clone()))
            .set_client_secret(ClientSecret::new(
                self.client_secret.expose_secret().to_string(),
            ))
            .set_auth_uri(AuthUrl::from_url(self.endpoints.auth_url.clone()))
            .set_token_uri(TokenUrl::from_url(self.endpoints.token_url.clone()))
            .set_redirect_uri(RedirectUrl::from_url(redirect_uri.clone()))
    }

    /// Build the consent URL: code flow, PKCE S256, offline access, forced
    /// consent, incremental authorization and an optional login hint.
    pub(crate) fn authorize_url(
        &self,
        redirect_uri: &Url,
        scopes: &ScopeSet,
        state: &str,
        pkce_verifier: &str,
        login_hint: Option<&str>,
    ) -> AuthorizeRequest {
        let verifier = PkceCodeVerifier::new(pkce_verifier.to_string());
        let challenge = PkceCodeChallenge::from_code_verifier_sha256(&verifier);
        let state = state.to_string();
        let client = self.oauth(redirect_uri);
        let mut req = client
            .authorize_url(move || CsrfToken::new(state))
            .add_scopes(scopes.iter().map(|s| Scope::new(s.to_string())))
            .set_pkce_challenge(challenge)
            .add_extra_param("access_type", "offline")
            .add_extra_param("prompt", "consent")
            .add_extra_param("include_granted_scopes", "true");
        if let Some(hint) = login_hint {
            req = req.add_extra_param("login_hint", hint.to_string());
        }
        let (url, _) = req.url();
        AuthorizeRequest { url }
    }

    /// Exchange an authorization code (with its PKCE verifier) for tokens.
    pub(crate) async fn exchange_code(
        &self,
        redirect_uri: &Url,
        code: &str,
        pkce_verifier: &str,
    ) -> Result<Tokens, GoogleError> {
        let _turn = self.turn().await;
        let client = self.oauth(redirect_uri);
        let resp = client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.to_string()))
            .request_async(&StatusAware(self.http.clone()))
            .await
            .map_err(map_token_error)?;
        Ok(tokens_from(&resp))
    }

    /// Use a refresh token. Google does not send a new refresh token here.
    pub(crate) async fn refresh(
        &self,
        redirect_uri: &Url,
        refresh_token: &str,
    ) -> Result<Tokens, GoogleError> {
        let _turn = self.turn().await;
        let client = self.oauth(redirect_uri);
        let rt = RefreshToken::new(refresh_token.to_string());
        let resp = client
            .exchange_refresh_token(&rt)
            .request_async(&StatusAware(self.http.clone()))
            .await
            .map_err(map_token_error)?;
        Ok(tokens_from(&resp))
    }

    /// Who the access token belongs to.
    pub(crate) async fn userinfo(&self, access_token: &str) -> Result<UserInfo, GoogleError> {
        let _turn = self.turn().await;
        let resp = self
            .http
            .get(self.endpoints.userinfo_url.clone())
            .bearer_auth(access_token)
            .send()
            .await
            .map_err(|e| GoogleError::Unavailable(describe_reqwest(&e)))?;
        if !resp.status().is_success() {
            return Err(error_from_response(resp).await);
        }
        resp.json::<UserInfo>()
            .await
            .map_err(|_| GoogleError::Protocol("userinfo answer was not understood".into()))
    }

    /// What Google says about an access token (scopes, audience, expiry).
    pub(crate) async fn tokeninfo(&self, access_token: &str) -> Result<TokenInfo, GoogleError> {
        let _turn = self.turn().await;
        let resp = self
            .http
            .post(self.endpoints.tokeninfo_url.clone())
            .form(&[("access_token", access_token)])
            .send()
            .await
            .map_err(|e| GoogleError::Unavailable(describe_reqwest(&e)))?;
        if !resp.status().is_success() {
            return Err(error_from_response(resp).await);
        }
        resp.json::<TokenInfo>()
            .await
            .map_err(|_| GoogleError::Protocol("tokeninfo answer was not understood".into()))
    }

    /// Ask the Calendar API for the primary calendar with this token.
    pub(crate) async fn calendar_probe(
        &self,
        access_token: &str,
    ) -> Result<CalendarProbe, GoogleError> {
        let _turn = self.turn().await;
        let mut url = self.endpoints.api_base_url.clone();
        url.set_path(&format!(
            "{}/calendar/v3/users/me/calendarList/primary",
            url.path().trim_end_matches('/')
        ));
        let resp = self
            .http
            .get(url)
            .bearer_auth(access_token)
            .send()
            .await
            .map_err(|e| GoogleError::Unavailable(describe_reqwest(&e)))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(CalendarProbe::Works);
        }
        if status.is_server_error() {
            return Err(GoogleError::Unavailable(format!(
                "HTTP {}",
                status.as_u16()
            )));
        }
        if status.as_u16() == 401 {
            return Ok(CalendarProbe::Unauthorized);
        }
        let body: serde_json::Value = resp.json().await.unwrap_or_default();
        let reasons: Vec<String> = body["error"]["errors"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e["reason"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let has = |r: &str| reasons.iter().any(|x| x == r);
        Ok(
            if has("insufficientPermissions") || has("ACCESS_TOKEN_SCOPE_INSUFFICIENT") {
                CalendarProbe::ScopeMissing
            } else if has("accessNotConfigured") || has("SERVICE_DISABLED") {
                CalendarProbe::ApiDisabled
            } else {
                CalendarProbe::Other(format!("HTTP {} {}", status.as_u16(), reasons.join(",")))
            },
        )
    }

    /// Revoke a token (and with it the whole grant) at Google.
    pub(crate) async fn revoke(&self, token: &str) -> Result<(), GoogleError> {
        let _turn = self.turn().await;
        let resp = self
            .http
            .post(self.endpoints.revoke_url.clone())
            .form(&[("token", token)])
            .send()
            .await
            .map_err(|e| GoogleError::Unavailable(describe_reqwest(&e)))?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(error_from_response(resp).await)
        }
    }
}

fn tokens_from(resp: &oauth2::basic::BasicTokenResponse) -> Tokens {
    let expires_at = resp
        .expires_in()
        .and_then(|d| chrono::Duration::from_std(d).ok())
        .map(|d| Utc::now() + d);
    let scopes = resp.scopes().map(|v| {
        ScopeSet::from_google(&v.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" "))
    });
    Tokens {
        access_token: SecretString::from(resp.access_token().secret().clone()),
        refresh_token: resp
            .refresh_token()
            .map(|r| SecretString::from(r.secret().clone())),
        token_type: "Bearer".to_string(),
        expires_at,
        scopes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(body: serde_json::Value) -> Option<Refusal> {
        match read_refusal(body.to_string().as_bytes())? {
            TransportError::Refused {
                code,
                description,
                subtype,
            } => Some(Refusal::of(
                &code,
                subtype.as_deref(),
                description.as_deref(),
            )),
            TransportError::RateLimited(_) => None,
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn each_refusal_is_read_from_googles_error_and_subtype() {
        use serde_json::json;
        let cases = [
            (
                json!({"error": "invalid_grant", "error_description": "Token has been expired or revoked."}),
                Refusal::InvalidGrant,
            ),
            (
                json!({"error": "invalid_grant", "error_description": "reauth related error (invalid_rapt)", "error_subtype": "invalid_rapt"}),
                Refusal::InvalidRapt,
            ),
            // Without the subtype, Google's description still names it.
            (
                json!({"error": "invalid_grant", "error_description": "reauth related error (invalid_rapt)"}),
                Refusal::InvalidRapt,
            ),
            (
                json!({"error": "admin_policy_enforced"}),
                Refusal::AdminPolicyEnforced,
            ),
            (
                json!({"error": "access_denied", "error_subtype": "admin_policy_enforced"}),
                Refusal::AdminPolicyEnforced,
            ),
            (json!({"error": "org_internal"}), Refusal::OrgInternal),
            (json!({"error": "access_denied"}), Refusal::AccessDenied),
            (json!({"error": "invalid_scope"}), Refusal::InvalidScope),
            (json!({"error": "invalid_client"}), Refusal::ClientRefused),
            (
                json!({"error": "unauthorized_client"}),
                Refusal::ClientRefused,
            ),
            (json!({"error": "deleted_client"}), Refusal::ClientRefused),
            (json!({"error": "invalid_request"}), Refusal::Other),
            // The description is read for the subtype only on invalid_grant.
            (
                json!({"error": "invalid_scope", "error_description": "invalid_rapt"}),
                Refusal::InvalidScope,
            ),
        ];
        for (body, want) in cases {
            assert_eq!(refused(body.clone()), Some(want), "{body}");
        }
    }

    #[test]
    fn rate_limits_told_with_403_are_rate_limits() {
        use serde_json::json;
        for reason in ["rateLimitExceeded", "userRateLimitExceeded"] {
            let body = json!({"error": {"code": 403, "errors": [{"reason": reason}], "status": "PERMISSION_DENIED"}});
            assert!(matches!(
                read_refusal(body.to_string().as_bytes()),
                Some(TransportError::RateLimited(None))
            ));
        }
        let other = json!({"error": {"code": 403, "errors": [{"reason": "forbidden"}], "status": "PERMISSION_DENIED"}});
        assert!(read_refusal(other.to_string().as_bytes()).is_none());
        assert!(read_refusal(b"<html>not json</html>").is_none());
    }

    #[test]
    fn retry_after_is_read_in_seconds_and_capped() {
        let mut h = reqwest::header::HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert(reqwest::header::RETRY_AFTER, "30".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(30)));
        h.insert(reqwest::header::RETRY_AFTER, "999999".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(3600)));
        h.insert(
            reqwest::header::RETRY_AFTER,
            "Wed, 21 Oct 2026 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&h), None);
    }
}
