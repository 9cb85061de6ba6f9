//! How the service protects itself and Google when Google is slow or down:
//! a cap on concurrent calls and a circuit breaker on refreshes.

use std::time::Duration;

use super::Checker;

keys! {
    GOOGLE_MAX_CONCURRENT_CALLS,
    GOOGLE_BREAKER_FAILURES,
    GOOGLE_BREAKER_OPEN_SECS,
}

/// Limits on calls to Google, per instance.
#[derive(Debug, Clone, Copy)]
pub struct GoogleCalls {
    /// At most this many calls to Google at once (the rest wait their turn).
    pub max_concurrent: usize,
    /// Refresh failures in a row (Google unavailable) that open the breaker;
    /// zero: never.
    pub breaker_failures: u32,
    /// How long an open breaker turns refreshes away before one probe.
    pub breaker_open: Duration,
}

pub(super) fn check(c: &mut Checker) -> GoogleCalls {
    GoogleCalls {
        max_concurrent: c.number(GOOGLE_MAX_CONCURRENT_CALLS, 16, 1..=1000, "calls") as usize,
        breaker_failures: c.number(GOOGLE_BREAKER_FAILURES, 5, 0..=1000, "failures") as u32,
        breaker_open: c.seconds(GOOGLE_BREAKER_OPEN_SECS, 10, 1..=3600),
    }
}
