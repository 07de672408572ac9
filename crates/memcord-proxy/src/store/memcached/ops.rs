//! The [`Store`] operations of [`MemcachedStore`], each atomic per key (see the module docs).

use super::{store_request, touched, unexpected, written, MemcachedStore, Written};
use crate::clock::{unix_ms, unix_secs, Timestamp};
use crate::protocol::{Request, Response, StoreAdmin, StoreOp};
use crate::store::{
    Access, ArithOutcome, Change, ExpiresAt, Item, Store, StoreError, StoreOutcome, StoreResult,
    StoreStats,
};
use bytes::Bytes;

/// Longest a whole `lru_crawler metadump` may take.
const DUMP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);
/// Most keys a dump lists (a bound on what one snapshot holds in memory).
const DUMP_MAX_KEYS: usize = 50_000_000;
/// Keys read back per `get` round trip while dumping.
const DUMP_CHUNK: usize = 512;

impl Store for MemcachedStore {
    async fn get(&self, keys: &[Bytes]) -> StoreResult<Vec<Option<Item>>> {
        Ok(self
            .fetch(keys, false)
            .await?
            .into_iter()
            .map(|hit| hit.filter(|f| f.live).map(|f| f.item))
            .collect())
    }

    async fn set(&self, key: Bytes, item: Item) -> StoreResult<StoreOutcome> {
        let now_secs = unix_secs();
        if item.value.len() > self.max_item_size {
            // As memcached does: a failed set must not leave the old value readable.
            self.delete_key(key).await?;
            return Ok(StoreOutcome::TooLarge);
        }
        if item.expires_at.is_expired(now_secs) {
            self.delete_key(key).await?;
            return Ok(StoreOutcome::Stored);
        }
        let request = store_request(StoreOp::Set, &key, &item, 0, now_secs);
        match written(self.pool.call(request).await?)? {
            Written::Stored => Ok(StoreOutcome::Stored),
            Written::TooLarge => Ok(StoreOutcome::TooLarge),
            Written::NotStored | Written::Raced => Err(StoreError::Protocol(
                "backend refused an unconditional set".into(),
            )),
        }
    }

    async fn add(&self, key: Bytes, item: Item) -> StoreResult<StoreOutcome> {
        if item.value.len() > self.max_item_size {
            return Ok(StoreOutcome::TooLarge);
        }
        let now_secs = unix_secs();
        if !item.expires_at.is_expired(now_secs) {
            let request = store_request(StoreOp::Add, &key, &item, 0, now_secs);
            match written(self.pool.call(request).await?)? {
                Written::Stored => return Ok(StoreOutcome::Stored),
                Written::TooLarge => return Ok(StoreOutcome::TooLarge),
                // The backend holds something; it may be dead by memcord's rules (flushed,
                // or expired a moment before the backend's coarser clock noticed).
                Written::NotStored | Written::Raced => {}
            }
        }
        let outcome = self
            .update_meta(&key, false, |live| match live {
                Some(_) => Change::Keep(StoreOutcome::NotStored),
                None => Change::Replace(item.clone(), StoreOutcome::Stored),
            })
            .await?;
        Ok(outcome.unwrap_or(StoreOutcome::TooLarge))
    }

    async fn replace(&self, key: Bytes, item: Item) -> StoreResult<StoreOutcome> {
        if item.value.len() > self.max_item_size {
            return Ok(StoreOutcome::TooLarge);
        }
        let outcome = self
            .update_meta(&key, false, |live| match live {
                None => Change::Keep(StoreOutcome::NotStored),
                Some(_) => Change::Replace(item.clone(), StoreOutcome::Stored),
            })
            .await?;
        Ok(outcome.unwrap_or(StoreOutcome::TooLarge))
    }

    async fn append(
        &self,
        key: Bytes,
        data: Bytes,
        version: Timestamp,
    ) -> StoreResult<StoreOutcome> {
        self.concat(key, data, version, true).await
    }

