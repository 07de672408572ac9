//! The log as openraft reads it: where every live entry's record lies, and a window of the
//! newest entries kept in memory; older entries are read back from their records.
//!
//! **Bounded memory.** Every live entry's record has a known place in the file (its
//! [`Location`], fixed when the record is queued: the writer writes records back to back in
//! queue order). Only the newest entries stay in memory: once an entry is applied, its record
//! written, and the entries in memory weigh more than the limit (`log_memory_mb`), it leaves
//! memory and is read back from its record when asked for (a lagging follower, a compaction).
//! Raft never truncates committed entries, so only entries that can no longer change leave
//! memory. Without this the log held every value written since the last snapshot: 5000
//! entries of 27 one-KiB writes each is 135 MiB a peer, and growing into fresh memory cost a
//! tenth of the cluster's CPU in page clearing.
//!
//! Entries are read from the retired runs of replaced files first (see
//! [`super::compaction::Retired`]), then from the current file, then from memory: in index
//! order, since each holds an older part of the log than the next.

use super::super::{Entry, NodeId};
use super::compaction::Retired;
use super::record::{read_record, Contents, Location};
use openraft::LogId;
use std::collections::BTreeMap;
use std::fs::File;
use std::ops::RangeBounds;
use std::sync::Arc;

/// The log openraft sees: the live entries' locations, those kept in memory, the purge point.
pub(super) struct Window {
    /// The newest entries, in memory: a suffix of the log holding every entry not yet written
    /// and, after those, as many written ones as fit in the memory limit.
    pub(super) entries: BTreeMap<u64, Entry>,
    /// What `entries` weigh (their [`Location::weight`]s).
    pub(super) memory: u64,
    /// Where every live entry's record lies, written or still queued.
    pub(super) locations: BTreeMap<u64, Location>,
    /// Offset just past the last queued record.
    pub(super) queued_end: u64,
    /// Offset just past the last written record.
    pub(super) written_end: u64,
    /// The current file, for reading records back.
    pub(super) reader: Arc<File>,
    /// Entries at or before the purge point that rewrites of the file left out, still
    /// readable from the files they replaced until the next purge; oldest first.
    pub(super) retired: Vec<Retired>,
    /// Entries read back from the file so far.
    pub(super) read_back: u64,
    /// The last purged log id, if any.
    pub(super) purged: Option<LogId<NodeId>>,
}

impl Window {
    /// The log replayed from a file whose records end at `end`, read back through `reader`.
    pub(super) fn replayed(contents: Contents, end: u64, reader: File) -> Window {
        let memory = contents
            .locations
            .values()
            .map(|l| u64::from(l.weight))
            .sum();
        Window {
            entries: contents.entries,
            memory,
            locations: contents.locations,
            queued_end: end,
            written_end: end,
            reader: Arc::new(reader),
            retired: Vec::new(),
            read_back: 0,
            purged: contents.purged,
        }
    }

    /// Takes in `list`, entries whose record (at `offset`, `len` bytes) was just queued: an
    /// entry at an index already held replaces it.
    pub(super) fn appended(&mut self, list: Vec<Entry>, offset: u64, len: u32) {
        let count = list.len();
        for entry in list {
            let index = entry.log_id.index;
            self.forget(index..=index);
            let location = Location::in_record(entry.log_id, offset, len, count);
            self.locations.insert(index, location);
            self.memory += u64::from(location.weight);
            self.entries.insert(index, entry);
        }
    }

    /// Drops every entry from index `from` on (a truncate).
    pub(super) fn truncate(&mut self, from: u64) {
        self.forget(from..);
        self.locations.split_off(&from);
    }

    /// Moves the purge point to `log_id`. The entries up to the *previous* purge point leave
    /// the log now; those up to this one stay readable until the next purge. openraft 0.9 can
    /// still be reading a range it planned before deciding to purge it (a replication task
    /// racing the purge, openraft issue #1601), and an empty read there panics its task.
    pub(super) fn purge(&mut self, log_id: LogId<NodeId>) {
        if let Some(previous) = self.purged.map(|p| p.index) {
            self.forget(..=previous);
            self.locations = self.locations.split_off(&(previous + 1));
            for retired in &mut self.retired {
                retired.forget_through(previous);
            }
            // Dropping a replaced file's last reader gives its space back to the disk.
            self.retired.retain(|r| !r.is_empty());
        }
        self.purged = Some(log_id);
    }

    /// The id of the last entry in the log (or of the purge point, past every entry).
    pub(super) fn last_log_id(&self) -> Option<LogId<NodeId>> {
        let last = self.locations.values().next_back().map(|l| l.log_id);
        last.max(self.purged)
    }

    /// Drops the entries in memory at the indexes in `range` (and their weight).
    pub(super) fn forget(&mut self, range: impl RangeBounds<u64>) {
        let gone: Vec<u64> = self.entries.range(range).map(|(&i, _)| i).collect();
        for index in gone {
            self.entries.remove(&index);
            let weight = self.locations.get(&index).map_or(0, |l| l.weight);
            self.memory = self.memory.saturating_sub(u64::from(weight));
        }
    }

    /// Moves the oldest entries out of memory while they weigh more than `limit`: those
    /// applied (below `applied`, an index) and whose records are written.
    pub(super) fn evict(&mut self, limit: u64, applied: u64) {
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
    pub(super) fn read(
        &mut self,
        range: impl RangeBounds<u64> + Clone,
    ) -> std::io::Result<Vec<Entry>> {
        let mut out = Vec::new();
        for run in self.on_files(range.clone()) {
            out.extend(run.read()?);
        }
        self.read_back += out.len() as u64;
        out.extend(self.entries.range(range).map(|(_, e)| e.clone()));
        Ok(out)
    }

    /// The entries in `range` that are not in memory, by file: those left in the replaced
    /// files, then those in the current one.
    pub(super) fn on_files(&self, range: impl RangeBounds<u64> + Clone) -> Vec<FileRun> {
        let mut runs: Vec<FileRun> = (self.retired.iter())
            .map(|r| r.run(range.clone()))
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
    pub(super) fn on_file(&self, range: impl RangeBounds<u64>) -> Vec<(u64, Location)> {
        let first_in_memory = self.entries.keys().next().copied().unwrap_or(u64::MAX);
        self.locations
            .range(range)
            .take_while(|(&index, _)| index < first_in_memory)
            .map(|(&index, &location)| (index, location))
            .collect()
    }
}

/// Entries to read back from one file, in index order, with where their records lie.
pub(super) struct FileRun {
    /// The file holding their records.
    pub(super) file: Arc<File>,
    /// The entries' indexes and locations, in index order.
    pub(super) entries: Vec<(u64, Location)>,
}

impl FileRun {
    /// The run's entries, read back and decoded.
    pub(super) fn read(&self) -> std::io::Result<Vec<Entry>> {
        let mut records = RecordReader::new(&self.file);
        self.entries
            .iter()
            .map(|(index, location)| records.entry(*index, location))
            .collect()
    }
}

/// Reads entries back from their records, decoding each record once for consecutive entries.
pub(super) struct RecordReader<'a> {
    /// The file the records lie in.
    file: &'a File,
    /// The last record read (its offset and entries), for the next entries in it.
    last: Option<(u64, Vec<Entry>)>,
}

impl<'a> RecordReader<'a> {
    /// A reader of records in `file`.
    pub(super) fn new(file: &'a File) -> RecordReader<'a> {
        RecordReader { file, last: None }
    }

    /// The entry at `index`, from its record at `location`.
    pub(super) fn entry(&mut self, index: u64, location: &Location) -> std::io::Result<Entry> {
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
