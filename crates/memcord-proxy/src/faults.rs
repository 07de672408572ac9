//! Test-only fault switches, compiled only with the `fault-injection` feature, so a release
//! build has neither the switches nor the variable that arms them.
//!
//! The one switch, **unsafe local reads**, breaks the linearizable mode on purpose: reads skip
//! the read index and are answered from the local store at once
//! ([`crate::modes::ReadPolicy::UnsafeLocal`]), and followers apply committed entries
//! [`UNSAFE_FOLLOWER_LAG`] late (`OrderConfig::follower_apply_lag`). A cut-off or lagging peer
//! then answers stale values: it exists only so the tests can prove that `memcord check`
//! catches a broken build.
//!
//! Even a `fault-injection` build does nothing until a program arms the switches: the
//! `memcord-faulty` binary calls [`arm_from_env`] first thing, the `memcord` binary never does,
//! so `memcord` ignores [`UNSAFE_LOCAL_READS_ENV`] in every build.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The variable that breaks linearizable reads when an armed program starts
/// (`MEMCORD_UNSAFE_LOCAL_READS=1`).
pub const UNSAFE_LOCAL_READS_ENV: &str = "MEMCORD_UNSAFE_LOCAL_READS";

/// How long the broken build's followers wait before applying what was committed, so that
/// a read through a follower right after a write misses it for certain (a race alone made
/// the broken build's stale reads a matter of luck).
pub const UNSAFE_FOLLOWER_LAG: Duration = Duration::from_millis(50);

/// Whether unsafe local reads are on in this process.
static UNSAFE_LOCAL_READS: AtomicBool = AtomicBool::new(false);

/// Reads [`UNSAFE_LOCAL_READS_ENV`] (set, not empty and not `0`: on) and arms the switch
/// accordingly. Only `memcord-faulty` calls it.
pub fn arm_from_env() {
    let on = std::env::var(UNSAFE_LOCAL_READS_ENV).is_ok_and(|v| !v.is_empty() && v != "0");
    UNSAFE_LOCAL_READS.store(on, Ordering::Relaxed);
}

/// Whether the test-only unsafe local reads are switched on.
pub fn unsafe_local_reads() -> bool {
    UNSAFE_LOCAL_READS.load(Ordering::Relaxed)
}

/// Says loudly that this peer is broken on purpose.
pub fn log_unsafe_local_reads() {
    tracing::error!(
        "{UNSAFE_LOCAL_READS_ENV} is set: linearizable reads are served from the local store \
         WITHOUT a read index; this peer is deliberately NOT linearizable (test-only switch)"
    );
}
