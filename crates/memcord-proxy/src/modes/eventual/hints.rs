//! Hinted handoff: writes that could not reach one of their replicas, kept for it until it
//! is seen up again.
//!
//! Hints are kept per target peer, one per key (a newer hint for the same key replaces the
//! older: the replica only needs the newest state, and last-writer-wins makes replaying it
//! safe even when the replica has newer data by then). They are bounded in count per peer
//! and in bytes overall; past either bound a hint is dropped and counted, and the periodic
//! sync repairs that key instead.
//!
//! Each target's hints are also appended to `hints/peer-M` in the peer's data directory
//! (`u32` length + `postcard` entry per record, no fsync: they survive a process crash, not a
//! power cut) and read back at start, so a coordinator that restarts still hands them off.
//! A file is removed when its hints are handed off, and rewritten from memory when replaced
//! hints make it much larger than what it holds.

use crate::cluster::{EntryState, LogEntry, PeerId};
use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// Largest hint record read back from disk (a value is at most the item size limit, 1 MiB by
/// default, far below this).
const MAX_RECORD: usize = 64 * 1024 * 1024;

/// Bounds of the hint store.
#[derive(Debug, Clone)]
pub struct HintLimits {
    /// Most hints kept for one target peer.
    pub max_per_peer: usize,
    /// Most bytes (keys and values) kept for all targets together.
    pub max_bytes: u64,
}

#[derive(Default)]
struct Target {
    hints: HashMap<Bytes, LogEntry>,
    bytes: u64,
    file_bytes: u64,
}

/// The hints this peer holds for others.
pub(crate) struct Hints {
    dir: Option<PathBuf>,
    limits: HintLimits,
    targets: Mutex<BTreeMap<PeerId, Target>>,
}

/// What [`Hints::add`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Added {
    /// Kept (new, or newer than the hint it replaced).
    Stored,
    /// An equal or newer hint for the key was already kept.
    Superseded,
    /// Over a bound: dropped (the periodic sync repairs the key).
    Dropped,
}

fn entry_size(entry: &LogEntry) -> u64 {
    match entry {
        LogEntry::Key { key, state } => {
            let value = match state {
                EntryState::Item(item) => item.value.len(),
                EntryState::Tombstone(_) => 0,
            };
            (key.len() + value + 48) as u64
        }
        LogEntry::Flush { .. } => 16,
    }
}

fn entry_version(entry: &LogEntry) -> crate::clock::Timestamp {
    match entry {
        LogEntry::Key { state, .. } => state.version(),
        LogEntry::Flush { cutoff } => *cutoff,
    }
}

fn record(entry: &LogEntry) -> Option<Vec<u8>> {
    let body = postcard::to_stdvec(entry).ok()?;
    let mut out = Vec::with_capacity(body.len() + 4);
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&body);
    Some(out)
}

impl Hints {
    /// Opens the hint store under `dir` (created when the first hint is written), reading
    /// back what an earlier run left there; `None` keeps hints in memory only.
    pub fn open(dir: Option<PathBuf>, limits: HintLimits) -> Hints {
        let hints = Hints {
            dir,
            limits,
            targets: Mutex::new(BTreeMap::new()),
        };
        hints.load();
        hints
    }

    fn file(&self, peer: PeerId) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.join(format!("peer-{peer}")))
    }

    fn load(&self) {
        let Some(dir) = &self.dir else { return };
        let Ok(listing) = std::fs::read_dir(dir) else {
            return;
        };
        for file in listing.flatten() {
            let name = file.file_name();
            let Some(peer) = name
                .to_str()
                .and_then(|n| n.strip_prefix("peer-"))
                .and_then(|n| n.parse::<PeerId>().ok())
            else {
                continue;
            };
            let entries = read_records(&file.path());
            let mut targets = self.targets.lock();
            let target = targets.entry(peer).or_default();
            target.file_bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
            for entry in entries {
                self.keep(target, entry);
            }
            tracing::info!(
                peer,
                hints = target.hints.len(),
                "hints read back from disk"
            );
        }
    }

    /// Keeps a hint in memory if it fits and is the key's newest (not the file).
    fn keep(&self, target: &mut Target, entry: LogEntry) -> Added {
        let LogEntry::Key { key, .. } = &entry else {
            return Added::Dropped;
        };
        let size = entry_size(&entry);
        if let Some(old) = target.hints.get(key) {
            if entry_version(old) >= entry_version(&entry) {
                return Added::Superseded;
            }
        } else if target.hints.len() >= self.limits.max_per_peer {
            return Added::Dropped;
        }
        if let Some(old) = target.hints.insert(key.clone(), entry) {
            target.bytes -= entry_size(&old);
        }
        target.bytes += size;
        Added::Stored
    }

    /// Keeps `entry` for `peer` and appends it to the peer's hint file.
    pub fn add(&self, peer: PeerId, entry: LogEntry) -> Added {
        let mut targets = self.targets.lock();
        let total: u64 = targets.values().map(|t| t.bytes).sum();
        if total + entry_size(&entry) > self.limits.max_bytes {
            return Added::Dropped;
        }
        let target = targets.entry(peer).or_default();
        let added = self.keep(target, entry.clone());
        if added != Added::Stored {
            return added;
        }
        if let Some(path) = self.file(peer) {
            if target.file_bytes > 2 * target.bytes + (1 << 20) {
                target.file_bytes = rewrite(&path, target.hints.values());
            } else if let Some(bytes) = record(&entry) {
                if append(&path, &bytes) {
                    target.file_bytes += bytes.len() as u64;
                }
            }
        }
        added
    }

    /// Takes every hint held for `peer` (removing its file); give back what could not be
    /// delivered with [`Hints::restore`].
    pub fn take(&self, peer: PeerId) -> Vec<LogEntry> {
        let taken = self.targets.lock().remove(&peer);
        if let Some(path) = self.file(peer) {
            let _ = std::fs::remove_file(path);
        }
        taken
            .map(|t| t.hints.into_values().collect())
            .unwrap_or_default()
    }

    /// Gives back hints that could not be handed off.
    pub fn restore(&self, peer: PeerId, entries: Vec<LogEntry>) {
        for entry in entries {
            self.add(peer, entry);
        }
    }

    /// The peers hints are held for.
    pub fn targets(&self) -> Vec<PeerId> {
        self.targets
            .lock()
            .iter()
            .filter(|(_, t)| !t.hints.is_empty())
            .map(|(p, _)| *p)
            .collect()
    }

    /// Hints held, over all targets.
    pub fn len(&self) -> usize {
        self.targets.lock().values().map(|t| t.hints.len()).sum()
    }
}

