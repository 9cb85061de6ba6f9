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
//!
//! This file holds the public types and the router. The handlers live in
//! `consent` (authorization request and consent screen), `oauth` (token,
//! userinfo, tokeninfo, revoke), `calendar` (the Calendar API stand-in: the
//! primary calendar, inserting and listing events) and
//! `control` (the `/__fake/…` endpoints), `risc` (the RISC issuer:
//! configuration, JWKS, stream API, signed pushes); the shared in-memory
//! state in `state`.

mod calendar;
mod consent;
mod control;
mod oauth;
pub mod risc;
mod state;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::routing::{get, post, put};
use axum::Router;

use crate::scopes::normalize;
use state::FakeState;

/// Lifetime of issued access tokens, as Google's (`expires_in: 3599`).
const ACCESS_TOKEN_SECS: i64 = 3599;

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

/// How the token endpoint refuses a `refresh_token` grant, each answered
/// with Google's status and body (`oauth::refusal`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefreshRefusal {
    /// 400 `invalid_grant` "Token has been expired or revoked."
    InvalidGrant,
    /// 400 `invalid_grant` with `error_subtype` `invalid_rapt` and Google's
    /// `error_uri`: a Workspace re-authentication policy.
    InvalidRapt,
    /// 400 `admin_policy_enforced`: the Workspace admin blocks the app or a scope.
    AdminPolicyEnforced,
    /// 400 `org_internal` (Google documents it at the authorization
    /// endpoint; answered here too so that the service's handling is tested).
    OrgInternal,
    /// 400 `access_denied` (as for `org_internal`).
    AccessDenied,
    /// 400 `invalid_scope`.
    InvalidScope,
    /// 400 `unauthorized_client`.
    UnauthorizedClient,
    /// 401 `deleted_client`.
    DeletedClient,
    /// 429 `RESOURCE_EXHAUSTED` with `Retry-After: 30`.
    RateLimited,
    /// 403 with a Google API error body whose reason is `rateLimitExceeded`.
    RateLimitExceeded,
    /// 403 with a Google API error body whose reason is `userRateLimitExceeded`.
    UserRateLimitExceeded,
}

