//! The ordered queue's state machine: the peer's store, fed batches of commands in log order
//! through the one [`replicated::apply`](crate::replicated::apply).
//!
//! **Versions follow the log.** A command carries the hybrid-clock version its coordinator
//! stamped, but two coordinators' clocks need not agree with the order the leader picked. So
//! the state machine raises a version that is not above the last applied one to just above it
//! (same peer bits). Every replica does the same on the same log, so versions and cas ids stay
//! identical everywhere, and a `flush_all` never hides a write that the log ordered after it.
//!
//! **Snapshots** are built from the store itself ([`Store::dump`]), taken while the state
//! machine is held (openraft does not apply entries while `get_snapshot_builder` runs), so a
//! snapshot is exactly the state at its last log id. The current snapshot is also written to
//! `data_dir/peer-N/snapshot`, so a restarted peer reloads it and replays only the log after it.
//!
//! **Key index for backends that cannot list their keys exactly.** memcached's `lru_crawler
//! metadump` misses items that its LRU maintainer moves between segments while the crawler
//! walks (measured: a dump listed 102 of 350 items), so a snapshot built from it would lose
//! data. When [`KeyIndex::Tracked`] is chosen, the state machine keeps the set of keys its
//! commands wrote (the backend holds nothing else: the store is emptied before a snapshot
//! and the log are replayed into it) and builds the snapshot by reading those keys back;
//! keys found missing (deleted, expired, evicted) leave the index then.

use super::{Batch, BatchReply, Entry, NodeId, TypeConfig};
use crate::clock::Timestamp;
use crate::replicated::{already_applied, apply, Command};
use crate::store::{Item, Store};
use bytes::Bytes;
use openraft::storage::RaftStateMachine;
use openraft::{
    EntryPayload, LogId, RaftSnapshotBuilder, Snapshot, SnapshotMeta, StorageError, StorageIOError,
    StoredMembership,
};
use serde::{Deserialize, Serialize};
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

type Slot = Arc<parking_lot::Mutex<Option<StoredSnapshot>>>;
type Meta = SnapshotMeta<NodeId, openraft::BasicNode>;

/// What a snapshot holds: every live item, the version high-water mark and the delayed
/// `flush_all`s still pending.
#[derive(Serialize, Deserialize)]
struct Image {
    last_version: Timestamp,
    items: Vec<(Bytes, Item)>,
    pending_flushes: Vec<Timestamp>,
}

/// A snapshot image in the older format, which did not keep the pending flushes.
#[derive(Deserialize)]
struct ImageWithoutFlushes {
    last_version: Timestamp,
    items: Vec<(Bytes, Item)>,
}

impl Image {
    fn decode(data: &[u8]) -> postcard::Result<Image> {
        postcard::from_bytes(data).or_else(|_| {
            let old: ImageWithoutFlushes = postcard::from_bytes(data)?;
            Ok(Image {
                last_version: old.last_version,
                items: old.items,
                pending_flushes: Vec::new(),
            })
        })
    }
}

/// A snapshot as kept on disk and in memory.
#[derive(Serialize, Deserialize, Clone)]
struct StoredSnapshot {
    meta: Meta,
    data: Vec<u8>,
}

/// How a snapshot finds the store's keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyIndex {
    /// The store lists them exactly ([`Store::dump`]): the embedded store.
    Store,
    /// The state machine tracks every key its commands wrote: a memcached backend.
    Tracked,
}

/// Keys read back per round trip when a snapshot is built from the key index.
const INDEX_CHUNK: usize = 512;

