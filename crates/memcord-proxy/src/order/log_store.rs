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
//! rename) with the entries after the purge point; those at or before it that openraft may
//! still read (see `purge`) are read from the replaced file, kept open, until the next purge.
//! Copying them instead made each rewrite copy everything written since the previous purge
//! (thousands of entries, more than the live log itself). A log in the older format (no
//! header, no checksums) is rewritten in this one when it is opened.
//!
//! **Preallocation.** The file is grown ahead of the records by writing zeros (in steps of half
//! its size, 1 to 8 MiB) and fsyncing once, by a helper thread beside the writer: the writer
//! writes only below the length the helper last made durable, and waits for it only when a
//! group does not fit;
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
//!
//! **Bounded memory.** Every live entry's record has a known place in the file (its
//! [`Location`], fixed when the record is queued: records are written back to back in queue
//! order). Only the newest entries stay in memory: once an entry is applied, written, and the
//! entries in memory weigh more than the limit, it leaves memory and is read back from its
//! record when asked for (a lagging follower, a compaction). Without this the log held every
//! value written since the last snapshot: 5000 entries of 27 one-KiB writes each is 135 MiB a
//! peer, and growing into fresh memory cost a tenth of the cluster's CPU in page clearing.

use super::{Entry, NodeId, TypeConfig};
use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{LogId, LogState, RaftLogReader, StorageError, StorageIOError, Vote};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::ops::{Bound, RangeBounds};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use tokio::sync::oneshot;

#[derive(Serialize, Deserialize)]
enum Record {
    Append(Vec<Entry>),
    Truncate(u64),
    Purge(LogId<NodeId>),
}

/// Where a live entry's record lies in the log file, in the file's current layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Location {
    /// The entry's id: after a truncate an index can be written again with another term.
    log_id: LogId<NodeId>,
    /// The record's first byte (its frame header).
    offset: u64,
    /// The record's length, header included.
    len: u32,
    /// The entry's share of the record's length: what keeping it in memory is counted as.
    weight: u32,
}

impl Location {
    /// The location of `log_id`, one of `count` entries in the record at `offset`.
    fn in_record(log_id: LogId<NodeId>, offset: u64, len: u32, count: usize) -> Location {
        Location {
            log_id,
            offset,
            len,
            weight: len / count.max(1) as u32,
        }
    }

    fn end(&self) -> u64 {
        self.offset + u64::from(self.len)
    }
}

/// A log as replayed from its file: the live entries, where their records lie, the purge
/// point.
#[derive(Default)]
struct Contents {
    entries: BTreeMap<u64, Entry>,
    locations: BTreeMap<u64, Location>,
    purged: Option<LogId<NodeId>>,
}

/// The log (what openraft reads) and the vote.
struct Inner {
    dir: PathBuf,
    fsync: bool,
    vote: Option<Vote<NodeId>>,
    /// The newest entries, in memory: a suffix of the log holding every entry not yet written
    /// and, after those, as many written ones as fit in the memory limit.
    entries: BTreeMap<u64, Entry>,
    /// What `entries` weigh (their [`Location::weight`]s).
    memory: u64,
    /// Where every live entry's record lies, written or still queued.
    locations: BTreeMap<u64, Location>,
    /// Offset just past the last queued record, and just past the last written one.
    queued_end: u64,
    written_end: u64,
    /// The current file, for reading records back.
    reader: Arc<File>,
    /// Entries at or before the purge point that rewrites of the file left out, still
    /// readable from the files they replaced until the next purge (see `purge`); oldest
    /// first.
    retired: Vec<Retired>,
    /// Entries read back from the file so far.
    read_back: u64,
    purged: Option<LogId<NodeId>>,
}

/// Entries a rewrite of the log left out (they are at or before its purge point) while
/// openraft may still read them: where they lie in the replaced file, kept open for them.
struct Retired {
    file: Arc<File>,
    locations: BTreeMap<u64, Location>,
}

/// Entries to read back from one file, in index order, with where their records lie.
struct FileRun {
    file: Arc<File>,
    entries: Vec<(u64, Location)>,
}

impl FileRun {
    /// The run's entries, read back and decoded.
    fn read(&self) -> std::io::Result<Vec<Entry>> {
        let mut records = RecordReader::new(&self.file);
        self.entries
            .iter()
            .map(|(index, location)| records.entry(*index, location))
            .collect()
    }
}

impl Inner {
    /// Drops the entries in memory at the indexes in `range` (and their weight).
    fn forget(&mut self, range: impl RangeBounds<u64>) {
        let gone: Vec<u64> = self.entries.range(range).map(|(&i, _)| i).collect();
        for index in gone {
            self.entries.remove(&index);
            let weight = self.locations.get(&index).map_or(0, |l| l.weight);
            self.memory = self.memory.saturating_sub(u64::from(weight));
        }
    }

