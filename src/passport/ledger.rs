//! The fetch ledger: which caller (internal API key, by name) was handed how
//! many tokens of which user, for which scopes, minute by minute.
//!
//! The token API only counts, in memory ([`FetchLedger::record`]: one short
//! mutex, no query); a background task ([`run_flusher`]) adds the counts to
//! `token_fetch_ledger` every `LEDGER_FLUSH_SECS` with one batched statement,
//! and once more when the service stops. A failed write keeps the counts for
//! the next round. Memory is bounded: at `LEDGER_MAX_KEYS` distinct counts a
//! write is asked for at once, and new counts past the cap are dropped, each
//! counted in `passport_ledger_dropped_total` and reported in a warn line.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, TimeZone, Utc};
use serde::Serialize;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use crate::passport::provider::Provider;
use crate::passport::Passport;
use crate::scopes::ScopeSet;
use crate::store::token_fetch_ledger::{self, Batch};

/// What one count is kept by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    caller: Arc<str>,
    user: Uuid,
    provider: &'static str,
    /// Minutes since the Unix epoch (UTC).
    minute: i64,
    scopes: Interned,
}

/// A scope set kept once per distinct set (many counts share a few sets),
/// compared and hashed by address: cheap, and equal to comparing the sets
/// within one [`Counts`].
#[derive(Debug, Clone)]
struct Interned(Arc<ScopeSet>);

impl PartialEq for Interned {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for Interned {}

impl std::hash::Hash for Interned {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        std::ptr::hash(Arc::as_ptr(&self.0), state)
    }
}

#[derive(Debug, Default)]
struct Counts {
    tokens: HashMap<Key, i64>,
    /// The distinct scope sets of `tokens`.
    scope_sets: HashSet<Arc<ScopeSet>>,
    /// Counts taken out by a write still under way (they count against
    /// the cap: a failed write puts them back).
    in_flight: usize,
    /// Counts dropped at the cap since the last write.
    dropped: u64,
}

impl Counts {
    fn intern(&mut self, scopes: ScopeSet) -> Interned {
        if let Some(s) = self.scope_sets.get(&scopes) {
            return Interned(s.clone());
        }
        let s = Arc::new(scopes);
        self.scope_sets.insert(s.clone());
        Interned(s)
    }

    /// Counts held in memory, those of a write under way included.
    fn held(&self) -> usize {
        self.tokens.len() + self.in_flight
    }

    /// Count `n` more under `key` (scopes interned here); false when `key`
    /// is new and `max_keys` are already held.
    fn add(&mut self, key: Key, n: i64, max_keys: usize) -> bool {
        if let Some(c) = self.tokens.get_mut(&key) {
            *c += n;
            return true;
        }
        if self.held() >= max_keys {
            return false;
        }
        self.tokens.insert(key, n);
        true
    }
}

/// This instance's counts not yet written.
#[derive(Debug)]
pub(crate) struct FetchLedger {
    counts: Mutex<Counts>,
    max_keys: usize,
    /// Wakes the flusher when the cap is reached.
    full: Notify,
    /// The writes under way (a read's, or the flusher's): the last write at
    /// shutdown waits for them.
    writes: TaskTracker,
}

