//! A map whose entries expire after a fixed time and whose size is bounded: the verdict cache and
//! the proxy's small memories (blob sizes, signature manifests) are all one of these. The clock is
//! passed in, so expiry is tested without sleeping.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// Entries live `ttl` from insertion; at most `capacity` are kept (when full, expired entries go
/// first, then the one closest to expiry).
#[derive(Debug)]
pub(crate) struct TtlMap<K, V> {
    entries: HashMap<K, (V, Instant)>,
    capacity: usize,
    ttl: Duration,
}

impl<K: Hash + Eq + Clone, V: Clone> TtlMap<K, V> {
    /// An empty map; `capacity` 0 or a zero `ttl` keeps nothing.
    pub(crate) fn new(capacity: usize, ttl: Duration) -> Self {
        TtlMap {
            entries: HashMap::new(),
            capacity,
            ttl,
        }
    }

    /// The live value for `key` at `now` (an expired entry is removed).
    pub(crate) fn get(&mut self, key: &K, now: Instant) -> Option<V> {
        match self.entries.get(key) {
            Some((value, expires)) if *expires > now => Some(value.clone()),
            Some(_) => {
                self.entries.remove(key);
                None
            }
            None => None,
        }
    }

    /// Keep `value` for `key` until `now + ttl`.
    pub(crate) fn insert(&mut self, key: K, value: V, now: Instant) {
        if self.capacity == 0 || self.ttl.is_zero() {
            return;
        }
        if !self.entries.contains_key(&key) && self.entries.len() >= self.capacity {
            self.entries.retain(|_, (_, expires)| *expires > now);
            if self.entries.len() >= self.capacity {
                // Full of live entries: the oldest goes (all share one ttl, so soonest to expire
                // is oldest). O(n), but only when the cache is full.
                if let Some(oldest) = self
                    .entries
                    .iter()
                    .min_by_key(|(_, (_, expires))| *expires)
                    .map(|(k, _)| k.clone())
                {
                    self.entries.remove(&oldest);
                }
            }
        }
        self.entries.insert(key, (value, now + self.ttl));
    }

    /// Forget everything (on policy reload).
    pub(crate) fn clear(&mut self) {
        self.entries.clear();
    }

    /// Entries held, live or not yet purged.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn entries_expire_after_ttl() {
        let t0 = Instant::now();
        let mut map = TtlMap::new(10, Duration::from_secs(5));
        map.insert("a", 1, t0);
        assert_eq!(map.get(&"a", t0 + Duration::from_secs(4)), Some(1));
        assert_eq!(map.get(&"a", t0 + Duration::from_secs(5)), None);
        assert_eq!(map.len(), 0, "expired entry removed on lookup");
        // Re-inserting renews.
        map.insert("b", 2, t0);
        map.insert("b", 3, t0 + Duration::from_secs(3));
        assert_eq!(map.get(&"b", t0 + Duration::from_secs(7)), Some(3));
    }

    #[test]
    fn size_is_bounded_oldest_goes_first() {
        let t0 = Instant::now();
        let mut map = TtlMap::new(3, Duration::from_secs(60));
        for (i, key) in ["a", "b", "c", "d"].into_iter().enumerate() {
            map.insert(key, i, t0 + Duration::from_secs(i as u64));
        }
        assert_eq!(map.len(), 3);
        let now = t0 + Duration::from_secs(10);
        assert_eq!(map.get(&"a", now), None, "oldest evicted");
        assert_eq!(map.get(&"d", now), Some(3));
        // Expired entries are purged before live ones are evicted.
        let mut map = TtlMap::new(2, Duration::from_secs(5));
        map.insert("old", 0, t0);
        map.insert("live", 1, t0 + Duration::from_secs(4));
        map.insert("new", 2, t0 + Duration::from_secs(6));
        let now = t0 + Duration::from_secs(7);
        assert_eq!(map.get(&"live", now), Some(1));
        assert_eq!(map.get(&"new", now), Some(2));
    }

    #[test]
    fn zero_capacity_or_ttl_keeps_nothing() {
        let t0 = Instant::now();
        let mut map = TtlMap::new(0, Duration::from_secs(5));
        map.insert(1, 1, t0);
        assert_eq!(map.get(&1, t0), None);
        let mut map = TtlMap::new(5, Duration::ZERO);
        map.insert(1, 1, t0);
        assert_eq!(map.get(&1, t0), None);
        let mut map = TtlMap::new(5, Duration::from_secs(1));
        map.insert(1, 1, t0);
        map.clear();
        assert_eq!(map.len(), 0);
    }
}
