//! The embedded store's answers to memcached's admin commands, from its size classes (see
//! [`super::classes`]): `stats items`, `stats slabs`, `stats sizes`, `stats cachedump`,
//! `lru_crawler metadump` and `cache_memlimit`.
//!
//! What memcached reports and this store has no counterpart for is reported as memcached
//! reports an idle feature: `0` (segmented LRU moves and hits, crawler counters, ages: the
//! store keeps one LRU per shard and no access times). `la=` in a metadump line is the
//! item's last write, and `fetch=` is always `no`, for the same reason.

use super::classes::{chunk_size, class_of, ClassCount, CLASSES};
use super::MemoryStore;
use crate::clock::unix_secs;
use crate::protocol::admin::{Classes, MetadumpLine};
use crate::protocol::{Response, StoreAdmin};
use crate::store::{Access, Item};
use bytes::Bytes;

/// memcached's cap on a `stats cachedump` reply (2 MB).
const CACHEDUMP_MAX: usize = 2 * 1024 * 1024;
/// memcached's bucket width in `stats sizes`.
const SIZE_BUCKET: usize = 32;

impl MemoryStore {
    /// The reply to an admin request.
    pub(crate) fn admin_reply(&self, request: &StoreAdmin) -> Response {
        match request {
            StoreAdmin::Items => Response::Stats(self.items_lines()),
            StoreAdmin::Slabs => Response::Stats(self.slabs_lines()),
            StoreAdmin::Sizes => Response::Stats(self.sizes_lines()),
            StoreAdmin::Cachedump { class, limit } => {
                Response::Block(self.cachedump(*class as usize, *limit as usize))
            }
            StoreAdmin::Metadump(classes) => Response::Block(self.metadump(classes)),
            StoreAdmin::MemLimit { megabytes } => {
                self.set_memory_limit((*megabytes as usize).saturating_mul(1024 * 1024));
                Response::Ok
            }
        }
    }

    /// Every class's counters, summed over the shards.
    fn class_counts(&self) -> [ClassCount; CLASSES] {
        let mut total = [ClassCount::default(); CLASSES];
        for shard in self.shards.iter() {
            let shard = shard.0.lock();
            for (sum, count) in total.iter_mut().zip(shard.classes.counts()) {
                sum.merge(count);
            }
        }
        total
    }

    /// `stats items`: memcached's 28 counters for every class that holds items.
    fn items_lines(&self) -> Vec<(String, String)> {
        let mut lines = Vec::new();
        for (class, count) in self.class_counts().iter().enumerate().skip(1) {
            if count.items == 0 {
                continue;
            }
            let mut stat = |name: &str, value: u64| {
                lines.push((format!("items:{class}:{name}"), value.to_string()));
            };
            stat("number", count.items);
            stat("number_hot", 0);
            stat("number_warm", 0);
            // One flat LRU per shard: memcached files a flat LRU's items as cold.
            stat("number_cold", count.items);
            for name in ["age_hot", "age_warm", "age"] {
                stat(name, 0);
            }
            stat("mem_requested", count.bytes);
            stat("evicted", count.evicted);
            stat("evicted_nonzero", count.evicted_nonzero);
            stat("evicted_time", count.evicted_time);
            stat("outofmemory", 0);
            stat("tailrepairs", 0);
            stat("reclaimed", count.reclaimed);
            for name in IDLE_ITEM_COUNTERS {
                stat(name, 0);
            }
        }
        lines
    }

    /// `stats slabs`: every item is an allocation of its own, so a class's "chunks" are its
    /// items, one per "page", none free.
    fn slabs_lines(&self) -> Vec<(String, String)> {
        let mut lines = Vec::new();
        let (mut active, mut malloced) = (0u64, 0u64);
        for (class, count) in self.class_counts().iter().enumerate().skip(1) {
            if count.items == 0 {
                continue;
            }
            active += 1;
            malloced += count.bytes;
            let mut stat = |name: &str, value: u64| {
                lines.push((format!("{class}:{name}"), value.to_string()));
            };
            stat("chunk_size", chunk_size(class));
            stat("chunks_per_page", 1);
            stat("total_pages", count.items);
            stat("total_chunks", count.items);
            stat("used_chunks", count.items);
            stat("free_chunks", 0);
            stat("free_chunks_end", 0);
        }
        lines.push(("active_slabs".into(), active.to_string()));
        lines.push(("total_malloced".into(), malloced.to_string()));
        lines
    }

