//! The ordered request queue: Raft (through `openraft`) agreeing on one order of command
//! batches, applied by every peer to its own store.
//!
//! ```text
//! coordinator ─▶ OrderedQueue::submit ─▶ batcher ─▶ leader? raft.client_write(batch)
//!                                                 └ else  Transport::call(leader, Order(Write))
//! every peer:  log (data_dir/peer-N) ─▶ state_machine ─▶ replicated::apply ─▶ store
//! ```
//! The parts follow openraft's seams: [`log`] (log and vote on disk, the newest entries in
//! memory), [`state_machine`] (the store, snapshots), [`network`] (Raft RPCs over the
//! authenticated peer transport as opaque `PeerRequest::Order` payloads) and [`queue`]
//! (batching, forwarding, read index, bootstrap). It knows nothing of the client protocol's
//! wire form.

pub mod log;
pub mod network;
pub mod queue;
pub mod state_machine;

pub use queue::{OrderConfig, OrderedQueue, QueueError, Role};

use crate::replicated::{Command, Outcome};
use crate::store::StoreResult;
use serde::{Deserialize, Serialize};
use std::io::Cursor;

/// The app data of one log entry: commands from one or many clients, applied in order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    /// The commands, each with the hybrid-clock version its coordinator stamped.
    pub commands: Vec<Command>,
}

impl std::fmt::Display for Batch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "batch of {}", self.commands.len())
    }
}

/// The state machine's answer to one [`Batch`]: one outcome per command, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchReply {
    /// Outcomes (or store failures) in command order.
    pub outcomes: Vec<StoreResult<Outcome>>,
}

/// Raft node ids are the configured peer ids.
pub type NodeId = u64;

openraft::declare_raft_types!(
    /// The openraft type configuration of memcord's ordered queue.
    pub TypeConfig:
        D = Batch,
        R = BatchReply,
        NodeId = NodeId,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// A log entry of the ordered queue.
pub type Entry = openraft::Entry<TypeConfig>;

/// `value` encoded into a buffer allocated once at its exact size. Growing a buffer by
/// doubling to a log entry's or a snapshot's size (megabytes: a snapshot is as large as the
/// store) copies it over and over and faults in, and zeroes, about twice its size in fresh
/// pages.
pub(crate) fn encode_exact<T: Serialize + ?Sized>(value: &T) -> postcard::Result<Vec<u8>> {
    postcard::to_extend(value, Vec::with_capacity(encoded_size(value)?))
}

/// How many bytes `value` encodes to (a walk over it that copies nothing).
pub(crate) fn encoded_size<T: Serialize + ?Sized>(value: &T) -> postcard::Result<usize> {
    postcard::serialize_with_flavor(value, postcard::ser_flavors::Size::default())
}
