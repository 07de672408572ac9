//! One client connection: bytes in, requests to the coordinator, replies out.
//!
//! The handler parses every complete request already in the read buffer, answers each in order
//! into one output buffer and writes that buffer once, when no complete request is left. A
//! client that pipelines a hundred requests in one segment gets its hundred replies in one
//! write, which is where most of a proxy's throughput comes from.
//!
//! A connection holds its buffers only while it has bytes to parse or replies to send: between
//! requests they go back to a small per-thread pool (as memcached hands its read buffers back
//! to a per-thread cache), so ten thousand idle clients cost a few KiB each, not two buffers.

use super::admin::{AdminAnswer, PrefixOp};
use super::shutdown::Shutdown;
use super::stats::{ConnCounters, Tally};
use super::Shared;
use crate::modes::{Coordinator, Session};
use crate::protocol::{parse_request, AfterError, ParseOutcome, Request, Response, VERSION};
use crate::socket::read_draining;
use bytes::{Buf, BytesMut};
use std::io;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// Read buffer's initial capacity; grows only for large data blocks.
const READ_CAPACITY: usize = 16 * 1024;

/// Buffers of connections between requests, kept per thread for the next one that reads.
mod pool {
    use super::READ_CAPACITY;
    use bytes::BytesMut;
    use std::cell::RefCell;

    /// Most buffers kept per thread.
    const KEEP: usize = 256;
    /// Larger buffers (grown for big values) are freed instead of kept.
    const KEEP_CAPACITY: usize = 4 * READ_CAPACITY;

    thread_local! {
        static FREE: RefCell<Vec<BytesMut>> = const { RefCell::new(Vec::new()) };
    }

    /// A buffer with room for a read.
    pub(super) fn take() -> BytesMut {
        let mut buf = FREE
            .with(|free| free.borrow_mut().pop())
            .unwrap_or_else(|| BytesMut::with_capacity(READ_CAPACITY));
        // Reclaims the space of bytes consumed before the buffer came back.
        buf.reserve(READ_CAPACITY);
        buf
    }

    /// Hands back an empty buffer (leaving an empty, unallocated one in its place).
    pub(super) fn give(buf: &mut BytesMut) {
        debug_assert!(buf.is_empty());
        let buf = std::mem::take(buf);
        if buf.capacity() == 0 || buf.capacity() > KEEP_CAPACITY {
            return;
        }
        FREE.with(|free| {
            let mut free = free.borrow_mut();
            if free.len() < KEEP {
                free.push(buf);
            }
        });
    }
}

/// Most writes of one pipeline served together (a bound on what one batch holds).
const MAX_PIPELINED: usize = 128;

/// Replies buffered beyond this are written out before the batch ends, so a long pipeline of
/// large `get`s cannot hold unbounded memory.
const OUTPUT_HIGH_WATER: usize = 1024 * 1024;

/// A client socket with its read buffer and its output buffer.
#[derive(Debug)]
pub struct Connection {
    stream: TcpStream,
    pub(super) input: BytesMut,
    pub(super) output: BytesMut,
}

impl Connection {
    /// Wraps an accepted socket.
    pub fn new(stream: TcpStream) -> Connection {
        Connection {
            stream,
            input: BytesMut::new(),
            output: BytesMut::new(),
        }
    }

    /// Reads whatever the client sent next into the read buffer; `Ok(0)` is end of stream.
    /// Waits without a buffer: one is taken only once the socket is readable.
    pub async fn read_more(&mut self) -> io::Result<usize> {
        loop {
            self.stream.readable().await?;
            if self.input.capacity() == 0 {
                self.input = pool::take();
            } else if self.input.capacity() - self.input.len() < 1024 {
                self.input.reserve(READ_CAPACITY);
            }
            match read_draining(&self.stream, &mut self.input) {
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => self.release_idle(),
                read => return read,
            }
        }
    }

    /// Hands the buffers back to the pool when nothing is buffered in them.
    pub fn release_idle(&mut self) {
        if self.input.is_empty() {
            pool::give(&mut self.input);
        }
        if self.output.is_empty() {
            pool::give(&mut self.output);
        }
    }

    /// Makes sure the output buffer has room before replies are composed into it.
    fn ready_output(&mut self) {
        if self.output.capacity() == 0 {
            self.output = pool::take();
        }
    }

