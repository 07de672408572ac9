//! The log file itself: opening it (creating, upgrading or repairing it), writing records
//! after the last one, and growing it ahead of them.
//!
//! **Preallocation.** The file is grown ahead of the records by writing zeros (in steps of
//! half its size, 1 to 8 MiB) and fsyncing once, by a helper thread beside the writer: the
//! writer writes only below the length the helper last made durable, and waits for it only
//! when a group does not fit. Records then overwrite blocks that already exist, so the
//! `fdatasync` that makes a group durable flushes data only. Appending instead would change
//! the file's size on every group, and each such `fdatasync` would also commit the
//! filesystem's journal (ext4), which all peers on one disk wait on in turn: on this machine
//! three peers' fdatasyncs took about 1.1 ms appending and 0.55 ms overwriting. An 8 MiB step
//! written and fsynced in line by the writer held every append behind it for tens of
//! milliseconds, hence the helper.
//!
//! **Opening.** A torn last record's bytes are zeroed at open, so that records written after
//! it later cannot be misread as part of it; a log in the older format is rewritten in this
//! one (through the compaction's [`LiveLog`]) and opened again.

use super::compaction::LiveLog;
use super::record::{replay_all, Contents, MAGIC};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

/// Smallest step by which the file is preallocated.
const MIN_GROWTH: u64 = 1 << 20;
/// Largest step by which the file is preallocated.
const MAX_GROWTH: u64 = 8 << 20;
/// Zeros written per call while preallocating.
const ZERO_BLOCK: usize = 1 << 20;

/// The open log file: where the records end and how far the file is preallocated.
pub(super) struct LogFile {
    /// The file, open for reading and writing.
    pub(super) file: File,
    /// Offset just past the last record.
    pub(super) end: u64,
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
    pub(super) fn start_build(dir: &Path) -> std::io::Result<LogFile> {
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
    pub(super) fn push(&mut self, record: &[u8]) -> std::io::Result<u64> {
        let at = self.end;
        self.file.write_all_at(record, at)?;
        self.end += record.len() as u64;
        self.allocated = self.allocated.max(self.end);
        Ok(at)
    }

    /// Preallocates and fsyncs a file being built.
    pub(super) fn finish(mut self) -> std::io::Result<LogFile> {
        self.zero_fill(self.end + self.growth())?;
        self.file.sync_all()?;
        Ok(self)
    }

    /// Puts the file [`LogFile::start_build`] began in place of the log, atomically and durably.
    /// Once the rename is done the new file is the log, so a failure to sync the directory
    /// after it is only logged: the caller must switch to the new file either way.
    pub(super) fn install(dir: &Path) -> std::io::Result<()> {
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
    /// left past the records, so that the writer seldom waits for zeros.
    pub(super) fn grow_in_background(&mut self) {
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
    pub(super) fn append(&mut self, bytes: &[u8], sync: bool) -> std::io::Result<()> {
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

/// Makes the entries of `dir` (a rename into it) durable.
pub(super) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Opens `dir/log` (creating, upgrading or repairing it as needed), replays its records into
/// `contents`, and returns the file ready for appends with its record count.
pub(super) fn open_log(dir: &Path, contents: &mut Contents) -> std::io::Result<(LogFile, usize)> {
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
        rewrite_older_format(dir, &bytes, contents)?;
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

/// Replays `bytes`, a log in the older format, and puts what it holds in place of it in this
/// format; `contents` is left empty, for the caller to open the new file into.
fn rewrite_older_format(dir: &Path, bytes: &[u8], contents: &mut Contents) -> std::io::Result<()> {
    let (_, records) = replay_all(bytes, false, 0, contents);
    tracing::info!(records, "rewriting the log in the current format");
    let live = LiveLog {
        purged: contents.purged,
        on_file: Vec::new(),
        file: Arc::new(File::open(dir.join("log"))?),
        in_memory: std::mem::take(&mut contents.entries)
            .into_values()
            .collect(),
    };
    drop(live.write(dir)?);
    LogFile::install(dir)?;
    *contents = Contents::default();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::record::{encode, Record};
    use super::super::test_support::{append, entry, reopen};
    use super::*;
    use openraft::{CommittedLeaderId, LogId};

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
