//! Durable webhooks. A state change writes its announcement to the outbox in
//! the same transaction; a dispatcher (any number of instances) delivers it
//! to `WEBHOOK_URL`, signed, at least once, retrying with exponential backoff
//! and jitter for hours, and keeps what never got through as a dead letter.
//! One request per event at a time (a lease renewed while the request is
//! open, the request dropped before a lease it cannot keep runs out), and a
//! user's events in order (one is not sent while an earlier one of the same
//! user is pending). The contract is docs/webhooks.md.
//!
//! Request: `POST WEBHOOK_URL`, JSON body (see docs/webhooks.md), headers
//! `X-Passport-Event-Id` (the idempotency id), `X-Passport-Timestamp` (unix
//! seconds) and `X-Passport-Signature: v2=<hex HMAC-SHA256(secret,
//! "<timestamp>.<event id>.<body>")>`: the event id is signed, so a captured
//! delivery cannot be replayed under a fresh id. Never a token in it.

use std::time::Duration;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use rand::Rng;
use secrecy::ExposeSecret;
use serde::Serialize;
use sha2::Sha256;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::config::WebhookSettings;
use crate::notify::{Delivery, Signed};
use crate::passport::Passport;
use crate::scopes::ScopeSet;
use crate::store::webhook_outbox::{self, Claimed, NewOutbox};

/// The longest wait between two attempts.
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// A state change to announce (`type` is `passport.<kind>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, strum::IntoStaticStr)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub(crate) enum Kind {
    Connected,
    Upgraded,
    PartialGrant,
    AccountChanged,
    ReauthRequired,
    Recovered,
    Disconnected,
    /// The stored scopes were edited outside the service and corrected from
    /// what Google says the grant holds.
    ScopesCorrected,
}

impl Kind {
    pub(crate) fn as_str(self) -> &'static str {
        self.into()
    }
}

/// What the announcement says about the connection (never a token).
#[derive(Debug, Default, Clone, Serialize)]
pub(crate) struct Facts<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_email: Option<&'a str>,
    #[serde(
        rename = "granted_scopes",
        skip_serializing_if = "Option::is_none",
        serialize_with = "short_names"
    )]
    pub granted: Option<&'a ScopeSet>,
    /// What the row claimed before it was corrected (`scopes_corrected`).
    #[serde(
        rename = "previous_scopes",
        skip_serializing_if = "Option::is_none",
        serialize_with = "short_names"
    )]
    pub previous: Option<&'a ScopeSet>,
    #[serde(
        rename = "missing_scopes",
        skip_serializing_if = "Option::is_none",
        serialize_with = "short_names"
    )]
    pub missing: Option<&'a ScopeSet>,
    /// Why the connection broke (`reauth_required`): `"<code>: <detail>"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<&'a str>,
    /// The code alone (`invalid_grant`, `invalid_rapt`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause_code: Option<&'a str>,
    /// How the grant ended at Google (`disconnected`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revocation: Option<&'a str>,
}

fn short_names<S: serde::Serializer>(set: &Option<&ScopeSet>, s: S) -> Result<S::Ok, S::Error> {
    match set {
        Some(set) => s.collect_seq(set.short_names()),
        None => s.serialize_none(),
    }
}

/// The body of a webhook request (see docs/webhooks.md).
#[derive(Debug, Serialize)]
struct Payload<'a> {
    id: Uuid,
    #[serde(rename = "type")]
    kind: String,
    provider: &'a str,
    user_id: Uuid,
    occurred_at: DateTime<Utc>,
    reauth_url: String,
    data: Facts<'a>,
}

/// Write an announcement in the caller's transaction (nothing when webhooks
/// are off).
pub(crate) async fn enqueue(
    tx: &mut sqlx::PgConnection,
    app: &Passport,
    provider: &crate::passport::provider::Provider,
    kind: Kind,
    user: Uuid,
    facts: Facts<'_>,
) -> Result<(), sqlx::Error> {
    if app.settings.webhooks.is_none() {
        return Ok(());
    }
    let payload = Payload {
        id: Uuid::new_v4(),
        kind: format!("passport.{}", kind.as_str()),
        provider: provider.name,
        user_id: user,
        occurred_at: Utc::now(),
        reauth_url: app.reauth_url(provider).to_string(),
        data: facts,
    };
    let outbox = NewOutbox {
        event_id: payload.id,
        kind: kind.as_str(),
        user_id: user,
        payload: serde_json::to_value(&payload).expect("a payload of strings encodes"),
    };
    webhook_outbox::insert(&mut *tx, &outbox).await
}

/// `v2=` + hex HMAC-SHA256 over `"<timestamp>.<event id>.<body>"` (the id
/// in its hyphenated lower-case form, as in `X-Passport-Event-Id`). `v1`
/// signed only the timestamp and the body; it is no longer sent.
pub(crate) fn sign(secret: &[u8], timestamp: i64, event_id: Uuid, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(format!("{timestamp}.{event_id}.").as_bytes());
    mac.update(body);
    let bytes = mac.finalize().into_bytes();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("v2={hex}")
}

