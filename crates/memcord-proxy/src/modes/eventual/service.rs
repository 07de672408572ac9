//! Peer traffic: what this peer answers other peers (sync pages, replicated entries, reads,
//! coordination), and the report its heartbeats carry.

use super::{PeerState, Shared};
use crate::clock::Timestamp;
use crate::cluster::{
    EntryState, LogEntry, PeerId, PeerReport, PeerRequest, PeerResponse, PeerService,
    ResponseFuture,
};
use crate::cluster::{Ring, RingSpec};
use crate::store::Store;
use bytes::Bytes;
use std::sync::atomic::Ordering;
use std::sync::Arc;

impl<S: Store> Shared<S> {
    /// The ring a peer asked by (cached: every peer of one cluster sends the same spec).
    pub(super) fn ring_for(&self, spec: &RingSpec) -> Arc<Ring> {
        if spec == self.placement.ring.spec() {
            return self.placement.ring.clone();
        }
        let mut cached = self.placement.asker_ring.lock();
        if let Some(ring) = cached.as_ref().filter(|r| r.spec() == spec) {
            return ring.clone();
        }
        let ring = Arc::new(Ring::new(spec));
        *cached = Some(ring.clone());
        ring
    }

    /// Builds one sync page for a peer that asks for what was logged after `since`; with
    /// `only` (the asker and its ring), just the keys the asker holds.
    pub(super) async fn sync_page(
        &self,
        since: Timestamp,
        max_entries: usize,
        only: Option<(PeerId, Arc<Ring>)>,
    ) -> PeerResponse {
        let mut page = self.replica.log.page(since, max_entries.clamp(1, 10_000));
        if let Some((asker, ring)) = &only {
            if !ring.is_full() {
                page.keys.retain(|(key, _)| ring.holds(*asker, key));
            }
        }
        let mut entries = Vec::with_capacity(page.keys.len() + 1);
        if let Some(cutoff) = page.flush {
            entries.push(LogEntry::Flush { cutoff });
        }
        let live: Vec<Bytes> = page
            .keys
            .iter()
            .filter(|(_, e)| !e.tombstone)
            .map(|(k, _)| k.clone())
            .collect();
        let mut items = match self.replica.store.peek_items(&live).await {
            Ok(items) => items.into_iter(),
            Err(err) => return PeerResponse::Error(err.to_string()),
        };
        for (key, entry) in page.keys {
            if entry.tombstone {
                entries.push(LogEntry::Key {
                    key,
                    state: EntryState::Tombstone(entry.version),
                });
                continue;
            }
            match items.next().flatten() {
                Some(item) => entries.push(LogEntry::Key {
                    key,
                    state: EntryState::Item(item),
                }),
                // Evicted or expired here: nothing to hand on, and nothing to remember.
                None => self.replica.log.forget(&key, entry.mark),
            }
        }
        PeerResponse::SyncPage {
            entries,
            next: page.next,
            complete: page.complete,
        }
    }
}

impl<S: Store> PeerService for Shared<S> {
    fn report(&self) -> PeerReport {
        PeerReport {
            clock: self.replica.clock.peek(),
            serving: self.state() == PeerState::Serving,
            role: "-".into(),
            items: self.status.items.load(Ordering::Relaxed),
            log_position: self.replica.log.head().as_u64(),
        }
    }

    fn on_push(&self, _from: PeerId, entries: Vec<LogEntry>) {
        // Pushes go to the merge worker through a bounded queue, so a slow store never stalls
        // the link (heartbeats and sync answers share it) and a flood of pushes cannot grow
        // memory: when the queue is full the push is dropped and the next sync repairs.
        if self.outbox.pushed.try_send(entries).is_err() {
            self.counters.pushes_refused.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn on_request(&self, from: PeerId, request: PeerRequest) -> ResponseFuture {
        let this = self.self_arc();
        Box::pin(async move {
            match request {
                PeerRequest::SyncSince { since, max_entries } => {
                    if this.state() == PeerState::Failed {
                        return PeerResponse::Error("peer failed".into());
                    }
                    this.sync_page(since, max_entries as usize, None).await
                }
                PeerRequest::SyncRanges {
                    since,
                    max_entries,
                    ring,
                } => {
                    if this.state() == PeerState::Failed {
                        return PeerResponse::Error("peer failed".into());
                    }
                    let ring = this.ring_for(&ring);
                    this.sync_page(since, max_entries as usize, Some((from, ring)))
                        .await
                }
                PeerRequest::Replicate(entries) => this.answer_replicate(entries).await,
                PeerRequest::ReadKeys(keys) => this.answer_read(keys).await,
                PeerRequest::Coordinate(payload) => this.answer_coordinate(payload).await,
                PeerRequest::Order(_) => {
                    PeerResponse::Error("this cluster runs the eventual mode".into())
                }
            }
        })
    }
}