    /// Moves the oldest entries out of memory while they weigh more than `limit`: those
    /// applied (below `applied`, an index) and whose records are written.
    fn evict(&mut self, limit: u64, applied: u64) {
        while self.memory > limit {
            let Some((&index, entry)) = self.entries.first_key_value() else {
                return;
            };
            let Some(location) = self.locations.get(&index) else {
                return;
            };
            if index >= applied
                || location.log_id != entry.log_id
                || location.end() > self.written_end
            {
                return;
            }
            self.memory = self.memory.saturating_sub(u64::from(location.weight));
            self.entries.pop_first();
        }
    }

    /// The entries at the indexes in `range`: from memory, or read back from their records.
    fn read(&mut self, range: impl RangeBounds<u64> + Clone) -> std::io::Result<Vec<Entry>> {
        let mut out = Vec::new();
        for run in self.on_files(range.clone()) {
            out.extend(run.read()?);
        }
        self.read_back += out.len() as u64;
        out.extend(self.entries.range(range).map(|(_, e)| e.clone()));
        Ok(out)
    }

    /// The entries in `range` that are not in memory, by file: those left in the replaced
    /// file, then those in the current one.
    fn on_files(&self, range: impl RangeBounds<u64> + Clone) -> Vec<FileRun> {
        let mut runs: Vec<FileRun> = (self.retired.iter())
            .map(|r| FileRun {
                file: r.file.clone(),
                entries: r
                    .locations
                    .range(range.clone())
                    .map(|(&i, &l)| (i, l))
                    .collect(),
            })
            .collect();
        runs.push(FileRun {
            file: self.reader.clone(),
            entries: self.on_file(range),
        });
        runs.retain(|run| !run.entries.is_empty());
        runs
    }

    /// The indexes in `range` whose entries are not in memory and lie in the current file,
    /// with their locations.
    fn on_file(&self, range: impl RangeBounds<u64>) -> Vec<(u64, Location)> {
        let first_in_memory = self.entries.keys().next().copied().unwrap_or(u64::MAX);
        self.locations
            .range(range)
            .take_while(|(&index, _)| index < first_in_memory)
            .map(|(&index, &location)| (index, location))
            .collect()
    }
}

/// Reads entries back from their records, decoding each record once for consecutive entries.
struct RecordReader<'a> {
    file: &'a File,
    last: Option<(u64, Vec<Entry>)>,
}

