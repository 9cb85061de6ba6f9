//! An in-process cache of decrypted, valid access tokens, so that the token
//! API and the status API answer without a database round trip. Correctness
//! first:
//!
//! * every change to `gmail_token`, by any writer, is announced by a trigger
//!   (`pg_notify('gmail_token_changed', user_id)`); each instance listens and
//!   drops that user's entry within milliseconds;
//! * an entry read from the database is only stored if no invalidation
//!   arrived while it was being read (a generation counter), so a row deleted
//!   or revoked meanwhile is never cached;
//! * the cache is only used while the listener is connected; the moment the
//!   connection drops (before any reconnect) it is cleared and switched off
//!   until a new listener is connected;
//! * an instance also drops its own entry in the same step as its own write
//!   (`Passport::commit_for`), so it never serves what it has just replaced
//!   while its own notification is on the way;
//! * only `active` rows whose scopes a MAC vouches for (or Google confirmed)
//!   and whose token stays valid beyond the refresh margin are stored.
//!
//! The storage is a `quick_cache` (S3-FIFO eviction, sharded locks, lookups
//! without a global lock) bounded by `TOKEN_CACHE_MAX_ENTRIES`; the
//! generation guard around it is described at [`TokenCache::insert_if_unchanged`].

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use quick_cache::sync::Cache;
use secrecy::SecretString;
use uuid::Uuid;

use crate::scopes::ScopeSet;

/// The channel the trigger notifies on.
pub(crate) const CHANNEL: &str = "gmail_token_changed";
/// No entry is served longer than this after it was read.
pub const MAX_AGE: Duration = Duration::from_secs(30);
/// The default bound on entries (`TOKEN_CACHE_MAX_ENTRIES`).
pub const DEFAULT_MAX_ENTRIES: usize = 150_000;

/// A cached token: what an `active`, verified row said when it was read.
pub(crate) struct Cached {
    /// When it was read from the database (entries older than [`MAX_AGE`]
    /// are not served, bounding staleness even if a notification were lost).
    pub read_at: std::time::Instant,
    pub access_token: SecretString,
    pub expires_at: DateTime<Utc>,
    /// Shared between entries: most connections hold the same scope set.
    pub scopes: Arc<ScopeSet>,
    pub email: Option<String>,
}

/// Counts what the cache evicts to stay within its bound (read at scrape time).
#[derive(Clone, Default)]
pub(crate) struct EvictionCount(Arc<AtomicU64>);

impl EvictionCount {
    pub(crate) fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

impl<K, V> quick_cache::Lifecycle<K, V> for EvictionCount {
    type RequestState = ();

    fn on_evict(&self, _state: &mut Self::RequestState, _key: K, _val: V) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

/// A bounded `quick_cache` whose evictions are counted.
pub(crate) type Bounded<K, V> =
    Cache<K, V, quick_cache::UnitWeighter, quick_cache::DefaultHashBuilder, EvictionCount>;

/// A cache of at most (about) `max_entries` items.
pub(crate) fn bounded<K: Eq + std::hash::Hash, V: Clone>(
    max_entries: usize,
) -> (Bounded<K, V>, EvictionCount) {
    let evictions = EvictionCount::default();
    let cache = Cache::with(
        max_entries,
        max_entries as u64,
        quick_cache::UnitWeighter,
        quick_cache::DefaultHashBuilder::default(),
        evictions.clone(),
    );
    (cache, evictions)
}

pub(crate) struct TokenCache {
    map: Bounded<Uuid, Arc<Cached>>,
    evictions: EvictionCount,
    /// Orders inserts against invalidations: inserts hold it shared (they run
    /// side by side), invalidations exclusively. Lookups never take it.
    guard: RwLock<()>,
    /// The distinct scope sets seen, so that entries share them.
    scope_sets: std::sync::Mutex<Vec<Arc<ScopeSet>>>,
    generation: AtomicU64,
    enabled: AtomicBool,
}

impl Default for TokenCache {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_ENTRIES)
    }
}

impl TokenCache {
    pub(crate) fn new(max_entries: usize) -> Self {
        let (map, evictions) = bounded(max_entries);
        Self {
            map,
            evictions,
            guard: RwLock::new(()),
            scope_sets: std::sync::Mutex::new(Vec::new()),
            generation: AtomicU64::new(0),
            enabled: AtomicBool::new(false),
        }
    }

    /// The entry for `user` if the cache is on and the entry is younger than
    /// [`MAX_AGE`] (whatever its token's expiry).
    pub(crate) fn fresh(&self, user: Uuid) -> Option<Arc<Cached>> {
        if !self.enabled.load(Ordering::Acquire) {
            return None;
        }
        let c = self.map.get(&user)?;
        (c.read_at.elapsed() < MAX_AGE).then_some(c)
    }

