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
mod hints;
mod log;
mod sync;

pub use dynamo::{DynamoError, LEVEL_NOT_MET};
pub use hints::HintLimits;
pub use log::{KeyVersion, LogPage, ReplicationLog};

use super::translate::{
    command_for, escalated_response, meta_read, response_for, values_reply, MetaRead, ReadOrWrite,
};
use super::{Coordinator, Session};
use crate::clock::{unix_ms, HybridClock, Timestamp};
use crate::cluster::{
    EntryState, LogEntry, PeerId, PeerMessage, PeerReport, PeerRequest, PeerResponse, PeerService,
    ResponseFuture, Transport,
};
use crate::cluster::{Ring, RingSpec};
use crate::protocol::{Level, Request, Response};
use crate::replicated::{apply, Command, MetaOutcome, Outcome, WriteRule};
use crate::store::{Item, Store, StoreOutcome, StoreResult};
use bytes::Bytes;
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

impl Default for EventualConfig {
    fn default() -> Self {
        EventualConfig {
            sync_interval: Duration::from_millis(1000),
            tombstone_ttl: Duration::from_secs(3600),
            page_size: 1000,
            call_timeout: Duration::from_secs(5),
            join_window: Duration::from_secs(3),
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

/// The state shared by the coordinator, the transport callbacks and the background tasks.
pub(crate) struct Shared<S: Store> {
    me: std::sync::Weak<Shared<S>>,
    store: Arc<S>,
    clock: Arc<HybridClock>,
    log: ReplicationLog,
    transport: Arc<Transport>,
    config: EventualConfig,
    state: AtomicU8,
    stripes: Vec<tokio::sync::Mutex<()>>,
    hasher: std::collections::hash_map::RandomState,
    watermarks: Mutex<HashMap<PeerId, Watermark>>,
    failed_at: Mutex<Option<Instant>>,
    items: AtomicU64,
    counters: Counters,
    pushed: tokio::sync::mpsc::Sender<Vec<LogEntry>>,
    /// The ring this peer serves by.
    ring: Arc<Ring>,
    /// The ring of the last peer that asked for its ranges (built once per spec).
    asker_ring: Mutex<Option<Arc<Ring>>>,
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
            store,
            clock: clock.clone(),
            log: ReplicationLog::new(clock),
            transport: transport.clone(),
            config,
            state: AtomicU8::new(PeerState::CatchingUp as u8),
            stripes: (0..STRIPES).map(|_| tokio::sync::Mutex::new(())).collect(),
            hasher: Default::default(),
            watermarks: Mutex::new(HashMap::new()),
            failed_at: Mutex::new(None),
            items: AtomicU64::new(0),
            counters: Counters::default(),
            pushed: push_tx,
            ring,
            asker_ring: Mutex::new(None),
            hints,
        });
        tokio::spawn(merge_pushes(Arc::downgrade(&shared), push_rx));
        tokio::spawn(dynamo::hand_off(Arc::downgrade(&shared)));
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
        &self.shared.log
    }

    /// The ring this peer serves by.
    pub fn ring(&self) -> &Ring {
        &self.shared.ring
    }
}

impl<S: Store> Shared<S> {
    fn self_arc(&self) -> Arc<Self> {
        self.me
            .upgrade()
            .expect("the coordinator outlives its callbacks")
    }

    fn state(&self) -> PeerState {
        PeerState::from_u8(self.state.load(Ordering::SeqCst))
    }

    fn set_state(&self, state: PeerState) {
        self.state.store(state as u8, Ordering::SeqCst);
    }

    fn stripe(&self, key: &[u8]) -> &tokio::sync::Mutex<()> {
        &self.stripes[self.hasher.hash_one(key) as usize % STRIPES]
    }

