//! The memcache text protocol: a pure codec, both directions, no I/O.
//!
//! * server side: [`parse_request`] turns bytes into a [`Request`]; [`Response::compose`]
//!   turns a reply into bytes;
//! * client side (the memcached adapter, `check`, `bench`, the console): [`Request::compose`]
//!   and [`parse_response`].
//!
//! Parsing keeps "not enough bytes yet" ([`ParseOutcome::Incomplete`]) apart from "invalid"
//! ([`ParseOutcome::Invalid`], which carries memcached's exact error reply and what the
//! connection must do next). memcache error replies are values, never Rust errors.

mod compose;
mod limits;
mod parse;
mod request;
mod response;

pub use limits::Limits;
pub use parse::{parse_request, parse_response, AfterError, ParseOutcome, ResponseOutcome};
pub use request::{ArithOp, Request, StoreOp};
pub use response::{Response, Value};

/// The version string memcord reports to `version` (numeric first, so clients can parse it).
pub const VERSION: &str = concat!("1.6.0-memcord-", env!("CARGO_PKG_VERSION"));
