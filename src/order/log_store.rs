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
use std::sync::Arc;

#[derive(Serialize, Deserialize)]
enum Record {
    Append(Vec<Entry>),
    Truncate(u64),
    Purge(LogId<NodeId>),
}

struct Inner {
    dir: PathBuf,
    fsync: bool,
    file: File,
    records: usize,
    vote: Option<Vote<NodeId>>,
    entries: BTreeMap<u64, Entry>,
    purged: Option<LogId<NodeId>>,
}

/// The log storage handed to openraft; clones share one log.
#[derive(Clone)]
pub struct LogStore {
    inner: Arc<Mutex<Inner>>,
}

fn io_err(e: impl std::error::Error + 'static) -> StorageError<NodeId> {
    StorageIOError::write_logs(openraft::AnyError::new(&e)).into()
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
        Ok(LogStore {
            inner: Arc::new(Mutex::new(Inner {
                dir: dir.to_path_buf(),
                fsync,
                file,
                records,
                vote,
                entries,
                purged,
            })),
        })
    }

    /// Whether nothing was ever persisted here (no vote, no entry): a brand-new peer.
    pub fn is_pristine(&self) -> bool {
        let inner = self.inner.lock();
        inner.vote.is_none() && inner.entries.is_empty() && inner.purged.is_none()
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

impl Inner {
    fn write(&mut self, record: &Record) -> std::io::Result<()> {
        let body = postcard::to_allocvec(record).map_err(std::io::Error::other)?;
        let mut buf = Vec::with_capacity(body.len() + 4);
        buf.extend_from_slice(&(body.len() as u32).to_le_bytes());
        buf.extend_from_slice(&body);
        self.file.write_all(&buf)?;
        if self.fsync {
            self.file.sync_data()?;
        }
        self.records += 1;
        Ok(())
    }

    /// Rewrites the file with only the live state once dead records dominate.
    fn maybe_compact(&mut self) -> std::io::Result<()> {
        if self.records < 64 || self.records < 4 * (self.entries.len() / 256 + 1) {
            return Ok(());
        }
        let tmp = self.dir.join("log.tmp");
        let mut file = File::create(&tmp)?;
        let mut records = 0;
        let mut push = |record: &Record| -> std::io::Result<()> {
            let body = postcard::to_allocvec(record).map_err(std::io::Error::other)?;
            file.write_all(&(body.len() as u32).to_le_bytes())?;
            file.write_all(&body)?;
            records += 1;
            Ok(())
        };
        if let Some(purged) = self.purged {
            push(&Record::Purge(purged))?;
        }
        let all: Vec<Entry> = self.entries.values().cloned().collect();
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
        let inner = self.inner.lock();
        Ok(inner.entries.range(range).map(|(_, e)| e.clone()).collect())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<NodeId>> {
        let inner = self.inner.lock();
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
        let mut inner = self.inner.lock();
        let bytes = postcard::to_allocvec(vote).map_err(|e| {
            StorageError::from(StorageIOError::write_vote(openraft::AnyError::new(&e)))
        })?;
        let write = || -> std::io::Result<()> {
            let tmp = inner.dir.join("vote.tmp");
            let mut file = File::create(&tmp)?;
            file.write_all(&bytes)?;
            if inner.fsync {
                file.sync_all()?;
            }
            std::fs::rename(&tmp, inner.dir.join("vote"))?;
            if inner.fsync {
                sync_dir(&inner.dir)?;
            }
            Ok(())
        };
        write().map_err(|e| {
            StorageError::from(StorageIOError::write_vote(openraft::AnyError::new(&e)))
        })?;
        inner.vote = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError<NodeId>> {
        Ok(self.inner.lock().vote)
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
        let list: Vec<Entry> = entries.into_iter().collect();
        let mut inner = self.inner.lock();
        let record = Record::Append(list);
        let written = inner.write(&record);
        let Record::Append(list) = record else {
            unreachable!()
        };
        if let Err(e) = written {
            callback.log_io_completed(Err(std::io::Error::other(e.to_string())));
            return Err(io_err(e));
        }
        for entry in list {
            inner.entries.insert(entry.log_id.index, entry);
        }
        callback.log_io_completed(Ok(()));
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        let mut inner = self.inner.lock();
        inner
            .write(&Record::Truncate(log_id.index))
            .map_err(io_err)?;
        inner.entries.split_off(&log_id.index);
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        let mut inner = self.inner.lock();
        inner.write(&Record::Purge(log_id)).map_err(io_err)?;
        let Inner {
            entries, purged, ..
        } = &mut *inner;
        replay(entries, purged, Record::Purge(log_id));
        inner.maybe_compact().map_err(io_err)?;
        Ok(())
    }
}