    /// Writes every buffered reply; returns how many bytes went out.
    pub async fn flush(&mut self) -> io::Result<usize> {
        let n = self.output.len();
        if n > 0 {
            self.stream.write_all(&self.output).await?;
            self.output.clear();
        }
        Ok(n)
    }

    /// Appends raw bytes to the output buffer.
    pub fn write_raw(&mut self, bytes: &[u8]) {
        self.output.extend_from_slice(bytes);
    }
}

/// Whether the connection stays open after a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Flow {
    Open,
    Close,
}

/// The protocol a connection speaks, decided by its first byte as memcached decides it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Wire {
    /// Nothing received yet.
    #[default]
    Undecided,
    /// The text protocol (classic and meta commands).
    Text,
    /// The binary protocol (first byte `0x80`).
    Binary,
}

/// Serves one connection until the client leaves, misbehaves, idles out or the server stops.
pub(crate) struct Handler<C: Coordinator> {
    pub(crate) conn: Connection,
    pub(crate) coordinator: Arc<C>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) session: Session,
    pub(crate) shutdown: Shutdown,
    /// Dropped when the handler ends, telling the server one fewer connection is draining.
    pub(crate) _shutdown_complete: mpsc::Sender<()>,
    /// This batch's counters, folded into the shared ones at each flush.
    pub(crate) counters: ConnCounters,
    /// Bytes of a rejected data block still to be discarded as they arrive.
    pub(crate) swallow: usize,
    /// The protocol this connection speaks.
    pub(crate) wire: Wire,
    /// When this connection last sent a command, for `stats conns` (coarse unix seconds).
    pub(crate) last_cmd: Arc<std::sync::atomic::AtomicU64>,
}

impl<C: Coordinator> Handler<C> {
    /// Runs the connection to its end.
    pub(crate) async fn run(&mut self) -> io::Result<()> {
        let idle = self.shared.settings.idle_timeout;
        loop {
            self.conn.ready_output();
            let flow = self.process_buffered().await;
            let flushed = self.flush().await;
            if flow? == Flow::Close {
                return flushed;
            }
            flushed?;
            self.conn.release_idle();
            let read = tokio::select! {
                read = self.conn.read_more() => read?,
                _ = self.shutdown.recv() => return Ok(()),
                _ = idle_sleep(idle) => {
                    tracing::debug!(session = self.session.id, "closing idle connection");
                    return Ok(());
                }
            };
            if read == 0 {
                return Ok(());
            }
            self.counters.bytes_read += read as u64;
            let now = self.shared.now_secs.load(Relaxed);
            self.last_cmd.store(now, Relaxed);
        }
    }

    /// Writes the buffered replies and publishes this batch's counters.
    async fn flush(&mut self) -> io::Result<()> {
        let written = self.conn.flush().await;
        if let Ok(n) = written {
            self.counters.bytes_written += n as u64;
        }
        self.shared.stats.counters.fold(&mut self.counters);
        written.map(|_| ())
    }

    /// Answers every complete request in the read buffer, in the connection's protocol.
    async fn process_buffered(&mut self) -> io::Result<Flow> {
        if self.wire == Wire::Undecided {
            match self.conn.input.first() {
                None => return Ok(Flow::Open),
                Some(&crate::protocol::binary::REQUEST_MAGIC) => self.wire = Wire::Binary,
                Some(_) => self.wire = Wire::Text,
            }
        }
        match self.wire {
            Wire::Binary => self.process_binary().await,
            _ => self.process_text().await,
        }
    }

    /// Discards what is left of a rejected data block; `false` while some is still to come.
    pub(super) fn swallow_pending(&mut self) -> bool {
        if self.swallow > 0 {
            let n = self.swallow.min(self.conn.input.len());
            self.conn.input.advance(n);
            self.swallow -= n;
        }
        self.swallow == 0
    }

    /// Writes the replies out early once they pass the high-water mark.
    pub(super) async fn flush_if_full(&mut self) -> io::Result<()> {
        if self.conn.output.len() >= OUTPUT_HIGH_WATER {
            self.flush().await?;
        }
        Ok(())
    }

