//! The log store as openraft uses it: appends, reads, truncates, purges and a rewrite, with
//! entries leaving memory and read back from the file.

use super::file::open_log;
use super::record::Contents;
use super::writer::Waiter;
use super::*;
use openraft::storage::RaftLogStorage;
use openraft::{CommittedLeaderId, EntryPayload, LogId, RaftLogReader};
use std::fs::File;
use std::sync::atomic::Ordering;
use tokio::sync::oneshot;

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
    store.shared.window.lock().entries.keys().copied().collect()
}

#[tokio::test]
async fn applied_entries_leave_memory_and_are_read_back_from_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = LogStore::open(dir.path(), false, 4096).unwrap();
    let mut expected = fill_until_applied_entries_leave_memory(&mut store).await;
    truncate_into_a_new_term(&mut store, &mut expected).await;
    purge_until_the_file_is_rewritten(&mut store, &mut expected).await;
    read_across_the_rewrite(&mut store, &expected).await;
    drop(store);

    // The rewritten file replays to the same log.
    let mut contents = Contents::default();
    open_log(dir.path(), &mut contents).unwrap();
    assert_eq!(contents.purged, Some(expected[39].log_id));
    let replayed: Vec<Entry> = contents.entries.into_values().collect();
    assert_eq!(replayed, expected[40..].to_vec());
}

/// Appends 61 entries, marking the first 40 applied on the way: those leave memory and are
/// read back. Returns the log's entries.
async fn fill_until_applied_entries_leave_memory(store: &mut LogStore) -> Vec<Entry> {
    let all: Vec<Entry> = (1..=60).map(|i| heavy(i, 1, 500)).collect();
    for chunk in all.chunks(7) {
        append_durably(store, chunk.to_vec()).await;
    }
    assert_eq!(
        in_memory(store).len(),
        60,
        "nothing applied: all stay in memory"
    );

    store.applied_marker().store(41, Ordering::Release);
    append_durably(store, vec![heavy(61, 1, 500)]).await;
    assert_eq!(
        in_memory(store),
        (41..=61).collect::<Vec<_>>(),
        "applied entries left memory, unapplied ones stayed"
    );
    let weights: u64 = {
        let window = store.shared.window.lock();
        window
            .locations
            .range(41..)
            .map(|(_, l)| u64::from(l.weight))
            .sum()
    };
    assert_eq!(store.memory(), weights, "memory counts what stays in it");
    let mut expected = all.clone();
    expected.push(heavy(61, 1, 500));
    assert_eq!(read(store, 1..=61).await, expected, "read back whole");
    assert_eq!(read(store, 5..=9).await, expected[4..9].to_vec());
    expected
}

/// A truncate (of unapplied entries) and new ones in another term.
async fn truncate_into_a_new_term(store: &mut LogStore, expected: &mut Vec<Entry>) {
    store
        .truncate(LogId::new(CommittedLeaderId::new(1, 0), 50))
        .await
        .unwrap();
    append_durably(store, (50..=55).map(|i| heavy(i, 2, 300)).collect()).await;
    expected.truncate(49);
    expected.extend((50..=55).map(|i| heavy(i, 2, 300)));
    assert_eq!(read(store, 1..=55).await, *expected);
    let state = store.get_log_state().await.unwrap();
    assert_eq!(state.last_log_id, Some(expected[54].log_id));
}

/// Purges, then appends until the writer has installed a rewrite of the file with entries
/// on file and in memory.
async fn purge_until_the_file_is_rewritten(store: &mut LogStore, expected: &mut Vec<Entry>) {
    let inode = |file: &File| std::os::unix::fs::MetadataExt::ino(&file.metadata().unwrap());
    let first_file = inode(&store.shared.window.lock().reader);
    store.purge(expected[9].log_id).await.unwrap();
    store.purge(expected[19].log_id).await.unwrap();
    for i in 56..=140 {
        append_durably(store, vec![heavy(i, 2, 100)]).await;
        expected.push(heavy(i, 2, 100));
    }
    store.applied_marker().store(120, Ordering::Release);
    store.purge(expected[29].log_id).await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        // Appends drive the writer, which installs the rewrite once it is built.
        let next = expected.len() as u64 + 1;
        append_durably(store, vec![heavy(next, 2, 100)]).await;
        expected.push(heavy(next, 2, 100));
        if inode(&store.shared.window.lock().reader) != first_file {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the log was never rewritten"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// Reads keep working across the switch to the new file, the entries left out of it included
/// until the next purge forgets them.
async fn read_across_the_rewrite(store: &mut LogStore, expected: &[Entry]) {
    let last = expected.len() as u64;
    assert!(
        in_memory(store)[0] > 21,
        "entries on file after the rewrite"
    );
    assert_eq!(read(store, 21..=last).await, expected[20..].to_vec());
    {
        // The rewrite copied only what follows the purge point; 21..=30 (which openraft
        // may still read) are read from the replaced file.
        let window = store.shared.window.lock();
        assert_eq!(window.locations.keys().next(), Some(&31));
        let retired: Vec<u64> = window.retired.iter().flat_map(|r| r.indexes()).collect();
        assert_eq!(retired, (21..=30).collect::<Vec<_>>());
    }
    // The next purge forgets them, and the replaced file with them.
    store.purge(expected[39].log_id).await.unwrap();
    assert!(store.shared.window.lock().retired.is_empty());
    assert_eq!(read(store, 31..=last).await, expected[30..].to_vec());
}
