//! Rate limits.

use super::Checker;

keys! {
    RATE_LIMIT_BROWSER_IP_PER_MIN,
    RATE_LIMIT_CONNECT_USER_PER_MIN,
    RATE_LIMIT_TOKEN_IP_PER_MIN,
    RATE_LIMIT_TOKEN_USER_PER_MIN,
}

/// Requests per minute; 0 turns a limit off. A request whose caller proves
/// who they are (a session that verifies, a valid internal key) counts
/// against that caller only; the per-IP limits count the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    /// Connect and callback without a verified session, per client IP.
    pub browser_ip_per_min: u32,
    /// Connect (page and API), per signed-in user; the callback has a
    /// bucket of its own per signed-in user with the same figure.
    pub connect_user_per_min: u32,
    /// Token API without a valid internal key, per client IP.
    pub token_ip_per_min: u32,
    /// Token API, per user asked for.
    pub token_user_per_min: u32,
}

pub(super) fn check(c: &mut Checker) -> RateLimits {
    RateLimits {
        browser_ip_per_min: c.per_minute(RATE_LIMIT_BROWSER_IP_PER_MIN, 60),
        connect_user_per_min: c.per_minute(RATE_LIMIT_CONNECT_USER_PER_MIN, 20),
        token_ip_per_min: c.per_minute(RATE_LIMIT_TOKEN_IP_PER_MIN, 600),
        token_user_per_min: c.per_minute(RATE_LIMIT_TOKEN_USER_PER_MIN, 600),
    }
}
