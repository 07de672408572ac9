//! Reads at a consistency level: every live replica asked, the newest version answered once
//! the level is met, the replicas that answered older repaired (at once when fewer than the
//! level hold the answer, else in the background), late replies compared afterwards.

use super::dynamo::{version_of, DynamoError};
use super::Shared;
use crate::cluster::{EntryState, LogEntry, PeerId, PeerMessage, PeerRequest, PeerResponse};
use crate::protocol::Level;
use crate::store::{Access, Item, Store};
use bytes::Bytes;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// The replicas' answers to a read, as they arrive.
type Answers = tokio::sync::mpsc::Receiver<(PeerId, Option<EntryState>)>;

impl<S: Store> Shared<S> {
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
    pub(super) async fn read_key(
        &self,
        key: &Bytes,
        level: Level,
    ) -> Result<Option<Item>, DynamoError> {
        let replicas = self.placement.ring.replicas(key);
        let needed = level.required(replicas.len());
        let mut answers = self.ask_replicas(key, &replicas).await?;
        let mut replies = self.gather(&mut answers, needed, replicas.len()).await?;
        let newest = replies
            .iter()
            .max_by_key(|(_, s)| version_of(s))
            .and_then(|(_, s)| s.clone());
        if let Some(state) = &newest {
            self.replica.clock.observe(state.version());
            self.settle(key, state, &mut replies, needed).await?;
        }
        // The replies still to come are compared in the background.
        tokio::spawn(repair_late_replies(
            self.self_arc(),
            key.clone(),
            replies,
            answers,
        ));
        Ok(match newest {
            Some(EntryState::Item(item)) => Some(item),
            _ => None,
        })
    }

    /// Asks every live replica of `key` for its state (this peer's answered at once); the
    /// answers arrive on the returned channel.
    pub(super) async fn ask_replicas(
        &self,
        key: &Bytes,
        replicas: &[PeerId],
    ) -> Result<Answers, DynamoError> {
        let me = self.transport.me();
        let membership = self.transport.membership().clone();
        let (tx, rx) = tokio::sync::mpsc::channel(replicas.len().max(1));
        let this = self.self_arc();
        for &peer in replicas {
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
                let request = PeerRequest::ReadKeys(vec![key]);
                let answer = this
                    .transport
                    .call(peer, request, this.config.level_timeout)
                    .await;
                if let Ok(PeerResponse::States(mut states)) = answer {
                    if states.len() == 1 {
                        let _ = tx.send((peer, states.pop().flatten())).await;
                    }
                }
            });
        }
        Ok(rx)
    }

    /// Waits (up to the level timeout) for `needed` answers.
    pub(super) async fn gather(
        &self,
        answers: &mut Answers,
        needed: usize,
        replicas: usize,
    ) -> Result<Vec<(PeerId, Option<EntryState>)>, DynamoError> {
        let deadline = tokio::time::Instant::now() + self.config.level_timeout;
        let mut replies = Vec::with_capacity(replicas);
        while replies.len() < needed {
            match tokio::time::timeout_at(deadline, answers.recv()).await {
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
        Ok(replies)
    }

    /// Repairs the replicas that answered older than `newest`: at once when fewer than
    /// `needed` hold it (monotonic reads at the level), else in the background.
    pub(super) async fn settle(
        &self,
        key: &Bytes,
        newest: &EntryState,
        replies: &mut [(PeerId, Option<EntryState>)],
        needed: usize,
    ) -> Result<(), DynamoError> {
        let version = newest.version();
        let stale: Vec<PeerId> = replies
            .iter()
            .filter(|(_, s)| version_of(s) < version)
            .map(|(p, _)| *p)
            .collect();
        let holders = replies.len() - stale.len();
        if holders < needed {
            // Monotonic reads at L: make the answer durable on L replicas before giving it,
            // so no later read at L can see an older version.
            let entry = LogEntry::Key {
                key: key.clone(),
                state: newest.clone(),
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
            self.repair_later(key.clone(), newest.clone(), &stale);
        }
        // Those are repaired now: the late replies alone are compared in the background.
        for (peer, held) in replies.iter_mut() {
            if stale.contains(peer) {
                *held = Some(newest.clone());
            }
        }
        Ok(())
    }

    /// Writes a newer state back to `stale` replicas and waits for `wanted` of them.
    pub(super) async fn repair_now(
        &self,
        stale: &[PeerId],
        entry: LogEntry,
        wanted: usize,
    ) -> usize {
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
    pub(super) fn repair_later(&self, key: Bytes, state: EntryState, stale: &[PeerId]) {
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
