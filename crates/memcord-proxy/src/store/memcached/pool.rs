//! A fixed number of pipelined connections, each kept alive by its own supervisor task.
//!
//! Each slot's supervisor connects (with a short connect timeout), publishes the live
//! connection's job channel in the slot, serves until the connection ends, withdraws it, and
//! reconnects with exponential backoff. Callers *fill, then spill*: they take the first live
//! connection with fewer than [`SPILL_AT`] requests in flight, so that under ordinary load every
//! request rides the same connection and many go out in one write (and come back in one read,
//! which is most of what a request costs memcached); only a backlog spreads over the others.
//! When no connection is live the backend is down and the call fails at once with
//! [`StoreError::Unavailable`] rather than waiting for a reconnect. Every call has a deadline:
//! a call that misses it answers [`StoreError::Timeout`] and kills its connection, since a
//! backend that stops answering one request in a FIFO pipeline answers none after it.

use super::connection::{serve, Job};
use super::instance::{identify, InstanceGuard};
use super::MemcachedConfig;
use crate::protocol::{Request, Response};
use crate::store::{StoreError, StoreResult};
use parking_lot::RwLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

const MIN_BACKOFF: Duration = Duration::from_millis(20);
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// A connection that lived at least this long was healthy: reconnect without waiting.
const HEALTHY: Duration = Duration::from_secs(1);

/// Requests in flight on one connection beyond which callers move on to the next one.
pub(super) const SPILL_AT: usize = 128;

/// A live connection as callers see it: where to send jobs, how loaded it is, how to kill it.
#[derive(Clone)]
pub(super) struct Conn {
    jobs: mpsc::Sender<Job>,
    in_flight: Arc<AtomicUsize>,
    kill: CancellationToken,
}

