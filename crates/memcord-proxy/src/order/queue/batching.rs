//! Batching: clients' commands gathered into log entries.
//!
//! Commands wait in a channel; a batcher takes everything queued (up to `max_batch`) into one
//! log entry as soon as one of `max_inflight` slots is free, so the more clients write at
//! once, the more commands ride each entry and each replication round. It first lets every
//! other ready task run (up to [`GATHER_ROUNDS`] times), so clients woken by the same poll
//! join the entry. Followers batch the same way and forward whole batches to the leader (see
//! [`super::forwarding`]), whose batcher merges them with its own clients' commands and with
//! other followers' batches: one log entry (one fsync on each peer, one replication round)
//! carries the whole cluster's concurrent writes.
//!
//! **Linger.** With one batch in flight, a follower's forwarded commands, answered when a
//! batch is applied, come back only after the next batch has left with this peer's own
//! clients' commands: the clients split into two waves, each paying for a whole replication
//! round (three fsyncs, the AppendEntries, the applies). So once the last two batches were
//! busy, the batcher holds the next one open (at most `batch_linger`) until every source of
//! those two batches has joined it ([`RecentSources`], [`linger`]).

use super::super::{Batch, BatchReply, NodeId};
use super::{OrderedQueue, QueueError};
use crate::gather::gather;
use crate::replicated::{Command, Outcome};
use crate::store::StoreResult;
use openraft::error::{ClientWriteError, RaftError};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// Most times the batcher lets other tasks run, taking what they queue, before it sends a
/// batch: clients (and forwarded batches) woken by the same poll join one log entry.
const GATHER_ROUNDS: usize = 4;

/// Fewest commands in the last two batches for the next one to wait for their sources: a
/// lightly loaded queue answers at once (a single client that moves between peers would
/// otherwise wait out every linger).
const LINGER_MIN_COMMANDS: usize = 8;

/// A command's log index and outcome, or why it has none.
pub(super) type WriteResult = Result<(u64, StoreResult<Outcome>), QueueError>;

/// A command waiting in the batcher's channel, with where its answer goes.
pub(super) struct PendingWrite {
    /// The command.
    pub(super) command: Command,
    /// Where its result goes.
    pub(super) reply: oneshot::Sender<WriteResult>,
    /// The follower that sent it here (`None`: this peer's own client). A forwarded command
    /// is appended only while this peer leads, never forwarded again (the follower retries
    /// it elsewhere on `NotLeader`).
    pub(super) origin: Option<NodeId>,
}

impl PendingWrite {
    /// Whether a follower forwarded it here.
    pub(super) fn forwarded(&self) -> bool {
        self.origin.is_some()
    }
}

