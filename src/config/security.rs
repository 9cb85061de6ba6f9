//! Who may call: browser sessions, the internal API's keys, and the reverse
//! proxies trusted to name the client.

use secrecy::SecretString;

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

    let internal_api_keys = c.list(INTERNAL_API_KEYS);
    if internal_api_keys.is_empty() {
        c.problem("INTERNAL_API_KEYS is not set (comma-separated keys for skills; make them with `auth-server init`)");
    }
    for (i, key) in internal_api_keys.iter().enumerate() {
        if let Some(w) = secrets::own_secret(key, MIN_INTERNAL_KEY_LEN) {
            let subject = format!(
                "INTERNAL_API_KEYS: key {} of {}",
                i + 1,
                internal_api_keys.len()
            );
            c.problem(w.problem(&subject, Maker::Us));
        }
    }

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
        internal_api_keys: internal_api_keys
            .into_iter()
            .map(SecretString::from)
            .collect(),
        trusted_proxies,
    })
}
