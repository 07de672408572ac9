//! This peer's copy: a local write under its key's lock, the state it leaves to replicate,
//! and the last-writer-wins merge of entries from other peers.

use super::Shared;
use crate::clock::{unix_ms, Timestamp};
use crate::cluster::{EntryState, LogEntry, PeerMessage};
use crate::replicated::{apply, Command, MetaOutcome, Outcome, WriteRule};
use crate::store::{Item, Store, StoreOutcome, StoreResult};
use bytes::Bytes;
use std::sync::atomic::Ordering;

impl<S: Store> Shared<S> {
    /// Applies one local write under its key's stripe and logs the resulting state; returns
    /// the outcome and the entry to replicate (none when nothing changed).
    pub(super) async fn write_one(
        &self,
        key: Bytes,
        command: Command,
    ) -> StoreResult<(Outcome, Option<LogEntry>)> {
        let _guard = self.stripe(&key).lock().await;
        let version = command
            .version()
            .unwrap_or_else(|| self.replica.clock.now());
        let known = match &command {
            Command::Write {
                rule: WriteRule::Set,
                value,
                flags,
                expires_at,
                ..
            } => Some(Item::new(value.clone(), *flags, *expires_at, version)),
            _ => None,
        };
        let outcome = apply(self.replica.store.as_ref(), command).await?;
        let state = match &outcome {
            Outcome::Write(StoreOutcome::Stored) => match known {
                Some(item) if !item.expires_at.is_expired(crate::clock::unix_secs()) => {
                    Some(EntryState::Item(item))
                }
                _ => Some(self.current_state(&key, version).await?),
            },
            Outcome::Delete(_) => Some(EntryState::Tombstone(version)),
            Outcome::Arith(crate::store::ArithOutcome::Value(_)) | Outcome::Touch(true) => {
                Some(self.current_state(&key, version).await?)
            }
            Outcome::Items(items) if items.iter().any(Option::is_some) => {
                Some(self.current_state(&key, version).await?)
            }
            Outcome::Meta(meta) if meta_changed(meta, version) => {
                Some(self.current_state(&key, version).await?)
            }
            _ => None,
        };
        let entry = state.map(|state| {
            let tombstone = matches!(state, EntryState::Tombstone(_));
            self.replica
                .log
                .record(key.clone(), state.version(), tombstone);
            LogEntry::Key { key, state }
        });
        Ok((outcome, entry))
    }

    /// The key's state in the store right after a local write at `version`.
    pub(super) async fn current_state(
        &self,
        key: &Bytes,
        version: Timestamp,
    ) -> StoreResult<EntryState> {
        let mut items = self
            .replica
            .store
            .peek_items(std::slice::from_ref(key))
            .await?;
        Ok(match items.pop().flatten() {
            Some(item) => EntryState::Item(item),
            None => EntryState::Tombstone(version),
        })
    }

    /// Pushes a flush to every live peer (flushes are not partitioned).
    pub(super) fn push(&self, entry: LogEntry) {
        if !self.config.push {
            return;
        }
        let membership = self.transport.membership();
        for peer in membership.up_peers() {
            let sent = self
                .transport
                .try_send(peer, PeerMessage::Push(vec![entry.clone()]));
            let counter = if sent {
                &self.counters.pushes_sent
            } else {
                &self.counters.pushes_dropped
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Applies a replicated entry if it is newer than what this peer holds (last writer wins).
    pub(crate) async fn merge(&self, entry: LogEntry) -> StoreResult<bool> {
        match entry {
            LogEntry::Flush { cutoff } => {
                self.replica.clock.observe(cutoff);
                if self.replica.log.record_flush(cutoff) {
                    self.replica.store.flush_all(cutoff).await?;
                    return Ok(true);
                }
                Ok(false)
            }
            LogEntry::Key { key, state } => {
                let version = state.version();
                self.replica.clock.observe(version);
                let _guard = self.stripe(&key).lock().await;
                let held = self.replica.log.get(&key).map(|e| e.version);
                let flushed = self
                    .replica
                    .log
                    .flush_cutoff()
                    .is_some_and(|c| version <= c && unix_ms() >= c.physical_ms());
                if held.is_some_and(|h| h >= version) || flushed {
                    self.counters.entries_stale.fetch_add(1, Ordering::Relaxed);
                    return Ok(false);
                }
                let tombstone = match state {
                    EntryState::Item(item) => {
                        self.replica.store.set(key.clone(), item).await?;
                        false
                    }
                    EntryState::Tombstone(version) => {
                        self.replica.store.delete(key.clone(), version).await?;
                        true
                    }
                };
                self.replica.log.record(key, version, tombstone);
                self.counters
                    .entries_applied
                    .fetch_add(1, Ordering::Relaxed);
                Ok(true)
            }
        }
    }
}

/// Whether a meta command's outcome changed its key (so the new state is replicated).
pub(super) fn meta_changed(outcome: &MetaOutcome, version: Timestamp) -> bool {
    match outcome {
        MetaOutcome::Hit(hit) => hit.item.version == version,
        MetaOutcome::Stored { .. } | MetaOutcome::Deleted => true,
        _ => false,
    }
}
