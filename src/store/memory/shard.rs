//! One shard of the embedded store: an LRU-ordered map with its own byte accounting.
//!
//! Every method runs under the shard's lock, so each is atomic per key. Dead items (expired or
//! flushed) are invisible: the first operation that meets one removes it and counts it as
//! reclaimed.

use super::classes::Classes;
use super::flush::Now;
use crate::clock::unix_secs;
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
    /// Items and their counters by size class.
    pub(super) classes: Classes,
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
            classes: Classes::default(),
        }
    }

    /// Changes this shard's share of the memory limit, evicting down to it.
    pub(super) fn set_limit(&mut self, limit: usize, now: &Now) {
        self.limit = limit;
        self.evict(now);
    }

    /// Every item, live or not, most recently used first (as memcached's cachedump walks).
    pub(super) fn items(&self) -> impl Iterator<Item = (&Bytes, &Item)> {
        self.map.iter()
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
        let footprint = item.footprint(key_len);
        self.used += footprint;
        self.classes.added(footprint);
        if let Some(old) = self.map.put(key, item) {
            let old_footprint = old.footprint(key_len);
            self.used -= old_footprint;
            self.classes.removed(old_footprint);
        }
        self.evict(now);
    }

    /// Removes `key` whatever it holds; returns the item if it was live.
    pub(super) fn remove_live(&mut self, key: &[u8], now: &Now) -> bool {
        match self.remove(key) {
            Some(item) if now.is_live(&item) => true,
            Some(item) => {
                self.reclaimed += 1;
                self.classes.reclaimed(item.footprint(key.len()));
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
        self.classes.clear_items();
    }

    fn remove(&mut self, key: &[u8]) -> Option<Item> {
        let item = self.map.pop(key)?;
        let footprint = item.footprint(key.len());
        self.used -= footprint;
        self.classes.removed(footprint);
        Some(item)
    }

    #[cold]
    fn reclaim(&mut self, key: &[u8]) {
        if let Some(item) = self.remove(key) {
            self.reclaimed += 1;
            self.classes.reclaimed(item.footprint(key.len()));
        }
    }

    fn evict(&mut self, now: &Now) {
        // Never evict the item just written (the most recent): a lone item over the limit stays.
        while self.used > self.limit && self.map.len() > 1 {
            let Some((key, item)) = self.map.pop_lru() else {
                break;
            };
            let footprint = item.footprint(key.len());
            self.used -= footprint;
            self.classes.removed(footprint);
            if now.is_live(&item) {
                self.evictions += 1;
                let written = item.version.physical_ms() / 1000;
                let age = unix_secs().saturating_sub(written);
                self.classes
                    .evicted(footprint, !item.expires_at.is_never(), age);
            } else {
                self.reclaimed += 1;
                self.classes.reclaimed(footprint);
            }
        }
    }
}
