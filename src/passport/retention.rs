//! Retention: every `RETENTION_INTERVAL_SECS`, `passport_event` and
//! `risc_event` rows older than `EVENT_RETENTION_DAYS`, fetch ledger rows
//! older than `LEDGER_RETENTION_DAYS` and webhooks delivered more than
//! `WEBHOOK_RETENTION_DAYS` ago are deleted, `RETENTION_BATCH` rows per
//! statement, so no transaction grows with the backlog. Pending and dead
//! webhooks are never pruned. Every instance runs it; batches skip rows
//! another instance is deleting.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use crate::passport::Passport;
use crate::store::{passport_event, risc_event, token_fetch_ledger, webhook_outbox};

/// Rows deleted by one pruning round.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pruned {
    pub events: u64,
    pub webhooks: u64,
    pub ledger: u64,
    /// `risc_event` rows (kept as long as `passport_event`).
    pub risc_events: u64,
}

/// One round: every table, batch after batch, until a batch comes back short
/// or `stop` is cancelled (between two batches).
async fn prune_once(app: &Passport, stop: &CancellationToken) -> Result<Pruned, sqlx::Error> {
    let r = app.settings.retention;
    let batch = i64::from(r.batch);
    let mut pruned = Pruned::default();
    if let Some(cutoff) = cutoff(r.events) {
        let db = &app.db;
        pruned.events = batches(batch, stop, || passport_event::prune(db, cutoff, batch)).await?;
        let prune = || risc_event::prune(db, cutoff, batch);
        pruned.risc_events = batches(batch, stop, prune).await?;
    }
    if let Some(cutoff) = cutoff(r.delivered_webhooks) {
        let db = &app.db;
        let prune = || webhook_outbox::prune_delivered(db, cutoff, batch);
        pruned.webhooks = batches(batch, stop, prune).await?;
    }
    if let Some(cutoff) = cutoff(r.ledger) {
        let db = &app.db;
        let prune = || token_fetch_ledger::prune(db, cutoff, batch);
        pruned.ledger = batches(batch, stop, prune).await?;
    }
    Ok(pruned)
}

/// Now minus `keep`, when something is pruned at all.
fn cutoff(keep: Option<Duration>) -> Option<DateTime<Utc>> {
    let keep = chrono::Duration::from_std(keep?).ok()?;
    Utc::now().checked_sub_signed(keep)
}

/// Run `prune` until it deletes fewer than `batch` rows; the total.
async fn batches<F, Fut>(batch: i64, stop: &CancellationToken, prune: F) -> Result<u64, sqlx::Error>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<u64, sqlx::Error>>,
{
    let mut total = 0;
    while !stop.is_cancelled() {
        let n = prune().await?;
        total += n;
        if n < batch as u64 {
            break;
        }
        tokio::task::yield_now().await;
    }
    Ok(total)
}

/// Prune every `RETENTION_INTERVAL_SECS` until `stop` is cancelled.
pub(crate) async fn run_pruner(app: Arc<Passport>, stop: CancellationToken) {
    let r = app.settings.retention;
    if r.events.is_none() && r.delivered_webhooks.is_none() && r.ledger.is_none() {
        return;
    }
    while !stop.is_cancelled() {
        match prune_once(&app, &stop).await {
            Ok(p) if p == Pruned::default() => {}
            Ok(p) => {
                metrics::counter!("passport_retention_deleted_total", "table" => "passport_event")
                    .increment(p.events);
                metrics::counter!("passport_retention_deleted_total", "table" => "webhook_outbox")
                    .increment(p.webhooks);
                metrics::counter!("passport_retention_deleted_total", "table" => "token_fetch_ledger")
                    .increment(p.ledger);
                metrics::counter!("passport_retention_deleted_total", "table" => "risc_event")
                    .increment(p.risc_events);
                tracing::info!(
                    events = p.events,
                    webhooks = p.webhooks,
                    ledger = p.ledger,
                    risc_events = p.risc_events,
                    "old rows pruned"
                );
            }
            Err(e) => tracing::warn!(error = %e, "pruning old rows failed; will try again"),
        }
        stop.run_until_cancelled(tokio::time::sleep(r.interval))
            .await;
    }
}
