//! A faithful stand-in for Google's OAuth endpoints, for tests, the demo and
//! local development. It behaves like Google where this service depends on it:
//!
//! * the consent page lets the user pick an account and untick scopes
//!   (granular consent; `openid`/`email`/`profile` are always shared, as on
//!   Google's screen), or cancel (`error=access_denied`);
//! * the token endpoint checks client credentials, the exact redirect URI and
//!   the PKCE verifier; codes are single use; the answer's `scope` is what was
//!   granted (plus earlier grants with `include_granted_scopes=true`); a
//!   `refresh_token` comes only with `access_type=offline` and either
//!   `prompt=consent` or a first grant;
//! * refresh tokens work until revoked, then answer `invalid_grant`;
//! * `userinfo`, `tokeninfo` and `revoke` answer as Google's do.
//!
//! It never runs inside `serve`: only `fake-google`, `demo` and tests start it.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use askama::Template;
use axum::extract::{RawForm, RawQuery, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, LOCATION};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use serde_json::json;
use sha2::{Digest, Sha256};
use url::Url;

use crate::passport::random_token;
use crate::scopes::{self, normalize, GOOGLE_SCOPE_PREFIX};

/// Scopes Google shares without a checkbox on the granular consent screen.
const NON_GRANULAR: [&str; 3] = [
    "openid",
    "https://www.googleapis.com/auth/userinfo.email",
    "https://www.googleapis.com/auth/userinfo.profile",
];

/// Lifetime of issued access tokens, as Google's (`expires_in: 3599`).
pub const ACCESS_TOKEN_SECS: i64 = 3599;

/// A Google account the fake knows.
#[derive(Debug, Clone)]
pub struct FakeAccount {
    pub sub: String,
    pub email: String,
    pub name: String,
}

/// The fake's OAuth client registration and accounts.
#[derive(Debug, Clone)]
pub struct FakeConfig {
    pub client_id: String,
    pub client_secret: String,
    /// Registered redirect URIs; the token request must repeat the exact one.
    pub redirect_uris: Vec<String>,
    pub accounts: Vec<FakeAccount>,
}

impl FakeConfig {
    /// Two accounts, `jisoo@example.com` and `minho@example.com`.
    pub fn with_client(client_id: &str, client_secret: &str) -> Self {
        Self {
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            redirect_uris: Vec::new(),
            accounts: vec![
                FakeAccount {
                    sub: "110000000000000000001".into(),
                    email: "jisoo@example.com".into(),
                    name: "김지수".into(),
                },
                FakeAccount {
                    sub: "110000000000000000002".into(),
                    email: "minho@example.com".into(),
                    name: "이민호".into(),
                },
            ],
        }
    }
}

struct CodeGrant {
    client_id: String,
    redirect_uri: String,
    challenge: Option<(String, String)>,
    scopes: BTreeSet<String>,
    sub: String,
    offline: bool,
    force_consent: bool,
    expires_at: DateTime<Utc>,
}

struct AccessGrant {
    sub: String,
    scopes: BTreeSet<String>,
    expires_at: DateTime<Utc>,
    revoked: bool,
}

struct RefreshGrant {
    sub: String,
    scopes: BTreeSet<String>,
    revoked: bool,
}

#[derive(Default)]
struct FakeState {
    redirect_uris: Vec<String>,
    codes: HashMap<String, CodeGrant>,
    access: HashMap<String, AccessGrant>,
    refresh: HashMap<String, RefreshGrant>,
    /// What each account has granted this client so far.
    grants: HashMap<String, BTreeSet<String>>,
    calls: HashMap<&'static str, u64>,
    behaviour: Behaviour,
    /// Events created through the fake Calendar API.
    events: Vec<serde_json::Value>,
    /// Every secret issued, for leak tests.
    issued: Vec<String>,
}

/// Switches for answers Google gives only sometimes, and for outages.
#[derive(Debug, Clone, Copy, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Behaviour {
    /// Answer the code exchange without a `refresh_token` (Google does this
    /// when it decides not to issue a new one).
    pub omit_refresh_token: bool,
    /// Answer the code exchange without `scope` (allowed by RFC 6749 when the
    /// granted scope equals the requested one).
    pub omit_scope: bool,
    /// `/token` answers 503 (Google having a bad day).
    pub token_unavailable: bool,
    /// `/token` waits this long before answering (latency, timeouts).
    pub token_delay_ms: u64,
    /// `/revoke` answers 503.
    pub revoke_unavailable: bool,
    /// The Calendar API is not enabled in the Cloud project: every Calendar
    /// call answers 403 `accessNotConfigured`.
    pub calendar_api_disabled: bool,
}

