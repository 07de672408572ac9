//! `flush_all` cutoffs, checked lazily: shared by both stores.
//!
//! A flush invalidates every item whose version is at or before its cutoff once the wall clock
//! reaches the cutoff's physical time. Rather than sweeping at that moment (a timer per flush,
//! racing with writers), each access asks [`FlushSchedule::dead_upto`] for the largest cutoff
//! whose time has come and treats older items as gone. The common case (no flush pending) costs
//! one relaxed atomic load.

use crate::clock::Timestamp;
use crate::store::Item;
use parking_lot::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// The flushes a store has been asked for: the largest one in effect and those still pending.
#[derive(Debug)]
pub(crate) struct FlushSchedule {
    /// Largest cutoff (packed) whose time has come; 0 when none has.
    active: AtomicU64,
    /// Physical ms of the earliest pending cutoff; `u64::MAX` when none is pending.
    next_due_ms: AtomicU64,
    /// Cutoffs whose time has not come yet (few: one per delayed `flush_all`).
    pending: Mutex<Vec<Timestamp>>,
}

impl Default for FlushSchedule {
    fn default() -> Self {
        FlushSchedule {
            active: AtomicU64::new(0),
            next_due_ms: AtomicU64::new(u64::MAX),
            pending: Mutex::new(Vec::new()),
        }
    }
}

impl FlushSchedule {
    /// Forgets every flush, in effect or pending (the store is being emptied anyway).
    pub(crate) fn reset(&self) {
        let mut pending = self.pending.lock();
        pending.clear();
        self.next_due_ms.store(u64::MAX, Ordering::Release);
        self.active.store(0, Ordering::Release);
    }

    /// Records a flush; returns `true` if it is already in effect at `now_ms`.
    pub(crate) fn schedule(&self, cutoff: Timestamp, now_ms: u64) -> bool {
        if cutoff.physical_ms() <= now_ms {
            self.active.fetch_max(cutoff.as_u64(), Ordering::AcqRel);
            return true;
        }
        let mut pending = self.pending.lock();
        pending.push(cutoff);
        self.next_due_ms
            .fetch_min(cutoff.physical_ms(), Ordering::AcqRel);
        false
    }

    /// The cutoffs still pending at `now_ms`.
    pub(crate) fn pending(&self, now_ms: u64) -> Vec<Timestamp> {
        self.pending
            .lock()
            .iter()
            .copied()
            .filter(|cutoff| cutoff.physical_ms() > now_ms)
            .collect()
    }

    /// The largest cutoff in effect at `now_ms` (packed; 0 when none): items with versions at
    /// or below it are dead.
    #[inline]
    pub(crate) fn dead_upto(&self, now_ms: u64) -> u64 {
        if now_ms >= self.next_due_ms.load(Ordering::Acquire) {
            self.promote(now_ms);
        }
        self.active.load(Ordering::Acquire)
    }

    /// Moves every pending cutoff whose time has come into effect.
    #[cold]
    fn promote(&self, now_ms: u64) {
        let mut pending = self.pending.lock();
        let mut next = u64::MAX;
        pending.retain(|cutoff| {
            if cutoff.physical_ms() <= now_ms {
                self.active.fetch_max(cutoff.as_u64(), Ordering::AcqRel);
                false
            } else {
                next = next.min(cutoff.physical_ms());
                true
            }
        });
        // Under the lock, so a concurrent `schedule` cannot be overwritten by a stale minimum.
        self.next_due_ms.store(next, Ordering::Release);
    }
}

/// The moment one operation runs at: the wall clock in seconds and the flush cutoff in effect.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Now {
    /// Unix seconds, for expiry.
    pub(crate) secs: u64,
    /// Items with packed versions at or below this are flushed (0: no flush in effect).
    pub(crate) dead_upto: u64,
}

impl Now {
    /// Reads the clock once for one operation.
    #[inline]
    pub(crate) fn read(flushes: &FlushSchedule) -> Now {
        let ms = crate::clock::unix_ms();
        Now {
            secs: ms / 1000,
            dead_upto: flushes.dead_upto(ms),
        }
    }

    /// Whether `item` is visible: neither expired nor flushed.
    #[inline]
    pub(crate) fn is_live(&self, item: &Item) -> bool {
        !item.expires_at.is_expired(self.secs)
            && (self.dead_upto == 0 || item.version.as_u64() > self.dead_upto)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_cutoffs_take_effect_when_due() {
        let flushes = FlushSchedule::default();
        let due = Timestamp::new(2_000, 0, 1);
        assert!(!flushes.schedule(due, 1_000));
        assert_eq!(flushes.dead_upto(1_999), 0);
        assert_eq!(flushes.dead_upto(2_000), due.as_u64());
        let earlier = Timestamp::new(1_500, 0, 1);
        assert!(flushes.schedule(earlier, 2_500));
        assert_eq!(
            flushes.dead_upto(2_500),
            due.as_u64(),
            "the largest cutoff wins"
        );
    }

    #[test]
    fn two_pending_cutoffs_each_apply_in_turn() {
        let flushes = FlushSchedule::default();
        let first = Timestamp::new(2_000, 0, 0);
        let second = Timestamp::new(3_000, 0, 0);
        flushes.schedule(second, 1_000);
        flushes.schedule(first, 1_000);
        assert_eq!(flushes.dead_upto(2_500), first.as_u64());
        assert_eq!(flushes.dead_upto(3_000), second.as_u64());
    }
}
