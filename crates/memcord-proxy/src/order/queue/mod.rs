//! [`OrderedQueue`]: what the ordered modes see of Raft — submit a command and get its outcome
//! once applied, get a linearizable read index, wait until this peer has applied an index.
//!
//! ```text
//! submit ─▶ writes channel ─▶ batcher (gather, linger) ─▶ one batch in flight
//!             leader:   raft.client_write(batch) ─▶ each command's outcome      batching.rs
//!             follower: Order(Write(batch)) ─▶ leader's writes channel        forwarding.rs
//! read_index ─▶ reads channel ─▶ one confirmation (or the lease) for all queued  read_index.rs
//! peer traffic ─▶ on_peer_request ─▶ Raft RPCs, forwarded batches, read indexes
//! start: log, state machine, Raft, membership if new, the batchers               bootstrap.rs
//! ```
//!
//! The parts, one concern each: `batching` (commands into log entries: the batcher, the
//! linger for recent sources), `forwarding` (a follower's batches sent to the leader, and
//! the leader's side of them), `read_index` (read indexes, coalesced, and the leader's
//! lease) and `bootstrap` (opening the log and state machine, starting Raft, initializing
//! a new cluster). What they share lives here: the queue itself, its settings, errors and
//! counters, and the waits on Raft's metrics.
//!
//! **Retries** only where a batch is known not to be in the log: the leader refused it
//! (`ForwardToLeader`, which openraft also gives for entries it truncated), or there was no
//! link to send it over. A forwarded batch whose answer is lost is reported as indeterminate,
//! never re-sent: it may be applied, and `incr` twice is not `incr` once. Every operation is
//! bounded by the quorum timeout: past it the client gets `no quorum`, never a hang.

mod batching;
mod bootstrap;
mod forwarding;
mod read_index;

pub use bootstrap::StartError;

use super::log::LogStore;
use super::network::{encode, OrderRequest, OrderResponse};
use super::{NodeId, TypeConfig};
use crate::cluster::{PeerResponse, Transport};
use batching::PendingWrite;
use openraft::{Raft, ServerState};
use read_index::{ReadLease, ReadWaiter};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Settings of the ordered queue.
#[derive(Debug, Clone)]
pub struct OrderConfig {
    /// Where this peer's log, vote and snapshot live (`data_dir/peer-N`).
    pub dir: PathBuf,
    /// Whether appends and votes are fsynced before they are acknowledged.
    pub fsync: bool,
    /// Bound on one request; past it the client gets `SERVER_ERROR no quorum`.
    pub quorum_timeout: Duration,
    /// Raft heartbeat interval.
    pub heartbeat: Duration,
    /// Upper bound of the election timeout (the lower one is half of it); also openraft's
    /// leader lease, so a dead leader is replaced within 1.5–2× this.
    pub election_timeout: Duration,
    /// Most commands in one log entry.
    pub max_batch: usize,
    /// Most batches in flight at once from one peer. One (the default) makes each entry carry
    /// everything that arrived while the previous one was replicated: with 32 writing clients
    /// on a three-peer cluster, entries grew from about 9 to 15–27 commands and the CPU per
    /// write fell by about a tenth, which outweighs the pipelining a second slot buys
    /// (openraft keeps one AppendEntries in flight per follower either way).
    pub max_inflight: usize,
    /// Log entries between snapshots (0 = never snapshot: the log is never compacted).
    pub snapshot_logs: u64,
    /// How many bytes of applied log entries stay in memory; older ones are read back from
    /// the log file when a lagging follower needs them.
    pub log_memory: u64,
    /// How snapshots find the store's keys.
    pub key_index: super::state_machine::KeyIndex,
    /// Whether the leader answers read indexes from its lease (see the `read_index` module).
    pub lease_reads: bool,
    /// How long a batch may wait for the sources (own clients, followers) of the last two
    /// batches to join it (zero: never wait); see `RecentSources`.
    pub batch_linger: Duration,
    /// **Test-only** (the broken build of [`crate::modes::linearizable`]): a follower waits
    /// this long before applying what was committed, so it lags its leader for certain.
    /// Zero (the default) in every real deployment.
    pub follower_apply_lag: Duration,
}