    /// A cached token still valid beyond `margin`, if the cache is on.
    pub(crate) fn get(&self, user: Uuid, margin: Duration) -> Option<Arc<Cached>> {
        let c = self.fresh(user)?;
        let margin = chrono::Duration::from_std(margin).unwrap_or_default();
        (c.expires_at > Utc::now() + margin).then_some(c)
    }

    /// The shared copy of a scope set (at most 64 distinct sets are kept).
    pub(crate) fn intern(&self, set: ScopeSet) -> Arc<ScopeSet> {
        let mut sets = self.scope_sets.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = sets.iter().find(|s| ***s == set) {
            return s.clone();
        }
        let s = Arc::new(set);
        if sets.len() < 64 {
            sets.push(s.clone());
        }
        s
    }

    /// Take this before reading a row that may be cached afterwards.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Store an entry read since `generation`, unless anything was
    /// invalidated in between.
    ///
    /// Why an invalidation that races the read always wins: the generation
    /// check and the insert happen under `guard` held shared, and an
    /// invalidation bumps the generation and removes the entry under `guard`
    /// held exclusively. So the two never interleave: either the insert
    /// completes first (and the invalidation's removal, which comes after,
    /// drops the entry), or the invalidation completes first (and the check,
    /// which comes after, sees the new generation and refuses). A reader can
    /// therefore never find an entry read before an invalidation once that
    /// invalidation has returned, exactly as when the map sat under one lock.
    /// (Re-checking the generation after an unguarded insert would not do:
    /// between the insert and its removal a reader could be served the
    /// stale entry.)
    pub(crate) fn insert_if_unchanged(&self, user: Uuid, generation: u64, entry: Cached) {
        if !self.enabled.load(Ordering::Acquire) {
            return;
        }
        let _shared = self.guard.read().unwrap_or_else(|p| p.into_inner());
        if self.generation.load(Ordering::Acquire) != generation {
            return;
        }
        self.map.insert(user, Arc::new(entry));
    }

    /// Drop one user's entry.
    pub(crate) fn invalidate(&self, user: Uuid) {
        let _exclusive = self.guard.write().unwrap_or_else(|p| p.into_inner());
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.map.remove(&user);
    }

    /// Drop everything.
    pub(crate) fn clear(&self) {
        let _exclusive = self.guard.write().unwrap_or_else(|p| p.into_inner());
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.map.clear();
    }

    /// Switch the cache on (listener connected) or off (clearing it).
    pub(crate) fn set_enabled(&self, on: bool) {
        if !on {
            self.clear();
        }
        metrics::gauge!("passport_token_cache_enabled").set(if on { 1.0 } else { 0.0 });
        self.enabled.store(on, Ordering::Release);
    }

    /// Entries held now, and entries evicted to stay within the bound so far.
    pub(crate) fn sizes(&self) -> (usize, u64) {
        (self.map.len(), self.evictions.get())
    }

    /// Apply one notification payload.
    pub(crate) fn apply(&self, payload: &str) {
        match Uuid::parse_str(payload) {
            Ok(user) => self.invalidate(user),
            Err(_) => self.clear(),
        }
    }
}

