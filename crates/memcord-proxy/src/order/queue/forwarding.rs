//! Forwarding: a follower's batches sent to the leader, and the leader's side of them.
//!
//! A follower's batcher sends its whole batch as one `OrderRequest::Write`; the leader puts
//! each command into its own batcher's channel (so forwarded commands share the leader's next
//! entry with its own clients' and other followers' commands) and answers with one result per
//! command once the entry is applied. A command the leader did not queue comes back as
//! `NotLeader` and is tried again (it is provably not in the log); a batch whose answer is
//! lost is answered `Indeterminate` and never re-sent. A forwarded command is never forwarded
//! again: a leader that lost its leadership hands it back to its follower instead.

use super::super::network::{call, OrderRequest, OrderResponse};
use super::super::{Batch, NodeId};
use super::batching::{answer_all, commands_of, PendingWrite, WriteResult};
use super::{OrderedQueue, QueueError};
use crate::cluster::CallError;
use tokio::sync::oneshot;

impl OrderedQueue {
    /// Sends `batch` (this peer's own commands) to `leader` and answers every command whose
    /// fate the answer tells; those the leader did not queue stay in `batch` for another try.
    pub(super) async fn forward_batch(&self, leader: NodeId, batch: &mut Vec<PendingWrite>) {
        let request = OrderRequest::Write(commands_of(batch));
        match call(
            &self.transport,
            leader,
            &request,
            self.config.quorum_timeout,
        )
        .await
        {
            Ok(OrderResponse::Write(results)) if results.len() == batch.len() => {
                // Commands the leader did not queue (`NotLeader`) stay for another try.
                let mut retry = Vec::new();
                for (pending, result) in batch.drain(..).zip(results) {
                    match result {
                        Err(QueueError::NotLeader) => retry.push(pending),
                        other => {
                            let _ = pending.reply.send(other);
                        }
                    }
                }
                *batch = retry;
                if !batch.is_empty() {
                    self.pause().await;
                }
            }
            Ok(_) => answer_all(batch, QueueError::Failed("unexpected answer".into())),
            Err(CallError::NotConnected(_)) => self.pause().await,
            Err(err) => answer_all(batch, QueueError::Indeterminate(err.to_string())),
        }
    }

    /// Queues a follower's batch behind this leader's own writes and waits for every
    /// command's result; a peer that does not lead answers `NotLeader` for all at once.
    pub(super) async fn write_forwarded(&self, from: NodeId, batch: Batch) -> Vec<WriteResult> {
        if self.leader() != Some(self.me) {
            return vec![Err(QueueError::NotLeader); batch.commands.len()];
        }
        let mut answers = Vec::with_capacity(batch.commands.len());
        for command in batch.commands {
            let (reply, answer) = oneshot::channel();
            let pending = PendingWrite {
                command,
                reply,
                origin: Some(from),
            };
            if self.writes.send(pending).await.is_err() {
                answers.push(None);
                continue;
            }
            answers.push(Some(answer));
        }
        let mut results = Vec::with_capacity(answers.len());
        for answer in answers {
            let result = match answer {
                None => Err(QueueError::Failed("queue stopped".into())),
                Some(answer) => tokio::time::timeout(self.config.quorum_timeout, answer)
                    .await
                    .unwrap_or_else(|_| Ok(Err(self.no_quorum())))
                    .unwrap_or_else(|_| Err(QueueError::Failed("queue stopped".into()))),
            };
            results.push(result);
        }
        results
    }
}
