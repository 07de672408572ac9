//! The client-facing server: a TCP listener, one [`Connection`] task per client, connection-level
//! commands (`version`, `verbosity`, `stats`, `quit`), counters, and graceful shutdown.
//!
//! Data requests go to the peer's [`Coordinator`]; the server is generic over it, so each mode's
//! `handle` is called without dynamic dispatch. The shape follows tokio's mini-redis: a
//! `Semaphore` caps connections, a broadcast channel tells handlers to stop, and an mpsc channel
//! whose senders the handlers hold tells the server when the last one has finished.

mod binary;
mod connection;
pub mod peer;
mod shutdown;
pub mod stats;

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
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            limits: Limits::default(),
            max_connections: 1024,
            idle_timeout: None,
            info: Vec::new(),
            settings: Vec::new(),
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
    /// The port actually bound, for `stats settings`.
    pub(crate) port: u16,
    /// Input a connection may hold without a complete request: the longest legal request.
    pub(crate) max_buffered: usize,
}

impl Shared {
    /// The reply to `stats [group]`.
    pub(crate) async fn stats_reply<C: Coordinator>(
        &self,
        coordinator: &C,
        group: Option<String>,
    ) -> Response {
        match group.as_deref() {
            None => {
                let threads = tokio::runtime::Handle::current().metrics().num_workers();
                let mut lines = self.stats.lines(self.settings.max_connections, threads);
                lines.extend(coordinator.stats().await);
                lines.push(("memcord_mode".into(), coordinator.mode().into()));
                lines.extend(self.settings.info.iter().cloned());
                Response::Stats(lines)
            }
            Some("settings") => {
                let s = &self.settings;
                let idle = s.idle_timeout.map_or(0, |d| d.as_secs());
                let mut lines: Vec<(String, String)> = vec![
                    ("maxconns".into(), s.max_connections.to_string()),
                    ("tcpport".into(), self.port.to_string()),
                    ("udpport".into(), "0".into()),
                    ("verbosity".into(), self.verbosity.load(Relaxed).to_string()),
                    ("evictions".into(), "on".into()),
                    ("cas_enabled".into(), "yes".into()),
                    ("item_size_max".into(), s.limits.max_value_len.to_string()),
                    ("idle_timeout".into(), idle.to_string()),
                    ("flush_enabled".into(), "yes".into()),
                    ("memcord_mode".into(), coordinator.mode().into()),
                ];
                lines.extend(s.settings.iter().cloned());
                Response::Stats(lines)
            }
            Some("reset") => {
                self.stats.reset();
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
    let (notify_shutdown, _) = broadcast::channel(1);
    let (shutdown_complete_tx, mut shutdown_complete_rx) = mpsc::channel(1);
    let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    let limits = settings.limits;
    let max_buffered = limits.max_value_len + limits.max_get_line_len + limits.max_line_len;
    let mut accept = Acceptor {
        limit: Arc::new(Semaphore::new(settings.max_connections)),
        shared: Arc::new(Shared {
            settings,
            stats: ServerStats::default(),
            verbosity: AtomicU32::new(0),
            port,
            max_buffered,
        }),
        listener,
        coordinator,
        notify_shutdown,
        shutdown_complete_tx,
        next_session: AtomicU64::new(1),
    };
    tokio::select! {
        result = accept.run() => {
            if let Err(err) = result {
                tracing::error!(%err, "accepting connections failed");
            }
        }
        _ = shutdown => tracing::info!("shutting down: no longer accepting connections"),
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
            };
            tokio::spawn(async move {
                if let Err(err) = handler.run().await {
                    tracing::debug!(session = id, %err, "connection ended with an error");
                }
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

/// Tells a client over the limit so, as memcached does, and closes its connection.
async fn reject(mut socket: TcpStream) {
    let _ = socket.write_all(TOO_MANY_CONNECTIONS).await;
    let _ = socket.shutdown().await;
}
