//! The eventual mode's replication log: the newest version of every key, in the order this
//! peer logged it.
//!
//! The log keeps one entry per key (not one per request), so it is bounded by the key set. Each
//! entry carries two timestamps: the key's **version** (the last-writer-wins key, chosen by
//! whichever peer wrote it) and its **mark**, this peer's own clock reading when it logged the
//! entry. Sync pages are cut by mark, not by version: an old version that reaches this peer late
//! (relayed from a third peer) still gets a fresh mark, so a peer that already synced past the
//! old version still receives it at its next sync. Marks are taken under the log's lock, so a
//! page never skips an entry that a concurrent write logs with a smaller mark.
//!
//! Values are not kept here; a page reads them from the store when it is built.

use crate::clock::{HybridClock, Timestamp};
use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// What the log knows about one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyVersion {
    /// The last-writer-wins version.
    pub version: Timestamp,
    /// Whether that version is a delete.
    pub tombstone: bool,
    /// When this peer logged it.
    pub mark: Timestamp,
}

/// One page of the log, as a sync answer needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogPage {
    /// Keys logged after `since`, in mark order, with what the log knows about them.
    pub keys: Vec<(Bytes, KeyVersion)>,
    /// The newest flush, if it was logged after `since`.
    pub flush: Option<Timestamp>,
    /// The mark to continue from.
    pub next: Timestamp,
    /// Whether this page reaches the end of the log.
    pub complete: bool,
}

#[derive(Default)]
struct Inner {
    by_key: HashMap<Bytes, KeyVersion>,
    by_mark: BTreeMap<Timestamp, Bytes>,
    flush: Option<(Timestamp, Timestamp)>,
}

/// The per-key replication log of one peer.
pub struct ReplicationLog {
    clock: Arc<HybridClock>,
    inner: Mutex<Inner>,
}