/// The state machine handed to openraft.
pub struct StateMachine<S: Store> {
    store: Arc<S>,
    /// Every key written since the store was emptied, when keys are tracked.
    keys: Option<std::collections::HashSet<Bytes>>,
    dir: PathBuf,
    applied: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, openraft::BasicNode>,
    last_version: Timestamp,
    /// The current snapshot, shared with builders finishing on their own tasks.
    snapshot: Slot,
    snapshot_seq: u64,
    /// Commands applied (for `stats cluster`).
    applied_commands: Arc<AtomicU64>,
    /// Where the log learns how far this state machine applied (one past the last index).
    applied_marker: Arc<AtomicU64>,
    /// Test-only: how long to wait before applying while `leading` is false.
    follower_lag: Option<(std::time::Duration, Arc<std::sync::atomic::AtomicBool>)>,
}

fn sm_err(e: impl std::error::Error + 'static) -> StorageError<NodeId> {
    StorageIOError::write_state_machine(openraft::AnyError::new(&e)).into()
}

fn snap_err(e: impl std::error::Error + 'static) -> StorageError<NodeId> {
    StorageIOError::write_snapshot(None, openraft::AnyError::new(&e)).into()
}

impl<S: Store> StateMachine<S> {
    /// A state machine over `store`. The store is emptied, then loaded from the snapshot kept
    /// in `dir` if there is one: the log after that snapshot is replayed by openraft, and a
    /// replay on top of older contents would apply commands twice.
    pub async fn open(
        store: Arc<S>,
        index: KeyIndex,
        dir: &Path,
        applied_commands: Arc<AtomicU64>,
    ) -> Result<StateMachine<S>, StorageError<NodeId>> {
        // A backing memcached may still be starting (started by the same script): wait for it,
        // bounded, before giving up on the peer.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            match store.clear().await {
                Ok(()) => break,
                Err(err) if std::time::Instant::now() < deadline => {
                    tracing::warn!(%err, "store not ready to be emptied; retrying");
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
                Err(err) => return Err(sm_err(err)),
            }
        }
        let mut sm = StateMachine {
            store,
            keys: (index == KeyIndex::Tracked).then(Default::default),
            dir: dir.to_path_buf(),
            applied: None,
            membership: StoredMembership::default(),
            last_version: Timestamp::ZERO,
            snapshot: Slot::default(),
            snapshot_seq: 0,
            applied_commands,
            applied_marker: Arc::default(),
            follower_lag: None,
        };
        match std::fs::read(dir.join("snapshot")) {
            Ok(bytes) => {
                let stored: StoredSnapshot = postcard::from_bytes(&bytes).map_err(snap_err)?;
                sm.load(&stored.meta, &stored.data).await?;
                *sm.snapshot.lock() = Some(stored);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(snap_err(e)),
        }
        Ok(sm)
    }

    async fn load(&mut self, meta: &Meta, data: &[u8]) -> Result<(), StorageError<NodeId>> {
        let image = Image::decode(data).map_err(snap_err)?;
        self.store.clear().await.map_err(sm_err)?;
        if let Some(keys) = &mut self.keys {
            keys.clear();
            keys.extend(image.items.iter().map(|(key, _)| key.clone()));
        }
        for (key, item) in image.items {
            self.store.set(key, item).await.map_err(sm_err)?;
        }
        for cutoff in image.pending_flushes {
            self.store.flush_all(cutoff).await.map_err(sm_err)?;
        }
        self.last_version = image.last_version;
        self.set_applied(meta.last_log_id);
        self.membership = meta.last_membership.clone();
        Ok(())
    }

    /// Tells `marker` how far this state machine applied, now and after every apply: the
    /// log keeps entries in memory until they are applied.
    pub fn report_applied_to(&mut self, marker: Arc<AtomicU64>) {
        self.applied_marker = marker;
        self.set_applied(self.applied);
    }

    /// **Test-only**: while `leading` is false, wait `lag` before each apply, so this peer
    /// lags its leader for certain (see `OrderConfig::follower_apply_lag`).
    pub fn lag_when_following(
        &mut self,
        lag: std::time::Duration,
        leading: Arc<std::sync::atomic::AtomicBool>,
    ) {
        self.follower_lag = Some((lag, leading));
    }

