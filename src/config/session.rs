//! What a ro-being session must claim besides its signature: the audience
//! and issuer this service expects, and the longest lifetime it accepts.
//! The default matches ro-being's sessions, which carry `sub` and `exp` but
//! name no audience or issuer (docs/security.md, "Sessions: what is checked").

use std::time::Duration;

use super::Checker;

keys! {
    SESSION_JWT_AUDIENCE,
    SESSION_JWT_ISSUER,
    SESSION_JWT_MAX_LIFETIME_SECS,
}

/// The claims policy of session JWTs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionPolicy {
    /// The `aud` a session must carry (one of its values). `None`: a session
    /// that carries any `aud` is refused (it was minted for someone else).
    pub audience: Option<String>,
    /// The `iss` a session must carry. `None`: `iss` is not checked.
    pub issuer: Option<String>,
    /// The longest a session may still have to live (`exp` − now). `None`:
    /// not bounded.
    pub max_lifetime: Option<Duration>,
}

/// Ten years: more is a typo, not a session.
const MAX_LIFETIME_LIMIT: u64 = 10 * 365 * 86_400;

pub(super) fn check(c: &mut Checker) -> SessionPolicy {
    let audience = claim_value(c, SESSION_JWT_AUDIENCE);
    let issuer = claim_value(c, SESSION_JWT_ISSUER);
    let max_lifetime = c.value(SESSION_JWT_MAX_LIFETIME_SECS).map(|_| {
        c.seconds(
            SESSION_JWT_MAX_LIFETIME_SECS,
            MAX_LIFETIME_LIMIT,
            1..=MAX_LIFETIME_LIMIT,
        )
    });
    SessionPolicy {
        audience,
        issuer,
        max_lifetime,
    }
}

/// A claim value to compare with (unset: `None`).
fn claim_value(c: &mut Checker, key: &str) -> Option<String> {
    let v = c.value(key)?;
    if v.chars().any(char::is_control) {
        c.problem(format!("{key} may not hold control characters"));
    }
    Some(v)
}
