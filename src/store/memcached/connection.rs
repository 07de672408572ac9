//! One pipelined connection to the backend.
//!
//! Callers hand [`Job`]s to the connection through a bounded channel; a writer loop batches
//! every job waiting into one write, and a reader loop parses replies and hands each to the
//! oldest caller still waiting, since memcached answers strictly in order. The writer queues a
//! job's reply slot *before* writing its bytes, so the reader always finds the slot for a reply.
//! Both loops run in one task (`select!`): when either fails, or the connection is killed
//! after a timeout, the whole connection is dropped, and with it every reply slot, so every
//! caller still waiting learns at once that its request failed.

use crate::protocol::{parse_response, Limits, Request, Response, ResponseOutcome};
use bytes::{Buf, BytesMut};
use std::io;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
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
    let (inflight_tx, inflight_rx) = mpsc::unbounded_channel();
    tokio::select! {
        ended = write_loop(writer, jobs, inflight_tx) => ended,
        ended = read_loop(reader, inflight_rx) => ended,
        _ = kill.cancelled() => Ended::Killed,
    }
}

async fn write_loop(
    mut writer: OwnedWriteHalf,
    jobs: &mut mpsc::Receiver<Job>,
    inflight: mpsc::UnboundedSender<oneshot::Sender<Response>>,
) -> Ended {
    let mut buf = BytesMut::with_capacity(BATCH_BYTES);
    while let Some(job) = jobs.recv().await {
        push(&mut buf, job, &inflight);
        while buf.len() < BATCH_BYTES {
            match jobs.try_recv() {
                Ok(job) => push(&mut buf, job, &inflight),
                Err(_) => break,
            }
        }
        if let Err(err) = writer.write_all(&buf).await {
            return Ended::Io(err);
        }
        buf.clear();
        if buf.capacity() > KEEP_BUFFER {
            buf = BytesMut::with_capacity(BATCH_BYTES);
        }
    }
    // Every sender is gone: the store was dropped.
    Ended::Killed
}

fn push(buf: &mut BytesMut, job: Job, inflight: &mpsc::UnboundedSender<oneshot::Sender<Response>>) {
    // A caller that already gave up (timed out) need not cost the backend anything.
    if job.reply.is_closed() {
        return;
    }
    if inflight.send(job.reply).is_ok() {
        job.request.compose(buf);
    }
}

async fn read_loop(
    mut reader: OwnedReadHalf,
    mut inflight: mpsc::UnboundedReceiver<oneshot::Sender<Response>>,
) -> Ended {
    let limits = backend_limits();
    let mut buf = BytesMut::with_capacity(BATCH_BYTES);
    loop {
        loop {
            match parse_response(&buf, &limits) {
                ResponseOutcome::Incomplete => break,
                ResponseOutcome::Response { response, consumed } => {
                    buf.advance(consumed);
                    let Ok(slot) = inflight.try_recv() else {
                        return Ended::Protocol(format!("unsolicited reply {response:?}"));
                    };
                    // The caller may have timed out meanwhile; its reply is simply dropped.
                    let _ = slot.send(response);
                }
                ResponseOutcome::Invalid(reason) => return Ended::Protocol(reason),
            }
        }
        if buf.capacity() - buf.len() < 4096 {
            buf.reserve(BATCH_BYTES);
        }
        match reader.read_buf(&mut buf).await {
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
