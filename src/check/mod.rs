//! Evidence that the modes keep their promises: `memcord check` records a [`history::History`]
//! of real client operations against a real cluster while faults are injected, and a checker
//! judges it against the mode's guarantee.
//!
//! ```text
//! cluster (started here, or attached) ─▶ workload (N clients, recorded) ─┬─▶ heal ─▶ verify
//!                                        nemesis (kill/stop/partition/backend) ─┘
//! ```
//!
//! Like `bench`, it is a black box: it talks to the peers over TCP with the memcache text
//! protocol (and starts them as child processes), never through memcord's insides.

mod args;
pub mod cluster;
pub mod conn;
pub mod history;
pub mod nemesis;
mod run;
pub mod summary;
pub mod verify;
pub mod workload;

pub use args::{CheckArgs, EXIT_CONSISTENT, EXIT_UNKNOWN, EXIT_VIOLATION};
pub use run::run;
