//! The Raft log and vote, kept in memory and persisted to the peer's data directory.
//!
//! ```text
//! data_dir/peer-N/vote      the last vote (postcard), replaced atomically: tmp + fsync + rename
//! data_dir/peer-N/log       "MCLOG\0\0\x02", then records: u32 length (LE) + u32 crc32 (LE)
//!                           + postcard(Record), then zeros to the end of the file
//! ```
//! A record appends entries, truncates from an index or purges up to a log id; replaying the
//! records rebuilds the log. Replay stops at the first zero length (the preallocated tail) or at
//! a record whose length, checksum or encoding is wrong: a torn last record (a crash mid-write)
//! whose entries were never acknowledged, since openraft is told an append is durable only
//! after the fsync. A torn record's bytes are zeroed at open, so they cannot be mistaken for
//! records later. When dead records outweigh live entries the file is rewritten (tmp + fsync +
//! rename). A log in the older format (no header, no checksums) is rewritten in this one when
//! it is opened.
//!
//! **Preallocation.** The file is grown ahead of the records by writing zeros (in steps of half
//! its size, 1 to 8 MiB, so one step holds the writer up for milliseconds) and fsyncing once;
//! records then overwrite blocks that already exist, so the `fdatasync` that makes a group
//! durable flushes data only. Appending instead would
//! change the file's size on every group, and each such `fdatasync` would also commit the
//! filesystem's journal (ext4), which all peers on one disk wait on in turn: on this machine
//! three peers' fdatasyncs took about 1.1 ms appending and 0.55 ms overwriting.
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
use std::io::Write;
use std::ops::RangeBounds;
use std::os::unix::fs::FileExt;
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

/// The first bytes of a log file in this format.
const MAGIC: &[u8; 8] = b"MCLOG\0\0\x02";
/// Length and checksum ahead of each record's body.
const FRAME_HEADER: usize = 8;
/// Smallest and largest step by which the file is preallocated.
const MIN_GROWTH: u64 = 1 << 20;
const MAX_GROWTH: u64 = 8 << 20;
/// Zeros written per call while preallocating.
const ZERO_BLOCK: usize = 1 << 20;

fn encode(record: &Record) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0u8; FRAME_HEADER];
    let mut buf =
        postcard::to_extend(record, std::mem::take(&mut buf)).map_err(std::io::Error::other)?;
    let body_len = buf.len() - FRAME_HEADER;
    let len = u32::try_from(body_len).map_err(|_| std::io::Error::other("record too large"))?;
    let crc = crc32fast::hash(&buf[FRAME_HEADER..]);
    buf[..4].copy_from_slice(&len.to_le_bytes());
    buf[4..FRAME_HEADER].copy_from_slice(&crc.to_le_bytes());
    Ok(buf)
}

/// Replays the records at the start of `bytes` (this format when `checked`, else the older
/// one: length and body only) and returns how many bytes they span and how many there were.
fn replay_all(
    bytes: &[u8],
    checked: bool,
    entries: &mut BTreeMap<u64, Entry>,
    purged: &mut Option<LogId<NodeId>>,
) -> (usize, usize) {
    let header = if checked { FRAME_HEADER } else { 4 };
    let (mut at, mut records) = (0, 0);
    while at + header <= bytes.len() {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes")) as usize;
        if checked && len == 0 {
            break;
        }
        let Some(body) = bytes.get(at + header..at + header + len) else {
            break;
        };
        if checked {
            let crc = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().expect("4 bytes"));
            if crc32fast::hash(body) != crc {
                break;
            }
        }
        let Ok(record) = postcard::from_bytes::<Record>(body) else {
            break;
        };
        replay(entries, purged, record);
        records += 1;
        at += header + len;
    }
    (at, records)
}

/// The open log file: where the records end and how far the file is preallocated.
struct LogFile {
    file: File,
    /// Offset just past the last record.
    end: u64,
    /// The file's length: zeros from `end` to here.
    allocated: u64,
}

impl LogFile {
    /// Writes a new log file holding `records` (already encoded) in place of the current one:
    /// a temporary file, preallocated, fsynced, then renamed over `log`.
    fn create(dir: &Path, records: &[Vec<u8>]) -> std::io::Result<LogFile> {
        let log = LogFile::build(dir, records)?;
        LogFile::install(dir)?;
        Ok(log)
    }

