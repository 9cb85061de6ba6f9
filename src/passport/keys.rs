//! Key rotation: re-seal every stored secret under the active key, in
//! batches, while the service keeps running.

use serde::Serialize;
use uuid::Uuid;

use crate::crypto::{CryptoError, Field, MacCheck, ScopesOf, TokenCipher};
use crate::passport::Passport;
use crate::scopes::ScopeSet;
use crate::store::gmail_token::{self, Secrets, SecretsRow};
use crate::store::oauth_state;

/// What `rotate-keys` did.
#[derive(Debug, Default, Clone, Serialize)]
pub(crate) struct Rotation {
    pub rows_scanned: u64,
    pub rows_rewritten: u64,
    pub rows_current: u64,
    /// Rows changed by a refresh while we worked (they are current already).
    pub rows_changed_meanwhile: u64,
    /// Rows whose key is not configured: left as they are.
    pub unreadable: Vec<Uuid>,
    pub verifiers_rewritten: u64,
}

fn reseal(
    cipher: &TokenCipher,
    user: Uuid,
    field: Field,
    stored: Option<&str>,
) -> Result<Option<String>, CryptoError> {
    use secrecy::ExposeSecret;
    match stored {
        None => Ok(None),
        Some("") => Ok(Some(String::new())),
        Some(s) if !cipher.needs_rewrite(s) => Ok(Some(s.to_string())),
        Some(s) => {
            let plain = cipher.open(user, field, s)?;
            Ok(Some(cipher.seal(user, field, plain.expose_secret())))
        }
    }
}

/// The row's scopes MAC under the active key, when the stored one still
/// vouches for its scopes under an older key; otherwise the stored one as it
/// is (a row that no MAC vouches for stays unverified: re-MACing it would
/// launder a hand edit).
fn remac(cipher: &TokenCipher, row: &SecretsRow) -> Result<Option<String>, CryptoError> {
    use secrecy::ExposeSecret;
    let Some(stored) = row.scopes_mac.as_deref() else {
        return Ok(None);
    };
    if !cipher.scopes_mac_needs_rewrite(stored) {
        return Ok(Some(stored.to_string()));
    }
    let refresh = cipher.open_opt(
        row.user_id,
        Field::RefreshToken,
        row.refresh_token.as_deref(),
    )?;
    let of = ScopesOf {
        user: row.user_id,
        google_sub: row.google_sub.as_deref(),
        refresh_token: refresh.as_ref().map(|r| r.expose_secret()),
    };
    let scopes = ScopeSet::from_json(row.scopes.as_ref());
    let list: Vec<&str> = scopes.iter().collect();
    Ok(match cipher.check_scopes_mac(of, &list, Some(stored)) {
        MacCheck::Valid => cipher.scopes_mac(of, &list),
        _ => Some(stored.to_string()),
    })
}

/// Is anything in this row under another key than the active one?
fn is_stale(cipher: &TokenCipher, row: &SecretsRow) -> bool {
    let sealed = [&row.access_token, &row.refresh_token]
        .into_iter()
        .any(|v| {
            v.as_deref()
                .is_some_and(|s| !s.is_empty() && cipher.needs_rewrite(s))
        });
    sealed
        || row
            .scopes_mac
            .as_deref()
            .is_some_and(|m| cipher.scopes_mac_needs_rewrite(m))
}

impl Passport {
    /// The key id new secrets are sealed under, if any.
    pub(crate) fn active_key(&self) -> Option<&str> {
        self.cipher.active_key()
    }

    /// Re-seal every stored secret not under the active key, `batch` rows at
    /// a time.
    pub(crate) async fn rotate_keys(&self, batch: i64) -> Result<Rotation, sqlx::Error> {
        let rotation = rotate(&self.db, &self.cipher, batch).await?;
        // A re-sealed refresh token lost its RISC identifiers (the trigger
        // clears them); prefix MACs move to the active key.
        self.backfill_refresh_ids(batch).await?;
        Ok(rotation)
    }
}

/// Re-seal everything not under the active key.
async fn rotate(
    db: &sqlx::PgPool,
    cipher: &TokenCipher,
    batch: i64,
) -> Result<Rotation, sqlx::Error> {
    let mut report = Rotation::default();
    let mut after: Option<Uuid> = None;
    loop {
        let page = gmail_token::secrets_page(db, after, batch).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.user_id);
        for row in page {
            report.rows_scanned += 1;
            if !is_stale(cipher, &row) {
                report.rows_current += 1;
                continue;
            }
            let access = reseal(
                cipher,
                row.user_id,
                Field::AccessToken,
                row.access_token.as_deref(),
            );
            let refresh = reseal(
                cipher,
                row.user_id,
                Field::RefreshToken,
                row.refresh_token.as_deref(),
            );
            let mac = remac(cipher, &row);
            let (Ok(access), Ok(refresh), Ok(mac)) = (access, refresh, mac) else {
                tracing::warn!(user = %row.user_id, "cannot re-seal: its key is not configured");
                report.unreadable.push(row.user_id);
                continue;
            };
            let old = Secrets {
                access_token: row.access_token.as_deref(),
                refresh_token: row.refresh_token.as_deref(),
                scopes_mac: row.scopes_mac.as_deref(),
            };
            let new = Secrets {
                access_token: access.as_deref(),
                refresh_token: refresh.as_deref(),
                scopes_mac: mac.as_deref(),
            };
            let done = gmail_token::rewrite_secrets(db, row.user_id, &old, &new).await?;
            if done {
                report.rows_rewritten += 1;
            } else {
                report.rows_changed_meanwhile += 1;
            }
        }
    }
    for v in oauth_state::verifiers(db).await? {
        if cipher.needs_rewrite(&v.pkce_verifier) {
            if let Ok(Some(new)) = reseal(
                cipher,
                v.user_id,
                Field::PkceVerifier,
                Some(&v.pkce_verifier),
            ) {
                if oauth_state::rewrite_verifier(db, &v.state_hash, &v.pkce_verifier, &new).await? {
                    report.verifiers_rewritten += 1;
                }
            }
        }
    }
    Ok(report)
}
