//! The peer transport: one authenticated TCP link per peer pair, carrying framed messages.
//!
//! The peer with the lower id dials, the higher one accepts, so each pair has exactly one link.
//! Each link has a bounded outbound queue drained by a writer task that batches frames into one
//! write (backpressure instead of unbounded memory) and a reader task that dispatches inbound
//! frames: heartbeats to [`Membership`], pushes and requests to the mode's [`PeerService`],
//! responses to the waiting [`Transport::call`].

use super::auth::{self, Side};
use super::frame;
use super::membership::Membership;
use super::message::{
    Challenge, Hello, LogEntry, PeerId, PeerMessage, PeerReport, PeerRequest, PeerResponse, Proof,
    PROTOCOL_VERSION,
};
use crate::clock::HybridClock;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, Notify};
use tokio_util::sync::CancellationToken;

/// A boxed future answering one peer request.
pub type ResponseFuture = Pin<Box<dyn Future<Output = PeerResponse> + Send>>;

/// What a consistency mode provides to the transport.
pub trait PeerService: Send + Sync + 'static {
    /// This peer's report for the next heartbeat.
    fn report(&self) -> PeerReport;
    /// Fresh changes pushed by `from`.
    fn on_push(&self, from: PeerId, entries: Vec<LogEntry>);
    /// Answers a request from `from`.
    fn on_request(&self, from: PeerId, request: PeerRequest) -> ResponseFuture;
}

/// Transport settings.
#[derive(Debug, Clone)]
pub struct TransportConfig {
    /// This peer's id.
    pub me: PeerId,
    /// The other peers: id and peer-port address.
    pub peers: Vec<(PeerId, String)>,
    /// The shared cluster secret.
    pub secret: Vec<u8>,
    /// This peer's consistency mode; peers with another mode are refused.
    pub mode: String,
    /// Largest frame body accepted after the handshake.
    pub max_frame: usize,
    /// Outbound frames queued per link before senders wait (or pushes are dropped).
    pub queue_depth: usize,
    /// Heartbeat period.
    pub heartbeat: Duration,
    /// Bound on connecting and on the handshake.
    pub connect_timeout: Duration,
}

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// No link to that peer.
    #[error("peer {0} is not connected")]
    NotConnected(PeerId),
    /// No answer within the timeout.
    #[error("peer {0} did not answer in time")]
    Timeout(PeerId),
    /// The link closed before the answer arrived.
    #[error("link to peer {0} closed")]
    Closed(PeerId),
}

struct Link {
    epoch: u64,
    tx: mpsc::Sender<PeerMessage>,
    cancel: CancellationToken,
}

struct Pending {
    peer: PeerId,
    tx: oneshot::Sender<PeerResponse>,
}

/// The peer transport of one peer.
pub struct Transport {
    config: TransportConfig,
    clock: Arc<HybridClock>,
    membership: Arc<Membership>,
    service: OnceLock<Arc<dyn PeerService>>,
    links: Mutex<HashMap<PeerId, Link>>,
    pending: Mutex<HashMap<u64, Pending>>,
    next_id: AtomicU64,
    failed: AtomicBool,
    recovered: Notify,
    shutdown: CancellationToken,
}

const HANDSHAKE_MAX_FRAME: usize = 4096;

impl Transport {
    /// A transport (not yet running) for `config`.
    pub fn new(
        config: TransportConfig,
        clock: Arc<HybridClock>,
        membership: Arc<Membership>,
    ) -> Arc<Self> {
        Arc::new(Transport {
            config,
            clock,
            membership,
            service: OnceLock::new(),
            links: Mutex::new(HashMap::new()),
            pending: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            failed: AtomicBool::new(false),
            recovered: Notify::new(),
            shutdown: CancellationToken::new(),
        })
    }

    /// Installs the mode's service (once) and starts accepting, dialing and heartbeating.
    pub fn start(self: &Arc<Self>, listener: TcpListener, service: Arc<dyn PeerService>) {
        if self.service.set(service).is_err() {
            panic!("transport started twice");
        }
        tokio::spawn(self.clone().accept_loop(listener));
        for (peer, addr) in self.config.peers.clone() {
            if peer > self.config.me {
                tokio::spawn(self.clone().dial_loop(peer, addr));
            }
        }
        tokio::spawn(self.clone().heartbeat_loop());
    }

