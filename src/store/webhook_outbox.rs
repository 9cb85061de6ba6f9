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
    /// The claim holding the event: renewals and outcomes name it.
    pub lease_id: Uuid,
}

/// Claim the next due event for `lease_secs` under `lease_id`: no other
/// dispatcher takes it until the lease ends (a crashed dispatcher's lease
/// simply expires). Only the first pending event of each user is due: an
/// event waits while an earlier one of the same user is being delivered or
/// waiting for a retry; dead and delivered events do not hold it back.
pub(crate) async fn claim_next(
    db: impl PgExecutor<'_>,
    lease_id: Uuid,
    lease_secs: f64,
) -> Result<Option<Claimed>, sqlx::Error> {
    sqlx::query_as!(
        Claimed,
        r#"UPDATE webhook_outbox o SET
               locked_until = now() + make_interval(secs => $2),
               attempts = o.attempts + 1,
               lease_id = $1
           WHERE o.id IN (
               SELECT c.id FROM webhook_outbox c
               WHERE c.status = 'pending' AND c.next_attempt_at <= now()
                 AND (c.locked_until IS NULL OR c.locked_until < now())
                 AND NOT EXISTS (
                     SELECT 1 FROM webhook_outbox e
                     WHERE e.user_id = c.user_id AND e.status = 'pending' AND e.id < c.id)
               ORDER BY c.next_attempt_at, c.id
               LIMIT 1
               FOR UPDATE OF c SKIP LOCKED)
           RETURNING o.id, o.event_id, o.kind, o.payload, o.attempts, o.lease_id AS "lease_id!""#,
        lease_id,
        lease_secs,
    )
    .fetch_optional(db)
    .await
}

/// Extend a lease that is still held; false when it ran out or another
/// dispatcher holds the event now.
pub(crate) async fn renew(
    db: impl PgExecutor<'_>,
    id: i64,
    lease_id: Uuid,
    lease_secs: f64,
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query!(
        r#"UPDATE webhook_outbox SET locked_until = now() + make_interval(secs => $3)
           WHERE id = $1 AND lease_id = $2 AND status = 'pending' AND locked_until > now()"#,
        id,
        lease_id,
        lease_secs,
    )
    .execute(db)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Hand an event back undelivered: due again at once for any dispatcher.
pub(crate) async fn release(
    db: impl PgExecutor<'_>,
    id: i64,
    lease_id: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        r#"UPDATE webhook_outbox SET locked_until = NULL, next_attempt_at = now()
           WHERE id = $1 AND lease_id = $2 AND status = 'pending'"#,
        id,
        lease_id,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Outcomes are recorded only under the claim's own lease (false: another
/// dispatcher has claimed the event since, and records its own outcome).
pub(crate) async fn mark_delivered(
    db: impl PgExecutor<'_>,
    id: i64,
    lease_id: Uuid,
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query!(
        r#"UPDATE webhook_outbox SET status = 'delivered', delivered_at = now(), locked_until = NULL,
               last_error = NULL
           WHERE id = $1 AND lease_id = $2 AND status = 'pending'"#,
        id,
        lease_id,
    )
    .execute(db)
    .await?;
    Ok(r.rows_affected() == 1)
}

pub(crate) async fn mark_retry(
    db: impl PgExecutor<'_>,
    id: i64,
    lease_id: Uuid,
    next_attempt_at: DateTime<Utc>,
    error: &str,
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query!(
        r#"UPDATE webhook_outbox SET next_attempt_at = $3, locked_until = NULL, last_error = $4
           WHERE id = $1 AND lease_id = $2 AND status = 'pending'"#,
        id,
        lease_id,
        next_attempt_at,
        error,
    )
    .execute(db)
    .await?;
    Ok(r.rows_affected() == 1)
}

pub(crate) async fn mark_dead(
    db: impl PgExecutor<'_>,
    id: i64,
    lease_id: Uuid,
    error: &str,
) -> Result<bool, sqlx::Error> {
    let r = sqlx::query!(
        r#"UPDATE webhook_outbox SET status = 'dead', locked_until = NULL, last_error = $3
           WHERE id = $1 AND lease_id = $2 AND status = 'pending'"#,
        id,
        lease_id,
        error,
    )
    .execute(db)
    .await?;
    Ok(r.rows_affected() == 1)
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
