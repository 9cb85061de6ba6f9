//! The background refresh sweep: every `active` connection not refreshed for
//! `SWEEP_AFTER_SECS` (default 24 h) is refreshed, in small paced batches, so
//! that revocations are found before a skill fails in front of the user and
//! Google never expires a refresh token for sitting unused six months.
//!
//! It uses the same single-flight refresh as the token API (a sweep and a
//! skill never refresh one user twice); one instance sweeps at a time (a
//! session advisory lock, released by PostgreSQL if that instance dies, so
//! another one picks the work up); its pace is bounded by `SWEEP_PER_MINUTE`.

use std::time::Duration;

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::passport::token::TokenError;
use crate::passport::Passport;
use crate::scopes::ScopeSet;
use crate::store::{self, gmail_token};

/// What one sweep did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct SweepReport {
    /// Another instance holds the sweep.
    pub skipped: bool,
    pub refreshed: u32,
    pub reauth_required: u32,
    pub unavailable: u32,
    pub other: u32,
}

/// One sweep; stops between two users once `stop` is cancelled (never in
/// the middle of a refresh, and always releasing the sweep lock).
async fn sweep_once(app: &Passport, stop: &CancellationToken) -> Result<SweepReport, sqlx::Error> {
    let s = app.settings.sweep;
    let mut report = SweepReport::default();
    if s.after.is_zero() {
        return Ok(report);
    }
    let mut lock_conn = app.db.acquire().await?;
    if !store::try_sweep_lock(&mut lock_conn).await? {
        report.skipped = true;
        return Ok(report);
    }
    metrics::counter!("passport_sweeps_total").increment(1);
    let result = sweep_locked(app, &mut report, stop).await;
    let unlocked = store::sweep_unlock(&mut lock_conn).await;
    result?;
    unlocked?;
    Ok(report)
}

async fn sweep_locked(
    app: &Passport,
    report: &mut SweepReport,
    stop: &CancellationToken,
) -> Result<(), sqlx::Error> {
    let s = app.settings.sweep;
    let provider = app.providers.gmail().clone();
    let due =
        gmail_token::due_for_sweep(&app.db, s.after.as_secs_f64(), s.per_minute as i64).await?;
    let pause = Duration::from_secs(60) / s.per_minute.max(1);
    for (i, user) in due.iter().enumerate() {
        if i > 0 {
            stop.run_until_cancelled(tokio::time::sleep(pause)).await;
        }
        if stop.is_cancelled() {
            break;
        }
        let outcome = app.refresh(&provider, *user, &ScopeSet::new(), true).await;
        let (label, retry_later) = match outcome {
            Ok(_) => {
                report.refreshed += 1;
                ("refreshed", false)
            }
            Err(TokenError::ReauthRequired(_)) => {
                report.reauth_required += 1;
                ("reauth_required", false)
            }
            Err(TokenError::Unavailable { .. }) => {
                report.unavailable += 1;
                ("unavailable", true)
            }
            Err(TokenError::Database(e)) => return Err(e),
            Err(_) => {
                report.other += 1;
                ("other", false)
            }
        };
        metrics::counter!("passport_sweep_outcomes_total", "outcome" => label).increment(1);
        // Unavailable: tried again at the next sweep. Otherwise recorded.
        if !retry_later {
            gmail_token::mark_swept(&app.db, *user).await?;
        }
    }
    if !due.is_empty() {
        tracing::info!(?report, "refresh sweep done");
    }
    Ok(())
}

/// Sweep every `SWEEP_INTERVAL_SECS` until `stop` is cancelled.
pub(crate) async fn run_sweeper(app: Arc<Passport>, stop: CancellationToken) {
    let s = app.settings.sweep;
    if s.after.is_zero() {
        return;
    }
    while !stop.is_cancelled() {
        if let Err(e) = sweep_once(&app, &stop).await {
            tracing::warn!(error = %e, "refresh sweep failed; will try again");
        }
        stop.run_until_cancelled(tokio::time::sleep(s.interval))
            .await;
    }
}
