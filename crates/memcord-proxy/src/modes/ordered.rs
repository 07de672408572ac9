//! What the two ordered modes share: writes through the ordered queue, fault simulation,
//! `stats cluster`, and the peer service that hands queue traffic to the queue. The modes
//! differ only in how a `get` is served (see [`ReadPolicy`]).
//!
//! ```text
//! write: command_for ─▶ OrderedQueue::submit ─▶ (applied in log order on every peer) ─▶ reply
//! get, linearizable: read_index (leader confirms) ─▶ wait applied here ─▶ local store
//! get, sequential:   wait applied here ≥ this connection's last write ─▶ local store
//! ```
//! `fail` cuts the peer off (the transport refuses peer traffic) but keeps it answering: its
//! requests find no quorum and are answered `SERVER_ERROR no quorum` once the quorum timeout
//! passes, exactly as on the minority side of a real partition.

use super::translate::{
    command_for, escalated_response, meta_read, response_for, values_reply, MetaRead, ReadOrWrite,
};
use super::{Coordinator, Session};
use crate::clock::HybridClock;
use crate::cluster::{
    LogEntry, PeerId, PeerReport, PeerRequest, PeerResponse, PeerService, ResponseFuture, Transport,
};
use crate::order::{OrderedQueue, QueueError};
use crate::protocol::{Request, Response};
use crate::store::Store;
use bytes::Bytes;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// The answer to `consistency <level>` in the ordered modes, whose every request already has
/// the one consistency the mode promises.
const ORDERED_LEVELS: &str = "consistency levels apply to the eventual mode only";

/// How an ordered mode serves plain reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadPolicy {
    /// The linearizable mode: after a read index confirmed by the leader is applied locally
    /// (see [`super::linearizable`]).
    Linearizable,
    /// The sequential mode: locally, once this connection's last write is applied locally,
    /// with no round trip to the leader. Each connection sees its own writes in program order;
    /// reads may lag other clients' writes.
    Sequential,
    /// **Broken on purpose, test-only** (`crate::faults`, in `fault-injection` builds only):
    /// the linearizable mode answering reads from the local store at once, without a read
    /// index, so a cut-off or lagging peer serves stale values. It exists to prove `memcord
    /// check` catches it.
    #[cfg(feature = "fault-injection")]
    UnsafeLocal,
}

impl ReadPolicy {
    /// The mode's name.
    pub fn mode(self) -> &'static str {
        match self {
            ReadPolicy::Linearizable => "linearizable",
            #[cfg(feature = "fault-injection")]
            ReadPolicy::UnsafeLocal => "linearizable",
            ReadPolicy::Sequential => "sequential",
        }
    }
}

/// The coordinator of both ordered modes (the [`ReadPolicy`] tells them apart); it shares
/// its fault switch and item count with the peer service that hands queue traffic to the queue.
pub struct Ordered<S: Store> {
    store: Arc<S>,
    clock: Arc<HybridClock>,
    queue: Arc<OrderedQueue>,
    transport: Arc<Transport>,
    policy: ReadPolicy,
    admin_commands: bool,
    failed: Arc<AtomicBool>,
    items: Arc<AtomicU64>,
}

impl<S: Store> Coordinator for Ordered<S> {
    async fn handle(&self, session: &mut Session, request: Request) -> Response {
        self.serve(session, request).await
    }

    fn batches(&self, request: &Request) -> bool {
        // Writes that go through the queue as they are: a pipeline of them rides one entry.
        matches!(
            request,
            Request::Store { .. }
                | Request::Delete { .. }
                | Request::Arith { .. }
                | Request::Touch { .. }
                | Request::MetaSet(_)
                | Request::MetaDelete(_)
                | Request::MetaArith(_)
        )
    }

    async fn handle_batch(&self, session: &mut Session, requests: Vec<Request>) -> Vec<Response> {
        let commands: Vec<_> = requests
            .iter()
            .filter_map(|request| match command_for(request, &self.clock) {
                ReadOrWrite::Write(command) => Some(command),
                _ => None,
            })
            .collect();
        if commands.len() != requests.len() {
            // Only writes are batched; anything else is served on its own, in order.
            let mut replies = Vec::with_capacity(requests.len());
            for request in requests {
                replies.push(self.serve(session, request).await);
            }
            return replies;
        }
        let results = self.queue.submit_many(commands).await;
        requests
            .iter()
            .zip(results)
            .map(|(request, result)| match result {
                Ok((index, outcome)) => {
                    session.last_write = Some(session.last_write.map_or(index, |l| l.max(index)));
                    response_for(request, outcome)
                }
                Err(err) => queue_error(err),
            })
            .collect()
    }

