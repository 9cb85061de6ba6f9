//! Who may call: browser sessions, the internal API's keys, and the reverse
//! proxies trusted to name the client.

use std::sync::Arc;

use secrecy::SecretString;
use sha2::{Digest, Sha256};

use super::proxies::TrustedProxies;
use super::secrets::{self, Maker};
use super::Checker;

keys! {
    SESSION_JWT_SECRET,
    SESSION_COOKIE_NAME,
    INTERNAL_API_KEYS,
    TRUSTED_PROXIES,
}

const DEFAULT_SESSION_COOKIE: &str = "access_token";
/// Shortest accepted HS256 secret, in bytes (RFC 7518 §3.2: at least the hash size).
const MIN_JWT_SECRET_LEN: usize = 32;
/// Shortest accepted internal API key, in bytes.
const MIN_INTERNAL_KEY_LEN: usize = 16;

pub(super) struct Security {
    pub session_jwt_secret: SecretString,
    pub session_cookie_name: String,
    pub internal_api_keys: Vec<SecretString>,
    pub internal_key_names: Vec<Arc<str>>,
    pub trusted_proxies: TrustedProxies,
}

pub(super) fn check(c: &mut Checker) -> Option<Security> {
    let session_jwt_secret = c.required(SESSION_JWT_SECRET);
    if let Some(w) = session_jwt_secret
        .as_deref()
        .and_then(|s| secrets::shared_secret(s, MIN_JWT_SECRET_LEN))
    {
        c.problem(w.problem(SESSION_JWT_SECRET, Maker::RoBeing));
    }

    let session_cookie_name = c
        .value(SESSION_COOKIE_NAME)
        .unwrap_or_else(|| DEFAULT_SESSION_COOKIE.to_string());
    if !session_cookie_name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
    {
        c.problem("SESSION_COOKIE_NAME may only hold letters, digits, `_`, `-` and `.`");
    }

    let entries = c.list(INTERNAL_API_KEYS);
    if entries.is_empty() {
        c.problem("INTERNAL_API_KEYS is not set (comma-separated `name:key` entries, one per skill; make keys with `auth-server init`)");
    }
    let (internal_key_names, internal_api_keys) = named_keys(c, &entries);

    let proxies = c.list(TRUSTED_PROXIES);
    let trusted_proxies =
        TrustedProxies::parse(proxies.iter().map(String::as_str)).unwrap_or_else(|bad| {
            for item in bad {
                c.problem(format!(
                    "TRUSTED_PROXIES: `{item}` is neither an IP address nor a CIDR range"
                ));
            }
            TrustedProxies::default()
        });

    Some(Security {
        session_jwt_secret: SecretString::from(session_jwt_secret?),
        session_cookie_name,
        internal_api_keys,
        internal_key_names,
        trusted_proxies,
    })
}

/// Longest name of an internal API key.
const MAX_KEY_NAME_LEN: usize = 32;

/// Whether `name` may name an internal API key: lowercase
/// `[a-z0-9][a-z0-9_-]{0,31}`.
pub(crate) fn is_key_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_KEY_NAME_LEN
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter()
            .all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_' || c == b'-')
}

/// One entry of `INTERNAL_API_KEYS`: `name:key`, split at the first `:`,
/// or a key alone (no `:`), named `key-<first 8 hex digits of its SHA-256>`.
/// The part before the first `:` must be a valid name (`Err` holds it): keys
/// made by `auth-server init` never hold a `:`, so a key that does is written
/// with a name in front (`name:key:with:colons`).
pub(crate) fn split_entry(entry: &str) -> Result<(String, &str), &str> {
    match entry.split_once(':') {
        Some((name, key)) if is_key_name(name) => Ok((name.to_string(), key)),
        Some((name, _)) => Err(name),
        None => Ok((fingerprint_name(entry), entry)),
    }
}

/// The name of a key given without one.
pub(crate) fn fingerprint_name(key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    let hex: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
    format!("key-{hex}")
}

/// The names and keys of `INTERNAL_API_KEYS`, in order; weak keys, bad names
/// and duplicate names or keys are problems (named by position and name,
/// never by the key).
fn named_keys(c: &mut Checker, entries: &[String]) -> (Vec<Arc<str>>, Vec<SecretString>) {
    let (mut names, mut keys) = (Vec::<Arc<str>>::new(), Vec::<SecretString>::new());
    let mut seen_keys: Vec<&str> = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let position = format!("INTERNAL_API_KEYS: key {} of {}", i + 1, entries.len());
        let (name, key) = match split_entry(entry) {
            Ok(split) => split,
            // Never show the part before `:`: for a key given without a
            // name that holds a `:`, it is part of the key.
            Err(_) => {
                c.problem(format!(
                    "{position}: the part before `:` is not a key name (lowercase letters, \
                     digits, `_` and `-`, starting with a letter or digit, at most \
                     {MAX_KEY_NAME_LEN}); write `name:key`"
                ));
                continue;
            }
        };
        if let Some(w) = secrets::own_secret(key, MIN_INTERNAL_KEY_LEN) {
            c.problem(w.problem(&position, Maker::Us));
        }
        if names.iter().any(|n| **n == *name) {
            c.problem(format!(
                "{position}: the name `{name}` is used twice; give each skill its own name"
            ));
        }
        if seen_keys.contains(&key) {
            c.problem(format!(
                "{position} (`{name}`): the same key is listed twice; give each skill its own key"
            ));
        }
        seen_keys.push(key);
        names.push(Arc::from(name));
        keys.push(SecretString::from(key.to_string()));
    }
    (names, keys)
}
