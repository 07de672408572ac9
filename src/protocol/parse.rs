//! Parsing: requests (server side) and responses (client side).

use super::{Limits, Request, Response};

/// What the connection does after an invalid request's error reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterError {
    /// Go on reading requests after the consumed bytes.
    Continue,
    /// Discard this many further bytes (a rejected data block), then go on.
    Swallow(usize),
    /// Close the connection after sending the reply.
    Close,
}

/// The result of trying to parse one request from the front of a buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseOutcome {
    /// Not enough bytes yet; read more and try again with the same buffer.
    Incomplete,
    /// A whole request occupying the first `consumed` bytes.
    Request {
        /// The request.
        request: Request,
        /// Bytes it occupied.
        consumed: usize,
    },
    /// Invalid input occupying the first `consumed` bytes, answered with `reply`.
    Invalid {
        /// memcached's exact error reply.
        reply: Response,
        /// Bytes to drop from the buffer.
        consumed: usize,
        /// What to do next.
        after: AfterError,
    },
}

/// Parses one request from the front of `buf`.
pub fn parse_request(buf: &[u8], limits: &Limits) -> ParseOutcome {
    let _ = (buf, limits);
    todo!("protocol helper")
}

/// The result of trying to parse one response from the front of a buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResponseOutcome {
    /// Not enough bytes yet.
    Incomplete,
    /// A whole response occupying the first `consumed` bytes.
    Response {
        /// The response.
        response: Response,
        /// Bytes it occupied.
        consumed: usize,
    },
    /// The bytes are not a memcache response; the connection must be dropped.
    Invalid(String),
}

/// Parses one response from the front of `buf`.
pub fn parse_response(buf: &[u8], limits: &Limits) -> ResponseOutcome {
    let _ = (buf, limits);
    todo!("protocol helper")
}
