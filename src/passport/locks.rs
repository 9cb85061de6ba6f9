//! In-process coordination: one refresh at a time per user, and a throttle
//! for repeated log lines.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use uuid::Uuid;

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

/// Lets something through at most once per period (an error log line).
#[derive(Default)]
pub(crate) struct Throttle {
    last: Mutex<Option<Instant>>,
}

impl Throttle {
    /// True at most once per `every`.
    pub(crate) fn ready(&self, every: Duration) -> bool {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if last.is_some_and(|t| now.duration_since(t) < every) {
            return false;
        }
        *last = Some(now);
        true
    }
}
