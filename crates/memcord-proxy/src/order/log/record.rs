//! The log file's record format, and replaying records into the log they describe.
//!
//! ```text
//! data_dir/peer-N/log   "MCLOG\0\0\x02", then records: u32 length (LE) + u32 crc32 (LE)
//!                       + postcard(Record), then zeros to the end of the file
//! ```
//! A record appends entries, truncates from an index or purges up to a log id; replaying the
//! records in file order rebuilds the log ([`Contents`]) and tells where each live entry's
//! record lies ([`Location`]). Replay stops at the first zero length (the preallocated tail)
//! or at a record whose length, checksum or encoding is wrong: a torn last record (a crash
//! mid-write) whose entries were never acknowledged, since openraft is told an append is
//! durable only after the fsync. The checksum is what tells a torn record from a whole one:
//! in a preallocated file the bytes a crash never wrote read as zeros, which can look like a
//! valid body. The older format (no header, each record a length and a body, no checksum) is
//! replayed only to be rewritten in this one (see `file::open_log`).

use super::super::{Entry, NodeId};
use openraft::LogId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::FileExt;

/// One change to the log, as written to its file.
#[derive(Serialize, Deserialize)]
pub(super) enum Record {
    /// Entries appended (or, after a truncate, written again), in index order.
    Append(Vec<Entry>),
    /// Every entry from this index on is gone.
    Truncate(u64),
    /// Every entry up to this log id is gone (compacted into a snapshot).
    Purge(LogId<NodeId>),
}

/// The first bytes of a log file in this format.
pub(super) const MAGIC: &[u8; 8] = b"MCLOG\0\0\x02";
/// Length and checksum ahead of each record's body.
pub(super) const FRAME_HEADER: usize = 8;

/// Where a live entry's record lies in the log file, in the file's current layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Location {
    /// The entry's id: after a truncate an index can be written again with another term.
    pub(super) log_id: LogId<NodeId>,
    /// The record's first byte (its frame header).
    pub(super) offset: u64,
    /// The record's length, header included.
    pub(super) len: u32,
    /// The entry's share of the record's length: what keeping it in memory is counted as.
    pub(super) weight: u32,
}

impl Location {
    /// The location of `log_id`, one of `count` entries in the record at `offset`.
    pub(super) fn in_record(
        log_id: LogId<NodeId>,
        offset: u64,
        len: u32,
        count: usize,
    ) -> Location {
        Location {
            log_id,
            offset,
            len,
            weight: len / count.max(1) as u32,
        }
    }

    /// Offset just past the record.
    pub(super) fn end(&self) -> u64 {
        self.offset + u64::from(self.len)
    }
}

/// A log as replayed from its file: the live entries, where their records lie, the purge
/// point.
#[derive(Default)]
pub(super) struct Contents {
    /// The live entries by index.
    pub(super) entries: BTreeMap<u64, Entry>,
    /// Where each live entry's record lies.
    pub(super) locations: BTreeMap<u64, Location>,
    /// The last purged log id, if any.
    pub(super) purged: Option<LogId<NodeId>>,
}

/// `record` framed on its own: length, checksum, body.
pub(super) fn encode(record: &Record) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    encode_into(record, &mut buf)?;
    Ok(buf)
}

/// Frames `record` into `buf` (cleared first): length, checksum, body. `buf` is sized once,
/// exactly, and keeps its capacity, so a writer framing record after record reuses one
/// buffer instead of growing a fresh one each time (each growth of a large buffer faults in,
/// and zeroes, pages the kernel has to find first).
pub(super) fn encode_into(record: &Record, buf: &mut Vec<u8>) -> std::io::Result<()> {
    let body_len = crate::order::encoded_size(record).map_err(std::io::Error::other)?;
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
pub(super) fn replay_all(
    bytes: &[u8],
    checked: bool,
    base: u64,
    contents: &mut Contents,
) -> (usize, usize) {
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

/// Reads back the append record at `location`, checking its length and checksum.
pub(super) fn read_record(file: &File, location: &Location) -> std::io::Result<Vec<Entry>> {
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

#[cfg(test)]
mod tests {
    use super::super::test_support::{append, reopen};

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
}
