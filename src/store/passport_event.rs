//! `passport_event`: the append-only audit trail.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;
use uuid::Uuid;

/// Kinds of event, as stored in `passport_event.kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::Type, strum::IntoStaticStr)]
#[sqlx(type_name = "text", rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum EventKind {
    ConsentStarted,
    Connected,
    Upgraded,
    /// A consent that granted the same account the same permissions as the
    /// working connection (a second tab): new tokens stored, nothing else.
    Unchanged,
    PartialGrant,
    Denied,
    AccountChanged,
    Refreshed,
    RefreshFailed,
    ReauthRequired,
    Disconnected,
    /// The stored scopes were not what Google granted (edited outside the
    /// service): the row was corrected from Google's answer.
    ScopesCorrected,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

pub(crate) struct NewEvent<'a> {
    pub user_id: Uuid,
    pub provider: &'a str,
    pub kind: EventKind,
    pub scopes_before: Option<serde_json::Value>,
    pub scopes_after: Option<serde_json::Value>,
    pub email_before: Option<&'a str>,
    pub email_after: Option<&'a str>,
    pub error_code: Option<&'a str>,
    pub detail: Option<&'a str>,
}

impl<'a> NewEvent<'a> {
    pub(crate) fn new(user_id: Uuid, provider: &'a str, kind: EventKind) -> Self {
        Self {
            user_id,
            provider,
            kind,
            scopes_before: None,
            scopes_after: None,
            email_before: None,
            email_after: None,
            error_code: None,
            detail: None,
        }
    }
}

pub(crate) async fn insert(db: impl PgExecutor<'_>, e: &NewEvent<'_>) -> Result<(), sqlx::Error> {
    sqlx::query!(
        r#"INSERT INTO passport_event
               (user_id, provider, kind, scopes_before, scopes_after, email_before, email_after,
                error_code, detail)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"#,
        e.user_id,
        e.provider,
        e.kind.as_str(),
        e.scopes_before,
        e.scopes_after,
        e.email_before,
        e.email_after,
        e.error_code,
        e.detail,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// A stored event.
#[derive(Debug, Clone)]
pub struct EventRow {
    pub id: i64,
    pub user_id: Uuid,
    pub provider: String,
    pub kind: EventKind,
    pub scopes_before: Option<serde_json::Value>,
    pub scopes_after: Option<serde_json::Value>,
    pub email_before: Option<String>,
    pub email_after: Option<String>,
    pub error_code: Option<String>,
    pub detail: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// The user's most recent events, newest first.
pub async fn recent_for_user(
    db: impl PgExecutor<'_>,
    user_id: Uuid,
    provider: &str,
    limit: i64,
) -> Result<Vec<EventRow>, sqlx::Error> {
    sqlx::query_as!(
        EventRow,
        r#"SELECT id, user_id, provider, kind AS "kind: EventKind", scopes_before, scopes_after, email_before,
                  email_after, error_code, detail, created_at
           FROM passport_event
           WHERE user_id = $1 AND provider = $2
           ORDER BY id DESC LIMIT $3"#,
        user_id,
        provider,
        limit,
    )
    .fetch_all(db)
    .await
}

/// How many events of `kind` are kept (the report's count of corrections).
pub(crate) async fn count_kind(
    db: impl PgExecutor<'_>,
    provider: &str,
    kind: EventKind,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM passport_event WHERE provider = $1 AND kind = $2"#,
        provider,
        kind.as_str(),
    )
    .fetch_one(db)
    .await
}

/// Delete up to `limit` events created before `cutoff`, oldest first; returns
/// how many. Rows another instance is deleting are skipped, not waited for.
pub(crate) async fn prune(
    db: impl PgExecutor<'_>,
    cutoff: DateTime<Utc>,
    limit: i64,
) -> Result<u64, sqlx::Error> {
    let r = sqlx::query!(
        r#"DELETE FROM passport_event WHERE id IN (
               SELECT id FROM passport_event WHERE created_at < $1
               ORDER BY created_at LIMIT $2
               FOR UPDATE SKIP LOCKED)"#,
        cutoff,
        limit,
    )
    .execute(db)
    .await?;
    Ok(r.rows_affected())
}
