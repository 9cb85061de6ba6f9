//! The Google tokens held for users: refreshed ahead of expiry, sealed at rest.

use std::time::Duration;

use super::Checker;
use crate::crypto::{parse_keys, KeySpec};

keys! {
    TOKEN_REFRESH_MARGIN_SECS,
    ALLOW_PLAINTEXT_TOKENS,
    TOKEN_ENCRYPTION_KEYS,
}

pub(super) struct Tokens {
    pub refresh_margin: Duration,
    pub allow_plaintext_tokens: bool,
    pub token_keys: Vec<KeySpec>,
}

pub(super) fn check(c: &mut Checker) -> Tokens {
    let refresh_margin = c.seconds(TOKEN_REFRESH_MARGIN_SECS, 300, 0..=3000);
    let allow_plaintext_tokens = c.flag(ALLOW_PLAINTEXT_TOKENS);
    let token_keys = encryption_keys(c, allow_plaintext_tokens);
    Tokens {
        refresh_margin,
        allow_plaintext_tokens,
        token_keys,
    }
}

/// The keys for tokens at rest; none only while plaintext is allowed.
fn encryption_keys(c: &mut Checker, allow_plaintext_tokens: bool) -> Vec<KeySpec> {
    let keys = match c.value(TOKEN_ENCRYPTION_KEYS).map(|s| parse_keys(&s)) {
        None => Vec::new(),
        Some(Ok(keys)) => keys,
        Some(Err(e)) => {
            c.problem(format!("TOKEN_ENCRYPTION_KEYS: {e}"));
            return Vec::new();
        }
    };
    if keys.is_empty() && !allow_plaintext_tokens {
        c.problem(
            "TOKEN_ENCRYPTION_KEYS is not set: give id:base64key pairs (32-byte AES-256 keys, e.g. `k1:$(openssl rand -base64 32)`), or set ALLOW_PLAINTEXT_TOKENS=true for the cut-over",
        );
    }
    keys
}
