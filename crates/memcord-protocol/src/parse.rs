//! Parsing requests (server side): one function per command family, each following the
//! checks memcached 1.6.18 makes, in the order it makes them (see the table in the module docs).

use super::line::{find_line, key_ok, parse_i64, parse_u32, parse_u64, split_spaces, Line, Words};
use super::{ArithOp, Level, Limits, Request, Response, StoreOp};
use bytes::Bytes;

/// What the connection does after an invalid request's error reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterError {
    /// Go on reading requests after the consumed bytes.
    Continue,
    /// Discard this many further bytes (a rejected data block and its `\r\n`), counted from the
    /// end of the consumed bytes (some may already be in the buffer), then go on.
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
        /// memcached's exact error reply ([`Response::None`] when `noreply` silences it).
        reply: Response,
        /// Bytes to drop from the buffer.
        consumed: usize,
        /// What to do next.
        after: AfterError,
    },
}

/// `CLIENT_ERROR` reason for malformed command lines and bad keys.
pub(crate) const BAD_FORMAT: &str = "bad command line format";
/// `CLIENT_ERROR` reason for a `delete` with a bad trailing argument.
pub(crate) const BAD_DELETE: &str = "bad command line format.  Usage: delete <key> [noreply]";
/// `CLIENT_ERROR` reason for a non-numeric `incr`/`decr` delta.
pub(crate) const BAD_DELTA: &str = "invalid numeric delta argument";
/// `CLIENT_ERROR` reason for a non-numeric exptime (`touch`, `gat`, `flush_all`).
pub(crate) const BAD_EXPTIME: &str = "invalid exptime argument";
/// `CLIENT_ERROR` reason for a data block not followed by `\r\n`.
pub(crate) const BAD_CHUNK: &str = "bad data chunk";
/// `SERVER_ERROR` reason for a value above the size limit.
pub const TOO_LARGE: &str = "object too large for cache";
/// `CLIENT_ERROR` reason for a bad `consistency` line (memcord's own command).
pub(crate) const BAD_LEVEL: &str = "usage: consistency one|quorum|all";
/// `CLIENT_ERROR` reason for a line over the limit (memcord's own; memcached closes silently).
pub(crate) const LINE_TOO_LONG: &str = "line too long";

/// `ERROR`: unknown command or wrong number of words. Never silenced by `noreply`, because
/// memcached rejects the word count before it looks for `noreply`.
fn unknown(consumed: usize) -> ParseOutcome {
    ParseOutcome::Invalid {
        reply: Response::Error,
        consumed,
        after: AfterError::Continue,
    }
}

/// `CLIENT_ERROR <reason>` for a bad line, silenced when the line ended in `noreply`.
fn client_error(reason: &str, consumed: usize, noreply: bool) -> ParseOutcome {
    ParseOutcome::Invalid {
        reply: if noreply {
            Response::None
        } else {
            Response::ClientError(reason.to_owned())
        },
        consumed,
        after: AfterError::Continue,
    }
}

fn request(request: Request, consumed: usize) -> ParseOutcome {
    ParseOutcome::Request { request, consumed }
}

/// Whether the first word of `buf` is a retrieval command followed by a space: those lines may
/// run to `max_get_line_len` (many keys), everything else is held to `max_line_len`.
fn starts_with_get_word(buf: &[u8]) -> bool {
    let start = buf.iter().position(|&b| b != b' ').unwrap_or(buf.len());
    let rest = &buf[start..];
    [&b"get "[..], b"gets ", b"gat ", b"gats "]
        .iter()
        .any(|word| rest.starts_with(word))
}

/// Finds the command line, or says why there is none yet.
fn command_line<'a>(buf: &'a [u8], limits: &Limits) -> Result<Line<'a>, ParseOutcome> {
    if let Some(line) = find_line(buf, limits.max_line_len + 1) {
        return Ok(line);
    }
    if buf.len() <= limits.max_line_len {
        return Err(ParseOutcome::Incomplete);
    }
    let get_limit = limits.max_get_line_len.max(limits.max_line_len);
    if starts_with_get_word(buf) {
        if let Some(line) = find_line(buf, get_limit + 1) {
            return Ok(line);
        }
        if buf.len() <= get_limit {
            return Err(ParseOutcome::Incomplete);
        }
    }
    Err(ParseOutcome::Invalid {
        reply: Response::ClientError(LINE_TOO_LONG.to_owned()),
        consumed: buf.len(),
        after: AfterError::Close,
    })
}