impl<'a> RecordReader<'a> {
    fn new(file: &'a File) -> RecordReader<'a> {
        RecordReader { file, last: None }
    }

    /// The entry at `index`, from its record at `location`.
    fn entry(&mut self, index: u64, location: &Location) -> std::io::Result<Entry> {
        let cached = matches!(&self.last, Some((offset, _)) if *offset == location.offset);
        if !cached {
            self.last = Some((location.offset, read_record(self.file, location)?));
        }
        let list = &self.last.as_ref().expect("just read").1;
        list.binary_search_by_key(&index, |e| e.log_id.index)
            .ok()
            .map(|at| &list[at])
            .filter(|e| e.log_id == location.log_id)
            .cloned()
            .ok_or_else(|| {
                std::io::Error::other(format!("log entry {index} missing from its record"))
            })
    }
}

/// Reads back the append record at `location`, checking its length and checksum.
fn read_record(file: &File, location: &Location) -> std::io::Result<Vec<Entry>> {
    let mut frame = vec![0u8; location.len as usize];
    file.read_exact_at(&mut frame, location.offset)?;
    let bad =
        |what: &str| std::io::Error::other(format!("log record at {}: {what}", location.offset));
    if frame.len() < FRAME_HEADER {
        return Err(bad("too short"));
    }
    let len = u32::from_le_bytes(frame[..4].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_le_bytes(frame[4..FRAME_HEADER].try_into().expect("4 bytes"));
    let body = &frame[FRAME_HEADER..];
    if len != body.len() || crc32fast::hash(body) != crc {
        return Err(bad("length or checksum does not match"));
    }
    match postcard::from_bytes::<Record>(body) {
        Ok(Record::Append(list)) => Ok(list),
        Ok(_) => Err(bad("not an append")),
        Err(e) => Err(bad(&e.to_string())),
    }
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
    /// One past the index of the last entry the state machine applied (0: none).
    applied: Arc<AtomicU64>,
    /// How much the entries kept in memory may weigh.
    memory_limit: u64,
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
    let mut buf = Vec::new();
    encode_into(record, &mut buf)?;
    Ok(buf)
}

/// Frames `record` into `buf` (cleared first): length, checksum, body. `buf` is sized once,
/// exactly, and keeps its capacity, so a writer framing record after record reuses one
/// buffer instead of growing a fresh one each time (each growth of a large buffer faults in,
/// and zeroes, pages the kernel has to find first).
fn encode_into(record: &Record, buf: &mut Vec<u8>) -> std::io::Result<()> {
    let body_len = super::encoded_size(record).map_err(std::io::Error::other)?;
    let len = u32::try_from(body_len).map_err(|_| std::io::Error::other("record too large"))?;
    buf.clear();
    buf.reserve(FRAME_HEADER + body_len);
    buf.extend_from_slice(&[0; FRAME_HEADER]);
    *buf = postcard::to_extend(record, std::mem::take(buf)).map_err(std::io::Error::other)?;
    debug_assert_eq!(buf.len(), FRAME_HEADER + body_len);
    let crc = crc32fast::hash(&buf[FRAME_HEADER..]);
    buf[..4].copy_from_slice(&len.to_le_bytes());
    buf[4..FRAME_HEADER].copy_from_slice(&crc.to_le_bytes());
    Ok(())
}

/// Replays the records at the start of `bytes` (this format when `checked`, else the older
/// one: length and body only), which lie at `base` in the file, and returns how many bytes
/// they span and how many there were.
fn replay_all(bytes: &[u8], checked: bool, base: u64, contents: &mut Contents) -> (usize, usize) {
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
        let at_file = base + at as u64;
        let frame = (header + len) as u32;
        replay(contents, record, at_file, frame);
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
    /// Zeros being written past `allocated` by a helper thread, which returns the file's new
    /// length once they are durable. Until then that region belongs to the helper: records
    /// are written only below `allocated`.
    growing: Option<std::thread::JoinHandle<std::io::Result<u64>>>,
}

impl LogFile {
    /// Writes a new, empty log file in place of the current one: a temporary file,
    /// preallocated, fsynced, then renamed over `log`.
    fn create_empty(dir: &Path) -> std::io::Result<LogFile> {
        let log = LogFile::start_build(dir)?.finish()?;
        LogFile::install(dir)?;
        Ok(log)
    }

    /// Starts a temporary file beside the log; [`LogFile::push`] records, then
    /// [`LogFile::finish`] it.
    fn start_build(dir: &Path) -> std::io::Result<LogFile> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(dir.join("log.tmp"))?;
        file.write_all_at(MAGIC, 0)?;
        let end = MAGIC.len() as u64;
        Ok(LogFile {
            file,
            end,
            allocated: end,
            growing: None,
        })
    }

    /// Writes `record` after the last one of a file being built; returns where it lies.
    fn push(&mut self, record: &[u8]) -> std::io::Result<u64> {
        let at = self.end;
        self.file.write_all_at(record, at)?;
        self.end += record.len() as u64;
        self.allocated = self.allocated.max(self.end);
        Ok(at)
    }

    /// Preallocates and fsyncs a file being built.
    fn finish(mut self) -> std::io::Result<LogFile> {
        self.zero_fill(self.end + self.growth())?;
        self.file.sync_all()?;
        Ok(self)
    }

    /// Puts the file [`LogFile::start_build`] began in place of the log, atomically and durably.
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
        write_zeros(&self.file, self.allocated, len)?;
        self.allocated = self.allocated.max(len);
        Ok(())
    }

    /// Preallocates at least `needed` bytes past the records, durably: waits for the helper's
    /// zeros if they are still being written, and writes more itself if they do not suffice.
    fn reserve(&mut self, needed: u64) -> std::io::Result<()> {
        if self.end + needed > self.allocated {
            self.collect_growth(true);
        }
        if self.end + needed <= self.allocated {
            return Ok(());
        }
        let target = self.end + needed + self.growth();
        self.zero_fill(target)?;
        self.file.sync_all()
    }

    /// Starts a helper thread growing the file by one step once less than half a step is
    /// left past the records, so that the writer seldom waits for zeros (an 8 MiB step
    /// written and fsynced in line held every append behind it for tens of milliseconds).
    fn grow_in_background(&mut self) {
        self.collect_growth(false);
        let growth = self.growth();
        if self.growing.is_some() || self.allocated - self.end >= growth / 2 {
            return;
        }
        let file = match self.file.try_clone() {
            Ok(file) => file,
            Err(err) => {
                tracing::warn!(%err, "could not preallocate the log in the background");
                return;
            }
        };
        let (from, to) = (self.allocated, self.allocated + growth);
        let spawned = std::thread::Builder::new()
            .name("memcord-log-grow".into())
            .spawn(move || {
                write_zeros(&file, from, to)?;
                file.sync_all()?;
                Ok(to)
            });
        match spawned {
            Ok(handle) => self.growing = Some(handle),
            Err(err) => tracing::warn!(%err, "could not start preallocating the log"),
        }
    }

