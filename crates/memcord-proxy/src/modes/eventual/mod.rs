//! The eventual mode: the coordinator applies locally and answers at once; replicas converge
//! by last-writer-wins on hybrid-clock versions.
//!
//! ```text
//! client ─▶ Eventual::handle ─▶ stripe lock(key) ─▶ apply(store) ─▶ log.record(key, version)
//!                                                                 └▶ push to live peers (best effort)
//! every sync_interval: for each live peer: SyncSince(my mark for it) ─▶ pages ─▶ merge (LWW)
//! ```
//! Per-key stripe locks make "compare the held version, then write" atomic against local
//! writes, so a late remote entry can never overwrite a newer local one (or resurrect a key
//! deleted in between).

mod dynamo;
mod handoff;
mod hints;
mod levels;
mod log;
mod read;
mod replica;
mod serve;
mod service;
mod sync;

pub use dynamo::{DynamoError, LEVEL_NOT_MET};
pub use hints::HintLimits;
pub use log::{KeyVersion, LogPage, ReplicationLog};

use crate::clock::{HybridClock, Timestamp};
use crate::cluster::{LogEntry, PeerId, Transport};
use crate::cluster::{Ring, RingSpec};
use crate::protocol::Level;
use crate::store::Store;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Settings of the eventual mode.
#[derive(Debug, Clone)]
pub struct EventualConfig {
    /// Period of the anti-entropy sync with every live peer.
    pub sync_interval: Duration,
    /// How long a delete's tombstone is kept (a peer away longer resynchronises from scratch).
    pub tombstone_ttl: Duration,
    /// Entries per sync page.
    pub page_size: usize,
    /// Bound on one sync request.
    pub call_timeout: Duration,
    /// How long a starting peer looks for a serving peer to copy from before serving alone.
    pub join_window: Duration,
    /// Whether each mutation is pushed to live peers right away.
    pub push: bool,
    /// Whether clients may send `fail` / `recover`.
    pub admin_commands: bool,
    /// Replicas per key on the ring; `None` = every peer (full replication).
    pub replication: Option<u32>,
    /// Points per peer on the ring.
    pub vnodes: u32,
    /// Default level of reads.
    pub read_level: Level,
    /// Default level of writes.
    pub write_level: Level,
    /// Longest a read or write waits for its level before `SERVER_ERROR`.
    pub level_timeout: Duration,
    /// Where hinted writes are kept (`None`: in memory only).
    pub hints_dir: Option<std::path::PathBuf>,
    /// Bounds of the hint store.
    pub hint_limits: HintLimits,
}

/// The documented `[cluster]` defaults (`peer::settings`' tests hold them to
/// `PeerConfig::default()`); `join_window` is twice the failure timeout.
impl Default for EventualConfig {
    fn default() -> Self {
        EventualConfig {
            sync_interval: Duration::from_millis(500),
            tombstone_ttl: Duration::from_secs(3600),
            page_size: 1000,
            call_timeout: Duration::from_secs(5),
            join_window: Duration::from_secs(2),
            push: true,
            admin_commands: true,
            replication: None,
            vnodes: 128,
            read_level: Level::One,
            write_level: Level::One,
            level_timeout: Duration::from_secs(2),
            hints_dir: None,
            hint_limits: HintLimits {
                max_per_peer: 100_000,
                max_bytes: 64 * 1024 * 1024,
            },
        }
    }
}

/// Whether a peer serves clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum PeerState {
    /// Copying state from a live peer; clients get `SERVER_ERROR catching up`.
    CatchingUp = 0,
    /// Serving.
    Serving = 1,
    /// Fault simulation on; clients get `SERVER_ERROR peer failed`.
    Failed = 2,
}

impl PeerState {
    fn from_u8(v: u8) -> PeerState {
        match v {
            1 => PeerState::Serving,
            2 => PeerState::Failed,
            _ => PeerState::CatchingUp,
        }
    }

    /// The state's name in `stats cluster`.
    pub fn name(self) -> &'static str {
        match self {
            PeerState::CatchingUp => "catching_up",
            PeerState::Serving => "serving",
            PeerState::Failed => "failed",
        }
    }
}

#[derive(Debug, Default)]
struct Counters {
    pushes_sent: AtomicU64,
    pushes_dropped: AtomicU64,
    entries_applied: AtomicU64,
    entries_stale: AtomicU64,
    syncs_completed: AtomicU64,
    pushes_refused: AtomicU64,
    forwarded: AtomicU64,
    level_failures: AtomicU64,
    read_repairs: AtomicU64,
    hints_stored: AtomicU64,
    hints_dropped: AtomicU64,
    hints_replayed: AtomicU64,
    keys_moved_out: AtomicU64,
}

#[derive(Debug, Clone, Copy)]
struct Watermark {
    mark: Timestamp,
    synced_at: Instant,
}

const STRIPES: usize = 256;
/// Push messages queued for merging before further pushes are dropped.
const PUSH_QUEUE: usize = 8192;

/// Merges pushed entries in arrival order until the coordinator is gone.
async fn merge_pushes<S: Store>(
    shared: std::sync::Weak<Shared<S>>,
    mut pushed: tokio::sync::mpsc::Receiver<Vec<LogEntry>>,
) {
    while let Some(entries) = pushed.recv().await {
        let Some(shared) = shared.upgrade() else {
            return;
        };
        for entry in entries {
            if let Err(err) = shared.merge(entry).await {
                tracing::warn!(%err, "could not apply a pushed entry (the next sync retries)");
            }
        }
    }
}