    /// Applies one local write under its key's stripe and logs the resulting state; returns
    /// the outcome and the entry to replicate (none when nothing changed).
    async fn write_one(
        &self,
        key: Bytes,
        command: Command,
    ) -> StoreResult<(Outcome, Option<LogEntry>)> {
        let _guard = self.stripe(&key).lock().await;
        let version = command.version().unwrap_or_else(|| self.clock.now());
        let known = match &command {
            Command::Write {
                rule: WriteRule::Set,
                value,
                flags,
                expires_at,
                ..
            } => Some(Item::new(value.clone(), *flags, *expires_at, version)),
            _ => None,
        };
        let outcome = apply(self.store.as_ref(), command).await?;
        let state = match &outcome {
            Outcome::Write(StoreOutcome::Stored) => match known {
                Some(item) if !item.expires_at.is_expired(crate::clock::unix_secs()) => {
                    Some(EntryState::Item(item))
                }
                _ => Some(self.current_state(&key, version).await?),
            },
            Outcome::Delete(_) => Some(EntryState::Tombstone(version)),
            Outcome::Arith(crate::store::ArithOutcome::Value(_)) | Outcome::Touch(true) => {
                Some(self.current_state(&key, version).await?)
            }
            Outcome::Items(items) if items.iter().any(Option::is_some) => {
                Some(self.current_state(&key, version).await?)
            }
            Outcome::Meta(meta) if meta_changed(meta, version) => {
                Some(self.current_state(&key, version).await?)
            }
            _ => None,
        };
        let entry = state.map(|state| {
            let tombstone = matches!(state, EntryState::Tombstone(_));
            self.log.record(key.clone(), state.version(), tombstone);
            LogEntry::Key { key, state }
        });
        Ok((outcome, entry))
    }

    /// The key's state in the store right after a local write at `version`.
    async fn current_state(&self, key: &Bytes, version: Timestamp) -> StoreResult<EntryState> {
        let mut items = self.store.peek_items(std::slice::from_ref(key)).await?;
        Ok(match items.pop().flatten() {
            Some(item) => EntryState::Item(item),
            None => EntryState::Tombstone(version),
        })
    }