/// A running (or runnable) fake Google. Cheap to clone; all clones share state.
#[derive(Clone)]
pub struct FakeGoogle {
    config: Arc<FakeConfig>,
    state: Arc<Mutex<FakeState>>,
}

impl FakeGoogle {
    pub fn new(config: FakeConfig) -> Self {
        let state = FakeState {
            redirect_uris: config.redirect_uris.clone(),
            ..FakeState::default()
        };
        Self {
            config: Arc::new(config),
            state: Arc::new(Mutex::new(state)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, FakeState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn config(&self) -> &FakeConfig {
        &self.config
    }

    /// Change how the fake answers from now on.
    pub fn set_behaviour(&self, behaviour: Behaviour) {
        self.lock().behaviour = behaviour;
    }

    /// The events created through the fake Calendar API so far.
    pub fn calendar_events(&self) -> Vec<serde_json::Value> {
        self.lock().events.clone()
    }

    /// Every code, access token and refresh token the fake ever issued (for
    /// tests that prove none of them leaks).
    pub fn issued_secrets(&self) -> Vec<String> {
        let s = self.lock();
        s.issued.clone()
    }

    /// Forget every code, token, grant, event, count and switch (the demo's
    /// reset); registered redirect URIs stay.
    pub fn reset(&self) {
        let mut s = self.lock();
        let redirect_uris = std::mem::take(&mut s.redirect_uris);
        *s = FakeState {
            redirect_uris,
            ..FakeState::default()
        };
    }

    /// Register one more redirect URI (tests learn their port after start).
    pub fn register_redirect_uri(&self, uri: &str) {
        let mut s = self.lock();
        if !s.redirect_uris.iter().any(|u| u == uri) {
            s.redirect_uris.push(uri.to_string());
        }
    }

    /// How many times an endpoint was called: `authorize`, `consent`, `token`,
    /// `token.authorization_code`, `token.refresh_token`, `userinfo`,
    /// `tokeninfo`, `revoke`.
    pub fn calls(&self, endpoint: &str) -> u64 {
        self.lock().calls.get(endpoint).copied().unwrap_or(0)
    }

    pub fn account(&self, email: &str) -> Option<&FakeAccount> {
        self.config
            .accounts
            .iter()
            .find(|a| a.email.eq_ignore_ascii_case(email))
    }

    /// Record an existing grant for an account (the demo's and tests' "Gmail
    /// only" passports) and issue a refresh and an access token for it.
    /// Returns `(access_token, refresh_token)`.
    pub fn seed_grant(&self, email: &str, scope_list: &[&str]) -> Option<(String, String)> {
        let sub = self.account(email)?.sub.clone();
        let scopes: BTreeSet<String> = scope_list.iter().filter_map(|s| normalize(s)).collect();
        let mut s = self.lock();
        s.grants
            .entry(sub.clone())
            .or_default()
            .extend(scopes.iter().cloned());
        let refresh = format!("1//fake-{}", random_token());
        let access = format!("ya29.fake-{}", random_token());
        s.issued.push(refresh.clone());
        s.issued.push(access.clone());
        s.refresh.insert(
            refresh.clone(),
            RefreshGrant {
                sub: sub.clone(),
                scopes: scopes.clone(),
                revoked: false,
            },
        );
        s.access.insert(
            access.clone(),
            AccessGrant {
                sub,
                scopes,
                expires_at: Utc::now() + Duration::seconds(ACCESS_TOKEN_SECS),
                revoked: false,
            },
        );
        Some((access, refresh))
    }

    /// Revoke everything an account granted (as if the user removed the app
    /// at myaccount.google.com).
    pub fn revoke_account(&self, email: &str) {
        let Some(sub) = self.account(email).map(|a| a.sub.clone()) else {
            return;
        };
        revoke_sub(&mut self.lock(), &sub);
    }

    /// The router serving Google's endpoints at Google's paths.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/o/oauth2/v2/auth", get(authorize).post(consent))
            .route("/token", axum::routing::post(token))
            .route("/v1/userinfo", get(userinfo))
            .route("/tokeninfo", get(tokeninfo).post(tokeninfo))
            .route("/revoke", axum::routing::post(revoke))
            .route("/fake.css", get(stylesheet))
            .route("/favicon.ico", get(crate::http::favicon))
            .route(
                "/calendar/v3/users/me/calendarList/primary",
                get(calendar_primary),
            )
            .route(
                "/calendar/v3/calendars/primary/events",
                axum::routing::post(calendar_insert_event),
            )
            .route("/__fake/calls", get(calls))
            .route("/__fake/behaviour", axum::routing::put(set_behaviour))
            .route(
                "/__fake/seed-grant",
                axum::routing::post(seed_grant_endpoint),
            )
            .with_state(self.clone())
    }
}

fn revoke_sub(s: &mut FakeState, sub: &str) {
    for r in s.refresh.values_mut().filter(|r| r.sub == sub) {
        r.revoked = true;
    }
    for a in s.access.values_mut().filter(|a| a.sub == sub) {
        a.revoked = true;
    }
    s.grants.remove(sub);
}

fn count(s: &mut FakeState, endpoint: &'static str) {
    *s.calls.entry(endpoint).or_default() += 1;
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        Json(json!({"error": error, "error_description": description})),
    )
        .into_response()
}

/// Google shows an error page (it does not redirect) when the client or the
/// redirect URI is wrong.
fn error_page(status: StatusCode, code: &str) -> Response {
    (
        status,
        Html(format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Error 400: {code}</title></head>\
             <body><main><h1>Access blocked: authorization error</h1><p>Error 400: {code}</p></main></body></html>"
        )),
    )
        .into_response()
}

