//! Items and the storage trait, with the embedded and the memcached-backed implementations.
//!
//! A store knows nothing of replication or connections: it applies one operation atomically
//! per key and reports the outcome. Every mutation arrives with its [`Timestamp`] already chosen
//! (by the coordinator or the ordered queue) and every expiry as an absolute time, so replicas
//! that apply the same operations hold the same items, cas ids included.

pub mod memcached;
pub mod memory;

use crate::clock::{unix_secs, Timestamp};
use crate::protocol::StoreAdmin;
use bytes::{Bytes, BytesMut};
use serde::{Deserialize, Serialize};
use std::future::Future;

pub use memcached::{MemcachedConfig, MemcachedStore};
pub use memory::{MemoryConfig, MemoryStore};

/// memcached's boundary between relative and absolute exptimes: 30 days in seconds.
pub const REALTIME_MAXDELTA: i64 = 60 * 60 * 24 * 30;

/// When an item expires: 0 = never, otherwise unix seconds (1 = already expired).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct ExpiresAt(pub u64);

impl ExpiresAt {
    /// Never expires.
    pub const NEVER: ExpiresAt = ExpiresAt(0);
    /// Already expired (a negative exptime, or an absolute time in the past).
    pub const EXPIRED: ExpiresAt = ExpiresAt(1);

    /// Converts a client's exptime with memcached's rules: 0 never; negative already expired;
    /// up to 30 days relative to `now_secs`; above that an absolute unix time.
    pub fn from_exptime(exptime: i64, now_secs: u64) -> ExpiresAt {
        if exptime == 0 {
            ExpiresAt::NEVER
        } else if exptime < 0 {
            ExpiresAt::EXPIRED
        } else if exptime > REALTIME_MAXDELTA {
            // An absolute time in the past is expired; keep it distinct from NEVER.
            ExpiresAt((exptime as u64).max(1))
        } else {
            ExpiresAt(now_secs + exptime as u64)
        }
    }

    /// Converts a client's exptime using the system clock.
    pub fn from_exptime_now(exptime: i64) -> ExpiresAt {
        Self::from_exptime(exptime, unix_secs())
    }

    /// Whether an item with this expiry is dead at `now_secs`.
    pub fn is_expired(self, now_secs: u64) -> bool {
        self.0 != 0 && self.0 <= now_secs
    }

    /// Whether this item never expires.
    pub fn is_never(self) -> bool {
        self.0 == 0
    }
}

/// One stored item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    /// The client's data.
    pub value: Bytes,
    /// Opaque client flags.
    pub flags: u32,
    /// When the item expires.
    pub expires_at: ExpiresAt,
    /// memcord's cas id (equal to `version` when the value was last written; kept by touch).
    pub cas: u64,
    /// The hybrid-clock time of the last mutation (last-writer-wins key).
    pub version: Timestamp,
    /// Marked stale by a meta `md … I` (or stored stale by `ms … I`): readers are told to
    /// recache it.
    pub stale: bool,
    /// The recache token of this item was handed out (a meta get answered `W`); later readers
    /// are told `Z`.
    pub token_sent: bool,
}

impl Item {
    /// A freshly written item: its cas id is derived from its version.
    pub fn new(value: Bytes, flags: u32, expires_at: ExpiresAt, version: Timestamp) -> Item {
        Item {
            value,
            flags,
            expires_at,
            cas: version.as_u64(),
            version,
            stale: false,
            token_sent: false,
        }
    }

    /// Bytes this item costs in a store's memory accounting (key, value and overhead).
    pub fn footprint(&self, key_len: usize) -> usize {
        key_len + self.value.len() + ITEM_OVERHEAD
    }
}

/// Fixed per-item overhead charged against a memory limit (struct, map and LRU links).
pub const ITEM_OVERHEAD: usize = 96;

/// memcord's size class of an item of `footprint` bytes ([`Item::footprint`]), as `stats
/// items`, `lru_crawler metadump` and the meta `me` command report it (see
/// [`memory::classes`]).
pub fn size_class(footprint: usize) -> u32 {
    memory::classes::class_of(footprint) as u32
}