    fn set_applied(&mut self, applied: Option<LogId<NodeId>>) {
        self.applied = applied;
        let next = applied.map_or(0, |l| l.index + 1);
        self.applied_marker.store(next, Ordering::Release);
    }

    /// Raises the command's version above the last applied one (see the module docs).
    fn restamp(&mut self, command: &mut Command) {
        let Some(original) = command.version() else {
            return;
        };
        let version = if original > self.last_version {
            original
        } else {
            Timestamp::from_u64(
                ((self.last_version.as_u64() >> 8) + 1) << 8 | original.peer() as u64,
            )
        };
        self.last_version = version;
        if let Command::FlushAll { cutoff, .. } = command {
            if *cutoff == original {
                *cutoff = version;
            }
        }
        if let Some(v) = command.version_mut() {
            *v = version;
        }
    }

    /// Applies one command. A replica must never skip a command, so an unreachable or slow
    /// backend (a memcached restarting, a pool still connecting) is waited out with a capped
    /// backoff: this peer stops applying, and so serves nothing newer, until its store answers.
    /// Outcomes the store decides (including refusals such as out of memory) are the same on
    /// every replica and are returned at once. A retry first checks whether the failed attempt
    /// landed anyway ([`already_applied`]), so `append` or `incr` is never applied twice.
    async fn apply_one(
        &self,
        command: Command,
    ) -> crate::store::StoreResult<crate::replicated::Outcome> {
        use crate::store::StoreError;
        let mut pause = std::time::Duration::from_millis(5);
        let mut attempt = 0u32;
        loop {
            // A failed attempt may have landed: apply again only if it did not.
            let landed = if attempt == 0 {
                Ok(None)
            } else {
                already_applied(self.store.as_ref(), &command).await
            };
            let result = match landed {
                Ok(Some(outcome)) => Ok(outcome),
                Ok(None) => apply(self.store.as_ref(), command.clone()).await,
                Err(err) => Err(err),
            };
            match result {
                Err(
                    err @ (StoreError::Unavailable | StoreError::Timeout | StoreError::Protocol(_)),
                ) => {
                    attempt = attempt.saturating_add(1);
                    if attempt == 1 || attempt % 20 == 0 {
                        tracing::warn!(%err, attempt, "store failed applying a queued command; retrying");
                    }
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(std::time::Duration::from_secs(1));
                }
                other => return other,
            }
        }
    }

    /// Applies a batch in order. A store that lost its items ([`StoreError::Replaced`]) fails
    /// the whole state machine: openraft stops this peer's queue, and the peer stops.
    ///
    /// [`StoreError::Replaced`]: crate::store::StoreError::Replaced
    async fn apply_batch(&mut self, batch: Batch) -> Result<BatchReply, StorageError<NodeId>> {
        let mut outcomes = Vec::with_capacity(batch.commands.len());
        for mut command in batch.commands {
            self.restamp(&mut command);
            if let Some(keys) = &mut self.keys {
                track(keys, &command);
            }
            let outcome = self.apply_one(command).await;
            if let Err(err @ crate::store::StoreError::Replaced) = &outcome {
                return Err(sm_err(err.clone()));
            }
            outcomes.push(outcome);
        }
        self.applied_commands
            .fetch_add(outcomes.len() as u64, Ordering::Relaxed);
        Ok(BatchReply { outcomes })
    }
}

/// Records the keys `command` may write (a delete's key leaves the index).
fn track(keys: &mut std::collections::HashSet<Bytes>, command: &Command) {
    match command {
        Command::Write { key, .. }
        | Command::Arith { key, .. }
        | Command::Touch { key, .. }
        | Command::MetaGet { key, .. }
        | Command::MetaSet { key, .. }
        | Command::MetaArith { key, .. }
        | Command::MetaDelete {
            key,
            invalidate: true,
            ..
        } => {
            if !keys.contains(key) {
                keys.insert(key.clone());
            }
        }
        // A delete that may not happen (a cas that does not match) keeps the key: a key too
        // many is read back and dropped, a key too few would be lost from a snapshot.
        Command::MetaDelete {
            compare_cas: Some(_),
            ..
        } => {}
        Command::Delete { key, .. } | Command::MetaDelete { key, .. } => {
            keys.remove(key);
        }
        Command::Gat { .. } | Command::Get { .. } | Command::FlushAll { .. } => {}
    }
}