    /// Pushes a flush to every live peer (flushes are not partitioned).
    fn push(&self, entry: LogEntry) {
        if !self.config.push {
            return;
        }
        let membership = self.transport.membership();
        for peer in membership.up_peers() {
            let sent = self
                .transport
                .try_send(peer, PeerMessage::Push(vec![entry.clone()]));
            let counter = if sent {
                &self.counters.pushes_sent
            } else {
                &self.counters.pushes_dropped
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Applies a replicated entry if it is newer than what this peer holds (last writer wins).
    pub(crate) async fn merge(&self, entry: LogEntry) -> StoreResult<bool> {
        match entry {
            LogEntry::Flush { cutoff } => {
                self.clock.observe(cutoff);
                if self.log.record_flush(cutoff) {
                    self.store.flush_all(cutoff).await?;
                    return Ok(true);
                }
                Ok(false)
            }
            LogEntry::Key { key, state } => {
                let version = state.version();
                self.clock.observe(version);
                let _guard = self.stripe(&key).lock().await;
                let held = self.log.get(&key).map(|e| e.version);
                let flushed = self
                    .log
                    .flush_cutoff()
                    .is_some_and(|c| version <= c && unix_ms() >= c.physical_ms());
                if held.is_some_and(|h| h >= version) || flushed {
                    self.counters.entries_stale.fetch_add(1, Ordering::Relaxed);
                    return Ok(false);
                }
                let tombstone = match state {
                    EntryState::Item(item) => {
                        self.store.set(key.clone(), item).await?;
                        false
                    }
                    EntryState::Tombstone(version) => {
                        self.store.delete(key.clone(), version).await?;
                        true
                    }
                };
                self.log.record(key, version, tombstone);
                self.counters
                    .entries_applied
                    .fetch_add(1, Ordering::Relaxed);
                Ok(true)
            }
        }
    }

    /// The ring a peer asked by (cached: every peer of one cluster sends the same spec).
    fn ring_for(&self, spec: &RingSpec) -> Arc<Ring> {
        if spec == self.ring.spec() {
            return self.ring.clone();
        }
        let mut cached = self.asker_ring.lock();
        if let Some(ring) = cached.as_ref().filter(|r| r.spec() == spec) {
            return ring.clone();
        }
        let ring = Arc::new(Ring::new(spec));
        *cached = Some(ring.clone());
        ring
    }

    /// Builds one sync page for a peer that asks for what was logged after `since`; with
    /// `only` (the asker and its ring), just the keys the asker holds.
    async fn sync_page(
        &self,
        since: Timestamp,
        max_entries: usize,
        only: Option<(PeerId, Arc<Ring>)>,
    ) -> PeerResponse {
        let mut page = self.log.page(since, max_entries.clamp(1, 10_000));
        if let Some((asker, ring)) = &only {
            if !ring.is_full() {
                page.keys.retain(|(key, _)| ring.holds(*asker, key));
            }
        }
        let mut entries = Vec::with_capacity(page.keys.len() + 1);
        if let Some(cutoff) = page.flush {
            entries.push(LogEntry::Flush { cutoff });
        }
        let live: Vec<Bytes> = page
            .keys
            .iter()
            .filter(|(_, e)| !e.tombstone)
            .map(|(k, _)| k.clone())
            .collect();
        let mut items = match self.store.peek_items(&live).await {
            Ok(items) => items.into_iter(),
            Err(err) => return PeerResponse::Error(err.to_string()),
        };
        for (key, entry) in page.keys {
            if entry.tombstone {
                entries.push(LogEntry::Key {
                    key,
                    state: EntryState::Tombstone(entry.version),
                });
                continue;
            }
            match items.next().flatten() {
                Some(item) => entries.push(LogEntry::Key {
                    key,
                    state: EntryState::Item(item),
                }),
                // Evicted or expired here: nothing to hand on, and nothing to remember.
                None => self.log.forget(&key, entry.mark),
            }
        }
        PeerResponse::SyncPage {
            entries,
            next: page.next,
            complete: page.complete,
        }
    }

    async fn handle(&self, session: &mut Session, mut request: Request) -> Response {
        match request {
            Request::Fail | Request::Recover if !self.config.admin_commands => {
                return Response::Error
            }
            Request::Fail => return self.fail(),
            Request::Recover => return self.recover(),
            Request::Consistency(level) => {
                session.level = Some(level);
                return Response::Ok;
            }
            _ => {}
        }
        match self.state() {
            PeerState::Serving => {}
            PeerState::CatchingUp => return Response::ServerError("catching up".into()),
            PeerState::Failed => return Response::ServerError("peer failed".into()),
        }
        // A level prefix on a key (`@quorum:key`) beats the connection's level, which beats
        // the cluster's default. Replies name keys as the client sent them.
        // The request as sent is kept only when a key may carry a prefix (no copy otherwise).
        let original = may_carry_prefix(&request).then(|| request.clone());
        let prefixed = match original {
            Some(_) => strip_level_prefixes(&mut request),
            None => None,
        }
        .or_else(|| meta_level(&request));
        let command = command_for(&request, &self.clock);
        let original = original.as_ref().unwrap_or(&request);
        match command {
            ReadOrWrite::Read { keys, with_cas } => {
                let level = prefixed.or(session.level).unwrap_or(self.config.read_level);
                match self.read_keys(&keys, level).await {
                    Ok(items) => match original {
                        Request::Get { keys: shown, .. } => values_reply(shown, items, with_cas),
                        _ => values_reply(&keys, items, with_cas),
                    },
                    Err(err) => Response::ServerError(err.to_string()),
                }
            }
            ReadOrWrite::MetaRead { key, bump } => {
                let level = prefixed.or(session.level).unwrap_or(self.config.read_level);
                let found = match self.read_meta(&key, level, bump).await {
                    Ok(found) => found,
                    Err(err) => return Response::ServerError(err.to_string()),
                };
                let seen = found.as_ref().map(|(_, access)| *access);
                match meta_read(original, found, &self.clock) {
                    MetaRead::Answer(reply) => reply,
                    MetaRead::Escalate(command) => {
                        let level = prefixed
                            .or(session.level)
                            .unwrap_or(self.config.write_level);
                        match self.write(command, level).await {
                            Ok(outcome) => escalated_response(original, Ok(outcome), seen),
                            Err(DynamoError::Store(err)) => {
                                escalated_response(original, Err(err), seen)
                            }
                            Err(err) => Response::ServerError(err.to_string()),
                        }
                    }
                }
            }
            ReadOrWrite::Write(command) => {
                let level = prefixed
                    .or(session.level)
                    .unwrap_or(self.config.write_level);
                match self.write(command, level).await {
                    Ok(outcome) => response_for(original, Ok(outcome)),
                    Err(DynamoError::Store(err)) => response_for(original, Err(err)),
                    Err(err) => Response::ServerError(err.to_string()),
                }
            }
            ReadOrWrite::NotData => Response::Error,
        }
    }

    async fn write(&self, command: Command, level: Level) -> Result<Outcome, DynamoError> {
        match command {
            Command::FlushAll { cutoff, .. } => {
                self.log.record_flush(cutoff);
                self.store.flush_all(cutoff).await?;
                self.push(LogEntry::Flush { cutoff });
                Ok(Outcome::Flushed)
            }
            Command::Gat {
                keys,
                expires_at,
                version,
            } => {
                let mut items = Vec::with_capacity(keys.len());
                for key in keys {
                    let one = Command::Gat {
                        keys: vec![key.clone()],
                        expires_at,
                        version,
                    };
                    match self.write_key(key, one, level).await? {
                        Outcome::Items(mut got) => items.push(got.pop().flatten()),
                        _ => items.push(None),
                    }
                }
                Ok(Outcome::Items(items))
            }
            Command::Get { keys } => Ok(Outcome::Items(self.read_keys(&keys, level).await?)),
            Command::Write { ref key, .. }
            | Command::Delete { ref key, .. }
            | Command::Arith { ref key, .. }
            | Command::Touch { ref key, .. }
            | Command::MetaGet { ref key, .. }
            | Command::MetaSet { ref key, .. }
            | Command::MetaDelete { ref key, .. }
            | Command::MetaArith { ref key, .. } => {
                let key = key.clone();
                self.write_key(key, command, level).await
            }
        }
    }

    fn fail(&self) -> Response {
        if self.state() != PeerState::Failed {
            tracing::warn!("fault simulation: this peer is now failed (cut off from its peers)");
            *self.failed_at.lock() = Some(Instant::now());
            self.set_state(PeerState::Failed);
            self.transport.fail();
        }
        Response::Ok
    }

    fn recover(&self) -> Response {
        if self.state() == PeerState::Failed {
            tracing::info!("fault simulation: recovering, catching up before serving");
            self.set_state(PeerState::CatchingUp);
            self.transport.recover();
            // The catch-up task is started by the coordinator, which holds the Arc.
        }
        Response::Ok
    }
}

impl<S: Store> Coordinator for Eventual<S> {
    async fn handle(&self, session: &mut Session, request: Request) -> Response {
        let recovering = matches!(request, Request::Recover)
            && self.shared.config.admin_commands
            && self.state() == PeerState::Failed;
        let response = self.shared.handle(session, request).await;
        if recovering {
            tokio::spawn(sync::catch_up(self.shared.clone(), false));
        }
        response
    }

    fn mode(&self) -> &'static str {
        "eventual"
    }

    async fn stats(&self) -> Vec<(String, String)> {
        let mut lines = super::standalone::store_stat_lines(self.shared.store.stats().await);
        lines.push(("memcord_peer_state".into(), self.state().name().into()));
        lines
    }

    async fn stats_group(&self, group: &str) -> Option<Vec<(String, String)>> {
        (group == "cluster").then(|| sync::cluster_stats(&self.shared))
    }

    async fn admin(&self, request: crate::protocol::StoreAdmin) -> Response {
        super::store_admin(&*self.shared.store, &request).await
    }
}

impl<S: Store> PeerService for Shared<S> {
    fn report(&self) -> PeerReport {
        PeerReport {
            clock: self.clock.peek(),
            serving: self.state() == PeerState::Serving,
            role: "-".into(),
            items: self.items.load(Ordering::Relaxed),
            log_position: self.log.head().as_u64(),
        }
    }

    fn on_push(&self, _from: PeerId, entries: Vec<LogEntry>) {
        // Pushes go to the merge worker through a bounded queue, so a slow store never stalls
        // the link (heartbeats and sync answers share it) and a flood of pushes cannot grow
        // memory: when the queue is full the push is dropped and the next sync repairs.
        if self.pushed.try_send(entries).is_err() {
            self.counters.pushes_refused.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn on_request(&self, from: PeerId, request: PeerRequest) -> ResponseFuture {
        let this = self.self_arc();
        Box::pin(async move {
            match request {
                PeerRequest::SyncSince { since, max_entries } => {
                    if this.state() == PeerState::Failed {
                        return PeerResponse::Error("peer failed".into());
                    }
                    this.sync_page(since, max_entries as usize, None).await
                }
                PeerRequest::SyncRanges {
                    since,
                    max_entries,
                    ring,
                } => {
                    if this.state() == PeerState::Failed {
                        return PeerResponse::Error("peer failed".into());
                    }
                    let ring = this.ring_for(&ring);
                    this.sync_page(since, max_entries as usize, Some((from, ring)))
                        .await
                }
                PeerRequest::Replicate(entries) => this.answer_replicate(entries).await,
                PeerRequest::ReadKeys(keys) => this.answer_read(keys).await,
                PeerRequest::Coordinate(payload) => this.answer_coordinate(payload).await,
                PeerRequest::Order(_) => {
                    PeerResponse::Error("this cluster runs the eventual mode".into())
                }
            }
        })
    }
}

/// The per-request level prefixes, as written before a key.
const LEVEL_PREFIXES: [(&[u8], Level); 3] = [
    (b"@one:", Level::One),
    (b"@quorum:", Level::Quorum),
    (b"@all:", Level::All),
];

/// Whether any key of the request starts with `@` (the only requests worth stripping).
fn may_carry_prefix(request: &Request) -> bool {
    match request {
        Request::Get { keys, .. } | Request::Gat { keys, .. } => {
            keys.iter().any(|k| k.first() == Some(&b'@'))
        }
        Request::Store { key, .. }
        | Request::Delete { key, .. }
        | Request::Arith { key, .. }
        | Request::Touch { key, .. } => key.first() == Some(&b'@'),
        Request::MetaGet(get) => get.key.first() == Some(&b'@'),
        Request::MetaSet(set) => set.key.first() == Some(&b'@'),
        Request::MetaDelete(delete) => delete.key.first() == Some(&b'@'),
        Request::MetaArith(arith) => arith.key.first() == Some(&b'@'),
        _ => false,
    }
}

/// Whether a meta command's outcome changed its key (so the new state is replicated).
fn meta_changed(outcome: &MetaOutcome, version: Timestamp) -> bool {
    match outcome {
        MetaOutcome::Hit(hit) => hit.item.version == version,
        MetaOutcome::Stored { .. } | MetaOutcome::Deleted => true,
        _ => false,
    }
}

/// The level a meta request names with its `L` flag.
fn meta_level(request: &Request) -> Option<Level> {
    request.meta_flags().and_then(|flags| flags.level)
}

/// Strips a level prefix (`@one:`, `@quorum:`, `@all:`) from the request's keys; returns the
/// strongest level named. A key that would be empty after the prefix is left alone.
fn strip_level_prefixes(request: &mut Request) -> Option<Level> {
    fn strip(key: &mut Bytes, found: &mut Option<Level>) {
        for (prefix, level) in LEVEL_PREFIXES {
            if key.len() > prefix.len() && key.starts_with(prefix) {
                *key = key.slice(prefix.len()..);
                let stronger = match (*found, level) {
                    (None, l) => l,
                    (Some(Level::All), _) | (_, Level::All) => Level::All,
                    (Some(Level::Quorum), _) | (_, Level::Quorum) => Level::Quorum,
                    _ => Level::One,
                };
                *found = Some(stronger);
                return;
            }
        }
    }
    let mut found = None;
    match request {
        Request::Get { keys, .. } | Request::Gat { keys, .. } => {
            for key in keys {
                strip(key, &mut found);
            }
        }
        Request::Store { key, .. }
        | Request::Delete { key, .. }
        | Request::Arith { key, .. }
        | Request::Touch { key, .. } => strip(key, &mut found),
        other => {
            if let Some(key) = other.meta_key_mut() {
                strip(key, &mut found);
            }
        }
    }
    found
}

#[cfg(test)]
mod prefix_tests {
    use super::*;

    #[test]
    fn prefixes_choose_the_level_and_leave_the_key() {
        let mut get = Request::Get {
            keys: vec![
                Bytes::from_static(b"@quorum:a"),
                Bytes::from_static(b"b"),
                Bytes::from_static(b"@one:c"),
            ],
            with_cas: false,
        };
        assert_eq!(strip_level_prefixes(&mut get), Some(Level::Quorum));
        let Request::Get { keys, .. } = &get else {
            unreachable!()
        };
        assert_eq!(keys, &[&b"a"[..], b"b", b"c"]);
        let mut del = Request::Delete {
            key: Bytes::from_static(b"@all:"),
            noreply: false,
        };
        assert_eq!(strip_level_prefixes(&mut del), None);
        let mut set = Request::Delete {
            key: Bytes::from_static(b"@ALL:x"),
            noreply: false,
        };
        assert_eq!(strip_level_prefixes(&mut set), None);
    }
}
