//! The result flash: what the service recorded at the end of a consent (or a
//! disconnect) for one user, handed to the browser that did it in a short-lived
//! signed cookie, so that the item page's banner says what really happened,
//! once, and never what a typed, bookmarked or reloaded `?result=` claims.
//!
//! The value is `base64url(JSON) "." base64url(HMAC-SHA256)` under a key
//! derived (HKDF-SHA256, its own `info`) from `SESSION_JWT_SECRET`: whoever
//! could forge a flash could sign a session already. The JSON names the user,
//! the provider, the result, the permissions the stored grant gained and
//! those still missing, and an expiry ([`FLASH_TTL`]).

use base64::Engine;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::crypto::Authenticator;
use crate::passport::provider::Provider;
use crate::passport::Passport;
use crate::scopes::ScopeSet;

/// How long a flash is good for: a browser follows the redirect at once.
pub(crate) const FLASH_TTL: chrono::Duration = chrono::Duration::minutes(10);

/// The HKDF `info` of the flash key.
pub(crate) const FLASH_KEY_INFO: &[u8] = b"auth-server result flash v1";

/// What the banner reports: one per `result=` value of the item page.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::EnumString,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub(crate) enum Shown {
    Connected,
    Upgraded,
    Unchanged,
    Partial,
    Denied,
    AccountChanged,
    Error,
    AlreadyDone,
    Disconnected,
}

impl Shown {
    pub(crate) fn as_str(self) -> &'static str {
        self.into()
    }
}

/// A refusal Google redirected back with, that the banner names with what
/// to do (the `reason` of `result=error`).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::EnumString,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub(crate) enum Refused {
    /// The Workspace admin blocks the app or a scope: `error=admin_policy_enforced`,
    /// or `error=access_denied&error_subtype=admin_policy_enforced`.
    AdminPolicyEnforced,
    /// The app is limited to its organisation: `error=org_internal`.
    OrgInternal,
    /// A scope we ask for is not valid: `error=invalid_scope` (ours).
    InvalidScope,
}

impl Refused {
    /// The refusal named by Google's `error` and `error_subtype`, if it is
    /// one of these.
    pub(crate) fn from_redirect(error: &str, subtype: Option<&str>) -> Option<Self> {
        match (error, subtype) {
            (_, Some("admin_policy_enforced")) | ("admin_policy_enforced", _) => {
                Some(Self::AdminPolicyEnforced)
            }
            ("org_internal", _) => Some(Self::OrgInternal),
            ("invalid_scope", _) => Some(Self::InvalidScope),
            _ => None,
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        self.into()
    }
}

/// One recorded result, for one user and provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Flash {
    pub user_id: Uuid,
    pub provider: String,
    pub shown: Shown,
    /// Permissions the stored grant gained.
    pub added: ScopeSet,
    /// Required permissions still not granted.
    pub missing: ScopeSet,
    /// A disconnect whose revocation at Google failed.
    pub revoke_failed: bool,
    /// The refusal of a `result=error` the banner names.
    pub refused: Option<Refused>,
}

impl Flash {
    pub(crate) fn new(user_id: Uuid, provider: &str, shown: Shown) -> Self {
        Self {
            user_id,
            provider: provider.to_string(),
            shown,
            added: ScopeSet::default(),
            missing: ScopeSet::default(),
            revoke_failed: false,
            refused: None,
        }
    }
}

#[derive(Serialize, Deserialize)]
struct Payload {
    u: Uuid,
    p: String,
    r: Shown,
    a: serde_json::Value,
    m: serde_json::Value,
    f: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    x: Option<Refused>,
    /// Expiry, Unix seconds.
    e: i64,
}

/// The flash key, from the session secret.
pub(crate) fn key(session_secret: &[u8]) -> Authenticator {
    Authenticator::derive(session_secret, FLASH_KEY_INFO)
}

impl Passport {
    /// The cookie value carrying `flash`, signed, good for [`FLASH_TTL`].
    pub(crate) fn seal_flash(&self, flash: &Flash) -> String {
        encode(&self.flash_key, flash, Utc::now().timestamp())
    }

    /// The flash in `value` if it verifies, has not expired, and is for this
    /// signed-in user and this provider; otherwise `None`.
    pub(crate) fn open_flash(
        &self,
        value: &str,
        user_id: Uuid,
        provider: &Provider,
    ) -> Option<Flash> {
        decode(
            &self.flash_key,
            value,
            user_id,
            provider.name,
            Utc::now().timestamp(),
        )
    }
}

fn encode(key: &Authenticator, flash: &Flash, now: i64) -> String {
    let payload = Payload {
        u: flash.user_id,
        p: flash.provider.clone(),
        r: flash.shown,
        a: flash.added.to_json(),
        m: flash.missing.to_json(),
        f: flash.revoke_failed,
        x: flash.refused,
        e: now + FLASH_TTL.num_seconds(),
    };
    let json = serde_json::to_vec(&payload).expect("a flash serializes");
    let body = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json);
    let tag = key.tag(body.as_bytes());
    format!("{body}.{tag}")
}

fn decode(
    key: &Authenticator,
    value: &str,
    user_id: Uuid,
    provider: &str,
    now: i64,
) -> Option<Flash> {
    let (body, tag) = value.split_once('.')?;
    if !key.verify(body.as_bytes(), tag) {
        return None;
    }
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(body)
        .ok()?;
    let p: Payload = serde_json::from_slice(&json).ok()?;
    if p.u != user_id || p.p != provider || p.e < now {
        return None;
    }
    Some(Flash {
        user_id: p.u,
        provider: p.p,
        shown: p.r,
        added: ScopeSet::from_json(Some(&p.a)),
        missing: ScopeSet::from_json(Some(&p.m)),
        revoke_failed: p.f,
        refused: p.x,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upgraded(user: Uuid) -> Flash {
        Flash {
            added: ScopeSet::parse_known(["calendar", "calendar.events"]).unwrap(),
            ..Flash::new(user, "gmail", Shown::Upgraded)
        }
    }

    #[test]
    fn a_flash_opens_only_for_its_user_provider_key_and_time() {
        let key = key(b"a session secret of enough length for the test");
        let user = Uuid::new_v4();
        let now = 1_800_000_000;
        let v = encode(&key, &upgraded(user), now);
        assert_eq!(decode(&key, &v, user, "gmail", now), Some(upgraded(user)));
        assert_eq!(decode(&key, &v, Uuid::new_v4(), "gmail", now), None);
        assert_eq!(decode(&key, &v, user, "other", now), None);
        let late = now + FLASH_TTL.num_seconds() + 1;
        assert_eq!(decode(&key, &v, user, "gmail", late), None);
        let other_key = super::key(b"another session secret, another flash key");
        assert_eq!(decode(&other_key, &v, user, "gmail", now), None);
        // A body changed by hand (another result) no longer matches its tag.
        let (body, tag) = v.split_once('.').unwrap();
        let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(body)
            .unwrap();
        let forged = String::from_utf8(json)
            .unwrap()
            .replace("upgraded", "connected");
        let forged = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(forged);
        assert_eq!(
            decode(&key, &format!("{forged}.{tag}"), user, "gmail", now),
            None
        );
        assert_eq!(decode(&key, "garbage", user, "gmail", now), None);
    }
}
