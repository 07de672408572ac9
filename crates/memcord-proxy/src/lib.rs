//! memcord's proxy: a memcache-protocol-compatible consistency proxy peer.
//!
//! One request's path reads top to bottom:
//! `server` (bytes ⇄ [`protocol::Request`]/[`protocol::Response`]) → `modes` (a coordinator per
//! consistency mode) → `replicated` (the command every replica applies) → `store`; `cluster`
//! carries peer traffic and `order` is the ordered request queue of the linearizable and
//! sequential modes; `peer` composes one peer from its `config`. The wire codecs are the `memcord-protocol` crate, re-exported here as
//! [`protocol`] because every layer above the store speaks its types.

pub use memcord_protocol as protocol;

pub mod clock;
pub mod cluster;
pub mod config;
#[cfg(feature = "fault-injection")]
pub mod faults;
pub mod gather;
pub mod modes;
pub mod order;
pub mod peer;
pub mod replicated;
pub mod server;
pub mod socket;
pub mod store;