    fn mode(&self) -> &'static str {
        self.policy.mode()
    }

    async fn stats(&self) -> Vec<(String, String)> {
        self.store_stats().await
    }

    async fn stats_group(&self, group: &str) -> Option<Vec<(String, String)>> {
        if group == "cluster" {
            Some(self.cluster_stats().await)
        } else {
            None
        }
    }

    async fn admin(&self, request: crate::protocol::StoreAdmin) -> Response {
        super::store_admin(&*self.store, &request).await
    }
}

/// Turns a queue failure into the client's reply.
pub fn queue_error(err: QueueError) -> Response {
    match err {
        QueueError::NoQuorum | QueueError::NotLeader => Response::ServerError("no quorum".into()),
        other => Response::ServerError(other.to_string()),
    }
}

impl<S: Store> Ordered<S> {
    /// Wires a coordinator to a started queue and starts the transport on `listener`.
    pub fn start(
        store: Arc<S>,
        clock: Arc<HybridClock>,
        queue: Arc<OrderedQueue>,
        transport: Arc<Transport>,
        listener: tokio::net::TcpListener,
        policy: ReadPolicy,
        admin_commands: bool,
    ) -> Ordered<S> {
        let failed = Arc::new(AtomicBool::new(false));
        let items = Arc::new(AtomicU64::new(0));
        let service = Arc::new(QueueService {
            queue: queue.clone(),
            clock: clock.clone(),
            failed: failed.clone(),
            items: items.clone(),
        });
        transport.start(listener, service);
        Ordered {
            store,
            clock,
            queue,
            transport,
            policy,
            admin_commands,
            failed,
            items,
        }
    }

    /// The queue (for tests and status).
    pub fn queue(&self) -> &Arc<OrderedQueue> {
        &self.queue
    }

    /// Serves one data request.
    async fn serve(&self, session: &mut Session, request: Request) -> Response {
        // As in Standalone: a keyless `gat` is answered without the store.
        if let Request::Get { keys, .. } | Request::Gat { keys, .. } = &request {
            if keys.is_empty() {
                return Response::Values(Vec::new());
            }
        }
        match request {
            Request::Fail | Request::Recover if !self.admin_commands => return Response::Error,
            Request::Fail => return self.fail(),
            Request::Recover => return self.recover(),
            Request::Consistency(_) => {
                return Response::ClientError(ORDERED_LEVELS.into());
            }
            _ => {}
        }
        match command_for(&request, &self.clock) {
            ReadOrWrite::Read { keys, with_cas } => self.read(session, keys, with_cas).await,
            ReadOrWrite::MetaRead { key, bump } => {
                self.meta_read(session, &request, key, bump).await
            }
            ReadOrWrite::Write(command) => match self.queue.submit(command).await {
                Ok((index, outcome)) => {
                    session.last_write = Some(index);
                    response_for(&request, outcome)
                }
                Err(err) => queue_error(err),
            },
            ReadOrWrite::NotData => Response::Error,
        }
    }

    async fn read(&self, session: &Session, keys: Vec<Bytes>, with_cas: bool) -> Response {
        if let Err(reply) = self.read_point(session).await {
            return reply;
        }
        match self.store.get(&keys).await {
            Ok(items) => values_reply(&keys, items, with_cas),
            Err(err) => Response::ServerError(err.to_string()),
        }
    }

    /// A meta read: like a read, then through the queue if it turns out to need a write.
    async fn meta_read(
        &self,
        session: &mut Session,
        request: &Request,
        key: Bytes,
        bump: bool,
    ) -> Response {
        if let Err(reply) = self.read_point(session).await {
            return reply;
        }
        let found = match self.store.peek(&key, bump).await {
            Ok(found) => found,
            Err(err) => return Response::ServerError(err.to_string()),
        };
        let seen = found.as_ref().map(|(_, access)| *access);
        match meta_read(request, found, &self.clock) {
            MetaRead::Answer(reply) => reply,
            MetaRead::Escalate(command) => match self.queue.submit(command).await {
                Ok((index, outcome)) => {
                    session.last_write = Some(index);
                    escalated_response(request, outcome, seen)
                }
                Err(err) => queue_error(err),
            },
        }
    }

    /// Waits until a read may be answered here: the leader's read index is applied
    /// (linearizable), or this connection's last write is (sequential).
    async fn read_point(&self, session: &Session) -> Result<(), Response> {
        let wait_for = match self.policy {
            ReadPolicy::Linearizable => match self.queue.read_index().await {
                Ok(index) => Some(index),
                Err(err) => return Err(queue_error(err)),
            },
            ReadPolicy::Sequential => session.last_write,
            #[cfg(feature = "fault-injection")]
            ReadPolicy::UnsafeLocal => None,
        };
        if let Some(index) = wait_for {
            if let Err(err) = self.queue.wait_applied(index).await {
                return Err(queue_error(err));
            }
        }
        Ok(())
    }