/// Reads every indexed key back; keys found missing leave the index.
async fn read_back<S: Store>(
    store: &S,
    keys: &mut std::collections::HashSet<Bytes>,
) -> crate::store::StoreResult<Vec<(Bytes, Item)>> {
    let all: Vec<Bytes> = keys.iter().cloned().collect();
    let mut items = Vec::with_capacity(all.len());
    for chunk in all.chunks(INDEX_CHUNK) {
        let found = store.peek_items(chunk).await?;
        for (key, item) in chunk.iter().zip(found) {
            match item {
                Some(item) => items.push((key.clone(), item)),
                None => {
                    keys.remove(key);
                }
            }
        }
    }
    Ok(items)
}

/// Writes the current snapshot to `dir/snapshot` (tmp + fsync + rename).
#[allow(clippy::result_large_err)] // openraft's error type, as its traits require
fn persist(dir: &Path, stored: &StoredSnapshot) -> Result<(), StorageError<NodeId>> {
    let tmp = dir.join("snapshot.tmp");
    let write = || -> std::io::Result<()> {
        // Streamed through a small buffer rather than framed whole a second time in memory.
        let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&tmp)?);
        postcard::to_io(stored, &mut out).map_err(std::io::Error::other)?;
        out.into_inner().map_err(|e| e.into_error())?.sync_all()
    };
    write().map_err(snap_err)?;
    std::fs::rename(&tmp, dir.join("snapshot")).map_err(snap_err)
}

/// Builds a snapshot from an image taken while the state machine was held.
pub struct SnapshotBuilder {
    image: Result<Image, crate::store::StoreError>,
    meta: Meta,
    dir: PathBuf,
    slot: Slot,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
        let image = std::mem::replace(
            &mut self.image,
            Err(crate::store::StoreError::Unsupported("built twice".into())),
        )
        .map_err(snap_err)?;
        // Encoding and writing a large store takes long: off the runtime's threads (a pinned
        // peer has one), so clients and Raft are served meanwhile.
        let (meta, dir) = (self.meta.clone(), self.dir.clone());
        #[allow(clippy::result_large_err)] // openraft's error type, as its traits require
        let stored = tokio::task::spawn_blocking(move || {
            let data = super::encode_exact(&image).map_err(snap_err)?;
            let stored = StoredSnapshot { meta, data };
            persist(&dir, &stored)?;
            Ok::<_, StorageError<NodeId>>(stored)
        })
        .await
        .map_err(snap_err)??;
        *self.slot.lock() = Some(stored.clone());
        Ok(Snapshot {
            meta: stored.meta,
            snapshot: Box::new(Cursor::new(stored.data)),
        })
    }
}