/// Parses one request from the front of `buf`.
pub fn parse_request(buf: &[u8], limits: &Limits) -> ParseOutcome {
    let line = match command_line(buf, limits) {
        Ok(line) => line,
        Err(outcome) => return outcome,
    };
    let Some(command) = split_spaces(line.text).next() else {
        return unknown(line.consumed);
    };
    // Retrieval lines take any number of keys, so they are split lazily rather than into the
    // fixed word array the other commands use.
    match command {
        b"get" => return parse_get(line, false, false, limits),
        b"gets" => return parse_get(line, true, false, limits),
        b"gat" => return parse_get(line, false, true, limits),
        b"gats" => return parse_get(line, true, true, limits),
        [b'm', _] => return super::meta::parse(command, line, buf, limits),
        _ => {}
    }
    let words = Words::split(line.text);
    match command {
        b"set" => parse_store(StoreOp::Set, &words, line, buf, limits),
        b"add" => parse_store(StoreOp::Add, &words, line, buf, limits),
        b"replace" => parse_store(StoreOp::Replace, &words, line, buf, limits),
        b"append" => parse_store(StoreOp::Append, &words, line, buf, limits),
        b"prepend" => parse_store(StoreOp::Prepend, &words, line, buf, limits),
        b"cas" => parse_store(StoreOp::Cas, &words, line, buf, limits),
        b"delete" => parse_delete(&words, line, limits),
        b"incr" => parse_arith(ArithOp::Incr, &words, line, limits),
        b"decr" => parse_arith(ArithOp::Decr, &words, line, limits),
        b"touch" => parse_touch(&words, line, limits),
        b"flush_all" => parse_flush_all(&words, line),
        b"verbosity" => parse_verbosity(&words, line),
        // memcached ignores anything after these two words.
        b"version" => request(Request::Version, line.consumed),
        b"quit" => request(Request::Quit, line.consumed),
        // memcord's own fault-simulation words (no arguments).
        b"fail" if words.as_slice().len() == 1 => request(Request::Fail, line.consumed),
        b"recover" if words.as_slice().len() == 1 => request(Request::Recover, line.consumed),
        b"consistency" => match words.as_slice() {
            [_, word] => match Level::parse(word) {
                Some(level) => request(Request::Consistency(level), line.consumed),
                None => client_error(BAD_LEVEL, line.consumed, false),
            },
            _ => client_error(BAD_LEVEL, line.consumed, false),
        },
        _ => match super::admin::parse_admin(command, &words, line) {
            Some(outcome) => outcome,
            None if super::admin::closes_as_http(command, line.text) => {
                super::admin::close_http(line.consumed)
            }
            None => unknown(line.consumed),
        },
    }
}

/// ```text
/// get <key>+        gets <key>+        gat <exptime> <key>*        gats <exptime> <key>*
/// ```
/// `noreply` is an ordinary key here, as in memcached. `gat <exptime>` without keys is valid
/// and answered with a bare `END`.
fn parse_get(line: Line<'_>, with_cas: bool, touch: bool, limits: &Limits) -> ParseOutcome {
    let mut words = split_spaces(line.text).skip(1);
    let mut exptime = 0;
    if touch {
        let Some(word) = words.next() else {
            return unknown(line.consumed);
        };
        match parse_i64(word) {
            Some(value) => exptime = value,
            None => return client_error(BAD_EXPTIME, line.consumed, false),
        }
    }
    // At most one key per space: sizing once avoids regrowing on long multi-gets.
    let mut keys = Vec::with_capacity(memchr::memchr_iter(b' ', line.text).count().min(1024));
    for key in words {
        if !key_ok(key, limits.max_key_len) {
            return client_error(BAD_FORMAT, line.consumed, false);
        }
        // Each key is its own small copy: a key may be kept (as a store's map key or in a
        // replication log), and a slice of a shared line would keep its neighbours alive.
        keys.push(Bytes::copy_from_slice(key));
    }
    let request_value = if touch {
        Request::Gat {
            exptime,
            keys,
            with_cas,
        }
    } else if keys.is_empty() {
        return unknown(line.consumed);
    } else {
        Request::Get { keys, with_cas }
    };
    request(request_value, line.consumed)
}

/// ```text
/// <set|add|replace|append|prepend> <key> <flags> <exptime> <bytes> [noreply]\r\n<data>\r\n
/// cas <key> <flags> <exptime> <bytes> <cas unique> [noreply]\r\n<data>\r\n
/// ```
fn parse_store(
    op: StoreOp,
    words: &Words<'_>,
    line: Line<'_>,
    buf: &[u8],
    limits: &Limits,
) -> ParseOutcome {
    let is_cas = op == StoreOp::Cas;
    let fixed = if is_cas { 6 } else { 5 };
    if words.count() != fixed && words.count() != fixed + 1 {
        return unknown(line.consumed);
    }
    let w = words.as_slice();
    let noreply = words.noreply();
    let bad = || client_error(BAD_FORMAT, line.consumed, noreply);
    if !key_ok(w[1], limits.max_key_len) {
        return bad();
    }
    let (Some(flags), Some(exptime), Some(len)) =
        (parse_u32(w[2]), parse_i64(w[3]), parse_i64(w[4]))
    else {
        return bad();
    };
    let cas_unique = if is_cas {
        match parse_u64(w[5]) {
            Some(unique) => unique,
            None => return bad(),
        }
    } else {
        0
    };
    // memcached's own bound, checked before the size limit; the size is still only a number
    // here, nothing has been allocated for it.
    let Ok(len) = usize::try_from(len) else {
        return bad();
    };
    if len > i32::MAX as usize - 2 {
        return bad();
    }
    if len > limits.max_value_len {
        // The server swallows the block, answers `SERVER_ERROR object too large for cache`
        // and, for `set`, unlinks the key's old item, as memcached does.
        return request(
            Request::Oversized {
                op,
                key: Bytes::copy_from_slice(w[1]),
                swallow: len + 2,
                noreply,
            },
            line.consumed,
        );
    }
    let end = line.consumed + len + 2;
    if buf.len() < end {
        return ParseOutcome::Incomplete;
    }
    if &buf[end - 2..end] != b"\r\n" {
        // The whole block is consumed; whatever follows is read as the next command, exactly as
        // memcached does.
        return client_error(BAD_CHUNK, end, noreply);
    }
    request(
        Request::Store {
            op,
            key: Bytes::copy_from_slice(w[1]),
            flags,
            exptime,
            value: Bytes::copy_from_slice(&buf[line.consumed..end - 2]),
            cas_unique,
            noreply,
        },
        end,
    )
}

