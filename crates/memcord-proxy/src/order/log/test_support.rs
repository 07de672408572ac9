//! What the log's unit tests share: entries, framed append records, replaying a log file.

use super::super::{Entry, NodeId};
use super::file::{open_log, LogFile};
use super::record::{encode, Contents, Record};
use openraft::{CommittedLeaderId, EntryPayload, LogId};
use std::path::Path;

/// A blank entry of term 1 at `index`.
pub(super) fn entry(index: u64) -> Entry {
    Entry {
        log_id: LogId::new(CommittedLeaderId::new(1, 0), index),
        payload: EntryPayload::Blank,
    }
}

/// The framed record appending blank entries at `indexes`.
pub(super) fn append(indexes: std::ops::Range<u64>) -> Vec<u8> {
    encode(&Record::Append(indexes.map(entry).collect())).expect("encode")
}

/// Replays `dir`'s log: the indexes it holds and the purge point.
pub(super) fn reopen(dir: &Path) -> (LogFile, Vec<u64>, Option<LogId<NodeId>>) {
    let mut contents = Contents::default();
    let (log, _) = open_log(dir, &mut contents).expect("open");
    let indexes: Vec<u64> = contents.entries.into_keys().collect();
    let located: Vec<u64> = contents.locations.into_keys().collect();
    assert_eq!(indexes, located, "every replayed entry has a location");
    (log, indexes, contents.purged)
}