fn append(path: &Path, bytes: &[u8]) -> bool {
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(bytes));
    if let Err(err) = &written {
        tracing::warn!(path = %path.display(), %err, "could not persist a hint");
    }
    written.is_ok()
}

/// Rewrites a hint file from memory (tmp + rename); returns its new size.
fn rewrite<'a>(path: &Path, entries: impl Iterator<Item = &'a LogEntry>) -> u64 {
    let mut out = Vec::new();
    for entry in entries {
        if let Some(bytes) = record(entry) {
            out.extend_from_slice(&bytes);
        }
    }
    let tmp = path.with_extension("tmp");
    let done = std::fs::write(&tmp, &out).and_then(|_| std::fs::rename(&tmp, path));
    if let Err(err) = done {
        tracing::warn!(path = %path.display(), %err, "could not rewrite a hint file");
    }
    out.len() as u64
}

/// Reads a hint file's records; a torn or undecodable tail ends the file.
fn read_records(path: &Path) -> Vec<LogEntry> {
    let mut bytes = Vec::new();
    if std::fs::File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .is_err()
    {
        return Vec::new();
    }
    let mut entries = Vec::new();
    let mut at = 0;
    while at + 4 <= bytes.len() {
        let len =
            u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]) as usize;
        if len > MAX_RECORD || at + 4 + len > bytes.len() {
            break;
        }
        match postcard::from_bytes::<LogEntry>(&bytes[at + 4..at + 4 + len]) {
            Ok(entry) => entries.push(entry),
            Err(_) => break,
        }
        at += 4 + len;
    }
    entries
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Timestamp;
    use crate::store::{ExpiresAt, Item};

    fn entry(key: &str, value: &str, ms: u64) -> LogEntry {
        LogEntry::Key {
            key: Bytes::copy_from_slice(key.as_bytes()),
            state: EntryState::Item(Item::new(
                Bytes::copy_from_slice(value.as_bytes()),
                0,
                ExpiresAt::NEVER,
                Timestamp::new(ms, 0, 1),
            )),
        }
    }

    fn limits(per_peer: usize, bytes: u64) -> HintLimits {
        HintLimits {
            max_per_peer: per_peer,
            max_bytes: bytes,
        }
    }

    #[test]
    fn keeps_the_newest_hint_per_key_and_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hints");
        let hints = Hints::open(Some(path.clone()), limits(10, 1 << 20));
        assert_eq!(hints.add(2, entry("a", "old", 10)), Added::Stored);
        assert_eq!(hints.add(2, entry("a", "new", 20)), Added::Stored);
        assert_eq!(hints.add(2, entry("a", "older", 5)), Added::Superseded);
        assert_eq!(hints.add(3, entry("b", "x", 10)), Added::Stored);
        assert_eq!(hints.len(), 2);
        drop(hints);

        let again = Hints::open(Some(path.clone()), limits(10, 1 << 20));
        assert_eq!(again.targets(), vec![2, 3]);
        assert_eq!(again.take(2), vec![entry("a", "new", 20)]);
        assert!(!path.join("peer-2").exists());
        assert_eq!(again.targets(), vec![3]);
    }

    #[test]
    fn bounds_count_and_bytes() {
        let hints = Hints::open(None, limits(2, 1 << 20));
        assert_eq!(hints.add(1, entry("a", "x", 1)), Added::Stored);
        assert_eq!(hints.add(1, entry("b", "x", 1)), Added::Stored);
        assert_eq!(hints.add(1, entry("c", "x", 1)), Added::Dropped);
        // Replacing an existing key's hint is always allowed under the count bound.
        assert_eq!(hints.add(1, entry("b", "y", 2)), Added::Stored);
        let small = Hints::open(None, limits(100, 120));
        assert_eq!(small.add(1, entry("a", "0123456789", 1)), Added::Stored);
        assert_eq!(small.add(2, entry("b", "0123456789", 1)), Added::Stored);
        assert_eq!(small.add(3, entry("c", "0123456789", 1)), Added::Dropped);
    }

    #[test]
    fn a_torn_tail_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hints");
        let hints = Hints::open(Some(path.clone()), limits(10, 1 << 20));
        hints.add(4, entry("a", "v", 1));
        hints.add(4, entry("b", "v", 1));
        let file = path.join("peer-4");
        let mut bytes = std::fs::read(&file).unwrap();
        bytes.truncate(bytes.len() - 3);
        bytes.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 1]);
        std::fs::write(&file, bytes).unwrap();
        let again = Hints::open(Some(path), limits(10, 1 << 20));
        assert_eq!(again.take(4), vec![entry("a", "v", 1)]);
    }
}
