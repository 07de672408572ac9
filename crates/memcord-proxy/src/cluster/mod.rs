//! The cluster layer shared by every replicated mode: peer transport with authentication,
//! membership with heartbeats and failure detection. It knows nothing of the client protocol.

pub mod auth;
pub mod frame;
pub mod membership;
pub mod message;
pub mod ring;
pub mod transport;

pub use membership::{Membership, PeerStatus};
pub use message::{
    EntryState, LogEntry, PeerId, PeerMessage, PeerReport, PeerRequest, PeerResponse,
};
pub use ring::{Ring, RingSpec};
pub use transport::{CallError, PeerService, ResponseFuture, Transport, TransportConfig};
