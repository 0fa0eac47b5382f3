//! Short-lived in-process caches for the lookups every message ingest repeats (API key, application,
//! event-type schema). Each query costs a round trip to a database thread; on the hot path they
//! dominated the profile. Entries live a few seconds; changes made through this process evict
//! them at once, changes made by another API process are seen within the TTL.

use std::{
    collections::HashMap,
    hash::Hash,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use hookline_types::{AppId, IdOrUid, TenantId};

use crate::{entities::applications, principal::Principal};

/// A map whose entries expire `ttl` after insertion; at most `capacity` entries (the whole map is
/// dropped when full: simple, and a refill costs one query per key).
pub struct TtlCache<K, V> {
    ttl: Duration,
    capacity: usize,
    entries: Mutex<HashMap<K, (Instant, V)>>,
}

impl<K: Eq + Hash, V: Clone> TtlCache<K, V> {
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        TtlCache { ttl, capacity, entries: Mutex::new(HashMap::new()) }
    }

    pub fn get(&self, key: &K) -> Option<V> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.get(key).filter(|(at, _)| at.elapsed() < self.ttl).map(|(_, v)| v.clone())
    }

    pub fn insert(&self, key: K, value: V) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= self.capacity {
            entries.clear();
        }
        entries.insert(key, (Instant::now(), value));
    }

    pub fn retain(&self, keep: impl Fn(&K, &V) -> bool) {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).retain(|k, (_, v)| keep(k, v));
    }

    pub fn clear(&self) {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

/// A cached API key: its principal and when it stops being valid.
#[derive(Clone)]
pub struct CachedKey {
    pub principal: Principal,
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
}

pub struct Caches {
    /// By SHA-256 of the key.
    pub api_keys: TtlCache<String, CachedKey>,
    pub applications: TtlCache<(TenantId, AppRef), applications::Model>,
    /// The compiled JSON Schema of an event type, or `None` when it has none (or does not exist).
    pub schemas: TtlCache<(TenantId, String), Option<Arc<jsonschema::Validator>>>,
}

/// `IdOrUid<AppId>` as a hashable key.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum AppRef {
    Id(String),
    Uid(String),
}

impl From<&IdOrUid<AppId>> for AppRef {
    fn from(app: &IdOrUid<AppId>) -> Self {
        match app {
            IdOrUid::Id(id) => AppRef::Id(id.to_string()),
            IdOrUid::Uid(uid) => AppRef::Uid(uid.clone()),
        }
    }
}

impl Default for Caches {
    fn default() -> Self {
        Caches {
            api_keys: TtlCache::new(Duration::from_secs(5), 10_000),
            applications: TtlCache::new(Duration::from_secs(2), 10_000),
            schemas: TtlCache::new(Duration::from_secs(2), 10_000),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_and_can_be_evicted() {
        let cache = TtlCache::new(Duration::from_millis(50), 10);
        cache.insert("a", 1);
        cache.insert("b", 2);
        assert_eq!(cache.get(&"a"), Some(1));
        cache.retain(|k, _| *k != "a");
        assert_eq!(cache.get(&"a"), None);
        assert_eq!(cache.get(&"b"), Some(2));
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(cache.get(&"b"), None);
    }

    #[test]
    fn a_full_cache_starts_over() {
        let cache = TtlCache::new(Duration::from_secs(60), 2);
        cache.insert(1, 1);
        cache.insert(2, 2);
        cache.insert(3, 3);
        assert_eq!(cache.get(&1), None);
        assert_eq!(cache.get(&3), Some(3));
    }
}
