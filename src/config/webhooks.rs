//! Webhooks: where state changes are announced, and how delivery retries.

use std::fmt;
use std::time::Duration;

use secrecy::SecretString;
use url::Url;

use super::secrets::{self, Maker};
use super::Checker;

keys! {
    WEBHOOK_URL,
    WEBHOOK_SECRET,
    WEBHOOK_MAX_ATTEMPTS,
    WEBHOOK_RETRY_BASE_MS,
    WEBHOOK_TIMEOUT_SECS,
    WEBHOOK_POLL_MS,
    WEBHOOK_LEASE_SECS,
}

/// Shortest accepted signing secret, in bytes.
const MIN_SECRET_LEN: usize = 32;

/// Webhook delivery.
#[derive(Clone)]
pub struct WebhookSettings {
    pub url: Url,
    pub secret: SecretString,
    /// Attempts before an event becomes a dead letter.
    pub max_attempts: u32,
    /// First retry delay; doubled each time (with jitter), capped at an hour.
    pub retry_base: Duration,
    pub timeout: Duration,
    pub poll: Duration,
    /// How long a claim on an event lasts: renewed every third of it while the
    /// event is being delivered; after a crash, how long until another
    /// instance takes the event over.
    pub lease: Duration,
}

impl fmt::Debug for WebhookSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookSettings")
            .field("url", &self.url.as_str())
            .field("secret", &"[redacted]")
            .field("max_attempts", &self.max_attempts)
            .field("retry_base", &self.retry_base)
            .field("timeout", &self.timeout)
            .field("poll", &self.poll)
            .field("lease", &self.lease)
            .finish()
    }
}

/// `None`: webhooks off (no `WEBHOOK_URL`; nothing else is checked then), or
/// a problem was reported.
pub(super) fn check(c: &mut Checker) -> Option<WebhookSettings> {
    c.value(WEBHOOK_URL)?;
    let url = c.url(WEBHOOK_URL, None);
    let secret = c.value(WEBHOOK_SECRET);
    match &secret {
        None => c.problem(format!(
            "WEBHOOK_SECRET is not set (needed with WEBHOOK_URL, at least {MIN_SECRET_LEN} bytes)"
        )),
        Some(s) => {
            if let Some(w) = secrets::own_secret(s, MIN_SECRET_LEN) {
                c.problem(w.problem(WEBHOOK_SECRET, Maker::Us));
            }
        }
    }
    let max_attempts = c.number(WEBHOOK_MAX_ATTEMPTS, 12, 1..=100, "attempts") as u32;
    let retry_base = c.millis(WEBHOOK_RETRY_BASE_MS, 10_000, 10..=3_600_000);
    let timeout = c.seconds(WEBHOOK_TIMEOUT_SECS, 10, 1..=120);
    let poll = c.millis(WEBHOOK_POLL_MS, 1000, 10..=60_000);
    let lease = c.seconds(WEBHOOK_LEASE_SECS, 60, 1..=3600);
    Some(WebhookSettings {
        url: url?,
        secret: SecretString::from(secret?),
        max_attempts,
        retry_base,
        timeout,
        poll,
        lease,
    })
}
