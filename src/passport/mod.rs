//! The domain: providers, scope sets, the consent flow. Nothing here knows
//! about axum; handlers call these functions and map their results.

pub mod cache;
pub mod diagnosis;
pub mod disconnect;
pub mod flow;
pub mod keys;
pub mod provider;
pub mod report;
pub mod return_to;
pub mod scopes;
pub mod status;
pub mod sweep;
pub mod token;
pub mod webhooks;

use rand::RngCore;
use sha2::{Digest, Sha256};

/// 32 random bytes, base64url without padding (43 characters).
pub fn random_token() -> String {
    use base64::Engine;
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// SHA-256 of a value, as stored for `state` and the browser nonce.
pub fn sha256(value: &str) -> Vec<u8> {
    Sha256::digest(value.as_bytes()).to_vec()
}

/// Does `s` look like a value made by [`random_token`]?
pub fn is_token_shaped(s: &str) -> bool {
    s.len() == 43
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}
