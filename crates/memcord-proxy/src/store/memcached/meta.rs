//! The meta-protocol side of [`MemcachedStore`]: reads that report the backend's own access
//! record, and the general read-modify-write behind [`Store::update`](crate::store::Store).
//!
//! The backend is a memcached 1.6, which keeps each item's "fetched" flag and last-access time
//! itself; memcord asks for them with a meta get (`mg <key> v f c h l`) rather than keeping a
//! second copy. Reads that are part of a read-modify-write use `u`, so they neither count as a
//! fetch nor move the item in the backend's LRU; the client's own reads bump the item.
//!
//! A write back is a new backend item, which memcached creates unfetched; when memcord changes
//! an item *in place* ([`Change::Modify`]: touch, a stale mark, a counter) and the old item had
//! been fetched, the new one is fetched once more so the record survives.

use super::envelope::{self, Decoded};
use super::{back_off, store_request, unexpected, written, MemcachedStore, Written};
use crate::clock::unix_secs;
use crate::protocol::meta::{MetaGet, MetaLine};
use crate::protocol::{Request, Response, StoreOp};
use crate::store::memory::flush::Now;
use crate::store::{Access, Change, Item, StoreError, StoreResult};
use bytes::Bytes;

/// One key read with a meta get: the item, the backend's cas unique, whether memcord sees it
/// as live, and the backend's access record.
pub(super) struct MetaFetched {
    pub(super) item: Item,
    pub(super) backend_cas: u64,
    pub(super) live: bool,
    pub(super) access: Access,
}

/// A meta get that reads value, flags, cas and the access record without counting as a fetch.
fn quiet_get(key: Bytes) -> Request {
    Request::MetaGet(Box::new(MetaGet::asking(key, b"vfchlu")))
}

/// Whether the backend's text protocol can carry `key` (keys from the binary protocol or a
/// base64 meta key may hold any byte).
pub(super) fn carryable(key: &[u8]) -> StoreResult<()> {
    if key.len() <= 250 && !key.iter().any(|&b| matches!(b, b' ' | b'\r' | b'\n' | 0)) {
        Ok(())
    } else {
        Err(StoreError::Unsupported(
            "keys with spaces or line breaks on a memcached backend".into(),
        ))
    }
}

impl MemcachedStore {
    /// Reads `key` with the backend's access record; `bump` lets the backend count the read.
    pub(super) async fn fetch_meta(
        &self,
        key: &Bytes,
        bump: bool,
    ) -> StoreResult<Option<MetaFetched>> {
        carryable(key)?;
        let request = if bump {
            Request::MetaGet(Box::new(MetaGet::asking(key.clone(), b"vfchl")))
        } else {
            quiet_get(key.clone())
        };
        match self.pool.call(request).await? {
            Response::MetaLine(line) if &line.code == b"EN" => Ok(None),
            Response::MetaLine(line) if &line.code == b"VA" => Ok(Some(self.decode_meta(line)?)),
            other => Err(unexpected(&other)),
        }
    }

