//! The linearizable mode: every write goes through the ordered queue and is answered once
//! applied; a read is served from the local store once it has applied a read index that the
//! leader confirmed with a quorum after the read began (openraft's read-index path), so it
//! sees every write acknowledged before it started, through any peer.
//!
//! A `fault-injection` build has a test-only way to break it, armed only by the
//! `memcord-faulty` binary (see `crate::faults`).

use super::ordered::ReadPolicy;

/// How the linearizable mode serves reads: by read index, unless the test-only fault switch
/// is armed.
pub fn read_policy() -> ReadPolicy {
    #[cfg(feature = "fault-injection")]
    if crate::faults::unsafe_local_reads() {
        return ReadPolicy::UnsafeLocal;
    }
    ReadPolicy::Linearizable
}
