//! One pipelined connection to the backend.
//!
//! Callers hand [`Job`]s to the connection through a bounded channel; a writer loop batches
//! every job waiting into one write, and a reader loop parses replies and hands each to the
//! oldest caller still waiting, since memcached answers strictly in order. Consecutive `get`s
//! in one batch travel as one multi-key `get` (see [`Owed::Merged`]). The writer queues a
//! job's reply slot *before* writing its bytes, so the reader always finds the slot for a reply.
//! Both loops run in one task (`select!`): when either fails, or the connection is killed
//! after a timeout, the whole connection is dropped, and with it every reply slot, so every
//! caller still waiting learns at once that its request failed.

use super::MAX_GET_LINE;
use crate::gather::gather;
use crate::protocol::{parse_response, Limits, Request, Response, ResponseOutcome, Value};
use crate::socket::read_available;
use bytes::{Buf, Bytes, BytesMut};
use std::io;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// One request on its way to the backend, with where its reply goes.
pub(super) struct Job {
    /// The request to send.
    pub(super) request: Request,
    /// Receives the reply; dropped unanswered when the connection fails.
    pub(super) reply: oneshot::Sender<Response>,
}

/// Bytes gathered into one write before it is sent.
const BATCH_BYTES: usize = 64 * 1024;
/// Larger buffers than this are released after use rather than kept for the next batch.
const KEEP_BUFFER: usize = 1024 * 1024;

/// What limits replies from the backend: its values may be as large as it was configured to
/// hold (up to memcached's 1 GiB `-I` maximum), and keys as long as memcached's.
pub(super) fn backend_limits() -> Limits {
    Limits {
        max_value_len: 1 << 30,
        ..Limits::default()
    }
}

/// Why a connection ended.
pub(super) enum Ended {
    /// The socket failed or the backend closed it.
    Io(io::Error),
    /// The backend sent something that is not a memcache reply (or a reply nobody asked for).
    Protocol(String),
    /// A request on it timed out (or the store is shutting down).
    Killed,
}

/// Runs one connection until it fails or `kill` fires; `jobs` stays usable for inspection.
pub(super) async fn serve(
    stream: TcpStream,
    jobs: &mut mpsc::Receiver<Job>,
    kill: &CancellationToken,
) -> Ended {
    let (reader, writer) = stream.into_split();
    let (owed_tx, owed_rx) = mpsc::unbounded_channel();
    tokio::select! {
        ended = write_loop(writer, jobs, owed_tx) => ended,
        ended = read_loop(reader, owed_rx) => ended,
        _ = kill.cancelled() => Ended::Killed,
    }
}

impl std::fmt::Debug for Ended {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ended::Io(err) => write!(f, "io: {err}"),
            Ended::Protocol(reason) => write!(f, "protocol: {reason}"),
            Ended::Killed => write!(f, "killed"),
        }
    }
}

/// What the reader owes for one request line on the wire, in write order.
pub(super) enum Owed {
    /// One caller's request: its reply goes to it whole.
    One(oneshot::Sender<Response>),
    /// Several callers' `get`s sent as one multi-key `get` (memcached answers a multi-key get
    /// with one write, but each pipelined single-key get with a write of its own): the reply's
    /// values are handed back to each caller in key order.
    Merged(Vec<MergedGet>),
}

/// One caller's share of a merged `get`.
pub(super) struct MergedGet {
    keys: Vec<Bytes>,
    reply: oneshot::Sender<Response>,
}

/// Consecutive `get`s (or `gets`) being gathered into one request line.
struct GetGroup {
    with_cas: bool,
    line: usize,
    callers: Vec<MergedGet>,
}

/// One write's worth of requests, composed as they are taken from the queue.
struct Batch {
    buf: BytesMut,
    group: Option<GetGroup>,
}

impl Batch {
    /// Adds one job: a `get` joins the group being gathered, anything else ends it.
    fn push(&mut self, job: Job, owed: &mpsc::UnboundedSender<Owed>) {
        // A caller that already gave up (timed out) need not cost the backend anything.
        if job.reply.is_closed() {
            return;
        }
        match job.request {
            Request::Get { keys, with_cas } if !keys.is_empty() => {
                let line = keys.iter().map(|key| key.len() + 1).sum::<usize>();
                if let Some(group) = &mut self.group {
                    if group.with_cas == with_cas && group.line + line <= MAX_GET_LINE {
                        group.line += line;
                        group.callers.push(MergedGet {
                            keys,
                            reply: job.reply,
                        });
                        return;
                    }
                }
                self.end_group(owed);
                self.group = Some(GetGroup {
                    with_cas,
                    line: GET_LINE_OVERHEAD + line,
                    callers: vec![MergedGet {
                        keys,
                        reply: job.reply,
                    }],
                });
            }
            request => {
                self.end_group(owed);
                if owed.send(Owed::One(job.reply)).is_ok() {
                    request.compose(&mut self.buf);
                }
            }
        }
    }

