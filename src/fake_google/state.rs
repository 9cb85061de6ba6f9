//! The fake's shared in-memory state: pending codes, access and refresh
//! grants, what each account has granted, call counts, behaviour switches,
//! Calendar events and every secret issued.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Duration, Utc};

use super::{Behaviour, ACCESS_TOKEN_SECS};
use crate::passport::random_token;

/// An authorization code waiting to be exchanged.
pub(super) struct CodeGrant {
    pub(super) client_id: String,
    pub(super) redirect_uri: String,
    /// `(code_challenge, code_challenge_method)` of the authorization request.
    pub(super) challenge: Option<(String, String)>,
    pub(super) scopes: BTreeSet<String>,
    pub(super) sub: String,
    pub(super) offline: bool,
    pub(super) force_consent: bool,
    pub(super) expires_at: DateTime<Utc>,
}

pub(super) struct AccessGrant {
    pub(super) sub: String,
    pub(super) scopes: BTreeSet<String>,
    pub(super) expires_at: DateTime<Utc>,
    revoked: bool,
}

pub(super) struct RefreshGrant {
    pub(super) sub: String,
    pub(super) scopes: BTreeSet<String>,
    pub(super) revoked: bool,
}

#[derive(Default)]
pub(super) struct FakeState {
    pub(super) redirect_uris: Vec<String>,
    pub(super) codes: HashMap<String, CodeGrant>,
    pub(super) access: HashMap<String, AccessGrant>,
    pub(super) refresh: HashMap<String, RefreshGrant>,
    /// What each account has granted this client so far.
    pub(super) grants: HashMap<String, BTreeSet<String>>,
    /// Counts by endpoint; `token.max_in_flight` is the most `/token` calls
    /// ever answered at the same time.
    pub(super) calls: HashMap<&'static str, u64>,
    /// `/token` calls being answered right now.
    pub(super) token_in_flight: u64,
    pub(super) behaviour: Behaviour,
    /// Events created through the fake Calendar API: `(sub, event)`, the
    /// account whose calendar holds it.
    pub(super) events: Vec<(String, serde_json::Value)>,
    /// Every secret issued, for leak tests.
    pub(super) issued: Vec<String>,
    /// The RISC issuer's keys and stream.
    pub(super) risc: super::risc::RiscState,
}

impl FakeState {
    /// Count one call of `endpoint` (see [`super::FakeGoogle::calls`]).
    pub(super) fn count(&mut self, endpoint: &'static str) {
        *self.calls.entry(endpoint).or_default() += 1;
    }

    /// Issue an access token for `sub` with `scopes`, valid for
    /// [`ACCESS_TOKEN_SECS`].
    pub(super) fn issue_access(&mut self, sub: &str, scopes: &BTreeSet<String>) -> String {
        let access = format!("ya29.fake-{}", random_token());
        self.insert_access(&access, sub, scopes);
        access
    }

    /// Know `access` as a live access token of `sub` with `scopes`.
    pub(super) fn insert_access(&mut self, access: &str, sub: &str, scopes: &BTreeSet<String>) {
        self.issued.push(access.to_string());
        self.access.insert(
            access.to_string(),
            AccessGrant {
                sub: sub.to_string(),
                scopes: scopes.clone(),
                expires_at: Utc::now() + Duration::seconds(ACCESS_TOKEN_SECS),
                revoked: false,
            },
        );
    }

    /// Issue a refresh token for `sub` with `scopes`, valid until revoked.
    pub(super) fn issue_refresh(&mut self, sub: &str, scopes: &BTreeSet<String>) -> String {
        let refresh = format!("1//fake-{}", random_token());
        self.insert_refresh(&refresh, sub, scopes);
        refresh
    }

    /// Know `refresh` as a refresh token of `sub` with `scopes`.
    pub(super) fn insert_refresh(&mut self, refresh: &str, sub: &str, scopes: &BTreeSet<String>) {
        self.issued.push(refresh.to_string());
        self.refresh.insert(
            refresh.to_string(),
            RefreshGrant {
                sub: sub.to_string(),
                scopes: scopes.clone(),
                revoked: false,
            },
        );
    }

    /// The grant of an access token that is neither revoked nor expired.
    pub(super) fn live_access(&self, token: &str) -> Option<&AccessGrant> {
        self.access
            .get(token)
            .filter(|a| !a.revoked && a.expires_at > Utc::now())
    }

    /// The account behind a refresh or access token that is not revoked
    /// (expiry is not checked).
    pub(super) fn unrevoked_sub(&self, token: &str) -> Option<String> {
        self.refresh
            .get(token)
            .filter(|r| !r.revoked)
            .map(|r| r.sub.clone())
            .or_else(|| {
                self.access
                    .get(token)
                    .filter(|a| !a.revoked)
                    .map(|a| a.sub.clone())
            })
    }

    /// Revoke every token of an account and forget what it granted.
    pub(super) fn revoke_sub(&mut self, sub: &str) {
        for r in self.refresh.values_mut().filter(|r| r.sub == sub) {
            r.revoked = true;
        }
        for a in self.access.values_mut().filter(|a| a.sub == sub) {
            a.revoked = true;
        }
        self.grants.remove(sub);
    }
}