    /// Answers every complete text request in the read buffer.
    async fn process_text(&mut self) -> io::Result<Flow> {
        let mut pipelined: Vec<Request> = Vec::new();
        loop {
            if !self.swallow_pending() || self.conn.input.is_empty() {
                self.serve_pipelined(&mut pipelined).await;
                return Ok(Flow::Open);
            }
            let parsed = match parse_request(&self.conn.input, &self.shared.settings.limits) {
                // Writes the mode serves together wait for the rest of the pipeline.
                ParseOutcome::Request { request, consumed } if self.joins(&pipelined, &request) => {
                    self.conn.input.advance(consumed);
                    pipelined.push(request);
                    continue;
                }
                other => other,
            };
            // Anything else is answered after the writes before it.
            self.serve_pipelined(&mut pipelined).await;
            match parsed {
                ParseOutcome::Incomplete => {
                    if self.conn.input.len() > self.shared.max_buffered {
                        // The parser bounds lines and blocks itself; this is a backstop so a
                        // parser gap can never become unbounded memory.
                        Response::ClientError("line too long".into())
                            .compose(&mut self.conn.output);
                        return Ok(Flow::Close);
                    }
                    return Ok(Flow::Open);
                }
                ParseOutcome::Request { request, consumed } => {
                    self.conn.input.advance(consumed);
                    if self.serve(request).await == Flow::Close {
                        return Ok(Flow::Close);
                    }
                }
                ParseOutcome::Invalid {
                    reply,
                    consumed,
                    after,
                } => {
                    reply.compose(&mut self.conn.output);
                    self.conn.input.advance(consumed);
                    match after {
                        AfterError::Continue => {}
                        AfterError::Swallow(n) => self.swallow = n,
                        AfterError::Close => return Ok(Flow::Close),
                    }
                }
            }
            self.flush_if_full().await?;
        }
    }

    /// Whether `request` joins the writes gathered from this pipeline (`stats detail` counts
    /// every request on its own, so it turns the gathering off).
    fn joins(&self, pipelined: &[Request], request: &Request) -> bool {
        pipelined.len() < MAX_PIPELINED
            && self.coordinator.batches(request)
            && !self.shared.admin.detail_enabled.load(Relaxed)
    }

    /// Answers the writes gathered from one pipeline, in order, in one batch.
    async fn serve_pipelined(&mut self, pipelined: &mut Vec<Request>) {
        match pipelined.len() {
            0 => {}
            1 => {
                let request = pipelined.pop().expect("one request");
                // A lone write is an ordinary request (its reply may close nothing).
                let _ = self.serve(request).await;
            }
            _ => {
                let requests = std::mem::take(pipelined);
                let mut answers = Vec::with_capacity(requests.len());
                for request in &requests {
                    answers.push((Tally::of(request), request.noreply()));
                }
                let replies = self
                    .coordinator
                    .handle_batch(&mut self.session, requests)
                    .await;
                for ((tally, noreply), reply) in answers.into_iter().zip(replies) {
                    self.counters.record(tally, &reply);
                    suppressed(noreply, reply).compose(&mut self.conn.output);
                }
            }
        }
    }

    /// Answers one request into the output buffer.
    async fn serve(&mut self, request: Request) -> Flow {
        let answer = serve_request(
            &self.shared,
            &*self.coordinator,
            &mut self.session,
            &mut self.counters,
            request,
        )
        .await;
        answer.reply.compose(&mut self.conn.output);
        match answer.next {
            Next::Continue => Flow::Open,
            Next::Swallow(n) => {
                self.swallow = n;
                Flow::Open
            }
            Next::Close => Flow::Close,
        }
    }
}

/// What a connection does after a request's reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    /// Read the next request.
    Continue,
    /// Discard this many bytes first (an oversized value's block).
    Swallow(usize),
    /// Close (`quit`, `shutdown`).
    Close,
}

/// One request's reply and what follows it.
#[derive(Debug)]
pub(crate) struct Answer {
    /// The reply (nothing for `Response::None`).
    pub(crate) reply: Response,
    /// What the connection does next.
    pub(crate) next: Next,
}

impl Answer {
    fn reply(reply: Response) -> Answer {
        Answer {
            reply,
            next: Next::Continue,
        }
    }
}

