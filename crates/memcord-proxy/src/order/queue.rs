//! [`OrderedQueue`]: what the ordered modes see of Raft — submit a command and get its outcome
//! once applied, get a linearizable read index, wait until this peer has applied an index.
//!
//! **Batching.** Commands wait in a channel; a batcher takes everything queued (up to
//! `max_batch`) into one log entry as soon as one of `max_inflight` slots is free, so the
//! more clients write at once, the more commands ride each entry and each replication round.
//! Followers batch the same way and forward whole batches to the leader, whose batcher merges
//! them with its own clients' commands and with other followers' batches: one log entry (one
//! fsync on each peer, one replication round) carries the whole cluster's concurrent writes.
//! Read-index requests are coalesced likewise: one leadership confirmation serves every read
//! queued behind it.
//!
//! **Lease reads.** A leader whose leadership a quorum confirmed (a read-index round that
//! started at `t`) stays the only leader until `t + lease`: openraft's followers refuse every
//! vote until the leader's lease (the maximum election timeout) has passed since they last
//! heard from it, and a restarted peer starts Raft only after that long (see
//! [`OrderedQueue::start`]). Within 3/4 of that window (the rest absorbs clock-rate drift),
//! the leader answers a read index from its own commit index, without a network round;
//! past it, the next read renews the lease with a confirmation round. Configurable
//! (`lease_reads`), on by default, as in etcd and TiKV.
//!
//! **Retries** only where a batch is known not to be in the log: the leader refused it
//! (`ForwardToLeader`, which openraft also gives for entries it truncated), or there was no
//! link to send it over. A forwarded batch whose answer is lost is reported as indeterminate,
//! never re-sent: it may be applied, and `incr` twice is not `incr` once.
//!
//! **Bootstrap.** A peer whose data directory holds nothing initializes the cluster with every
//! configured peer. openraft allows several nodes to initialize with the same membership
//! (the first entry is the same everywhere), so no peer has to wait for a designated one.

