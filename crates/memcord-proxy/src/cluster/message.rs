//! The peer-to-peer message set, serialized with `postcard` inside length-prefixed frames.
//!
//! Versioned by the handshake: both sides announce [`PROTOCOL_VERSION`] and a peer speaking
//! another version is refused. Add variants at the end of an enum to stay compatible within a
//! version; change the version for anything else.

use super::ring::RingSpec;
use crate::clock::Timestamp;
use crate::store::Item;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// The peer protocol version announced in the handshake.
pub const PROTOCOL_VERSION: u16 = 1;

/// A peer's id as configured (`[peer.N]`).
pub type PeerId = u16;

/// The first frame on a new link, from the dialing peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// [`PROTOCOL_VERSION`] of the dialer.
    pub protocol: u16,
    /// The dialer's id.
    pub from: PeerId,
    /// The id the dialer believes it is talking to.
    pub to: PeerId,
    /// The dialer's consistency mode; all peers must agree.
    pub mode: String,
    /// Fresh random challenge for the acceptor.
    pub nonce: [u8; 32],
}

/// The acceptor's answer to [`Hello`]: its own challenge and proof that it knows the secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Challenge {
    /// Handshake goes on.
    Continue {
        /// Fresh random challenge for the dialer.
        nonce: [u8; 32],
        /// HMAC over both nonces and both ids, keyed by the cluster secret.
        proof: [u8; 32],
    },
    /// The acceptor refuses the link (wrong mode, version or id); the reason is logged.
    Refused(String),
}

/// The dialer's proof that it knows the secret, completing the handshake.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proof {
    /// HMAC over both nonces and both ids, keyed by the cluster secret.
    pub proof: [u8; 32],
}

/// What a peer reports about itself in every heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct PeerReport {
    /// The sender's hybrid clock (merged by the receiver).
    pub clock: Timestamp,
    /// Whether the sender serves clients (false while catching up or failed).
    pub serving: bool,
    /// The sender's role in the ordered queue (`leader`, `follower`, `-`).
    pub role: String,
    /// Items the sender's store holds.
    pub items: u64,
    /// Position of the sender's replication log (eventual) or applied index (ordered modes).
    pub log_position: u64,
}

/// One key's state as the eventual mode replicates it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EntryState {
    /// The key holds this item (its `version` is the last-writer-wins key).
    Item(Item),
    /// The key was deleted at this version.
    Tombstone(Timestamp),
}

impl EntryState {
    /// The version that decides last-writer-wins.
    pub fn version(&self) -> Timestamp {
        match self {
            EntryState::Item(item) => item.version,
            EntryState::Tombstone(version) => *version,
        }
    }
}

/// One replicated change in the eventual mode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LogEntry {
    /// The newest state of one key.
    Key {
        /// The key.
        key: Bytes,
        /// Its state.
        state: EntryState,
    },
    /// A `flush_all`: items at or before `cutoff` are invalid once wall time reaches it.
    Flush {
        /// The flush cutoff.
        cutoff: Timestamp,
    },
}

/// A request that expects one response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PeerRequest {
    /// "Send me the log entries you logged after `since`, at most `max_entries` of them."
    SyncSince {
        /// The asker's last-sync mark for the answering peer.
        since: Timestamp,
        /// Page size bound.
        max_entries: u32,
    },
    /// Opaque payload of the ordered queue (Raft), decoded by `order`.
    Order(Bytes),
    /// Eventual mode with a ring: apply these entries (last writer wins) and acknowledge
    /// (a write at a consistency level above ONE, a replayed hint, a read repair).
    Replicate(Vec<LogEntry>),
    /// Eventual mode with a ring: the asker's replica read of these keys.
    ReadKeys(Vec<Bytes>),
    /// Eventual mode with a ring: coordinate this write as one of its key's replicas (an
    /// opaque `postcard` payload of the mode's command and level, decoded by the mode).
    Coordinate(Bytes),
    /// Like [`PeerRequest::SyncSince`], but only keys the asker holds under `ring` (the
    /// asker's own view of the ring).
    SyncRanges {
        /// The asker's last-sync mark for the answering peer.
        since: Timestamp,
        /// Page size bound.
        max_entries: u32,
        /// The ring the asker serves by.
        ring: RingSpec,
    },
}

/// The answer to a [`PeerRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PeerResponse {
    /// One page of a sync.
    SyncPage {
        /// Entries logged after `since`, in log order.
        entries: Vec<LogEntry>,
        /// Where the next page starts (the log mark of the last entry sent).
        next: Timestamp,
        /// Set on the last page: the mark to resume from at the next sync.
        complete: bool,
    },
    /// Opaque payload of the ordered queue (Raft).
    Order(Bytes),
    /// The peer could not answer.
    Error(String),
    /// [`PeerRequest::Replicate`] done: how many entries were newer than what it held.
    Applied(u32),
    /// [`PeerRequest::ReadKeys`]: each key's state (`None`: nothing known), in key order.
    States(Vec<Option<EntryState>>),
    /// [`PeerRequest::Coordinate`]: the outcome, an opaque `postcard` payload of the mode.
    Coordinated(Bytes),
}

/// Every frame after the handshake.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PeerMessage {
    /// Liveness and status.
    Heartbeat(PeerReport),
    /// Best-effort push of fresh changes (eventual mode).
    Push(Vec<LogEntry>),
    /// A request; answer with a [`PeerMessage::Response`] carrying the same id.
    Request {
        /// Correlation id chosen by the requester.
        id: u64,
        /// The request.
        body: PeerRequest,
    },
    /// The answer to a request.
    Response {
        /// The request's id.
        id: u64,
        /// The answer.
        body: PeerResponse,
    },
}
