//! Short-lived in-process caches for the lookups every message ingest repeats (API key, application,
//! event-type schema). Each query costs a round trip to a database thread; on the hot path they
//! dominated the profile. Entries live a few seconds; changes made through this process evict
//! them at once, changes made by another API process are seen within the TTL (plus the one
//! reload that finds them, [`TtlCache`]).

use std::{
    collections::HashMap,
    hash::Hash,
    sync::Mutex,
    time::{Duration, Instant},
};

/// A map whose entries expire `ttl` after insertion, holding at most `capacity` entries: past it
/// the least useful ones are evicted one by one (`quick_cache`'s CLOCK-Pro policy), so a large
/// deployment never flushes every cached API key at once.
///
/// An expired entry is reloaded by one caller at a time: the first [`TtlCache::get`] after expiry
/// gets `None` (and loads and [`TtlCache::insert`]s), the callers meanwhile keep getting the
/// expired value, for at most another `ttl` (after which, if no fresh value came — the loader
/// failed —, the next caller loads). Before, every request in flight at the moment an entry
/// expired missed together and each ran the same query: under load, a burst of identical reads
/// every TTL, per key.
pub struct TtlCache<K, V> {
    ttl: Duration,
    entries: quick_cache::sync::Cache<K, Entry<V>>,
}

#[derive(Clone)]
struct Entry<V> {
    at: Instant,
    value: V,
    /// When a caller was told to reload this expired entry; shared by the entry's clones, so
    /// marking it never writes the entry back (a write-back could revive an entry that was
    /// removed meanwhile: a revoked API key).
    reloading_since: std::sync::Arc<Mutex<Option<Instant>>>,
}

impl<K: Eq + Hash, V: Clone> TtlCache<K, V> {
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        TtlCache { ttl, entries: quick_cache::sync::Cache::new(capacity.max(1)) }
    }

    /// The value, if fresh; `None` when absent, or to the one caller that is to reload it.
    pub fn get(&self, key: &K) -> Option<V> {
        let entry = self.entries.get(key)?;
        let now = Instant::now();
        if now.duration_since(entry.at) < self.ttl {
            return Some(entry.value);
        }
        let mut reloading_since = entry.reloading_since.lock().unwrap_or_else(|p| p.into_inner());
        match *reloading_since {
            Some(since) if now.duration_since(since) < self.ttl => Some(entry.value.clone()),
            _ => {
                *reloading_since = Some(now);
                None
            }
        }
    }

    pub fn insert(&self, key: K, value: V) {
        let entry = Entry { at: Instant::now(), value, reloading_since: Default::default() };
        self.entries.insert(key, entry);
    }

    /// Forgets the key: a reload found it gone (a revoked key, a deleted application), so the
    /// old value must not be served meanwhile.
    pub fn remove(&self, key: &K) {
        self.entries.remove(key);
    }

    pub fn retain(&self, keep: impl Fn(&K, &V) -> bool) {
        self.entries.retain(|k, entry| keep(k, &entry.value));
    }

    pub fn clear(&self) {
        self.entries.clear();
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
    fn one_caller_reloads_an_expired_entry_while_the_others_keep_the_old_value() {
        let cache = TtlCache::new(Duration::from_millis(100), 10);
        cache.insert("k", 1);
        std::thread::sleep(Duration::from_millis(110));
        assert_eq!(cache.get(&"k"), None, "the first caller after expiry reloads");
        assert_eq!(cache.get(&"k"), Some(1), "the others keep the old value meanwhile");
        assert_eq!(cache.get(&"k"), Some(1));
        cache.insert("k", 2);
        assert_eq!(cache.get(&"k"), Some(2), "the reloaded value");
        // A reload that never comes back (the loader failed): after another TTL, the next caller
        // reloads.
        std::thread::sleep(Duration::from_millis(110));
        assert_eq!(cache.get(&"k"), None);
        assert_eq!(cache.get(&"k"), Some(2));
        std::thread::sleep(Duration::from_millis(110));
        assert_eq!(cache.get(&"k"), None, "the failed reload is retried");
        // A reload that finds the key gone removes it: nobody gets the old value any more.
        cache.remove(&"k");
        assert_eq!(cache.get(&"k"), None);
        assert_eq!(cache.get(&"k"), None);
        cache.insert("k", 3);
        // Evicted entries are never served, old or not.
        cache.retain(|_, _| false);
        assert_eq!(cache.get(&"k"), None);
        assert_eq!(cache.get(&"k"), None);
    }

    /// Before: a full cache dropped every entry at once (every API key of a large deployment
    /// reloaded together). Now it evicts a few and keeps the rest, the hot ones first.
    #[test]
    fn a_full_cache_evicts_some_entries_not_all() {
        let cache = TtlCache::new(Duration::from_secs(60), 100);
        for n in 0..100 {
            cache.insert(n, n);
        }
        // A working set that is read again and again.
        for _ in 0..3 {
            for n in 0..20 {
                assert_eq!(cache.get(&n), Some(n));
            }
        }
        for n in 100..150 {
            cache.insert(n, n);
        }
        let kept = (0..150).filter(|n| cache.get(n).is_some()).count();
        assert!((50..=110).contains(&kept), "{kept} of 150 entries kept with room for 100");
        let hot = (0..20).filter(|n| cache.get(n).is_some()).count();
        assert!(hot >= 15, "only {hot} of the 20 hot entries survived");
        assert_eq!(cache.get(&149), Some(149), "the newest entry is there");
    }
}

/// In-process token buckets (API rate limits per credential): `rate` tokens a second up to
/// `burst`. Per process: with several API processes each holds its own buckets.
#[derive(Default)]
pub struct TokenBuckets {
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

/// The outcome of taking a token.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Taken {
    pub allowed: bool,
    /// The bucket's size.
    pub limit: u32,
    /// Whole tokens left after this request.
    pub remaining: u32,
    /// Seconds until the bucket is full again.
    pub reset_seconds: u64,
    /// Seconds until the next token, when refused.
    pub retry_after_seconds: u64,
}

impl TokenBuckets {
    const MAX_KEYS: usize = 100_000;

    pub fn take(&self, key: &str, rate: u32, burst: u32) -> Taken {
        self.take_at(key, f64::from(rate.max(1)), burst)
    }

    /// [`TokenBuckets::take`] with a rate below one a second (sign-in attempts: a few a minute).
    pub fn take_at(&self, key: &str, per_second: f64, burst: u32) -> Taken {
        let (rate, burst) = (per_second.max(f64::MIN_POSITIVE), f64::from(burst.max(1)));
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= Self::MAX_KEYS {
            // Full buckets carry no state worth keeping.
            buckets.retain(|_, (tokens, at)| *tokens + now.duration_since(*at).as_secs_f64() * rate < burst);
        }
        let (tokens, at) = buckets.entry(key.to_owned()).or_insert((burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * rate).min(burst);
        *at = now;
        let allowed = *tokens >= 1.0;
        if allowed {
            *tokens -= 1.0;
        }
        Taken {
            allowed,
            limit: burst as u32,
            remaining: tokens.floor().max(0.0) as u32,
            reset_seconds: ((burst - *tokens) / rate).ceil() as u64,
            retry_after_seconds: if allowed { 0 } else { ((1.0 - *tokens) / rate).ceil().max(1.0) as u64 },
        }
    }
}
