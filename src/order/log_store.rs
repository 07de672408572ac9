//! The Raft log and vote, kept in memory and persisted to the peer's data directory.
//!
//! ```text
//! data_dir/peer-N/vote      the last vote (postcard), replaced atomically: tmp + fsync + rename
//! data_dir/peer-N/log       append-only records: u32 length (LE) + postcard(Record)
//! ```
//! A record appends entries, truncates from an index or purges up to a log id; replaying the
//! records rebuilds the log. A torn last record (a crash mid-write) is ignored: its entries were
//! never acknowledged, since openraft is told an append is durable only after the fsync. When
//! dead records outweigh live entries the file is rewritten (tmp + fsync + rename).
//!
//! **Group commit.** The file belongs to one writer thread. `append` updates the in-memory log
//! at once and queues its record; the thread writes every record queued meanwhile with one
//! `write` and one `fdatasync`, then tells openraft (through each append's [`LogFlushed`]) that
//! they are durable. So an fsync never blocks the async runtime, and one fsync covers as many
//! appends as arrive while the previous one runs. Records reach the file in call order, so the
//! file replays to the in-memory log.

use super::{Entry, NodeId, TypeConfig};
use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{LogId, LogState, RaftLogReader, StorageError, StorageIOError, Vote};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};
use tokio::sync::oneshot;

#[derive(Serialize, Deserialize)]
enum Record {
    Append(Vec<Entry>),
    Truncate(u64),
    Purge(LogId<NodeId>),
}

/// The in-memory log (what openraft reads) and the vote.
struct Inner {
    dir: PathBuf,
    fsync: bool,
    vote: Option<Vote<NodeId>>,
    entries: BTreeMap<u64, Entry>,
    purged: Option<LogId<NodeId>>,
}

/// Who waits for a queued record to be durable.
enum Waiter {
    /// openraft, for an append.
    Raft(LogFlushed<TypeConfig>),
    /// A truncate or purge call.
    Call(oneshot::Sender<std::io::Result<()>>),
}

/// A record (already encoded) for the writer thread.
struct Job {
    bytes: Vec<u8>,
    waiter: Waiter,
    /// Whether the file may be compacted after this record (purges).
    compact: bool,
}

struct Shared {
    inner: Mutex<Inner>,
    jobs: mpsc::Sender<Job>,
}

/// The log storage handed to openraft; clones share one log.
#[derive(Clone)]
pub struct LogStore {
    shared: Arc<Shared>,
}

fn io_err(e: impl std::error::Error + 'static) -> StorageError<NodeId> {
    StorageIOError::write_logs(openraft::AnyError::new(&e)).into()
}

fn encode(record: &Record) -> std::io::Result<Vec<u8>> {
    let body = postcard::to_allocvec(record).map_err(std::io::Error::other)?;
    let mut buf = Vec::with_capacity(body.len() + 4);
    buf.extend_from_slice(&(body.len() as u32).to_le_bytes());
    buf.extend_from_slice(&body);
    Ok(buf)
}

impl LogStore {
    /// Opens (or creates) the log kept in `dir`; `fsync` makes every append durable before it
    /// is acknowledged.
    pub fn open(dir: &Path, fsync: bool) -> std::io::Result<LogStore> {
        std::fs::create_dir_all(dir)?;
        let vote = match std::fs::read(dir.join("vote")) {
            Ok(bytes) => Some(postcard::from_bytes(&bytes).map_err(std::io::Error::other)?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        let mut entries = BTreeMap::new();
        let mut purged = None;
        let mut records = 0;
        let path = dir.join("log");
        if let Ok(mut file) = File::open(&path) {
            let mut bytes = Vec::new();
            file.read_to_end(&mut bytes)?;
            let mut at = 0;
            while at + 4 <= bytes.len() {
                let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
                let Some(body) = bytes.get(at + 4..at + 4 + len) else {
                    break;
                };
                let Ok(record) = postcard::from_bytes::<Record>(body) else {
                    break;
                };
                replay(&mut entries, &mut purged, record);
                records += 1;
                at += 4 + len;
            }
            if at < bytes.len() {
                tracing::warn!(
                    bytes = bytes.len() - at,
                    "ignoring a torn record at the log's end"
                );
                let file = OpenOptions::new().write(true).open(&path)?;
                file.set_len(at as u64)?;
                file.sync_all()?;
            }
        }
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        let (jobs, queue) = mpsc::channel();
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner {
                dir: dir.to_path_buf(),
                fsync,
                vote,
                entries,
                purged,
            }),
            jobs,
        });
        let writer = Writer {
            shared: Arc::downgrade(&shared),
            dir: dir.to_path_buf(),
            fsync,
            file,
            records,
        };
        std::thread::Builder::new()
            .name("memcord-log".into())
            .spawn(move || writer.run(queue))?;
        Ok(LogStore { shared })
    }

    /// Whether nothing was ever persisted here (no vote, no entry): a brand-new peer.
    pub fn is_pristine(&self) -> bool {
        let inner = self.shared.inner.lock();
        inner.vote.is_none() && inner.entries.is_empty() && inner.purged.is_none()
    }

    /// Queues `record` for the writer thread.
    fn queue(&self, record: &Record, waiter: Waiter) -> std::io::Result<()> {
        let job = Job {
            bytes: encode(record)?,
            waiter,
            compact: matches!(record, Record::Purge(_)),
        };
        self.shared
            .jobs
            .send(job)
            .map_err(|_| std::io::Error::other("log writer stopped"))
    }
}