    async fn prepend(
        &self,
        key: Bytes,
        data: Bytes,
        version: Timestamp,
    ) -> StoreResult<StoreOutcome> {
        self.concat(key, data, version, false).await
    }

    async fn cas(&self, key: Bytes, item: Item, expected: u64) -> StoreResult<StoreOutcome> {
        if item.value.len() > self.max_item_size {
            return Ok(StoreOutcome::TooLarge);
        }
        let outcome = self
            .update_meta(&key, false, |live| match live {
                None => Change::Keep(StoreOutcome::NotFound),
                Some((old, _)) if old.cas != expected => Change::Keep(StoreOutcome::Exists),
                Some(_) => Change::Replace(item.clone(), StoreOutcome::Stored),
            })
            .await?;
        Ok(outcome.unwrap_or(StoreOutcome::TooLarge))
    }

    async fn delete(&self, key: Bytes, _version: Timestamp) -> StoreResult<bool> {
        // An item memcord considers dead is not there: answer false and leave it to the
        // backend's own expiry (deleting it could remove a newer write made meanwhile).
        match self.fetch_meta(&key, false).await? {
            Some(fetched) if fetched.live => self.delete_key(key).await,
            _ => Ok(false),
        }
    }

    async fn incr(&self, key: Bytes, delta: u64, version: Timestamp) -> StoreResult<ArithOutcome> {
        self.arith(key, delta, version, true).await
    }

    async fn decr(&self, key: Bytes, delta: u64, version: Timestamp) -> StoreResult<ArithOutcome> {
        self.arith(key, delta, version, false).await
    }

    async fn touch(
        &self,
        key: Bytes,
        expires_at: ExpiresAt,
        version: Timestamp,
    ) -> StoreResult<bool> {
        Ok(self.touch_one(&key, expires_at, version).await?.is_some())
    }

    async fn gat(
        &self,
        keys: &[Bytes],
        expires_at: ExpiresAt,
        version: Timestamp,
    ) -> StoreResult<Vec<Option<Item>>> {
        // First attempt for all keys at once: one `gets`, then every `cas` pipelined.
        let fetched = self.fetch(keys, true).await?;
        let now_secs = unix_secs();
        let mut out: Vec<Option<Item>> = Vec::with_capacity(keys.len());
        let mut writes = Vec::new();
        let mut written_at = Vec::new();
        for (i, (key, hit)) in keys.iter().zip(fetched).enumerate() {
            match hit.filter(|f| f.live) {
                Some(hit) => {
                    let item = touched(&hit.item, expires_at, version);
                    writes.push(store_request(
                        StoreOp::Cas,
                        key,
                        &item,
                        hit.backend_cas,
                        now_secs,
                    ));
                    written_at.push(i);
                    out.push(Some(item));
                }
                None => out.push(None),
            }
        }
        if writes.is_empty() {
            return Ok(out);
        }
        let replies = self.pool.call_many(writes).await?;
        let mut rewritten = Vec::with_capacity(written_at.len());
        for (i, reply) in written_at.into_iter().zip(replies) {
            match written(reply)? {
                Written::Stored => rewritten.push(keys[i].clone()),
                // Someone wrote the key in between: do that key again on its own.
                _ => out[i] = self.touch_one(&keys[i], expires_at, version).await?,
            }
        }
        // A touch is a fetch to memcached, and the rewritten items are new to the backend.
        self.mark_fetched_many(rewritten).await?;
        Ok(out)
    }

    async fn peek_items(&self, keys: &[Bytes]) -> StoreResult<Vec<Option<Item>>> {
        self.peek_many(keys).await
    }

    async fn peek(&self, key: &Bytes, bump: bool) -> StoreResult<Option<(Item, Access)>> {
        self.peek_meta(key, bump).await
    }