    fn fail(&self) -> Response {
        if !self.failed.swap(true, Ordering::SeqCst) {
            tracing::warn!("fault simulation: this peer is now cut off from its peers");
            self.transport.fail();
        }
        Response::Ok
    }

    fn recover(&self) -> Response {
        if self.failed.swap(false, Ordering::SeqCst) {
            tracing::info!("fault simulation: recovering; the leader catches this peer up");
            self.transport.recover();
        }
        Response::Ok
    }

    /// Plain `stats` extra lines.
    async fn store_stats(&self) -> Vec<(String, String)> {
        let store = self.store.stats().await;
        self.items.store(store.curr_items, Ordering::Relaxed);
        let mut lines = super::standalone::store_stat_lines(store);
        lines.push(("memcord_peer_state".into(), self.state_name().into()));
        lines.push(("memcord_role".into(), self.queue.role().name().into()));
        lines
    }

    fn state_name(&self) -> &'static str {
        if self.failed.load(Ordering::SeqCst) {
            "failed"
        } else {
            "serving"
        }
    }

    /// `stats cluster`: this peer's place in the queue and what it knows of the others.
    async fn cluster_stats(&self) -> Vec<(String, String)> {
        let me = self.transport.me();
        let queue = &self.queue;
        let c = &queue.counters;
        let (term, last_log, applied) = queue.positions();
        let items = self.store.stats().await.curr_items;
        self.items.store(items, Ordering::Relaxed);
        let count = |a: &AtomicU64| a.load(Ordering::Relaxed).to_string();
        let mut lines: Vec<(String, String)> = vec![
            ("cluster_mode".into(), self.policy.mode().into()),
            ("cluster_peer_id".into(), me.to_string()),
            ("cluster_state".into(), self.state_name().into()),
            ("cluster_role".into(), queue.role().name().into()),
            (
                "cluster_leader".into(),
                queue
                    .leader()
                    .map(|l| l.to_string())
                    .unwrap_or_else(|| "none".into()),
            ),
            ("cluster_term".into(), term.to_string()),
            ("cluster_last_log_index".into(), last_log.to_string()),
            ("cluster_applied_index".into(), applied.to_string()),
            (
                "cluster_snapshot_index".into(),
                queue.snapshot_index().to_string(),
            ),
            (
                "cluster_log_memory_bytes".into(),
                queue.log_memory().0.to_string(),
            ),
            (
                "cluster_log_read_back".into(),
                queue.log_memory().1.to_string(),
            ),
            ("cluster_batches".into(), count(&c.batches)),
            (
                "cluster_batched_commands".into(),
                count(&c.batched_commands),
            ),
            ("cluster_batch_lingers".into(), count(&c.batch_lingers)),
            ("cluster_read_rounds".into(), count(&c.read_rounds)),
            ("cluster_lease_reads".into(), count(&c.lease_reads)),
            ("cluster_no_quorum".into(), count(&c.no_quorum)),
            (
                "cluster_applied_commands".into(),
                count(&c.applied_commands),
            ),
        ];
        let prefix = format!("peer.{me}");
        lines.push((format!("{prefix}.status"), "self".into()));
        lines.push((format!("{prefix}.role"), queue.role().name().into()));
        lines.push((format!("{prefix}.items"), items.to_string()));
        lines.push((format!("{prefix}.applied_index"), applied.to_string()));
        for status in self.transport.membership().statuses() {
            let p = format!("peer.{}", status.id);
            lines.extend(status.stat_lines());
            lines.push((
                format!("{p}.applied_index"),
                status.report.log_position.to_string(),
            ));
        }
        lines
    }
}

/// Routes the queue's peer traffic to the queue and reports this peer in heartbeats.
struct QueueService {
    queue: Arc<OrderedQueue>,
    clock: Arc<HybridClock>,
    failed: Arc<AtomicBool>,
    items: Arc<AtomicU64>,
}

impl PeerService for QueueService {
    fn report(&self) -> PeerReport {
        PeerReport {
            clock: self.clock.peek(),
            serving: !self.failed.load(Ordering::SeqCst),
            role: self.queue.role().name().into(),
            items: self.items.load(Ordering::Relaxed),
            log_position: self.queue.applied_index(),
        }
    }

    fn on_push(&self, from: PeerId, _entries: Vec<LogEntry>) {
        tracing::debug!(from, "ignoring an eventual-mode push in an ordered mode");
    }

    fn on_request(&self, from: PeerId, request: PeerRequest) -> ResponseFuture {
        let queue = self.queue.clone();
        Box::pin(async move {
            match request {
                PeerRequest::Order(payload) => queue.on_peer_request(from as u64, &payload).await,
                _ => PeerResponse::Error("this cluster runs an ordered mode".into()),
            }
        })
    }
}