    /// Takes the helper's result if it is done (or, with `wait`, once it is).
    fn collect_growth(&mut self, wait: bool) {
        if !wait && !self.growing.as_ref().is_some_and(|h| h.is_finished()) {
            return;
        }
        let Some(handle) = self.growing.take() else {
            return;
        };
        match handle.join() {
            Ok(Ok(to)) => self.allocated = self.allocated.max(to),
            Ok(Err(err)) => tracing::warn!(%err, "could not preallocate the log"),
            Err(_) => tracing::warn!("the log's preallocation thread panicked"),
        }
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

/// Writes zeros to `file` from `from` up to `to` (no fsync).
fn write_zeros(file: &File, from: u64, to: u64) -> std::io::Result<()> {
    static ZEROS: [u8; ZERO_BLOCK] = [0; ZERO_BLOCK];
    let mut at = from;
    while at < to {
        let n = (to - at).min(ZERO_BLOCK as u64) as usize;
        file.write_all_at(&ZEROS[..n], at)?;
        at += n as u64;
    }
    Ok(())
}

/// How much the log's entries in memory may weigh by default (see the module docs).
pub const DEFAULT_MEMORY_LIMIT: u64 = 16 << 20;

impl LogStore {
    /// Opens (or creates) the log kept in `dir`; `fsync` makes every append durable before it
    /// is acknowledged. Applied entries beyond `memory_limit` bytes are read back from the
    /// file when needed.
    pub fn open(dir: &Path, fsync: bool, memory_limit: u64) -> std::io::Result<LogStore> {
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
        let mut contents = Contents::default();
        let (log, records) = open_log(dir, &mut contents)?;
        let memory = contents
            .locations
            .values()
            .map(|l| u64::from(l.weight))
            .sum();
        let (jobs, queue) = mpsc::channel();
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner {
                dir: dir.to_path_buf(),
                fsync,
                vote,
                entries: contents.entries,
                memory,
                locations: contents.locations,
                queued_end: log.end,
                written_end: log.end,
                reader: Arc::new(log.file.try_clone()?),
                retired: Vec::new(),
                read_back: 0,
                purged: contents.purged,
            }),
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
        let inner = self.shared.inner.lock();
        inner.vote.is_none() && inner.locations.is_empty() && inner.purged.is_none()
    }

    /// Where the state machine reports how far it applied (one past the last applied
    /// index): only applied entries leave memory.
    pub fn applied_marker(&self) -> Arc<AtomicU64> {
        self.shared.applied.clone()
    }

    /// How much the entries kept in memory weigh now (for tests and stats).
    pub fn memory(&self) -> u64 {
        self.shared.inner.lock().memory
    }

    /// How many entries were read back from the file, not found in memory.
    pub fn read_back(&self) -> u64 {
        self.shared.inner.lock().read_back
    }

    /// Appends `list`, telling `waiter` once its record is durable.
    fn append_with(&self, list: Vec<Entry>, waiter: Waiter) -> std::io::Result<()> {
        let record = Record::Append(list);
        // Memory and queue change under one lock, so records queue in call order.
        let mut inner = self.shared.inner.lock();
        let (offset, len) = self.queue(&mut inner, &record, waiter)?;
        let Record::Append(list) = record else {
            unreachable!()
        };
        let count = list.len();
        for entry in list {
            let index = entry.log_id.index;
            inner.forget(index..=index);
            let location = Location::in_record(entry.log_id, offset, len, count);
            inner.locations.insert(index, location);
            inner.memory += u64::from(location.weight);
            inner.entries.insert(index, entry);
        }
        Ok(())
    }

    /// Queues `record` for the writer thread at the end of the queued records; returns its
    /// offset and length. Called with the lock held, so records queue in call order.
    fn queue(
        &self,
        inner: &mut Inner,
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
        let offset = inner.queued_end;
        inner.queued_end += u64::from(len);
        Ok((offset, len))
    }
}

/// Opens `dir/log` (creating, upgrading or repairing it as needed), replays its records into
/// `contents`, and returns the file ready for appends with its record count.
fn open_log(dir: &Path, contents: &mut Contents) -> std::io::Result<(LogFile, usize)> {
    let path = dir.join("log");
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e),
    };
    if bytes.is_empty() {
        return Ok((LogFile::create_empty(dir)?, 0));
    }
    let Some(body) = bytes.strip_prefix(MAGIC.as_slice()) else {
        // The older format: replay it, rewrite what it holds in this one, open that.
        let (_, records) = replay_all(&bytes, false, 0, contents);
        tracing::info!(records, "rewriting the log in the current format");
        let live = LiveLog {
            purged: contents.purged,
            on_file: Vec::new(),
            file: Arc::new(File::open(&path)?),
            in_memory: std::mem::take(&mut contents.entries)
                .into_values()
                .collect(),
        };
        drop(live.write(dir)?);
        LogFile::install(dir)?;
        *contents = Contents::default();
        return open_log(dir, contents);
    };
    let (spanned, records) = replay_all(body, true, MAGIC.len() as u64, contents);
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
        growing: None,
    };
    Ok((log, records))
}

/// Most entries in one record of a rewritten log.
const ENTRIES_PER_RECORD: usize = 256;
/// A rewritten log's record closes once its entries reach this many bytes: reading one
/// entry back (a lagging follower's catch-up) reads and decodes its whole record, and the
/// rewrite frames each record in one buffer.
const RECORD_BYTES: usize = 1 << 20;