    /// `stats sizes`: live items by footprint, in 32-byte buckets (a pass over every item,
    /// one shard locked at a time, as memcached's own `stats sizes` is a costly command).
    fn sizes_lines(&self) -> Vec<(String, String)> {
        let now = self.now();
        let mut buckets = std::collections::BTreeMap::<usize, u64>::new();
        for shard in self.shards.iter() {
            let shard = shard.0.lock();
            for (key, item, _) in shard.items(&now).filter(|(_, item, _)| now.is_live(item)) {
                let bucket = item.footprint(key.len()).div_ceil(SIZE_BUCKET) * SIZE_BUCKET;
                *buckets.entry(bucket).or_default() += 1;
            }
        }
        buckets
            .into_iter()
            .map(|(size, count)| (size.to_string(), count.to_string()))
            .collect()
    }

    /// `stats cachedump`: `ITEM <key> [<bytes> b; <expiry> s]` for the live items of one
    /// class (most recently used first within each shard), at most `limit` (0: no limit)
    /// and at most 2 MB, as memcached caps it.
    fn cachedump(&self, class: usize, limit: usize) -> Bytes {
        let now = self.now();
        let mut out = Vec::new();
        let mut shown = 0;
        'shards: for shard in self.shards.iter() {
            let shard = shard.0.lock();
            for (key, item, _) in shard.items(&now) {
                if limit != 0 && shown >= limit {
                    break 'shards;
                }
                if class_of(item.footprint(key.len())) != class || !now.is_live(item) {
                    continue;
                }
                let tail = format!(" [{} b; {} s]\r\n", item.value.len(), item.expires_at.0);
                if out.len() + 5 + key.len() + tail.len() + 5 > CACHEDUMP_MAX {
                    break 'shards;
                }
                out.extend_from_slice(b"ITEM ");
                out.extend_from_slice(key);
                out.extend_from_slice(tail.as_bytes());
                shown += 1;
            }
        }
        Bytes::from(out)
    }

    /// `lru_crawler metadump`: one line per live item of the selected classes.
    fn metadump(&self, classes: &Classes) -> Bytes {
        let now = self.now();
        let mut out = Vec::new();
        for shard in self.shards.iter() {
            let shard = shard.0.lock();
            for (key, item, access) in shard.items(&now) {
                let footprint = item.footprint(key.len());
                let class = class_of(footprint);
                if classes.contains(class as u32) && now.is_live(item) {
                    metadump_line(key, item, access, class, footprint, &mut out);
                }
            }
        }
        Bytes::from(out)
    }

    /// `cache_memlimit`: the new limit, each shard evicting down to its share at once.
    pub(crate) fn set_memory_limit(&self, limit_bytes: usize) {
        let now = self.now();
        self.limit_bytes
            .store(limit_bytes, std::sync::atomic::Ordering::Relaxed);
        let per_shard = limit_bytes / self.shards.len();
        for shard in self.shards.iter() {
            shard.0.lock().set_limit(per_shard, &now);
        }
    }
}

/// The `stats items` counters of memcached's segmented LRU, crawler and extstore, which the
/// embedded store has no counterpart for.
const IDLE_ITEM_COUNTERS: [&str; 14] = [
    "expired_unfetched",
    "evicted_unfetched",
    "evicted_active",
    "crawler_reclaimed",
    "crawler_items_checked",
    "lrutail_reflocked",
    "moves_to_cold",
    "moves_to_warm",
    "moves_within_lru",
    "direct_reclaims",
    "hits_to_hot",
    "hits_to_warm",
    "hits_to_cold",
    "hits_to_temp",
];

/// The metadump line of one item (`la=` its last write, `fetch=no`: see the module docs).
fn metadump_line(
    key: &[u8],
    item: &Item,
    access: Access,
    class: usize,
    size: usize,
    out: &mut Vec<u8>,
) {
    MetadumpLine {
        key,
        exp: (!item.expires_at.is_never()).then_some(item.expires_at.0),
        last_access: unix_secs().saturating_sub(access.idle_secs),
        cas: item.cas,
        fetched: access.fetched,
        class: class as u32,
        size: size as u64,
    }
    .write(out);
}
