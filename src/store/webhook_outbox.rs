//! `webhook_outbox`: state changes to announce, delivered at least once.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;
use uuid::Uuid;

pub(crate) struct NewOutbox<'a> {
    pub event_id: Uuid,
    pub kind: &'a str,
    pub user_id: Uuid,
    pub payload: serde_json::Value,
}

pub(crate) async fn insert(db: impl PgExecutor<'_>, e: &NewOutbox<'_>) -> Result<(), sqlx::Error> {
    sqlx::query!(
        r#"INSERT INTO webhook_outbox (event_id, kind, user_id, payload) VALUES ($1, $2, $3, $4)"#,
        e.event_id,
        e.kind,
        e.user_id,
        e.payload,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// An event claimed for delivery.
#[derive(Debug, Clone)]
pub(crate) struct Claimed {
    pub id: i64,
    pub event_id: Uuid,
    pub kind: String,
    pub payload: serde_json::Value,
    pub attempts: i32,
}

/// Claim up to `limit` due events for `lease_secs`: no other dispatcher takes
/// them until the lease ends (a crashed dispatcher's lease simply expires).
pub(crate) async fn claim(
    db: impl PgExecutor<'_>,
    limit: i64,
    lease_secs: f64,
) -> Result<Vec<Claimed>, sqlx::Error> {
    sqlx::query_as!(
        Claimed,
        r#"UPDATE webhook_outbox o SET
               locked_until = now() + make_interval(secs => $2),
               attempts = o.attempts + 1
           WHERE o.id IN (
               SELECT id FROM webhook_outbox
               WHERE status = 'pending' AND next_attempt_at <= now()
                 AND (locked_until IS NULL OR locked_until < now())
               ORDER BY next_attempt_at, id
               LIMIT $1
               FOR UPDATE SKIP LOCKED)
           RETURNING o.id, o.event_id, o.kind, o.payload, o.attempts"#,
        limit,
        lease_secs,
    )
    .fetch_all(db)
    .await
}

pub(crate) async fn mark_delivered(db: impl PgExecutor<'_>, id: i64) -> Result<(), sqlx::Error> {
    sqlx::query!(
        r#"UPDATE webhook_outbox SET status = 'delivered', delivered_at = now(), locked_until = NULL,
               last_error = NULL
           WHERE id = $1"#,
        id
    )
    .execute(db)
    .await?;
    Ok(())
}

pub(crate) async fn mark_retry(
    db: impl PgExecutor<'_>,
    id: i64,
    next_attempt_at: DateTime<Utc>,
    error: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        r#"UPDATE webhook_outbox SET next_attempt_at = $2, locked_until = NULL, last_error = $3
           WHERE id = $1 AND status = 'pending'"#,
        id,
        next_attempt_at,
        error,
    )
    .execute(db)
    .await?;
    Ok(())
}

pub(crate) async fn mark_dead(
    db: impl PgExecutor<'_>,
    id: i64,
    error: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        r#"UPDATE webhook_outbox SET status = 'dead', locked_until = NULL, last_error = $2 WHERE id = $1"#,
        id,
        error,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Put every dead letter back in the queue; returns how many.
pub(crate) async fn retry_dead(db: impl PgExecutor<'_>) -> Result<u64, sqlx::Error> {
    let r = sqlx::query!(
        r#"UPDATE webhook_outbox SET status = 'pending', attempts = 0, next_attempt_at = now(),
               locked_until = NULL
           WHERE status = 'dead'"#
    )
    .execute(db)
    .await?;
    Ok(r.rows_affected())
}

/// Events by status.
pub(crate) struct Backlog {
    pub pending: i64,
    pub dead: i64,
    pub delivered: i64,
    pub oldest_pending: Option<DateTime<Utc>>,
}

pub(crate) async fn backlog(db: impl PgExecutor<'_>) -> Result<Backlog, sqlx::Error> {
    sqlx::query_as!(
        Backlog,
        r#"SELECT count(*) FILTER (WHERE status = 'pending') AS "pending!",
                  count(*) FILTER (WHERE status = 'dead') AS "dead!",
                  count(*) FILTER (WHERE status = 'delivered') AS "delivered!",
                  min(created_at) FILTER (WHERE status = 'pending') AS oldest_pending
           FROM webhook_outbox"#
    )
    .fetch_one(db)
    .await
}

/// Delete up to `limit` events delivered before `cutoff`; returns how many.
/// Pending and dead events are never pruned.
pub(crate) async fn prune_delivered(
    db: impl PgExecutor<'_>,
    cutoff: DateTime<Utc>,
    limit: i64,
) -> Result<u64, sqlx::Error> {
    let r = sqlx::query!(
        r#"DELETE FROM webhook_outbox WHERE id IN (
               SELECT id FROM webhook_outbox
               WHERE status = 'delivered' AND delivered_at < $1
               ORDER BY delivered_at LIMIT $2
               FOR UPDATE SKIP LOCKED)"#,
        cutoff,
        limit,
    )
    .execute(db)
    .await?;
    Ok(r.rows_affected())
}
