//! The database pool's bounds: connections, and how long any wait may last.

use std::time::Duration;

use super::Checker;

/// Every wait on the database has a bound, so that a locked table, a slow
/// query or a database that is gone fails fast instead of holding requests
/// (settings `DB_*`; defaults below).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolSettings {
    /// Connections in the pool.
    pub max_connections: u32,
    /// Longest wait for a connection: a free one, a new one, or the check of
    /// an idle one (a stalled database fails here).
    pub acquire_timeout: Duration,
    /// `statement_timeout` of every connection: the server cancels a longer
    /// statement (SQLSTATE 57014).
    pub statement_timeout: Duration,
    /// `lock_timeout` of every connection: the longest a statement waits for
    /// a lock (SQLSTATE 55P03).
    pub lock_timeout: Duration,
    /// Batched reads of the token API's misses running at once, each on one
    /// connection (see `store::token_reads`).
    pub read_batches: u32,
}

impl Default for PoolSettings {
    /// Point lookups take milliseconds: a request that finds the database
    /// unable to work fails within about 2.5 s, well inside the 5 s a caller
    /// is promised.
    fn default() -> Self {
        Self {
            max_connections: 20,
            acquire_timeout: Duration::from_millis(2500),
            statement_timeout: Duration::from_millis(2500),
            lock_timeout: Duration::from_millis(2000),
            read_batches: 4,
        }
    }
}

keys! {
    DB_MAX_CONNECTIONS,
    DB_ACQUIRE_TIMEOUT_MS,
    DB_STATEMENT_TIMEOUT_MS,
    DB_LOCK_TIMEOUT_MS,
    DB_READ_BATCHES,
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
        read_batches: c.number(DB_READ_BATCHES, d.read_batches.into(), 1..=64, "batches") as u32,
    }
}
