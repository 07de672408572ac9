//! The writer thread: the one owner of the log file.
//!
//! **Group commit.** `append`, `truncate` and `purge` change the in-memory log at once and
//! queue their record (a [`Job`]); the thread writes every record queued meanwhile with one
//! `write` and one `fdatasync`, then tells each waiter (openraft, through an append's
//! [`LogFlushed`]) that its record is durable. So an fsync never blocks the async runtime, and
//! one fsync covers as many appends as arrive while the previous one runs. Records reach the
//! file in queue order, which is call order, so the file replays to the in-memory log. After
//! each group the thread also lets applied entries leave memory, drives a compaction (see
//! [`super::compaction`]) and has the file grown ahead of the records.

use super::super::TypeConfig;
use super::compaction::Compaction;
use super::file::LogFile;
use super::Shared;
use openraft::storage::LogFlushed;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Weak};
use tokio::sync::oneshot;

/// How often a writer with nothing to write checks on a compaction under way.
const COMPACTION_POLL: std::time::Duration = std::time::Duration::from_millis(50);
/// Most records written with one `write` and one fsync.
const MAX_GROUP: usize = 4096;

/// Who waits for a queued record to be durable.
pub(super) enum Waiter {
    /// openraft, for an append.
    Raft(LogFlushed<TypeConfig>),
    /// A truncate or purge call.
    Call(oneshot::Sender<std::io::Result<()>>),
}

/// A record (already encoded) for the writer thread.
pub(super) struct Job {
    /// The framed record.
    pub(super) bytes: Vec<u8>,
    /// Who is told once it is durable.
    pub(super) waiter: Waiter,
    /// Whether the file may be compacted after this record (purges).
    pub(super) compact: bool,
}

/// The thread that owns the log file.
pub(super) struct Writer {
    /// The log's shared state; gone once every `LogStore` is dropped.
    pub(super) shared: Weak<Shared>,
    /// The data directory holding the file.
    pub(super) dir: PathBuf,
    /// Whether each group is fsynced.
    pub(super) fsync: bool,
    /// The file records are written to.
    pub(super) log: LogFile,
    /// How many records the file holds (live and dead).
    pub(super) records: usize,
    /// A rewrite of the file under way, if any.
    pub(super) compaction: Option<Compaction>,
}

impl Writer {
    /// Writes queued records in groups, one fsync per group, until every `LogStore` is gone.
    pub(super) fn run(mut self, queue: mpsc::Receiver<Job>) {
        let mut out = Vec::with_capacity(1 << 20);
        while let Some(group) = self.next_group(&queue) {
            let result = self.write_group(&group, &mut out);
            acknowledge(group, &result);
            // Grow the file ahead of the records, beside the writer rather than in its way.
            self.log.grow_in_background();
        }
    }

    /// The next job and every one queued behind it (at most [`MAX_GROUP`]); `None` once
    /// every `LogStore` is gone.
    fn next_group(&mut self, queue: &mpsc::Receiver<Job>) -> Option<Vec<Job>> {
        let first = loop {
            // While a rewrite is under way, wake now and then to install it when it is done.
            if self.compaction.is_none() {
                break queue.recv().ok()?;
            }
            match queue.recv_timeout(COMPACTION_POLL) {
                Ok(job) => break job,
                Err(mpsc::RecvTimeoutError::Timeout) => self.finish_compaction(),
                Err(mpsc::RecvTimeoutError::Disconnected) => return None,
            }
        };
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match queue.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        Some(group)
    }

    /// Writes `group`'s records (framed into `out`) after the last one, with one fsync, then
    /// lets applied entries leave memory and drives the compaction.
    fn write_group(&mut self, group: &[Job], out: &mut Vec<u8>) -> std::io::Result<()> {
        out.clear();
        for job in group {
            out.extend_from_slice(&job.bytes);
        }
        let result = self.log.append(out, self.fsync);
        self.records += group.len();
        if result.is_ok() {
            self.written();
            if let Some(compaction) = &mut self.compaction {
                compaction.appended(out, group.len());
            }
            self.finish_compaction();
            if group.iter().any(|job| job.compact) {
                self.maybe_compact();
            }
        }
        result
    }

    /// Records how far the file is written and lets applied entries leave memory.
    fn written(&self) {
        let Some(shared) = self.shared.upgrade() else {
            return;
        };
        let applied = shared.applied.load(Ordering::Acquire);
        let mut window = shared.window.lock();
        window.written_end = self.log.end;
        window.evict(shared.memory_limit, applied);
    }
}

/// Tells every waiter of `group` how writing it went.
fn acknowledge(group: Vec<Job>, result: &std::io::Result<()>) {
    for job in group {
        let copy = match result {
            Ok(()) => Ok(()),
            Err(e) => Err(std::io::Error::new(e.kind(), e.to_string())),
        };
        match job.waiter {
            Waiter::Raft(flushed) => flushed.log_io_completed(copy),
            Waiter::Call(done) => {
                let _ = done.send(copy);
            }
        }
    }
}
