//! The embedded in-memory store: the default backing store, a drop-in for memcached's own.
//!
//! Keys are spread over a power-of-two number of shards by a fast hash; each shard is a
//! `parking_lot::Mutex` around an LRU-ordered map with its own byte accounting and an equal
//! share of the memory limit (so eviction is LRU per shard, which is what memcached's per-slab
//! LRUs give as well). Every operation locks exactly one shard per key, never across an await.
//!
//! Expired and flushed items are invisible to every operation and are removed by the first
//! operation that meets them (counted in `reclaimed`); an immediate `flush_all` also frees
//! their memory at once, a delayed one is checked lazily (see [`flush`]).

mod admin;
pub(crate) mod classes;
pub(crate) mod flush;
mod shard;

use self::flush::{FlushSchedule, Now};
use self::shard::{Lookup, Shard};
use super::{
    apply_arith, concat_change, parse_counter, Access, ArithOutcome, Change, ExpiresAt, Item,
    Store, StoreOutcome, StoreResult, StoreStats, ITEM_OVERHEAD,
};
use crate::clock::{unix_ms, Timestamp};
use crate::protocol::{Response, StoreAdmin};
use bytes::Bytes;
use parking_lot::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// memcached's default memory limit (`-m 64`).
pub const DEFAULT_LIMIT_BYTES: usize = 64 * 1024 * 1024;
/// memcached's default item size maximum (`-I 1m`), applied to the value.
pub const DEFAULT_MAX_ITEM_SIZE: usize = 1024 * 1024;
const MAX_SHARDS: usize = 64;

/// How the embedded store is sized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryConfig {
    /// Memory limit in bytes, counted with [`Item::footprint`].
    pub limit_bytes: usize,
    /// Largest value in bytes; larger writes answer [`StoreOutcome::TooLarge`].
    pub max_item_size: usize,
    /// Number of shards, rounded up to a power of two; 0 picks one from the limit so that
    /// each shard can hold three maximum-size items.
    pub shards: usize,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        MemoryConfig {
            limit_bytes: DEFAULT_LIMIT_BYTES,
            max_item_size: DEFAULT_MAX_ITEM_SIZE,
            shards: 0,
        }
    }
}

impl MemoryConfig {
    /// The default configuration with a different memory limit.
    pub fn with_limit(limit_bytes: usize) -> Self {
        MemoryConfig {
            limit_bytes,
            ..Self::default()
        }
    }

    fn shard_count(&self) -> usize {
        if self.shards > 0 {
            return self.shards.next_power_of_two().min(MAX_SHARDS);
        }
        // Each shard's share must fit a few of the largest items, or big values would evict
        // everything else in their shard.
        let biggest = self.max_item_size + 250 + ITEM_OVERHEAD;
        let mut shards = MAX_SHARDS;
        while shards > 1 && self.limit_bytes / shards < 3 * biggest {
            shards /= 2;
        }
        shards
    }
}

/// Keeps each shard's lock on its own cache line so that shards do not contend by sharing.
#[repr(align(128))]
struct Padded(Mutex<Shard>);

/// The embedded store: sharded maps with LRU eviction under a memory limit.
pub struct MemoryStore {
    shards: Box<[Padded]>,
    mask: usize,
    max_item_size: usize,
    /// The memory limit (changed by `cache_memlimit`).
    limit_bytes: AtomicUsize,
    flushes: FlushSchedule,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new(MemoryConfig::default())
    }
}

impl MemoryStore {
    /// An empty store sized by `config`.
    pub fn new(config: MemoryConfig) -> MemoryStore {
        let count = config.shard_count();
        let per_shard = config.limit_bytes / count;
        MemoryStore {
            shards: (0..count)
                .map(|_| Padded(Mutex::new(Shard::new(per_shard))))
                .collect(),
            mask: count - 1,
            max_item_size: config.max_item_size,
            limit_bytes: AtomicUsize::new(config.limit_bytes),
            flushes: FlushSchedule::default(),
        }
    }

    /// The largest value this store accepts.
    pub fn max_item_size(&self) -> usize {
        self.max_item_size
    }

    /// The number of shards (a power of two).
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    #[inline]
    fn shard(&self, key: &[u8]) -> &Mutex<Shard> {
        &self.shards[shard_hash(key) as usize & self.mask].0
    }

    #[inline]
    fn now(&self) -> Now {
        Now::read(&self.flushes)
    }

    /// `append` and `prepend`: a new item (fresh cas id and access record), built under the
    /// shard lock.
    fn concat(&self, key: Bytes, data: Bytes, version: Timestamp, back: bool) -> StoreOutcome {
        let now = self.now();
        let max = self.max_item_size;
        let mut shard = self.shard(&key).lock();
        let outcome = shard.update(&key, &now, false, max, |live| {
            concat_change(live, &data, version, back, max)
        });
        outcome.unwrap_or(StoreOutcome::TooLarge)
    }