fn pairs(raw: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(raw)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn first<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// The authorization request, checked as Google checks it.
struct AuthRequest {
    params: Vec<(String, String)>,
    redirect_uri: String,
    state: Option<String>,
    scopes: BTreeSet<String>,
    challenge: Option<(String, String)>,
    login_hint: Option<String>,
    offline: bool,
    force_consent: bool,
    include_granted: bool,
}

const AUTH_PARAMS: [&str; 11] = [
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "code_challenge",
    "code_challenge_method",
    "access_type",
    "prompt",
    "include_granted_scopes",
    "login_hint",
];

/// A refused authorization request: the status and Google's error code.
type AuthRefusal = (StatusCode, &'static str);

fn check_auth_request(
    fake: &FakeGoogle,
    params: Vec<(String, String)>,
) -> Result<AuthRequest, AuthRefusal> {
    let client_id = first(&params, "client_id").unwrap_or_default();
    if client_id != fake.config.client_id {
        return Err((StatusCode::UNAUTHORIZED, "invalid_client"));
    }
    let redirect_uri = first(&params, "redirect_uri")
        .unwrap_or_default()
        .to_string();
    {
        let s = fake.lock();
        let registered = s.redirect_uris.is_empty() || s.redirect_uris.contains(&redirect_uri);
        if redirect_uri.is_empty() || !registered || Url::parse(&redirect_uri).is_err() {
            return Err((StatusCode::BAD_REQUEST, "redirect_uri_mismatch"));
        }
    }
    if first(&params, "response_type") != Some("code") {
        return Err((StatusCode::BAD_REQUEST, "unsupported_response_type"));
    }
    let scopes: BTreeSet<String> = first(&params, "scope")
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(normalize)
        .collect();
    if scopes.is_empty() {
        return Err((StatusCode::BAD_REQUEST, "invalid_request"));
    }
    let challenge = match first(&params, "code_challenge") {
        Some(c) => {
            let method = first(&params, "code_challenge_method").unwrap_or("plain");
            if !matches!(method, "S256" | "plain") || c.len() < 43 || c.len() > 128 {
                return Err((StatusCode::BAD_REQUEST, "invalid_request"));
            }
            Some((c.to_string(), method.to_string()))
        }
        None => None,
    };
    Ok(AuthRequest {
        redirect_uri,
        state: first(&params, "state").map(str::to_string),
        scopes,
        challenge,
        login_hint: first(&params, "login_hint").map(str::to_string),
        offline: first(&params, "access_type") == Some("offline"),
        force_consent: first(&params, "prompt")
            .is_some_and(|p| p.split(' ').any(|x| x == "consent")),
        include_granted: first(&params, "include_granted_scopes") == Some("true"),
        params,
    })
}

struct ConsentScope {
    url: String,
    label: String,
}

#[derive(Template)]
#[template(path = "fake_consent.html")]
struct ConsentPage<'a> {
    client_id: &'a str,
    action: &'a str,
    hidden: Vec<(String, String)>,
    accounts: &'a [FakeAccount],
    selected_account: String,
    scopes: Vec<ConsentScope>,
}

fn scope_label(full: &str) -> String {
    match scopes::info(full) {
        Some(i) => format!("{} · {}", i.label_ko, i.label_en),
        None => full
            .strip_prefix(GOOGLE_SCOPE_PREFIX)
            .unwrap_or(full)
            .to_string(),
    }
}

/// `GET /o/oauth2/v2/auth`: the consent screen.
async fn authorize(State(fake): State<FakeGoogle>, RawQuery(raw): RawQuery) -> Response {
    count(&mut fake.lock(), "authorize");
    let req = match check_auth_request(&fake, pairs(raw.unwrap_or_default().as_bytes())) {
        Ok(r) => r,
        Err((status, code)) => return error_page(status, code),
    };
    let selected_account = req
        .login_hint
        .as_deref()
        .and_then(|h| fake.account(h))
        .unwrap_or(&fake.config.accounts[0])
        .email
        .clone();
    let page = ConsentPage {
        client_id: &fake.config.client_id,
        action: "/o/oauth2/v2/auth",
        hidden: req
            .params
            .iter()
            .filter(|(k, _)| AUTH_PARAMS.contains(&k.as_str()))
            .cloned()
            .collect(),
        accounts: &fake.config.accounts,
        selected_account,
        scopes: req
            .scopes
            .iter()
            .filter(|s| !NON_GRANULAR.contains(&s.as_str()))
            .map(|s| ConsentScope {
                url: s.clone(),
                label: scope_label(s),
            })
            .collect(),
    };
    match page.render() {
        Ok(html) => (
            [(
                axum::http::header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'self'; form-action 'self' http: https:; frame-ancestors 'none'",
            )],
            Html(html),
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

fn redirect_back(redirect_uri: &str, params: &[(&str, &str)]) -> Response {
    let Ok(mut url) = Url::parse(redirect_uri) else {
        return error_page(StatusCode::BAD_REQUEST, "redirect_uri_mismatch");
    };
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in params {
            q.append_pair(k, v);
        }
    }
    let mut resp = StatusCode::FOUND.into_response();
    if let Ok(v) = HeaderValue::from_str(url.as_str()) {
        resp.headers_mut().insert(LOCATION, v);
    }
    resp
}

/// `POST /o/oauth2/v2/auth`: the user's decision on the consent screen
/// (`decision=allow|deny`, `account=EMAIL`, `granted=SCOPE` repeated, plus
/// the original request's parameters). Tests post this form directly.
async fn consent(State(fake): State<FakeGoogle>, RawForm(form): RawForm) -> Response {
    count(&mut fake.lock(), "consent");
    let form = pairs(&form);
    let decision = first(&form, "decision").unwrap_or("allow").to_string();
    let account_email = first(&form, "account").map(str::to_string);
    let ticked: Vec<String> = form
        .iter()
        .filter(|(k, _)| k == "granted")
        .filter_map(|(_, v)| normalize(v))
        .collect();
    let req = match check_auth_request(&fake, form) {
        Ok(r) => r,
        Err((status, code)) => return error_page(status, code),
    };
    let state = req.state.clone().unwrap_or_default();
    if decision == "deny" {
        return redirect_back(
            &req.redirect_uri,
            &[("error", "access_denied"), ("state", &state)],
        );
    }
    let Some(account) = account_email
        .as_deref()
        .and_then(|e| fake.account(e))
        .cloned()
    else {
        return error_page(StatusCode::BAD_REQUEST, "unknown_account");
    };
    if let Some(t) = ticked.iter().find(|t| !req.scopes.contains(*t)) {
        let _ = t;
        return error_page(StatusCode::BAD_REQUEST, "invalid_scope");
    }
    let mut now_granted: BTreeSet<String> = ticked.into_iter().collect();
    now_granted.extend(
        req.scopes
            .iter()
            .filter(|s| NON_GRANULAR.contains(&s.as_str()))
            .cloned(),
    );

    let code = format!("4/fake-{}", random_token());
    let scope_param;
    {
        let mut s = fake.lock();
        let previous = s.grants.get(&account.sub).cloned().unwrap_or_default();
        let mut code_scopes = now_granted.clone();
        if req.include_granted {
            code_scopes.extend(previous.iter().cloned());
        }
        s.grants
            .entry(account.sub.clone())
            .or_default()
            .extend(now_granted);
        scope_param = code_scopes.iter().cloned().collect::<Vec<_>>().join(" ");
        s.issued.push(code.clone());
        s.codes.insert(
            code.clone(),
            CodeGrant {
                client_id: fake.config.client_id.clone(),
                redirect_uri: req.redirect_uri.clone(),
                challenge: req.challenge.clone(),
                scopes: code_scopes,
                sub: account.sub.clone(),
                offline: req.offline,
                force_consent: req.force_consent,
                expires_at: Utc::now() + Duration::minutes(10),
            },
        );
    }
    redirect_back(
        &req.redirect_uri,
        &[
            ("state", &state),
            ("code", &code),
            ("scope", &scope_param),
            ("authuser", "0"),
            ("prompt", "consent"),
        ],
    )
}

fn client_credentials(headers: &HeaderMap, form: &[(String, String)]) -> Option<(String, String)> {
    if let Some(basic) = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
    {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(basic.trim())
            .ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (id, secret) = text.split_once(':')?;
        let dec = |s: &str| {
            url::form_urlencoded::parse(format!("x={s}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        return Some((dec(id), dec(secret)));
    }
    Some((
        first(form, "client_id")?.to_string(),
        first(form, "client_secret")?.to_string(),
    ))
}

fn pkce_ok(challenge: &Option<(String, String)>, verifier: Option<&str>) -> bool {
    match (challenge, verifier) {
        // RFC 9700 §4.8.2: no challenge in the authorization request, then a
        // token request carrying a verifier is a downgrade attempt.
        (None, None) => true,
        (None, Some(_)) => false,
        (Some(_), None) => false,
        (Some((c, method)), Some(v)) => {
            if v.len() < 43 || v.len() > 128 {
                return false;
            }
            let computed = if method == "S256" {
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .encode(Sha256::digest(v.as_bytes()))
            } else {
                v.to_string()
            };
            computed == *c
        }
    }
}

fn issue_access(s: &mut FakeState, sub: &str, scopes: &BTreeSet<String>) -> String {
    let access = format!("ya29.fake-{}", random_token());
    s.issued.push(access.clone());
    s.access.insert(
        access.clone(),
        AccessGrant {
            sub: sub.to_string(),
            scopes: scopes.clone(),
            expires_at: Utc::now() + Duration::seconds(ACCESS_TOKEN_SECS),
            revoked: false,
        },
    );
    access
}

/// `POST /token`: authorization_code and refresh_token grants.
async fn token(
    State(fake): State<FakeGoogle>,
    headers: HeaderMap,
    RawForm(form): RawForm,
) -> Response {
    let form = pairs(&form);
    let behaviour = {
        let mut s = fake.lock();
        count(&mut s, "token");
        if first(&form, "grant_type") == Some("refresh_token") {
            count(&mut s, "token.refresh_token.attempt");
        }
        s.behaviour
    };
    if behaviour.token_delay_ms > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(behaviour.token_delay_ms)).await;
    }
    if behaviour.token_unavailable {
        return oauth_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "internal_failure",
            "Backend Error",
        );
    }
    let mut s = fake.lock();
    let Some((id, secret)) = client_credentials(&headers, &form) else {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "The OAuth client was not found.",
        );
    };
    if id != fake.config.client_id || secret != fake.config.client_secret {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "Unauthorized");
    }
    match first(&form, "grant_type") {
        Some("authorization_code") => {
            count(&mut s, "token.authorization_code");
            let code = first(&form, "code").unwrap_or_default();
            // Single use: the code is gone whatever happens next.
            let Some(grant) = s.codes.remove(code) else {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "Malformed auth code.",
                );
            };
            if grant.expires_at < Utc::now() || grant.client_id != id {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "Bad Request");
            }
            if first(&form, "redirect_uri") != Some(grant.redirect_uri.as_str()) {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "redirect_uri_mismatch",
                    "Bad Request",
                );
            }
            if !pkce_ok(&grant.challenge, first(&form, "code_verifier")) {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "Invalid code verifier.",
                );
            }
            let access = issue_access(&mut s, &grant.sub, &grant.scopes);
            let had_refresh = s.refresh.values().any(|r| r.sub == grant.sub && !r.revoked);
            let mut body = json!({
                "access_token": access,
                "expires_in": ACCESS_TOKEN_SECS,
                "scope": grant.scopes.iter().cloned().collect::<Vec<_>>().join(" "),
                "token_type": "Bearer",
            });
            if s.behaviour.omit_scope {
                if let Some(o) = body.as_object_mut() {
                    o.remove("scope");
                }
            }
            if grant.offline
                && (grant.force_consent || !had_refresh)
                && !s.behaviour.omit_refresh_token
            {
                let refresh = format!("1//fake-{}", random_token());
                s.issued.push(refresh.clone());
                s.refresh.insert(
                    refresh.clone(),
                    RefreshGrant {
                        sub: grant.sub.clone(),
                        scopes: grant.scopes.clone(),
                        revoked: false,
                    },
                );
                body["refresh_token"] = json!(refresh);
            }
            Json(body).into_response()
        }
        Some("refresh_token") => {
            count(&mut s, "token.refresh_token");
            let rt = first(&form, "refresh_token").unwrap_or_default();
            let Some((sub, scopes)) = s
                .refresh
                .get(rt)
                .filter(|r| !r.revoked)
                .map(|r| (r.sub.clone(), r.scopes.clone()))
            else {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "Token has been expired or revoked.",
                );
            };
            let access = issue_access(&mut s, &sub, &scopes);
            Json(json!({
                "access_token": access,
                "expires_in": ACCESS_TOKEN_SECS,
                "scope": scopes.iter().cloned().collect::<Vec<_>>().join(" "),
                "token_type": "Bearer",
            }))
            .into_response()
        }
        _ => oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "Invalid grant_type.",
        ),
    }
}

