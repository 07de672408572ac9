//! Starting the queue: the log, the state machine, Raft, the membership of a new cluster, and
//! the batchers, in that order.
//!
//! **Bootstrap.** A peer whose data directory holds nothing initializes the cluster with
//! every configured peer. openraft allows several nodes to initialize with the same
//! membership (the first entry is the same everywhere), so no peer has to wait for a
//! designated one; a peer with state never initializes again.
//!
//! **A restarted peer waits out a lease.** Before it stopped it may have confirmed a leader
//! that now serves reads from its lease (see [`super::read_index`]); openraft forgets when it
//! last heard from that leader, so the peer keeps out of elections (and everything else) for
//! one lease before it starts Raft.
//!
//! **Elections.** openraft 0.9 lets a follower campaign only after its leader's lease (the
//! maximum election timeout) *plus* a randomized election timeout have passed without word
//! from it, so a fail-over takes lease + timeout. With [T/2, T] for the election timeout
//! (T = `election_timeout`) a dead leader is replaced within 1.5–2 T.

use super::super::log::LogStore;
use super::super::network::NetworkFactory;
use super::super::state_machine::StateMachine;
use super::super::{NodeId, TypeConfig};
use super::{OrderConfig, OrderedQueue, QueueCounters};
use crate::cluster::Transport;
use crate::store::Store;
use openraft::{BasicNode, Raft, SnapshotPolicy};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;

/// How many writes, and how many read-index requests, may wait for the batchers.
const CHANNEL_DEPTH: usize = 16 * 1024;

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

impl StartError {
    /// openraft's refusal, as a start error.
    fn raft(err: impl std::fmt::Display) -> StartError {
        StartError::Raft(err.to_string())
    }
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
        let log =
            LogStore::open(&config.dir, config.fsync, config.log_memory).map_err(|source| {
                StartError::DataDir {
                    dir: config.dir.display().to_string(),
                    source,
                }
            })?;
        let pristine = log.is_pristine();
        if !pristine && config.lease_reads {
            wait_out_lease(&config).await;
        }
        let counters = QueueCounters::default();
        let leading = Arc::new(AtomicBool::new(false));
        let state_machine = open_state_machine(store, &config, &counters, &log, &leading).await?;
        let raft = Raft::new(
            me,
            Arc::new(raft_config(&config)?),
            NetworkFactory {
                transport: transport.clone(),
            },
            log.clone(),
            state_machine,
        )
        .await
        .map_err(StartError::raft)?;
        if pristine {
            initialize(&raft, members).await;
        }
        let (writes, write_rx) = mpsc::channel(CHANNEL_DEPTH);
        let (reads, read_rx) = mpsc::channel(CHANNEL_DEPTH);
        let queue = Arc::new(OrderedQueue {
            me,
            raft,
            transport,
            config,
            writes,
            reads,
            log,
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
}

/// Keeps a restarted peer out of the queue for one leader lease (see the module docs).
async fn wait_out_lease(config: &OrderConfig) {
    tracing::info!(
        wait = ?config.election_timeout,
        "restarted peer: waiting out a leader lease before joining the queue"
    );
    tokio::time::sleep(config.election_timeout).await;
}

/// The state machine over `store`, rebuilt from its snapshot, reporting what it applied to
/// `log` (and, with the test-only apply lag, lagging while `leading` is false).
async fn open_state_machine<S: Store>(
    store: Arc<S>,
    config: &OrderConfig,
    counters: &QueueCounters,
    log: &LogStore,
    leading: &Arc<AtomicBool>,
) -> Result<StateMachine<S>, StartError> {
    let mut state_machine = StateMachine::open(
        store,
        config.key_index,
        &config.dir,
        counters.applied_commands.clone(),
    )
    .await
    .map_err(StartError::raft)?;
    state_machine.report_applied_to(log.applied_marker());
    if !config.follower_apply_lag.is_zero() {
        tracing::error!(
            lag = ?config.follower_apply_lag,
            "test-only: followers apply late on purpose"
        );
        state_machine.lag_when_following(config.follower_apply_lag, leading.clone());
    }
    Ok(state_machine)
}

/// openraft's settings from the queue's: timeouts (see the module docs), snapshots.
fn raft_config(config: &OrderConfig) -> Result<openraft::Config, StartError> {
    let election = config.election_timeout.as_millis().max(10) as u64;
    openraft::Config {
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
    .map_err(StartError::raft)
}

/// Initializes a new cluster with `members` (see the module docs); a refusal means another
/// peer already did.
async fn initialize(raft: &Raft<TypeConfig>, members: BTreeMap<NodeId, BasicNode>) {
    tracing::info!(
        ?members,
        "new peer: initializing the ordered queue's membership"
    );
    if let Err(err) = raft.initialize(members).await {
        tracing::debug!(%err, "initialize refused (already initialized)");
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