    /// Reads `keys` without counting the reads on the backend: one `mg … u` per key,
    /// pipelined in one round trip.
    pub(super) async fn peek_many(&self, keys: &[Bytes]) -> StoreResult<Vec<Option<Item>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        for key in keys {
            carryable(key)?;
        }
        let requests = keys.iter().map(|key| quiet_get(key.clone())).collect();
        let mut out = Vec::with_capacity(keys.len());
        for reply in self.pool.call_many(requests).await? {
            out.push(match reply {
                Response::MetaLine(line) if &line.code == b"EN" => None,
                Response::MetaLine(line) if &line.code == b"VA" => Some(self.decode_meta(line)?)
                    .filter(|f| f.live)
                    .map(|f| f.item),
                other => return Err(unexpected(&other)),
            });
        }
        Ok(out)
    }

    fn decode_meta(&self, line: MetaLine) -> StoreResult<MetaFetched> {
        let field = |letter| {
            line.number(letter)
                .ok_or_else(|| StoreError::Protocol(format!("backend mg reply without {letter}")))
        };
        let backend_flags = u32::try_from(field(b'f')?)
            .map_err(|_| StoreError::Protocol("backend flags beyond 32 bits".into()))?;
        let backend_cas = field(b'c')?;
        let access = Access {
            fetched: field(b'h')? == 1,
            idle_secs: field(b'l')?,
        };
        let data = line.value.clone().unwrap_or_default();
        let Decoded { item, enveloped } = envelope::decode(data, backend_flags);
        let now = Now::read(&self.flushes);
        Ok(MetaFetched {
            live: !enveloped || now.is_live(&item),
            item,
            backend_cas,
            access,
        })
    }

    /// Counts a fetch of `key` on the backend (a bare `mg` bumps the item).
    async fn mark_fetched(&self, key: &Bytes) -> StoreResult<()> {
        self.mark_fetched_many(vec![key.clone()]).await
    }

    /// Counts a fetch of each of `keys` on the backend, in one round trip.
    pub(super) async fn mark_fetched_many(&self, keys: Vec<Bytes>) -> StoreResult<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let requests = keys
            .into_iter()
            .map(|key| Request::MetaGet(Box::new(MetaGet::asking(key, b""))))
            .collect();
        for reply in self.pool.call_many(requests).await? {
            if !matches!(reply, Response::MetaLine(_)) {
                return Err(unexpected(&reply));
            }
        }
        Ok(())
    }

    /// [`Store::update`](crate::store::Store::update) on the backend: read with `u`, decide,
    /// write back with the backend's cas (or `add` where there was nothing), retry on a lost
    /// race.
    pub(super) async fn update_meta<T: Send>(
        &self,
        key: &Bytes,
        bump: bool,
        mut decide: impl FnMut(Option<(&Item, Access)>) -> Change<T> + Send,
    ) -> StoreResult<Option<T>> {
        for attempt in 0..self.max_retries {
            let fetched = self.fetch_meta(key, false).await?;
            let live = fetched.as_ref().filter(|f| f.live);
            let was_fetched = live.is_some_and(|f| f.access.fetched);
            let (item, answer, in_place) = match decide(live.map(|f| (&f.item, f.access))) {
                Change::Keep(answer) => {
                    if bump && live.is_some() {
                        self.mark_fetched(key).await?;
                    }
                    return Ok(Some(answer));
                }
                Change::Remove(answer) => match &fetched {
                    None => return Ok(Some(answer)),
                    Some(old) => {
                        // A cas write of a dead item: removed only if nobody wrote meanwhile.
                        let mut dead = old.item.clone();
                        dead.expires_at = crate::store::ExpiresAt::EXPIRED;
                        (dead, answer, false)
                    }
                },
                Change::Modify(item, answer) => (item, answer, true),
                Change::Replace(item, answer) => (item, answer, false),
            };
            if item.value.len() > self.max_item_size {
                return Ok(None);
            }
            let now_secs = unix_secs();
            let request = match &fetched {
                Some(old) => store_request(StoreOp::Cas, key, &item, old.backend_cas, now_secs),
                None if item.expires_at.is_expired(now_secs) => return Ok(Some(answer)),
                None => store_request(StoreOp::Add, key, &item, 0, now_secs),
            };
            match written(self.pool.call(request).await?)? {
                Written::Stored => {
                    if in_place && (was_fetched || bump) && !item.expires_at.is_expired(now_secs) {
                        self.mark_fetched(key).await?;
                    }
                    return Ok(Some(answer));
                }
                Written::TooLarge => return Ok(None),
                Written::NotStored | Written::Raced => back_off(attempt).await,
            }
        }
        Err(StoreError::Contention)
    }

    /// [`Store::peek`](crate::store::Store::peek) on the backend.
    pub(super) async fn peek_meta(
        &self,
        key: &Bytes,
        bump: bool,
    ) -> StoreResult<Option<(Item, Access)>> {
        Ok(self
            .fetch_meta(key, bump)
            .await?
            .filter(|f| f.live)
            .map(|f| (f.item, f.access)))
    }
}