fn replay(entries: &mut BTreeMap<u64, Entry>, purged: &mut Option<LogId<NodeId>>, record: Record) {
    match record {
        Record::Append(list) => {
            for entry in list {
                entries.insert(entry.log_id.index, entry);
            }
        }
        Record::Truncate(from) => {
            entries.split_off(&from);
        }
        Record::Purge(upto) => {
            *entries = entries.split_off(&(upto.index + 1));
            *purged = Some(upto);
        }
    }
}

/// The thread that owns the log file.
struct Writer {
    shared: std::sync::Weak<Shared>,
    dir: PathBuf,
    fsync: bool,
    file: File,
    records: usize,
}

impl Writer {
    /// Writes queued records in groups, one fsync per group, until every [`LogStore`] is gone.
    fn run(mut self, queue: mpsc::Receiver<Job>) {
        let mut out = Vec::with_capacity(1 << 20);
        while let Ok(first) = queue.recv() {
            let mut group = vec![first];
            while group.len() < 4096 {
                match queue.try_recv() {
                    Ok(job) => group.push(job),
                    Err(_) => break,
                }
            }
            out.clear();
            for job in &group {
                out.extend_from_slice(&job.bytes);
            }
            let mut result = self.file.write_all(&out);
            if result.is_ok() && self.fsync {
                result = self.file.sync_data();
            }
            self.records += group.len();
            let compact = group.iter().any(|job| job.compact);
            if result.is_ok() && compact {
                result = self.maybe_compact();
            }
            for job in group {
                let copy = match &result {
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
    }

    /// Rewrites the file with only the live state once dead records dominate. The live state
    /// is the in-memory log, which may already hold entries whose records are still queued:
    /// writing them twice is harmless (replay inserts by index), and they were never
    /// acknowledged before their own record is flushed.
    fn maybe_compact(&mut self) -> std::io::Result<()> {
        let Some(shared) = self.shared.upgrade() else {
            return Ok(());
        };
        let (purged, all) = {
            let inner = shared.inner.lock();
            if self.records < 64 || self.records < 4 * (inner.entries.len() / 256 + 1) {
                return Ok(());
            }
            let all: Vec<Entry> = inner.entries.values().cloned().collect();
            (inner.purged, all)
        };
        let tmp = self.dir.join("log.tmp");
        let mut file = File::create(&tmp)?;
        let mut records = 0;
        let mut push = |record: &Record| -> std::io::Result<()> {
            file.write_all(&encode(record)?)?;
            records += 1;
            Ok(())
        };
        if let Some(purged) = purged {
            push(&Record::Purge(purged))?;
        }
        for chunk in all.chunks(256) {
            push(&Record::Append(chunk.to_vec()))?;
        }
        file.sync_all()?;
        std::fs::rename(&tmp, self.dir.join("log"))?;
        sync_dir(&self.dir)?;
        self.file = OpenOptions::new().append(true).open(self.dir.join("log"))?;
        self.records = records;
        Ok(())
    }
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError<NodeId>> {
        let inner = self.shared.inner.lock();
        Ok(inner.entries.range(range).map(|(_, e)| e.clone()).collect())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<NodeId>> {
        let inner = self.shared.inner.lock();
        let last = inner.entries.values().next_back().map(|e| e.log_id);
        Ok(LogState {
            last_purged_log_id: inner.purged,
            last_log_id: last.or(inner.purged),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError<NodeId>> {
        let vote_err = |e: std::io::Error| {
            StorageError::from(StorageIOError::write_vote(openraft::AnyError::new(&e)))
        };
        let bytes = postcard::to_allocvec(vote).map_err(|e| vote_err(std::io::Error::other(e)))?;
        let (dir, fsync) = {
            let inner = self.shared.inner.lock();
            (inner.dir.clone(), inner.fsync)
        };
        // Votes are rare (elections): written off the runtime's threads, waited for.
        let written = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            let tmp = dir.join("vote.tmp");
            let mut file = File::create(&tmp)?;
            file.write_all(&bytes)?;
            if fsync {
                file.sync_all()?;
            }
            std::fs::rename(&tmp, dir.join("vote"))?;
            if fsync {
                sync_dir(&dir)?;
            }
            Ok(())
        })
        .await
        .map_err(|e| vote_err(std::io::Error::other(e)))?;
        written.map_err(vote_err)?;
        self.shared.inner.lock().vote = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError<NodeId>> {
        Ok(self.shared.inner.lock().vote)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let record = Record::Append(entries.into_iter().collect());
        // Memory and queue change under one lock, so records queue in call order.
        let mut inner = self.shared.inner.lock();
        self.queue(&record, Waiter::Raft(callback))
            .map_err(io_err)?;
        let Record::Append(list) = record else {
            unreachable!()
        };
        for entry in list {
            inner.entries.insert(entry.log_id.index, entry);
        }
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        let record = Record::Truncate(log_id.index);
        let wait = {
            let mut inner = self.shared.inner.lock();
            let (done, wait) = oneshot::channel();
            self.queue(&record, Waiter::Call(done)).map_err(io_err)?;
            inner.entries.split_off(&log_id.index);
            wait
        };
        wait.await
            .map_err(|_| io_err(std::io::Error::other("log writer stopped")))?
            .map_err(io_err)
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        let record = Record::Purge(log_id);
        let wait = {
            let mut inner = self.shared.inner.lock();
            let (done, wait) = oneshot::channel();
            self.queue(&record, Waiter::Call(done)).map_err(io_err)?;
            let Inner {
                entries, purged, ..
            } = &mut *inner;
            replay(entries, purged, record);
            wait
        };
        wait.await
            .map_err(|_| io_err(std::io::Error::other("log writer stopped")))?
            .map_err(io_err)
    }
}