/// How the authorization endpoint refuses a consent. Google shows its own
/// error page for most policy refusals and does not come back; it comes back
/// only with `error=access_denied` (here with `error_subtype`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthorizeRefusal {
    /// Google's page "Error 400: admin_policy_enforced"; no redirect.
    AdminPolicyEnforced,
    /// Google's page "Error 403: org_internal"; no redirect.
    OrgInternal,
    /// After 계속 on the consent screen, back to the redirect URI with
    /// `error=access_denied&error_subtype=admin_policy_enforced`.
    AdminPolicyRedirect,
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
    /// `/token` answers 503 to `refresh_token` grants only (a partial
    /// outage: codes are still exchanged).
    pub refresh_unavailable: bool,
    /// `/token` waits this long before answering (latency, timeouts).
    pub token_delay_ms: u64,
    /// `/token` refuses our client (401 `invalid_client`), as Google does
    /// after the client secret was rotated or the client deleted.
    pub client_refused: bool,
    /// `/revoke` answers 503.
    pub revoke_unavailable: bool,
    /// `/tokeninfo` answers 503.
    pub tokeninfo_unavailable: bool,
    /// The RISC JWKS (`/risc/jwks`) answers 503.
    pub risc_jwks_unavailable: bool,
    /// `/revoke` waits this long before answering.
    pub revoke_delay_ms: u64,
    /// `/v1/userinfo` waits this long before answering.
    pub userinfo_delay_ms: u64,
    /// The Calendar API is not enabled in the Cloud project: every Calendar
    /// call answers 403 `accessNotConfigured`.
    pub calendar_api_disabled: bool,
    /// `/token` refuses `refresh_token` grants so (after checking the client).
    pub refresh_refusal: Option<RefreshRefusal>,
    /// The authorization endpoint refuses so.
    pub authorize_refusal: Option<AuthorizeRefusal>,
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

    /// Change how the fake answers from now on.
    pub fn set_behaviour(&self, behaviour: Behaviour) {
        self.lock().behaviour = behaviour;
    }

    /// The events created through the fake Calendar API so far, every
    /// account's.
    pub fn calendar_events(&self) -> Vec<serde_json::Value> {
        self.lock().events.iter().map(|(_, e)| e.clone()).collect()
    }

    /// The events in `email`'s calendar, in the order they were created.
    pub fn calendar_events_of(&self, email: &str) -> Vec<serde_json::Value> {
        let Some(sub) = self.account(email).map(|a| a.sub.clone()) else {
            return Vec::new();
        };
        self.lock()
            .events
            .iter()
            .filter(|(owner, _)| *owner == sub)
            .map(|(_, e)| e.clone())
            .collect()
    }

    /// Every code, access token and refresh token the fake ever issued (for
    /// tests that prove none of them leaks).
    pub fn issued_secrets(&self) -> Vec<String> {
        let s = self.lock();
        s.issued.clone()
    }

    /// Forget every code, token, grant, event, count and switch (the demo's
    /// reset); registered redirect URIs stay.
    pub(crate) fn reset(&self) {
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

    /// The accounts the fake knows.
    pub fn accounts(&self) -> &[FakeAccount] {
        &self.config.accounts
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
        let access = format!("ya29.fake-{}", crate::passport::random_token());
        let refresh = format!("1//fake-{}", crate::passport::random_token());
        self.adopt_grant(email, scope_list, &access, &refresh)?;
        Some((access, refresh))
    }

    /// Know tokens Google issued before this fake started — as the old
    /// service stored them — as `email`'s grant of `scope_list` (the access
    /// token live for an hour). `None` for an unknown account.
    pub fn adopt_grant(
        &self,
        email: &str,
        scope_list: &[&str],
        access: &str,
        refresh: &str,
    ) -> Option<()> {
        let sub = self.account(email)?.sub.clone();
        let scopes: BTreeSet<String> = scope_list.iter().filter_map(|s| normalize(s)).collect();
        let mut s = self.lock();
        s.grants
            .entry(sub.clone())
            .or_default()
            .extend(scopes.iter().cloned());
        s.insert_refresh(refresh, &sub, &scopes);
        s.insert_access(access, &sub, &scopes);
        Some(())
    }

    /// Revoke everything an account granted (as if the user removed the app
    /// at myaccount.google.com).
    pub fn revoke_account(&self, email: &str) {
        let Some(sub) = self.account(email).map(|a| a.sub.clone()) else {
            return;
        };
        self.lock().revoke_sub(&sub);
    }

    /// The router serving Google's endpoints at Google's paths.
    pub fn router(&self) -> Router {
        Router::new()
            .route(
                "/o/oauth2/v2/auth",
                get(consent::authorize).post(consent::consent),
            )
            .route("/token", post(oauth::token))
            .route("/v1/userinfo", get(oauth::userinfo))
            .route("/tokeninfo", get(oauth::tokeninfo).post(oauth::tokeninfo))
            .route("/revoke", post(oauth::revoke))
            .route("/fake.css", get(consent::stylesheet))
            .route("/favicon.ico", get(crate::http::assets::favicon))
            .route(
                "/calendar/v3/users/me/calendarList/primary",
                get(calendar::primary),
            )
            .route(
                "/calendar/v3/calendars/{calendar_id}/events",
                get(calendar::list_events).post(calendar::insert_event),
            )
            .route("/.well-known/risc-configuration", get(risc::configuration))
            .route("/risc/jwks", get(risc::jwks))
            .route("/v1beta/stream:update", post(risc::stream_update))
            .route("/v1beta/stream:verify", post(risc::stream_verify))
            .route("/v1beta/stream", get(risc::stream))
            .route("/__fake/risc/push", post(risc::push))
            .route("/__fake/risc/rotate", post(risc::rotate))
            .route("/__fake/risc/service-account", get(risc::service_account))
            .route("/__fake/calls", get(control::calls))
            .route("/__fake/behaviour", put(control::set_behaviour))
            .route("/__fake/seed-grant", post(control::seed_grant))
            .with_state(self.clone())
    }
}
