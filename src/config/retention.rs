//! Retention: how long the audit trail, the fetch ledger and delivered
//! webhooks are kept.

use std::time::Duration;

use super::Checker;

keys! {
    EVENT_RETENTION_DAYS,
    WEBHOOK_RETENTION_DAYS,
    LEDGER_RETENTION_DAYS,
    RETENTION_BATCH,
    RETENTION_INTERVAL_SECS,
}

/// The background pruning of old rows.
#[derive(Debug, Clone, Copy)]
pub struct RetentionSettings {
    /// `passport_event` rows older than this are deleted; `None`: kept forever.
    pub events: Option<Duration>,
    /// Delivered `webhook_outbox` rows older than this are deleted (pending
    /// and dead ones never are); `None`: kept forever.
    pub delivered_webhooks: Option<Duration>,
    /// `token_fetch_ledger` rows whose minute is older than this are deleted
    /// (default: as `EVENT_RETENTION_DAYS`); `None`: kept forever.
    pub ledger: Option<Duration>,
    /// Rows deleted per statement (one short transaction each).
    pub batch: u32,
    /// How often pruning runs.
    pub interval: Duration,
}

const DAY: u64 = 86_400;

pub(super) fn check(c: &mut Checker) -> RetentionSettings {
    let mut number = |key, default| c.number(key, default, 0..=36_500, "days");
    let event_days = number(EVENT_RETENTION_DAYS, 400);
    let webhook_days = number(WEBHOOK_RETENTION_DAYS, 14);
    let ledger_days = number(LEDGER_RETENTION_DAYS, event_days);
    let days = |n: u64| (n > 0).then(|| Duration::from_secs(n * DAY));
    RetentionSettings {
        events: days(event_days),
        delivered_webhooks: days(webhook_days),
        ledger: days(ledger_days),
        batch: c.number(RETENTION_BATCH, 1000, 1..=100_000, "rows") as u32,
        interval: c.seconds(RETENTION_INTERVAL_SECS, 3600, 1..=86_400),
    }
}