    /// This peer's id.
    pub fn me(&self) -> PeerId {
        self.config.me
    }

    /// The membership table.
    pub fn membership(&self) -> &Arc<Membership> {
        &self.membership
    }

    /// Stops every task and closes every link.
    pub fn shutdown(&self) {
        self.shutdown.cancel();
    }

    /// Queues `message` to `peer` without waiting; `false` if there is no link or its queue
    /// is full (best-effort traffic such as pushes may be dropped: the periodic sync repairs).
    pub fn try_send(&self, peer: PeerId, message: PeerMessage) -> bool {
        let tx = match self.links.lock().get(&peer) {
            Some(link) => link.tx.clone(),
            None => return false,
        };
        tx.try_send(message).is_ok()
    }

    /// Sends `request` to `peer` and waits for its answer, at most `timeout`.
    pub async fn call(
        &self,
        peer: PeerId,
        request: PeerRequest,
        timeout: Duration,
    ) -> Result<PeerResponse, CallError> {
        let tx = match self.links.lock().get(&peer) {
            Some(link) => link.tx.clone(),
            None => return Err(CallError::NotConnected(peer)),
        };
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (done_tx, done_rx) = oneshot::channel();
        self.pending
            .lock()
            .insert(id, Pending { peer, tx: done_tx });
        let outcome = tokio::time::timeout(timeout, async {
            tx.send(PeerMessage::Request { id, body: request })
                .await
                .map_err(|_| CallError::Closed(peer))?;
            done_rx.await.map_err(|_| CallError::Closed(peer))
        })
        .await;
        self.pending.lock().remove(&id);
        outcome.unwrap_or(Err(CallError::Timeout(peer)))
    }

    /// Fault simulation: drop every link and refuse peer traffic until [`Transport::recover`].
    pub fn fail(&self) {
        self.failed.store(true, Ordering::SeqCst);
        for (_, link) in self.links.lock().drain() {
            link.cancel.cancel();
        }
    }

    /// Ends the fault simulation: links are re-established.
    pub fn recover(&self) {
        self.failed.store(false, Ordering::SeqCst);
        self.recovered.notify_waiters();
    }

    /// Whether the fault simulation is on.
    pub fn is_failed(&self) -> bool {
        self.failed.load(Ordering::SeqCst)
    }

