//! In-process coordination of refreshes: one refresh at a time per user, and
//! recent failures answered from for a short while.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use uuid::Uuid;

use crate::google::GoogleError;

/// One async mutex per user, dropped when nobody holds or waits for it.
#[derive(Default)]
pub(crate) struct KeyedLocks {
    map: Mutex<HashMap<Uuid, Weak<tokio::sync::Mutex<()>>>>,
}

impl KeyedLocks {
    pub(crate) fn get(&self, key: Uuid) -> Arc<tokio::sync::Mutex<()>> {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(lock) = map.get(&key).and_then(Weak::upgrade) {
            return lock;
        }
        if map.len() > 1024 {
            map.retain(|_, w| w.strong_count() > 0);
        }
        let lock = Arc::new(tokio::sync::Mutex::new(()));
        map.insert(key, Arc::downgrade(&lock));
        lock
    }
}

/// Recent refresh failures (Google unavailable), per user, in this process.
#[derive(Default)]
pub(crate) struct Cooldowns {
    map: Mutex<HashMap<Uuid, (Instant, GoogleError)>>,
}

impl Cooldowns {
    pub(crate) fn get(&self, user: Uuid) -> Option<(Duration, GoogleError)> {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        match map.get(&user) {
            Some((until, reason)) if *until > Instant::now() => {
                Some((*until - Instant::now(), reason.clone()))
            }
            Some(_) => {
                map.remove(&user);
                None
            }
            None => None,
        }
    }

    pub(crate) fn set(&self, user: Uuid, for_: Duration, reason: GoogleError) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > 10_000 {
            let now = Instant::now();
            map.retain(|_, (until, _)| *until > now);
        }
        map.insert(user, (Instant::now() + for_, reason));
    }

    pub(crate) fn clear(&self, user: Uuid) {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&user);
    }
}
