//! Google's OAuth endpoints other than the consent screen: the token
//! endpoint, `userinfo`, `tokeninfo` and `revoke`; and the OAuth helpers the
//! other handlers share.

use std::collections::BTreeSet;

use axum::extract::{RawForm, RawQuery, State};
use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use chrono::Utc;
use oauth2::{PkceCodeChallenge, PkceCodeVerifier};
use serde_json::json;

use super::state::{AccessGrant, CodeGrant, FakeState};
use super::{Behaviour, FakeConfig, FakeGoogle, RefreshRefusal, ACCESS_TOKEN_SECS};

/// Scopes Google shares without a checkbox on the granular consent screen.
pub(super) const NON_GRANULAR: [&str; 3] = [
    "openid",
    "https://www.googleapis.com/auth/userinfo.email",
    "https://www.googleapis.com/auth/userinfo.profile",
];

/// Google's OAuth error body, `{"error", "error_description"}`.
pub(super) fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        Json(json!({"error": error, "error_description": description})),
    )
        .into_response()
}

pub(super) fn pairs(raw: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(raw)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// The query's parameters followed by the form's.
fn query_and_form(query: Option<String>, form: &[u8]) -> Vec<(String, String)> {
    let mut p = pairs(query.unwrap_or_default().as_bytes());
    p.extend(pairs(form));
    p
}

pub(super) fn first<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

pub(super) fn space_separated(scopes: &BTreeSet<String>) -> String {
    scopes.iter().cloned().collect::<Vec<_>>().join(" ")
}

/// The live grant of the request's `Authorization: Bearer` token.
pub(super) fn bearer_grant<'a>(s: &'a FakeState, headers: &HeaderMap) -> Option<&'a AccessGrant> {
    let token = headers
        .get(AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")?;
    s.live_access(token)
}

// ---------------------------------------------------------------------------
// Token endpoint

/// A refused token request: the status, Google's error code and its
/// description.
struct TokenRefusal(StatusCode, &'static str, &'static str);

impl IntoResponse for TokenRefusal {
    fn into_response(self) -> Response {
        oauth_error(self.0, self.1, self.2)
    }
}

/// `POST /token`: authorization_code and refresh_token grants.
pub(super) async fn token(
    State(fake): State<FakeGoogle>,
    headers: HeaderMap,
    RawForm(form): RawForm,
) -> Response {
    let form = pairs(&form);
    let behaviour = count_token_call(&fake, &form);
    let refresh = first(&form, "grant_type") == Some("refresh_token");
    let outage = token_outage(behaviour, refresh).await;
    fake.lock().token_in_flight -= 1;
    if let Some(outage) = outage {
        return outage;
    }
    let mut s = fake.lock();
    let client_id = match authenticate_client(&fake.config, &headers, &form) {
        Ok(id) => id,
        Err(refusal) => return refusal.into_response(),
    };
    match first(&form, "grant_type") {
        Some("authorization_code") => exchange_code(&mut s, &form, &client_id),
        Some("refresh_token") if behaviour.refresh_refusal.is_some() => {
            s.count("token.refresh_token.refused");
            behaviour.refresh_refusal.map(refusal).unwrap_or_default()
        }
        Some("refresh_token") => refresh_access(&mut s, &form),
        _ => oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "Invalid grant_type.",
        ),
    }
}

/// Google's answer to a refused refresh.
fn refusal(r: RefreshRefusal) -> Response {
    use RefreshRefusal as R;
    let bad = StatusCode::BAD_REQUEST;
    match r {
        R::InvalidGrant => oauth_error(bad, "invalid_grant", "Token has been expired or revoked."),
        R::InvalidRapt => (
            bad,
            Json(json!({
                "error": "invalid_grant",
                "error_description": "reauth related error (invalid_rapt)",
                "error_uri": "https://support.google.com/a/answer/9368756",
                "error_subtype": "invalid_rapt",
            })),
        )
            .into_response(),
        R::AdminPolicyEnforced => oauth_error(
            bad,
            "admin_policy_enforced",
            "Access to this account's data is restricted by the policies of its organization.",
        ),
        R::OrgInternal => oauth_error(
            bad,
            "org_internal",
            "This client is restricted to users within its organization.",
        ),
        R::AccessDenied => oauth_error(bad, "access_denied", "Access denied."),
        R::InvalidScope => oauth_error(bad, "invalid_scope", "Some requested scopes were invalid."),
        R::UnauthorizedClient => oauth_error(bad, "unauthorized_client", "Unauthorized"),
        R::DeletedClient => oauth_error(
            StatusCode::UNAUTHORIZED,
            "deleted_client",
            "The OAuth client was deleted.",
        ),
        R::RateLimited => (
            StatusCode::TOO_MANY_REQUESTS,
            [(axum::http::header::RETRY_AFTER, "30")],
            Json(json!({"error": {
                "code": 429,
                "message": "Resource has been exhausted (e.g. check quota).",
                "status": "RESOURCE_EXHAUSTED",
            }})),
        )
            .into_response(),
        R::RateLimitExceeded => api_rate_limit("rateLimitExceeded", "Rate Limit Exceeded"),
        R::UserRateLimitExceeded => {
            api_rate_limit("userRateLimitExceeded", "User Rate Limit Exceeded")
        }
    }
}

