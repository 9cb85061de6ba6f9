//! The database pool's bounds: connections, and how long any wait may last.

use std::time::Duration;

use super::Checker;
use crate::store::PoolSettings;

keys! {
    DB_MAX_CONNECTIONS,
    DB_ACQUIRE_TIMEOUT_MS,
    DB_STATEMENT_TIMEOUT_MS,
    DB_LOCK_TIMEOUT_MS,
}

fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

pub(super) fn check(c: &mut Checker) -> PoolSettings {
    let d = PoolSettings::default();
    PoolSettings {
        max_connections: c.number(
            DB_MAX_CONNECTIONS,
            d.max_connections.into(),
            1..=1000,
            "connections",
        ) as u32,
        acquire_timeout: c.millis(DB_ACQUIRE_TIMEOUT_MS, ms(d.acquire_timeout), 100..=60_000),
        statement_timeout: c.millis(
            DB_STATEMENT_TIMEOUT_MS,
            ms(d.statement_timeout),
            100..=3_600_000,
        ),
        lock_timeout: c.millis(DB_LOCK_TIMEOUT_MS, ms(d.lock_timeout), 100..=3_600_000),
    }
}