fn live_access<'a>(s: &'a FakeState, token: &str) -> Option<&'a AccessGrant> {
    s.access
        .get(token)
        .filter(|a| !a.revoked && a.expires_at > Utc::now())
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    headers
        .get(AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::to_string)
}

/// `GET /v1/userinfo` (OpenID Connect).
async fn userinfo(State(fake): State<FakeGoogle>, headers: HeaderMap) -> Response {
    let mut s = fake.lock();
    count(&mut s, "userinfo");
    let Some(grant) = bearer(&headers)
        .and_then(|t| live_access(&s, &t).map(|g| (g.sub.clone(), g.scopes.clone())))
    else {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_request",
            "Invalid Credentials",
        );
    };
    let (sub, scopes) = grant;
    let Some(account) = fake.config.accounts.iter().find(|a| a.sub == sub) else {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_request",
            "Invalid Credentials",
        );
    };
    let mut body = json!({ "sub": account.sub });
    if scopes.contains(NON_GRANULAR[1]) {
        body["email"] = json!(account.email);
        body["email_verified"] = json!(true);
    }
    if scopes.contains(NON_GRANULAR[2]) {
        body["name"] = json!(account.name);
    }
    Json(body).into_response()
}

/// `GET|POST /tokeninfo?access_token=…`.
async fn tokeninfo(
    State(fake): State<FakeGoogle>,
    RawQuery(q): RawQuery,
    RawForm(form): RawForm,
) -> Response {
    let mut s = fake.lock();
    count(&mut s, "tokeninfo");
    let mut p = pairs(q.unwrap_or_default().as_bytes());
    p.extend(pairs(&form));
    let token = first(&p, "access_token").unwrap_or_default();
    let Some(g) = live_access(&s, token) else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_token", "Invalid Value");
    };
    let account = fake.config.accounts.iter().find(|a| a.sub == g.sub);
    let remaining = (g.expires_at - Utc::now()).num_seconds().max(0);
    let mut body = json!({
        "azp": fake.config.client_id,
        "aud": fake.config.client_id,
        "sub": g.sub,
        "scope": g.scopes.iter().cloned().collect::<Vec<_>>().join(" "),
        "exp": g.expires_at.timestamp().to_string(),
        "expires_in": remaining.to_string(),
        "access_type": "offline",
    });
    if let Some(a) = account.filter(|_| g.scopes.contains(NON_GRANULAR[1])) {
        body["email"] = json!(a.email);
        body["email_verified"] = json!("true");
    }
    Json(body).into_response()
}

