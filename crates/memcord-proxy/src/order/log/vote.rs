//! The vote file, `data_dir/peer-N/vote`: the last vote (postcard), replaced atomically
//! (tmp + fsync + rename + directory fsync). Votes are rare (elections), so it is written
//! whole each time.

use super::super::NodeId;
use super::file::sync_dir;
use openraft::Vote;
use std::fs::File;
use std::io::Write;
use std::path::Path;

/// The vote saved in `dir`, if any, as this peer restarts with it.
///
/// A peer that led before it stopped restarts as a follower that voted for itself in that
/// term (term and vote kept, so it still cannot vote twice). openraft 0.9 would otherwise
/// resume leading at once from a stale view of its followers, which replicates from ranges
/// its compacted log no longer holds (and panics its task); an election or the current
/// leader's heartbeat settles leadership instead.
pub(super) fn read_saved(dir: &Path) -> std::io::Result<Option<Vote<NodeId>>> {
    let vote = match std::fs::read(dir.join("vote")) {
        Ok(bytes) => Some(postcard::from_bytes(&bytes).map_err(std::io::Error::other)?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    Ok(vote.map(|v: Vote<NodeId>| {
        if v.committed {
            tracing::info!(term = v.leader_id.term, "restarting as a follower of term");
        }
        Vote::new(v.leader_id.term, v.leader_id.node_id)
    }))
}

/// Replaces the vote saved in `dir` with `bytes` (an encoded vote); with `fsync`, durably.
pub(super) fn write(dir: &Path, bytes: &[u8], fsync: bool) -> std::io::Result<()> {
    let tmp = dir.join("vote.tmp");
    let mut file = File::create(&tmp)?;
    file.write_all(bytes)?;
    if fsync {
        file.sync_all()?;
    }
    std::fs::rename(&tmp, dir.join("vote"))?;
    if fsync {
        sync_dir(dir)?;
    }
    Ok(())
}
