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
//! coordinates writes itself (the original eventual mode; with full replication every peer
//! is a replica of every key).

use super::{PeerState, Shared};
use crate::cluster::{EntryState, LogEntry, PeerId, PeerMessage, PeerRequest, PeerResponse};
use crate::protocol::Level;
use crate::replicated::{Command, Outcome};
use crate::store::{Access, Item, Store, StoreError};
use bytes::Bytes;
use std::sync::atomic::Ordering;
use std::sync::Arc;
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

fn version_of(state: &Option<EntryState>) -> crate::clock::Timestamp {
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
    async fn replicate(&self, peers: &[PeerId], entry: LogEntry, wanted: usize) -> usize {
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

    /// Reads keys at `level`, each from its own replicas.
    pub(super) async fn read_keys(
        &self,
        keys: &[Bytes],
        level: Level,
    ) -> Result<Vec<Option<Item>>, DynamoError> {
        let me = self.transport.me();
        if level == Level::One && keys.iter().all(|k| self.placement.ring.holds(me, k)) {
            return Ok(self.replica.store.get(keys).await?);
        }
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            out.push(self.read_key(key, level).await?);
        }
        Ok(out)
    }

    /// Reads one key for a meta get at `level`, with this peer's record of reads of it when
    /// it holds a replica of the key (a peer that holds none reports a record of no reads).
    pub(super) async fn read_meta(
        &self,
        key: &Bytes,
        level: Level,
        bump: bool,
    ) -> Result<Option<(Item, Access)>, DynamoError> {
        let held = self.placement.ring.holds(self.transport.me(), key);
        if level == Level::One && held {
            return Ok(self.replica.store.peek(key, bump).await?);
        }
        let Some(item) = self.read_key(key, level).await? else {
            return Ok(None);
        };
        let access = if held {
            self.replica
                .store
                .peek(key, bump)
                .await?
                .map(|(_, access)| access)
        } else {
            None
        };
        Ok(Some((item, access.unwrap_or_default())))
    }

    /// Reads one key at `level`: see the module docs.
    async fn read_key(&self, key: &Bytes, level: Level) -> Result<Option<Item>, DynamoError> {
        let me = self.transport.me();
        let replicas = self.placement.ring.replicas(key);
        let needed = level.required(replicas.len());
        let membership = self.transport.membership().clone();
        let (tx, mut rx) = tokio::sync::mpsc::channel(replicas.len().max(1));
        let this = self.self_arc();
        for &peer in &replicas {
            if peer == me {
                let state = self.local_state(key).await?;
                let _ = tx.try_send((peer, state));
                continue;
            }
            if !membership.is_up(peer) {
                continue;
            }
            let (this, tx, key) = (this.clone(), tx.clone(), key.clone());
            tokio::spawn(async move {
                let answer = this
                    .transport
                    .call(
                        peer,
                        PeerRequest::ReadKeys(vec![key]),
                        this.config.level_timeout,
                    )
                    .await;
                if let Ok(PeerResponse::States(mut states)) = answer {
                    if states.len() == 1 {
                        let _ = tx.send((peer, states.pop().flatten())).await;
                    }
                }
            });
        }
        drop(tx);
        let deadline = tokio::time::Instant::now() + self.config.level_timeout;
        let mut replies: Vec<(PeerId, Option<EntryState>)> = Vec::with_capacity(replicas.len());
        while replies.len() < needed {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(reply)) => replies.push(reply),
                Ok(None) | Err(_) => break,
            }
        }
        if replies.len() < needed {
            self.counters.level_failures.fetch_add(1, Ordering::Relaxed);
            return Err(DynamoError::NotMet {
                got: replies.len(),
                needed,
            });
        }
        let newest = replies
            .iter()
            .max_by_key(|(_, s)| version_of(s))
            .and_then(|(_, s)| s.clone());
        if let Some(state) = &newest {
            self.replica.clock.observe(state.version());
            let version = state.version();
            let stale: Vec<PeerId> = replies
                .iter()
                .filter(|(_, s)| version_of(s) < version)
                .map(|(p, _)| *p)
                .collect();
            let holders = replies.len() - stale.len();
            if holders < needed {
                // Monotonic reads at L: make the answer durable on L replicas before giving
                // it, so no later read at L can see an older version.
                let entry = LogEntry::Key {
                    key: key.clone(),
                    state: state.clone(),
                };
                let fixed = self.repair_now(&stale, entry, needed - holders).await;
                if holders + fixed < needed {
                    self.counters.level_failures.fetch_add(1, Ordering::Relaxed);
                    return Err(DynamoError::NotMet {
                        got: holders + fixed,
                        needed,
                    });
                }
            } else {
                self.repair_later(key.clone(), state.clone(), &stale);
            }
            // Those are repaired now: the late replies alone are compared in the background.
            for (peer, held) in replies.iter_mut() {
                if stale.contains(peer) {
                    *held = Some(state.clone());
                }
            }
        }
        // The replies still to come are compared in the background.
        tokio::spawn(repair_late_replies(this, key.clone(), replies, rx));
        Ok(match newest {
            Some(EntryState::Item(item)) => Some(item),
            _ => None,
        })
    }

    /// Writes a newer state back to `stale` replicas and waits for `wanted` of them.
    async fn repair_now(&self, stale: &[PeerId], entry: LogEntry, wanted: usize) -> usize {
        let me = self.transport.me();
        let mut fixed = 0;
        let mut remote = Vec::new();
        for &peer in stale {
            if peer == me {
                if self.merge(entry.clone()).await.is_ok() {
                    fixed += 1;
                }
            } else {
                remote.push(peer);
            }
        }
        self.counters
            .read_repairs
            .fetch_add(stale.len() as u64, Ordering::Relaxed);
        if fixed >= wanted || remote.is_empty() {
            return fixed;
        }
        fixed + self.replicate(&remote, entry, wanted - fixed).await
    }

    /// Repairs `stale` replicas with `state` in the background (read repair).
    fn repair_later(&self, key: Bytes, state: EntryState, stale: &[PeerId]) {
        if stale.is_empty() {
            return;
        }
        self.counters
            .read_repairs
            .fetch_add(stale.len() as u64, Ordering::Relaxed);
        let me = self.transport.me();
        let entry = LogEntry::Key { key, state };
        for &peer in stale {
            if peer == me {
                let this = self.self_arc();
                let entry = entry.clone();
                tokio::spawn(async move {
                    let _ = this.merge(entry).await;
                });
            } else {
                // Best effort: a lost repair is redone by the next read or the sync.
                self.transport
                    .try_send(peer, PeerMessage::Push(vec![entry.clone()]));
            }
        }
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

/// Collects the replies a read did not wait for and repairs the replicas they show stale.
async fn repair_late_replies<S: Store>(
    shared: Arc<Shared<S>>,
    key: Bytes,
    mut replies: Vec<(PeerId, Option<EntryState>)>,
    mut rx: tokio::sync::mpsc::Receiver<(PeerId, Option<EntryState>)>,
) {
    let answered = replies.len();
    let deadline = tokio::time::Instant::now() + shared.config.level_timeout;
    while let Ok(Some(reply)) = tokio::time::timeout_at(deadline, rx.recv()).await {
        replies.push(reply);
    }
    if replies.len() == answered {
        return; // the waited-for replies were compared already
    }
    let Some(newest) = replies
        .iter()
        .max_by_key(|(_, s)| version_of(s))
        .and_then(|(_, s)| s.clone())
    else {
        return;
    };
    let stale: Vec<PeerId> = replies
        .iter()
        .filter(|(_, s)| version_of(s) < newest.version())
        .map(|(p, _)| *p)
        .collect();
    shared.repair_later(key, newest, &stale);
}

/// Hands hints off to their peers whenever membership shows them up (and every second, for
/// hints stored while the peer was already up).
pub(super) async fn hand_off<S: Store>(shared: std::sync::Weak<Shared<S>>) {
    let mut changes = match shared.upgrade() {
        Some(s) => s.transport.membership().subscribe(),
        None => return,
    };
    loop {
        tokio::select! {
            _ = changes.changed() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        let Some(shared) = shared.upgrade() else {
            return;
        };
        if shared.state() == PeerState::Failed {
            continue;
        }
        for peer in shared.outbox.hints.targets() {
            if !shared.transport.membership().is_up(peer) {
                continue;
            }
            let entries = shared.outbox.hints.take(peer);
            let mut left = entries.as_slice();
            while !left.is_empty() {
                let (batch, rest) = left.split_at(left.len().min(256));
                let answer = shared
                    .transport
                    .call(
                        peer,
                        PeerRequest::Replicate(batch.to_vec()),
                        shared.config.call_timeout,
                    )
                    .await;
                if !matches!(answer, Ok(PeerResponse::Applied(_))) {
                    tracing::debug!(peer, "hint hand-off interrupted; kept for later");
                    shared.outbox.hints.restore(peer, left.to_vec());
                    break;
                }
                shared
                    .counters
                    .hints_replayed
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                left = rest;
            }
            if left.is_empty() {
                tracing::info!(peer, hints = entries.len(), "hinted writes handed off");
            }
        }
    }
}

/// Keys examined per round of [`drop_foreign_keys`].
const FOREIGN_BATCH: usize = 1000;

/// After a ring change, drops the keys this peer no longer holds, once every replica of the
/// key has confirmed (by a replica read) a version at least as new as this peer's: a key
/// moves by being copied to its new replica (through that replica's sync of its ranges)
/// and only then leaves its old one. Returns how many keys were dropped.
pub(super) async fn drop_foreign_keys<S: Store>(shared: &Shared<S>) -> usize {
    if shared.placement.ring.is_full() {
        return 0;
    }
    let me = shared.transport.me();
    let foreign = shared
        .replica
        .log
        .keys_where(FOREIGN_BATCH, |k| !shared.placement.ring.holds(me, k));
    if foreign.is_empty() {
        return 0;
    }
    let membership = shared.transport.membership().clone();
    let mut asks: std::collections::BTreeMap<PeerId, Vec<usize>> = Default::default();
    let mut unconfirmed: Vec<usize> = Vec::with_capacity(foreign.len());
    for (i, (key, _)) in foreign.iter().enumerate() {
        let replicas = shared.placement.ring.replicas(key);
        if replicas.iter().any(|&p| !membership.is_up(p)) {
            unconfirmed.push(usize::MAX); // a replica is down: keep the key for now
            continue;
        }
        unconfirmed.push(replicas.len());
        for peer in replicas {
            asks.entry(peer).or_default().push(i);
        }
    }
    for (peer, indexes) in asks {
        let keys: Vec<Bytes> = indexes.iter().map(|&i| foreign[i].0.clone()).collect();
        let answer = shared
            .transport
            .call(
                peer,
                PeerRequest::ReadKeys(keys),
                shared.config.call_timeout,
            )
            .await;
        let Ok(PeerResponse::States(states)) = answer else {
            continue;
        };
        for (&i, state) in indexes.iter().zip(states) {
            if version_of(&state) >= foreign[i].1.version && unconfirmed[i] != usize::MAX {
                unconfirmed[i] -= 1;
            }
        }
    }
    let mut dropped = 0;
    for (i, (key, entry)) in foreign.into_iter().enumerate() {
        if unconfirmed[i] != 0 {
            continue;
        }
        let _guard = shared.stripe(&key).lock().await;
        // Only if nothing newer arrived meanwhile.
        if shared.replica.log.get(&key) != Some(entry) {
            continue;
        }
        if !entry.tombstone {
            if let Err(err) = shared
                .replica
                .store
                .delete(key.clone(), entry.version)
                .await
            {
                tracing::debug!(%err, "could not drop a moved key");
                continue;
            }
        }
        shared.replica.log.forget(&key, entry.mark);
        dropped += 1;
    }
    if dropped > 0 {
        tracing::info!(dropped, "dropped keys that moved to other peers");
        shared
            .counters
            .keys_moved_out
            .fetch_add(dropped as u64, Ordering::Relaxed);
    }
    dropped
}
