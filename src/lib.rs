//! memcord: a memcache-protocol-compatible consistency proxy cluster.
//!
//! One request's path reads top to bottom:
//! `server` (bytes ⇄ [`protocol::Request`]/[`protocol::Response`]) → `modes` (a coordinator per
//! consistency mode) → `replicated` (the command every replica applies) → `store`.

pub mod bench;
pub mod check;
pub mod client;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod gather;
pub mod launch;
pub mod modes;
pub mod order;
pub mod protocol;
pub mod replicated;
pub mod server;
pub mod socket;
pub mod store;