use super::log_store::LogStore;
use super::network::{call, encode, NetworkFactory, OrderRequest, OrderResponse};
use super::state_machine::StateMachine;
use super::{Batch, BatchReply, NodeId, TypeConfig};
use crate::cluster::{CallError, PeerResponse, Transport};
use crate::gather::gather;
use crate::replicated::{Command, Outcome};
use crate::store::{Store, StoreResult};
use openraft::error::{CheckIsLeaderError, ClientWriteError, RaftError};
use openraft::{BasicNode, Raft, ServerState, SnapshotPolicy};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::time::Instant;

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
    /// Whether the leader answers read indexes from its lease (see the module docs).
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
    /// Defaults for a peer keeping its state in `dir`.
    pub fn new(dir: PathBuf) -> OrderConfig {
        OrderConfig {
            dir,
            fsync: true,
            quorum_timeout: Duration::from_secs(2),
            heartbeat: Duration::from_millis(100),
            election_timeout: Duration::from_millis(500),
            max_batch: 512,
            max_inflight: 1,
            snapshot_logs: 5000,
            log_memory: super::log_store::DEFAULT_MEMORY_LIMIT,
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

/// Could not start the queue.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The data directory could not be read or written.
    #[error("data directory {dir}: {source}")]
    DataDir {
        /// Which.
        dir: String,
        /// Why.
        source: std::io::Error,
    },
    /// openraft refused to start.
    #[error("raft: {0}")]
    Raft(String),
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

/// Most times the batcher lets other tasks run, taking what they queue, before it sends a
/// batch: clients (and forwarded batches) woken by the same poll join one log entry.
const GATHER_ROUNDS: usize = 4;

type WriteResult = Result<(u64, StoreResult<Outcome>), QueueError>;

struct PendingWrite {
    command: Command,
    reply: oneshot::Sender<WriteResult>,
    /// The follower that sent it here (`None`: this peer's own client). A forwarded command
    /// is appended only while this peer leads, never forwarded again (the follower retries
    /// it elsewhere on `NotLeader`).
    origin: Option<NodeId>,
}

impl PendingWrite {
    fn forwarded(&self) -> bool {
        self.origin.is_some()
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
    me: NodeId,
    raft: Raft<TypeConfig>,
    transport: Arc<Transport>,
    config: OrderConfig,
    writes: mpsc::Sender<PendingWrite>,
    reads: mpsc::Sender<oneshot::Sender<Result<u64, QueueError>>>,
    /// The log (shared with openraft), for its memory figures.
    log: LogStore,
    /// The leader's read lease, when it holds one.
    lease: parking_lot::Mutex<Option<ReadLease>>,
    /// Counters for `stats cluster`.
    pub counters: QueueCounters,
}

/// A leadership confirmed by a quorum: no other leader can exist before `until`.
#[derive(Debug, Clone, Copy)]
struct ReadLease {
    /// The term the confirmation was asked in.
    term: u64,
    /// The confirmation round's start plus 3/4 of the election timeout.
    until: Instant,
    /// The read index that round returned (at least the first entry of the term).
    index: u64,
}

impl OrderedQueue {
    /// Opens the log in `config.dir`, rebuilds `store` from its snapshot, starts Raft with
    /// `members` (every configured peer) and initializes the cluster if this peer is new.
    /// The caller routes `PeerRequest::Order` payloads to [`OrderedQueue::on_peer_request`].
    pub async fn start<S: Store>(
        me: NodeId,
        members: BTreeMap<NodeId, BasicNode>,
        store: Arc<S>,
        transport: Arc<Transport>,
        config: OrderConfig,
    ) -> Result<Arc<OrderedQueue>, StartError> {
        let data_dir = |source| StartError::DataDir {
            dir: config.dir.display().to_string(),
            source,
        };
        let log = LogStore::open(&config.dir, config.fsync, config.log_memory).map_err(data_dir)?;
        let pristine = log.is_pristine();
        if !pristine && config.lease_reads {
            // Before it crashed this peer may have confirmed a leader that now serves reads
            // from its lease; openraft forgets when it last heard from that leader, so this
            // peer keeps out of elections (and everything else) for one lease.
            tracing::info!(
                wait = ?config.election_timeout,
                "restarted peer: waiting out a leader lease before joining the queue"
            );
            tokio::time::sleep(config.election_timeout).await;
        }
        let counters = QueueCounters::default();
        let mut sm = StateMachine::open(
            store,
            config.key_index,
            &config.dir,
            counters.applied_commands.clone(),
        )
        .await
        .map_err(|e| StartError::Raft(e.to_string()))?;
        sm.report_applied_to(log.applied_marker());
        let leading = Arc::new(AtomicBool::new(false));
        if !config.follower_apply_lag.is_zero() {
            tracing::error!(
                lag = ?config.follower_apply_lag,
                "test-only: followers apply late on purpose"
            );
            sm.lag_when_following(config.follower_apply_lag, leading.clone());
        }
        // openraft 0.9 lets a follower campaign only after its leader's lease (the maximum
        // election timeout) *plus* a randomized election timeout have passed without word
        // from it, so a fail-over takes lease + timeout. With [T/2, T] for the election
        // timeout (T = failure_timeout_ms) a dead leader is replaced within 1.5–2 T.
        let election = config.election_timeout.as_millis().max(10) as u64;
        let raft_config = openraft::Config {
            cluster_name: "memcord".into(),
            heartbeat_interval: (config.heartbeat.as_millis() as u64).clamp(5, election / 6),
            election_timeout_min: election / 2,
            election_timeout_max: election,
            install_snapshot_timeout: 5000,
            snapshot_policy: if config.snapshot_logs > 0 {
                SnapshotPolicy::LogsSinceLast(config.snapshot_logs)
            } else {
                SnapshotPolicy::Never
            },
            max_in_snapshot_log_to_keep: config.snapshot_logs.min(1000),
            max_payload_entries: 256,
            ..Default::default()
        }
        .validate()
        .map_err(|e| StartError::Raft(e.to_string()))?;
        let network = NetworkFactory {
            transport: transport.clone(),
        };
        let log_handle = log.clone();
        let raft = Raft::new(me, Arc::new(raft_config), network, log, sm)
            .await
            .map_err(|e| StartError::Raft(e.to_string()))?;
        if pristine {
            tracing::info!(
                ?members,
                "new peer: initializing the ordered queue's membership"
            );
            if let Err(err) = raft.initialize(members).await {
                tracing::debug!(%err, "initialize refused (already initialized)");
            }
        }
        let (writes, write_rx) = mpsc::channel(16 * 1024);
        let (reads, read_rx) = mpsc::channel(16 * 1024);
        let queue = Arc::new(OrderedQueue {
            me,
            raft,
            transport,
            config,
            writes,
            reads,
            log: log_handle,
            lease: parking_lot::Mutex::new(None),
            counters,
        });
        if !queue.config.follower_apply_lag.is_zero() {
            tokio::spawn(track_leadership(queue.raft.metrics(), me, leading));
        }
        tokio::spawn(queue.clone().batch_writes(write_rx));
        tokio::spawn(queue.clone().batch_reads(read_rx));
        Ok(queue)
    }

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

    fn no_quorum(&self) -> QueueError {
        self.counters.no_quorum.fetch_add(1, Ordering::Relaxed);
        QueueError::NoQuorum
    }

    async fn batch_writes(self: Arc<Self>, mut rx: mpsc::Receiver<PendingWrite>) {
        let slots = Arc::new(Semaphore::new(self.config.max_inflight.max(1)));
        let mut sources = RecentSources::default();
        while let Some(first) = rx.recv().await {
            let Ok(permit) = slots.clone().acquire_owned().await else {
                return;
            };
            let mut batch: Vec<PendingWrite> = vec![first];
            let max_batch = self.config.max_batch;
            gather(&mut rx, GATHER_ROUNDS, |more| {
                batch.push(more);
                batch.len() < max_batch
            })
            .await;
            if !self.config.batch_linger.is_zero() {
                if let Some(expected) = sources.expected() {
                    let linger_for = self.config.batch_linger;
                    if linger(&mut rx, &mut batch, &expected, max_batch, linger_for).await {
                        self.counters.batch_lingers.fetch_add(1, Ordering::Relaxed);
                    }
                }
                sources.saw(&batch);
            }
            let this = self.clone();
            tokio::spawn(async move {
                this.counters.batches.fetch_add(1, Ordering::Relaxed);
                let own = batch.iter().filter(|p| !p.forwarded()).count();
                this.counters
                    .batched_commands
                    .fetch_add(own as u64, Ordering::Relaxed);
                let timed_out =
                    tokio::time::timeout(this.config.quorum_timeout, this.write_batch(&mut batch))
                        .await
                        .is_err();
                drop(permit);
                if timed_out {
                    answer_all(&mut batch, this.no_quorum());
                }
            });
        }
    }

    async fn batch_reads(
        self: Arc<Self>,
        mut rx: mpsc::Receiver<oneshot::Sender<Result<u64, QueueError>>>,
    ) {
        let slots = Arc::new(Semaphore::new(2));
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
                let commands = Batch {
                    commands: batch.iter().map(|p| p.command.clone()).collect(),
                };
                match self.write_here(commands).await {
                    Ok((index, reply)) => {
                        for (pending, outcome) in batch.drain(..).zip(reply.outcomes) {
                            let _ = pending.reply.send(Ok((index, outcome)));
                        }
                    }
                    Err(QueueError::NotLeader) => {
                        // Not queued: followers' commands go back to their peers, which
                        // find the new leader; this peer's own commands try again here.
                        reject_forwarded(batch);
                        self.pause().await;
                    }
                    Err(err) => answer_all(batch, err),
                }
                continue;
            }
            reject_forwarded(batch);
            if batch.is_empty() {
                return;
            }
            let request = OrderRequest::Write(Batch {
                commands: batch.iter().map(|p| p.command.clone()).collect(),
            });
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
    }

    /// Queues a follower's batch behind this leader's own writes and waits for every
    /// command's result; a peer that does not lead answers `NotLeader` for all at once.
    async fn write_forwarded(&self, from: NodeId, batch: Batch) -> Vec<WriteResult> {
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

    async fn read_index_here(&self) -> Result<u64, QueueError> {
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
}

/// Where the last two batches' commands came from (this peer's clients as `None`, the
/// followers that forwarded some) and how many there were.
///
/// With one batch in flight, a follower's forwarded commands, answered when a batch is
/// applied, come back only after the next batch has left with this peer's own clients'
/// commands: the clients split into two waves, each paying for a whole replication round
/// (three fsyncs, the AppendEntries, the applies). Waiting briefly for the sources of the
/// last two batches merges the waves into one entry.
#[derive(Default)]
struct RecentSources {
    /// (sources, commands) of the last batch and of the one before.
    last: (Vec<Option<NodeId>>, usize),
    before: (Vec<Option<NodeId>>, usize),
}

/// Fewest commands in the last two batches for the next one to wait for their sources: a
/// lightly loaded queue answers at once (a single client that moves between peers would
/// otherwise wait out every linger).
const LINGER_MIN_COMMANDS: usize = 8;

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

/// Answers every command of `batch` with `err`.
fn answer_all(batch: &mut Vec<PendingWrite>, err: QueueError) {
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

/// Keeps `leading` equal to whether `me` leads, for the test-only follower apply lag.
async fn track_leadership(
    mut metrics: tokio::sync::watch::Receiver<openraft::RaftMetrics<NodeId, BasicNode>>,
    me: NodeId,
    leading: Arc<AtomicBool>,
) {
    loop {
        let leader = metrics.borrow().current_leader == Some(me);
        leading.store(leader, Ordering::Relaxed);
        if metrics.changed().await.is_err() {
            return;
        }
    }
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
