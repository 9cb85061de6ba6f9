//! `token_fetch_ledger`: how many tokens each caller was handed, per user,
//! provider, minute and requested scope set.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;
use uuid::Uuid;

/// Counts to add, column by column (one `unnest` statement writes them all).
#[derive(Debug, Default)]
pub(crate) struct Batch {
    pub callers: Vec<String>,
    pub users: Vec<Uuid>,
    pub providers: Vec<String>,
    pub minutes: Vec<DateTime<Utc>>,
    /// Each scope set as its sorted full URLs joined by spaces ("" for none).
    pub scopes: Vec<String>,
    pub tokens: Vec<i64>,
}

impl Batch {
    pub(crate) fn len(&self) -> usize {
        self.tokens.len()
    }
}

/// Add the batch's counts to the ledger in one statement. Rows of a batch
/// must be distinct by key.
pub(crate) async fn add(db: impl PgExecutor<'_>, b: &Batch) -> Result<(), sqlx::Error> {
    sqlx::query!(
        r#"INSERT INTO token_fetch_ledger (caller, user_id, provider, minute, scopes, tokens)
           SELECT caller, user_id, provider, minute,
                  CASE WHEN scopes = '' THEN '{}'::text[] ELSE string_to_array(scopes, ' ') END,
                  tokens
           FROM unnest($1::text[], $2::uuid[], $3::text[], $4::timestamptz[], $5::text[],
                       $6::int8[]) AS t(caller, user_id, provider, minute, scopes, tokens)
           ON CONFLICT (user_id, provider, minute, caller, scopes)
           DO UPDATE SET tokens = token_fetch_ledger.tokens + EXCLUDED.tokens"#,
        &b.callers,
        &b.users,
        &b.providers,
        &b.minutes,
        &b.scopes,
        &b.tokens,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// One row of the ledger.
#[derive(Debug, Clone)]
pub struct LedgerRow {
    pub minute: DateTime<Utc>,
    pub caller: String,
    /// Full scope URLs, sorted.
    pub scopes: Vec<String>,
    pub tokens: i64,
}

/// A user's rows since `since` (of one caller, if given), newest first, at
/// most `limit`.
pub(crate) async fn for_user(
    db: impl PgExecutor<'_>,
    user: Uuid,
    provider: &str,
    since: DateTime<Utc>,
    caller: Option<&str>,
    limit: i64,
) -> Result<Vec<LedgerRow>, sqlx::Error> {
    sqlx::query_as!(
        LedgerRow,
        r#"SELECT minute, caller, scopes, tokens FROM token_fetch_ledger
           WHERE user_id = $1 AND provider = $2 AND minute >= $3
             AND ($4::text IS NULL OR caller = $4)
           ORDER BY minute DESC, caller, scopes
           LIMIT $5"#,
        user,
        provider,
        since,
        caller,
        limit,
    )
    .fetch_all(db)
    .await
}

/// Tokens per caller for a user since `since` (of one caller, if given).
pub(crate) async fn totals(
    db: impl PgExecutor<'_>,
    user: Uuid,
    provider: &str,
    since: DateTime<Utc>,
    caller: Option<&str>,
) -> Result<Vec<(String, i64)>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"SELECT caller, sum(tokens)::int8 AS "tokens!" FROM token_fetch_ledger
           WHERE user_id = $1 AND provider = $2 AND minute >= $3
             AND ($4::text IS NULL OR caller = $4)
           GROUP BY caller ORDER BY caller"#,
        user,
        provider,
        since,
        caller,
    )
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(|r| (r.caller, r.tokens)).collect())
}

/// Delete at most `limit` rows whose minute is before `cutoff`; how many.
pub(crate) async fn prune(
    db: impl PgExecutor<'_>,
    cutoff: DateTime<Utc>,
    limit: i64,
) -> Result<u64, sqlx::Error> {
    let r = sqlx::query!(
        r#"DELETE FROM token_fetch_ledger WHERE ctid IN (
               SELECT ctid FROM token_fetch_ledger WHERE minute < $1
               ORDER BY minute LIMIT $2
               FOR UPDATE SKIP LOCKED)"#,
        cutoff,
        limit,
    )
    .execute(db)
    .await?;
    Ok(r.rows_affected())
}