    async fn heartbeat_loop(self: Arc<Self>) {
        let mut tick = tokio::time::interval(self.config.heartbeat);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = self.shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            if !self.is_failed() {
                let mut report = self.service.get().map(|s| s.report()).unwrap_or_default();
                report.clock = self.clock.now();
                let peers: Vec<PeerId> = self.links.lock().keys().copied().collect();
                for peer in peers {
                    self.try_send(peer, PeerMessage::Heartbeat(report.clone()));
                }
            }
            self.membership.tick();
        }
    }

    async fn accept_loop(self: Arc<Self>, listener: TcpListener) {
        loop {
            let accepted = tokio::select! {
                _ = self.shutdown.cancelled() => return,
                accepted = listener.accept() => accepted,
            };
            let (stream, addr) = match accepted {
                Ok(conn) => conn,
                Err(err) => {
                    tracing::warn!(%err, "peer accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            if self.is_failed() {
                continue; // dropped: a failed peer refuses peer traffic
            }
            let this = self.clone();
            tokio::spawn(async move {
                match tokio::time::timeout(
                    this.config.connect_timeout,
                    this.accept_handshake(stream),
                )
                .await
                {
                    Ok(Ok((peer, stream))) => this.run_link(peer, stream).await,
                    Ok(Err(reason)) => tracing::warn!(%addr, "refused peer connection: {reason}"),
                    Err(_) => tracing::warn!(%addr, "refused peer connection: handshake timed out"),
                }
            });
        }
    }

    async fn accept_handshake(&self, mut stream: TcpStream) -> Result<(PeerId, TcpStream), String> {
        let mut scratch = Vec::new();
        let hello: Hello = frame::read(&mut stream, HANDSHAKE_MAX_FRAME, &mut scratch)
            .await
            .map_err(|e| format!("bad hello: {e}"))?;
        let known = self.config.peers.iter().any(|(id, _)| *id == hello.from);
        let refusal = if hello.protocol != PROTOCOL_VERSION {
            Some(format!(
                "peer protocol version {} differs from ours ({PROTOCOL_VERSION})",
                hello.protocol
            ))
        } else if hello.to != self.config.me {
            Some(format!(
                "peer {} expected peer {} at this address, but this is peer {}",
                hello.from, hello.to, self.config.me
            ))
        } else if !known || hello.from == self.config.me {
            Some(format!("unknown peer id {}", hello.from))
        } else if hello.mode != self.config.mode {
            Some(format!(
                "peer {} runs consistency mode '{}' but this cluster runs '{}'",
                hello.from, hello.mode, self.config.mode
            ))
        } else {
            None
        };
        if let Some(reason) = refusal {
            let mut out = Vec::new();
            let _ = frame::encode(&Challenge::Refused(reason.clone()), &mut out);
            let _ = stream.write_all(&out).await;
            return Err(reason);
        }
        let nonce = auth::nonce();
        let proof = auth::proof(
            &self.config.secret,
            Side::Acceptor,
            &hello.nonce,
            &nonce,
            hello.from,
            self.config.me,
        );
        let mut out = Vec::new();
        frame::encode(&Challenge::Continue { nonce, proof }, &mut out)
            .map_err(|e| e.to_string())?;
        stream.write_all(&out).await.map_err(|e| e.to_string())?;
        let answer: Proof = frame::read(&mut stream, HANDSHAKE_MAX_FRAME, &mut scratch)
            .await
            .map_err(|e| format!("bad proof from peer {}: {e}", hello.from))?;
        if !auth::verify(
            &self.config.secret,
            Side::Dialer,
            &hello.nonce,
            &nonce,
            hello.from,
            self.config.me,
            &answer.proof,
        ) {
            return Err(format!(
                "peer {} failed authentication (wrong cluster secret)",
                hello.from
            ));
        }
        Ok((hello.from, stream))
    }

    async fn dial_loop(self: Arc<Self>, peer: PeerId, addr: String) {
        let mut backoff = Duration::from_millis(50);
        loop {
            if self.shutdown.is_cancelled() {
                return;
            }
            if self.is_failed() {
                let recovered = self.recovered.notified();
                if self.is_failed() {
                    tokio::select! {
                        _ = self.shutdown.cancelled() => return,
                        _ = recovered => {}
                    }
                }
                continue;
            }
            let attempt =
                tokio::time::timeout(self.config.connect_timeout, self.dial(peer, &addr)).await;
            match attempt {
                Ok(Ok(stream)) => {
                    backoff = Duration::from_millis(50);
                    self.run_link(peer, stream).await;
                }
                Ok(Err(reason)) => tracing::debug!(peer, %addr, "dial failed: {reason}"),
                Err(_) => tracing::debug!(peer, %addr, "dial timed out"),
            }
            let jitter = Duration::from_millis(rand::random::<u64>() % 50);
            tokio::select! {
                _ = self.shutdown.cancelled() => return,
                _ = tokio::time::sleep(backoff + jitter) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(1));
        }
    }

    async fn dial(&self, peer: PeerId, addr: &str) -> Result<TcpStream, String> {
        let mut stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let nonce = auth::nonce();
        let hello = Hello {
            protocol: PROTOCOL_VERSION,
            from: self.config.me,
            to: peer,
            mode: self.config.mode.clone(),
            nonce,
        };
        let mut out = Vec::new();
        frame::encode(&hello, &mut out).map_err(|e| e.to_string())?;
        stream.write_all(&out).await.map_err(|e| e.to_string())?;
        let mut scratch = Vec::new();
        let challenge: Challenge = frame::read(&mut stream, HANDSHAKE_MAX_FRAME, &mut scratch)
            .await
            .map_err(|e| e.to_string())?;
        let (their_nonce, proof) = match challenge {
            Challenge::Continue { nonce, proof } => (nonce, proof),
            Challenge::Refused(reason) => {
                tracing::error!(peer, "peer refused our link: {reason}");
                return Err(reason);
            }
        };
        if !auth::verify(
            &self.config.secret,
            Side::Acceptor,
            &nonce,
            &their_nonce,
            self.config.me,
            peer,
            &proof,
        ) {
            tracing::error!(peer, %addr, "peer failed authentication (wrong cluster secret)");
            return Err("peer failed authentication".into());
        }
        let mine = auth::proof(
            &self.config.secret,
            Side::Dialer,
            &nonce,
            &their_nonce,
            self.config.me,
            peer,
        );
        out.clear();
        frame::encode(&Proof { proof: mine }, &mut out).map_err(|e| e.to_string())?;
        stream.write_all(&out).await.map_err(|e| e.to_string())?;
        Ok(stream)
    }

    /// Runs an authenticated link until it closes.
    async fn run_link(self: &Arc<Self>, peer: PeerId, stream: TcpStream) {
        if self.is_failed() {
            return;
        }
        let _ = stream.set_nodelay(true);
        static EPOCH: AtomicU64 = AtomicU64::new(1);
        let epoch = EPOCH.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(self.config.queue_depth);
        let cancel = self.shutdown.child_token();
        if let Some(old) = self.links.lock().insert(
            peer,
            Link {
                epoch,
                tx: tx.clone(),
                cancel: cancel.clone(),
            },
        ) {
            old.cancel.cancel();
        }
        tracing::info!(peer, "peer link established");
        self.membership.link_up(peer);
        let (read_half, write_half) = stream.into_split();
        let writer = tokio::spawn(write_frames(write_half, rx, cancel.clone()));
        self.read_frames(peer, read_half, tx, &cancel).await;
        cancel.cancel();
        let _ = writer.await;
        {
            let mut links = self.links.lock();
            if links.get(&peer).is_some_and(|l| l.epoch == epoch) {
                links.remove(&peer);
            }
        }
        self.pending.lock().retain(|_, p| p.peer != peer);
        if !self.links.lock().contains_key(&peer) {
            self.membership.link_down(peer);
        }
        tracing::info!(peer, "peer link closed");
    }

    async fn read_frames(
        self: &Arc<Self>,
        peer: PeerId,
        read_half: OwnedReadHalf,
        tx: mpsc::Sender<PeerMessage>,
        cancel: &CancellationToken,
    ) {
        let mut reader = BufReader::with_capacity(64 * 1024, read_half);
        let mut scratch = Vec::new();
        let service = self.service.get().expect("started").clone();
        loop {
            let message: PeerMessage = tokio::select! {
                _ = cancel.cancelled() => return,
                read = frame::read(&mut reader, self.config.max_frame, &mut scratch) => match read {
                    Ok(message) => message,
                    Err(err) => {
                        tracing::debug!(peer, %err, "peer link read ended");
                        return;
                    }
                },
            };
            match message {
                PeerMessage::Heartbeat(report) => {
                    self.clock.observe(report.clock);
                    self.membership.heard(peer, report);
                }
                PeerMessage::Push(entries) => service.on_push(peer, entries),
                PeerMessage::Request { id, body } => {
                    let answer = service.on_request(peer, body);
                    let tx = tx.clone();
                    tokio::spawn(async move {
                        let body = answer.await;
                        let _ = tx.send(PeerMessage::Response { id, body }).await;
                    });
                }
                PeerMessage::Response { id, body } => {
                    if let Some(pending) = self.pending.lock().remove(&id) {
                        let _ = pending.tx.send(body);
                    }
                }
            }
        }
    }
}

/// Drains a link's queue into its socket, batching whatever is queued into one write.
async fn write_frames(
    mut socket: OwnedWriteHalf,
    mut rx: mpsc::Receiver<PeerMessage>,
    cancel: CancellationToken,
) {
    let mut out = Vec::with_capacity(64 * 1024);
    loop {
        let first = tokio::select! {
            _ = cancel.cancelled() => break,
            message = rx.recv() => match message {
                Some(message) => message,
                None => break,
            },
        };
        out.clear();
        if frame::encode(&first, &mut out).is_err() {
            break;
        }
        while out.len() < 1 << 20 {
            match rx.try_recv() {
                Ok(message) => {
                    if frame::encode(&message, &mut out).is_err() {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
        let written = tokio::select! {
            _ = cancel.cancelled() => break,
            written = socket.write_all(&out) => written,
        };
        if written.is_err() {
            break;
        }
    }
    cancel.cancel();
    let _ = socket.shutdown().await;
}

/// Binds the peer port.
pub async fn bind(addr: &str) -> std::io::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    Ok((listener, local))
}
