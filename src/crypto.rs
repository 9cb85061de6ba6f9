//! Tokens at rest: AES-256-GCM with key ids, so that keys can rotate.
//!
//! A stored value is `enc:v1:<key id>:<base64url(nonce ‖ ciphertext ‖ tag)>`
//! with a random 96-bit nonce. The associated data names the table, the
//! column and the user id, so a ciphertext copied to another row or column
//! does not decrypt. Values without the `enc:v1:` prefix are plaintext (rows
//! of the old service, or written under `ALLOW_PLAINTEXT_TOKENS=true`) and are
//! read as they are.

use std::fmt;

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine;
use secrecy::{ExposeSecret, SecretBox, SecretString};
use uuid::Uuid;

/// Prefix of every encrypted value.
pub(crate) const PREFIX: &str = "enc:v1:";
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// Which secret a value is, for the associated data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    AccessToken,
    RefreshToken,
    PkceVerifier,
}

impl Field {
    fn aad_label(self) -> &'static str {
        match self {
            Self::AccessToken => "gmail_token.access_token",
            Self::RefreshToken => "gmail_token.refresh_token",
            Self::PkceVerifier => "oauth_state.pkce_verifier",
        }
    }
}

/// One key from `TOKEN_ENCRYPTION_KEYS`.
pub struct KeySpec {
    pub id: String,
    pub key: SecretBox<[u8; 32]>,
}

impl Clone for KeySpec {
    fn clone(&self) -> Self {
        Self {
            id: self.id.clone(),
            key: SecretBox::new(Box::new(*self.key.expose_secret())),
        }
    }
}

impl fmt::Debug for KeySpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeySpec({}: [redacted])", self.id)
    }
}

/// What a key id may be.
pub const KEY_ID_RULE: &str = "key ids are 1 to 32 letters, digits, `_` or `-`";

/// Whether `id` is a valid key id ([`KEY_ID_RULE`]).
pub fn is_key_id(id: &str) -> bool {
    (1..=32).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Parse `id:base64key[,id:base64key…]`; the first key is the active one.
pub fn parse_keys(raw: &str) -> Result<Vec<KeySpec>, String> {
    let mut keys: Vec<KeySpec> = Vec::new();
    for item in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (id, b64) = item
            .split_once(':')
            .ok_or_else(|| "each key must be written id:base64key".to_string())?;
        if !is_key_id(id) {
            return Err(KEY_ID_RULE.into());
        }
        if keys.iter().any(|k| k.id == id) {
            return Err(format!("key id `{id}` appears twice"));
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(b64.trim()))
            .map_err(|_| format!("key `{id}` is not valid base64"))?;
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|_| format!("key `{id}` must be 32 bytes (AES-256), base64-encoded"))?;
        keys.push(KeySpec {
            id: id.to_string(),
            key: SecretBox::new(Box::new(key)),
        });
    }
    Ok(keys)
}

/// Why a stored value could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error("stored value was encrypted with key `{0}`, which is not in TOKEN_ENCRYPTION_KEYS")]
    UnknownKey(String),
    #[error("stored value is not a valid envelope or does not belong to this row")]
    Corrupt,
}

/// Seals and opens token values.
pub struct TokenCipher {
    keys: Vec<(String, Aes256Gcm)>,
    write_plaintext: bool,
}

impl fmt::Debug for TokenCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenCipher")
            .field(
                "key_ids",
                &self
                    .keys
                    .iter()
                    .map(|(id, _)| id.as_str())
                    .collect::<Vec<_>>(),
            )
            .field("write_plaintext", &self.write_plaintext)
            .finish()
    }
}

fn aad(field: Field, user: Uuid) -> String {
    format!("{}:{}", field.aad_label(), user)
}

impl TokenCipher {
    /// `write_plaintext` keeps writing plaintext (the cut-over setting
    /// `ALLOW_PLAINTEXT_TOKENS=true`); keys still open encrypted values.
    pub fn new(keys: &[KeySpec], write_plaintext: bool) -> Self {
        Self {
            keys: keys
                .iter()
                .map(|k| {
                    let key: &Key<Aes256Gcm> = k.key.expose_secret().into();
                    (k.id.clone(), Aes256Gcm::new(key))
                })
                .collect(),
            write_plaintext: write_plaintext || keys.is_empty(),
        }
    }

    /// The id of the key new values are sealed with (none: plaintext).
    pub(crate) fn active_key(&self) -> Option<&str> {
        if self.write_plaintext {
            None
        } else {
            self.keys.first().map(|(id, _)| id.as_str())
        }
    }

