//! The background refresh sweep.

use std::time::Duration;

use super::Checker;

keys! {
    SWEEP_AFTER_SECS,
    SWEEP_PER_MINUTE,
    SWEEP_INTERVAL_SECS,
}

/// The background refresh sweep.
#[derive(Debug, Clone, Copy)]
pub struct SweepSettings {
    /// Refresh active connections not refreshed for this long; zero: off.
    pub after: Duration,
    /// At most this many refreshes per minute.
    pub per_minute: u32,
    /// How often a sweep starts.
    pub interval: Duration,
}

pub(super) fn check(c: &mut Checker) -> SweepSettings {
    SweepSettings {
        after: c.seconds(SWEEP_AFTER_SECS, 86_400, 0..=31_536_000),
        per_minute: c.number(SWEEP_PER_MINUTE, 60, 1..=60_000, "refreshes per minute") as u32,
        interval: c.seconds(SWEEP_INTERVAL_SECS, 60, 1..=86_400),
    }
}