    /// `incr` and `decr`: counted in place, as memcached does (the item keeps its marks and
    /// access record), under a new cas id.
    fn arith(&self, key: Bytes, delta: u64, version: Timestamp, incr: bool) -> ArithOutcome {
        let now = self.now();
        let mut shard = self.shard(&key).lock();
        let outcome = shard.update(&key, &now, false, usize::MAX, |live| {
            let Some((old, _)) = live else {
                return Change::Keep(ArithOutcome::NotFound);
            };
            let Some(current) = parse_counter(&old.value) else {
                return Change::Keep(ArithOutcome::NonNumeric);
            };
            let next = apply_arith(current, delta, incr);
            let item = Item {
                value: decimal(next),
                cas: version.as_u64(),
                version,
                ..old.clone()
            };
            Change::Modify(item, ArithOutcome::Value(next))
        });
        outcome.unwrap_or(ArithOutcome::NotFound)
    }
}

/// A counter's stored form: decimal digits, no padding.
fn decimal(n: u64) -> Bytes {
    let mut buf = [0u8; 20];
    let mut at = buf.len();
    let mut n = n;
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    Bytes::copy_from_slice(&buf[at..])
}

/// FNV-1a over the key, folded: cheap for short keys and independent of the maps' own hasher,
/// so shard choice and bucket choice do not correlate.
#[inline]
fn shard_hash(key: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &byte in key {
        hash ^= byte as u64;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash ^ (hash >> 29)
}

impl Store for MemoryStore {
    async fn get(&self, keys: &[Bytes]) -> StoreResult<Vec<Option<Item>>> {
        let now = self.now();
        Ok(keys
            .iter()
            .map(|key| self.shard(key).lock().get(key, &now))
            .collect())
    }

    async fn set(&self, key: Bytes, item: Item) -> StoreResult<StoreOutcome> {
        let now = self.now();
        let mut shard = self.shard(&key).lock();
        if item.value.len() > self.max_item_size {
            // As memcached does: a failed set must not leave the old value readable.
            shard.remove_live(&key, &now);
            return Ok(StoreOutcome::TooLarge);
        }
        shard.put(key, item, &now);
        Ok(StoreOutcome::Stored)
    }

    async fn add(&self, key: Bytes, item: Item) -> StoreResult<StoreOutcome> {
        if item.value.len() > self.max_item_size {
            return Ok(StoreOutcome::TooLarge);
        }
        let now = self.now();
        let mut shard = self.shard(&key).lock();
        if shard.contains_live(&key, &now) {
            return Ok(StoreOutcome::NotStored);
        }
        shard.put(key, item, &now);
        Ok(StoreOutcome::Stored)
    }

    async fn replace(&self, key: Bytes, item: Item) -> StoreResult<StoreOutcome> {
        if item.value.len() > self.max_item_size {
            return Ok(StoreOutcome::TooLarge);
        }
        let now = self.now();
        let mut shard = self.shard(&key).lock();
        if !shard.contains_live(&key, &now) {
            return Ok(StoreOutcome::NotStored);
        }
        shard.put(key, item, &now);
        Ok(StoreOutcome::Stored)
    }

    async fn append(
        &self,
        key: Bytes,
        data: Bytes,
        version: Timestamp,
    ) -> StoreResult<StoreOutcome> {
        Ok(self.concat(key, data, version, true))
    }

    async fn prepend(
        &self,
        key: Bytes,
        data: Bytes,
        version: Timestamp,
    ) -> StoreResult<StoreOutcome> {
        Ok(self.concat(key, data, version, false))
    }

    async fn cas(&self, key: Bytes, item: Item, expected: u64) -> StoreResult<StoreOutcome> {
        if item.value.len() > self.max_item_size {
            return Ok(StoreOutcome::TooLarge);
        }
        let now = self.now();
        let mut shard = self.shard(&key).lock();
        match shard.with_live(&key, &now, |old| old.cas == expected) {
            Lookup::Missing => Ok(StoreOutcome::NotFound),
            Lookup::Live(false) => Ok(StoreOutcome::Exists),
            Lookup::Live(true) => {
                shard.put(key, item, &now);
                Ok(StoreOutcome::Stored)
            }
        }
    }

    async fn delete(&self, key: Bytes, _version: Timestamp) -> StoreResult<bool> {
        let now = self.now();
        Ok(self.shard(&key).lock().remove_live(&key, &now))
    }

    async fn incr(&self, key: Bytes, delta: u64, version: Timestamp) -> StoreResult<ArithOutcome> {
        Ok(self.arith(key, delta, version, true))
    }

    async fn decr(&self, key: Bytes, delta: u64, version: Timestamp) -> StoreResult<ArithOutcome> {
        Ok(self.arith(key, delta, version, false))
    }

    async fn touch(
        &self,
        key: Bytes,
        expires_at: ExpiresAt,
        version: Timestamp,
    ) -> StoreResult<bool> {
        Ok(self.gat(&[key], expires_at, version).await?[0].is_some())
    }

    async fn gat(
        &self,
        keys: &[Bytes],
        expires_at: ExpiresAt,
        version: Timestamp,
    ) -> StoreResult<Vec<Option<Item>>> {
        let now = self.now();
        Ok(keys
            .iter()
            .map(|key| {
                let mut shard = self.shard(key).lock();
                let touched = shard.with_live(key, &now, |item| {
                    item.expires_at = expires_at;
                    item.version = version;
                    item.clone()
                });
                match touched {
                    Lookup::Live(item) => {
                        shard.mark_fetched(key, &now);
                        if !now.is_live(&item) {
                            // Touched into the past (negative exptime): this read still sees
                            // it, as in memcached, but nothing after will.
                            shard.remove_live(key, &now);
                        }
                        Some(item)
                    }
                    Lookup::Missing => None,
                }
            })
            .collect())
    }

    async fn peek_items(&self, keys: &[Bytes]) -> StoreResult<Vec<Option<Item>>> {
        let now = self.now();
        Ok(keys
            .iter()
            .map(|key| {
                let found = self.shard(key).lock().peek(key, &now, false);
                found.map(|(item, _)| item)
            })
            .collect())
    }

    async fn peek(&self, key: &Bytes, bump: bool) -> StoreResult<Option<(Item, Access)>> {
        let now = self.now();
        Ok(self.shard(key).lock().peek(key, &now, bump))
    }

    async fn update<T: Send>(
        &self,
        key: &Bytes,
        bump: bool,
        decide: impl FnMut(Option<(&Item, Access)>) -> Change<T> + Send,
    ) -> StoreResult<Option<T>> {
        let now = self.now();
        let mut shard = self.shard(key).lock();
        Ok(shard.update(key, &now, bump, self.max_item_size, decide))
    }

    async fn flush_all(&self, cutoff: Timestamp) -> StoreResult<()> {
        if self.flushes.schedule(cutoff, unix_ms()) {
            // In effect now: free the memory now rather than waiting for accesses.
            for shard in self.shards.iter() {
                shard.0.lock().flush(cutoff.as_u64());
            }
        }
        Ok(())
    }

    async fn dump(&self) -> StoreResult<Vec<(Bytes, Item)>> {
        let now = self.now();
        let mut items = Vec::new();
        for shard in self.shards.iter() {
            items.extend(shard.0.lock().live_items(&now));
        }
        Ok(items)
    }

    async fn clear(&self) -> StoreResult<()> {
        for shard in self.shards.iter() {
            shard.0.lock().clear();
        }
        self.flushes.reset();
        Ok(())
    }

    fn pending_flushes(&self) -> Vec<Timestamp> {
        self.flushes.pending(unix_ms())
    }

    async fn admin(&self, request: &StoreAdmin) -> StoreResult<Response> {
        Ok(self.admin_reply(request))
    }

    async fn stats(&self) -> StoreStats {
        let mut stats = StoreStats {
            limit_maxbytes: self.limit_bytes.load(Ordering::Relaxed) as u64,
            ..StoreStats::default()
        };
        for shard in self.shards.iter() {
            let shard = shard.0.lock();
            stats.curr_items += shard.len() as u64;
            stats.bytes += shard.used() as u64;
            stats.evictions += shard.evictions;
            stats.reclaimed += shard.reclaimed;
        }
        stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_written_without_padding() {
        assert_eq!(decimal(0), Bytes::from_static(b"0"));
        assert_eq!(decimal(42), Bytes::from_static(b"42"));
        assert_eq!(
            decimal(u64::MAX),
            Bytes::from_static(b"18446744073709551615")
        );
    }

    #[test]
    fn shard_count_leaves_room_for_big_items() {
        assert_eq!(MemoryConfig::default().shard_count(), 16);
        assert_eq!(MemoryConfig::with_limit(1 << 30).shard_count(), 64);
        assert_eq!(MemoryConfig::with_limit(1 << 20).shard_count(), 1);
        let fixed = MemoryConfig {
            shards: 5,
            ..MemoryConfig::default()
        };
        assert_eq!(fixed.shard_count(), 8);
    }
}