/// One replica's record of reads of an item, as memcached keeps it per server (not
/// replicated): whether it was fetched since it was written, and how long ago it was last
/// accessed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Access {
    /// Fetched by a read since the item was written (`h`, `fetch=yes`).
    pub fetched: bool,
    /// Seconds since the item was last written or fetched (`l`, `la=`).
    pub idle_secs: u64,
}

/// What a read-modify-write ([`Store::update`]) decided, after looking at the live item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change<T> {
    /// Write nothing; answer `T`.
    Keep(T),
    /// The same item, changed in place (touched, marked, counted): its access record stays.
    Modify(Item, T),
    /// A new item in its place (or where there was none): a fresh access record.
    Replace(Item, T),
    /// Remove the item; answer `T`.
    Remove(T),
}

/// Outcome of a storage command (`set`, `add`, `replace`, `append`, `prepend`, `cas`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StoreOutcome {
    /// Stored.
    Stored,
    /// A condition failed (`add` on a present key, `replace`/`append`/`prepend` on a missing one).
    NotStored,
    /// `cas` found a different cas id.
    Exists,
    /// `cas` found no item.
    NotFound,
    /// The resulting item would exceed the maximum item size.
    TooLarge,
}

/// Outcome of `incr` / `decr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ArithOutcome {
    /// The new value.
    Value(u64),
    /// No such item.
    NotFound,
    /// The item's value is not a decimal number that fits 64 bits.
    NonNumeric,
}

/// Counters a store reports to `stats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StoreStats {
    /// Items currently held (where known).
    pub curr_items: u64,
    /// Bytes used by items (where known).
    pub bytes: u64,
    /// Items evicted to stay under the memory limit.
    pub evictions: u64,
    /// Expired items removed.
    pub reclaimed: u64,
    /// The memory limit in bytes.
    pub limit_maxbytes: u64,
}

/// Why a store could not perform an operation (answered to clients as `SERVER_ERROR`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum StoreError {
    /// The backend cannot be reached.
    #[error("backend unavailable")]
    Unavailable,
    /// The backend did not answer in time.
    #[error("backend timeout")]
    Timeout,
    /// The backend answered something unexpected.
    #[error("backend protocol error: {0}")]
    Protocol(String),
    /// The backend is out of memory.
    #[error("out of memory storing object")]
    OutOfMemory,
    /// A read-modify-write kept losing races with concurrent writers.
    #[error("too much contention")]
    Contention,
    /// The backing memcached restarted and lost every item: this store serves nothing more
    /// (see [`memcached::MemcachedConfig::pin_instance`]).
    #[error("backend restarted and lost its items; this peer must restart")]
    Replaced,
    /// The store cannot do this (e.g. list its keys).
    #[error("not supported by this store: {0}")]
    Unsupported(String),
}

/// The result type of every store operation.
pub type StoreResult<T> = Result<T, StoreError>;

