//! The fetch ledger: how often the counts of tokens handed out are written,
//! and how many distinct counts one instance keeps in memory.

use std::time::Duration;

use super::Checker;

keys! {
    LEDGER_FLUSH_SECS,
    LEDGER_MAX_KEYS,
}

/// The in-memory side of the fetch ledger.
#[derive(Debug, Clone, Copy)]
pub struct LedgerSettings {
    /// How often the counts are written to `token_fetch_ledger`.
    pub flush_every: Duration,
    /// Distinct (caller, user, scopes, minute) counts kept in memory; at the
    /// cap they are written at once, and new ones past it are dropped (and
    /// counted) while the database cannot take them.
    pub max_keys: usize,
}

pub(super) fn check(c: &mut Checker) -> LedgerSettings {
    LedgerSettings {
        flush_every: c.seconds(LEDGER_FLUSH_SECS, 5, 1..=300),
        max_keys: c.number(LEDGER_MAX_KEYS, 20_000, 100..=1_000_000, "entries") as usize,
    }
}