    /// Writes `records` to a temporary file beside the log, preallocated and fsynced.
    fn build(dir: &Path, records: &[Vec<u8>]) -> std::io::Result<LogFile> {
        let tmp = dir.join("log.tmp");
        let mut file = File::create(&tmp)?;
        file.write_all(MAGIC)?;
        for record in records {
            file.write_all(record)?;
        }
        let end = MAGIC.len() as u64 + records.iter().map(|r| r.len() as u64).sum::<u64>();
        let mut log = LogFile {
            file,
            end,
            allocated: end,
        };
        log.zero_fill(end + log.growth())?;
        log.file.sync_all()?;
        Ok(log)
    }

    /// Puts the file [`LogFile::build`] wrote in place of the log, atomically and durably.
    /// Once the rename is done the new file is the log, so a failure to sync the directory
    /// after it is only logged: the caller must switch to the new file either way.
    fn install(dir: &Path) -> std::io::Result<()> {
        std::fs::rename(dir.join("log.tmp"), dir.join("log"))?;
        if let Err(err) = sync_dir(dir) {
            tracing::warn!(%err, "could not sync the data directory after replacing the log");
        }
        Ok(())
    }

    /// How far ahead of the records the file is grown at a time.
    fn growth(&self) -> u64 {
        (self.allocated / 2).clamp(MIN_GROWTH, MAX_GROWTH)
    }

    /// Extends the file with zeros up to `len` (no fsync).
    fn zero_fill(&mut self, len: u64) -> std::io::Result<()> {
        let zeros = vec![0u8; ZERO_BLOCK];
        while self.allocated < len {
            let n = (len - self.allocated).min(ZERO_BLOCK as u64) as usize;
            self.file.write_all_at(&zeros[..n], self.allocated)?;
            self.allocated += n as u64;
        }
        Ok(())
    }

    /// Preallocates at least `needed` bytes past the records, durably.
    fn reserve(&mut self, needed: u64) -> std::io::Result<()> {
        if self.end + needed <= self.allocated {
            return Ok(());
        }
        let target = self.end + needed + self.growth();
        self.zero_fill(target)?;
        self.file.sync_all()
    }

    /// Writes `bytes` after the last record; with `sync`, durably.
    fn append(&mut self, bytes: &[u8], sync: bool) -> std::io::Result<()> {
        self.reserve(bytes.len() as u64)?;
        self.file.write_all_at(bytes, self.end)?;
        if sync {
            self.file.sync_data()?;
        }
        self.end += bytes.len() as u64;
        Ok(())
    }
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
        // A peer that led before it stopped restarts as a follower that voted for itself in
        // that term (term and vote kept, so it still cannot vote twice). openraft 0.9 would
        // otherwise resume leading at once from a stale view of its followers, which
        // replicates from ranges its compacted log no longer holds (and panics its task);
        // an election or the current leader's heartbeat settles leadership instead.
        let vote = vote.map(|v: Vote<NodeId>| {
            if v.committed {
                tracing::info!(term = v.leader_id.term, "restarting as a follower of term");
            }
            Vote::new(v.leader_id.term, v.leader_id.node_id)
        });
        let mut entries = BTreeMap::new();
        let mut purged = None;
        let (log, records) = open_log(dir, &mut entries, &mut purged)?;
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

/// Opens `dir/log` (creating, upgrading or repairing it as needed), replays its records into
/// `entries` and `purged`, and returns the file ready for appends with its record count.
fn open_log(
    dir: &Path,
    entries: &mut BTreeMap<u64, Entry>,
    purged: &mut Option<LogId<NodeId>>,
) -> std::io::Result<(LogFile, usize)> {
    let path = dir.join("log");
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e),
    };
    if bytes.is_empty() {
        return Ok((LogFile::create(dir, &[])?, 0));
    }
    let Some(body) = bytes.strip_prefix(MAGIC.as_slice()) else {
        // The older format: replay it, then rewrite what it holds in this one.
        let (_, records) = replay_all(&bytes, false, entries, purged);
        tracing::info!(records, "rewriting the log in the current format");
        let live = live_records(*purged, entries.values())?;
        return Ok((LogFile::create(dir, &live)?, live.len()));
    };
    let (spanned, records) = replay_all(body, true, entries, purged);
    let end = MAGIC.len() + spanned;
    let file = OpenOptions::new().read(true).write(true).open(&path)?;
    if let Some(last) = bytes[end..].iter().rposition(|&b| b != 0) {
        tracing::warn!(
            bytes = last + 1,
            "ignoring a torn record at the log's end (zeroing it)"
        );
        file.write_all_at(&vec![0u8; last + 1], end as u64)?;
        file.sync_data()?;
    }
    let log = LogFile {
        file,
        end: end as u64,
        allocated: bytes.len() as u64,
    };
    Ok((log, records))
}

