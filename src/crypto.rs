//! Tokens at rest: AES-256-GCM with key ids, so that keys can rotate.
//!
//! A stored value is `enc:v1:<key id>:<base64url(nonce ‖ ciphertext ‖ tag)>`
//! with a random 96-bit nonce. The associated data names the table, the
//! column and the user id, so a ciphertext copied to another row or column
//! does not decrypt. Values without the `enc:v1:` prefix are plaintext (rows
//! of the old service, or written under `ALLOW_PLAINTEXT_TOKENS=true`) and are
//! read as they are.
//!
//! The same key ring also vouches for `gmail_token.scopes`: a scope list the
//! service wrote carries `scopes_mac` = `<key id>:<base64url(HMAC-SHA256)>`
//! under a key derived (HKDF-SHA256) from that encryption key, over the user
//! id, the grant (Google's `sub` and the refresh token) and the canonical
//! scope list. A list written by anyone else does not match
//! ([`TokenCipher::check_scopes_mac`]).
//!
//! [`Authenticator`] tags short-lived values handed to browsers (the item
//! page's result flash), under a key derived from another secret.

use std::fmt;

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretBox, SecretString};
use sha2::Sha256;
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

/// HKDF `info` of the scopes MAC key: a key of its own per encryption key.
const SCOPES_MAC_INFO: &[u8] = b"auth-server gmail_token.scopes mac v1";

/// What a row's `scopes_mac` says about its scope list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MacCheck {
    /// Written by this service for exactly these scopes, user and grant.
    Valid,
    /// No MAC (a row adopted from the old service, or one whose scopes were
    /// changed without one), or no key to check it with.
    Absent,
    /// A MAC that does not match: the scopes (or the grant) were changed by
    /// someone else.
    Mismatch,
    /// A MAC under a key that is not in `TOKEN_ENCRYPTION_KEYS` any more.
    UnknownKey,
}

/// What a scope list is vouched for with: the row's user and grant.
#[derive(Clone, Copy)]
pub struct ScopesOf<'a> {
    pub user: Uuid,
    /// Google's `sub` of the account (`None`: a row that names none).
    pub google_sub: Option<&'a str>,
    /// The refresh token in plaintext (`None`: none is stored).
    pub refresh_token: Option<&'a str>,
}

impl ScopesOf<'_> {
    /// HMAC-SHA256 under `key` over the fields and the canonical scope list,
    /// each length-prefixed (no two inputs share an encoding).
    ///
    /// `keyed` is the HMAC already keyed (its padded key blocks hashed once,
    /// when the cipher is built): the same MAC for less work per row.
    fn mac(&self, keyed: &Hmac<Sha256>, scopes: &[&str]) -> Hmac<Sha256> {
        let mut mac = keyed.clone();
        let mut user = [0u8; uuid::fmt::Hyphenated::LENGTH];
        let fields = [
            &*self.user.hyphenated().encode_lower(&mut user),
            self.google_sub.unwrap_or_default(),
            self.refresh_token.unwrap_or_default(),
        ];
        for part in fields.into_iter().chain(scopes.iter().copied()) {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part.as_bytes());
        }
        mac
    }
}

/// Tags for short-lived values the service hands to a browser and reads
/// back (the result flash of the item page): HMAC-SHA256 under a key derived
/// (HKDF-SHA256, with its own `info`) from a secret the service holds.
pub struct Authenticator(SecretBox<[u8; 32]>);

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Authenticator([redacted])")
    }
}

impl Authenticator {
    /// The key for one purpose (`info`) derived from `secret`.
    pub fn derive(secret: &[u8], info: &[u8]) -> Self {
        let mut out = [0u8; 32];
        hkdf::Hkdf::<Sha256>::new(None, secret)
            .expand(info, &mut out)
            .expect("32 bytes is a valid HKDF-SHA256 length");
        Self(SecretBox::new(Box::new(out)))
    }

    fn mac(&self, message: &[u8]) -> Hmac<Sha256> {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(self.0.expose_secret()).expect("any key length");
        mac.update(message);
        mac
    }

    /// `message`'s tag, base64url without padding.
    pub fn tag(&self, message: &[u8]) -> String {
        let tag = self.mac(message).finalize().into_bytes();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(tag)
    }

    /// Is `tag` (base64url) `message`'s? Compared in constant time.
    pub fn verify(&self, message: &[u8], tag: &str) -> bool {
        let Ok(tag) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(tag) else {
            return false;
        };
        self.mac(message).verify_slice(&tag).is_ok()
    }
}