    async fn update<T: Send>(
        &self,
        key: &Bytes,
        bump: bool,
        decide: impl FnMut(Option<(&Item, Access)>) -> Change<T> + Send,
    ) -> StoreResult<Option<T>> {
        self.update_meta(key, bump, decide).await
    }

    async fn flush_all(&self, cutoff: Timestamp) -> StoreResult<()> {
        let now_ms = unix_ms();
        let delay = if self.flushes.schedule(cutoff, now_ms) {
            0
        } else {
            // The backend counts whole seconds; memcord's lazy check is exact either way.
            cutoff
                .physical_ms()
                .saturating_sub(now_ms)
                .div_ceil(1000)
                .max(1) as i64
        };
        match self
            .pool
            .call(Request::FlushAll {
                delay,
                noreply: false,
            })
            .await?
        {
            Response::Ok => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    async fn dump(&self) -> StoreResult<Vec<(Bytes, Item)>> {
        let keys = super::metadump::list_keys(&self.addr, DUMP_TIMEOUT, DUMP_MAX_KEYS).await?;
        let mut items = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(DUMP_CHUNK) {
            // A snapshot is no client's read: the items' access records stay as they are.
            let found = self.peek_many(chunk).await?;
            for (key, item) in chunk.iter().zip(found) {
                if let Some(item) = item {
                    items.push((key.clone(), item));
                }
            }
        }
        Ok(items)
    }

    async fn clear(&self) -> StoreResult<()> {
        self.flushes.reset();
        match self
            .pool
            .call(Request::FlushAll {
                delay: 0,
                noreply: false,
            })
            .await?
        {
            Response::Ok => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    fn pending_flushes(&self) -> Vec<Timestamp> {
        self.flushes.pending(unix_ms())
    }

    async fn admin(&self, request: &StoreAdmin) -> StoreResult<Response> {
        self.admin_reply(request).await
    }

    async fn stats(&self) -> StoreStats {
        let Ok(Response::Stats(lines)) = self.pool.call(Request::Stats { group: None }).await
        else {
            return StoreStats::default();
        };
        let mut stats = StoreStats::default();
        for (name, value) in lines {
            let field = match name.as_str() {
                "curr_items" => &mut stats.curr_items,
                "bytes" => &mut stats.bytes,
                "evictions" => &mut stats.evictions,
                "reclaimed" => &mut stats.reclaimed,
                "limit_maxbytes" => &mut stats.limit_maxbytes,
                _ => continue,
            };
            *field = value.trim().parse().unwrap_or(0);
        }
        stats
    }
}

#[cfg(test)]
mod tests {
    use super::super::{backend_exptime, envelope, BACKEND_EXPIRY_SLACK};
    use super::*;

    #[test]
    fn backend_exptimes_are_absolute_or_dead() {
        let now = 1_700_000_000;
        assert_eq!(backend_exptime(ExpiresAt::NEVER, now), 0);
        assert_eq!(backend_exptime(ExpiresAt::EXPIRED, now), -1);
        assert_eq!(backend_exptime(ExpiresAt(now), now), -1);
        // Never earlier than memcord's own expiry by a clock a second ahead of the wall.
        assert_eq!(
            backend_exptime(ExpiresAt(now + 5), now),
            (now + 5 + BACKEND_EXPIRY_SLACK) as i64
        );
        assert!(backend_exptime(ExpiresAt(now + 1), now) > (now + 2) as i64);
    }

    #[test]
    fn store_requests_carry_the_envelope() {
        let item = Item::new(
            Bytes::from_static(b"v"),
            3,
            ExpiresAt::NEVER,
            Timestamp::new(1, 0, 0),
        );
        let Request::Store { value, flags, .. } =
            store_request(StoreOp::Set, &Bytes::from_static(b"k"), &item, 0, 0)
        else {
            panic!("not a store request");
        };
        assert_eq!(flags, 3);
        assert_eq!(value.len(), envelope::HEADER_LEN + 1);
    }
}
