//! Hybrid logical clock: `(physical ms, logical counter, peer id)` packed into one `u64`.
//!
//! Every mutation carries a [`Timestamp`]. It is the ordered queue's order key, the eventual
//! mode's last-writer-wins key, and (for a freshly written item) memcord's cas id. Packing the
//! three parts into one integer makes the total order a plain integer comparison and keeps the
//! item envelope small:
//!
//! ```text
//!  63                      20 19        8 7       0
//! +--------------------------+-----------+---------+
//! | physical ms since epoch  |  counter  | peer id |
//! |        (44 bits)         | (12 bits) | (8 bits)|
//! +--------------------------+-----------+---------+
//! ```
//!
//! 44 bits of milliseconds last until the year 2527. When the counter would overflow within one
//! millisecond the clock borrows the next millisecond, as HLC allows: the physical part may run
//! ahead of wall time under extreme load, but never behind, and never backwards.

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

const PEER_BITS: u32 = 8;
const COUNTER_BITS: u32 = 12;
const MS_SHIFT: u32 = PEER_BITS + COUNTER_BITS;
const COUNTER_MAX: u64 = (1 << COUNTER_BITS) - 1;
const PEER_MAX: u64 = (1 << PEER_BITS) - 1;

/// Highest peer id a timestamp can carry.
pub const MAX_PEER_ID: u16 = PEER_MAX as u16;

/// A hybrid logical clock reading; totally ordered, unique per (peer, reading).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
pub struct Timestamp(u64);

impl Timestamp {
    /// The smallest timestamp; older than every real write.
    pub const ZERO: Timestamp = Timestamp(0);

    /// Builds a timestamp from its parts (counter and peer are truncated to their widths).
    pub fn new(physical_ms: u64, counter: u16, peer: u16) -> Timestamp {
        Timestamp(
            (physical_ms << MS_SHIFT)
                | ((counter as u64 & COUNTER_MAX) << PEER_BITS)
                | (peer as u64 & PEER_MAX),
        )
    }

    /// Reinterprets a packed value (as stored in an envelope or sent on the wire).
    pub const fn from_u64(raw: u64) -> Timestamp {
        Timestamp(raw)
    }

    /// The packed value.
    pub const fn as_u64(self) -> u64 {
        self.0
    }

    /// Milliseconds since the unix epoch.
    pub const fn physical_ms(self) -> u64 {
        self.0 >> MS_SHIFT
    }

    /// The logical counter within one millisecond.
    pub const fn counter(self) -> u16 {
        ((self.0 >> PEER_BITS) & COUNTER_MAX) as u16
    }

    /// The id of the peer that issued this timestamp.
    pub const fn peer(self) -> u16 {
        (self.0 & PEER_MAX) as u16
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{}@{}",
            self.physical_ms(),
            self.counter(),
            self.peer()
        )
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// A source of wall-clock milliseconds; replaceable in tests to simulate clocks that jump.
pub trait WallClock: Send + Sync + 'static {
    /// Milliseconds since the unix epoch.
    fn now_ms(&self) -> u64;
}

/// The operating system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl WallClock for SystemClock {
    fn now_ms(&self) -> u64 {
        unix_ms()
    }
}

/// Milliseconds since the unix epoch from the system clock.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Seconds since the unix epoch from the system clock.
pub fn unix_secs() -> u64 {
    unix_ms() / 1000
}

/// One peer's hybrid logical clock: monotonic, merged with every timestamp it receives.
pub struct HybridClock<W: WallClock = SystemClock> {
    peer: u16,
    wall: W,
    last: Mutex<(u64, u64)>,
}

impl HybridClock<SystemClock> {
    /// A clock for `peer` reading the system wall clock.
    pub fn new(peer: u16) -> Self {
        Self::with_wall_clock(peer, SystemClock)
    }
}

impl<W: WallClock> HybridClock<W> {
    /// A clock for `peer` reading `wall` (tests pass a controllable clock).
    pub fn with_wall_clock(peer: u16, wall: W) -> Self {
        assert!(peer as u64 <= PEER_MAX, "peer id {peer} exceeds {PEER_MAX}");
        HybridClock {
            peer,
            wall,
            last: Mutex::new((0, 0)),
        }
    }

    /// The peer id stamped into every reading.
    pub fn peer(&self) -> u16 {
        self.peer
    }

