//! The Raft log and vote, kept in memory and persisted to the peer's data directory.
//!
//! ```text
//! openraft ─append / truncate / purge─▶ LogStore ─▶ window: entries, their locations
//!                                               └─▶ job (the framed record) ─▶ writer
//! writer thread ─one write + fdatasync per group─▶ data_dir/peer-N/log ─▶ LogFlushed
//!               └─ after a purge, if dead records dominate ─▶ rewrite thread (compaction)
//! helper thread ─zeros ahead of the records, fsynced─▶ the same file
//! openraft ─try_get_log_entries─▶ window: from memory, or records read back from the file
//! open: the vote file, then the log file replayed into the window
//! ```
//!
//! The parts, one concern each: `record` (the record format and its replay), `file` (the
//! file, opening and repairing it, growing it ahead of the records), `writer` (the thread
//! that owns the file, one fsync per group of records), `compaction` (rewriting the file
//! with only the live state, and the retired runs of replaced files), `window` (the log in
//! memory: the newest entries, where every live entry's record lies, reading older ones
//! back), `vote` (the vote file) and `storage` (openraft's `RaftLogStorage` and
//! `RaftLogReader` over them).
//!
//! Why the pieces are there: openraft is told an append is durable only after its record is
//! fsynced, so a crash loses only records never acknowledged (replay stops at a torn last
//! record); one thread owns the file so that an fsync never blocks the async runtime and one
//! fsync serves every append queued meanwhile; the file is preallocated so that those fsyncs
//! flush data only, not the filesystem's journal; and only the newest entries stay in memory,
//! since the log holds every value written since the last snapshot.

mod compaction;
mod file;
mod record;
mod storage;
#[cfg(test)]
mod test_support;
#[cfg(test)]
mod tests;
mod vote;
mod window;
mod writer;

use super::{Entry, NodeId};
use openraft::Vote;
use parking_lot::Mutex;
use record::{encode, Record};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{mpsc, Arc};
use window::Window;
use writer::{Job, Waiter, Writer};

/// How much the log's entries in memory may weigh by default (see `window`).
pub const DEFAULT_MEMORY_LIMIT: u64 = 16 << 20;

/// What every clone of a [`LogStore`] and the writer thread share.
struct Shared {
    /// The data directory (`data_dir/peer-N`).
    dir: PathBuf,
    /// Whether votes and appends are fsynced.
    fsync: bool,
    /// The last vote, as saved.
    vote: Mutex<Option<Vote<NodeId>>>,
    /// The log openraft reads.
    window: Mutex<Window>,
    /// Records queued for the writer thread.
    jobs: mpsc::Sender<Job>,
    /// One past the index of the last entry the state machine applied (0: none).
    applied: Arc<AtomicU64>,
    /// How much the entries kept in memory may weigh.
    memory_limit: u64,
}

/// The log storage handed to openraft; clones share one log.
#[derive(Clone)]
pub struct LogStore {
    /// The log, the vote and the writer's queue.
    shared: Arc<Shared>,
}

impl LogStore {
    /// Opens (or creates) the log kept in `dir`; `fsync` makes every append durable before it
    /// is acknowledged. Applied entries beyond `memory_limit` bytes are read back from the
    /// file when needed.
    pub fn open(dir: &Path, fsync: bool, memory_limit: u64) -> std::io::Result<LogStore> {
        std::fs::create_dir_all(dir)?;
        let vote = vote::read_saved(dir)?;
        let mut contents = record::Contents::default();
        let (log, records) = file::open_log(dir, &mut contents)?;
        let window = Window::replayed(contents, log.end, log.file.try_clone()?);
        let (jobs, queue) = mpsc::channel();
        let shared = Arc::new(Shared {
            dir: dir.to_path_buf(),
            fsync,
            vote: Mutex::new(vote),
            window: Mutex::new(window),
            jobs,
            applied: Arc::default(),
            memory_limit,
        });
        let writer = Writer {
            shared: Arc::downgrade(&shared),
            dir: dir.to_path_buf(),
            fsync,
            log,
            records,
            compaction: None,
        };
        std::thread::Builder::new()
            .name("memcord-log".into())
            .spawn(move || writer.run(queue))?;
        Ok(LogStore { shared })
    }

    /// Whether nothing was ever persisted here (no vote, no entry): a brand-new peer.
    pub fn is_pristine(&self) -> bool {
        let window = self.shared.window.lock();
        self.shared.vote.lock().is_none() && window.locations.is_empty() && window.purged.is_none()
    }

    /// Where the state machine reports how far it applied (one past the last applied
    /// index): only applied entries leave memory.
    pub fn applied_marker(&self) -> Arc<AtomicU64> {
        self.shared.applied.clone()
    }

    /// How much the entries kept in memory weigh now (for tests and stats).
    pub fn memory(&self) -> u64 {
        self.shared.window.lock().memory
    }

    /// How many entries were read back from the file, not found in memory.
    pub fn read_back(&self) -> u64 {
        self.shared.window.lock().read_back
    }

    /// Appends `list`, telling `waiter` once its record is durable.
    fn append_with(&self, list: Vec<Entry>, waiter: Waiter) -> std::io::Result<()> {
        let record = Record::Append(list);
        // Memory and queue change under one lock, so records queue in call order.
        let mut window = self.shared.window.lock();
        let (offset, len) = self.queue(&mut window, &record, waiter)?;
        let Record::Append(list) = record else {
            unreachable!()
        };
        window.appended(list, offset, len);
        Ok(())
    }

    /// Queues `record` for the writer thread at the end of the queued records; returns its
    /// offset and length. Called with the window's lock held, so records queue in call order.
    fn queue(
        &self,
        window: &mut Window,
        record: &Record,
        waiter: Waiter,
    ) -> std::io::Result<(u64, u32)> {
        let bytes = encode(record)?;
        let len = bytes.len() as u32;
        let job = Job {
            bytes,
            waiter,
            compact: matches!(record, Record::Purge(_)),
        };
        self.shared
            .jobs
            .send(job)
            .map_err(|_| std::io::Error::other("log writer stopped"))?;
        let offset = window.queued_end;
        window.queued_end += u64::from(len);
        Ok((offset, len))
    }
}