/// The records that rebuild the live log: the purge point, then the entries after it.
fn live_records<'a>(
    purged: Option<LogId<NodeId>>,
    entries: impl Iterator<Item = &'a Entry>,
) -> std::io::Result<Vec<Vec<u8>>> {
    let mut records = Vec::new();
    if let Some(purged) = purged {
        records.push(encode(&Record::Purge(purged))?);
    }
    let after = purged.map_or(0, |p| p.index + 1);
    let live: Vec<Entry> = entries
        .filter(|e| e.log_id.index >= after)
        .cloned()
        .collect();
    for chunk in live.chunks(256) {
        records.push(encode(&Record::Append(chunk.to_vec()))?);
    }
    Ok(records)
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

/// How often a writer with nothing to write checks on a compaction under way.
const COMPACTION_POLL: std::time::Duration = std::time::Duration::from_millis(50);

/// The thread that owns the log file.
struct Writer {
    shared: std::sync::Weak<Shared>,
    dir: PathBuf,
    fsync: bool,
    log: LogFile,
    records: usize,
    /// A rewrite of the file under way, if any.
    compaction: Option<Compaction>,
}

/// A rewrite of the log with only its live state, built on a thread of its own (it writes
/// megabytes and takes a few hundred milliseconds) while the writer goes on appending to the
/// old file. What the writer appends meanwhile is kept and copied into the new file before it
/// replaces the old one, so the new file replays to the same state: the live state when the
/// rewrite started, then every record written since, in order (records written twice, once
/// in each part, replay to the same state).
struct Compaction {
    built: mpsc::Receiver<std::io::Result<(LogFile, usize)>>,
    tail: Vec<u8>,
    tail_records: usize,
}

impl Compaction {
    /// Starts writing `dir/log.tmp` from the live state `purged` + `entries`.
    fn start(
        dir: PathBuf,
        purged: Option<LogId<NodeId>>,
        entries: Vec<Entry>,
    ) -> std::io::Result<Compaction> {
        let (done, built) = mpsc::channel();
        std::thread::Builder::new()
            .name("memcord-log-compact".into())
            .spawn(move || {
                let result = live_records(purged, entries.iter()).and_then(|live| {
                    let log = LogFile::build(&dir, &live)?;
                    Ok((log, live.len()))
                });
                let _ = done.send(result);
            })?;
        Ok(Compaction {
            built,
            tail: Vec::new(),
            tail_records: 0,
        })
    }

    /// Notes records the writer appended to the old file meanwhile.
    fn appended(&mut self, bytes: &[u8], records: usize) {
        self.tail.extend_from_slice(bytes);
        self.tail_records += records;
    }

    /// Once the new file is built: appends the records written meanwhile, installs it in place
    /// of the log and returns it with its record count. `None` while it is still being built.
    fn try_finish(&mut self, dir: &Path) -> Option<std::io::Result<(LogFile, usize)>> {
        let built = match self.built.try_recv() {
            Err(mpsc::TryRecvError::Empty) => return None,
            Err(mpsc::TryRecvError::Disconnected) => {
                return Some(Err(std::io::Error::other("the compaction thread stopped")))
            }
            Ok(built) => built,
        };
        Some(built.and_then(|(mut log, live)| {
            log.append(&self.tail, true)?;
            LogFile::install(dir)?;
            Ok((log, live + self.tail_records))
        }))
    }
}

impl Writer {
    /// Writes queued records in groups, one fsync per group, until every [`LogStore`] is gone.
    fn run(mut self, queue: mpsc::Receiver<Job>) {
        let mut out = Vec::with_capacity(1 << 20);
        loop {
            // While a rewrite is under way, wake now and then to install it when it is done.
            let first = if self.compaction.is_some() {
                match queue.recv_timeout(COMPACTION_POLL) {
                    Ok(job) => job,
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        self.finish_compaction();
                        continue;
                    }
                    Err(mpsc::RecvTimeoutError::Disconnected) => return,
                }
            } else {
                match queue.recv() {
                    Ok(job) => job,
                    Err(_) => return,
                }
            };
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
            let result = self.log.append(&out, self.fsync);
            self.records += group.len();
            if result.is_ok() {
                if let Some(compaction) = &mut self.compaction {
                    compaction.appended(&out, group.len());
                }
                self.finish_compaction();
                if group.iter().any(|job| job.compact) {
                    self.maybe_compact();
                }
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
            // Grow the file now, between groups, rather than in the middle of the next one.
            let growth = self.log.growth();
            if self.log.allocated - self.log.end < growth / 2 {
                if let Err(err) = self.log.reserve(growth) {
                    tracing::warn!(%err, "could not preallocate the log");
                }
            }
        }
    }

    /// Starts rewriting the file with only the live state once dead records dominate. The
    /// live state is the in-memory log, which may already hold entries whose records are
    /// still queued: writing them twice is harmless (replay inserts by index), and they were
    /// never acknowledged before their own record is flushed.
    fn maybe_compact(&mut self) {
        if self.compaction.is_some() {
            return;
        }
        let Some(shared) = self.shared.upgrade() else {
            return;
        };
        let (purged, all) = {
            let inner = shared.inner.lock();
            if self.records < 64 || self.records < 4 * (inner.entries.len() / 256 + 1) {
                return;
            }
            let after = inner.purged.map_or(0, |p| p.index + 1);
            let all: Vec<Entry> = inner
                .entries
                .range(after..)
                .map(|(_, e)| e.clone())
                .collect();
            (inner.purged, all)
        };
        match Compaction::start(self.dir.clone(), purged, all) {
            Ok(compaction) => self.compaction = Some(compaction),
            Err(err) => tracing::warn!(%err, "could not start compacting the log"),
        }
    }

    /// Installs the rewritten file if it is ready. A failed rewrite leaves the old file, whole
    /// and current, in use; the next purge tries again.
    fn finish_compaction(&mut self) {
        let Some(compaction) = &mut self.compaction else {
            return;
        };
        let Some(finished) = compaction.try_finish(&self.dir) else {
            return;
        };
        self.compaction = None;
        match finished {
            Ok((log, records)) => {
                self.log = log;
                self.records = records;
            }
            Err(err) => tracing::warn!(%err, "compacting the log failed; keeping the old file"),
        }
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
            last_log_id: last.max(inner.purged),
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
            // The entries up to the *previous* purge point leave memory now; those up to this
            // one stay readable until the next purge. openraft 0.9 can still be reading a
            // range it planned before deciding to purge it (a replication task racing the
            // purge, openraft issue #1601), and an empty read there panics its task.
            let previous = inner.purged.map(|p| p.index);
            if let Some(previous) = previous {
                let kept = inner.entries.split_off(&(previous + 1));
                inner.entries = kept;
            }
            inner.purged = Some(log_id);
            wait
        };
        wait.await
            .map_err(|_| io_err(std::io::Error::other("log writer stopped")))?
            .map_err(io_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::{CommittedLeaderId, EntryPayload};

    fn entry(index: u64) -> Entry {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 0), index),
            payload: EntryPayload::Blank,
        }
    }

    fn append(indexes: std::ops::Range<u64>) -> Vec<u8> {
        encode(&Record::Append(indexes.map(entry).collect())).expect("encode")
    }

    /// Replays `dir`'s log: the indexes it holds and the purge point.
    fn reopen(dir: &Path) -> (LogFile, Vec<u64>, Option<LogId<NodeId>>) {
        let (mut entries, mut purged) = (BTreeMap::new(), None);
        let (log, _) = open_log(dir, &mut entries, &mut purged).expect("open");
        (log, entries.into_keys().collect(), purged)
    }

    #[test]
    fn records_survive_a_reopen_and_the_file_is_preallocated() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, indexes, _) = reopen(dir.path());
        assert!(indexes.is_empty());
        assert!(log.allocated >= MIN_GROWTH, "a new log is preallocated");
        log.append(&append(1..4), true).unwrap();
        log.append(&encode(&Record::Truncate(3)).unwrap(), true)
            .unwrap();
        log.append(&append(3..6), true).unwrap();
        let purge = LogId::new(CommittedLeaderId::new(1, 0), 1);
        log.append(&encode(&Record::Purge(purge)).unwrap(), true)
            .unwrap();
        let len = std::fs::metadata(dir.path().join("log")).unwrap().len();
        assert_eq!(len, log.allocated, "records overwrite preallocated zeros");
        drop(log);
        let (log, indexes, purged) = reopen(dir.path());
        assert_eq!(indexes, vec![2, 3, 4, 5]);
        assert_eq!(purged, Some(purge));
        assert!(log.end < log.allocated);
    }

    #[test]
    fn the_file_grows_ahead_of_many_records() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _, _) = reopen(dir.path());
        let mut next = 1;
        while log.end < 3 * MIN_GROWTH {
            log.append(&append(next..next + 200), false).unwrap();
            next += 200;
        }
        assert!(log.allocated > log.end);
        drop(log);
        let (_, indexes, _) = reopen(dir.path());
        assert_eq!(indexes, (1..next).collect::<Vec<_>>());
    }

    #[test]
    fn a_compaction_keeps_what_is_appended_while_it_runs() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _, _) = reopen(dir.path());
        for start in (1..300).step_by(10) {
            log.append(&append(start..start + 10), false).unwrap();
        }
        let purge = LogId::new(CommittedLeaderId::new(1, 0), 200);
        log.append(&encode(&Record::Purge(purge)).unwrap(), true)
            .unwrap();
        let before = log.end;
        let live: Vec<Entry> = (201..301).map(entry).collect();
        let mut compaction =
            Compaction::start(dir.path().to_path_buf(), Some(purge), live).unwrap();
        // The writer goes on appending to the old file meanwhile.
        let meanwhile = append(301..311);
        log.append(&meanwhile, true).unwrap();
        compaction.appended(&meanwhile, 1);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let (mut log, records) = loop {
            if let Some(done) = compaction.try_finish(dir.path()) {
                break done.unwrap();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the compaction never finished"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        };
        assert_eq!(
            records, 3,
            "a purge, the live entries, the record written meanwhile"
        );
        assert!(log.end < before, "dead records are gone");
        log.append(&append(311..321), true).unwrap();
        drop(log);
        let (_, indexes, purged) = reopen(dir.path());
        assert_eq!(indexes, (201..321).collect::<Vec<_>>());
        assert_eq!(purged, Some(purge));
    }

    #[test]
    fn a_torn_record_is_ignored_zeroed_and_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _, _) = reopen(dir.path());
        log.append(&append(1..3), true).unwrap();
        // A crash in the middle of the next record: only its first half reached the disk.
        let torn = append(3..50);
        log.file
            .write_all_at(&torn[..torn.len() / 2], log.end)
            .unwrap();
        drop(log);
        let (mut log, indexes, _) = reopen(dir.path());
        assert_eq!(indexes, vec![1, 2]);
        let bytes = std::fs::read(dir.path().join("log")).unwrap();
        assert!(
            bytes[log.end as usize..].iter().all(|&b| b == 0),
            "the torn bytes are zeroed"
        );
        log.append(&append(3..4), true).unwrap();
        drop(log);
        assert_eq!(reopen(dir.path()).1, vec![1, 2, 3]);
    }

    #[test]
    fn a_record_with_a_bad_checksum_ends_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _, _) = reopen(dir.path());
        log.append(&append(1..2), true).unwrap();
        let mut bad = append(2..3);
        let last = bad.len() - 1;
        bad[last] ^= 0xFF;
        log.append(&bad, true).unwrap();
        drop(log);
        assert_eq!(reopen(dir.path()).1, vec![1]);
    }

    #[test]
    fn a_log_in_the_older_format_is_rewritten_in_this_one() {
        let dir = tempfile::tempdir().unwrap();
        let mut old = Vec::new();
        for record in [
            Record::Append((1..4).map(entry).collect()),
            Record::Purge(LogId::new(CommittedLeaderId::new(1, 0), 1)),
        ] {
            let body = postcard::to_allocvec(&record).unwrap();
            old.extend_from_slice(&(body.len() as u32).to_le_bytes());
            old.extend_from_slice(&body);
        }
        std::fs::write(dir.path().join("log"), &old).unwrap();
        let (_, indexes, purged) = reopen(dir.path());
        assert_eq!(indexes, vec![2, 3]);
        assert_eq!(purged.map(|p| p.index), Some(1));
        let bytes = std::fs::read(dir.path().join("log")).unwrap();
        assert!(bytes.starts_with(MAGIC));
        let (_, again, _) = reopen(dir.path());
        assert_eq!(again, vec![2, 3]);
    }
}