impl OrderedQueue {
    /// Queues one command and waits for its log index and outcome, at most the quorum
    /// timeout.
    pub async fn submit(&self, command: Command) -> WriteResult {
        let (reply, answer) = oneshot::channel();
        let deadline = Instant::now() + self.config.quorum_timeout;
        if self
            .writes
            .send(PendingWrite {
                command,
                reply,
                origin: None,
            })
            .await
            .is_err()
        {
            return Err(QueueError::Failed("queue stopped".into()));
        }
        // The batch carries its own timeout; this one only guards against a lost reply.
        match tokio::time::timeout_at(deadline + Duration::from_millis(500), answer).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(QueueError::Failed("queue stopped".into())),
            Err(_) => Err(self.no_quorum()),
        }
    }

    /// Queues `commands` in their order, one after the other before waiting for any (so they
    /// ride the same log entries when the batcher takes them together), and waits for each
    /// one's index and outcome, at most the quorum timeout.
    pub async fn submit_many(&self, commands: Vec<Command>) -> Vec<WriteResult> {
        let deadline = Instant::now() + self.config.quorum_timeout;
        let mut answers = Vec::with_capacity(commands.len());
        for command in commands {
            let (reply, answer) = oneshot::channel();
            let pending = PendingWrite {
                command,
                reply,
                origin: None,
            };
            answers.push(match self.writes.send(pending).await {
                Ok(()) => Some(answer),
                Err(_) => None,
            });
        }
        let mut results = Vec::with_capacity(answers.len());
        for answer in answers {
            let Some(answer) = answer else {
                results.push(Err(QueueError::Failed("queue stopped".into())));
                continue;
            };
            let waited =
                tokio::time::timeout_at(deadline + Duration::from_millis(500), answer).await;
            results.push(match waited {
                Ok(Ok(result)) => result,
                Ok(Err(_)) => Err(QueueError::Failed("queue stopped".into())),
                Err(_) => Err(self.no_quorum()),
            });
        }
        results
    }

    /// The batcher: turns what arrives on `rx` into batches, each sent once an in-flight slot
    /// is free.
    pub(super) async fn batch_writes(self: Arc<Self>, mut rx: mpsc::Receiver<PendingWrite>) {
        let slots = Arc::new(Semaphore::new(self.config.max_inflight.max(1)));
        let mut sources = RecentSources::default();
        while let Some(first) = rx.recv().await {
            let Ok(permit) = slots.clone().acquire_owned().await else {
                return;
            };
            let batch = self.gather_batch(first, &mut rx, &mut sources).await;
            tokio::spawn(self.clone().send_batch(batch, permit));
        }
    }

    /// `first` and what else is queued or arrives while other tasks run, then (when the last
    /// batches were busy) what arrives while it lingers for their sources.
    async fn gather_batch(
        &self,
        first: PendingWrite,
        rx: &mut mpsc::Receiver<PendingWrite>,
        sources: &mut RecentSources,
    ) -> Vec<PendingWrite> {
        let mut batch: Vec<PendingWrite> = vec![first];
        let max_batch = self.config.max_batch;
        gather(rx, GATHER_ROUNDS, |more| {
            batch.push(more);
            batch.len() < max_batch
        })
        .await;
        if !self.config.batch_linger.is_zero() {
            if let Some(expected) = sources.expected() {
                let linger_for = self.config.batch_linger;
                if linger(rx, &mut batch, &expected, max_batch, linger_for).await {
                    self.counters.batch_lingers.fetch_add(1, Ordering::Relaxed);
                }
            }
            sources.saw(&batch);
        }
        batch
    }

    /// Gets `batch` applied within the quorum timeout (answering `no quorum` to what is left
    /// past it), then frees its in-flight slot.
    async fn send_batch(self: Arc<Self>, mut batch: Vec<PendingWrite>, slot: OwnedSemaphorePermit) {
        self.counters.batches.fetch_add(1, Ordering::Relaxed);
        let own = batch.iter().filter(|p| !p.forwarded()).count();
        self.counters
            .batched_commands
            .fetch_add(own as u64, Ordering::Relaxed);
        let timed_out =
            tokio::time::timeout(self.config.quorum_timeout, self.write_batch(&mut batch))
                .await
                .is_err();
        drop(slot);
        if timed_out {
            answer_all(&mut batch, self.no_quorum());
        }
    }

    /// Gets `batch` applied, answering each command's reply as its fate is known; returns
    /// when all are answered. Commands still in `batch` when the caller's timeout strikes
    /// are answered by the caller.
    async fn write_batch(&self, batch: &mut Vec<PendingWrite>) {
        while !batch.is_empty() {
            let leader = match self.leader_now().await {
                Ok(leader) => leader,
                Err(err) => return answer_all(batch, err),
            };
            if leader == self.me {
                self.write_batch_here(batch).await;
                continue;
            }
            reject_forwarded(batch);
            if batch.is_empty() {
                return;
            }
            self.forward_batch(leader, batch).await;
        }
    }

    /// Appends `batch` as this leader's entry and answers its commands; a batch this peer
    /// could not append (no longer the leader) keeps its own commands for another try.
    async fn write_batch_here(&self, batch: &mut Vec<PendingWrite>) {
        match self.write_here(commands_of(batch)).await {
            Ok((index, reply)) => {
                for (pending, outcome) in batch.drain(..).zip(reply.outcomes) {
                    let _ = pending.reply.send(Ok((index, outcome)));
                }
            }
            Err(QueueError::NotLeader) => {
                // Not queued: followers' commands go back to their peers, which find the
                // new leader; this peer's own commands try again here.
                reject_forwarded(batch);
                self.pause().await;
            }
            Err(err) => answer_all(batch, err),
        }
    }

    /// Appends a batch if this peer leads; [`QueueError::NotLeader`] means it was not queued.
    async fn write_here(&self, batch: Batch) -> Result<(u64, BatchReply), QueueError> {
        if self.leader() != Some(self.me) {
            return Err(QueueError::NotLeader);
        }
        match self.raft.client_write(batch).await {
            Ok(written) => Ok((written.log_id.index, written.data)),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_))) => {
                Err(QueueError::NotLeader)
            }
            Err(err) => Err(QueueError::Failed(err.to_string())),
        }
    }
}

