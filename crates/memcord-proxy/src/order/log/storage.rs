//! [`LogStore`] as openraft's log storage: the `RaftLogReader` and `RaftLogStorage` impls.
//!
//! Every change (append, truncate, purge) is made to the in-memory [`Window`] and queued for
//! the writer under one lock, so records queue in call order; appends are acknowledged by the
//! writer through openraft's callback, truncates and purges are awaited here.

use super::super::{Entry, NodeId, TypeConfig};
use super::record::Record;
use super::window::Window;
use super::writer::Waiter;
use super::{vote, LogStore};
use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{LogId, LogState, RaftLogReader, StorageError, StorageIOError, Vote};
use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use tokio::sync::oneshot;

/// A write failure, as openraft takes it.
fn io_err(e: impl std::error::Error + 'static) -> StorageError<NodeId> {
    StorageIOError::write_logs(openraft::AnyError::new(&e)).into()
}

/// A read failure, as openraft takes it.
fn read_err(e: std::io::Error) -> StorageError<NodeId> {
    StorageIOError::read_logs(openraft::AnyError::new(&e)).into()
}

impl LogStore {
    /// Queues `record`, makes `change` to the window under the same lock, and waits until the
    /// record is durable.
    async fn write_and_wait(
        &self,
        record: Record,
        change: impl FnOnce(&mut Window),
    ) -> Result<(), StorageError<NodeId>> {
        let wait = {
            let mut window = self.shared.window.lock();
            let (done, wait) = oneshot::channel();
            self.queue(&mut window, &record, Waiter::Call(done))
                .map_err(io_err)?;
            change(&mut window);
            wait
        };
        wait.await
            .map_err(|_| io_err(std::io::Error::other("log writer stopped")))?
            .map_err(io_err)
    }
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
        let runs = self.shared.window.lock().on_files(range.clone());
        let mut out = Vec::new();
        for run in &runs {
            out.extend(run.read().map_err(read_err)?);
        }
        let rest = match runs.last().and_then(|run| run.entries.last()) {
            Some((last, _)) => (Bound::Excluded(*last), range.end_bound().cloned()),
            None => (range.start_bound().cloned(), range.end_bound().cloned()),
        };
        let mut window = self.shared.window.lock();
        window.read_back += out.len() as u64;
        out.extend(window.read(rest).map_err(read_err)?);
        Ok(out)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<NodeId>> {
        let window = self.shared.window.lock();
        Ok(LogState {
            last_purged_log_id: window.purged,
            last_log_id: window.last_log_id(),
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
        let (dir, fsync) = (self.shared.dir.clone(), self.shared.fsync);
        // Votes are rare (elections): written off the runtime's threads, waited for.
        let written = tokio::task::spawn_blocking(move || vote::write(&dir, &bytes, fsync))
            .await
            .map_err(|e| vote_err(std::io::Error::other(e)))?;
        written.map_err(vote_err)?;
        *self.shared.vote.lock() = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError<NodeId>> {
        Ok(*self.shared.vote.lock())
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
        self.write_and_wait(Record::Truncate(log_id.index), |window| {
            window.truncate(log_id.index)
        })
        .await
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        self.write_and_wait(Record::Purge(log_id), |window| window.purge(log_id))
            .await
    }
}