    /// Composes the gathered `get`s: one caller's as it was, several as one multi-key line.
    fn end_group(&mut self, owed: &mpsc::UnboundedSender<Owed>) {
        let Some(GetGroup {
            with_cas,
            mut callers,
            ..
        }) = self.group.take()
        else {
            return;
        };
        if callers.len() == 1 {
            let MergedGet { keys, reply } = callers.pop().expect("one caller");
            if owed.send(Owed::One(reply)).is_ok() {
                Request::Get { keys, with_cas }.compose(&mut self.buf);
            }
            return;
        }
        let keys = callers
            .iter()
            .flat_map(|caller| caller.keys.iter().cloned())
            .collect();
        if owed.send(Owed::Merged(callers)).is_ok() {
            Request::Get { keys, with_cas }.compose(&mut self.buf);
        }
    }
}

/// Most times the writer lets other tasks run while more jobs keep arriving, before it writes.
const MAX_GATHER_ROUNDS: usize = 4;

/// Bytes of `gets` and the line end around a `get` line's keys.
const GET_LINE_OVERHEAD: usize = 6;

async fn write_loop(
    mut writer: OwnedWriteHalf,
    jobs: &mut mpsc::Receiver<Job>,
    owed: mpsc::UnboundedSender<Owed>,
) -> Ended {
    let mut batch = Batch {
        buf: BytesMut::with_capacity(BATCH_BYTES),
        group: None,
    };
    while let Some(job) = jobs.recv().await {
        batch.push(job, &owed);
        // Jobs of client handlers woken in the same poll join this write instead of each
        // costing the proxy and the backend a syscall of its own.
        if batch.buf.len() < BATCH_BYTES {
            gather(jobs, MAX_GATHER_ROUNDS, |job| {
                batch.push(job, &owed);
                batch.buf.len() < BATCH_BYTES
            })
            .await;
        }
        batch.end_group(&owed);
        if let Err(err) = writer.write_all(&batch.buf).await {
            return Ended::Io(err);
        }
        batch.buf.clear();
        if batch.buf.capacity() > KEEP_BUFFER {
            batch.buf = BytesMut::with_capacity(BATCH_BYTES);
        }
    }
    // Every sender is gone: the store was dropped.
    Ended::Killed
}

/// Hands a merged `get`'s reply back to its callers: memcached answers hits in request order
/// and skips misses, so each caller takes the values that match its keys in turn. Any other
/// reply (a server error) goes to every caller.
fn split_merged(callers: Vec<MergedGet>, response: Response) -> Result<(), Ended> {
    let Response::Values(values) = response else {
        for caller in callers {
            let _ = caller.reply.send(response.clone());
        }
        return Ok(());
    };
    let mut values = values.into_iter().peekable();
    for caller in callers {
        let mine: Vec<Value> = caller
            .keys
            .iter()
            .filter_map(|key| values.next_if(|value| value.key == *key))
            .collect();
        let _ = caller.reply.send(Response::Values(mine));
    }
    match values.next() {
        Some(value) => Err(Ended::Protocol(format!(
            "unrequested key {:?} in a merged get",
            value.key
        ))),
        None => Ok(()),
    }
}

async fn read_loop(reader: OwnedReadHalf, mut owed: mpsc::UnboundedReceiver<Owed>) -> Ended {
    let limits = backend_limits();
    let mut buf = BytesMut::with_capacity(BATCH_BYTES);
    loop {
        loop {
            match parse_response(&buf, &limits) {
                ResponseOutcome::Incomplete => break,
                ResponseOutcome::Response { response, consumed } => {
                    buf.advance(consumed);
                    match owed.try_recv() {
                        // The caller may have timed out meanwhile; its reply is simply dropped.
                        Ok(Owed::One(reply)) => {
                            let _ = reply.send(response);
                        }
                        Ok(Owed::Merged(callers)) => {
                            if let Err(ended) = split_merged(callers, response) {
                                return ended;
                            }
                        }
                        Err(_) => {
                            return Ended::Protocol(format!("unsolicited reply {response:?}"))
                        }
                    }
                }
                ResponseOutcome::Invalid(reason) => return Ended::Protocol(reason),
            }
        }
        if buf.capacity() - buf.len() < 4096 {
            buf.reserve(BATCH_BYTES);
        }
        match read_available(reader.as_ref(), &mut buf).await {
            Ok(0) => {
                return Ended::Io(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "backend closed the connection",
                ))
            }
            Ok(_) => {}
            Err(err) => return Ended::Io(err),
        }
    }
}
