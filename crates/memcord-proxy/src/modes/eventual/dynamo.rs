//! Dynamo-style replica coordination for the eventual mode: where a key's reads and writes
//! go on the ring, when they are answered (consistency levels), read repair and hinted
//! handoff.
//!
//! ```text
//! write at L:  client ─▶ any peer ─(not a replica, or L > ONE and not the first live
//!              replica)─Coordinate─▶ the key's first live replica
//!              coordinator: stripe lock, apply locally, Replicate ─▶ other replicas
//!              answer once L replicas (itself included) applied it; a replica that is down
//!              or does not answer gets a hint, handed off when it is up again
//! read at L:   ReadKeys ─▶ every live replica; answer once L replied, with the newest
//!              version; when L > ONE and fewer than L of them hold that version, write it
//!              back to them first (so a later read at L cannot see an older one); every
//!              other stale replica is repaired in the background
//! ```
//! At ONE a peer that is one of the key's replicas serves reads from its own store and
//! coordinates writes itself (with full replication every peer is a replica of every key).
//!
//! This file holds the writes and the answers to other peers' reads and writes; reads at a
//! level and read repair are in `read.rs`, the hand-off of hints and moved keys in
//! `handoff.rs`.

use super::{PeerState, Shared};
use crate::cluster::{EntryState, LogEntry, PeerId, PeerMessage, PeerRequest, PeerResponse};
use crate::protocol::Level;
use crate::replicated::{Command, Outcome};
use crate::store::{Store, StoreError};
use bytes::Bytes;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// The `SERVER_ERROR` text when a consistency level cannot be met in time.
pub const LEVEL_NOT_MET: &str = "consistency level not met";

/// Why a replicated read or write failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DynamoError {
    /// The local store failed.
    #[error("{0}")]
    Store(#[from] StoreError),
    /// Too few replicas answered within the timeout.
    #[error("{LEVEL_NOT_MET} ({got} of {needed} replicas)")]
    NotMet {
        /// Replicas that answered.
        got: usize,
        /// Replicas the level needs.
        needed: usize,
    },
    /// A forwarded write's outcome is unknown (its coordinator did not answer).
    #[error("outcome unknown: {0}")]
    Unknown(String),
}

/// The level as one byte, for the forwarded-write payload.
fn level_byte(level: Level) -> u8 {
    match level {
        Level::One => 0,
        Level::Quorum => 1,
        Level::All => 2,
    }
}

fn byte_level(b: u8) -> Level {
    match b {
        2 => Level::All,
        1 => Level::Quorum,
        _ => Level::One,
    }
}

pub(super) fn version_of(state: &Option<EntryState>) -> crate::clock::Timestamp {
    state.as_ref().map(EntryState::version).unwrap_or_default()
}

impl<S: Store> Shared<S> {
    /// Serves a write of one key at `level`: here, or at the key's coordinating replica.
    pub(super) async fn write_key(
        &self,
        key: Bytes,
        command: Command,
        level: Level,
    ) -> Result<Outcome, DynamoError> {
        let me = self.transport.me();
        let replicas = self.placement.ring.replicas(&key);
        let local = replicas.contains(&me);
        if local && level == Level::One {
            return self.coordinate(key, command, level, &replicas).await;
        }
        let membership = self.transport.membership().clone();
        let live: Vec<PeerId> = replicas
            .iter()
            .copied()
            .filter(|&p| p == me || membership.is_up(p))
            .collect();
        for &target in &live {
            if target == me {
                return self.coordinate(key, command, level, &replicas).await;
            }
            let payload = match postcard::to_stdvec(&(&command, level_byte(level))) {
                Ok(bytes) => Bytes::from(bytes),
                Err(err) => return Err(DynamoError::Unknown(err.to_string())),
            };
            self.counters.forwarded.fetch_add(1, Ordering::Relaxed);
            let answer = self
                .transport
                .call(
                    target,
                    PeerRequest::Coordinate(payload),
                    self.config.level_timeout + Duration::from_millis(500),
                )
                .await;
            match answer {
                Ok(PeerResponse::Coordinated(bytes)) => {
                    return match postcard::from_bytes::<Result<Outcome, String>>(&bytes) {
                        Ok(Ok(outcome)) => Ok(outcome),
                        Ok(Err(reason)) => Err(DynamoError::Unknown(reason)),
                        Err(err) => Err(DynamoError::Unknown(err.to_string())),
                    };
                }
                // Never sent, or refused before applying: the next live replica may take it.
                Err(crate::cluster::CallError::NotConnected(_)) | Ok(PeerResponse::Error(_)) => {
                    continue
                }
                Ok(_) => return Err(DynamoError::Unknown("unexpected peer answer".into())),
                Err(err) => return Err(DynamoError::Unknown(err.to_string())),
            }
        }
        Err(DynamoError::NotMet {
            got: 0,
            needed: level.required(replicas.len()),
        })
    }

    /// Coordinates a write as one of its key's replicas: applies it here, then replicates
    /// the resulting state and waits for the level.
    async fn coordinate(
        &self,
        key: Bytes,
        command: Command,
        level: Level,
        replicas: &[PeerId],
    ) -> Result<Outcome, DynamoError> {
        let (outcome, entry) = self.write_one(key, command).await?;
        let Some(entry) = entry else {
            return Ok(outcome); // nothing changed (NOT_STORED, a miss): nothing to replicate
        };
        let me = self.transport.me();
        let others: Vec<PeerId> = replicas.iter().copied().filter(|&p| p != me).collect();
        let needed = level.required(replicas.len());
        if needed <= 1 {
            self.push_to(&others, entry);
            return Ok(outcome);
        }
        let acks = 1 + self.replicate(&others, entry, needed - 1).await;
        if acks >= needed {
            Ok(outcome)
        } else {
            self.counters.level_failures.fetch_add(1, Ordering::Relaxed);
            Err(DynamoError::NotMet { got: acks, needed })
        }
    }

