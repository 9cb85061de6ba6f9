//! Key rotation: re-seal every stored secret under the active key, in
//! batches, while the service keeps running.

use serde::Serialize;
use uuid::Uuid;

use crate::crypto::{CryptoError, Field, TokenCipher};
use crate::passport::Passport;
use crate::store::{gmail_token, oauth_state};

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

impl Passport {
    /// The key id new secrets are sealed under, if any.
    pub(crate) fn active_key(&self) -> Option<&str> {
        self.cipher.active_key()
    }

    /// Re-seal every stored secret not under the active key, `batch` rows at
    /// a time.
    pub(crate) async fn rotate_keys(&self, batch: i64) -> Result<Rotation, sqlx::Error> {
        rotate(&self.db, &self.cipher, batch).await
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
            let stale = [&row.access_token, &row.refresh_token].iter().any(|v| {
                v.as_deref()
                    .is_some_and(|s| !s.is_empty() && cipher.needs_rewrite(s))
            });
            if !stale {
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
            let (Ok(access), Ok(refresh)) = (access, refresh) else {
                tracing::warn!(user = %row.user_id, "cannot re-seal: its key is not configured");
                report.unreadable.push(row.user_id);
                continue;
            };
            let done = gmail_token::rewrite_secrets(
                db,
                row.user_id,
                row.access_token.as_deref(),
                row.refresh_token.as_deref(),
                access.as_deref(),
                refresh.as_deref(),
            )
            .await?;
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