/// A Google API rate-limit refusal, told with 403.
fn api_rate_limit(reason: &str, message: &str) -> Response {
    (
        StatusCode::FORBIDDEN,
        Json(json!({"error": {
            "code": 403,
            "message": message,
            "errors": [{"message": message, "domain": "usageLimits", "reason": reason}],
            "status": "PERMISSION_DENIED",
        }})),
    )
        .into_response()
}

/// Count a `/token` call (and a refresh attempt, before any check) and read
/// the switches in force.
fn count_token_call(fake: &FakeGoogle, form: &[(String, String)]) -> Behaviour {
    let mut s = fake.lock();
    s.count("token");
    if first(form, "grant_type") == Some("refresh_token") {
        s.count("token.refresh_token.attempt");
    }
    s.token_in_flight += 1;
    let in_flight = s.token_in_flight;
    let max = s.calls.entry("token.max_in_flight").or_default();
    *max = (*max).max(in_flight);
    s.behaviour
}

/// Wait the configured latency, then answer 503 if `/token` is switched off
/// (for this grant type).
async fn token_outage(behaviour: Behaviour, refresh: bool) -> Option<Response> {
    if behaviour.token_delay_ms > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(behaviour.token_delay_ms)).await;
    }
    if behaviour.client_refused {
        return Some(oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "The OAuth client was deleted.",
        ));
    }
    let off = behaviour.token_unavailable || (refresh && behaviour.refresh_unavailable);
    off.then(|| {
        oauth_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "internal_failure",
            "Backend Error",
        )
    })
}

/// Wait `ms` milliseconds (a slow endpoint), without holding the state lock.
async fn latency(ms: u64) {
    if ms > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    }
}