/// One storage backend: one method per memcache operation, each atomic per key.
///
/// Mutations take the version chosen by the caller; a value-changing mutation sets the item's
/// cas id to that version (see [`Item::new`]); `touch`/`gat` keep the cas id.
pub trait Store: Send + Sync + 'static {
    /// Looks up live items, in key order.
    fn get(&self, keys: &[Bytes]) -> impl Future<Output = StoreResult<Vec<Option<Item>>>> + Send;
    /// Stores unconditionally.
    fn set(&self, key: Bytes, item: Item)
        -> impl Future<Output = StoreResult<StoreOutcome>> + Send;
    /// Stores only if absent.
    fn add(&self, key: Bytes, item: Item)
        -> impl Future<Output = StoreResult<StoreOutcome>> + Send;
    /// Stores only if present.
    fn replace(
        &self,
        key: Bytes,
        item: Item,
    ) -> impl Future<Output = StoreResult<StoreOutcome>> + Send;
    /// Appends to a present item's value (keeps its flags and expiry).
    fn append(
        &self,
        key: Bytes,
        data: Bytes,
        version: Timestamp,
    ) -> impl Future<Output = StoreResult<StoreOutcome>> + Send;
    /// Prepends to a present item's value (keeps its flags and expiry).
    fn prepend(
        &self,
        key: Bytes,
        data: Bytes,
        version: Timestamp,
    ) -> impl Future<Output = StoreResult<StoreOutcome>> + Send;
    /// Stores only if the present item's cas id equals `expected`.
    fn cas(
        &self,
        key: Bytes,
        item: Item,
        expected: u64,
    ) -> impl Future<Output = StoreResult<StoreOutcome>> + Send;
    /// Removes an item; `true` if it was present.
    fn delete(
        &self,
        key: Bytes,
        version: Timestamp,
    ) -> impl Future<Output = StoreResult<bool>> + Send;
    /// Adds `delta` (wrapping at 2^64) to a decimal value.
    fn incr(
        &self,
        key: Bytes,
        delta: u64,
        version: Timestamp,
    ) -> impl Future<Output = StoreResult<ArithOutcome>> + Send;
    /// Subtracts `delta` (stopping at 0) from a decimal value.
    fn decr(
        &self,
        key: Bytes,
        delta: u64,
        version: Timestamp,
    ) -> impl Future<Output = StoreResult<ArithOutcome>> + Send;
    /// Changes a present item's expiry; `true` if it was present.
    fn touch(
        &self,
        key: Bytes,
        expires_at: ExpiresAt,
        version: Timestamp,
    ) -> impl Future<Output = StoreResult<bool>> + Send;
    /// Looks up live items and changes their expiry, in key order.
    fn gat(
        &self,
        keys: &[Bytes],
        expires_at: ExpiresAt,
        version: Timestamp,
    ) -> impl Future<Output = StoreResult<Vec<Option<Item>>>> + Send;
    /// Looks up live items in key order without counting the reads in their access records
    /// (replication, snapshots, retries: reads no client made).
    fn peek_items(
        &self,
        keys: &[Bytes],
    ) -> impl Future<Output = StoreResult<Vec<Option<Item>>>> + Send;
    /// Reads one live item with this replica's access record as it was before this read;
    /// `bump` marks the item fetched and accessed now (memcached's LRU bump).
    fn peek(
        &self,
        key: &Bytes,
        bump: bool,
    ) -> impl Future<Output = StoreResult<Option<(Item, Access)>>> + Send;
    /// An atomic read-modify-write of one key: `decide` sees the live item (with its access
    /// record as before this call) and says what to do; `bump` marks a kept or modified item
    /// fetched. `decide` may run more than once (a store that retries a lost race calls it
    /// again with what it read anew). `None`: the store refused the new item as too large.
    fn update<T: Send>(
        &self,
        key: &Bytes,
        bump: bool,
        decide: impl FnMut(Option<(&Item, Access)>) -> Change<T> + Send,
    ) -> impl Future<Output = StoreResult<Option<T>>> + Send;
    /// Invalidates every item whose version is at or before `cutoff`, once the wall clock
    /// reaches `cutoff`'s physical time (immediately when that is not in the future). Items
    /// written after `cutoff` survive, as after memcached's `flush_all [delay]`.
    fn flush_all(&self, cutoff: Timestamp) -> impl Future<Output = StoreResult<()>> + Send;
    /// Current counters.
    fn stats(&self) -> impl Future<Output = StoreStats> + Send;
    /// Every live item, for a snapshot of the ordered queue's state machine. Stores that cannot
    /// list their keys answer [`StoreError::Unsupported`].
    fn dump(&self) -> impl Future<Output = StoreResult<Vec<(Bytes, Item)>>> + Send;
    /// Removes every item and every pending flush, so that a snapshot (or a replay of the
    /// ordered queue's log) can be applied to an empty store.
    fn clear(&self) -> impl Future<Output = StoreResult<()>> + Send;
    /// The cutoffs of delayed `flush_all`s whose time has not come, for a snapshot: a peer that
    /// installs it schedules them again, so they take effect there too.
    fn pending_flushes(&self) -> Vec<Timestamp>;
    /// Answers one of memcached's admin requests about the store (`stats items`, `stats
    /// slabs`, `stats sizes`, `stats cachedump`, `lru_crawler metadump`, `cache_memlimit`)
    /// with the client's view of it: memcord's items, cas ids and expiry times.
    fn admin(
        &self,
        request: &StoreAdmin,
    ) -> impl Future<Output = StoreResult<crate::protocol::Response>> + Send;
}

/// A store chosen at run time (`--kv-type`), dispatching without boxing.
pub enum AnyStore {
    /// The embedded in-memory store.
    Memory(MemoryStore),
    /// A backing memcached server.
    Memcached(MemcachedStore),
}

