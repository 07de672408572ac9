//! Size classes of the embedded store, for memcached's `stats items`, `stats slabs`,
//! `stats cachedump` and `lru_crawler metadump`.
//!
//! The embedded store allocates each item on its own (no slabs), so its classes describe
//! sizes, not memory: class `c` (1..=31) holds the items whose footprint
//! ([`Item::footprint`](crate::store::Item::footprint): key, value and overhead) is above
//! `2^(c+4)` and at most `2^(c+5)` bytes: class 1 up to 64 bytes, class 2 up to 128, …,
//! class 16 up to 2 MiB (a 1 MiB value). Each shard keeps its classes' counts as it stores
//! and drops items (a few additions per write, no scan), so the replies cost a pass over
//! the shards, not over the items.

/// Classes kept: enough for the largest footprint any limit allows (2^36 bytes).
pub(crate) const CLASSES: usize = 32;
/// Bytes of the smallest class's chunk (class 1).
pub(crate) const SMALLEST_CHUNK: u64 = 64;

/// The class of an item of `footprint` bytes.
#[inline]
pub(crate) fn class_of(footprint: usize) -> usize {
    let bits = usize::BITS - footprint.saturating_sub(1).leading_zeros();
    (bits.saturating_sub(5) as usize).clamp(1, CLASSES - 1)
}

/// The largest footprint class `class` holds.
pub(crate) fn chunk_size(class: usize) -> u64 {
    SMALLEST_CHUNK << (class - 1)
}

/// One class's counters in one shard.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ClassCount {
    /// Items held.
    pub items: u64,
    /// Sum of their footprints.
    pub bytes: u64,
    /// Live items evicted to stay under the memory limit.
    pub evicted: u64,
    /// Of those, items that had an expiry time.
    pub evicted_nonzero: u64,
    /// Seconds since the last evicted item was written (memcached: since it was accessed).
    pub evicted_time: u64,
    /// Dead items removed.
    pub reclaimed: u64,
}

impl ClassCount {
    /// Adds another shard's counts (the last eviction's age is the larger one).
    pub(crate) fn merge(&mut self, other: &ClassCount) {
        self.items += other.items;
        self.bytes += other.bytes;
        self.evicted += other.evicted;
        self.evicted_nonzero += other.evicted_nonzero;
        self.evicted_time = self.evicted_time.max(other.evicted_time);
        self.reclaimed += other.reclaimed;
    }
}

/// Every class's counters of one shard.
#[derive(Debug, Clone)]
pub(crate) struct Classes {
    counts: [ClassCount; CLASSES],
}

impl Default for Classes {
    fn default() -> Self {
        Classes {
            counts: [ClassCount::default(); CLASSES],
        }
    }
}

impl Classes {
    /// An item of `footprint` bytes was stored.
    #[inline]
    pub(crate) fn added(&mut self, footprint: usize) {
        let class = &mut self.counts[class_of(footprint)];
        class.items += 1;
        class.bytes += footprint as u64;
    }

    /// An item of `footprint` bytes was dropped.
    #[inline]
    pub(crate) fn removed(&mut self, footprint: usize) {
        let class = &mut self.counts[class_of(footprint)];
        class.items = class.items.saturating_sub(1);
        class.bytes = class.bytes.saturating_sub(footprint as u64);
    }

    /// A live item was evicted (after [`Classes::removed`]).
    pub(crate) fn evicted(&mut self, footprint: usize, had_expiry: bool, age_secs: u64) {
        let class = &mut self.counts[class_of(footprint)];
        class.evicted += 1;
        class.evicted_nonzero += u64::from(had_expiry);
        class.evicted_time = age_secs;
    }

    /// A dead item was reclaimed (after [`Classes::removed`]).
    pub(crate) fn reclaimed(&mut self, footprint: usize) {
        self.counts[class_of(footprint)].reclaimed += 1;
    }

    /// Forgets every item (their counters of evictions and reclaims stay).
    pub(crate) fn clear_items(&mut self) {
        for class in &mut self.counts {
            class.items = 0;
            class.bytes = 0;
        }
    }

    /// The counters, by class id (index 0 is unused).
    pub(crate) fn counts(&self) -> &[ClassCount; CLASSES] {
        &self.counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_double_from_64_bytes() {
        assert_eq!(class_of(0), 1);
        assert_eq!(class_of(1), 1);
        assert_eq!(class_of(64), 1);
        assert_eq!(class_of(65), 2);
        assert_eq!(class_of(128), 2);
        assert_eq!(class_of(129), 3);
        assert_eq!(class_of(1024 * 1024 + 346), 16);
        assert_eq!(class_of(usize::MAX), CLASSES - 1);
        for class in 1..CLASSES - 1 {
            let size = chunk_size(class) as usize;
            assert_eq!(class_of(size), class);
            assert_eq!(class_of(size + 1), class + 1);
        }
    }

    #[test]
    fn counts_follow_adds_and_removes() {
        let mut classes = Classes::default();
        classes.added(100);
        classes.added(120);
        classes.removed(100);
        classes.added(10);
        classes.removed(10);
        classes.reclaimed(10);
        assert_eq!(classes.counts()[2].items, 1);
        assert_eq!(classes.counts()[2].bytes, 120);
        assert_eq!(classes.counts()[1].items, 0);
        assert_eq!(classes.counts()[1].reclaimed, 1);
    }
}
