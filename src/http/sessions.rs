//! Sessions that verified, remembered for the rest of their lifetime, so that
//! a caller sending the same session again costs a SHA-256 and a lookup, not
//! a JWT decode and an HMAC.
//!
//! * The key is the SHA-256 of the whole token: a hit means these exact bytes
//!   verified before (one byte changed anywhere, signature included, is
//!   another key, verified from scratch).
//! * Only sessions that verified are kept; a refused one is refused again by
//!   the verifier every time.
//! * An entry is served only while the clock is before the token's `exp`
//!   (stricter than the verifier, which allows `LEEWAY_SECS` more; past
//!   `exp` the verifier decides again, and nothing is kept). A session that
//!   verified stays valid as time goes on for every other claim (`nbf`,
//!   `iat` and the maximum lifetime only refuse what lies too far ahead), so
//!   the verifier would say the same; an entry is not served either if the
//!   clock went back before the moment it was verified.
//! * The secret and the claims policy are fixed for the life of the process,
//!   and ro-being's sessions have no revocation this service could learn of
//!   (docs/security.md): nothing else ends an entry early.

use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::config::SessionPolicy;
use crate::http::auth::{verify_session_claims, SessionError};
use crate::passport::cache::{bounded, Bounded, EvictionCount};

/// What a session that verified said.
#[derive(Debug, Clone, Copy)]
struct Verified {
    user: Uuid,
    /// Its `exp`: not served from this second on.
    exp: u64,
    /// When it verified: not served if the clock is now earlier.
    at: u64,
}

pub(crate) struct SessionCache {
    map: Bounded<[u8; 32], Verified>,
    evictions: EvictionCount,
}

impl SessionCache {
    pub(crate) fn new(max_entries: usize) -> Self {
        let (map, evictions) = bounded(max_entries);
        Self { map, evictions }
    }

    /// The user of `token`, from the cache when these exact bytes verified
    /// before and have not expired, otherwise from the verifier.
    pub(crate) fn verify(
        &self,
        token: &str,
        secret: &[u8],
        policy: &SessionPolicy,
    ) -> Result<Uuid, SessionError> {
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let now = now_secs();
        if let Some(v) = self.map.get(&key) {
            if v.at <= now && now < v.exp {
                return Ok(v.user);
            }
        }
        let (user, exp) = verify_session_claims(token, secret, policy)?;
        if now < exp {
            self.map.insert(key, Verified { user, exp, at: now });
        }
        Ok(user)
    }

    /// Entries held now, and entries evicted to stay within the bound so far.
    pub(crate) fn sizes(&self) -> (usize, u64) {
        (self.map.len(), self.evictions.get())
    }
}

/// Whole seconds since the epoch, as the verifier reads the clock.
fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