macro_rules! dispatch {
    ($self:ident, $s:ident => $call:expr) => {
        match $self {
            AnyStore::Memory($s) => $call.await,
            AnyStore::Memcached($s) => $call.await,
        }
    };
}

impl Store for AnyStore {
    async fn get(&self, keys: &[Bytes]) -> StoreResult<Vec<Option<Item>>> {
        dispatch!(self, s => s.get(keys))
    }
    async fn set(&self, key: Bytes, item: Item) -> StoreResult<StoreOutcome> {
        dispatch!(self, s => s.set(key, item))
    }
    async fn add(&self, key: Bytes, item: Item) -> StoreResult<StoreOutcome> {
        dispatch!(self, s => s.add(key, item))
    }
    async fn replace(&self, key: Bytes, item: Item) -> StoreResult<StoreOutcome> {
        dispatch!(self, s => s.replace(key, item))
    }
    async fn append(
        &self,
        key: Bytes,
        data: Bytes,
        version: Timestamp,
    ) -> StoreResult<StoreOutcome> {
        dispatch!(self, s => s.append(key, data, version))
    }
    async fn prepend(
        &self,
        key: Bytes,
        data: Bytes,
        version: Timestamp,
    ) -> StoreResult<StoreOutcome> {
        dispatch!(self, s => s.prepend(key, data, version))
    }
    async fn cas(&self, key: Bytes, item: Item, expected: u64) -> StoreResult<StoreOutcome> {
        dispatch!(self, s => s.cas(key, item, expected))
    }
    async fn delete(&self, key: Bytes, version: Timestamp) -> StoreResult<bool> {
        dispatch!(self, s => s.delete(key, version))
    }
    async fn incr(&self, key: Bytes, delta: u64, version: Timestamp) -> StoreResult<ArithOutcome> {
        dispatch!(self, s => s.incr(key, delta, version))
    }
    async fn decr(&self, key: Bytes, delta: u64, version: Timestamp) -> StoreResult<ArithOutcome> {
        dispatch!(self, s => s.decr(key, delta, version))
    }
    async fn touch(
        &self,
        key: Bytes,
        expires_at: ExpiresAt,
        version: Timestamp,
    ) -> StoreResult<bool> {
        dispatch!(self, s => s.touch(key, expires_at, version))
    }
    async fn gat(
        &self,
        keys: &[Bytes],
        expires_at: ExpiresAt,
        version: Timestamp,
    ) -> StoreResult<Vec<Option<Item>>> {
        dispatch!(self, s => s.gat(keys, expires_at, version))
    }
    async fn peek_items(&self, keys: &[Bytes]) -> StoreResult<Vec<Option<Item>>> {
        dispatch!(self, s => s.peek_items(keys))
    }
    async fn peek(&self, key: &Bytes, bump: bool) -> StoreResult<Option<(Item, Access)>> {
        dispatch!(self, s => s.peek(key, bump))
    }
    async fn update<T: Send>(
        &self,
        key: &Bytes,
        bump: bool,
        decide: impl FnMut(Option<(&Item, Access)>) -> Change<T> + Send,
    ) -> StoreResult<Option<T>> {
        dispatch!(self, s => s.update(key, bump, decide))
    }
    async fn flush_all(&self, cutoff: Timestamp) -> StoreResult<()> {
        dispatch!(self, s => s.flush_all(cutoff))
    }
    async fn dump(&self) -> StoreResult<Vec<(Bytes, Item)>> {
        dispatch!(self, s => s.dump())
    }
    async fn clear(&self) -> StoreResult<()> {
        dispatch!(self, s => s.clear())
    }
    fn pending_flushes(&self) -> Vec<Timestamp> {
        match self {
            AnyStore::Memory(s) => s.pending_flushes(),
            AnyStore::Memcached(s) => s.pending_flushes(),
        }
    }
    async fn stats(&self) -> StoreStats {
        dispatch!(self, s => s.stats())
    }
    async fn admin(&self, request: &StoreAdmin) -> StoreResult<crate::protocol::Response> {
        dispatch!(self, s => s.admin(request))
    }
}