impl<S: Store> RaftStateMachine<TypeConfig> for StateMachine<S> {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<
        (
            Option<LogId<NodeId>>,
            StoredMembership<NodeId, openraft::BasicNode>,
        ),
        StorageError<NodeId>,
    > {
        Ok((self.applied, self.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<BatchReply>, StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        if let Some((lag, leading)) = &self.follower_lag {
            if !leading.load(Ordering::Relaxed) {
                tokio::time::sleep(*lag).await;
            }
        }
        let mut replies = Vec::new();
        let mut last = None;
        for entry in entries {
            self.applied = Some(entry.log_id);
            last = Some(entry.log_id);
            match entry.payload {
                EntryPayload::Blank => replies.push(BatchReply::default()),
                EntryPayload::Normal(batch) => replies.push(self.apply_batch(batch).await?),
                EntryPayload::Membership(membership) => {
                    self.membership = StoredMembership::new(Some(entry.log_id), membership);
                    replies.push(BatchReply::default());
                }
            }
        }
        if last.is_some() {
            self.set_applied(last);
        }
        Ok(replies)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.snapshot_seq += 1;
        let items = match &mut self.keys {
            None => self.store.dump().await,
            Some(keys) => read_back(self.store.as_ref(), keys).await,
        };
        let image = items.map(|items| Image {
            last_version: self.last_version,
            items,
            pending_flushes: self.store.pending_flushes(),
        });
        SnapshotBuilder {
            image,
            meta: Meta {
                last_log_id: self.applied,
                last_membership: self.membership.clone(),
                snapshot_id: format!(
                    "{}-{}",
                    self.applied.map(|l| l.index).unwrap_or(0),
                    self.snapshot_seq
                ),
            },
            dir: self.dir.clone(),
            slot: self.snapshot.clone(),
        }
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<NodeId>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &Meta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<NodeId>> {
        let data = snapshot.into_inner();
        self.load(meta, &data).await?;
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data,
        };
        persist(&self.dir, &stored)?;
        *self.snapshot.lock() = Some(stored);
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, StorageError<NodeId>> {
        Ok(self.snapshot.lock().clone().map(|s| Snapshot {
            meta: s.meta,
            snapshot: Box::new(Cursor::new(s.data)),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::unix_ms;
    use crate::store::memory::{MemoryConfig, MemoryStore};
    use crate::store::ExpiresAt;
    use openraft::RaftSnapshotBuilder;

    async fn machine(dir: &Path) -> (Arc<MemoryStore>, StateMachine<MemoryStore>) {
        let store = Arc::new(MemoryStore::new(MemoryConfig::default()));
        let sm = StateMachine::open(store.clone(), KeyIndex::Store, dir, Arc::default())
            .await
            .unwrap();
        (store, sm)
    }

    #[tokio::test]
    async fn a_snapshot_carries_a_delayed_flush_to_the_peer_that_installs_it() {
        let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (a, mut a_sm) = machine(a_dir.path()).await;
        let now = unix_ms();
        let key = Bytes::from_static(b"k");
        let item = Item::new(
            Bytes::from_static(b"v"),
            0,
            ExpiresAt::NEVER,
            Timestamp::new(now, 0, 1),
        );
        a.set(key.clone(), item).await.unwrap();
        let cutoff = Timestamp::new(now + 60_000, 0, 1);
        a.flush_all(cutoff).await.unwrap();
        let snapshot = a_sm
            .get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .unwrap();

        let (b, mut b_sm) = machine(b_dir.path()).await;
        b_sm.install_snapshot(&snapshot.meta, snapshot.snapshot)
            .await
            .unwrap();
        assert_eq!(
            b.pending_flushes(),
            vec![cutoff],
            "the flush is pending there too"
        );
        let items = b.get(std::slice::from_ref(&key)).await.unwrap();
        assert!(items[0].is_some(), "the item lives until the flush's time");
    }

    #[test]
    fn an_image_written_before_pending_flushes_were_kept_still_loads() {
        #[derive(Serialize)]
        struct Old {
            last_version: Timestamp,
            items: Vec<(Bytes, Item)>,
        }
        let item = Item::new(
            Bytes::from_static(b"v"),
            0,
            ExpiresAt::NEVER,
            Timestamp::new(5, 0, 1),
        );
        let old = Old {
            last_version: Timestamp::new(7, 0, 1),
            items: vec![(Bytes::from_static(b"k"), item.clone())],
        };
        let image = Image::decode(&postcard::to_allocvec(&old).unwrap()).unwrap();
        assert_eq!(image.last_version, old.last_version);
        assert_eq!(image.items, vec![(Bytes::from_static(b"k"), item)]);
        assert!(image.pending_flushes.is_empty());
    }
}
