//! Compaction: rewriting the log file with only its live state once dead records dominate.
//!
//! ```text
//! writer: purge record written, dead records dominate ─▶ Compaction::start(LiveLog)
//! rewrite thread: LiveLog::write ─▶ log.tmp (live entries, purge point), fsynced
//! writer, meanwhile: appends go on to the old file, and are copied into Compaction::tail
//! writer, once built: tail appended to log.tmp, fsync, rename over log, locations moved
//! ```
//! The rewrite runs on a thread of its own (it writes megabytes and takes a few hundred
//! milliseconds; inline it held every append behind it). What the writer appends meanwhile
//! is kept and copied into the new file before it replaces the old one, so the new file
//! replays to the same state: the live state when the rewrite started, then every record
//! written since, in order (records written twice, once in each part, replay to the same
//! state).
//!
//! **Retired runs.** The rewrite copies only the entries after the purge point. Those at or
//! before it that openraft may still read (see `Window::purge`) stay readable from the
//! replaced file, kept open (though no longer named) in a [`Retired`] run until the next purge
//! forgets them. Copying them instead made each rewrite copy everything written since the
//! previous purge: thousands of entries, more than the live log itself.

use super::super::{Entry, NodeId};
use super::file::LogFile;
use super::record::{encode, encode_into, Location, Record};
use super::window::{FileRun, RecordReader, Window};
use super::writer::Writer;
use openraft::LogId;
use std::collections::BTreeMap;
use std::fs::File;
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};

/// Most entries in one record of a rewritten log.
const ENTRIES_PER_RECORD: usize = 256;
/// A rewritten log's record closes once its entries reach this many bytes: reading one
/// entry back (a lagging follower's catch-up) reads and decodes its whole record, and the
/// rewrite frames each record in one buffer.
const RECORD_BYTES: usize = 1 << 20;

/// Entries a rewrite of the log left out (they are at or before its purge point) while
/// openraft may still read them: where they lie in the replaced file, kept open for them.
pub(super) struct Retired {
    /// The replaced file, unlinked but open.
    file: Arc<File>,
    /// Where the left-out entries lie in it.
    locations: BTreeMap<u64, Location>,
}

impl Retired {
    /// The run's entries at the indexes in `range`, to read back.
    pub(super) fn run(&self, range: impl RangeBounds<u64>) -> FileRun {
        FileRun {
            file: self.file.clone(),
            entries: self.locations.range(range).map(|(&i, &l)| (i, l)).collect(),
        }
    }

    /// Forgets the entries up to `index`, included.
    pub(super) fn forget_through(&mut self, index: u64) {
        self.locations = self.locations.split_off(&(index + 1));
    }

    /// Whether every entry of the run is forgotten.
    pub(super) fn is_empty(&self) -> bool {
        self.locations.is_empty()
    }

    /// The indexes the run still holds (for tests).
    #[cfg(test)]
    pub(super) fn indexes(&self) -> impl Iterator<Item = u64> + '_ {
        self.locations.keys().copied()
    }
}

/// What a compaction copies: the live log when it starts.
pub(super) struct LiveLog {
    /// The purge point, written after the entries.
    pub(super) purged: Option<LogId<NodeId>>,
    /// Entries out of memory, as (index, where their records lie in `file`).
    pub(super) on_file: Vec<(u64, Location)>,
    /// The file the entries out of memory are read back from.
    pub(super) file: Arc<File>,
    /// Entries in memory (all after those on file).
    pub(super) in_memory: Vec<Entry>,
}

