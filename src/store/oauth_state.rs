//! `oauth_state`: consent attempts in flight, claimed exactly once, then kept
//! marked done (with their result) until they expire.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;
use uuid::Uuid;

/// A stored consent attempt.
pub(crate) struct StateRow {
    pub state_hash: Vec<u8>,
    pub user_id: Uuid,
    pub provider: String,
    pub pkce_verifier: String,
    pub return_to: String,
    pub expires_at: DateTime<Utc>,
}

impl std::fmt::Debug for StateRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateRow")
            .field("user_id", &self.user_id)
            .field("provider", &self.provider)
            .field("pkce_verifier", &"[redacted]")
            .field("return_to", &self.return_to)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

pub(crate) struct NewState<'a> {
    pub state_hash: &'a [u8],
    pub user_id: Uuid,
    pub provider: &'a str,
    pub pkce_verifier: &'a str,
    pub requested_scopes: serde_json::Value,
    pub return_to: &'a str,
    pub browser_nonce_hash: &'a [u8],
    pub expires_at: DateTime<Utc>,
}

pub(crate) async fn insert(db: impl PgExecutor<'_>, s: &NewState<'_>) -> Result<(), sqlx::Error> {
    sqlx::query!(
        r#"INSERT INTO oauth_state
               (state_hash, user_id, provider, pkce_verifier, requested_scopes, return_to,
                browser_nonce_hash, expires_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"#,
        s.state_hash,
        s.user_id,
        s.provider,
        s.pkce_verifier,
        s.requested_scopes,
        s.return_to,
        s.browser_nonce_hash,
        s.expires_at,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Claim the attempt for its callback: mark it in use, if it exists for this
/// provider, browser and user, is not expired and is not in use already. It
/// is marked done by [`finish`] in the transaction that records how the
/// callback ended; one left in use (not done) means the instance stopped in
/// between. A done attempt is never claimed again.
pub(crate) async fn claim(
    db: impl PgExecutor<'_>,
    state_hash: &[u8],
    provider: &str,
    browser_nonce_hash: &[u8],
    user_id: Uuid,
) -> Result<Option<StateRow>, sqlx::Error> {
    sqlx::query_as!(
        StateRow,
        r#"UPDATE oauth_state SET used_at = now()
           WHERE state_hash = $1 AND provider = $2 AND browser_nonce_hash = $3
             AND user_id = $4 AND used_at IS NULL AND expires_at >= now()
           RETURNING state_hash, user_id, provider, pkce_verifier, return_to, expires_at"#,
        state_hash,
        provider,
        browser_nonce_hash,
        user_id,
    )
    .fetch_optional(db)
    .await
}

/// An attempt that exists but was not claimed: whose, for which browser,
/// until when, since when in use and whether done (to tell "expired" from
/// "another browser" from "another user" from "interrupted" from "already
/// done"), and where its browser was to go back to.
pub(crate) struct Peeked {
    pub user_id: Uuid,
    pub browser_nonce_hash: Vec<u8>,
    pub expires_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
    pub done_at: Option<DateTime<Utc>>,
    pub return_to: String,
}

pub(crate) async fn peek(
    db: impl PgExecutor<'_>,
    state_hash: &[u8],
    provider: &str,
) -> Result<Option<Peeked>, sqlx::Error> {
    sqlx::query_as!(
        Peeked,
        r#"SELECT user_id, browser_nonce_hash, expires_at, used_at, done_at, return_to
           FROM oauth_state WHERE state_hash = $1 AND provider = $2"#,
        state_hash,
        provider,
    )
    .fetch_optional(db)
    .await
}

/// Mark a claimed attempt done with the `result` its callback ended with
/// (stored, denied or failed); its verifier, spent, is blanked. It stays
/// until it expires, so that its replay can be told apart from a forgery.
pub(crate) async fn finish(
    db: impl PgExecutor<'_>,
    state_hash: &[u8],
    result: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        r#"UPDATE oauth_state SET done_at = now(), result = $2, pkce_verifier = ''
           WHERE state_hash = $1"#,
        state_hash,
        result,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Delete one attempt: it expired.
pub(crate) async fn delete(db: impl PgExecutor<'_>, state_hash: &[u8]) -> Result<(), sqlx::Error> {
    sqlx::query!(
        r#"DELETE FROM oauth_state WHERE state_hash = $1"#,
        state_hash
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Delete every expired attempt, in use or not; returns how many.
pub(crate) async fn purge_expired(db: impl PgExecutor<'_>) -> Result<u64, sqlx::Error> {
    let r = sqlx::query!(r#"DELETE FROM oauth_state WHERE expires_at < now()"#)
        .execute(db)
        .await?;
    Ok(r.rows_affected())
}

/// A consent attempt's sealed verifier, for key rotation.
pub(crate) struct VerifierRow {
    pub state_hash: Vec<u8>,
    pub user_id: Uuid,
    pub pkce_verifier: String,
}

pub(crate) async fn verifiers(db: impl PgExecutor<'_>) -> Result<Vec<VerifierRow>, sqlx::Error> {
    sqlx::query_as!(
        VerifierRow,
        r#"SELECT state_hash, user_id, pkce_verifier FROM oauth_state
           WHERE expires_at > now() AND done_at IS NULL"#
    )
    .fetch_all(db)
    .await
}

pub(crate) async fn rewrite_verifier(
    db: impl PgExecutor<'_>,
    state_hash: &[u8],
    old: &str,
    new: &str,
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query!(
        r#"UPDATE oauth_state SET pkce_verifier = $3 WHERE state_hash = $1 AND pkce_verifier = $2"#,
        state_hash,
        old,
        new,
    )
    .execute(db)
    .await?;
    Ok(r.rows_affected() == 1)
}