    /// A new timestamp, strictly greater than every one this clock issued or merged before.
    pub fn now(&self) -> Timestamp {
        let wall = self.wall.now_ms();
        let mut last = self.last.lock();
        let (ms, counter) = if wall > last.0 {
            (wall, 0)
        } else if last.1 < COUNTER_MAX {
            (last.0, last.1 + 1)
        } else {
            (last.0 + 1, 0)
        };
        *last = (ms, counter);
        Timestamp::new(ms, counter as u16, self.peer)
    }

    /// Merges a timestamp received from another peer, so later readings order after it.
    pub fn observe(&self, remote: Timestamp) {
        let mut last = self.last.lock();
        let remote = (remote.physical_ms(), remote.counter() as u64);
        if remote > *last {
            *last = remote;
        }
    }

    /// The latest reading without advancing the clock (for status displays).
    pub fn peek(&self) -> Timestamp {
        let last = self.last.lock();
        Timestamp::new(last.0, last.1 as u16, self.peer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    #[derive(Clone)]
    struct ManualClock(Arc<AtomicU64>);
    impl WallClock for ManualClock {
        fn now_ms(&self) -> u64 {
            self.0.load(Ordering::SeqCst)
        }
    }

    fn manual(start: u64) -> (ManualClock, Arc<AtomicU64>) {
        let cell = Arc::new(AtomicU64::new(start));
        (ManualClock(cell.clone()), cell)
    }

    #[test]
    fn packs_and_unpacks_parts() {
        let t = Timestamp::new(1_700_000_000_123, 77, 5);
        assert_eq!(t.physical_ms(), 1_700_000_000_123);
        assert_eq!(t.counter(), 77);
        assert_eq!(t.peer(), 5);
        assert_eq!(Timestamp::from_u64(t.as_u64()), t);
    }

    #[test]
    fn order_is_ms_then_counter_then_peer() {
        let a = Timestamp::new(10, 0, 9);
        let b = Timestamp::new(10, 1, 0);
        let c = Timestamp::new(11, 0, 0);
        assert!(a < b && b < c);
        assert!(Timestamp::new(10, 1, 1) > Timestamp::new(10, 1, 0));
    }

    #[test]
    fn readings_are_strictly_monotonic_with_a_frozen_wall_clock() {
        let (wall, _) = manual(1000);
        let clock = HybridClock::with_wall_clock(3, wall);
        let mut prev = Timestamp::ZERO;
        for _ in 0..10_000 {
            let t = clock.now();
            assert!(t > prev, "{t:?} after {prev:?}");
            assert_eq!(t.peer(), 3);
            prev = t;
        }
        // 10_000 readings in one frozen millisecond borrow later milliseconds.
        assert!(prev.physical_ms() > 1000);
    }

    #[test]
    fn a_wall_clock_that_jumps_back_never_moves_readings_back() {
        let (wall, cell) = manual(5_000);
        let clock = HybridClock::with_wall_clock(1, wall);
        let before = clock.now();
        cell.store(1_000, Ordering::SeqCst);
        let after = clock.now();
        assert!(after > before);
        assert_eq!(after.physical_ms(), 5_000);
        cell.store(6_000, Ordering::SeqCst);
        let later = clock.now();
        assert_eq!(later.physical_ms(), 6_000);
        assert_eq!(later.counter(), 0);
    }

    #[test]
    fn observing_a_remote_timestamp_orders_later_readings_after_it() {
        let (wall, _) = manual(1_000);
        let clock = HybridClock::with_wall_clock(1, wall);
        let remote = Timestamp::new(9_000, 42, 2);
        clock.observe(remote);
        let t = clock.now();
        assert!(t > remote);
        assert_eq!(t.physical_ms(), 9_000);
        assert_eq!(t.counter(), 43);
        // An older remote timestamp changes nothing.
        clock.observe(Timestamp::new(10, 0, 2));
        assert!(clock.now() > t);
    }

    #[test]
    fn readings_from_two_peers_never_collide() {
        let (wall, _) = manual(1_000);
        let a = HybridClock::with_wall_clock(1, wall.clone());
        let b = HybridClock::with_wall_clock(2, wall);
        for _ in 0..100 {
            assert_ne!(a.now(), b.now());
        }
    }
}