impl FetchLedger {
    pub(crate) fn new(max_keys: usize) -> Self {
        Self {
            counts: Mutex::new(Counts::default()),
            max_keys,
            full: Notify::new(),
            writes: TaskTracker::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Count one token handed to `caller`.
    pub(crate) fn record(
        &self,
        caller: Arc<str>,
        provider: &'static str,
        user: Uuid,
        scopes: ScopeSet,
        at: DateTime<Utc>,
    ) {
        let minute = at.timestamp().div_euclid(60);
        let mut c = self.lock();
        let known = c.scope_sets.get(&scopes).cloned();
        // A set not seen yet makes a new count: none past the cap.
        let counted = if known.is_none() && c.held() >= self.max_keys {
            false
        } else {
            let scopes = match known {
                Some(s) => Interned(s),
                None => c.intern(scopes),
            };
            let key = Key {
                caller,
                user,
                provider,
                minute,
                scopes,
            };
            c.add(key, 1, self.max_keys)
        };
        let full = c.held() >= self.max_keys;
        if !counted {
            c.dropped += 1;
        }
        drop(c);
        if !counted {
            metrics::counter!("passport_ledger_dropped_total").increment(1);
        }
        if full {
            self.full.notify_one();
        }
    }

    /// Take every count (and the dropped tally) out for a write; they still
    /// count against the cap until [`Self::written`] or [`Self::restore`].
    fn take(&self) -> (HashMap<Key, i64>, u64) {
        let mut c = self.lock();
        c.scope_sets.clear();
        let dropped = std::mem::take(&mut c.dropped);
        let counts = std::mem::take(&mut c.tokens);
        c.in_flight += counts.len();
        (counts, dropped)
    }

    /// The `n` counts taken out are in the database.
    fn written(&self, n: usize) {
        let mut c = self.lock();
        c.in_flight = c.in_flight.saturating_sub(n);
    }

    /// Put counts back after a failed write (added to those counted since;
    /// together they stay within the cap, which counted both).
    fn restore(&self, counts: HashMap<Key, i64>) {
        let mut c = self.lock();
        c.in_flight = c.in_flight.saturating_sub(counts.len());
        for (mut k, n) in counts {
            k.scopes = c.intern(ScopeSet::clone(&k.scopes.0));
            c.add(k, n, usize::MAX);
        }
    }

    /// Distinct counts waiting to be written.
    pub(crate) fn pending(&self) -> usize {
        self.lock().held()
    }

    /// After the last write at shutdown: warn of the counts still held.
    fn warn_unwritten(&self) {
        let (lost, still_writing) = {
            let c = self.lock();
            (c.tokens.len(), c.in_flight)
        };
        if lost + still_writing > 0 {
            tracing::warn!(
                lost,
                still_writing,
                "fetch ledger not fully written at shutdown: the counts still in memory are \
                 lost, and those of a write still under way are lost unless it ends before \
                 the database pool closes"
            );
        }
    }
}

/// Counts taken out for a write. Dropped before [`Taken::written`] (the
/// write failed, panicked, or its task was dropped) it puts them back, so
/// they are never lost to a broken write nor hold places under the cap for
/// good.
struct Taken {
    ledger: Arc<FetchLedger>,
    counts: Option<HashMap<Key, i64>>,
}

impl Taken {
    fn counts(&self) -> &HashMap<Key, i64> {
        self.counts.as_ref().expect("counts are held until written")
    }

    /// The counts are in the database.
    fn written(mut self) {
        if let Some(c) = self.counts.take() {
            self.ledger.written(c.len());
        }
    }
}

impl Drop for Taken {
    fn drop(&mut self) {
        if let Some(c) = self.counts.take() {
            self.ledger.restore(c);
        }
    }
}

/// Take the counts out and write them; put them back if the write fails.
async fn write_ledger(ledger: Arc<FetchLedger>, db: sqlx::PgPool) -> Result<usize, sqlx::Error> {
    let (counts, dropped) = ledger.take();
    if dropped > 0 {
        tracing::warn!(
            dropped,
            max_keys = ledger.max_keys,
            "fetch ledger full while it could not be written: counts dropped"
        );
    }
    if counts.is_empty() {
        return Ok(0);
    }
    let taken = Taken {
        ledger,
        counts: Some(counts),
    };
    let batch = to_batch(taken.counts());
    // On failure `taken` is dropped, which puts the counts back.
    token_fetch_ledger::add(&db, &batch).await?;
    taken.written();
    Ok(batch.len())
}

/// The counts as the columns of one statement, sorted by user, provider,
/// minute, caller and joined scopes (as bytes), the same in every writer: two
/// writes (two instances, or a read's write beside the task's) that share
/// rows lock them in the same order, so they wait for each other instead of
/// deadlocking.
fn to_batch(counts: &HashMap<Key, i64>) -> Batch {
    let mut rows: Vec<(Uuid, &str, i64, &str, String, i64)> = counts
        .iter()
        .map(|(k, n)| {
            let scopes = k.scopes.0.iter().collect::<Vec<_>>().join(" ");
            (k.user, k.provider, k.minute, &*k.caller, scopes, *n)
        })
        .collect();
    rows.sort_unstable();
    let mut b = Batch::default();
    for (user, provider, minute, caller, scopes, n) in rows {
        b.callers.push(caller.to_string());
        b.users.push(user);
        b.providers.push(provider.to_string());
        b.minutes.push(minute_start(minute));
        b.scopes.push(scopes);
        b.tokens.push(n);
    }
    b
}

fn minute_start(minute: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(minute * 60, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

impl Passport {
    /// Count a token handed out by the token API.
    pub(crate) fn record_fetch(
        &self,
        caller: Arc<str>,
        provider: &Provider,
        user: Uuid,
        requested: ScopeSet,
    ) {
        self.fetch_ledger
            .record(caller, provider.name, user, requested, Utc::now());
    }

    /// Write this instance's counts; on failure they are kept for the next
    /// write. Returns how many rows were written. The write runs in a task
    /// of its own: a caller dropped while it waits (a request cancelled by
    /// its timeout, the shutdown deadline or the client) neither loses the
    /// counts taken out nor leaves them holding places under the cap; the
    /// task is tracked, and the last write at shutdown waits for it.
    pub(crate) async fn flush_ledger(&self) -> Result<usize, sqlx::Error> {
        let ledger = &self.fetch_ledger;
        let write = ledger
            .writes
            .spawn(write_ledger(ledger.clone(), self.db.clone()));
        match write.await {
            Ok(r) => r,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => Err(sqlx::Error::PoolClosed),
        }
    }

    /// A user's ledger since `since` (default: the last 24 hours), of one
    /// caller if given; this instance's counts are written first.
    pub(crate) async fn ledger(
        &self,
        provider: &Provider,
        user: Uuid,
        since: Option<DateTime<Utc>>,
        caller: Option<&str>,
    ) -> Result<LedgerView, sqlx::Error> {
        if let Err(e) = self.flush_ledger().await {
            tracing::warn!(error = %e, "could not write the fetch ledger before reading it");
        }
        let since = since.unwrap_or_else(|| Utc::now() - Duration::hours(24));
        let db = &self.db;
        let rows =
            token_fetch_ledger::for_user(db, user, provider.name, since, caller, MAX_ROWS).await?;
        let totals = token_fetch_ledger::totals(db, user, provider.name, since, caller).await?;
        Ok(LedgerView {
            user_id: user,
            provider: provider.name,
            since,
            truncated: rows.len() as i64 == MAX_ROWS,
            rows: rows.into_iter().map(LedgerEntry::from).collect(),
            totals: totals
                .into_iter()
                .map(|(caller, tokens)| CallerTotal { caller, tokens })
                .collect(),
            note: NOTE,
        })
    }
}

/// Most rows one answer lists (newest first); totals cover the whole window.
const MAX_ROWS: i64 = 1000;

const NOTE: &str = "counts of the last few seconds (LEDGER_FLUSH_SECS) still in memory on other \
                    instances are not included yet";

/// A user's ledger, as the internal API and `auth-server ledger` show it.
#[derive(Debug, Serialize)]
pub(crate) struct LedgerView {
    pub user_id: Uuid,
    pub provider: &'static str,
    pub since: DateTime<Utc>,
    pub rows: Vec<LedgerEntry>,
    /// True when `rows` stopped at its limit (the totals still count all).
    pub truncated: bool,
    pub totals: Vec<CallerTotal>,
    pub note: &'static str,
}

#[derive(Debug, Serialize)]
pub(crate) struct LedgerEntry {
    pub minute: DateTime<Utc>,
    pub caller: String,
    /// Short names (`calendar.events`), in display order.
    pub scopes: Vec<String>,
    pub tokens: i64,
}

impl From<token_fetch_ledger::LedgerRow> for LedgerEntry {
    fn from(r: token_fetch_ledger::LedgerRow) -> Self {
        let scopes: ScopeSet = r.scopes.into_iter().collect();
        Self {
            minute: r.minute,
            caller: r.caller,
            scopes: scopes.short_names(),
            tokens: r.tokens,
        }
    }
}

#[derive(Debug, Serialize)]
pub(crate) struct CallerTotal {
    pub caller: String,
    pub tokens: i64,
}

impl LedgerView {
    /// The ledger as a table for the terminal.
    pub(crate) fn to_text(&self) -> String {
        let mut out = format!(
            "fetch ledger of {} ({}) since {}\n\ntotals\n",
            self.user_id,
            self.provider,
            self.since.to_rfc3339()
        );
        if self.totals.is_empty() {
            out.push_str("  (no tokens handed out)\n");
        }
        for t in &self.totals {
            out.push_str(&format!("  {:<32} {:>8}\n", t.caller, t.tokens));
        }
        out.push_str(&format!(
            "\n{:<20} {:<32} {:>8}  scopes\n",
            "minute (UTC)", "caller", "tokens"
        ));
        for r in &self.rows {
            out.push_str(&format!(
                "{:<20} {:<32} {:>8}  {}\n",
                r.minute.format("%Y-%m-%d %H:%M"),
                r.caller,
                r.tokens,
                if r.scopes.is_empty() {
                    "-".to_string()
                } else {
                    r.scopes.join(" ")
                }
            ));
        }
        if self.truncated {
            out.push_str(&format!("(only the newest {MAX_ROWS} rows)\n"));
        }
        out.push_str(&format!("\nnote: {}\n", self.note));
        out
    }
}

/// How long the last write at shutdown waits for the writes under way (the
/// shutdown gives background tasks 400 ms, and the last write needs some).
const SETTLE: std::time::Duration = std::time::Duration::from_millis(200);

/// Write the counts every `LEDGER_FLUSH_SECS`, or at once when the cap is
/// reached (but never sooner than `LEDGER_FLUSH_SECS` after a failed write),
/// until `stop` is cancelled; then once more ([`final_flush`]).
pub(crate) async fn run_flusher(app: Arc<Passport>, stop: CancellationToken) {
    let every = app.settings.ledger.flush_every;
    let mut failed = false;
    loop {
        let full = async {
            if failed {
                std::future::pending::<()>().await
            } else {
                app.fetch_ledger.full.notified().await
            }
        };
        let stopping = tokio::select! {
            () = stop.cancelled() => true,
            () = tokio::time::sleep(every) => false,
            () = full => false,
        };
        if stopping {
            return final_flush(&app).await;
        }
        failed = match app.flush_ledger().await {
            Ok(_) => false,
            Err(e) => {
                metrics::counter!("passport_ledger_write_failures_total").increment(1);
                let pending = app.fetch_ledger.pending();
                tracing::warn!(error = %e, pending, "could not write the fetch ledger; the counts are kept and written later");
                true
            }
        };
    }
}

/// The last write, at shutdown: wait up to [`SETTLE`] for the writes under
/// way (a failed one puts its counts back), write what is held, then warn
/// of any count still held: nothing writes it any more.
async fn final_flush(app: &Passport) {
    let ledger = &app.fetch_ledger;
    ledger.writes.close();
    if tokio::time::timeout(SETTLE, ledger.writes.wait())
        .await
        .is_err()
    {
        tracing::warn!("fetch ledger writes still under way at shutdown");
    }
    if let Err(e) = app.flush_ledger().await {
        metrics::counter!("passport_ledger_write_failures_total").increment(1);
        tracing::warn!(error = %e, "could not write the fetch ledger at shutdown");
    }
    ledger.warn_unwritten();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scopes(names: &[&str]) -> ScopeSet {
        ScopeSet::parse_known(names.iter().copied()).unwrap()
    }

    #[test]
    fn counts_by_caller_user_scopes_and_minute_and_stops_at_the_cap() {
        let l = FetchLedger::new(3);
        let (a, b): (Arc<str>, Arc<str>) = ("a".into(), "b".into());
        let u = Uuid::new_v4();
        let t0 = Utc.with_ymd_and_hms(2026, 12, 1, 10, 0, 5).unwrap();
        let t1 = t0 + Duration::seconds(60);
        let cal = scopes(&["calendar.events"]);
        l.record(a.clone(), "gmail", u, cal.clone(), t0);
        l.record(
            a.clone(),
            "gmail",
            u,
            cal.clone(),
            t0 + Duration::seconds(30),
        );
        l.record(b.clone(), "gmail", u, cal.clone(), t0);
        l.record(a.clone(), "gmail", u, cal.clone(), t1);
        // The cap (3 distinct counts): a fourth is dropped, known ones still count.
        l.record(b.clone(), "gmail", u, scopes(&["gmail.send"]), t0);
        l.record(b.clone(), "gmail", u, cal.clone(), t0);
        assert_eq!(
            l.lock().scope_sets.len(),
            1,
            "a dropped count keeps nothing"
        );
        let (counts, dropped) = l.take();
        assert_eq!(dropped, 1);
        let mut seen: Vec<(String, i64, i64)> = counts
            .iter()
            .map(|(k, n)| (k.caller.to_string(), k.minute - t0.timestamp() / 60, *n))
            .collect();
        seen.sort();
        assert_eq!(
            seen,
            [("a".into(), 0, 2), ("a".into(), 1, 1), ("b".into(), 0, 2)]
        );
        // Counts being written still hold their place under the cap.
        assert_eq!(l.pending(), 3);
        l.record(a.clone(), "gmail", u, cal.clone(), t0);
        l.restore(counts);
        let (again, dropped) = l.take();
        assert_eq!(dropped, 1, "no room while the write was under way");
        assert_eq!(again.values().sum::<i64>(), 5, "restored counts add up");
        l.written(again.len());
        assert_eq!(l.pending(), 0);
        l.record(a.clone(), "gmail", u, cal.clone(), t0);
        assert_eq!(l.pending(), 1);
    }

    #[test]
    fn a_write_that_ends_without_an_outcome_puts_its_counts_back() {
        let l = Arc::new(FetchLedger::new(2));
        let u = Uuid::new_v4();
        let t = Utc.with_ymd_and_hms(2026, 12, 1, 10, 0, 0).unwrap();
        l.record("a".into(), "gmail", u, scopes(&["gmail.send"]), t);
        l.record("b".into(), "gmail", u, scopes(&["gmail.send"]), t);
        let taken = Taken {
            ledger: l.clone(),
            counts: Some(l.take().0),
        };
        assert_eq!(l.lock().in_flight, 2);
        // A write that panics midway never reaches `written`.
        let write = std::thread::spawn(move || {
            let _taken = taken;
            panic!("write broke");
        });
        assert!(write.join().is_err());
        let c = l.lock();
        assert_eq!(c.in_flight, 0, "no place is held by the broken write");
        assert_eq!(c.tokens.len(), 2, "its counts are back");
        drop(c);
        let (counts, _) = l.take();
        Taken {
            ledger: l.clone(),
            counts: Some(counts),
        }
        .written();
        assert_eq!(l.pending(), 0, "written counts free their places");
        l.record("c".into(), "gmail", u, scopes(&["gmail.send"]), t);
        assert_eq!(l.pending(), 1);
    }

    #[test]
    fn a_batch_holds_the_minute_start_and_the_sorted_full_urls() {
        let l = FetchLedger::new(10);
        let t = Utc.with_ymd_and_hms(2026, 12, 1, 10, 7, 59).unwrap();
        let s = scopes(&["gmail.send", "calendar.events"]);
        l.record("x".into(), "gmail", Uuid::nil(), s, t);
        let b = to_batch(&l.take().0);
        assert_eq!(
            b.minutes,
            [Utc.with_ymd_and_hms(2026, 12, 1, 10, 7, 0).unwrap()]
        );
        assert_eq!(
            b.scopes,
            ["https://www.googleapis.com/auth/calendar.events https://www.googleapis.com/auth/gmail.send"]
        );
        assert_eq!(b.tokens, [1]);
    }
}