/// Seals and opens token values, and vouches for scope lists.
pub struct TokenCipher {
    keys: Vec<(String, Aes256Gcm)>,
    /// The scopes MAC keys, by the id of the encryption key they come from.
    mac_keys: Vec<(String, SecretBox<[u8; 32]>)>,
    /// HMAC-SHA256 keyed with each of `mac_keys`, in the same order.
    scopes_keyed: Vec<Hmac<Sha256>>,
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

/// The scopes MAC key derived from one encryption key (HKDF-SHA256): the
/// AES key itself is never used for anything but AES-GCM.
fn mac_key(k: &KeySpec) -> [u8; 32] {
    let mut out = [0u8; 32];
    hkdf::Hkdf::<Sha256>::new(None, k.key.expose_secret())
        .expand(SCOPES_MAC_INFO, &mut out)
        .expect("32 bytes is a valid HKDF-SHA256 length");
    out
}

/// HKDF `info` of the key that MACs refresh-token prefixes (derived from a
/// scopes MAC key, itself derived from an encryption key).
const PREFIX_MAC_INFO: &[u8] = b"auth-server gmail_token.refresh_token prefix mac v1";

/// How many leading characters of a refresh token Google's RISC
/// `token_identifier_alg: prefix` names it by.
pub const REFRESH_PREFIX_LEN: usize = 16;

/// Google's RISC `hash_base64_sha512_sha512` of a token: standard base64
/// (padded) of SHA-512 over the SHA-512 digest of the token's bytes.
pub fn refresh_token_sha512(token: &str) -> String {
    use sha2::{Digest, Sha512};
    let inner = Sha512::digest(token.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(Sha512::digest(inner))
}

/// The first [`REFRESH_PREFIX_LEN`] characters of a token (all of a shorter
/// one).
pub fn refresh_token_prefix(token: &str) -> &str {
    match token.char_indices().nth(REFRESH_PREFIX_LEN) {
        Some((i, _)) => &token[..i],
        None => token,
    }
}

fn prefix_mac_with(id: &str, scopes_key: &[u8; 32], prefix: &str) -> String {
    let mut key = [0u8; 32];
    hkdf::Hkdf::<Sha256>::new(None, scopes_key)
        .expand(PREFIX_MAC_INFO, &mut key)
        .expect("32 bytes is a valid HKDF-SHA256 length");
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&key).expect("any key length");
    mac.update(prefix.as_bytes());
    let tag = mac.finalize().into_bytes();
    format!(
        "{id}:{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(tag)
    )
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
            mac_keys: keys
                .iter()
                .map(|k| (k.id.clone(), SecretBox::new(Box::new(mac_key(k)))))
                .collect(),
            scopes_keyed: keys
                .iter()
                .map(|k| {
                    let key = SecretBox::new(Box::new(mac_key(k)));
                    <Hmac<Sha256> as Mac>::new_from_slice(key.expose_secret())
                        .expect("any key length")
                })
                .collect(),
            write_plaintext: write_plaintext || keys.is_empty(),
        }
    }

    /// The MAC that vouches for `scopes` (sorted, canonical full URLs) of
    /// this user and grant, under the active key; `None` without any key
    /// (plaintext cut-over without `TOKEN_ENCRYPTION_KEYS`).
    pub fn scopes_mac(&self, of: ScopesOf<'_>, scopes: &[&str]) -> Option<String> {
        let (id, _) = self.mac_keys.first()?;
        let tag = of
            .mac(&self.scopes_keyed[0], scopes)
            .finalize()
            .into_bytes();
        Some(format!(
            "{id}:{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(tag)
        ))
    }

    /// Does `stored` vouch for `scopes` of this user and grant? Checked in
    /// constant time under the key it names.
    pub fn check_scopes_mac(
        &self,
        of: ScopesOf<'_>,
        scopes: &[&str],
        stored: Option<&str>,
    ) -> MacCheck {
        let Some((id, b64)) = stored.and_then(|s| s.split_once(':')) else {
            return match stored {
                None => MacCheck::Absent,
                Some(_) => MacCheck::Mismatch,
            };
        };
        let Some(key) = self.mac_keys.iter().position(|(k, _)| k == id) else {
            return MacCheck::UnknownKey;
        };
        let Ok(tag) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(b64) else {
            return MacCheck::Mismatch;
        };
        match of.mac(&self.scopes_keyed[key], scopes).verify_slice(&tag) {
            Ok(()) => MacCheck::Valid,
            Err(_) => MacCheck::Mismatch,
        }
    }

    /// `<key id>:<base64url HMAC-SHA256>` of a refresh-token prefix under the
    /// active key: what a RISC `token-revoked` by `prefix` is matched with,
    /// without the prefix in the clear. `None` without any key.
    pub fn prefix_mac(&self, prefix: &str) -> Option<String> {
        let (id, key) = self.mac_keys.first()?;
        Some(prefix_mac_with(id, key.expose_secret(), prefix))
    }

    /// The id of the key [`prefix_mac`](Self::prefix_mac) writes under.
    pub(crate) fn prefix_mac_key(&self) -> Option<&str> {
        self.mac_keys.first().map(|(id, _)| id.as_str())
    }

    /// The prefix's MAC under every configured key (a row written before a
    /// rotation still matches).
    pub(crate) fn prefix_mac_candidates(&self, prefix: &str) -> Vec<String> {
        self.mac_keys
            .iter()
            .map(|(id, key)| prefix_mac_with(id, key.expose_secret(), prefix))
            .collect()
    }

    /// Is this MAC under another key than the active one (rotation re-MACs it)?
    pub(crate) fn scopes_mac_needs_rewrite(&self, stored: &str) -> bool {
        match self.mac_keys.first() {
            None => false,
            Some((active, _)) => !stored.starts_with(&format!("{active}:")),
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
    fn refresh_token_identifiers_follow_googles_recipe() {
        // `openssl dgst -sha512 -binary | openssl dgst -sha512 -binary | base64`
        let token = "1//0abcdefghijklmnopqrstuvwxyz";
        assert_eq!(
            refresh_token_sha512(token),
            "EOiK4/AZqIs/aeU1dL/hnZm7+cSA4HDViXLJx+aIi/Gcq+olzAApjCYGdi6LRKGAypPGxAyYda5kB10sQGJuqg=="
        );
        assert_eq!(refresh_token_prefix(token), "1//0abcdefghijkl");
        assert_eq!(refresh_token_prefix("short"), "short");
        let c = TokenCipher::new(&keys(&format!("{K1},{K2}")), false);
        let mac = c.prefix_mac("1//0abcdefghijkl").unwrap();
        assert!(
            mac.starts_with("k1:") && !mac.contains("abcdefghijkl"),
            "{mac}"
        );
        let candidates = c.prefix_mac_candidates("1//0abcdefghijkl");
        assert_eq!(candidates.len(), 2);
        assert_eq!(candidates[0], mac);
        assert_ne!(c.prefix_mac("1//0abcdefghijkm").unwrap(), mac);
    }
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
    fn scopes_macs_bind_user_grant_and_list_and_survive_rotation() {
        let u = Uuid::new_v4();
        let of = ScopesOf {
            user: u,
            google_sub: Some("110"),
            refresh_token: Some("1//r"),
        };
        let list = ["https://mail.google.com/", "openid"];
        let old = TokenCipher::new(&keys(K1), false);
        let mac = old.scopes_mac(of, &list).unwrap();
        assert!(mac.starts_with("k1:"));
        assert_eq!(old.check_scopes_mac(of, &list, Some(&mac)), MacCheck::Valid);
        assert_eq!(
            old.check_scopes_mac(of, &list[..1], Some(&mac)),
            MacCheck::Mismatch
        );
        let other_user = ScopesOf {
            user: Uuid::new_v4(),
            ..of
        };
        let other_grant = ScopesOf {
            refresh_token: Some("1//s"),
            ..of
        };
        let other_sub = ScopesOf {
            google_sub: None,
            ..of
        };
        for o in [other_user, other_grant, other_sub] {
            assert_eq!(
                old.check_scopes_mac(o, &list, Some(&mac)),
                MacCheck::Mismatch
            );
        }
        assert_eq!(old.check_scopes_mac(of, &list, None), MacCheck::Absent);
        assert_eq!(
            old.check_scopes_mac(of, &list, Some("junk")),
            MacCheck::Mismatch
        );
        // A newer key: old MACs still verify, and are due for rewriting.
        let both = TokenCipher::new(&keys(&format!("{K2},{K1}")), false);
        assert_eq!(
            both.check_scopes_mac(of, &list, Some(&mac)),
            MacCheck::Valid
        );
        assert!(both.scopes_mac_needs_rewrite(&mac));
        assert!(both.scopes_mac(of, &list).unwrap().starts_with("k2:"));
        let only_new = TokenCipher::new(&keys(K2), false);
        assert_eq!(
            only_new.check_scopes_mac(of, &list, Some(&mac)),
            MacCheck::UnknownKey
        );
        // The plaintext cut-over with keys still vouches; without keys nothing does.
        assert!(TokenCipher::new(&keys(K1), true)
            .scopes_mac(of, &list)
            .is_some());
        let none = TokenCipher::new(&[], true);
        assert_eq!(none.scopes_mac(of, &list), None);
        assert_eq!(
            none.check_scopes_mac(of, &list, Some(&mac)),
            MacCheck::UnknownKey
        );
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
