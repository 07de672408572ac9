//! Parsing responses (client side: the memcached adapter, `check`, `bench`, the console).
//!
//! A server is trusted no more than a client: every line is found within a bounded window and a
//! data block's announced length is checked against [`Limits::max_value_len`] before anything is
//! allocated for it.

use super::line::{find_line, parse_u32, parse_u64, split_spaces, Line};
use super::{Limits, Response, Value};
use bytes::Bytes;

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

/// Longest response line accepted: `STAT` and `VERSION` lines have no protocol bound, so the
/// generous multi-get line limit serves.
fn window(limits: &Limits) -> usize {
    limits.max_get_line_len.max(limits.max_line_len) + 1
}

/// The next line at `at`, `Incomplete`, or `Invalid` when the window is full without a newline.
fn next_line<'a>(buf: &'a [u8], at: usize, limits: &Limits) -> Result<Line<'a>, ResponseOutcome> {
    let rest = &buf[at..];
    match find_line(rest, window(limits)) {
        Some(line) => Ok(line),
        None if rest.len() < window(limits) => Err(ResponseOutcome::Incomplete),
        None => Err(ResponseOutcome::Invalid(
            "response line too long".to_owned(),
        )),
    }
}

fn invalid(what: &str, line: &[u8]) -> ResponseOutcome {
    ResponseOutcome::Invalid(format!("{what}: {}", line.escape_ascii()))
}

/// The text after `prefix` and one space, or after a bare `prefix` (empty).
fn after_word<'a>(text: &'a [u8], word: &[u8]) -> Option<&'a [u8]> {
    let rest = text.strip_prefix(word)?;
    match rest {
        [] => Some(rest),
        [b' ', tail @ ..] => Some(tail),
        _ => None,
    }
}

fn text_of(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Parses one response from the front of `buf`.
pub fn parse_response(buf: &[u8], limits: &Limits) -> ResponseOutcome {
    let line = match next_line(buf, 0, limits) {
        Ok(line) => line,
        Err(outcome) => return outcome,
    };
    let done = |response| ResponseOutcome::Response {
        response,
        consumed: line.consumed,
    };
    match line.text {
        b"END" => return done(Response::Values(Vec::new())),
        b"STORED" => return done(Response::Stored),
        b"NOT_STORED" => return done(Response::NotStored),
        b"EXISTS" => return done(Response::Exists),
        b"NOT_FOUND" => return done(Response::NotFound),
        b"DELETED" => return done(Response::Deleted),
        b"TOUCHED" => return done(Response::Touched),
        b"OK" => return done(Response::Ok),
        b"RESET" => return done(Response::Reset),
        b"ERROR" => return done(Response::Error),
        _ => {}
    }
    if let Some(outcome) = super::meta::reply::parse_meta_line(buf, line, limits) {
        return outcome;
    }
    if line.text.starts_with(b"VALUE ") {
        return parse_values(buf, limits);
    }
    if line.text.starts_with(b"STAT ") {
        return parse_stats(buf, limits);
    }
    if let Some(reason) = after_word(line.text, b"CLIENT_ERROR") {
        return done(Response::ClientError(text_of(reason)));
    }
    if let Some(reason) = after_word(line.text, b"SERVER_ERROR") {
        return done(Response::ServerError(text_of(reason)));
    }
    if let Some(version) = after_word(line.text, b"VERSION") {
        return done(Response::Version(text_of(version)));
    }
    if super::admin::starts_block(line.text) {
        return parse_block(buf, limits);
    }
    if super::admin::is_status_line(line.text) {
        return done(Response::Line(text_of(line.text)));
    }
    // Old memcached versions pad incr/decr replies with spaces; trailing ones are tolerated.
    let digits = line.text.trim_ascii_end();
    if !digits.is_empty() && digits.iter().all(u8::is_ascii_digit) {
        if let Some(n) = parse_u64(digits) {
            return done(Response::Number(n));
        }
    }
    invalid("unexpected response line", line.text)
}

/// `VALUE <key> <flags> <bytes> [<cas>]\r\n<data>\r\n`* `END\r\n`
fn parse_values(buf: &[u8], limits: &Limits) -> ResponseOutcome {
    let mut values = Vec::new();
    let mut at = 0;
    loop {
        let line = match next_line(buf, at, limits) {
            Ok(line) => line,
            Err(outcome) => return outcome,
        };
        if line.text == b"END" {
            return ResponseOutcome::Response {
                response: Response::Values(values),
                consumed: at + line.consumed,
            };
        }
        let mut words = split_spaces(line.text);
        let fields = (
            words.next(),
            words.next(),
            words.next(),
            words.next(),
            words.next(),
            words.next(),
        );
        let (Some(b"VALUE"), Some(key), Some(flags), Some(len), cas, None) = fields else {
            return invalid("bad VALUE line", line.text);
        };
        if key.len() > limits.max_key_len {
            return invalid("key too long in VALUE line", line.text);
        }
        let (Some(flags), Some(len)) = (parse_u32(flags), parse_u64(len)) else {
            return invalid("bad VALUE line", line.text);
        };
        let cas = match cas.map(parse_u64) {
            None => None,
            Some(Some(cas)) => Some(cas),
            Some(None) => return invalid("bad cas in VALUE line", line.text),
        };
        let len = match usize::try_from(len) {
            Ok(len) if len <= limits.max_value_len => len,
            _ => return invalid("value larger than the limit", line.text),
        };
        let start = at + line.consumed;
        let end = start + len + 2;
        if buf.len() < end {
            return ResponseOutcome::Incomplete;
        }
        if &buf[end - 2..end] != b"\r\n" {
            return invalid("data block not followed by CRLF", line.text);
        }
        values.push(Value {
            key: Bytes::copy_from_slice(key),
            flags,
            cas,
            data: Bytes::copy_from_slice(&buf[start..end - 2]),
        });
        at = end;
    }
}

/// An admin listing (`ITEM …`, `PREFIX …`, `key=…` lines) up to `END\r\n`, at most
/// [`Limits::max_value_len`] bytes of lines.
fn parse_block(buf: &[u8], limits: &Limits) -> ResponseOutcome {
    let mut at = 0;
    loop {
        let line = match next_line(buf, at, limits) {
            Ok(line) => line,
            Err(outcome) => return outcome,
        };
        if line.text == b"END" {
            return ResponseOutcome::Response {
                response: Response::Block(Bytes::copy_from_slice(&buf[..at])),
                consumed: at + line.consumed,
            };
        }
        at += line.consumed;
        if at > limits.max_value_len {
            return ResponseOutcome::Invalid("admin listing larger than the limit".to_owned());
        }
    }
}

/// `STAT <name> <value>\r\n`* `END\r\n` (the value may contain spaces).
fn parse_stats(buf: &[u8], limits: &Limits) -> ResponseOutcome {
    let mut stats = Vec::new();
    let mut at = 0;
    loop {
        let line = match next_line(buf, at, limits) {
            Ok(line) => line,
            Err(outcome) => return outcome,
        };
        at += line.consumed;
        if line.text == b"END" {
            return ResponseOutcome::Response {
                response: Response::Stats(stats),
                consumed: at,
            };
        }
        let Some(rest) = line.text.strip_prefix(b"STAT ") else {
            return invalid("bad STAT line", line.text);
        };
        let (name, value) = match rest.iter().position(|&b| b == b' ') {
            Some(space) => (&rest[..space], &rest[space + 1..]),
            None => (rest, &b""[..]),
        };
        stats.push((text_of(name), text_of(value)));
    }
}