/// ```text
/// delete <key> [0] [noreply]
/// ```
fn parse_delete(words: &Words<'_>, line: Line<'_>, limits: &Limits) -> ParseOutcome {
    let n = words.count();
    if !(2..=4).contains(&n) {
        return unknown(line.consumed);
    }
    let w = words.as_slice();
    // memcached only looks for `noreply` when there is a word after the key.
    let noreply = n > 2 && words.noreply();
    if n > 2 {
        // The only extra word memcached still takes is a zero hold time (a 1.4 leftover).
        let hold_is_zero = w[2] == b"0";
        let valid = (n == 3 && (hold_is_zero || noreply)) || (n == 4 && hold_is_zero && noreply);
        if !valid {
            return client_error(BAD_DELETE, line.consumed, noreply);
        }
    }
    if !key_ok(w[1], limits.max_key_len) {
        return client_error(BAD_FORMAT, line.consumed, noreply);
    }
    request(
        Request::Delete {
            key: Bytes::copy_from_slice(w[1]),
            noreply,
        },
        line.consumed,
    )
}

/// ```text
/// incr <key> <delta> [noreply]        decr <key> <delta> [noreply]
/// ```
/// A fourth word other than `noreply` is ignored, as memcached does.
fn parse_arith(op: ArithOp, words: &Words<'_>, line: Line<'_>, limits: &Limits) -> ParseOutcome {
    if !(3..=4).contains(&words.count()) {
        return unknown(line.consumed);
    }
    let w = words.as_slice();
    let noreply = words.noreply();
    if !key_ok(w[1], limits.max_key_len) {
        return client_error(BAD_FORMAT, line.consumed, noreply);
    }
    let Some(delta) = parse_u64(w[2]) else {
        return client_error(BAD_DELTA, line.consumed, noreply);
    };
    request(
        Request::Arith {
            op,
            key: Bytes::copy_from_slice(w[1]),
            delta,
            noreply,
        },
        line.consumed,
    )
}

/// ```text
/// touch <key> <exptime> [noreply]
/// ```
fn parse_touch(words: &Words<'_>, line: Line<'_>, limits: &Limits) -> ParseOutcome {
    if !(3..=4).contains(&words.count()) {
        return unknown(line.consumed);
    }
    let w = words.as_slice();
    let noreply = words.noreply();
    if !key_ok(w[1], limits.max_key_len) {
        return client_error(BAD_FORMAT, line.consumed, noreply);
    }
    let Some(exptime) = parse_i64(w[2]) else {
        return client_error(BAD_EXPTIME, line.consumed, noreply);
    };
    request(
        Request::Touch {
            key: Bytes::copy_from_slice(w[1]),
            exptime,
            noreply,
        },
        line.consumed,
    )
}

/// ```text
/// flush_all [delay] [noreply]
/// ```
/// As in memcached, a second argument that is not `noreply` is ignored.
fn parse_flush_all(words: &Words<'_>, line: Line<'_>) -> ParseOutcome {
    let n = words.count();
    if !(1..=3).contains(&n) {
        return unknown(line.consumed);
    }
    let noreply = words.noreply();
    let mut delay = 0;
    if n != if noreply { 2 } else { 1 } {
        match parse_i64(words.as_slice()[1]) {
            Some(value) => delay = value,
            None => return client_error(BAD_EXPTIME, line.consumed, noreply),
        }
    }
    request(Request::FlushAll { delay, noreply }, line.consumed)
}

/// ```text
/// verbosity <level> [noreply]
/// ```
fn parse_verbosity(words: &Words<'_>, line: Line<'_>) -> ParseOutcome {
    if !(2..=3).contains(&words.count()) {
        return unknown(line.consumed);
    }
    let noreply = words.noreply();
    let Some(level) = parse_u32(words.as_slice()[1]) else {
        return client_error(BAD_FORMAT, line.consumed, noreply);
    };
    request(Request::Verbosity { level, noreply }, line.consumed)
}
