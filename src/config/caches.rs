//! The in-memory caches' bounds: decrypted tokens (the token and status
//! APIs) and verified sessions.

use super::Checker;

keys! {
    TOKEN_CACHE_MAX_ENTRIES,
    SESSION_CACHE_MAX_ENTRIES,
}

/// How many entries each cache keeps at most (about: the bound is split
/// between the cache's shards); past it the least useful are evicted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheSettings {
    /// Users whose token is cached (about 430 bytes each, measured).
    pub token_entries: usize,
    /// Verified session JWTs (under 100 bytes each).
    pub session_entries: usize,
}

pub(super) fn check(c: &mut Checker) -> CacheSettings {
    CacheSettings {
        token_entries: c.number(TOKEN_CACHE_MAX_ENTRIES, 150_000, 100..=5_000_000, "entries")
            as usize,
        session_entries: c.number(
            SESSION_CACHE_MAX_ENTRIES,
            100_000,
            100..=5_000_000,
            "entries",
        ) as usize,
    }
}
