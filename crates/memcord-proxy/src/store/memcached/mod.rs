//! The memcached-backed store: items kept as envelopes in one backing memcached server.
//!
//! Every item is stored as an [`envelope`] (memcord's version, cas id, expiry and flags ahead
//! of the client's value), so cas ids, versions and expiry agree across replicas whatever the
//! backends' own cas ids are. The backend's commands are used only where they are atomic and
//! mean the same thing to memcord:
//!
//! * `get` is one backend `get` (long key lists are split into several lines, pipelined on one
//!   connection, still one round trip); `set` is a backend `set`; `add` is a backend `add`,
//!   checked against the envelope when the backend refuses;
//! * `replace`, `append`, `prepend`, `cas`, `incr`, `decr`, `touch` and `gat` are
//!   read-modify-write: read with `gets` (the backend's cas unique), evaluate against the
//!   envelope, write back with the backend's `cas` (or `add` when the key was absent), and
//!   retry when another writer got there first — at most [`MemcachedConfig::max_retries`]
//!   times, then [`StoreError::Contention`]. Each operation is thus atomic per key however many
//!   connections and peers write to the backend;
//! * `delete` reads first so that an item memcord already considers dead answers `false`.
//!
//! Expiry is decided by memcord's clock against the envelope (as in the embedded store) and
//! also handed to the backend as an absolute time so the backend frees the memory. `flush_all`
//! is forwarded to the backend (immediately, or with a delay in whole seconds) and also checked
//! lazily against envelope versions, which is exact where the backend's one-second clock is not.
//!
//! [`Store::dump`] lists the backend's keys with `lru_crawler metadump all` (see [`metadump`])
//! and reads them back in batches of `get`s, keeping the live ones.
//!
//! `stats` reports the backend's own `curr_items`, `bytes`, `evictions`, `reclaimed` and
//! `limit_maxbytes` (all zero when the backend cannot be asked).

mod admin;
mod connection;
pub mod envelope;
mod instance;
mod meta;
mod metadump;
mod ops;
mod pool;

use self::envelope::Decoded;
use self::pool::Pool;
use super::memory::flush::{FlushSchedule, Now};
use super::{
    apply_arith, concat_change, parse_counter, ArithOutcome, Change, ExpiresAt, Item, StoreError,
    StoreOutcome, StoreResult,
};
use crate::clock::Timestamp;
use crate::protocol::{Request, Response, StoreOp};
use bytes::Bytes;
use std::time::Duration;

/// Room left in the backend's item size maximum for memcached's own item header, the key and
/// the cas field (memcached counts them all against `-I`).
pub const BACKEND_ITEM_RESERVE: usize = 512;
/// Longest backend `get` line sent: below memcached's 2048-byte threshold for long lines.
pub(crate) const MAX_GET_LINE: usize = 2000;

/// Where and how to reach the backing memcached.
#[derive(Debug, Clone)]
pub struct MemcachedConfig {
    /// `host:port` of the backend.
    pub addr: String,
    /// Connections kept open (each one pipelined).
    pub pool_size: usize,
    /// Requests queued per connection before callers wait for room.
    pub queue_depth: usize,
    /// How long a connection attempt may take; while the backend is down requests fail at
    /// once, so this only bounds how long a reconnect takes to give up.
    pub connect_timeout: Duration,
    /// How long one operation may wait for the backend before [`StoreError::Timeout`].
    pub request_timeout: Duration,
    /// Largest client value; the default leaves room for the envelope header and memcached's
    /// per-item overhead within memcached's default 1 MiB item size.
    pub max_item_size: usize,
    /// Read-modify-write attempts before [`StoreError::Contention`].
    pub max_retries: u32,
    /// Admit only connections to the memcached process the first connection reached (see
    /// [`instance`]): set by replicated peers, whose store must never silently lose items.
    /// A restarted backend then fails every request with [`StoreError::Replaced`].
    pub pin_instance: bool,
}

impl MemcachedConfig {
    /// Defaults for a backend at `addr`: 4 connections, 1 s request timeout, 250 ms connect
    /// timeout, values up to 1 MiB less the envelope and memcached's item overhead.
    pub fn new(addr: impl Into<String>) -> Self {
        MemcachedConfig {
            addr: addr.into(),
            pool_size: 4,
            queue_depth: 1024,
            connect_timeout: Duration::from_millis(250),
            request_timeout: Duration::from_secs(1),
            max_item_size: 1024 * 1024 - envelope::HEADER_LEN - BACKEND_ITEM_RESERVE,
            max_retries: 100,
            pin_instance: false,
        }
    }
}

/// A store that keeps item envelopes in a backing memcached.
pub struct MemcachedStore {
    pool: Pool,
    /// The backend's address, for the metadump connection.
    addr: String,
    flushes: FlushSchedule,
    max_item_size: usize,
    max_retries: u32,
}

