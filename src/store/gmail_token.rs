//! `gmail_token`: one Google connection per ro-being user.

use chrono::{DateTime, Utc};
use sqlx::{PgExecutor, PgPool};
use uuid::Uuid;

/// A row as stored. Columns adopted from the old service's table may be NULL.
#[derive(Clone)]
pub struct TokenRow {
    pub user_id: Uuid,
    pub email: Option<String>,
    pub google_sub: Option<String>,
    pub access_token: Option<String>,
    pub refresh_token: Option<String>,
    pub token_type: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
    pub scopes: Option<serde_json::Value>,
    pub status: String,
    pub last_error: Option<String>,
    pub last_refreshed_at: Option<DateTime<Utc>>,
    pub consented_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl std::fmt::Debug for TokenRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenRow")
            .field("user_id", &self.user_id)
            .field("email", &self.email)
            .field("status", &self.status)
            .field("scopes", &self.scopes)
            .field("expires_at", &self.expires_at)
            .field(
                "access_token",
                &self.access_token.as_ref().map(|_| "[redacted]"),
            )
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "[redacted]"),
            )
            .finish_non_exhaustive()
    }
}

pub async fn find(db: impl PgExecutor<'_>, user_id: Uuid) -> Result<Option<TokenRow>, sqlx::Error> {
    sqlx::query_as!(
        TokenRow,
        r#"SELECT user_id, email, google_sub, access_token, refresh_token, token_type,
                  expires_at, scopes, status, last_error, last_refreshed_at, consented_at,
                  created_at, updated_at
           FROM gmail_token WHERE user_id = $1"#,
        user_id
    )
    .fetch_optional(db)
    .await
}

/// Read the row and lock it until the transaction ends.
pub async fn find_for_update(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
) -> Result<Option<TokenRow>, sqlx::Error> {
    sqlx::query_as!(
        TokenRow,
        r#"SELECT user_id, email, google_sub, access_token, refresh_token, token_type,
                  expires_at, scopes, status, last_error, last_refreshed_at, consented_at,
                  created_at, updated_at
           FROM gmail_token WHERE user_id = $1 FOR UPDATE"#,
        user_id
    )
    .fetch_optional(db)
    .await
}

/// What a completed consent writes.
pub struct ConsentWrite<'a> {
    pub user_id: Uuid,
    pub email: Option<&'a str>,
    pub google_sub: &'a str,
    pub access_token: &'a str,
    /// `None` stores NULL: the caller decides whether an old one is kept.
    pub refresh_token: Option<&'a str>,
    pub token_type: &'a str,
    pub expires_at: Option<DateTime<Utc>>,
    pub scopes: serde_json::Value,
    pub last_error: Option<&'a str>,
}

/// Insert or replace the connection after a consent; status becomes `active`.
pub async fn upsert_consent(
    db: impl PgExecutor<'_>,
    w: &ConsentWrite<'_>,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        r#"INSERT INTO gmail_token
               (user_id, email, google_sub, access_token, refresh_token, token_type, expires_at,
                scopes, status, last_error, consented_at, created_at, updated_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'active', $9, now(), now(), now())
           ON CONFLICT (user_id) DO UPDATE SET
               email = EXCLUDED.email,
               google_sub = EXCLUDED.google_sub,
               access_token = EXCLUDED.access_token,
               refresh_token = EXCLUDED.refresh_token,
               token_type = EXCLUDED.token_type,
               expires_at = EXCLUDED.expires_at,
               scopes = EXCLUDED.scopes,
               status = 'active',
               last_error = EXCLUDED.last_error,
               consented_at = now(),
               updated_at = now()"#,
        w.user_id,
        w.email,
        w.google_sub,
        w.access_token,
        w.refresh_token,
        w.token_type,
        w.expires_at,
        w.scopes,
        w.last_error,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Number of rows (tests and the report).
pub async fn count(pool: &PgPool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar!(r#"SELECT count(*) AS "n!" FROM gmail_token"#)
        .fetch_one(pool)
        .await
}

/// Delete a user's connection; true when there was one.
pub async fn delete(db: impl PgExecutor<'_>, user_id: Uuid) -> Result<bool, sqlx::Error> {
    let r = sqlx::query!(r#"DELETE FROM gmail_token WHERE user_id = $1"#, user_id)
        .execute(db)
        .await?;
    Ok(r.rows_affected() > 0)
}