/// Delay before attempt `attempts + 1`: base × 2^(attempts-1), capped, with
/// up to 25 % jitter.
pub(crate) fn backoff(base: Duration, attempts: u32) -> Duration {
    let exp = base.saturating_mul(2u32.saturating_pow(attempts.saturating_sub(1).min(20)));
    let capped = exp.min(MAX_BACKOFF);
    let jitter = rand::thread_rng().gen_range(0..=capped.as_millis() as u64 / 4);
    capped + Duration::from_millis(jitter)
}

async fn deliver(app: &Passport, hooks: &WebhookSettings, event: &Claimed) -> Delivery {
    let body = match serde_json::to_vec(&event.payload) {
        Ok(b) => b,
        Err(e) => return Delivery::Failed(format!("cannot encode: {e}")),
    };
    let timestamp = Utc::now().timestamp();
    let secret = hooks.secret.expose_secret().as_bytes();
    let signature = sign(secret, timestamp, event.event_id, &body);
    let request = Signed {
        event_id: event.event_id,
        timestamp,
        signature,
        body,
        url: &hooks.url,
        timeout: hooks.timeout,
    };
    app.webhook_sender.send(request).await
}

/// How a claimed event's delivery ended.
enum Attempt {
    /// The request went out and this is how it went.
    Sent(Delivery),
    /// The lease could not be kept: the request was dropped unanswered.
    LeaseLost,
    /// The instance is stopping and the request did not finish in time: it
    /// was dropped and the event handed back.
    Stopped,
}

/// Deliver the next due event, if there is one: claim it, send it while
/// holding its lease, record the outcome. Returns whether one was claimed.
async fn dispatch_one(
    app: &Passport,
    hooks: &WebhookSettings,
    stop: &CancellationToken,
) -> Result<bool, sqlx::Error> {
    // Before the claim is sent: the database counts the lease from later.
    let claimed_at = Instant::now();
    let lease_id = Uuid::new_v4();
    let lease_secs = hooks.lease.as_secs_f64();
    let Some(event) = webhook_outbox::claim_next(&app.db, lease_id, lease_secs).await? else {
        return Ok(false);
    };
    // A delivery under way when the instance stops gets half the grace
    // period to finish.
    let finish_by = app.settings.shutdown_grace / 2;
    let attempt = tokio::select! {
        delivery = deliver(app, hooks, &event) => Attempt::Sent(delivery),
        () = keep_lease(app, hooks.lease, &event, claimed_at) => Attempt::LeaseLost,
        () = async { stop.cancelled().await; tokio::time::sleep(finish_by).await } => Attempt::Stopped,
    };
    let label = match attempt {
        Attempt::Sent(delivery) => record(app, hooks, &event, delivery).await?,
        Attempt::LeaseLost => {
            tracing::warn!(event = %event.event_id, kind = %event.kind, "webhook lease not kept; request dropped before the lease could run out");
            "abandoned"
        }
        Attempt::Stopped => {
            tracing::warn!(event = %event.event_id, kind = %event.kind, "stopping: webhook request dropped, event handed back");
            webhook_outbox::release(&app.db, event.id, event.lease_id).await?;
            "abandoned"
        }
    };
    metrics::counter!("passport_webhook_deliveries_total", "outcome" => label).increment(1);
    Ok(true)
}

/// Keep `event`'s lease while it is being delivered: renewed every third of
/// the lease. Returns only when the lease is lost (another dispatcher holds
/// the event) or could not be confirmed in time (database unreachable): a
/// tenth of the lease before it can run out, so that the caller drops the
/// request before any other dispatcher may claim the event.
async fn keep_lease(app: &Passport, lease: Duration, event: &Claimed, claimed_at: Instant) {
    let margin = lease / 10;
    let mut held_until = claimed_at + lease - margin;
    let mut wait = lease / 3;
    loop {
        let renewal = async {
            tokio::time::sleep(wait).await;
            let sent_at = Instant::now();
            let secs = lease.as_secs_f64();
            let held = webhook_outbox::renew(&app.db, event.id, event.lease_id, secs).await?;
            Ok::<_, sqlx::Error>(held.then_some(sent_at))
        };
        match tokio::time::timeout_at(held_until, renewal).await {
            Ok(Ok(Some(sent_at))) => {
                held_until = sent_at + lease - margin;
                wait = lease / 3;
            }
            Ok(Ok(None)) | Err(_) => return,
            Ok(Err(e)) => {
                tracing::debug!(error = %e, event = %event.event_id, "webhook lease not renewed; trying again");
                wait = (lease / 10).min(Duration::from_secs(1));
            }
        }
    }
}