    /// Best-effort replication (level ONE): a push to every live replica, a hint for the rest.
    pub(super) fn push_to(&self, peers: &[PeerId], entry: LogEntry) {
        if !self.config.push {
            return; // the periodic sync alone replicates
        }
        let membership = self.transport.membership();
        for &peer in peers {
            let sent = membership.is_up(peer)
                && self
                    .transport
                    .try_send(peer, PeerMessage::Push(vec![entry.clone()]));
            if sent {
                self.counters.pushes_sent.fetch_add(1, Ordering::Relaxed);
            } else {
                self.counters.pushes_dropped.fetch_add(1, Ordering::Relaxed);
                self.hint(peer, entry.clone());
            }
        }
    }

    /// Keeps `entry` for `peer` until it is up again.
    fn hint(&self, peer: PeerId, entry: LogEntry) {
        let counter = match self.outbox.hints.add(peer, entry) {
            super::hints::Added::Stored => &self.counters.hints_stored,
            super::hints::Added::Superseded => return,
            super::hints::Added::Dropped => &self.counters.hints_dropped,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Sends `entry` to every peer in `peers` and waits (at most the level timeout) until
    /// `wanted` acknowledged it; returns how many did. Unreachable peers get a hint; the
    /// calls still running when this returns finish in the background.
    pub(super) async fn replicate(
        &self,
        peers: &[PeerId],
        entry: LogEntry,
        wanted: usize,
    ) -> usize {
        let (tx, mut rx) = tokio::sync::mpsc::channel(peers.len().max(1));
        let membership = self.transport.membership().clone();
        let this = self.self_arc();
        for &peer in peers {
            if !membership.is_up(peer) {
                self.hint(peer, entry.clone());
                continue;
            }
            let (this, tx, entry) = (this.clone(), tx.clone(), entry.clone());
            tokio::spawn(async move {
                let answer = this
                    .transport
                    .call(
                        peer,
                        PeerRequest::Replicate(vec![entry.clone()]),
                        this.config.level_timeout,
                    )
                    .await;
                let ok = matches!(answer, Ok(PeerResponse::Applied(_)));
                if !ok {
                    this.hint(peer, entry);
                }
                let _ = tx.send(ok).await;
            });
        }
        drop(tx);
        let deadline = tokio::time::Instant::now() + self.config.level_timeout;
        let mut acks = 0;
        while acks < wanted {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(true)) => acks += 1,
                Ok(Some(false)) => {}
                Ok(None) | Err(_) => break,
            }
        }
        acks
    }

    /// This peer's state of `key`: the item it holds, else the tombstone it logged.
    pub(super) async fn local_state(&self, key: &Bytes) -> Result<Option<EntryState>, StoreError> {
        let mut items = self
            .replica
            .store
            .peek_items(std::slice::from_ref(key))
            .await?;
        if let Some(item) = items.pop().flatten() {
            return Ok(Some(EntryState::Item(item)));
        }
        Ok(self
            .replica
            .log
            .get(key)
            .filter(|e| e.tombstone)
            .map(|e| EntryState::Tombstone(e.version)))
    }

    /// Answers a peer's [`PeerRequest::ReadKeys`].
    pub(super) async fn answer_read(&self, keys: Vec<Bytes>) -> PeerResponse {
        if self.state() == PeerState::Failed {
            return PeerResponse::Error("peer failed".into());
        }
        let mut states = Vec::with_capacity(keys.len());
        for key in keys.iter().take(10_000) {
            match self.local_state(key).await {
                Ok(state) => states.push(state),
                Err(err) => return PeerResponse::Error(err.to_string()),
            }
        }
        PeerResponse::States(states)
    }

    /// Answers a peer's [`PeerRequest::Replicate`].
    pub(super) async fn answer_replicate(&self, entries: Vec<LogEntry>) -> PeerResponse {
        if self.state() == PeerState::Failed {
            return PeerResponse::Error("peer failed".into());
        }
        let mut applied = 0u32;
        for entry in entries {
            match self.merge(entry).await {
                Ok(true) => applied += 1,
                Ok(false) => {}
                Err(err) => return PeerResponse::Error(err.to_string()),
            }
        }
        PeerResponse::Applied(applied)
    }

    /// Answers a peer's [`PeerRequest::Coordinate`]: the write is re-stamped by this peer's
    /// clock, so one key's versions follow its coordinating replica's clock.
    pub(super) async fn answer_coordinate(&self, payload: Bytes) -> PeerResponse {
        if self.state() != PeerState::Serving {
            return PeerResponse::Error(format!("peer is {}", self.state().name()));
        }
        let Ok((command, level)) = postcard::from_bytes::<(Command, u8)>(&payload) else {
            return PeerResponse::Error("undecodable forwarded write".into());
        };
        let Some(key) = command.key().cloned() else {
            return PeerResponse::Error("a forwarded write names one key".into());
        };
        if let Some(version) = command.version() {
            self.replica.clock.observe(version);
        }
        let command = command.with_version(self.replica.clock.now());
        let replicas = self.placement.ring.replicas(&key);
        let result = self
            .coordinate(key, command, byte_level(level), &replicas)
            .await
            .map_err(|e| e.to_string());
        match postcard::to_stdvec(&result) {
            Ok(bytes) => PeerResponse::Coordinated(Bytes::from(bytes)),
            Err(err) => PeerResponse::Error(err.to_string()),
        }
    }
}