    /// Encrypt a value for one field of one user's row.
    pub fn seal(&self, user: Uuid, field: Field, plain: &str) -> String {
        let Some((id, cipher)) = self.keys.first().filter(|_| !self.write_plaintext) else {
            return plain.to_string();
        };
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let aad = aad(field, user);
        let ct = cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plain.as_bytes(),
                    aad: aad.as_bytes(),
                },
            )
            .expect("AES-GCM encryption of a short value cannot fail");
        let mut blob = Vec::with_capacity(NONCE_LEN + ct.len());
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(&ct);
        format!(
            "{PREFIX}{id}:{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(blob)
        )
    }

    /// Decrypt a stored value (plaintext values are returned as they are).
    pub fn open(
        &self,
        user: Uuid,
        field: Field,
        stored: &str,
    ) -> Result<SecretString, CryptoError> {
        let Some(rest) = stored.strip_prefix(PREFIX) else {
            return Ok(SecretString::from(stored.to_string()));
        };
        let (id, b64) = rest.split_once(':').ok_or(CryptoError::Corrupt)?;
        let cipher = self
            .keys
            .iter()
            .find(|(k, _)| k == id)
            .map(|(_, c)| c)
            .ok_or_else(|| CryptoError::UnknownKey(id.chars().take(32).collect()))?;
        let blob = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(b64)
            .map_err(|_| CryptoError::Corrupt)?;
        if blob.len() < NONCE_LEN + TAG_LEN {
            return Err(CryptoError::Corrupt);
        }
        let (nonce, ct) = blob.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| CryptoError::Corrupt)?;
        let nonce: Nonce<_> = nonce.into();
        let aad = aad(field, user);
        let plain = cipher
            .decrypt(
                &nonce,
                Payload {
                    msg: ct,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| CryptoError::Corrupt)?;
        String::from_utf8(plain)
            .map(SecretString::from)
            .map_err(|_| CryptoError::Corrupt)
    }

    /// Open an optional stored value; empty values count as absent.
    pub fn open_opt(
        &self,
        user: Uuid,
        field: Field,
        stored: Option<&str>,
    ) -> Result<Option<SecretString>, CryptoError> {
        match stored.filter(|s| !s.is_empty()) {
            None => Ok(None),
            Some(s) => self.open(user, field, s).map(Some),
        }
    }

    /// Would [`seal`](Self::seal) store this value differently (plaintext
    /// while a key is active, or another key than the active one)?
    pub(crate) fn needs_rewrite(&self, stored: &str) -> bool {
        match (self.active_key(), stored.strip_prefix(PREFIX)) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(active), Some(rest)) => !rest.starts_with(&format!("{active}:")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(spec: &str) -> Vec<KeySpec> {
        parse_keys(spec).unwrap()
    }

    const K1: &str = "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    const K2: &str = "k2:ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";

    #[test]
    fn seals_and_opens_with_user_and_field_bound() {
        let c = TokenCipher::new(&keys(K1), false);
        let u = Uuid::new_v4();
        let sealed = c.seal(u, Field::RefreshToken, "1//secret-refresh");
        assert!(sealed.starts_with("enc:v1:k1:"));
        assert!(!sealed.contains("secret"));
        assert_eq!(
            c.open(u, Field::RefreshToken, &sealed)
                .unwrap()
                .expose_secret(),
            "1//secret-refresh"
        );
        // Another row or another column: refused.
        assert_eq!(
            c.open(Uuid::new_v4(), Field::RefreshToken, &sealed)
                .unwrap_err(),
            CryptoError::Corrupt
        );
        assert_eq!(
            c.open(u, Field::AccessToken, &sealed).unwrap_err(),
            CryptoError::Corrupt
        );
        // Fresh nonce every time.
        assert_ne!(sealed, c.seal(u, Field::RefreshToken, "1//secret-refresh"));
    }

    #[test]
    fn rotation_reads_old_keys_and_reports_unknown_ones() {
        let u = Uuid::new_v4();
        let old = TokenCipher::new(&keys(K1), false);
        let sealed_old = old.seal(u, Field::AccessToken, "ya29.x");
        let both = TokenCipher::new(&keys(&format!("{K2},{K1}")), false);
        assert_eq!(
            both.open(u, Field::AccessToken, &sealed_old)
                .unwrap()
                .expose_secret(),
            "ya29.x"
        );
        assert!(both.needs_rewrite(&sealed_old));
        assert!(!both.needs_rewrite(&both.seal(u, Field::AccessToken, "ya29.x")));
        assert!(both.needs_rewrite("ya29.plaintext"));
        let only_new = TokenCipher::new(&keys(K2), false);
        assert_eq!(
            only_new
                .open(u, Field::AccessToken, &sealed_old)
                .unwrap_err(),
            CryptoError::UnknownKey("k1".into())
        );
    }

    #[test]
    fn plaintext_is_read_and_written_only_when_allowed() {
        let u = Uuid::new_v4();
        let c = TokenCipher::new(&keys(K1), false);
        assert_eq!(
            c.open(u, Field::AccessToken, "ya29.legacy")
                .unwrap()
                .expose_secret(),
            "ya29.legacy"
        );
        let plain = TokenCipher::new(&keys(K1), true);
        assert_eq!(plain.seal(u, Field::AccessToken, "ya29.x"), "ya29.x");
        assert!(!plain.needs_rewrite("ya29.x"));
        let none = TokenCipher::new(&[], false);
        assert_eq!(none.seal(u, Field::AccessToken, "ya29.x"), "ya29.x");
    }

    #[test]
    fn bad_key_specs_are_refused() {
        for bad in [
            "nocolon",
            "k1:notbase64!!",
            "k1:AAAA",
            "bad id:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
            &format!("{K1},{K1}"),
        ] {
            assert!(parse_keys(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_keys(&format!("{K2}, {K1}")).unwrap()[0].id, "k2");
    }

    #[test]
    fn corrupt_envelopes_are_errors_not_panics() {
        let c = TokenCipher::new(&keys(K1), false);
        let u = Uuid::new_v4();
        for bad in [
            "enc:v1:",
            "enc:v1:k1",
            "enc:v1:k1:",
            "enc:v1:k1:AAAA",
            "enc:v1:k1:!!!",
            "enc:v1:zz:AAAA",
        ] {
            assert!(c.open(u, Field::AccessToken, bad).is_err(), "{bad}");
        }
    }
}