impl LiveLog {
    /// Writes the live log as a new file: its entries (read back or from memory) in records
    /// of at most [`ENTRIES_PER_RECORD`] entries and about [`RECORD_BYTES`], then the purge
    /// point. Returns the file, its record count and where each entry now lies.
    pub(super) fn write(self, dir: &Path) -> std::io::Result<Built> {
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
            chunk_bytes += crate::order::encoded_size(&entry).map_err(std::io::Error::other)?;
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
pub(super) struct Built {
    /// The new file.
    pub(super) log: LogFile,
    /// How many records it holds.
    pub(super) records: usize,
    /// Where the rewritten entries lie in it.
    locations: BTreeMap<u64, Location>,
    /// Where the records copied from the old file's tail begin in it.
    tail_at: u64,
}

/// A rewrite of the log with only its live state, built on a thread of its own while the
/// writer goes on appending to the old file (see the module docs).
pub(super) struct Compaction {
    /// The rewrite thread's result, once the new file is built.
    built: mpsc::Receiver<std::io::Result<Built>>,
    /// Where the records written meanwhile begin in the old file.
    tail_start: u64,
    /// The records written meanwhile, to copy after the rewritten part.
    tail: Vec<u8>,
    /// How many records `tail` holds.
    tail_records: usize,
}

impl Compaction {
    /// Starts writing `dir/log.tmp` from `live`; the old file's records end at `tail_start`.
    pub(super) fn start(
        dir: PathBuf,
        live: LiveLog,
        tail_start: u64,
    ) -> std::io::Result<Compaction> {
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
    pub(super) fn appended(&mut self, bytes: &[u8], records: usize) {
        self.tail.extend_from_slice(bytes);
        self.tail_records += records;
    }

    /// Once the new file is built: appends the records written meanwhile and installs it in
    /// place of the log. `None` while it is still being built.
    pub(super) fn try_finish(&mut self, dir: &Path) -> Option<std::io::Result<Built>> {
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
    /// Starts rewriting the file with only the live state once dead records dominate. The
    /// live state is the log as it stands, which may hold entries whose records are still
    /// queued: writing them twice is harmless (replay inserts by index), and they were never
    /// acknowledged before their own record is flushed.
    pub(super) fn maybe_compact(&mut self) {
        if self.compaction.is_some() {
            return;
        }
        let Some(shared) = self.shared.upgrade() else {
            return;
        };
        let live = {
            let window = shared.window.lock();
            let live = window.locations.len();
            if self.records < 64 || self.records < 4 * (live / ENTRIES_PER_RECORD + 1) {
                return;
            }
            // Entries at or before the purge point stay readable from this file (which
            // the rewrite leaves open) instead of being copied; see `finish_compaction`.
            let after_purge = window.purged.map_or(0, |p| p.index + 1);
            LiveLog {
                purged: window.purged,
                on_file: window.on_file(after_purge..),
                file: window.reader.clone(),
                in_memory: window.entries.values().cloned().collect(),
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
    pub(super) fn finish_compaction(&mut self) {
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
        shared
            .window
            .lock()
            .move_to_rewrite(&built, tail_start, reader);
        self.log = built.log;
        self.records = built.records;
    }
}

impl Window {
    /// Moves every live entry's location to the rewritten file `built` (read through
    /// `reader`), whose copy of the old file's records from `tail_start` on begins at
    /// `built.tail_at`. Records from `tail_start` on (written meanwhile, or still queued) keep
    /// their order after the rewritten live log; older ones are in the rewritten part, or, at
    /// or before the purge point, left in the old file as a retired run.
    fn move_to_rewrite(&mut self, built: &Built, tail_start: u64, reader: File) {
        let moved = |offset: u64| offset - tail_start + built.tail_at;
        let mut locations = BTreeMap::new();
        let mut retired = BTreeMap::new();
        for (&index, location) in &self.locations {
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
                None if self.purged.is_some_and(|p| index <= p.index) => {
                    retired.insert(index, *location);
                }
                None => tracing::warn!(index, "a log entry is missing from the rewritten log"),
            }
        }
        self.locations = locations;
        // Left out of the rewrite: read from the old file (open, though no longer named)
        // until the next purge forgets them.
        if !retired.is_empty() {
            self.retired.push(Retired {
                file: self.reader.clone(),
                locations: retired,
            });
        }
        self.memory = self
            .entries
            .keys()
            .filter_map(|i| self.locations.get(i))
            .map(|l| u64::from(l.weight))
            .sum();
        self.queued_end = moved(self.queued_end);
        self.written_end = built.log.end;
        self.reader = Arc::new(reader);
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{append, entry, reopen};
    use super::*;
    use openraft::CommittedLeaderId;

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
}
