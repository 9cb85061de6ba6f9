//! An in-process cache of decrypted, valid access tokens, so that the token
//! API answers without a database round trip. Correctness first:
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
//! * only `active` rows whose token stays valid beyond the refresh margin are
//!   served from it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::RwLock;
use std::time::Duration;

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use uuid::Uuid;

use crate::scopes::ScopeSet;

/// The channel the trigger notifies on.
pub(crate) const CHANNEL: &str = "gmail_token_changed";
/// No entry is served longer than this after it was read.
pub const MAX_AGE: Duration = Duration::from_secs(30);

/// A cached token.
#[derive(Clone)]
pub(crate) struct Cached {
    /// When it was read from the database (entries older than [`MAX_AGE`]
    /// are not served, bounding staleness even if a notification were lost).
    pub read_at: std::time::Instant,
    pub access_token: SecretString,
    pub expires_at: DateTime<Utc>,
    /// Shared between entries: most connections hold the same scope set.
    pub scopes: std::sync::Arc<ScopeSet>,
    pub email: Option<String>,
}

pub(crate) struct TokenCache {
    map: RwLock<HashMap<Uuid, Cached>>,
    /// The distinct scope sets seen, so that entries share them.
    scope_sets: std::sync::Mutex<Vec<std::sync::Arc<ScopeSet>>>,
    generation: AtomicU64,
    enabled: AtomicBool,
    max_entries: usize,
}

impl Default for TokenCache {
    fn default() -> Self {
        Self::new(200_000)
    }
}

impl TokenCache {
    pub(crate) fn new(max_entries: usize) -> Self {
        Self {
            map: RwLock::new(HashMap::new()),
            scope_sets: std::sync::Mutex::new(Vec::new()),
            generation: AtomicU64::new(0),
            enabled: AtomicBool::new(false),
            max_entries,
        }
    }

    /// A cached token still valid beyond `margin`, if the cache is on.
    pub(crate) fn get(&self, user: Uuid, margin: Duration) -> Option<Cached> {
        if !self.enabled.load(Ordering::Acquire) {
            return None;
        }
        let map = self.map.read().unwrap_or_else(|p| p.into_inner());
        let c = map.get(&user)?;
        let margin = chrono::Duration::from_std(margin).unwrap_or_default();
        (c.expires_at > Utc::now() + margin && c.read_at.elapsed() < MAX_AGE).then(|| c.clone())
    }

    /// The shared copy of a scope set (at most 64 distinct sets are kept).
    pub(crate) fn intern(&self, set: ScopeSet) -> std::sync::Arc<ScopeSet> {
        let mut sets = self.scope_sets.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = sets.iter().find(|s| ***s == set) {
            return s.clone();
        }
        let s = std::sync::Arc::new(set);
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
    pub(crate) fn insert_if_unchanged(&self, user: Uuid, generation: u64, entry: Cached) {
        if !self.enabled.load(Ordering::Acquire) {
            return;
        }
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        // Checked under the write lock: invalidations take it too.
        if self.generation.load(Ordering::Acquire) != generation {
            return;
        }
        if map.len() >= self.max_entries && !map.contains_key(&user) {
            // Make room by dropping a quarter of the entries (the map's order
            // is arbitrary), not all of them.
            let drop: Vec<Uuid> = map.keys().take(self.max_entries / 4 + 1).copied().collect();
            for k in drop {
                map.remove(&k);
            }
        }
        map.insert(user, entry);
    }

    /// Drop one user's entry.
    pub(crate) fn invalidate(&self, user: Uuid) {
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        self.generation.fetch_add(1, Ordering::AcqRel);
        map.remove(&user);
    }

    /// Drop everything.
    pub(crate) fn clear(&self) {
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        self.generation.fetch_add(1, Ordering::AcqRel);
        map.clear();
    }

    /// Switch the cache on (listener connected) or off (clearing it).
    pub(crate) fn set_enabled(&self, on: bool) {
        if !on {
            self.clear();
        }
        metrics::gauge!("passport_token_cache_enabled").set(if on { 1.0 } else { 0.0 });
        self.enabled.store(on, Ordering::Release);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.map.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.len() == 0
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
pub(crate) async fn listen(db: sqlx::PgPool, cache: std::sync::Arc<TokenCache>) {
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
        Cached {
            read_at: std::time::Instant::now(),
            access_token: SecretString::from("ya29.x".to_string()),
            expires_at: Utc::now() + chrono::Duration::minutes(30),
            scopes: std::sync::Arc::new(ScopeSet::new()),
            email: None,
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
        assert!(c.is_empty());
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

    #[test]
    fn a_full_cache_drops_a_quarter_and_scope_sets_are_shared() {
        let c = TokenCache::new(8);
        c.set_enabled(true);
        let users: Vec<Uuid> = (0..9).map(|_| Uuid::new_v4()).collect();
        for u in &users {
            c.insert_if_unchanged(*u, c.generation(), entry());
        }
        assert!(c.len() >= 5 && c.len() <= 8, "{}", c.len());
        assert!(
            c.get(users[8], Duration::ZERO).is_some(),
            "the newest entry is kept"
        );
        let a = c.intern(ScopeSet::parse_known(["calendar"]).unwrap());
        let b = c.intern(ScopeSet::parse_known(["calendar"]).unwrap());
        assert!(std::sync::Arc::ptr_eq(&a, &b));
    }

    #[test]
    fn entries_close_to_expiry_are_not_served() {
        let c = TokenCache::new(10);
        c.set_enabled(true);
        let u = Uuid::new_v4();
        c.insert_if_unchanged(u, c.generation(), entry());
        assert!(c.get(u, Duration::from_secs(60)).is_some());
        assert!(c.get(u, Duration::from_secs(3600)).is_none());
        c.apply("*");
        assert!(c.get(u, Duration::ZERO).is_none());
    }
}