impl OrderConfig {
    /// Defaults for a peer keeping its state in `dir`: the documented `[cluster]` defaults
    /// (`peer::settings`' tests hold them to `PeerConfig::default()`).
    pub fn new(dir: PathBuf) -> OrderConfig {
        OrderConfig {
            dir,
            fsync: true,
            quorum_timeout: Duration::from_secs(2),
            heartbeat: Duration::from_millis(200),
            election_timeout: Duration::from_millis(1000),
            max_batch: 512,
            max_inflight: 1,
            snapshot_logs: 5000,
            log_memory: super::log::DEFAULT_MEMORY_LIMIT,
            key_index: super::state_machine::KeyIndex::Store,
            lease_reads: true,
            batch_linger: Duration::from_millis(1),
            follower_apply_lag: Duration::ZERO,
        }
    }
}

/// Why the queue could not serve a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum QueueError {
    /// No leader with a quorum answered in time.
    #[error("no quorum")]
    NoQuorum,
    /// The asked peer is not the leader (the request was not queued).
    #[error("not the leader")]
    NotLeader,
    /// The request may or may not have been applied.
    #[error("outcome unknown: {0}")]
    Indeterminate(String),
    /// Anything else (storage failure, shutdown).
    #[error("ordered queue failed: {0}")]
    Failed(String),
}

/// This peer's place in the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Orders and replicates.
    Leader,
    /// Follows a leader.
    Follower,
    /// Campaigning.
    Candidate,
    /// Not a voter, or stopped.
    Other,
}

impl Role {
    /// The name shown in `stats cluster` and heartbeats.
    pub fn name(self) -> &'static str {
        match self {
            Role::Leader => "leader",
            Role::Follower => "follower",
            Role::Candidate => "candidate",
            Role::Other => "-",
        }
    }
}

/// Counters for `stats cluster`.
#[derive(Debug, Default)]
pub struct QueueCounters {
    /// Batches this peer submitted (locally or forwarded).
    pub batches: AtomicU64,
    /// Commands of this peer's own clients in those batches (forwarded ones are counted by
    /// the peer that forwarded them).
    pub batched_commands: AtomicU64,
    /// Batches held open for the sources of the last batches ([`OrderConfig::batch_linger`]).
    pub batch_lingers: AtomicU64,
    /// Leadership confirmations for reads.
    pub read_rounds: AtomicU64,
    /// Read indexes the leader answered from its lease, without a confirmation round.
    pub lease_reads: AtomicU64,
    /// Requests answered `no quorum`.
    pub no_quorum: AtomicU64,
    /// Commands applied by this peer's state machine.
    pub applied_commands: Arc<AtomicU64>,
}

/// The ordered request queue of one peer.
pub struct OrderedQueue {
    /// This peer's id.
    me: NodeId,
    /// The Raft node.
    raft: Raft<TypeConfig>,
    /// The peer transport, for forwarded batches and read indexes.
    transport: Arc<Transport>,
    /// The queue's settings.
    config: OrderConfig,
    /// The write batcher's channel.
    writes: mpsc::Sender<PendingWrite>,
    /// The read-index batcher's channel.
    reads: mpsc::Sender<ReadWaiter>,
    /// The log (shared with openraft), for its memory figures.
    log: LogStore,
    /// The leader's read lease, when it holds one.
    lease: parking_lot::Mutex<Option<ReadLease>>,
    /// Counters for `stats cluster`.
    pub counters: QueueCounters,
}

impl OrderedQueue {
    /// Waits until this peer has applied `index`, at most the quorum timeout.
    pub async fn wait_applied(&self, index: u64) -> Result<(), QueueError> {
        let mut metrics = self.raft.metrics();
        let waited = tokio::time::timeout(self.config.quorum_timeout, async {
            loop {
                if metrics.borrow().last_applied.map_or(0, |l| l.index) >= index {
                    return Ok(());
                }
                if metrics.changed().await.is_err() {
                    return Err(QueueError::Failed("raft stopped".into()));
                }
            }
        })
        .await;
        waited.unwrap_or_else(|_| Err(self.no_quorum()))
    }

