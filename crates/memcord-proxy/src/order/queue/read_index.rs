//! Read indexes: the index a linearizable read must see applied, and the leader's lease.
//!
//! A read index is the leader's commit index, confirmed by a quorum after the request
//! started (`Raft::get_read_log_id` on the leader; a follower asks the leader with
//! `OrderRequest::ReadIndex`). Requests are coalesced: one confirmation round serves every
//! read queued behind it.
//!
//! **Lease reads.** A leader whose leadership a quorum confirmed (a read-index round that
//! started at `t`) stays the only leader until `t + lease`: openraft's followers refuse every
//! vote until the leader's lease (the maximum election timeout) has passed since they last
//! heard from it, and a restarted peer starts Raft only after that long (see
//! [`super::bootstrap`]). Within 3/4 of that window (the rest absorbs clock-rate drift), the
//! leader answers a read index from its own commit index, without a network round; past it,
//! the next read renews the lease with a confirmation round. Configurable (`lease_reads`),
//! on by default, as in etcd and TiKV.

use super::super::network::{call, OrderRequest, OrderResponse};
use super::{OrderedQueue, QueueError};
use openraft::error::{CheckIsLeaderError, RaftError};
use openraft::ServerState;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::time::Instant;

/// Where a queued read-index request's answer goes.
pub(super) type ReadWaiter = oneshot::Sender<Result<u64, QueueError>>;

/// Most read-index rounds in flight at once from one peer.
const READ_ROUNDS_IN_FLIGHT: usize = 2;

/// A leadership confirmed by a quorum: no other leader can exist before `until`.
#[derive(Debug, Clone, Copy)]
pub(super) struct ReadLease {
    /// The term the confirmation was asked in.
    term: u64,
    /// The confirmation round's start plus 3/4 of the election timeout.
    until: Instant,
    /// The read index that round returned (at least the first entry of the term).
    index: u64,
}

impl OrderedQueue {
    /// An index such that a read served once it is applied here is linearizable: the leader's
    /// commit index, confirmed by a quorum after this call started.
    pub async fn read_index(&self) -> Result<u64, QueueError> {
        let (reply, answer) = oneshot::channel();
        if self.reads.send(reply).await.is_err() {
            return Err(QueueError::Failed("queue stopped".into()));
        }
        let bound = self.config.quorum_timeout + Duration::from_millis(500);
        match tokio::time::timeout(bound, answer).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(QueueError::Failed("queue stopped".into())),
            Err(_) => Err(self.no_quorum()),
        }
    }

    /// Answers the read-index requests arriving on `rx`: everything queued shares the next
    /// round.
    pub(super) async fn batch_reads(self: Arc<Self>, mut rx: mpsc::Receiver<ReadWaiter>) {
        let slots = Arc::new(Semaphore::new(READ_ROUNDS_IN_FLIGHT));
        while let Some(first) = rx.recv().await {
            let Ok(permit) = slots.clone().acquire_owned().await else {
                return;
            };
            let mut waiting = vec![first];
            while let Ok(more) = rx.try_recv() {
                waiting.push(more);
            }
            let this = self.clone();
            tokio::spawn(async move {
                let result =
                    tokio::time::timeout(this.config.quorum_timeout, this.find_read_index())
                        .await
                        .unwrap_or_else(|_| Err(this.no_quorum()));
                drop(permit);
                for tx in waiting {
                    let _ = tx.send(result.clone());
                }
            });
        }
    }

    /// A read index from whoever leads: this peer, or the leader asked over the transport;
    /// asks again (after a pause) while the asked peer does not lead.
    async fn find_read_index(&self) -> Result<u64, QueueError> {
        loop {
            let leader = self.leader_now().await?;
            let result = if leader == self.me {
                self.read_index_here().await
            } else {
                match call(
                    &self.transport,
                    leader,
                    &OrderRequest::ReadIndex,
                    self.config.quorum_timeout,
                )
                .await
                {
                    Ok(OrderResponse::ReadIndex(result)) => result,
                    Ok(_) => Err(QueueError::Failed("unexpected answer".into())),
                    // A read changes nothing: asking again is always safe.
                    Err(_) => Err(QueueError::NotLeader),
                }
            };
            match result {
                Err(QueueError::NotLeader) => self.pause().await,
                other => return other,
            }
        }
    }

    /// The read index from the leader's lease, if it holds a live one.
    async fn lease_index(&self) -> Option<u64> {
        let lease = (*self.lease.lock())?;
        if Instant::now() >= lease.until {
            return None;
        }
        let (leading_term, committed) = self
            .raft
            .with_raft_state(|state| {
                let leading = state.server_state == ServerState::Leader;
                (
                    leading.then(|| state.vote_ref().leader_id().term),
                    state.committed.map_or(0, |l| l.index),
                )
            })
            .await
            .ok()?;
        // The commit index was read before now: the lease must still hold now.
        if leading_term != Some(lease.term) || Instant::now() >= lease.until {
            return None;
        }
        Some(committed.max(lease.index))
    }

    /// This peer's read index as the leader: from its lease, or from a confirmation round
    /// (which renews the lease); [`QueueError::NotLeader`] if it does not lead.
    pub(super) async fn read_index_here(&self) -> Result<u64, QueueError> {
        if self.config.lease_reads {
            if let Some(index) = self.lease_index().await {
                self.counters.lease_reads.fetch_add(1, Ordering::Relaxed);
                return Ok(index);
            }
        }
        let started = Instant::now();
        let term = self.raft.metrics().borrow().current_term;
        self.counters.read_rounds.fetch_add(1, Ordering::Relaxed);
        match self.raft.get_read_log_id().await {
            Ok((read, _applied)) => {
                let index = read.map_or(0, |l| l.index);
                if self.config.lease_reads {
                    *self.lease.lock() = Some(ReadLease {
                        term,
                        until: started + self.config.election_timeout * 3 / 4,
                        index,
                    });
                }
                Ok(index)
            }
            Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(_))) => {
                Err(QueueError::NotLeader)
            }
            Err(RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(_))) => {
                Err(QueueError::NotLeader)
            }
            Err(err) => Err(QueueError::Failed(err.to_string())),
        }
    }
}