impl AnyStore {
    /// Fires when the store lost its items behind the peer's back (a pinned memcached backend
    /// that restarted); `None` for stores that cannot (the embedded store lives and dies with
    /// the peer).
    pub fn replaced(&self) -> Option<tokio_util::sync::CancellationToken> {
        match self {
            AnyStore::Memory(_) => None,
            AnyStore::Memcached(store) => store.replaced(),
        }
    }
}

/// `first` followed by `second`, in one new buffer.
pub fn joined(first: &[u8], second: &[u8]) -> Bytes {
    let mut value = BytesMut::with_capacity(first.len() + second.len());
    value.extend_from_slice(first);
    value.extend_from_slice(second);
    value.freeze()
}

/// What `append` (`back`) or `prepend` of `data` does to the live item, as a decision for
/// [`Store::update`]: a new item (new cas id, fresh access record) keeping the old flags and
/// expiry; `NotStored` on a miss; `TooLarge` when the result would pass `max` bytes.
pub fn concat_change(
    live: Option<(&Item, Access)>,
    data: &[u8],
    version: Timestamp,
    back: bool,
    max: usize,
) -> Change<StoreOutcome> {
    let Some((old, _)) = live else {
        return Change::Keep(StoreOutcome::NotStored);
    };
    if old.value.len() + data.len() > max {
        return Change::Keep(StoreOutcome::TooLarge);
    }
    let value = if back {
        joined(&old.value, data)
    } else {
        joined(data, &old.value)
    };
    let item = Item::new(value, old.flags, old.expires_at, version);
    Change::Replace(item, StoreOutcome::Stored)
}

/// Parses a stored value as memcached's `incr`/`decr` do: decimal digits, optionally followed
/// by spaces (memcached pads a shrunken number with spaces), fitting 64 bits.
pub fn parse_counter(value: &[u8]) -> Option<u64> {
    let digits_end = value
        .iter()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(value.len());
    if digits_end == 0 || digits_end > 20 {
        return None;
    }
    if !value[digits_end..].iter().all(|&b| b == b' ') {
        return None;
    }
    std::str::from_utf8(&value[..digits_end]).ok()?.parse().ok()
}

/// Applies `incr`/`decr` arithmetic to a counter value with memcached's rules.
pub fn apply_arith(current: u64, delta: u64, incr: bool) -> u64 {
    if incr {
        current.wrapping_add(delta)
    } else {
        current.saturating_sub(delta)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exptime_rules_follow_memcached() {
        let now = 1_700_000_000;
        assert_eq!(ExpiresAt::from_exptime(0, now), ExpiresAt::NEVER);
        assert_eq!(ExpiresAt::from_exptime(-1, now), ExpiresAt::EXPIRED);
        assert_eq!(ExpiresAt::from_exptime(10, now), ExpiresAt(now + 10));
        assert_eq!(
            ExpiresAt::from_exptime(REALTIME_MAXDELTA, now),
            ExpiresAt(now + REALTIME_MAXDELTA as u64)
        );
        let absolute = REALTIME_MAXDELTA + 1;
        assert_eq!(
            ExpiresAt::from_exptime(absolute, now),
            ExpiresAt(absolute as u64)
        );
        assert!(ExpiresAt::from_exptime(absolute, now).is_expired(now));
        assert!(!ExpiresAt::from_exptime(5, now).is_expired(now));
        assert!(ExpiresAt::from_exptime(5, now).is_expired(now + 5));
        assert!(!ExpiresAt::NEVER.is_expired(u64::MAX));
    }

    #[test]
    fn counters_parse_like_memcached() {
        assert_eq!(parse_counter(b"0"), Some(0));
        assert_eq!(parse_counter(b"42"), Some(42));
        assert_eq!(parse_counter(b"9 "), Some(9));
        assert_eq!(parse_counter(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_counter(b"18446744073709551616"), None);
        assert_eq!(parse_counter(b""), None);
        assert_eq!(parse_counter(b"abc"), None);
        assert_eq!(parse_counter(b"-1"), None);
        assert_eq!(parse_counter(b"1x"), None);
    }

    #[test]
    fn arithmetic_wraps_up_and_stops_at_zero_down() {
        assert_eq!(apply_arith(u64::MAX, 1, true), 0);
        assert_eq!(apply_arith(5, 10, false), 0);
        assert_eq!(apply_arith(5, 3, false), 2);
    }
}