/// Listen for changes until `stop` resolves; keeps reconnecting, and keeps the
/// cache off while it is not connected.
pub(crate) async fn listen(db: sqlx::PgPool, cache: Arc<TokenCache>) {
    let mut backoff = Duration::from_millis(200);
    loop {
        let mut listener = match sqlx::postgres::PgListener::connect_with(&db).await {
            Ok(l) => l,
            Err(e) => {
                cache.set_enabled(false);
                tracing::warn!(error = %e, "token cache listener cannot connect; cache off");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(10));
                continue;
            }
        };
        // A lost connection must reach us before any reconnect: the cache is
        // switched off first, then a new listener is connected (outer loop).
        listener.eager_reconnect(false);
        if let Err(e) = listener.listen(CHANNEL).await {
            cache.set_enabled(false);
            tracing::warn!(error = %e, "token cache listener cannot LISTEN; cache off");
            tokio::time::sleep(backoff).await;
            continue;
        }
        backoff = Duration::from_millis(200);
        cache.clear();
        cache.set_enabled(true);
        tracing::debug!("token cache listening for gmail_token changes");
        loop {
            match listener.try_recv().await {
                Ok(Some(n)) => {
                    cache.apply(n.payload());
                    metrics::counter!("passport_token_cache_invalidations_total").increment(1);
                }
                Ok(None) => {
                    // The connection dropped; notifications may be lost.
                    cache.set_enabled(false);
                    tracing::warn!(
                        "token cache listener lost its connection; cache off until it is back"
                    );
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "token cache listener failed; cache off");
                    cache.set_enabled(false);
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Cached {
        entry_for(None)
    }

    fn entry_for(email: Option<String>) -> Cached {
        Cached {
            read_at: std::time::Instant::now(),
            access_token: SecretString::from("ya29.x".to_string()),
            expires_at: Utc::now() + chrono::Duration::minutes(30),
            scopes: Arc::new(ScopeSet::new()),
            email,
        }
    }

    #[test]
    fn nothing_is_served_while_off() {
        let c = TokenCache::new(10);
        let u = Uuid::new_v4();
        c.insert_if_unchanged(u, c.generation(), entry());
        assert!(c.get(u, Duration::ZERO).is_none());
        c.set_enabled(true);
        c.insert_if_unchanged(u, c.generation(), entry());
        assert!(c.get(u, Duration::ZERO).is_some());
        c.set_enabled(false);
        assert!(c.get(u, Duration::ZERO).is_none());
        assert_eq!(c.sizes().0, 0);
    }

    #[test]
    fn an_invalidation_during_the_read_prevents_the_insert() {
        let c = TokenCache::new(10);
        c.set_enabled(true);
        let u = Uuid::new_v4();
        let g = c.generation();
        c.apply(&u.to_string());
        c.insert_if_unchanged(u, g, entry());
        assert!(c.get(u, Duration::ZERO).is_none());
    }

    /// A writer changes the "row" (a version number) and then invalidates;
    /// a reader takes the generation, reads the version and inserts it. Once
    /// an invalidation has returned, the cache may only hold the current
    /// version: an insert of an older one racing it must lose.
    #[test]
    fn an_invalidation_racing_inserts_always_wins() {
        let c = Arc::new(TokenCache::new(1_000));
        c.set_enabled(true);
        let u = Uuid::new_v4();
        let version = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let (c, version, stop) = (c.clone(), version.clone(), stop.clone());
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Acquire) {
                        let g = c.generation();
                        let v = version.load(Ordering::Acquire);
                        c.insert_if_unchanged(u, g, entry_for(Some(v.to_string())));
                    }
                })
            })
            .collect();
        let mut stale = 0;
        for v in 1..=100_000u64 {
            version.store(v, Ordering::Release);
            c.invalidate(u);
            if let Some(e) = c.get(u, Duration::ZERO) {
                if e.email.as_deref() != Some(v.to_string().as_str()) {
                    stale += 1;
                }
            }
        }
        stop.store(true, Ordering::Release);
        readers.into_iter().for_each(|r| r.join().unwrap());
        assert_eq!(
            stale, 0,
            "entries read before an invalidation were served after it"
        );
    }

    #[test]
    fn a_full_cache_stays_bounded_and_keeps_hot_entries() {
        let max = 2_000;
        let c = TokenCache::new(max);
        c.set_enabled(true);
        let hot: Vec<Uuid> = (0..100).map(|_| Uuid::new_v4()).collect();
        for u in &hot {
            c.insert_if_unchanged(*u, c.generation(), entry());
        }
        for i in 0..50_000 {
            c.insert_if_unchanged(Uuid::new_v4(), c.generation(), entry());
            // The hot set is asked for all the time.
            let u = hot[i % hot.len()];
            if c.get(u, Duration::ZERO).is_none() {
                c.insert_if_unchanged(u, c.generation(), entry());
            }
        }
        let (len, evicted) = c.sizes();
        assert!(len <= max + max / 10, "{len} entries for a bound of {max}");
        assert!(evicted >= 45_000, "{evicted} evictions");
        let kept = hot.iter().filter(|u| c.get(**u, Duration::ZERO).is_some());
        assert!(kept.count() >= 95, "hot entries were evicted");
    }

    #[test]
    fn scope_sets_are_shared() {
        let c = TokenCache::new(8);
        let a = c.intern(ScopeSet::parse_known(["calendar"]).unwrap());
        let b = c.intern(ScopeSet::parse_known(["calendar"]).unwrap());
        assert!(Arc::ptr_eq(&a, &b));
    }

    #[test]
    fn entries_close_to_expiry_are_not_served() {
        let c = TokenCache::new(10);
        c.set_enabled(true);
        let u = Uuid::new_v4();
        c.insert_if_unchanged(u, c.generation(), entry());
        assert!(c.get(u, Duration::from_secs(60)).is_some());
        assert!(c.get(u, Duration::from_secs(3600)).is_none());
        assert!(c.fresh(u).is_some());
        c.apply("*");
        assert!(c.get(u, Duration::ZERO).is_none());
    }
}
