//! One shard of the embedded store: an LRU-ordered map with its own byte accounting.
//!
//! Every method runs under the shard's lock, so each is atomic per key. Dead items (expired or
//! flushed) are invisible: the first operation that meets one removes it and counts it as
//! reclaimed.

use super::classes::Classes;
use super::flush::Now;
use crate::clock::unix_secs;
use crate::store::{Access, Change, Item};
use bytes::Bytes;
use lru::LruCache;

/// One key's entry: the item and this replica's record of reads of it.
struct Slot {
    item: Item,
    /// Fetched by a bumping read since it was written.
    fetched: bool,
    /// Unix seconds of the last write or bumping read.
    accessed_at: u64,
}

impl Slot {
    fn new(item: Item, now: &Now) -> Slot {
        Slot {
            item,
            fetched: false,
            accessed_at: now.secs,
        }
    }

    fn access(&self, now: &Now) -> Access {
        Access {
            fetched: self.fetched,
            idle_secs: now.secs.saturating_sub(self.accessed_at),
        }
    }

    #[inline]
    fn bump(&mut self, now: &Now) {
        self.fetched = true;
        self.accessed_at = now.secs;
    }
}

/// An LRU map plus the bytes its items cost and its share of the memory limit.
pub(super) struct Shard {
    map: LruCache<Bytes, Slot>,
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

    /// Every item, live or not, with its access record at `now`, most recently used first
    /// (as memcached's cachedump walks).
    pub(super) fn items<'a>(
        &'a self,
        now: &'a Now,
    ) -> impl Iterator<Item = (&'a Bytes, &'a Item, Access)> + 'a {
        self.map
            .iter()
            .map(move |(key, slot)| (key, &slot.item, slot.access(now)))
    }

    /// Items held (dead ones not yet reclaimed included, as memcached counts them).
    pub(super) fn len(&self) -> usize {
        self.map.len()
    }

    /// Bytes held.
    pub(super) fn used(&self) -> usize {
        self.used
    }

    /// A copy of the live item under `key`, marking it recently used and fetched.
    #[inline]
    pub(super) fn get(&mut self, key: &[u8], now: &Now) -> Option<Item> {
        match self.map.get_mut(key) {
            None => return None,
            Some(slot) if now.is_live(&slot.item) => {
                slot.bump(now);
                return Some(slot.item.clone());
            }
            Some(_) => {}
        }
        self.reclaim(key);
        None
    }

    /// A copy of the live item under `key` with its access record as it was; `bump` marks it
    /// fetched and recently used.
    pub(super) fn peek(&mut self, key: &[u8], now: &Now, bump: bool) -> Option<(Item, Access)> {
        let slot = if bump {
            self.map.get_mut(key)
        } else {
            self.map.peek_mut(key)
        };
        match slot {
            None => return None,
            Some(slot) if now.is_live(&slot.item) => {
                let access = slot.access(now);
                if bump {
                    slot.bump(now);
                }
                return Some((slot.item.clone(), access));
            }
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
            Some(slot) if now.is_live(&slot.item) => return Lookup::Live(f(&mut slot.item)),
            Some(_) => {}
        }
        self.reclaim(key);
        Lookup::Missing
    }

    /// Marks the item under `key` fetched and recently used (a touch is a fetch to memcached).
    pub(super) fn mark_fetched(&mut self, key: &[u8], now: &Now) {
        if let Some(slot) = self.map.get_mut(key) {
            slot.bump(now);
        }
    }

    /// Runs a read-modify-write of `key` (see [`crate::store::Store::update`]); a new value
    /// over `max_value` is refused (`None`, nothing written).
    pub(super) fn update<T>(
        &mut self,
        key: &Bytes,
        now: &Now,
        bump: bool,
        max_value: usize,
        decide: impl FnOnce(Option<(&Item, Access)>) -> Change<T>,
    ) -> Option<T> {
        let live = match self.map.peek(key.as_ref()) {
            Some(slot) => now.is_live(&slot.item),
            None => false,
        };
        if !live {
            self.reclaim(key);
        }
        let change = {
            let current = self
                .map
                .peek(key.as_ref())
                .map(|slot| (&slot.item, slot.access(now)));
            decide(current)
        };
        match change {
            Change::Keep(answer) => {
                if bump {
                    self.mark_fetched(key, now);
                }
                Some(answer)
            }
            Change::Remove(answer) => {
                self.remove(key);
                Some(answer)
            }
            Change::Modify(item, _) | Change::Replace(item, _) if item.value.len() > max_value => {
                None
            }
            Change::Modify(item, answer) => {
                self.modify(key, item, now, bump);
                Some(answer)
            }
            Change::Replace(item, answer) => {
                self.put(key.clone(), item, now);
                Some(answer)
            }
        }
    }

    /// Changes the item under `key` in place, keeping its access record (bumped with `bump`).
    fn modify(&mut self, key: &Bytes, item: Item, now: &Now, bump: bool) {
        if !now.is_live(&item) {
            self.remove(key);
            return;
        }
        let key_len = key.len();
        let Some(slot) = self.map.get_mut(key.as_ref()) else {
            self.put(key.clone(), item, now);
            return;
        };
        let old = std::mem::replace(&mut slot.item, item);
        if bump {
            slot.bump(now);
        }
        let (new_footprint, old_footprint) = (slot.item.footprint(key_len), old.footprint(key_len));
        self.used = self.used + new_footprint - old_footprint;
        self.classes.removed(old_footprint);
        self.classes.added(new_footprint);
        self.evict(now);
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
        if let Some(old) = self.map.put(key, Slot::new(item, now)) {
            let old_footprint = old.item.footprint(key_len);
            self.used -= old_footprint;
            self.classes.removed(old_footprint);
        }
        self.evict(now);
    }

    /// Removes `key` whatever it holds; returns the item if it was live.
    pub(super) fn remove_live(&mut self, key: &[u8], now: &Now) -> bool {
        match self.remove(key).map(|slot| slot.item) {
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
            .filter(|(_, slot)| slot.item.version.as_u64() <= cutoff)
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
            .filter(|(_, slot)| now.is_live(&slot.item))
            .map(|(key, slot)| (key.clone(), slot.item.clone()))
            .collect()
    }

    /// Drops every item.
    pub(super) fn clear(&mut self) {
        self.map.clear();
        self.used = 0;
        self.classes.clear_items();
    }

    fn remove(&mut self, key: &[u8]) -> Option<Slot> {
        let slot = self.map.pop(key)?;
        let footprint = slot.item.footprint(key.len());
        self.used -= footprint;
        self.classes.removed(footprint);
        Some(slot)
    }

    #[cold]
    fn reclaim(&mut self, key: &[u8]) {
        if let Some(slot) = self.remove(key) {
            self.reclaimed += 1;
            self.classes.reclaimed(slot.item.footprint(key.len()));
        }
    }

    fn evict(&mut self, now: &Now) {
        // Never evict the item just written (the most recent): a lone item over the limit stays.
        while self.used > self.limit && self.map.len() > 1 {
            let Some((key, slot)) = self.map.pop_lru() else {
                break;
            };
            let item = slot.item;
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