/// Counts one request in flight on a connection until dropped (answered or abandoned).
struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn start(counter: &Arc<AtomicUsize>) -> InFlight {
        counter.fetch_add(1, Ordering::Relaxed);
        InFlight(counter.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One pool position: the live connection, if any.
#[derive(Default)]
struct Slot {
    live: RwLock<Option<Conn>>,
}

/// The connection pool to one backend.
pub(super) struct Pool {
    slots: Box<[Arc<Slot>]>,
    request_timeout: Duration,
    shutdown: CancellationToken,
    /// The backend process every connection must reach, when pinned.
    instance: Option<Arc<InstanceGuard>>,
}

impl Pool {
    /// Starts one supervisor per slot (needs a tokio runtime); returns at once.
    pub(super) fn start(config: &MemcachedConfig) -> Pool {
        let shutdown = CancellationToken::new();
        let slots: Box<[Arc<Slot>]> = (0..config.pool_size.max(1))
            .map(|_| Arc::new(Slot::default()))
            .collect();
        let instance = config
            .pin_instance
            .then(|| Arc::new(InstanceGuard::default()));
        for slot in slots.iter() {
            tokio::spawn(supervise(
                slot.clone(),
                config.clone(),
                instance.clone(),
                shutdown.clone(),
            ));
        }
        Pool {
            slots,
            request_timeout: config.request_timeout,
            shutdown,
            instance,
        }
    }

    /// Fires when the backend turned out to be a different process (pinned pools only).
    pub(super) fn replaced(&self) -> Option<CancellationToken> {
        self.instance.as_ref().map(|guard| guard.replaced())
    }

    /// Whether any connection is live.
    pub(super) fn is_connected(&self) -> bool {
        self.slots.iter().any(|slot| slot.live.read().is_some())
    }

    /// The first live connection with room below [`SPILL_AT`], else the least loaded live
    /// one; `Unavailable` when the backend is down.
    pub(super) fn pick(&self) -> StoreResult<Conn> {
        if self
            .instance
            .as_ref()
            .is_some_and(|guard| guard.is_replaced())
        {
            return Err(StoreError::Replaced);
        }
        let mut least: Option<(usize, Conn)> = None;
        for slot in self.slots.iter() {
            let live = slot.live.read();
            let Some(conn) = live.as_ref().filter(|conn| !conn.jobs.is_closed()) else {
                continue;
            };
            let load = conn.in_flight.load(Ordering::Relaxed);
            if load < SPILL_AT {
                return Ok(conn.clone());
            }
            if !least.as_ref().is_some_and(|(fewest, _)| *fewest <= load) {
                least = Some((load, conn.clone()));
            }
        }
        least.map(|(_, conn)| conn).ok_or(StoreError::Unavailable)
    }

    /// The deadline for a call starting now.
    pub(super) fn deadline(&self) -> Instant {
        Instant::now() + self.request_timeout
    }

    /// Sends one request and waits for its reply.
    pub(super) async fn call(&self, request: Request) -> StoreResult<Response> {
        let deadline = self.deadline();
        let conn = self.pick()?;
        let pending = conn.submit(request, deadline).await?;
        pending.reply().await
    }

    /// Sends several requests back to back on one connection and waits for all replies.
    pub(super) async fn call_many(&self, requests: Vec<Request>) -> StoreResult<Vec<Response>> {
        let deadline = self.deadline();
        let conn = self.pick()?;
        let mut pending = Vec::with_capacity(requests.len());
        for request in requests {
            pending.push(conn.submit(request, deadline).await?);
        }
        let mut replies = Vec::with_capacity(pending.len());
        for pending in pending {
            replies.push(pending.reply().await?);
        }
        Ok(replies)
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A request sent, its reply not yet received.
pub(super) struct Pending {
    reply: oneshot::Receiver<Response>,
    deadline: Instant,
    kill: CancellationToken,
    _in_flight: InFlight,
}

impl Conn {
    /// Queues `request` on this connection (waiting for room until `deadline`).
    pub(super) async fn submit(&self, request: Request, deadline: Instant) -> StoreResult<Pending> {
        let (tx, rx) = oneshot::channel();
        let job = Job { request, reply: tx };
        let in_flight = InFlight::start(&self.in_flight);
        match tokio::time::timeout_at(deadline, self.jobs.send(job)).await {
            Ok(Ok(())) => Ok(Pending {
                reply: rx,
                deadline,
                kill: self.kill.clone(),
                _in_flight: in_flight,
            }),
            Ok(Err(_)) => Err(StoreError::Unavailable),
            Err(_) => {
                self.kill.cancel();
                Err(StoreError::Timeout)
            }
        }
    }
}

impl Pending {
    /// Waits for the reply until the call's deadline.
    pub(super) async fn reply(self) -> StoreResult<Response> {
        match tokio::time::timeout_at(self.deadline, self.reply).await {
            Ok(Ok(response)) => Ok(response),
            // The connection failed with the request in flight.
            Ok(Err(_)) => Err(StoreError::Unavailable),
            Err(_) => {
                self.kill.cancel();
                Err(StoreError::Timeout)
            }
        }
    }
}

/// Keeps one slot connected until shutdown (or, pinned, until the backend is replaced).
async fn supervise(
    slot: Arc<Slot>,
    config: MemcachedConfig,
    instance: Option<Arc<InstanceGuard>>,
    shutdown: CancellationToken,
) {
    let mut backoff = MIN_BACKOFF;
    while !shutdown.is_cancelled() {
        let connected = tokio::select! {
            connected = connect(&config, instance.as_deref()) => connected,
            _ = shutdown.cancelled() => return,
        };
        if instance.as_ref().is_some_and(|guard| guard.is_replaced()) {
            // Never serve from a backend that lost our items: the peer stops instead.
            return;
        }
        let lived = match connected {
            Ok(stream) => {
                let started = Instant::now();
                let (jobs_tx, mut jobs) = mpsc::channel(config.queue_depth.max(1));
                let kill = shutdown.child_token();
                *slot.live.write() = Some(Conn {
                    jobs: jobs_tx,
                    in_flight: Arc::new(AtomicUsize::new(0)),
                    kill: kill.clone(),
                });
                let ended = serve(stream, &mut jobs, &kill).await;
                // Withdraw first so no caller queues behind a dead connection, then drop the
                // queue so callers already queued fail now.
                *slot.live.write() = None;
                drop(jobs);
                if !shutdown.is_cancelled() {
                    tracing::warn!(addr = %config.addr, ?ended, "backend connection ended");
                }
                started.elapsed()
            }
            Err(err) => {
                tracing::debug!(addr = %config.addr, %err, "backend connect failed");
                Duration::ZERO
            }
        };
        if lived >= HEALTHY {
            backoff = MIN_BACKOFF;
            continue;
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = shutdown.cancelled() => return,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Connects to the backend; a pinned pool also checks that it is the same process.
async fn connect(
    config: &MemcachedConfig,
    instance: Option<&InstanceGuard>,
) -> std::io::Result<TcpStream> {
    let mut stream = tokio::time::timeout(config.connect_timeout, TcpStream::connect(&config.addr))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timeout"))??;
    stream.set_nodelay(true)?;
    if let Some(guard) = instance {
        let deadline = Instant::now() + config.request_timeout;
        let seen = identify(&mut stream, deadline)
            .await
            .map_err(std::io::Error::other)?;
        if !guard.admit(seen) {
            return Err(std::io::Error::other("a different memcached process"));
        }
    }
    Ok(stream)
}
