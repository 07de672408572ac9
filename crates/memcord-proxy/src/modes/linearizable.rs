//! The linearizable mode: every write goes through the ordered queue and is answered once
//! applied; a read is served from the local store once it has applied a read index that the
//! leader confirmed with a quorum after the read began (openraft's read-index path), so it
//! sees every write acknowledged before it started, through any peer.
//!
//! **Test-only switch:** with the environment variable [`UNSAFE_LOCAL_READS_ENV`]
//! (`MEMCORD_UNSAFE_LOCAL_READS=1`) set when the peer starts, reads skip the read index and
//! are answered from the local store at once, and followers apply committed entries
//! [`UNSAFE_FOLLOWER_LAG`] late. That breaks linearizability (a cut-off or
//! lagging peer answers stale values) and exists only so the tests can prove that
//! `memcord check` catches a broken build. Never set it in a deployment; the peer logs an
//! error when it is on.

use super::ordered::ReadPolicy;

/// The test-only variable that breaks linearizable reads on purpose (see the module docs).
pub const UNSAFE_LOCAL_READS_ENV: &str = "MEMCORD_UNSAFE_LOCAL_READS";

/// How long the broken build's followers wait before applying what was committed, so that
/// a read through a follower right after a write misses it for certain (a race alone made
/// the broken build's stale reads a matter of luck).
pub const UNSAFE_FOLLOWER_LAG: std::time::Duration = std::time::Duration::from_millis(50);

/// Whether the test-only unsafe local reads are switched on.
pub fn unsafe_local_reads() -> bool {
    std::env::var(UNSAFE_LOCAL_READS_ENV).is_ok_and(|v| !v.is_empty() && v != "0")
}

/// How the linearizable mode serves reads: by read index, unless the test-only switch is on.
pub fn read_policy() -> ReadPolicy {
    if unsafe_local_reads() {
        tracing::error!(
            "{UNSAFE_LOCAL_READS_ENV} is set: linearizable reads are served from the local \
             store WITHOUT a read index; this peer is deliberately NOT linearizable \
             (test-only switch)"
        );
        ReadPolicy::UnsafeLocal
    } else {
        ReadPolicy::Linearizable
    }
}
