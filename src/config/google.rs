//! Google: the OAuth client, its endpoints (or the fake's), the time allowed
//! per request and the scopes asked for.

use std::time::Duration;

use secrecy::SecretString;
use url::Url;

use super::secrets::{self, Maker, Weakness};
use super::Checker;
use crate::scopes::{default_gmail_scopes, ScopeSet};

keys! {
    GOOGLE_CLIENT_ID,
    GOOGLE_CLIENT_SECRET,
    GOOGLE_AUTH_URL,
    GOOGLE_TOKEN_URL,
    GOOGLE_USERINFO_URL,
    GOOGLE_REVOKE_URL,
    GOOGLE_TOKENINFO_URL,
    GOOGLE_API_BASE_URL,
    GOOGLE_HTTP_TIMEOUT_SECS,
    GMAIL_PASSPORT_SCOPES,
}

const DEFAULT_AUTH_URL: &str = "https://accounts.google.com/o/oauth2/v2/auth";
const DEFAULT_TOKEN_URL: &str = "https://oauth2.googleapis.com/token";
const DEFAULT_USERINFO_URL: &str = "https://openidconnect.googleapis.com/v1/userinfo";
const DEFAULT_REVOKE_URL: &str = "https://oauth2.googleapis.com/revoke";
const DEFAULT_TOKENINFO_URL: &str = "https://oauth2.googleapis.com/tokeninfo";
const DEFAULT_API_BASE_URL: &str = "https://www.googleapis.com";

/// Google's endpoints (or the fake's).
#[derive(Debug, Clone)]
pub struct GoogleEndpoints {
    pub auth_url: Url,
    pub token_url: Url,
    pub userinfo_url: Url,
    pub revoke_url: Url,
    pub tokeninfo_url: Url,
    pub api_base_url: Url,
}

pub(super) struct Google {
    pub client_id: String,
    pub client_secret: SecretString,
    pub endpoints: GoogleEndpoints,
    pub http_timeout: Duration,
    pub scopes: ScopeSet,
}

pub(super) fn check(c: &mut Checker) -> Option<Google> {
    let client_id = c.required(GOOGLE_CLIENT_ID);
    let client_secret = c.required(GOOGLE_CLIENT_SECRET);
    for (key, value) in [
        (GOOGLE_CLIENT_ID, &client_id),
        (GOOGLE_CLIENT_SECRET, &client_secret),
    ] {
        if value.as_deref().is_some_and(secrets::is_placeholder) {
            c.problem(Weakness::Placeholder.problem(key, Maker::Google));
        }
    }
    let endpoints = endpoints(c);
    let http_timeout = c.seconds(GOOGLE_HTTP_TIMEOUT_SECS, 10, 1..=120);
    let scopes = scopes(c);
    Some(Google {
        client_id: client_id?,
        client_secret: SecretString::from(client_secret?),
        endpoints: endpoints?,
        http_timeout,
        scopes: scopes?,
    })
}

fn endpoints(c: &mut Checker) -> Option<GoogleEndpoints> {
    let auth_url = endpoint(c, GOOGLE_AUTH_URL, DEFAULT_AUTH_URL);
    let token_url = endpoint(c, GOOGLE_TOKEN_URL, DEFAULT_TOKEN_URL);
    let userinfo_url = endpoint(c, GOOGLE_USERINFO_URL, DEFAULT_USERINFO_URL);
    let revoke_url = endpoint(c, GOOGLE_REVOKE_URL, DEFAULT_REVOKE_URL);
    let tokeninfo_url = endpoint(c, GOOGLE_TOKENINFO_URL, DEFAULT_TOKENINFO_URL);
    let api_base_url = endpoint(c, GOOGLE_API_BASE_URL, DEFAULT_API_BASE_URL);
    Some(GoogleEndpoints {
        auth_url: auth_url?,
        token_url: token_url?,
        userinfo_url: userinfo_url?,
        revoke_url: revoke_url?,
        tokeninfo_url: tokeninfo_url?,
        api_base_url: api_base_url?,
    })
}

/// The client secret and tokens travel to these: https, except to a fake
/// Google on this machine (tests, the demo).
pub(super) fn endpoint(c: &mut Checker, key: &str, default: &str) -> Option<Url> {
    let url = c.url(key, Some(default));
    if let Some(u) = &url {
        if u.scheme() != "https" && !is_loopback(u) {
            c.problem(format!(
                "{key} must use https (plain http is only allowed to this machine)"
            ));
        }
    }
    url
}

fn is_loopback(u: &Url) -> bool {
    match u.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

fn scopes(c: &mut Checker) -> Option<ScopeSet> {
    let Some(s) = c.value(GMAIL_PASSPORT_SCOPES) else {
        return Some(default_gmail_scopes());
    };
    ScopeSet::parse_known([s.as_str()])
        .map_err(|e| {
            c.problem(format!(
                "GMAIL_PASSPORT_SCOPES: {e} (use short names such as calendar.events or full https://www.googleapis.com/auth/… URLs)"
            ))
        })
        .ok()
}
