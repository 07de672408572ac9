//! Parsing meta replies (client side): any meta reply line, generically.

use crate::line::{parse_u64, put_u64, split_spaces, Line};
use crate::{Limits, Response, ResponseOutcome};
use bytes::{Bytes, BytesMut};

/// One meta reply as a client reads it: the two-letter code, the flag tokens in order (each a
/// letter and its token: `t-1`, `c7`, `W`, `Oopaque`), and the data block of a `VA` reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaLine {
    /// `VA`, `HD`, `EN`, `NF`, `NS`, `EX`, `MN` or `ME`.
    pub code: [u8; 2],
    /// The tokens after the code (after `VA`'s size; `ME`'s key and `name=value` pairs).
    pub tokens: Vec<Bytes>,
    /// `VA`'s data block.
    pub value: Option<Bytes>,
}

impl MetaLine {
    /// The token of flag `letter` (`Some(b"")` for a bare flag such as `W`).
    pub fn flag(&self, letter: u8) -> Option<&[u8]> {
        self.tokens
            .iter()
            .find(|t| t.first() == Some(&letter))
            .map(|t| &t[1..])
    }

    /// The numeric token of flag `letter`.
    pub fn number(&self, letter: u8) -> Option<u64> {
        self.flag(letter).and_then(parse_u64)
    }

    /// Appends the reply's wire form (`VA` gets its size from the value).
    pub fn compose(&self, out: &mut BytesMut) {
        out.extend_from_slice(&self.code);
        if let Some(value) = &self.value {
            out.extend_from_slice(b" ");
            put_u64(out, value.len() as u64);
        }
        for token in &self.tokens {
            out.extend_from_slice(b" ");
            out.extend_from_slice(token);
        }
        out.extend_from_slice(b"\r\n");
        if let Some(value) = &self.value {
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
        }
    }
}

/// The meta reply codes a client may meet.
const CODES: [&[u8; 2]; 8] = [b"VA", b"HD", b"EN", b"NF", b"NS", b"EX", b"MN", b"ME"];

/// Parses `line` (the first line of `buf`) as a meta reply; `None` when it is not one.
pub(crate) fn parse_meta_line(
    buf: &[u8],
    line: Line<'_>,
    limits: &Limits,
) -> Option<ResponseOutcome> {
    let text = line.text;
    if text.len() < 2 || (text.len() > 2 && text[2] != b' ') {
        return None;
    }
    let code: [u8; 2] = [text[0], text[1]];
    if !CODES.contains(&&code) {
        return None;
    }
    let mut words = split_spaces(&text[2..]);
    let mut consumed = line.consumed;
    let mut value = None;
    if &code == b"VA" {
        let size = words.next().and_then(parse_u64);
        let Some(size) = size
            .and_then(|s| usize::try_from(s).ok())
            .filter(|&s| s <= limits.max_value_len)
        else {
            return Some(ResponseOutcome::Invalid(format!(
                "bad VA line: {}",
                text.escape_ascii()
            )));
        };
        let end = consumed + size + 2;
        if buf.len() < end {
            return Some(ResponseOutcome::Incomplete);
        }
        if &buf[end - 2..end] != b"\r\n" {
            return Some(ResponseOutcome::Invalid(
                "VA data block not followed by CRLF".into(),
            ));
        }
        value = Some(Bytes::copy_from_slice(&buf[consumed..end - 2]));
        consumed = end;
    }
    let tokens = words.map(Bytes::copy_from_slice).collect();
    Some(ResponseOutcome::Response {
        response: Response::MetaLine(MetaLine {
            code,
            tokens,
            value,
        }),
        consumed,
    })
}