    /// The last index this peer applied.
    pub fn applied_index(&self) -> u64 {
        self.raft
            .metrics()
            .borrow()
            .last_applied
            .map_or(0, |l| l.index)
    }

    /// This peer's role.
    pub fn role(&self) -> Role {
        match self.raft.metrics().borrow().state {
            ServerState::Leader => Role::Leader,
            ServerState::Follower => Role::Follower,
            ServerState::Candidate => Role::Candidate,
            _ => Role::Other,
        }
    }

    /// The leader this peer knows of.
    pub fn leader(&self) -> Option<NodeId> {
        self.raft.metrics().borrow().current_leader
    }

    /// `(term, last log index, commit-visible applied index)` for status lines.
    pub fn positions(&self) -> (u64, u64, u64) {
        let m = self.raft.metrics().borrow().clone();
        (
            m.current_term,
            m.last_log_index.unwrap_or(0),
            m.last_applied.map_or(0, |l| l.index),
        )
    }

    /// What the log's entries kept in memory weigh, and how many entries it read back from
    /// its file.
    pub fn log_memory(&self) -> (u64, u64) {
        (self.log.memory(), self.log.read_back())
    }

    /// The last log index covered by this peer's current snapshot (0: none yet).
    pub fn snapshot_index(&self) -> u64 {
        self.raft.metrics().borrow().snapshot.map_or(0, |l| l.index)
    }

    /// The configured quorum timeout.
    pub fn quorum_timeout(&self) -> Duration {
        self.config.quorum_timeout
    }

    /// Stops Raft.
    pub async fn shutdown(&self) {
        let _ = self.raft.shutdown().await;
    }

    /// Serves one `PeerRequest::Order` payload from `from`.
    pub async fn on_peer_request(&self, from: NodeId, payload: &[u8]) -> PeerResponse {
        let request: OrderRequest = match postcard::from_bytes(payload) {
            Ok(request) => request,
            Err(err) => return PeerResponse::Error(format!("undecodable queue request: {err}")),
        };
        let response = match request {
            OrderRequest::AppendEntries(rpc) => {
                OrderResponse::AppendEntries(self.raft.append_entries(rpc).await)
            }
            OrderRequest::Vote(rpc) => OrderResponse::Vote(self.raft.vote(rpc).await),
            OrderRequest::InstallSnapshot(rpc) => {
                OrderResponse::InstallSnapshot(self.raft.install_snapshot(rpc).await)
            }
            OrderRequest::Write(batch) => {
                OrderResponse::Write(self.write_forwarded(from, batch).await)
            }
            OrderRequest::ReadIndex => OrderResponse::ReadIndex(
                tokio::time::timeout(self.config.quorum_timeout, self.read_index_here())
                    .await
                    .unwrap_or(Err(QueueError::NoQuorum)),
            ),
        };
        PeerResponse::Order(encode(&response))
    }

    /// Counts a `no quorum` answer and returns it.
    fn no_quorum(&self) -> QueueError {
        self.counters.no_quorum.fetch_add(1, Ordering::Relaxed);
        QueueError::NoQuorum
    }

    /// A known leader (waits for one; the caller bounds the wait).
    async fn leader_now(&self) -> Result<NodeId, QueueError> {
        let mut metrics = self.raft.metrics();
        loop {
            if let Some(leader) = metrics.borrow().current_leader {
                return Ok(leader);
            }
            if metrics.changed().await.is_err() {
                return Err(QueueError::Failed("raft stopped".into()));
            }
        }
    }

    /// Lets a leader change settle before trying again.
    async fn pause(&self) {
        tokio::time::sleep(self.config.heartbeat.min(Duration::from_millis(50))).await;
    }
}
