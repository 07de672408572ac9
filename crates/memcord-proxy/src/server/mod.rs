//! The client-facing server: a TCP listener, one [`Connection`] task per client, connection-level
//! commands (`version`, `verbosity`, `stats`, `quit`), counters, and graceful shutdown.
//!
//! Data requests go to the peer's [`Coordinator`]; the server is generic over it, so each mode's
//! `handle` is called without dynamic dispatch. The shape follows tokio's mini-redis: a
//! `Semaphore` caps connections, a broadcast channel tells handlers to stop, and an mpsc channel
//! whose senders the handlers hold tells the server when the last one has finished.

pub mod admin;
mod binary;
mod connection;
pub(crate) mod report;
mod shutdown;
pub mod stats;
mod udp;

/// [`crate::peer`] (`BoundPeer`, `PeerError`), also reachable here for callers that name
/// `server::peer`.
pub use crate::peer;
pub use connection::Connection;

use crate::modes::{Coordinator, Session};
use crate::protocol::{Limits, Response};
use connection::Handler;
use shutdown::Shutdown;
use stats::{ConnCounters, ServerStats};
use std::future::Future;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, mpsc, Semaphore};

/// What memcached sends to a client over the connection limit before closing it.
pub const TOO_MANY_CONNECTIONS: &[u8] = b"ERROR Too many open connections\r\n";

/// How the server treats its clients.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Key, value and line limits applied while parsing.
    pub limits: Limits,
    /// Most clients served at once; one more is told so and closed.
    pub max_connections: usize,
    /// Close a connection after this long without input; `None` = never.
    pub idle_timeout: Option<Duration>,
    /// Lines appended to the plain `stats` reply (`memcord_kv_type`, `memcord_peer_id`, …).
    pub info: Vec<(String, String)>,
    /// Lines appended to `stats settings` (the effective configuration).
    pub settings: Vec<(String, String)>,
    /// Whether `shutdown` stops the server (memcached's `-A`); otherwise it is refused.
    pub enable_shutdown: bool,
    /// The UDP port served (reported in `stats settings`), when there is a UDP listener.
    pub udp_port: Option<u16>,
    /// The verbosity reported until a `verbosity` command changes it (memcached's `-v`).
    pub verbosity: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            limits: Limits::default(),
            max_connections: 1024,
            idle_timeout: None,
            info: Vec::new(),
            settings: Vec::new(),
            enable_shutdown: false,
            udp_port: None,
            verbosity: 0,
        }
    }
}

/// What every connection of one server shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) settings: Settings,
    pub(crate) stats: ServerStats,
    /// The level last set by `verbosity` (reported, not otherwise used: logging is `tracing`'s).
    pub(crate) verbosity: AtomicU32,
    /// The address actually bound, for `stats settings` and `stats conns`.
    pub(crate) listen_addr: std::net::SocketAddr,
    /// Input a connection may hold without a complete request: the longest legal request.
    pub(crate) max_buffered: usize,
    /// The admin commands' state (tunables, `stats detail`, open connections).
    pub(crate) admin: admin::AdminState,
    /// Told by `shutdown` to stop the server.
    pub(crate) stop: tokio::sync::Notify,
    /// The current unix second, advanced by a once-a-second task (as memcached's
    /// `current_time`), so that a connection marks its last command without a clock read.
    pub(crate) now_secs: AtomicU64,
    /// The unix second the server started.
    pub(crate) started_secs: u64,
}

impl Shared {
    /// The reply to `stats [group]`.
    pub(crate) async fn stats_reply<C: Coordinator>(
        &self,
        coordinator: &C,
        group: Option<String>,
    ) -> Response {
        let threads = tokio::runtime::Handle::current().metrics().num_workers();
        match group.as_deref() {
            None => {
                let mut lines = report::general(self, threads, coordinator.stats().await);
                lines.push(("memcord_mode".into(), coordinator.mode().into()));
                lines.extend(self.settings.info.iter().cloned());
                Response::Stats(lines)
            }
            Some("settings") => {
                let maxbytes = coordinator
                    .stats()
                    .await
                    .into_iter()
                    .find(|(name, _)| name == "limit_maxbytes")
                    .and_then(|(_, value)| value.parse().ok())
                    .unwrap_or(0);
                Response::Stats(report::settings(
                    self,
                    coordinator.mode(),
                    threads,
                    maxbytes,
                ))
            }
            Some("reset") => {
                self.stats.reset();
                self.admin.reset();
                Response::Reset
            }
            Some(group) => match coordinator.stats_group(group).await {
                Some(lines) => Response::Stats(lines),
                // memcached answers an unknown group with a bare ERROR.
                None => Response::Error,
            },
        }
    }
}

/// Serves clients from `listener` with `coordinator` until `shutdown` completes, then stops
/// accepting, lets every connection finish the request it is working on, and returns.
pub async fn run<C: Coordinator>(
    listener: TcpListener,
    coordinator: Arc<C>,
    settings: Settings,
    shutdown: impl Future,
) {
    run_with_udp(listener, None, coordinator, settings, shutdown).await
}