impl ReplicationLog {
    /// An empty log stamping marks with `clock`.
    pub fn new(clock: Arc<HybridClock>) -> Self {
        ReplicationLog {
            clock,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// What the log knows about `key`.
    pub fn get(&self, key: &[u8]) -> Option<KeyVersion> {
        self.inner.lock().by_key.get(key).copied()
    }

    /// The newest flush cutoff applied, if any.
    pub fn flush_cutoff(&self) -> Option<Timestamp> {
        self.inner.lock().flush.map(|(cutoff, _)| cutoff)
    }

    /// Records `key` at `version`, replacing an older entry; returns the new mark.
    pub fn record(&self, key: Bytes, version: Timestamp, tombstone: bool) -> Timestamp {
        let mut inner = self.inner.lock();
        let mark = self.clock.now();
        if let Some(old) = inner.by_key.insert(
            key.clone(),
            KeyVersion {
                version,
                tombstone,
                mark,
            },
        ) {
            inner.by_mark.remove(&old.mark);
        }
        inner.by_mark.insert(mark, key);
        mark
    }

    /// Records a flush cutoff if it is newer than the one held; `true` if it was.
    pub fn record_flush(&self, cutoff: Timestamp) -> bool {
        let mut inner = self.inner.lock();
        if inner.flush.is_some_and(|(held, _)| held >= cutoff) {
            return false;
        }
        let mark = self.clock.now();
        inner.flush = Some((cutoff, mark));
        true
    }

    /// Forgets `key` if its entry still has `mark` (an item that was evicted or expired).
    pub fn forget(&self, key: &[u8], mark: Timestamp) {
        let mut inner = self.inner.lock();
        if inner.by_key.get(key).is_some_and(|e| e.mark == mark) {
            inner.by_key.remove(key);
            inner.by_mark.remove(&mark);
        }
    }

    /// Drops tombstones whose version is older than `horizon_ms` (wall-clock milliseconds).
    pub fn prune_tombstones(&self, horizon_ms: u64) -> usize {
        let mut inner = self.inner.lock();
        let old: Vec<(Bytes, Timestamp)> = inner
            .by_key
            .iter()
            .filter(|(_, e)| e.tombstone && e.version.physical_ms() < horizon_ms)
            .map(|(k, e)| (k.clone(), e.mark))
            .collect();
        for (key, mark) in &old {
            inner.by_key.remove(key);
            inner.by_mark.remove(mark);
        }
        old.len()
    }

    /// Up to `max` keys logged after `since`, in mark order.
    pub fn page(&self, since: Timestamp, max: usize) -> LogPage {
        let inner = self.inner.lock();
        let mut keys = Vec::with_capacity(max.min(inner.by_key.len()));
        let mut next = since;
        let mut complete = true;
        for (mark, key) in inner
            .by_mark
            .range((std::ops::Bound::Excluded(since), std::ops::Bound::Unbounded))
        {
            if keys.len() >= max {
                complete = false;
                break;
            }
            keys.push((key.clone(), inner.by_key[key]));
            next = *mark;
        }
        let flush = inner
            .flush
            .filter(|(_, mark)| *mark > since)
            .map(|(cutoff, _)| cutoff);
        if complete {
            // Resume from the newest mark handed out so far, so the next sync starts after
            // everything this page could have seen (including a flush logged last).
            if let Some((_, mark)) = inner.flush {
                next = next.max(mark);
            }
        }
        LogPage {
            keys,
            flush,
            next,
            complete,
        }
    }

    /// Up to `max` logged keys for which `pick` holds (in no particular order).
    pub fn keys_where(
        &self,
        max: usize,
        mut pick: impl FnMut(&[u8]) -> bool,
    ) -> Vec<(Bytes, KeyVersion)> {
        let inner = self.inner.lock();
        inner
            .by_key
            .iter()
            .filter(|(k, _)| pick(k))
            .take(max)
            .map(|(k, e)| (k.clone(), *e))
            .collect()
    }

    /// Number of keys logged (tombstones included).
    pub fn len(&self) -> usize {
        self.inner.lock().by_key.len()
    }

    /// Whether the log is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The newest mark handed out (the log's position).
    pub fn head(&self) -> Timestamp {
        let inner = self.inner.lock();
        let last = inner
            .by_mark
            .keys()
            .next_back()
            .copied()
            .unwrap_or_default();
        last.max(inner.flush.map(|(_, m)| m).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log() -> ReplicationLog {
        ReplicationLog::new(Arc::new(HybridClock::new(1)))
    }

    fn key(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn keeps_one_entry_per_key_in_mark_order() {
        let log = log();
        let v = Timestamp::new(100, 0, 2);
        log.record(key("a"), v, false);
        log.record(key("b"), v, false);
        log.record(key("a"), Timestamp::new(200, 0, 2), true);
        assert_eq!(log.len(), 2);
        let page = log.page(Timestamp::ZERO, 10);
        assert!(page.complete);
        let keys: Vec<_> = page.keys.iter().map(|(k, _)| k.clone()).collect();
        assert_eq!(keys, vec![key("b"), key("a")]);
        assert!(page.keys[1].1.tombstone);
        assert_eq!(page.next, log.head());
    }

    #[test]
    fn pages_resume_where_the_previous_one_stopped() {
        let log = log();
        for i in 0..25 {
            log.record(key(&format!("k{i}")), Timestamp::new(1, 0, 1), false);
        }
        let mut since = Timestamp::ZERO;
        let mut seen = 0;
        let mut pages = 0;
        loop {
            let page = log.page(since, 10);
            seen += page.keys.len();
            pages += 1;
            since = page.next;
            if page.complete {
                break;
            }
        }
        assert_eq!((seen, pages), (25, 3));
        // A key logged after the sync, even with an old version, is in the next page.
        log.record(key("late"), Timestamp::new(1, 0, 3), false);
        let page = log.page(since, 10);
        assert_eq!(page.keys.len(), 1);
        assert_eq!(page.keys[0].0, key("late"));
    }

    #[test]
    fn flushes_are_paged_once_and_only_newer_ones_count() {
        let log = log();
        assert!(log.record_flush(Timestamp::new(50, 0, 1)));
        assert!(!log.record_flush(Timestamp::new(40, 0, 1)));
        let page = log.page(Timestamp::ZERO, 10);
        assert_eq!(page.flush, Some(Timestamp::new(50, 0, 1)));
        assert!(log.page(page.next, 10).flush.is_none());
    }

    #[test]
    fn forgetting_and_pruning_drop_entries() {
        let log = log();
        let mark = log.record(key("gone"), Timestamp::new(10, 0, 1), false);
        log.record(key("dead"), Timestamp::new(10, 0, 1), true);
        log.record(key("recent"), Timestamp::new(10_000, 0, 1), true);
        log.forget(b"gone", mark);
        assert_eq!(log.prune_tombstones(5_000), 1);
        assert_eq!(log.len(), 1);
        assert!(log.get(b"recent").is_some());
    }
}