/// The commands of `batch`, in order, as one log entry's data.
pub(super) fn commands_of(batch: &[PendingWrite]) -> Batch {
    Batch {
        commands: batch.iter().map(|p| p.command.clone()).collect(),
    }
}

/// Answers every command of `batch` with `err`.
pub(super) fn answer_all(batch: &mut Vec<PendingWrite>, err: QueueError) {
    for pending in batch.drain(..) {
        let _ = pending.reply.send(Err(err.clone()));
    }
}

/// Answers `NotLeader` to the forwarded commands of `batch` and keeps the others.
fn reject_forwarded(batch: &mut Vec<PendingWrite>) {
    let (forwarded, own): (Vec<_>, Vec<_>) = batch.drain(..).partition(|p| p.forwarded());
    *batch = own;
    for pending in forwarded {
        let _ = pending.reply.send(Err(QueueError::NotLeader));
    }
}

/// Where the last two batches' commands came from (this peer's clients as `None`, the
/// followers that forwarded some) and how many there were: the sources the next batch
/// lingers for (see the module docs).
#[derive(Default)]
struct RecentSources {
    /// (sources, commands) of the last batch.
    last: (Vec<Option<NodeId>>, usize),
    /// (sources, commands) of the batch before it.
    before: (Vec<Option<NodeId>>, usize),
}

impl RecentSources {
    /// The sources seen in either of the last two batches, if they were busy enough to be
    /// worth waiting for.
    fn expected(&self) -> Option<Vec<Option<NodeId>>> {
        if self.last.1 + self.before.1 < LINGER_MIN_COMMANDS {
            return None;
        }
        let mut all: Vec<_> = self.last.0.iter().chain(&self.before.0).copied().collect();
        all.sort_unstable();
        all.dedup();
        Some(all)
    }

    /// Records the sources of the batch about to be appended.
    fn saw(&mut self, batch: &[PendingWrite]) {
        let mut now: Vec<_> = batch.iter().map(|p| p.origin).collect();
        now.sort_unstable();
        now.dedup();
        self.before = std::mem::replace(&mut self.last, (now, batch.len()));
    }
}