/// `POST /revoke` with `token=…`: revokes the whole grant of that account.
async fn revoke(
    State(fake): State<FakeGoogle>,
    RawQuery(q): RawQuery,
    RawForm(form): RawForm,
) -> Response {
    let mut s = fake.lock();
    count(&mut s, "revoke");
    if s.behaviour.revoke_unavailable {
        return oauth_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "internal_failure",
            "Backend Error",
        );
    }
    let mut p = pairs(q.unwrap_or_default().as_bytes());
    p.extend(pairs(&form));
    let token = first(&p, "token").unwrap_or_default();
    let sub = s
        .refresh
        .get(token)
        .filter(|r| !r.revoked)
        .map(|r| r.sub.clone())
        .or_else(|| {
            s.access
                .get(token)
                .filter(|a| !a.revoked)
                .map(|a| a.sub.clone())
        });
    match sub {
        Some(sub) => {
            revoke_sub(&mut s, &sub);
            (StatusCode::OK, Json(json!({}))).into_response()
        }
        None => oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_token",
            "Token expired or revoked",
        ),
    }
}

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
    count(&mut s, endpoint);
    let Some(grant) = bearer(headers).and_then(|t| live_access(&s, &t).map(|g| g.scopes.clone()))
    else {
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
        .any(|n| grant.contains(&format!("{GOOGLE_SCOPE_PREFIX}{n}")))
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
async fn calendar_primary(State(fake): State<FakeGoogle>, headers: HeaderMap) -> Response {
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
async fn calendar_insert_event(
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

/// `PUT /__fake/behaviour` with a [`Behaviour`] as JSON (for tests and
/// benchmarks that run the fake in another process).
async fn set_behaviour(State(fake): State<FakeGoogle>, Json(b): Json<Behaviour>) -> Response {
    fake.set_behaviour(b);
    Json(json!({"ok": true})).into_response()
}

#[derive(serde::Deserialize)]
struct SeedGrant {
    email: String,
    scopes: Vec<String>,
}

/// `POST /__fake/seed-grant` `{"email", "scopes"}` → `{"access_token",
/// "refresh_token"}`: a grant as if the account had consented (benchmarks and
/// scripts that run the fake in another process).
async fn seed_grant_endpoint(
    State(fake): State<FakeGoogle>,
    Json(req): Json<SeedGrant>,
) -> Response {
    let scopes: Vec<&str> = req.scopes.iter().map(String::as_str).collect();
    match fake.seed_grant(&req.email, &scopes) {
        Some((access, refresh)) => {
            Json(json!({"access_token": access, "refresh_token": refresh, "expires_in": ACCESS_TOKEN_SECS})).into_response()
        }
        None => oauth_error(StatusCode::BAD_REQUEST, "unknown_account", "no such account at the fake"),
    }
}

async fn calls(State(fake): State<FakeGoogle>) -> Response {
    let s = fake.lock();
    let map: serde_json::Map<String, serde_json::Value> = s
        .calls
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    Json(serde_json::Value::Object(map)).into_response()
}

async fn stylesheet() -> Response {
    (
        [(CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("../../static/passport.css"),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_s256_matches_rfc7636_example() {
        // RFC 7636, appendix B.
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let rfc_challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert!(pkce_ok(
            &Some((rfc_challenge.into(), "S256".into())),
            Some(verifier)
        ));
        let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(Sha256::digest(verifier.as_bytes()));
        assert!(pkce_ok(
            &Some((challenge.clone(), "S256".into())),
            Some(verifier)
        ));
        assert!(!pkce_ok(
            &Some((challenge.clone(), "S256".into())),
            Some(&"x".repeat(43))
        ));
        assert!(!pkce_ok(&Some((challenge, "S256".into())), None));
        assert!(pkce_ok(&None, None));
        assert!(!pkce_ok(&None, Some(verifier)), "PKCE downgrade refused");
    }
}