/// Applies one replayed record, which lies at `offset` and spans `len` bytes of the file.
fn replay(contents: &mut Contents, record: Record, offset: u64, len: u32) {
    match record {
        Record::Append(list) => {
            let count = list.len();
            for entry in list {
                let location = Location::in_record(entry.log_id, offset, len, count);
                contents.locations.insert(entry.log_id.index, location);
                contents.entries.insert(entry.log_id.index, entry);
            }
        }
        Record::Truncate(from) => {
            contents.entries.split_off(&from);
            contents.locations.split_off(&from);
        }
        Record::Purge(upto) => {
            contents.entries = contents.entries.split_off(&(upto.index + 1));
            contents.locations = contents.locations.split_off(&(upto.index + 1));
            contents.purged = Some(upto);
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

/// What a compaction copies: the live log when it starts.
struct LiveLog {
    purged: Option<LogId<NodeId>>,
    /// Entries out of memory, as (index, where their records lie in `file`).
    on_file: Vec<(u64, Location)>,
    file: Arc<File>,
    /// Entries in memory (all after those on file).
    in_memory: Vec<Entry>,
}

impl LiveLog {
    /// Writes the live log as a new file: its entries (read back or from memory) in records
    /// of at most [`ENTRIES_PER_RECORD`] entries and about [`RECORD_BYTES`], then the purge
    /// point. Returns the file, its record count and where each entry now lies.
    fn write(self, dir: &Path) -> std::io::Result<Built> {
        let mut log = LogFile::start_build(dir)?;
        let mut locations = BTreeMap::new();
        let mut records = 0;
        let mut chunk: Vec<Entry> = Vec::with_capacity(ENTRIES_PER_RECORD);
        let mut chunk_bytes = 0;
        let mut bytes = Vec::new();
        let mut flush = |chunk: &mut Vec<Entry>, log: &mut LogFile| -> std::io::Result<()> {
            if chunk.is_empty() {
                return Ok(());
            }
            let record = Record::Append(std::mem::take(chunk));
            encode_into(&record, &mut bytes)?;
            let Record::Append(list) = record else {
                unreachable!()
            };
            let offset = log.push(&bytes)?;
            for entry in &list {
                let location =
                    Location::in_record(entry.log_id, offset, bytes.len() as u32, list.len());
                locations.insert(entry.log_id.index, location);
            }
            records += 1;
            Ok(())
        };
        let mut add = |entry: Entry, log: &mut LogFile| -> std::io::Result<()> {
            chunk_bytes += super::encoded_size(&entry).map_err(std::io::Error::other)?;
            chunk.push(entry);
            if chunk.len() == ENTRIES_PER_RECORD || chunk_bytes >= RECORD_BYTES {
                chunk_bytes = 0;
                flush(&mut chunk, log)?;
            }
            Ok(())
        };
        let mut on_file = RecordReader::new(&self.file);
        for (index, location) in &self.on_file {
            add(on_file.entry(*index, location)?, &mut log)?;
        }
        for entry in self.in_memory {
            add(entry, &mut log)?;
        }
        flush(&mut chunk, &mut log)?;
        if let Some(purged) = self.purged {
            log.push(&encode(&Record::Purge(purged))?)?;
            records += 1;
        }
        Ok(Built {
            log: log.finish()?,
            records,
            locations,
            tail_at: 0,
        })
    }
}

/// A rewritten log file, where its entries lie, and where the records written to the old
/// file meanwhile begin in it.
struct Built {
    log: LogFile,
    records: usize,
    locations: BTreeMap<u64, Location>,
    tail_at: u64,
}

/// A rewrite of the log with only its live state, built on a thread of its own (it writes
/// megabytes and takes a few hundred milliseconds) while the writer goes on appending to the
/// old file. What the writer appends meanwhile is kept and copied into the new file before it
/// replaces the old one, so the new file replays to the same state: the live state when the
/// rewrite started, then every record written since, in order (records written twice, once
/// in each part, replay to the same state).
struct Compaction {
    built: mpsc::Receiver<std::io::Result<Built>>,
    /// Where the records written meanwhile begin in the old file.
    tail_start: u64,
    tail: Vec<u8>,
    tail_records: usize,
}

impl Compaction {
    /// Starts writing `dir/log.tmp` from `live`; the old file's records end at `tail_start`.
    fn start(dir: PathBuf, live: LiveLog, tail_start: u64) -> std::io::Result<Compaction> {
        let (done, built) = mpsc::channel();
        std::thread::Builder::new()
            .name("memcord-log-compact".into())
            .spawn(move || {
                let _ = done.send(live.write(&dir));
            })?;
        Ok(Compaction {
            built,
            tail_start,
            tail: Vec::new(),
            tail_records: 0,
        })
    }

    /// Notes records the writer appended to the old file meanwhile.
    fn appended(&mut self, bytes: &[u8], records: usize) {
        self.tail.extend_from_slice(bytes);
        self.tail_records += records;
    }

    /// Once the new file is built: appends the records written meanwhile and installs it in
    /// place of the log. `None` while it is still being built.
    fn try_finish(&mut self, dir: &Path) -> Option<std::io::Result<Built>> {
        let built = match self.built.try_recv() {
            Err(mpsc::TryRecvError::Empty) => return None,
            Err(mpsc::TryRecvError::Disconnected) => {
                return Some(Err(std::io::Error::other("the compaction thread stopped")))
            }
            Ok(built) => built,
        };
        Some(built.and_then(|mut built| {
            built.tail_at = built.log.end;
            built.log.append(&self.tail, true)?;
            LogFile::install(dir)?;
            built.records += self.tail_records;
            Ok(built)
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
                self.written();
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
            // Grow the file ahead of the records, beside the writer rather than in its way.
            self.log.grow_in_background();
        }
    }

    /// Records how far the file is written and lets applied entries leave memory.
    fn written(&self) {
        let Some(shared) = self.shared.upgrade() else {
            return;
        };
        let applied = shared.applied.load(Ordering::Acquire);
        let mut inner = shared.inner.lock();
        inner.written_end = self.log.end;
        inner.evict(shared.memory_limit, applied);
    }

    /// Starts rewriting the file with only the live state once dead records dominate. The
    /// live state is the log as it stands, which may hold entries whose records are still
    /// queued: writing them twice is harmless (replay inserts by index), and they were never
    /// acknowledged before their own record is flushed.
    fn maybe_compact(&mut self) {
        if self.compaction.is_some() {
            return;
        }
        let Some(shared) = self.shared.upgrade() else {
            return;
        };
        let live = {
            let inner = shared.inner.lock();
            let live = inner.locations.len();
            if self.records < 64 || self.records < 4 * (live / ENTRIES_PER_RECORD + 1) {
                return;
            }
            // Entries at or before the purge point stay readable from this file (which
            // the rewrite leaves open) instead of being copied; see `finish_compaction`.
            let after_purge = inner.purged.map_or(0, |p| p.index + 1);
            LiveLog {
                purged: inner.purged,
                on_file: inner.on_file(after_purge..),
                file: inner.reader.clone(),
                in_memory: inner.entries.values().cloned().collect(),
            }
        };
        match Compaction::start(self.dir.clone(), live, self.log.end) {
            Ok(compaction) => self.compaction = Some(compaction),
            Err(err) => tracing::warn!(%err, "could not start compacting the log"),
        }
    }

    /// Installs the rewritten file if it is ready, moving every entry's location to it. A
    /// failed rewrite leaves the old file, whole and current, in use; the next purge tries
    /// again.
    fn finish_compaction(&mut self) {
        let Some(compaction) = &mut self.compaction else {
            return;
        };
        let tail_start = compaction.tail_start;
        let Some(finished) = compaction.try_finish(&self.dir) else {
            return;
        };
        self.compaction = None;
        let built = match finished.and_then(|b| Ok((b.log.file.try_clone()?, b))) {
            Ok(built) => built,
            Err(err) => {
                tracing::warn!(%err, "compacting the log failed; keeping the old file");
                return;
            }
        };
        let (reader, built) = built;
        let Some(shared) = self.shared.upgrade() else {
            return;
        };
        let mut inner = shared.inner.lock();
        // Records from `tail_start` on (written meanwhile, or still queued) keep their order
        // after the rewritten live log; older ones are in the rewritten part, or, at or
        // before the purge point, left in the old file (see `maybe_compact`).
        let moved = |offset: u64| offset - tail_start + built.tail_at;
        let mut locations = BTreeMap::new();
        let mut retired = BTreeMap::new();
        for (&index, location) in &inner.locations {
            let now = if location.offset >= tail_start {
                Some(Location {
                    offset: moved(location.offset),
                    ..*location
                })
            } else {
                built
                    .locations
                    .get(&index)
                    .filter(|l| l.log_id == location.log_id)
                    .copied()
            };
            match now {
                Some(now) => {
                    locations.insert(index, now);
                }
                None if inner.purged.is_some_and(|p| index <= p.index) => {
                    retired.insert(index, *location);
                }
                None => tracing::warn!(index, "a log entry is missing from the rewritten log"),
            }
        }
        inner.locations = locations;
        // Left out of the rewrite: read from the old file (open, though no longer named)
        // until the next purge forgets them.
        if !retired.is_empty() {
            let file = inner.reader.clone();
            inner.retired.push(Retired {
                file,
                locations: retired,
            });
        }
        inner.memory = inner
            .entries
            .keys()
            .filter_map(|i| inner.locations.get(i))
            .map(|l| u64::from(l.weight))
            .sum();
        inner.queued_end = moved(inner.queued_end);
        inner.written_end = built.log.end;
        inner.reader = Arc::new(reader);
        self.log = built.log;
        self.records = built.records;
    }
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

fn read_err(e: std::io::Error) -> StorageError<NodeId> {
    StorageIOError::read_logs(openraft::AnyError::new(&e)).into()
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError<NodeId>> {
        // Entries not in memory are read from the file without holding the log's lock (a
        // lagging follower's read can take milliseconds; appends must not wait on it).
        // They are committed, so they cannot change meanwhile, and the file handle stays
        // valid even if a rewrite replaces the file. What is left is read under the lock;
        // entries that left memory in between are read back there.
        let runs = self.shared.inner.lock().on_files(range.clone());
        let mut out = Vec::new();
        for run in &runs {
            out.extend(run.read().map_err(read_err)?);
        }
        let rest = match runs.last().and_then(|run| run.entries.last()) {
            Some((last, _)) => (Bound::Excluded(*last), range.end_bound().cloned()),
            None => (range.start_bound().cloned(), range.end_bound().cloned()),
        };
        let mut inner = self.shared.inner.lock();
        inner.read_back += out.len() as u64;
        out.extend(inner.read(rest).map_err(read_err)?);
        Ok(out)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<NodeId>> {
        let inner = self.shared.inner.lock();
        let last = inner.locations.values().next_back().map(|l| l.log_id);
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
        self.append_with(entries.into_iter().collect(), Waiter::Raft(callback))
            .map_err(io_err)
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        let record = Record::Truncate(log_id.index);
        let wait = {
            let mut inner = self.shared.inner.lock();
            let (done, wait) = oneshot::channel();
            self.queue(&mut inner, &record, Waiter::Call(done))
                .map_err(io_err)?;
            inner.forget(log_id.index..);
            inner.locations.split_off(&log_id.index);
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
            self.queue(&mut inner, &record, Waiter::Call(done))
                .map_err(io_err)?;
            // The entries up to the *previous* purge point leave the log now; those up to
            // this one stay readable until the next purge. openraft 0.9 can still be reading
            // a range it planned before deciding to purge it (a replication task racing the
            // purge, openraft issue #1601), and an empty read there panics its task.
            let previous = inner.purged.map(|p| p.index);
            if let Some(previous) = previous {
                inner.forget(..=previous);
                let kept = inner.locations.split_off(&(previous + 1));
                inner.locations = kept;
                for retired in &mut inner.retired {
                    retired.locations = retired.locations.split_off(&(previous + 1));
                }
                // Dropping a replaced file's last reader gives its space back to the disk.
                inner.retired.retain(|r| !r.locations.is_empty());
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
        let mut contents = Contents::default();
        let (log, _) = open_log(dir, &mut contents).expect("open");
        let indexes: Vec<u64> = contents.entries.into_keys().collect();
        let located: Vec<u64> = contents.locations.into_keys().collect();
        assert_eq!(indexes, located, "every replayed entry has a location");
        (log, indexes, contents.purged)
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
    fn the_file_grows_beside_the_writer_and_never_over_its_records() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _, _) = reopen(dir.path());
        let mut next = 1;
        // Fill the preallocated room to less than half a step, then grow in the background.
        while log.allocated - log.end >= log.growth() / 2 {
            log.append(&append(next..next + 50), false).unwrap();
            next += 50;
        }
        let before = log.allocated;
        log.grow_in_background();
        assert!(log.growing.is_some(), "a helper grows the file");
        assert_eq!(
            log.allocated, before,
            "its zeros are not the writer's until done"
        );
        // Records that do not fit wait for the helper, then grow the file themselves.
        let mut n = 1000;
        while log.end + append(next..next + n).len() as u64 <= before {
            n *= 2;
        }
        let big = append(next..next + n);
        next += n;
        log.append(&big, true).unwrap();
        assert!(log.growing.is_none());
        assert!(log.allocated >= log.end);
        log.grow_in_background();
        log.collect_growth(true);
        let len = std::fs::metadata(dir.path().join("log")).unwrap().len();
        assert_eq!(
            len, log.allocated,
            "the file is as long as the helper made it"
        );
        assert!(log.allocated - log.end >= log.growth() / 2);
        log.append(&append(next..next + 10), true).unwrap();
        next += 10;
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
        let live = LiveLog {
            purged: Some(purge),
            on_file: Vec::new(),
            file: Arc::new(log.file.try_clone().unwrap()),
            in_memory: live,
        };
        let mut compaction = Compaction::start(dir.path().to_path_buf(), live, before).unwrap();
        // The writer goes on appending to the old file meanwhile.
        let meanwhile = append(301..311);
        log.append(&meanwhile, true).unwrap();
        compaction.appended(&meanwhile, 1);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let Built {
            mut log, records, ..
        } = loop {
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

    /// An entry carrying `size` bytes.
    fn heavy(index: u64, term: u64, size: usize) -> Entry {
        let command = crate::replicated::Command::Delete {
            key: bytes::Bytes::from(vec![b'k'; size]),
            version: crate::clock::Timestamp::ZERO,
        };
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(term, 0), index),
            payload: EntryPayload::Normal(super::super::Batch {
                commands: vec![command],
            }),
        }
    }

    /// Appends `list` and waits until it is durable.
    async fn append_durably(store: &LogStore, list: Vec<Entry>) {
        let (done, wait) = oneshot::channel();
        store.append_with(list, Waiter::Call(done)).unwrap();
        wait.await.unwrap().unwrap();
    }

    async fn read(store: &mut LogStore, range: std::ops::RangeInclusive<u64>) -> Vec<Entry> {
        store.try_get_log_entries(range).await.unwrap()
    }

    fn in_memory(store: &LogStore) -> Vec<u64> {
        store.shared.inner.lock().entries.keys().copied().collect()
    }

    #[tokio::test]
    async fn applied_entries_leave_memory_and_are_read_back_from_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = LogStore::open(dir.path(), false, 4096).unwrap();
        let all: Vec<Entry> = (1..=60).map(|i| heavy(i, 1, 500)).collect();
        for chunk in all.chunks(7) {
            append_durably(&store, chunk.to_vec()).await;
        }
        assert_eq!(
            in_memory(&store).len(),
            60,
            "nothing applied: all stay in memory"
        );

        store.applied_marker().store(41, Ordering::Release);
        append_durably(&store, vec![heavy(61, 1, 500)]).await;
        assert_eq!(
            in_memory(&store),
            (41..=61).collect::<Vec<_>>(),
            "applied entries left memory, unapplied ones stayed"
        );
        let weights: u64 = {
            let inner = store.shared.inner.lock();
            inner
                .locations
                .range(41..)
                .map(|(_, l)| u64::from(l.weight))
                .sum()
        };
        assert_eq!(store.memory(), weights, "memory counts what stays in it");
        let mut expected = all.clone();
        expected.push(heavy(61, 1, 500));
        assert_eq!(read(&mut store, 1..=61).await, expected, "read back whole");
        assert_eq!(read(&mut store, 5..=9).await, expected[4..9].to_vec());

        // A truncate (of unapplied entries) and new ones in another term.
        store
            .truncate(LogId::new(CommittedLeaderId::new(1, 0), 50))
            .await
            .unwrap();
        append_durably(&store, (50..=55).map(|i| heavy(i, 2, 300)).collect()).await;
        expected.truncate(49);
        expected.extend((50..=55).map(|i| heavy(i, 2, 300)));
        assert_eq!(read(&mut store, 1..=55).await, expected);
        let state = store.get_log_state().await.unwrap();
        assert_eq!(state.last_log_id, Some(expected[54].log_id));

        // Purges, then a rewrite of the file with entries on file and in memory: reads keep
        // working across the switch to the new file.
        let inode = |file: &File| std::os::unix::fs::MetadataExt::ino(&file.metadata().unwrap());
        let first_file = inode(&store.shared.inner.lock().reader);
        store.purge(expected[9].log_id).await.unwrap();
        store.purge(expected[19].log_id).await.unwrap();
        for i in 56..=140 {
            append_durably(&store, vec![heavy(i, 2, 100)]).await;
            expected.push(heavy(i, 2, 100));
        }
        store.applied_marker().store(120, Ordering::Release);
        store.purge(expected[29].log_id).await.unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            // Appends drive the writer, which installs the rewrite once it is built.
            let next = expected.len() as u64 + 1;
            append_durably(&store, vec![heavy(next, 2, 100)]).await;
            expected.push(heavy(next, 2, 100));
            if inode(&store.shared.inner.lock().reader) != first_file {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the log was never rewritten"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let last = expected.len() as u64;
        assert!(
            in_memory(&store)[0] > 21,
            "entries on file after the rewrite"
        );
        assert_eq!(read(&mut store, 21..=last).await, expected[20..].to_vec());
        {
            // The rewrite copied only what follows the purge point; 21..=30 (which openraft
            // may still read) are read from the replaced file.
            let inner = store.shared.inner.lock();
            assert_eq!(inner.locations.keys().next(), Some(&31));
            let retired: Vec<u64> = inner
                .retired
                .iter()
                .flat_map(|r| r.locations.keys().copied())
                .collect();
            assert_eq!(retired, (21..=30).collect::<Vec<_>>());
        }
        // The next purge forgets them, and the replaced file with them.
        store.purge(expected[39].log_id).await.unwrap();
        assert!(store.shared.inner.lock().retired.is_empty());
        assert_eq!(read(&mut store, 31..=last).await, expected[30..].to_vec());
        drop(store);

        // The rewritten file replays to the same log.
        let mut contents = Contents::default();
        open_log(dir.path(), &mut contents).unwrap();
        assert_eq!(contents.purged, Some(expected[39].log_id));
        let replayed: Vec<Entry> = contents.entries.into_values().collect();
        assert_eq!(replayed, expected[40..].to_vec());
    }
}
