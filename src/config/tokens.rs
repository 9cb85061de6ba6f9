//! The Google tokens held for users: refreshed ahead of expiry, sealed at rest.

use std::time::Duration;

use secrecy::ExposeSecret;

use super::secrets::{self, Maker, Weakness};
use super::Checker;
use crate::crypto::{is_key_id, parse_keys, KeySpec};

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

/// The keys for tokens at rest; none only while plaintext is allowed. No key
/// may be a placeholder; the active (first) one must be strong. Older keys
/// are not judged: they only open what was sealed under them, and are needed
/// until `rotate-keys` has moved those rows to the active key.
fn encryption_keys(c: &mut Checker, allow_plaintext_tokens: bool) -> Vec<KeySpec> {
    let raw = c.value(TOKEN_ENCRYPTION_KEYS);
    if raw.as_deref().is_some_and(|raw| has_placeholder(c, raw)) {
        return Vec::new();
    }
    let keys = match raw.map(|s| parse_keys(&s)) {
        None => Vec::new(),
        Some(Ok(keys)) => keys,
        Some(Err(e)) => {
            c.problem(format!("TOKEN_ENCRYPTION_KEYS: {e}"));
            return Vec::new();
        }
    };
    if keys.is_empty() && !allow_plaintext_tokens {
        c.problem(
            "TOKEN_ENCRYPTION_KEYS is not set: give id:base64key pairs (32-byte AES-256 keys; make one with `auth-server init`), or set ALLOW_PLAINTEXT_TOKENS=true for the cut-over",
        );
    }
    if let Some(active) = keys.first() {
        if let Some(w) = secrets::key_bytes(active.key.expose_secret()) {
            let subject = format!("TOKEN_ENCRYPTION_KEYS: the active key `{}`", active.id);
            c.problem(w.problem(&subject, Maker::Us));
        }
    }
    keys
}

/// Reports every item of `raw` that is a placeholder (by its id, or its
/// position when it has none); whether there was one.
fn has_placeholder(c: &mut Checker, raw: &str) -> bool {
    let items: Vec<&str> = raw
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    let mut found = false;
    for (i, item) in items.iter().enumerate() {
        let (id, key) = item.split_once(':').unwrap_or(("", item));
        if secrets::is_placeholder(item) || secrets::is_placeholder(key) {
            // An id is named only when it looks like one (never a key).
            let subject = if is_key_id(id) {
                format!("TOKEN_ENCRYPTION_KEYS: key `{id}`")
            } else {
                format!("TOKEN_ENCRYPTION_KEYS: key {} of {}", i + 1, items.len())
            };
            c.problem(Weakness::Placeholder.problem(&subject, Maker::Us));
            found = true;
        }
    }
    found
}