/// The client id, when the request carries the registered client's
/// credentials (HTTP Basic or form parameters).
fn authenticate_client(
    config: &FakeConfig,
    headers: &HeaderMap,
    form: &[(String, String)],
) -> Result<String, TokenRefusal> {
    let Some((id, secret)) = client_credentials(headers, form) else {
        return Err(TokenRefusal(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "The OAuth client was not found.",
        ));
    };
    if id != config.client_id || secret != config.client_secret {
        return Err(TokenRefusal(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Unauthorized",
        ));
    }
    Ok(id)
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

/// `grant_type=authorization_code`.
fn exchange_code(s: &mut FakeState, form: &[(String, String)], client_id: &str) -> Response {
    s.count("token.authorization_code");
    match redeem_code(s, form, client_id) {
        Ok(grant) => code_tokens(s, &grant),
        Err(refusal) => refusal.into_response(),
    }
}

/// Take the code out of the state (single use: it is gone whatever happens
/// next) and check the token request against it.
fn redeem_code(
    s: &mut FakeState,
    form: &[(String, String)],
    client_id: &str,
) -> Result<CodeGrant, TokenRefusal> {
    let code = first(form, "code").unwrap_or_default();
    let Some(grant) = s.codes.remove(code) else {
        return Err(TokenRefusal(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "Malformed auth code.",
        ));
    };
    if grant.expires_at < Utc::now() || grant.client_id != client_id {
        return Err(TokenRefusal(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "Bad Request",
        ));
    }
    if first(form, "redirect_uri") != Some(grant.redirect_uri.as_str()) {
        return Err(TokenRefusal(
            StatusCode::BAD_REQUEST,
            "redirect_uri_mismatch",
            "Bad Request",
        ));
    }
    if !pkce_ok(&grant.challenge, first(form, "code_verifier")) {
        return Err(TokenRefusal(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "Invalid code verifier.",
        ));
    }
    Ok(grant)
}

fn pkce_ok(challenge: &Option<(String, String)>, verifier: Option<&str>) -> bool {
    match (challenge, verifier) {
        // RFC 9700 §4.8.2: no challenge in the authorization request, then a
        // token request carrying a verifier is a downgrade attempt.
        (None, None) => true,
        (None, Some(_)) => false,
        (Some(_), None) => false,
        (Some((c, method)), Some(v)) => {
            // Checked first: `from_code_verifier_sha256` panics outside it.
            if v.len() < 43 || v.len() > 128 {
                return false;
            }
            if method == "S256" {
                let verifier = PkceCodeVerifier::new(v.to_string());
                PkceCodeChallenge::from_code_verifier_sha256(&verifier).as_str() == c.as_str()
            } else {
                v == c.as_str()
            }
        }
    }
}

/// The answer to a redeemed code. A refresh token comes only with offline
/// access, and then only with `prompt=consent` or when the account holds
/// none yet.
fn code_tokens(s: &mut FakeState, grant: &CodeGrant) -> Response {
    let access = s.issue_access(&grant.sub, &grant.scopes);
    let had_refresh = s.refresh.values().any(|r| r.sub == grant.sub && !r.revoked);
    let mut body = token_body(&access, &grant.scopes);
    if s.behaviour.omit_scope {
        if let Some(o) = body.as_object_mut() {
            o.remove("scope");
        }
    }
    if grant.offline && (grant.force_consent || !had_refresh) && !s.behaviour.omit_refresh_token {
        body["refresh_token"] = json!(s.issue_refresh(&grant.sub, &grant.scopes));
    }
    Json(body).into_response()
}

/// `grant_type=refresh_token`: a new access token with the refresh token's
/// scopes, until it is revoked.
fn refresh_access(s: &mut FakeState, form: &[(String, String)]) -> Response {
    s.count("token.refresh_token");
    let rt = first(form, "refresh_token").unwrap_or_default();
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
    let access = s.issue_access(&sub, &scopes);
    Json(token_body(&access, &scopes)).into_response()
}

fn token_body(access_token: &str, scopes: &BTreeSet<String>) -> serde_json::Value {
    json!({
        "access_token": access_token,
        "expires_in": ACCESS_TOKEN_SECS,
        "scope": space_separated(scopes),
        "token_type": "Bearer",
    })
}

// ---------------------------------------------------------------------------
// userinfo, tokeninfo, revoke

/// `GET /v1/userinfo` (OpenID Connect).
pub(super) async fn userinfo(State(fake): State<FakeGoogle>, headers: HeaderMap) -> Response {
    let delay = fake.lock().behaviour.userinfo_delay_ms;
    latency(delay).await;
    let mut s = fake.lock();
    s.count("userinfo");
    let found = bearer_grant(&s, &headers).and_then(|grant| {
        let account = fake.config.accounts.iter().find(|a| a.sub == grant.sub)?;
        Some((account, grant))
    });
    let Some((account, grant)) = found else {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_request",
            "Invalid Credentials",
        );
    };
    let mut body = json!({ "sub": account.sub });
    if grant.scopes.contains(NON_GRANULAR[1]) {
        body["email"] = json!(account.email);
        body["email_verified"] = json!(true);
    }
    if grant.scopes.contains(NON_GRANULAR[2]) {
        body["name"] = json!(account.name);
    }
    Json(body).into_response()
}

/// `GET|POST /tokeninfo?access_token=…`.
pub(super) async fn tokeninfo(
    State(fake): State<FakeGoogle>,
    RawQuery(q): RawQuery,
    RawForm(form): RawForm,
) -> Response {
    let mut s = fake.lock();
    s.count("tokeninfo");
    if s.behaviour.tokeninfo_unavailable {
        return oauth_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "internal_failure",
            "Backend Error",
        );
    }
    let p = query_and_form(q, &form);
    let token = first(&p, "access_token").unwrap_or_default();
    let Some(g) = s.live_access(token) else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_token", "Invalid Value");
    };
    let account = fake.config.accounts.iter().find(|a| a.sub == g.sub);
    let remaining = (g.expires_at - Utc::now()).num_seconds().max(0);
    let mut body = json!({
        "azp": fake.config.client_id,
        "aud": fake.config.client_id,
        "sub": g.sub,
        "scope": space_separated(&g.scopes),
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
pub(super) async fn revoke(
    State(fake): State<FakeGoogle>,
    RawQuery(q): RawQuery,
    RawForm(form): RawForm,
) -> Response {
    let delay = fake.lock().behaviour.revoke_delay_ms;
    latency(delay).await;
    let mut s = fake.lock();
    s.count("revoke");
    if s.behaviour.revoke_unavailable {
        return oauth_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "internal_failure",
            "Backend Error",
        );
    }
    let p = query_and_form(q, &form);
    let token = first(&p, "token").unwrap_or_default();
    match s.unrevoked_sub(token) {
        Some(sub) => {
            s.revoke_sub(&sub);
            (StatusCode::OK, Json(json!({}))).into_response()
        }
        None => oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_token",
            "Token expired or revoked",
        ),
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use sha2::{Digest, Sha256};

    use super::pkce_ok;

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