/// One key as read from the backend.
struct Fetched {
    item: Item,
    /// The backend's cas unique (0 from a plain `get`).
    backend_cas: u64,
    /// Visible to memcord: neither expired nor flushed by the envelope's rules.
    live: bool,
}

/// What the backend said to a storage command.
enum Written {
    Stored,
    /// `add`'s condition failed.
    NotStored,
    /// `cas` found the item changed (`EXISTS`) or gone (`NOT_FOUND`).
    Raced,
    /// The backend refused the item's size.
    TooLarge,
}

impl MemcachedStore {
    /// A store for `config.addr` that connects in the background: requests fail with
    /// [`StoreError::Unavailable`] until a connection is up. Needs a tokio runtime.
    pub fn new(config: MemcachedConfig) -> MemcachedStore {
        MemcachedStore {
            pool: Pool::start(&config),
            addr: config.addr.clone(),
            flushes: FlushSchedule::default(),
            max_item_size: config.max_item_size,
            max_retries: config.max_retries.max(1),
        }
    }

    /// Like [`MemcachedStore::new`], but first waits (up to the connect timeout and a little
    /// more) for a connection, failing with [`StoreError::Unavailable`] if none comes up.
    pub async fn connect(config: MemcachedConfig) -> StoreResult<MemcachedStore> {
        let wait = config.connect_timeout + Duration::from_millis(100);
        let store = MemcachedStore::new(config);
        let deadline = tokio::time::Instant::now() + wait;
        while !store.pool.is_connected() {
            if tokio::time::Instant::now() >= deadline {
                return Err(StoreError::Unavailable);
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(store)
    }

    /// The largest value this store accepts.
    pub fn max_item_size(&self) -> usize {
        self.max_item_size
    }

    /// Fires when the backend turned out to be a different (restarted, hence empty)
    /// memcached process; only with [`MemcachedConfig::pin_instance`].
    pub fn replaced(&self) -> Option<tokio_util::sync::CancellationToken> {
        self.pool.replaced()
    }

    /// Whether a backend connection is up right now.
    pub fn is_connected(&self) -> bool {
        self.pool.is_connected()
    }

    /// Reads `keys` in one round trip, in key order.
    async fn fetch(&self, keys: &[Bytes], with_cas: bool) -> StoreResult<Vec<Option<Fetched>>> {
        if keys.is_empty() {
            // A keyless `get` is an error to memcached; asking for nothing finds nothing.
            return Ok(Vec::new());
        }
        let mut chunks: Vec<&[Bytes]> = Vec::new();
        let (mut start, mut line) = (0, 5);
        for (i, key) in keys.iter().enumerate() {
            if i > start && line + 1 + key.len() > MAX_GET_LINE {
                chunks.push(&keys[start..i]);
                (start, line) = (i, 5);
            }
            line += 1 + key.len();
        }
        chunks.push(&keys[start..]);
        let request = |chunk: &[Bytes]| Request::Get {
            keys: chunk.to_vec(),
            with_cas,
        };
        let replies = if chunks.len() == 1 {
            vec![self.pool.call(request(chunks[0])).await?]
        } else {
            self.pool
                .call_many(chunks.iter().map(|chunk| request(chunk)).collect())
                .await?
        };
        let now = Now::read(&self.flushes);
        let mut out = Vec::with_capacity(keys.len());
        for (chunk, reply) in chunks.iter().zip(replies) {
            let Response::Values(values) = reply else {
                return Err(unexpected(&reply));
            };
            // memcached answers hits in request order and skips misses.
            let mut values = values.into_iter().peekable();
            for key in chunk.iter() {
                let hit = values.next_if(|value| value.key == *key).map(|value| {
                    let Decoded { item, enveloped } = envelope::decode(value.data, value.flags);
                    Fetched {
                        live: !enveloped || now.is_live(&item),
                        backend_cas: value.cas.unwrap_or(0),
                        item,
                    }
                });
                out.push(hit);
            }
            if values.next().is_some() {
                return Err(StoreError::Protocol(
                    "backend returned unrequested keys".into(),
                ));
            }
        }
        Ok(out)
    }

    /// `append` / `prepend` against the envelope.
    async fn concat(
        &self,
        key: Bytes,
        data: Bytes,
        version: Timestamp,
        back: bool,
    ) -> StoreResult<StoreOutcome> {
        let outcome = self
            .update_meta(&key, false, |live| {
                concat_change(live, &data, version, back, self.max_item_size)
            })
            .await?;
        Ok(outcome.unwrap_or(StoreOutcome::TooLarge))
    }

    async fn arith(
        &self,
        key: Bytes,
        delta: u64,
        version: Timestamp,
        incr: bool,
    ) -> StoreResult<ArithOutcome> {
        self.update_meta(&key, false, |live| {
            let Some((old, _)) = live else {
                return Change::Keep(ArithOutcome::NotFound);
            };
            let Some(current) = parse_counter(&old.value) else {
                return Change::Keep(ArithOutcome::NonNumeric);
            };
            let next = apply_arith(current, delta, incr);
            let value = Bytes::from(next.to_string());
            // Counted in place, as memcached does: the item's marks and access record stay.
            Change::Modify(
                Item {
                    value,
                    cas: version.as_u64(),
                    version,
                    ..old.clone()
                },
                ArithOutcome::Value(next),
            )
        })
        .await?
        .ok_or_else(too_large_counter)
    }

    /// Changes one item's expiry, keeping its cas id; the touched item if it was live.
    async fn touch_one(
        &self,
        key: &Bytes,
        expires_at: ExpiresAt,
        version: Timestamp,
    ) -> StoreResult<Option<Item>> {
        // A touch is a fetch to memcached: the item counts as fetched afterwards.
        self.update_meta(key, true, |live| match live {
            None => Change::Keep(None),
            Some((old, _)) => {
                let touched = touched(old, expires_at, version);
                Change::Modify(touched.clone(), Some(touched))
            }
        })
        .await?
        .ok_or_else(too_large_counter)
    }

    async fn delete_key(&self, key: Bytes) -> StoreResult<bool> {
        let response = self
            .pool
            .call(Request::Delete {
                key,
                noreply: false,
            })
            .await?;
        match response {
            Response::Deleted => Ok(true),
            Response::NotFound => Ok(false),
            other => Err(unexpected(&other)),
        }
    }
}

/// `item` with a new expiry and version, its cas id kept.
fn touched(item: &Item, expires_at: ExpiresAt, version: Timestamp) -> Item {
    Item {
        expires_at,
        version,
        ..item.clone()
    }
}

fn too_large_counter() -> StoreError {
    StoreError::Protocol("backend refused a small item as too large".into())
}

/// Seconds the backend keeps an item past memcord's own expiry of it.
///
/// memcached's clock is not the wall clock: it counts whole seconds of the *monotonic*
/// clock since its start (`current_time`, advanced by a once-a-second timer) on top of the
/// wall second it started in, so its idea of the current unix second runs up to a second
/// ahead of (or behind) `time()`, depending on the phase the two clocks had at its start.
/// Handed memcord's exact absolute expiry, a backend ahead of the wall clock took a 1 s item
/// as already expired and a `touch` or `gat` right after the `set` found nothing (3 in 60
/// tries). memcord decides expiry itself from the envelope, so the backend only needs to
/// free the memory eventually: it gets the expiry two seconds later.
pub(crate) const BACKEND_EXPIRY_SLACK: u64 = 2;

/// The backend exptime for an absolute expiry: 0 never, -1 already dead (memcached stores it
/// and never shows it), otherwise the absolute unix time plus [`BACKEND_EXPIRY_SLACK`]
/// (memcached reads values above 30 days as absolute).
fn backend_exptime(expires_at: ExpiresAt, now_secs: u64) -> i64 {
    if expires_at.is_never() {
        0
    } else if expires_at.is_expired(now_secs) {
        -1
    } else {
        i64::try_from(expires_at.0.saturating_add(BACKEND_EXPIRY_SLACK)).unwrap_or(i64::MAX)
    }
}

fn store_request(op: StoreOp, key: &Bytes, item: &Item, cas_unique: u64, now: u64) -> Request {
    Request::Store {
        op,
        key: key.clone(),
        flags: item.flags,
        exptime: backend_exptime(item.expires_at, now),
        value: envelope::encode(item),
        cas_unique,
        noreply: false,
    }
}

fn written(response: Response) -> StoreResult<Written> {
    match response {
        Response::Stored => Ok(Written::Stored),
        Response::NotStored => Ok(Written::NotStored),
        Response::Exists | Response::NotFound => Ok(Written::Raced),
        Response::ServerError(reason) if reason.contains("too large") => Ok(Written::TooLarge),
        Response::ServerError(reason) if reason.contains("out of memory") => {
            Err(StoreError::OutOfMemory)
        }
        other => Err(unexpected(&other)),
    }
}

fn unexpected(response: &Response) -> StoreError {
    StoreError::Protocol(format!("unexpected backend reply {response:?}"))
}

/// Lets the writer that beat us finish before trying again.
async fn back_off(attempt: u32) {
    if attempt < 4 {
        tokio::task::yield_now().await;
    } else {
        tokio::time::sleep(Duration::from_millis(u64::from(attempt.min(20)) / 4)).await;
    }
}