/// [`run`], also serving memcached's UDP protocol on `udp` when given (see [`udp`]). A
/// client's `shutdown` (with [`Settings::enable_shutdown`]) ends it as `shutdown` does.
pub async fn run_with_udp<C: Coordinator>(
    listener: TcpListener,
    udp: Option<tokio::net::UdpSocket>,
    coordinator: Arc<C>,
    mut settings: Settings,
    shutdown: impl Future,
) {
    let (notify_shutdown, _) = broadcast::channel(1);
    let (shutdown_complete_tx, mut shutdown_complete_rx) = mpsc::channel(1);
    let listen_addr = listener
        .local_addr()
        .unwrap_or_else(|_| std::net::SocketAddr::from(([0, 0, 0, 0], 0)));
    if let Some(socket) = &udp {
        settings.udp_port = socket.local_addr().ok().map(|a| a.port());
    }
    let limits = settings.limits;
    let max_buffered = limits.max_value_len + limits.max_get_line_len + limits.max_line_len;
    let now = crate::clock::unix_secs();
    let verbosity = AtomicU32::new(settings.verbosity);
    let shared = Arc::new(Shared {
        settings,
        stats: ServerStats::default(),
        verbosity,
        listen_addr,
        max_buffered,
        admin: admin::AdminState::default(),
        stop: tokio::sync::Notify::new(),
        now_secs: AtomicU64::new(now),
        started_secs: now,
    });
    let ticker = tokio::spawn(tick_clock(shared.clone()));
    let udp_task =
        udp.map(|socket| tokio::spawn(udp::serve(socket, coordinator.clone(), shared.clone())));
    let mut accept = Acceptor {
        limit: Arc::new(Semaphore::new(shared.settings.max_connections)),
        shared,
        listener,
        coordinator,
        notify_shutdown,
        shutdown_complete_tx,
        next_session: AtomicU64::new(1),
    };
    let stop = accept.shared.clone();
    tokio::select! {
        result = accept.run() => {
            if let Err(err) = result {
                tracing::error!(%err, "accepting connections failed");
            }
        }
        _ = shutdown => tracing::info!("shutting down: no longer accepting connections"),
        _ = stop.stop.notified() => tracing::info!("shutdown command: no longer accepting connections"),
    }
    ticker.abort();
    if let Some(task) = udp_task {
        task.abort();
    }
    let Acceptor {
        notify_shutdown,
        shutdown_complete_tx,
        ..
    } = accept;
    // Closing the broadcast wakes every idle handler; dropping our sender lets `recv` below
    // return once the last handler has dropped its clone.
    drop(notify_shutdown);
    drop(shutdown_complete_tx);
    let _ = shutdown_complete_rx.recv().await;
    tracing::info!("all connections closed");
}

/// The accept loop and what it hands to each connection.
struct Acceptor<C: Coordinator> {
    listener: TcpListener,
    coordinator: Arc<C>,
    shared: Arc<Shared>,
    limit: Arc<Semaphore>,
    notify_shutdown: broadcast::Sender<()>,
    shutdown_complete_tx: mpsc::Sender<()>,
    next_session: AtomicU64,
}

impl<C: Coordinator> Acceptor<C> {
    async fn run(&mut self) -> std::io::Result<()> {
        loop {
            let socket = self.accept().await?;
            let stats = &self.shared.stats;
            let Ok(permit) = self.limit.clone().try_acquire_owned() else {
                stats.rejected_connections.fetch_add(1, Relaxed);
                tokio::spawn(reject(socket));
                continue;
            };
            stats.total_connections.fetch_add(1, Relaxed);
            stats.curr_connections.fetch_add(1, Relaxed);
            let _ = socket.set_nodelay(true);
            let id = self.next_session.fetch_add(1, Relaxed);
            let last_cmd = Arc::new(AtomicU64::new(self.shared.now_secs.load(Relaxed)));
            if let (Ok(peer), Ok(local)) = (socket.peer_addr(), socket.local_addr()) {
                let entry = admin::ConnEntry {
                    peer,
                    local,
                    last_cmd: last_cmd.clone(),
                };
                self.shared.admin.conns.lock().insert(id, entry);
            }
            let mut handler = Handler {
                conn: Connection::new(socket),
                coordinator: self.coordinator.clone(),
                shared: self.shared.clone(),
                session: Session::new(id),
                shutdown: Shutdown::new(self.notify_shutdown.subscribe()),
                _shutdown_complete: self.shutdown_complete_tx.clone(),
                counters: ConnCounters::default(),
                swallow: 0,
                wire: connection::Wire::default(),
                last_cmd,
            };
            tokio::spawn(async move {
                if let Err(err) = handler.run().await {
                    tracing::debug!(session = id, %err, "connection ended with an error");
                }
                handler.shared.admin.conns.lock().remove(&id);
                handler.shared.stats.curr_connections.fetch_sub(1, Relaxed);
                drop(permit);
            });
        }
    }

    /// Accepts the next client, backing off on transient errors (such as running out of file
    /// descriptors) instead of spinning; gives up after about a minute of failures.
    async fn accept(&mut self) -> std::io::Result<TcpStream> {
        let mut backoff = 1;
        loop {
            match self.listener.accept().await {
                Ok((socket, _)) => return Ok(socket),
                Err(err) => {
                    if backoff > 64 {
                        return Err(err);
                    }
                    tracing::warn!(%err, "accept failed; retrying in {backoff}s");
                }
            }
            tokio::time::sleep(Duration::from_secs(backoff)).await;
            backoff *= 2;
        }
    }
}

/// Advances the server's coarse clock once a second.
async fn tick_clock(shared: Arc<Shared>) {
    let mut every = tokio::time::interval(Duration::from_secs(1));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        shared.now_secs.store(crate::clock::unix_secs(), Relaxed);
    }
}

/// Tells a client over the limit so, as memcached does, and closes its connection.
async fn reject(mut socket: TcpStream) {
    let _ = socket.write_all(TOO_MANY_CONNECTIONS).await;
    let _ = socket.shutdown().await;
}