/// Record how a delivery went (under the claim's lease); returns the metric
/// label.
async fn record(
    app: &Passport,
    hooks: &WebhookSettings,
    event: &Claimed,
    outcome: Delivery,
) -> Result<&'static str, sqlx::Error> {
    let (db, id, lease) = (&app.db, event.id, event.lease_id);
    let (label, recorded) = match &outcome {
        Delivery::Delivered => (
            "delivered",
            webhook_outbox::mark_delivered(db, id, lease).await?,
        ),
        Delivery::Gone => {
            tracing::warn!(event = %event.event_id, kind = %event.kind, "webhook receiver is gone (410); dead letter");
            let why = "receiver answered 410 Gone";
            ("dead", webhook_outbox::mark_dead(db, id, lease, why).await?)
        }
        Delivery::Failed(why) if event.attempts as u32 >= hooks.max_attempts => {
            tracing::warn!(event = %event.event_id, kind = %event.kind, attempts = event.attempts, error = %why, "webhook gave up; dead letter");
            ("dead", webhook_outbox::mark_dead(db, id, lease, why).await?)
        }
        Delivery::Failed(why) => {
            let wait = backoff(hooks.retry_base, event.attempts as u32);
            let next = Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default();
            tracing::info!(event = %event.event_id, attempts = event.attempts, retry_in_ms = wait.as_millis() as u64, error = %why, "webhook delivery failed; will retry");
            (
                "retry",
                webhook_outbox::mark_retry(db, id, lease, next, why).await?,
            )
        }
    };
    if !recorded {
        tracing::warn!(event = %event.event_id, outcome = label, "webhook lease ran out before the outcome was recorded; another dispatcher has the event");
    }
    Ok(label)
}

impl Passport {
    /// Put every dead letter back in the queue; returns how many.
    pub(crate) async fn retry_dead_webhooks(&self) -> Result<u64, sqlx::Error> {
        webhook_outbox::retry_dead(&self.db).await
    }

    /// How many announcements wait, died or were delivered.
    pub(crate) async fn webhook_backlog(&self) -> Result<webhook_outbox::Backlog, sqlx::Error> {
        webhook_outbox::backlog(&self.db).await
    }
}

/// Deliver until `stop` is cancelled. Database errors are logged and the
/// loop goes on: a restarting database only delays deliveries.
pub(crate) async fn run_dispatcher(app: std::sync::Arc<Passport>, stop: CancellationToken) {
    let Some(hooks) = app.settings.webhooks.clone() else {
        return;
    };
    let mut rounds: u64 = 0;
    while !stop.is_cancelled() {
        // A stop lets the delivery under way finish (for half the grace
        // period) and record its outcome.
        let claimed = match dispatch_one(&app, &hooks, &stop).await {
            Ok(claimed) => claimed,
            Err(e) => {
                tracing::warn!(error = %e, "webhook dispatcher: database unavailable; retrying");
                false
            }
        };
        rounds += 1;
        if rounds % 30 == 1 {
            if let Err(e) = record_backlog(&app).await {
                tracing::debug!(error = %e, "webhook backlog gauges not updated");
            }
        }
        if !claimed {
            stop.run_until_cancelled(tokio::time::sleep(hooks.poll))
                .await;
        }
    }
}

/// Refresh the outbox gauges (pending, dead letters).
pub(crate) async fn record_backlog(app: &Passport) -> Result<(), sqlx::Error> {
    let b = webhook_outbox::backlog(&app.db).await?;
    metrics::gauge!("passport_webhook_outbox_pending").set(b.pending as f64);
    metrics::gauge!("passport_webhook_outbox_dead").set(b.dead as f64);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_sha256_over_timestamp_event_id_and_body() {
        let id: Uuid = "3f0c9a4e-0000-4000-8000-000000000001".parse().unwrap();
        // HMAC-SHA256("key", "1700000000.3f0c9a4e-0000-4000-8000-000000000001.{}")
        // computed independently.
        let s = sign(b"key", 1_700_000_000, id, b"{}");
        assert_eq!(
            s,
            "v2=610b5ea4bef1b8868980adba0e013f90d680559e5638d30b639bcebdfa264113"
        );
        assert_ne!(s, sign(b"key", 1_700_000_001, id, b"{}"));
        assert_ne!(s, sign(b"other", 1_700_000_000, id, b"{}"));
        assert_ne!(s, sign(b"key", 1_700_000_000, id, b"{ }"));
        // Another event id, same timestamp and body: another signature.
        let other: Uuid = "3f0c9a4e-0000-4000-8000-000000000002".parse().unwrap();
        assert_eq!(
            sign(b"key", 1_700_000_000, other, b"{}"),
            "v2=97c70471e90c75cdfe2e2efa0f23cc900c25d594f04498bd77f852b4fe88aa04"
        );
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let base = Duration::from_secs(10);
        assert!(
            backoff(base, 1) >= Duration::from_secs(10)
                && backoff(base, 1) <= Duration::from_millis(12_500)
        );
        assert!(backoff(base, 4) >= Duration::from_secs(80));
        assert!(backoff(base, 30) <= MAX_BACKOFF + MAX_BACKOFF / 4);
    }
}
