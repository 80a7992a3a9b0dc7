//! A map whose entries expire and whose size is bounded: the verdict cache and the proxy's small
//! memories (blob sizes, signature manifests) are all one of these. Each entry lives `ttl` from
//! insertion, or less when the caller gives an earlier deadline (a verdict that a key's
//! `notAfter` will change). The clock is passed in, so expiry is tested without sleeping.
//!
//! Storage and eviction are `quick_cache`'s single-threaded cache (S3-FIFO: a full cache drops a
//! cold entry in O(1), where the hand-written map before it scanned every entry). Its concurrent
//! cache and `moka` are not used: the verdict cache must sit under the same lock as the
//! judgements under way (single flight, see `engine.rs`), and `moka` reads its own clock, so
//! tests could not move time.

use std::hash::Hash;
use std::time::{Duration, Instant};

use quick_cache::unsync::{Cache, DefaultLifecycle};
use quick_cache::{DefaultHashBuilder, OptionsBuilder, UnitWeighter};

/// Entries are kept until their deadline; at most about `capacity` are kept (when full, a cold
/// entry goes, live or not). Expired entries are dropped when looked up or evicted.
pub(crate) struct TtlMap<K, V> {
    entries: Cache<K, (V, Instant)>,
    capacity: usize,
    ttl: Duration,
}

impl<K: Hash + Eq, V> std::fmt::Debug for TtlMap<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TtlMap")
            .field("len", &self.entries.len())
            .field("capacity", &self.capacity)
            .field("ttl", &self.ttl)
            .finish()
    }
}

/// Slots reserved up front: the gate's maps allow 100,000 entries, which a small deployment
/// never fills; the table grows as entries come.
const INITIAL_SLOTS: usize = 1024;

impl<K: Hash + Eq + Clone, V: Clone> TtlMap<K, V> {
    /// An empty map; `capacity` 0 or a zero `ttl` keeps nothing.
    pub(crate) fn new(capacity: usize, ttl: Duration) -> Self {
        let options = OptionsBuilder::new()
            .estimated_items_capacity(capacity.clamp(1, INITIAL_SLOTS))
            .weight_capacity(capacity.max(1) as u64)
            .build();
        let entries = match options {
            Ok(options) => Cache::with_options(
                options,
                UnitWeighter,
                DefaultHashBuilder::default(),
                DefaultLifecycle::default(),
            ),
            // Both required options are set above; `build` fails on nothing else.
            Err(_) => Cache::new(capacity.max(1)),
        };
        TtlMap {
            entries,
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

    /// When the live entry for `key` expires, if there is one at `now`.
    pub(crate) fn expiry(&self, key: &K, now: Instant) -> Option<Instant> {
        match self.entries.peek(key) {
            Some((_, expires)) if *expires > now => Some(*expires),
            _ => None,
        }
    }

    /// Keep `value` for `key` until `now + ttl`.
    pub(crate) fn insert(&mut self, key: K, value: V, now: Instant) {
        self.insert_until(key, value, now, None);
    }

    /// Keep `value` for `key` until `now + ttl`, or until `deadline` if that is sooner; a
    /// deadline not after `now` keeps nothing (and forgets an older value for `key`).
    pub(crate) fn insert_until(
        &mut self,
        key: K,
        value: V,
        now: Instant,
        deadline: Option<Instant>,
    ) {
        let mut expires = now + self.ttl;
        if let Some(deadline) = deadline {
            expires = expires.min(deadline);
        }
        if self.capacity == 0 || expires <= now {
            self.entries.remove(&key);
            return;
        }
        self.entries.insert(key, (value, expires));
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
    fn an_earlier_deadline_shortens_an_entry_and_a_later_one_does_not_lengthen_it() {
        let t0 = Instant::now();
        let mut map = TtlMap::new(10, Duration::from_secs(300));
        map.insert_until("key-retires", 1, t0, Some(t0 + Duration::from_secs(10)));
        assert_eq!(
            map.get(&"key-retires", t0 + Duration::from_secs(9)),
            Some(1)
        );
        assert_eq!(map.get(&"key-retires", t0 + Duration::from_secs(10)), None);
        map.insert_until("far", 2, t0, Some(t0 + Duration::from_secs(3600)));
        assert_eq!(map.get(&"far", t0 + Duration::from_secs(299)), Some(2));
        assert_eq!(map.get(&"far", t0 + Duration::from_secs(300)), None);
        // A deadline already past keeps nothing, and drops what was there.
        map.insert("past", 3, t0);
        map.insert_until("past", 4, t0 + Duration::from_secs(1), Some(t0));
        assert_eq!(map.get(&"past", t0 + Duration::from_secs(1)), None);
    }

    #[test]
    fn size_is_bounded() {
        let t0 = Instant::now();
        let mut map = TtlMap::new(100, Duration::from_secs(60));
        for i in 0..1000 {
            map.insert(i, i, t0);
        }
        assert!(map.len() <= 100, "{} entries", map.len());
        // The newest entries are there (S3-FIFO admits new entries; cold old ones go).
        assert_eq!(map.get(&999, t0), Some(999));
        let live = (0..1000).filter(|i| map.get(i, t0).is_some()).count();
        assert!((50..=100).contains(&live), "{live} live entries");
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
