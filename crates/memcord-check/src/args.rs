//! `memcord check`'s flags and exit codes.

use std::path::PathBuf;

/// `memcord check`: what to run.
#[derive(Debug, Clone, clap::Args)]
pub struct CheckArgs {
    /// Consistency mode to check: linearizable, sequential or eventual.
    #[arg(long, default_value = "linearizable")]
    pub consistency: String,
    /// Seconds of workload.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Seed of the workload and of the fault schedule (default: random, printed).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Concurrent clients (one connection each, spread over the peers).
    #[arg(long, default_value_t = 6)]
    pub clients: usize,
    /// Register keys (plus a third as many counter keys).
    #[arg(long, default_value_t = 5)]
    pub keys: usize,
    /// Target rate of the whole workload, operations per second (0 = as fast as the clients
    /// go); keeps histories small enough to check.
    #[arg(long, default_value_t = 1000)]
    pub rate: u64,
    /// Most operations in the history.
    #[arg(long, default_value_t = 20_000)]
    pub max_ops: usize,
    /// Faults: none, or a comma list of kill, stop, partition, backend, mix.
    #[arg(long, default_value = "mix")]
    pub faults: String,
    /// Backing store of a started cluster: memory or memcached (one memcached child per peer).
    #[arg(long, default_value = "memory")]
    pub backend: String,
    /// Peers of a started cluster.
    #[arg(long, default_value_t = 3)]
    pub peers: usize,
    /// Check a running cluster instead: its peers' client addresses, in peer-id order
    /// (host:port,host:port,…). Only `partition` faults are then possible.
    #[arg(long)]
    pub attach: Option<String>,
    /// Write history.json, summary.txt (and timeline HTML on a violation) into this folder.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Seconds the checker may search before answering unknown.
    #[arg(long, default_value_t = 60.0)]
    pub checker_budget: f64,
    /// Per-operation reply deadline in seconds.
    #[arg(long, default_value_t = 3.0)]
    pub op_timeout: f64,
    /// The memcord binary the started peers run (default: this one).
    #[arg(long)]
    pub memcord_bin: Option<PathBuf>,
    /// Test-only: start the peers with MEMCORD_UNSAFE_LOCAL_READS=1, a deliberately broken
    /// linearizable mode (reads from the local store without a read index), to prove the
    /// harness catches it. Only the `memcord-faulty` binary (`--features fault-injection`)
    /// reads the variable; the run refuses peers that do not report the switch on.
    #[arg(long, hide = true)]
    pub unsafe_local_reads: bool,
}

/// Exit code: the history is consistent.
pub const EXIT_CONSISTENT: u8 = 0;
/// Exit code: a violation was found.
pub const EXIT_VIOLATION: u8 = 1;
/// Exit code: inconclusive, or the run could not be set up.
pub const EXIT_UNKNOWN: u8 = 2;
