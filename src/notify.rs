//! Outbound webhook HTTP: one signed POST to a receiver, and how it went.
//! The adapter the passport's dispatcher delivers through (Google's client is
//! only for Google).

use std::time::Duration;

use url::Url;
use uuid::Uuid;

/// How one delivery went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Delivery {
    Delivered,
    /// Try again later.
    Failed(String),
    /// The receiver says the endpoint is gone (410): stop.
    Gone,
}

/// One webhook request, already encoded and signed.
pub(crate) struct Signed<'a> {
    pub event_id: Uuid,
    pub timestamp: i64,
    pub signature: String,
    pub body: Vec<u8>,
    pub url: &'a Url,
    pub timeout: Duration,
}

/// Sends webhook requests (shares the process's connection pool).
pub(crate) struct WebhookSender {
    http: reqwest::Client,
}

impl WebhookSender {
    pub(crate) fn new(http: reqwest::Client) -> Self {
        Self { http }
    }

    pub(crate) async fn send(&self, req: Signed<'_>) -> Delivery {
        let resp = self
            .http
            .post(req.url.clone())
            .timeout(req.timeout)
            .header("content-type", "application/json")
            .header("x-passport-event-id", req.event_id.to_string())
            .header("x-passport-timestamp", req.timestamp.to_string())
            .header("x-passport-signature", req.signature)
            .body(req.body)
            .send()
            .await;
        match resp {
            Ok(r) if r.status().is_success() => Delivery::Delivered,
            Ok(r) if r.status().as_u16() == 410 => Delivery::Gone,
            Ok(r) => Delivery::Failed(format!("receiver answered HTTP {}", r.status().as_u16())),
            Err(e) if e.is_timeout() => Delivery::Failed("receiver timed out".into()),
            Err(e) if e.is_connect() => Delivery::Failed("cannot connect to the receiver".into()),
            Err(_) => Delivery::Failed("the connection to the receiver failed".into()),
        }
    }
}