/// Serves one parsed request, whatever transport it came by (TCP, UDP): connection-level
/// requests here, data requests through the coordinator, counted in `counters`.
pub(crate) async fn serve_request<C: Coordinator>(
    shared: &Shared,
    coordinator: &C,
    session: &mut Session,
    counters: &mut ConnCounters,
    request: Request,
) -> Answer {
    let reply = match request {
        Request::Quit => {
            return Answer {
                reply: Response::None,
                next: Next::Close,
            }
        }
        Request::Version => Response::Version(VERSION.to_string()),
        Request::MetaNoop => Response::MetaNoop,
        Request::Verbosity { level, noreply } => {
            // memcached caps the level at its MAX_VERBOSITY_LEVEL (2).
            shared.verbosity.store(level.min(2), Relaxed);
            if noreply {
                Response::None
            } else {
                Response::Ok
            }
        }
        Request::Stats { group } => shared.stats_reply(coordinator, group).await,
        Request::Admin { command, noreply } => {
            match super::admin::answer(shared, coordinator, session.id, command).await {
                AdminAnswer::Shutdown => {
                    return Answer {
                        reply: Response::None,
                        next: Next::Close,
                    }
                }
                AdminAnswer::Reply(_) if noreply => Response::None,
                AdminAnswer::Reply(reply) => reply,
            }
        }
        Request::Oversized {
            op,
            key,
            swallow,
            noreply,
        } => {
            return oversized(
                shared,
                coordinator,
                session,
                counters,
                op,
                key,
                swallow,
                noreply,
            )
            .await
        }
        request => {
            let tally = Tally::of(&request);
            let noreply = request.noreply();
            let detail = shared
                .admin
                .detail_enabled
                .load(Relaxed)
                .then(|| request.clone());
            let reply = coordinator.handle(session, request).await;
            counters.record(tally, &reply);
            if let Some(request) = detail {
                record_detail(shared, &request, &reply);
            }
            suppressed(noreply, reply)
        }
    };
    Answer::reply(reply)
}

/// The reply a client gets: coordinators answer as if `noreply` were absent so that the
/// counters see the outcome; like memcached, only server errors still reach a noreply client.
fn suppressed(noreply: bool, reply: Response) -> Response {
    if noreply && !matches!(reply, Response::ServerError(_)) {
        Response::None
    } else {
        reply
    }
}

/// A value above the size limit: swallow its block, answer `SERVER_ERROR object too large
/// for cache` (silenced by `noreply`), and for `set` drop the key's old item, as memcached
/// does, with a delete through the coordinator so that every replica drops it.
#[allow(clippy::too_many_arguments)]
async fn oversized<C: Coordinator>(
    shared: &Shared,
    coordinator: &C,
    session: &mut Session,
    counters: &mut ConnCounters,
    op: crate::protocol::StoreOp,
    key: bytes::Bytes,
    swallow: usize,
    noreply: bool,
) -> Answer {
    counters.store_too_large += 1;
    if shared.admin.detail_enabled.load(Relaxed) {
        shared.admin.record(&key, PrefixOp::Set);
    }
    let mut reply = Response::ServerError(crate::protocol::TOO_LARGE.to_owned());
    if op == crate::protocol::StoreOp::Set {
        let unlink = Request::Delete {
            key,
            noreply: false,
        };
        if let failed @ Response::ServerError(_) = coordinator.handle(session, unlink).await {
            // The old item may still be there (no quorum, backend down): say so instead.
            reply = failed;
        }
    }
    Answer {
        reply: if noreply
            && matches!(reply, Response::ServerError(ref r) if r == crate::protocol::TOO_LARGE)
        {
            Response::None
        } else {
            reply
        },
        next: Next::Swallow(swallow),
    }
}

/// Counts a request's keys per prefix for `stats detail`, as memcached does: every key of a
/// `get`/`gat` (and whether it hit), storage commands, deletes.
#[cold]
fn record_detail(shared: &Shared, request: &Request, reply: &Response) {
    let admin = &shared.admin;
    match request {
        Request::Get { keys, .. } | Request::Gat { keys, .. } => {
            let hits: &[crate::protocol::Value] = match reply {
                Response::Values(values) => values,
                _ => &[],
            };
            for key in keys {
                let hit = hits.iter().any(|value| value.key == *key);
                admin.record(key, PrefixOp::Get(hit));
            }
        }
        Request::Store { key, .. } => admin.record(key, PrefixOp::Set),
        Request::Delete { key, .. } => admin.record(key, PrefixOp::Delete),
        _ => {}
    }
}

/// Sleeps for the idle timeout, or forever when there is none.
async fn idle_sleep(idle: Option<std::time::Duration>) {
    match idle {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}
