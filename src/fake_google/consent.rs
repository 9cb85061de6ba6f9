//! The authorization endpoint: the request checked as Google checks it, the
//! consent screen (account picker, granular scope checkboxes) and the user's
//! decision, which redirects back with a code or `error=access_denied`.

use std::collections::BTreeSet;

use askama::Template;
use axum::extract::{RawForm, RawQuery, State};
use axum::http::header::{CONTENT_SECURITY_POLICY, CONTENT_TYPE, LOCATION};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use chrono::{Duration, Utc};
use url::Url;

use super::oauth::{first, pairs, space_separated, NON_GRANULAR};
use super::state::CodeGrant;
use super::{AuthorizeRefusal, FakeAccount, FakeGoogle};
use crate::passport::random_token;
use crate::scopes::{self, normalize};

/// Parameters of the authorization request the consent form carries along.
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

/// Google shows an error page (it does not redirect) when the client or the
/// redirect URI is wrong, or a policy blocks the app (`admin_policy_enforced`,
/// `org_internal`).
fn error_page(status: StatusCode, code: &str) -> Response {
    let n = status.as_u16();
    (
        status,
        Html(format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Error {n}: {code}</title></head>\
             <body><main><h1>Access blocked: authorization error</h1><p>Error {n}: {code}</p></main></body></html>"
        )),
    )
        .into_response()
}

/// The page Google shows instead of the consent screen when a policy blocks
/// the app, if that switch is on.
fn policy_page(fake: &FakeGoogle) -> Option<Response> {
    match fake.lock().behaviour.authorize_refusal? {
        AuthorizeRefusal::AdminPolicyEnforced => {
            Some(error_page(StatusCode::BAD_REQUEST, "admin_policy_enforced"))
        }
        AuthorizeRefusal::OrgInternal => Some(error_page(StatusCode::FORBIDDEN, "org_internal")),
        AuthorizeRefusal::AdminPolicyRedirect => None,
    }
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
        None => scopes::short_name(full).to_string(),
    }
}

/// `GET /o/oauth2/v2/auth`: the consent screen.
pub(super) async fn authorize(State(fake): State<FakeGoogle>, RawQuery(raw): RawQuery) -> Response {
    fake.lock().count("authorize");
    let req = match check_auth_request(&fake, pairs(raw.unwrap_or_default().as_bytes())) {
        Ok(r) => r,
        Err((status, code)) => return error_page(status, code),
    };
    if let Some(page) = policy_page(&fake) {
        return page;
    }
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
                CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'self'; form-action 'self' http: https:; frame-ancestors 'none'",
            )],
            Html(html),
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// The consent screen's stylesheet (`/fake.css`).
pub(super) async fn stylesheet() -> Response {
    (
        [(CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("../../static/passport.css"),
    )
        .into_response()
}

/// What the user chose on the consent screen.
struct Decision {
    allow: bool,
    account: Option<String>,
    /// The ticked scope checkboxes, normalised.
    ticked: Vec<String>,
}

impl Decision {
    /// `decision=allow|deny` (allow when absent), `account=EMAIL`,
    /// `granted=SCOPE` repeated.
    fn read(form: &[(String, String)]) -> Self {
        Self {
            allow: first(form, "decision").unwrap_or("allow") != "deny",
            account: first(form, "account").map(str::to_string),
            ticked: form
                .iter()
                .filter(|(k, _)| k == "granted")
                .filter_map(|(_, v)| normalize(v))
                .collect(),
        }
    }
}

/// `POST /o/oauth2/v2/auth`: the user's decision on the consent screen
/// (see [`Decision::read`], plus the original request's parameters). Tests
/// post this form directly.
pub(super) async fn consent(State(fake): State<FakeGoogle>, RawForm(form): RawForm) -> Response {
    fake.lock().count("consent");
    let form = pairs(&form);
    let decision = Decision::read(&form);
    let req = match check_auth_request(&fake, form) {
        Ok(r) => r,
        Err((status, code)) => return error_page(status, code),
    };
    let state = req.state.clone().unwrap_or_default();
    if let Some(page) = policy_page(&fake) {
        return page;
    }
    if decision.allow
        && fake.lock().behaviour.authorize_refusal == Some(AuthorizeRefusal::AdminPolicyRedirect)
    {
        return redirect_back(
            &req.redirect_uri,
            &[
                ("error", "access_denied"),
                ("error_subtype", "admin_policy_enforced"),
                ("state", &state),
            ],
        );
    }
    if !decision.allow {
        return redirect_back(
            &req.redirect_uri,
            &[("error", "access_denied"), ("state", &state)],
        );
    }
    let Some(account) = decision.account.as_deref().and_then(|e| fake.account(e)) else {
        return error_page(StatusCode::BAD_REQUEST, "unknown_account");
    };
    if decision.ticked.iter().any(|t| !req.scopes.contains(t)) {
        return error_page(StatusCode::BAD_REQUEST, "invalid_scope");
    }
    let granted = granted_now(decision.ticked, &req.scopes);
    let (code, scope) = issue_code(&fake, &req, &account.sub, granted);
    redirect_back(
        &req.redirect_uri,
        &[
            ("state", &state),
            ("code", &code),
            ("scope", &scope),
            ("authuser", "0"),
            ("prompt", "consent"),
        ],
    )
}

/// The ticked scopes plus the requested ones that have no checkbox.
fn granted_now(ticked: Vec<String>, requested: &BTreeSet<String>) -> BTreeSet<String> {
    let mut granted: BTreeSet<String> = ticked.into_iter().collect();
    granted.extend(
        requested
            .iter()
            .filter(|s| NON_GRANULAR.contains(&s.as_str()))
            .cloned(),
    );
    granted
}

/// Record what the account granted and issue a code (valid 10 minutes) for
/// it. Returns the code and the redirect's `scope`: the scopes granted now,
/// plus the earlier ones with `include_granted_scopes=true`.
fn issue_code(
    fake: &FakeGoogle,
    req: &AuthRequest,
    sub: &str,
    granted: BTreeSet<String>,
) -> (String, String) {
    let code = format!("4/fake-{}", random_token());
    let mut s = fake.lock();
    let mut code_scopes = granted.clone();
    if req.include_granted {
        code_scopes.extend(s.grants.get(sub).into_iter().flatten().cloned());
    }
    s.grants.entry(sub.to_string()).or_default().extend(granted);
    let scope = space_separated(&code_scopes);
    s.issued.push(code.clone());
    s.codes.insert(
        code.clone(),
        CodeGrant {
            client_id: fake.config.client_id.clone(),
            redirect_uri: req.redirect_uri.clone(),
            challenge: req.challenge.clone(),
            scopes: code_scopes,
            sub: sub.to_string(),
            offline: req.offline,
            force_consent: req.force_consent,
            expires_at: Utc::now() + Duration::minutes(10),
        },
    );
    (code, scope)
}

fn redirect_back(redirect_uri: &str, params: &[(&str, &str)]) -> Response {
    let Ok(mut url) = Url::parse(redirect_uri) else {
        return error_page(StatusCode::BAD_REQUEST, "redirect_uri_mismatch");
    };
    url.query_pairs_mut().extend_pairs(params);
    let mut resp = StatusCode::FOUND.into_response();
    if let Ok(v) = HeaderValue::from_str(url.as_str()) {
        resp.headers_mut().insert(LOCATION, v);
    }
    resp
}
