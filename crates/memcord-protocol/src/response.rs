//! Responses: one variant per wire reply.

use super::meta::{MetaLine, MetaReply};
use bytes::Bytes;

/// One item in a `get`-family reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Value {
    /// The key, as requested.
    pub key: Bytes,
    /// Opaque client flags.
    pub flags: u32,
    /// The cas id (`gets`/`gats` only).
    pub cas: Option<u64>,
    /// The data block.
    pub data: Bytes,
}

/// One reply to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// `VALUE <key> <flags> <bytes> [<cas>]\r\n<data>\r\n`* then `END\r\n`.
    Values(Vec<Value>),
    /// `STORED\r\n`
    Stored,
    /// `NOT_STORED\r\n`
    NotStored,
    /// `EXISTS\r\n`
    Exists,
    /// `NOT_FOUND\r\n`
    NotFound,
    /// `DELETED\r\n`
    Deleted,
    /// `TOUCHED\r\n`
    Touched,
    /// `OK\r\n`
    Ok,
    /// `RESET\r\n` (reply to `stats reset`)
    Reset,
    /// `<number>\r\n` (reply to `incr`/`decr`)
    Number(u64),
    /// `VERSION <version>\r\n`
    Version(String),
    /// `STAT <name> <value>\r\n`* then `END\r\n`.
    Stats(Vec<(String, String)>),
    /// `ERROR\r\n`: unknown command.
    Error,
    /// `CLIENT_ERROR <reason>\r\n`: the request was malformed.
    ClientError(String),
    /// `SERVER_ERROR <reason>\r\n`: the request was valid but cannot be served.
    ServerError(String),
    /// A meta command's reply, composed by the server ([`MetaReply::compose`]); boxed, so the
    /// classic replies stay small.
    Meta(Box<MetaReply>),
    /// A meta reply as a client parsed it (any code; see [`MetaLine`]).
    MetaLine(MetaLine),
    /// `MN\r\n` (reply to `mn`).
    MetaNoop,
    /// Nothing is sent (`noreply`).
    None,
    /// `<text>\r\n`: a status line of an admin command (`BADCLASS invalid class id`,
    /// `MEMLIMIT_TOO_SMALL …`, `ERROR: shutdown not enabled`).
    Line(String),
    /// Lines sent as they are, then `END\r\n` (`stats detail dump`'s `PREFIX …` lines,
    /// `stats cachedump`'s `ITEM …` lines, `lru_crawler metadump`'s `key=…` lines).
    Block(Bytes),
}