/// Adds to `batch` what arrives on `rx` until every source in `expected` has a command in
/// it, the batch is full, or `linger` has passed; returns whether it waited at all.
async fn linger(
    rx: &mut mpsc::Receiver<PendingWrite>,
    batch: &mut Vec<PendingWrite>,
    expected: &[Option<NodeId>],
    max_batch: usize,
    linger: Duration,
) -> bool {
    // The sources still missing, struck off as their commands arrive: each command is
    // looked at once, however the batch fills.
    let mut missing: Vec<Option<NodeId>> = expected
        .iter()
        .filter(|source| !batch.iter().any(|p| p.origin == **source))
        .copied()
        .collect();
    let take = |batch: &mut Vec<PendingWrite>, missing: &mut Vec<_>, more: PendingWrite| {
        missing.retain(|source| *source != more.origin);
        batch.push(more);
    };
    let deadline = Instant::now() + linger;
    let mut waited = false;
    while batch.len() < max_batch && !missing.is_empty() {
        waited = true;
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(more)) => take(batch, &mut missing, more),
            Ok(None) | Err(_) => return waited,
        }
        while batch.len() < max_batch {
            match rx.try_recv() {
                Ok(more) => take(batch, &mut missing, more),
                Err(_) => break,
            }
        }
    }
    waited
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Timestamp;
    use bytes::Bytes;

    fn many(n: usize, origin: Option<NodeId>) -> Vec<PendingWrite> {
        (0..n).map(|_| pending(origin)).collect()
    }

    fn pending(origin: Option<NodeId>) -> PendingWrite {
        let (reply, _) = oneshot::channel();
        PendingWrite {
            command: Command::Delete {
                key: Bytes::from_static(b"k"),
                version: Timestamp::ZERO,
            },
            reply,
            origin,
        }
    }

    fn origins(batch: &[PendingWrite]) -> Vec<Option<NodeId>> {
        batch.iter().map(|p| p.origin).collect()
    }

    #[test]
    fn a_lightly_loaded_queue_waits_for_nobody() {
        let mut sources = RecentSources::default();
        assert_eq!(sources.expected(), None, "nothing seen yet");
        sources.saw(&[pending(None), pending(Some(2))]);
        sources.saw(&[pending(Some(3))]);
        assert_eq!(sources.expected(), None, "three commands in two batches");
    }

    #[test]
    fn a_busy_queue_waits_for_the_sources_of_its_last_two_batches() {
        let mut sources = RecentSources::default();
        sources.saw(&many(5, Some(2)));
        let own_and_three: Vec<_> = (0..4)
            .map(|i| pending(if i % 2 == 0 { None } else { Some(3) }))
            .collect();
        sources.saw(&own_and_three);
        assert_eq!(sources.expected(), Some(vec![None, Some(2), Some(3)]));
        // A source absent from the last two batches is no longer waited for.
        sources.saw(&many(8, None));
        assert_eq!(sources.expected(), Some(vec![None, Some(3)]));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_batch_stops_lingering_once_every_expected_source_joined() {
        let (tx, mut rx) = mpsc::channel(16);
        let mut batch = vec![pending(None)];
        let sender = tokio::spawn(async move {
            tx.send(pending(Some(2))).await.unwrap();
            tokio::task::yield_now().await;
            tx.send(pending(Some(3))).await.unwrap();
            tx.send(pending(Some(2))).await.unwrap();
            tx
        });
        let expected = [None, Some(2), Some(3)];
        // The linger is an hour: returning within the test's deadline proves it stopped early.
        let hour = Duration::from_secs(3600);
        tokio::time::timeout(
            Duration::from_secs(10),
            linger(&mut rx, &mut batch, &expected, 64, hour),
        )
        .await
        .expect("linger returned once all sources joined");
        assert_eq!(origins(&batch), vec![None, Some(2), Some(3), Some(2)]);
        let tx = sender.await.unwrap();
        let waited = linger(&mut rx, &mut batch, &expected, 64, hour).await;
        assert!(!waited, "every source is already in the batch");
        drop(tx);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_missing_source_is_waited_for_no_longer_than_the_linger() {
        let (tx, mut rx) = mpsc::channel(16);
        let mut batch = vec![pending(None)];
        let linger_for = Duration::from_millis(30);
        let started = Instant::now();
        let waited = linger(&mut rx, &mut batch, &[None, Some(2)], 64, linger_for).await;
        assert!(waited);
        assert!(started.elapsed() >= linger_for);
        assert_eq!(origins(&batch), vec![None]);
        drop(tx);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_full_batch_stops_lingering() {
        let (tx, mut rx) = mpsc::channel(16);
        for _ in 0..5 {
            tx.send(pending(None)).await.unwrap();
        }
        let mut batch = vec![pending(None)];
        let hour = Duration::from_secs(3600);
        tokio::time::timeout(
            Duration::from_secs(10),
            linger(&mut rx, &mut batch, &[None, Some(2)], 4, hour),
        )
        .await
        .expect("linger returned with a full batch");
        assert_eq!(batch.len(), 4);
        assert!(rx.try_recv().is_ok(), "the rest stays queued");
    }
}
