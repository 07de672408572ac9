//! One shard of the embedded store: an LRU-ordered map with its own byte accounting.
//!
//! Every method runs under the shard's lock, so each is atomic per key. Dead items (expired or
//! flushed) are invisible: the first operation that meets one removes it and counts it as
//! reclaimed.

use super::flush::Now;
use crate::store::Item;
use bytes::Bytes;
use lru::LruCache;

/// An LRU map plus the bytes its items cost and its share of the memory limit.
pub(super) struct Shard {
    map: LruCache<Bytes, Item>,
    /// Sum of `Item::footprint` over `map`.
    used: usize,
    /// This shard's share of the store's memory limit.
    limit: usize,
    /// Items evicted to stay under `limit`.
    pub(super) evictions: u64,
    /// Dead items removed.
    pub(super) reclaimed: u64,
}

/// Looked up under the lock: a live item, nothing, or a dead item that was just removed.
pub(super) enum Lookup<T> {
    /// The key holds a live item.
    Live(T),
    /// The key holds nothing visible.
    Missing,
}

impl Shard {
    /// An empty shard allowed `limit` bytes.
    pub(super) fn new(limit: usize) -> Shard {
        Shard {
            map: LruCache::unbounded(),
            used: 0,
            limit,
            evictions: 0,
            reclaimed: 0,
        }
    }

    /// Items held (dead ones not yet reclaimed included, as memcached counts them).
    pub(super) fn len(&self) -> usize {
        self.map.len()
    }

    /// Bytes held.
    pub(super) fn used(&self) -> usize {
        self.used
    }

    /// A copy of the live item under `key`, marking it recently used.
    #[inline]
    pub(super) fn get(&mut self, key: &[u8], now: &Now) -> Option<Item> {
        match self.map.get(key) {
            None => return None,
            Some(item) if now.is_live(item) => return Some(item.clone()),
            Some(_) => {}
        }
        self.reclaim(key);
        None
    }

    /// Runs `f` on the live item under `key` (in place; `f` must not change its size).
    #[inline]
    pub(super) fn with_live<T>(
        &mut self,
        key: &[u8],
        now: &Now,
        f: impl FnOnce(&mut Item) -> T,
    ) -> Lookup<T> {
        match self.map.get_mut(key) {
            None => return Lookup::Missing,
            Some(item) if now.is_live(item) => return Lookup::Live(f(item)),
            Some(_) => {}
        }
        self.reclaim(key);
        Lookup::Missing
    }

    /// Whether `key` holds a live item (removing a dead one).
    pub(super) fn contains_live(&mut self, key: &[u8], now: &Now) -> bool {
        matches!(self.with_live(key, now, |_| ()), Lookup::Live(()))
    }

    /// Stores `item` under `key` (or removes the key when `item` is already dead), then
    /// evicts least recently used items until the shard fits its limit again.
    #[inline]
    pub(super) fn put(&mut self, key: Bytes, item: Item, now: &Now) {
        if !now.is_live(&item) {
            // memcached answers STORED and the item is simply never seen.
            self.remove(&key);
            return;
        }
        let key_len = key.len();
        self.used += item.footprint(key_len);
        if let Some(old) = self.map.put(key, item) {
            self.used -= old.footprint(key_len);
        }
        self.evict(now);
    }

    /// Removes `key` whatever it holds; returns the item if it was live.
    pub(super) fn remove_live(&mut self, key: &[u8], now: &Now) -> bool {
        match self.remove(key) {
            Some(item) if now.is_live(&item) => true,
            Some(_) => {
                self.reclaimed += 1;
                false
            }
            None => false,
        }
    }

    /// Removes every item whose packed version is at or below `cutoff`.
    pub(super) fn flush(&mut self, cutoff: u64) {
        let doomed: Vec<Bytes> = self
            .map
            .iter()
            .filter(|(_, item)| item.version.as_u64() <= cutoff)
            .map(|(key, _)| key.clone())
            .collect();
        for key in doomed {
            self.remove(&key);
        }
    }

    /// Copies of every live item, in no particular order.
    pub(super) fn live_items(&self, now: &Now) -> Vec<(Bytes, Item)> {
        self.map
            .iter()
            .filter(|(_, item)| now.is_live(item))
            .map(|(key, item)| (key.clone(), item.clone()))
            .collect()
    }

    /// Drops every item.
    pub(super) fn clear(&mut self) {
        self.map.clear();
        self.used = 0;
    }

    fn remove(&mut self, key: &[u8]) -> Option<Item> {
        let item = self.map.pop(key)?;
        self.used -= item.footprint(key.len());
        Some(item)
    }

    #[cold]
    fn reclaim(&mut self, key: &[u8]) {
        if self.remove(key).is_some() {
            self.reclaimed += 1;
        }
    }

    fn evict(&mut self, now: &Now) {
        // Never evict the item just written (the most recent): a lone item over the limit stays.
        while self.used > self.limit && self.map.len() > 1 {
            let Some((key, item)) = self.map.pop_lru() else {
                break;
            };
            self.used -= item.footprint(key.len());
            if now.is_live(&item) {
                self.evictions += 1;
            } else {
                self.reclaimed += 1;
            }
        }
    }
}