/// The state shared by the coordinator, the transport callbacks and the background tasks, in
/// parts named for what they hold.
pub(crate) struct Shared<S: Store> {
    me: std::sync::Weak<Shared<S>>,
    config: EventualConfig,
    transport: Arc<Transport>,
    /// This peer's copy of the data: the store, its clock, its replication log, key locks.
    replica: Replica<S>,
    /// Which peers hold which keys.
    placement: Placement,
    /// Whether this peer serves, and what it last reported.
    status: Status,
    /// Per peer: how far this peer has synced from it.
    watermarks: Mutex<HashMap<PeerId, Watermark>>,
    /// What waits to go to other peers: pushed entries for merging, hinted writes.
    outbox: Outbox,
    counters: Counters,
}

/// This peer's copy of the data.
struct Replica<S: Store> {
    store: Arc<S>,
    clock: Arc<HybridClock>,
    log: ReplicationLog,
    /// Per-key locks (by hash) making "compare the held version, then write" atomic.
    stripes: Vec<tokio::sync::Mutex<()>>,
    hasher: std::collections::hash_map::RandomState,
}

/// Which peers hold which keys.
struct Placement {
    /// The ring this peer serves by.
    ring: Arc<Ring>,
    /// The ring of the last peer that asked for its ranges (built once per spec).
    asker_ring: Mutex<Option<Arc<Ring>>>,
}

/// Whether this peer serves.
struct Status {
    /// A [`PeerState`] as a byte.
    state: AtomicU8,
    /// When fault simulation started (for `stats cluster`).
    failed_at: Mutex<Option<Instant>>,
    /// Items held, as last counted for the heartbeat report.
    items: AtomicU64,
}

/// What waits to go to other peers.
struct Outbox {
    /// Entries pushed to this peer, queued for merging in arrival order.
    pushed: tokio::sync::mpsc::Sender<Vec<LogEntry>>,
    /// Writes other replicas missed, kept for them.
    hints: hints::Hints,
}

/// The eventual-mode coordinator of one peer.
pub struct Eventual<S: Store> {
    shared: Arc<Shared<S>>,
}

impl<S: Store> Eventual<S> {
    /// Builds the coordinator, registers it with the transport (started on `listener`) and
    /// starts catching up and the periodic sync.
    pub fn start(
        store: Arc<S>,
        clock: Arc<HybridClock>,
        transport: Arc<Transport>,
        listener: tokio::net::TcpListener,
        config: EventualConfig,
    ) -> Self {
        let (push_tx, push_rx) = tokio::sync::mpsc::channel(PUSH_QUEUE);
        let mut peers: Vec<PeerId> = transport
            .membership()
            .statuses()
            .iter()
            .map(|s| s.id)
            .collect();
        peers.push(transport.me());
        let ring = Arc::new(Ring::new(&RingSpec {
            replication: config.replication.unwrap_or(peers.len() as u32),
            peers,
            vnodes: config.vnodes,
        }));
        let hints = hints::Hints::open(config.hints_dir.clone(), config.hint_limits.clone());
        let shared = Arc::new_cyclic(|me| Shared {
            me: me.clone(),
            config,
            transport: transport.clone(),
            replica: Replica {
                store,
                clock: clock.clone(),
                log: ReplicationLog::new(clock),
                stripes: (0..STRIPES).map(|_| tokio::sync::Mutex::new(())).collect(),
                hasher: Default::default(),
            },
            placement: Placement {
                ring,
                asker_ring: Mutex::new(None),
            },
            status: Status {
                state: AtomicU8::new(PeerState::CatchingUp as u8),
                failed_at: Mutex::new(None),
                items: AtomicU64::new(0),
            },
            watermarks: Mutex::new(HashMap::new()),
            outbox: Outbox {
                pushed: push_tx,
                hints,
            },
            counters: Counters::default(),
        });
        tokio::spawn(merge_pushes(Arc::downgrade(&shared), push_rx));
        tokio::spawn(handoff::hand_off(Arc::downgrade(&shared)));
        transport.start(listener, shared.clone());
        tokio::spawn(sync::catch_up(shared.clone(), true));
        tokio::spawn(sync::periodic(shared.clone()));
        Eventual { shared }
    }

    /// The peer's current state.
    pub fn state(&self) -> PeerState {
        self.shared.state()
    }

    /// The replication log (for tests and status).
    pub fn log(&self) -> &ReplicationLog {
        &self.shared.replica.log
    }

    /// The ring this peer serves by.
    pub fn ring(&self) -> &Ring {
        &self.shared.placement.ring
    }
}

impl<S: Store> Shared<S> {
    fn self_arc(&self) -> Arc<Self> {
        self.me
            .upgrade()
            .expect("the coordinator outlives its callbacks")
    }

    fn state(&self) -> PeerState {
        PeerState::from_u8(self.status.state.load(Ordering::SeqCst))
    }

    fn set_state(&self, state: PeerState) {
        self.status.state.store(state as u8, Ordering::SeqCst);
    }

    fn stripe(&self, key: &[u8]) -> &tokio::sync::Mutex<()> {
        &self.replica.stripes[self.replica.hasher.hash_one(key) as usize % STRIPES]
    }
}
