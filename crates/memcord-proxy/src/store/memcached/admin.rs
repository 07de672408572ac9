//! The memcached store's answers to memcached's admin commands: the backend's own figures,
//! relayed, or its listing rewritten to the client's view.
//!
//! * `stats items`, `stats slabs`, `stats sizes` are the backend's replies as they are: its
//!   classes are real slab classes, and its sizes count memcord's 32-byte envelope;
//! * `cache_memlimit` is relayed, so the backend's memory (which holds the items) changes;
//! * `lru_crawler metadump` and `stats cachedump` list the backend's items of the classes
//!   asked for (its `lru_crawler metadump`, on a connection of its own) and read their
//!   envelopes, so that the client sees memcord's cas ids, expiry times and value sizes, not
//!   the backend's; items memcord considers dead (expired, flushed) are left out.

use super::envelope::HEADER_LEN;
use super::metadump::{list_items, Listed};
use super::{unexpected, MemcachedStore};
use crate::protocol::admin::{Classes, MetadumpLine};
use crate::protocol::{Admin, Request, Response, StoreAdmin};
use crate::store::{Item, StoreResult};
use bytes::Bytes;
use std::time::Duration;

/// Longest a listing for a client may take.
const LISTING_TIMEOUT: Duration = Duration::from_secs(60);
/// Most items one listing for a client holds.
const LISTING_MAX: usize = 10_000_000;
/// Keys read back per `get` while listing.
const CHUNK: usize = 512;
/// memcached's cap on a `stats cachedump` reply (2 MB).
const CACHEDUMP_MAX: usize = 2 * 1024 * 1024;

impl MemcachedStore {
    /// The reply to an admin request.
    pub(super) async fn admin_reply(&self, request: &StoreAdmin) -> StoreResult<Response> {
        match request {
            StoreAdmin::Items => self.relay_stats("items").await,
            StoreAdmin::Slabs => self.relay_stats("slabs").await,
            StoreAdmin::Sizes => self.relay_stats("sizes").await,
            StoreAdmin::MemLimit { .. } => {
                let relayed = Request::Admin {
                    command: Admin::Store(request.clone()),
                    noreply: false,
                };
                match self.pool.call(relayed).await? {
                    reply @ (Response::Ok | Response::Line(_) | Response::Error) => Ok(reply),
                    other => Err(unexpected(&other)),
                }
            }
            StoreAdmin::Metadump(classes) => Ok(Response::Block(self.metadump(classes).await?)),
            StoreAdmin::Cachedump { class, limit } => {
                Ok(Response::Block(self.cachedump(*class, *limit).await?))
            }
        }
    }

    async fn relay_stats(&self, group: &str) -> StoreResult<Response> {
        let request = Request::Stats {
            group: Some(group.to_owned()),
        };
        match self.pool.call(request).await? {
            reply @ Response::Stats(_) => Ok(reply),
            // An empty group: memcached sends a bare END.
            Response::Values(values) if values.is_empty() => Ok(Response::Stats(Vec::new())),
            other => Err(unexpected(&other)),
        }
    }

    /// The backend's items of `classes` that are live to memcord, with their envelopes.
    async fn listed_items(&self, classes: &Classes) -> StoreResult<Vec<(Listed, Item)>> {
        let listed = list_items(&self.addr, &classes.word(), LISTING_TIMEOUT, LISTING_MAX).await?;
        let mut items = Vec::with_capacity(listed.len());
        for chunk in listed.chunks(CHUNK) {
            let keys: Vec<Bytes> = chunk.iter().map(|l| l.key.clone()).collect();
            let fetched = self.fetch(&keys, false).await?;
            for (entry, hit) in chunk.iter().zip(fetched) {
                if let Some(hit) = hit.filter(|hit| hit.live) {
                    items.push((entry.clone(), hit.item));
                }
            }
        }
        Ok(items)
    }

    /// `lru_crawler metadump`: the backend's lines with memcord's cas id and expiry, and the
    /// size less the envelope.
    async fn metadump(&self, classes: &Classes) -> StoreResult<Bytes> {
        let mut out = Vec::new();
        for (listed, item) in self.listed_items(classes).await? {
            MetadumpLine {
                key: &listed.key,
                exp: (!item.expires_at.is_never()).then_some(item.expires_at.0),
                last_access: listed.last_access,
                cas: item.cas,
                fetched: listed.fetched,
                class: listed.class,
                size: listed.size.saturating_sub(HEADER_LEN as u64),
            }
            .write(&mut out);
        }
        Ok(Bytes::from(out))
    }

    /// `stats cachedump`: `ITEM <key> [<value bytes> b; <expiry> s]` for one backend class.
    async fn cachedump(&self, class: u32, limit: u32) -> StoreResult<Bytes> {
        let mut out = Vec::new();
        if class == 0 {
            return Ok(Bytes::new());
        }
        let items = self.listed_items(&Classes::Ids(vec![class])).await?;
        for (shown, (listed, item)) in items.iter().enumerate() {
            if limit != 0 && shown >= limit as usize {
                break;
            }
            let tail = format!(" [{} b; {} s]\r\n", item.value.len(), item.expires_at.0);
            if out.len() + 5 + listed.key.len() + tail.len() + 5 > CACHEDUMP_MAX {
                break;
            }
            out.extend_from_slice(b"ITEM ");
            out.extend_from_slice(&listed.key);
            out.extend_from_slice(tail.as_bytes());
        }
        Ok(Bytes::from(out))
    }
}
