//! Parsing meta commands (server side), check for check in memcached 1.6.18's order.

use super::{
    decode_key, MetaArith, MetaDelete, MetaFlags, MetaGet, MetaSet, SetMode, MAX_OPAQUE_LEN,
};
use crate::line::{parse_i64, parse_u32, parse_u64, Line};
use crate::parse::{AfterError, ParseOutcome, BAD_CHUNK, BAD_FORMAT};
use crate::{Level, Limits, Request, Response, StoreOp};
use bytes::Bytes;

/// memcached's token array: 23 words, the 24th slot holds the rest of a longer line.
const MAX_TOKENS: usize = 24;
/// memcached's bound on a meta command's token count (the terminal token included).
const MAX_META_TOKENS: usize = 20;

/// The words of a meta command line, split on spaces as memcached splits them.
struct Tokens<'a> {
    words: [&'a [u8]; MAX_TOKENS],
    len: usize,
}

impl<'a> Tokens<'a> {
    fn split(line: &'a [u8]) -> Tokens<'a> {
        let mut tokens = Tokens {
            words: [&[]; MAX_TOKENS],
            len: 0,
        };
        for word in line.split(|&b| b == b' ').filter(|w| !w.is_empty()) {
            if tokens.len == MAX_TOKENS - 1 {
                // The rest of the line is one more (unparsed) token, as in memcached.
                tokens.len += 1;
                break;
            }
            tokens.words[tokens.len] = word;
            tokens.len += 1;
        }
        tokens
    }

    /// memcached's `ntokens`: the words plus the terminal token.
    fn ntokens(&self) -> usize {
        self.len.min(MAX_TOKENS - 1) + 1
    }

    fn get(&self, i: usize) -> &'a [u8] {
        self.words[i]
    }

    /// The flag words from `start` on.
    fn flags_from(&self, start: usize) -> &[&'a [u8]] {
        &self.words[start.min(self.len)..self.len.min(MAX_TOKENS - 1)]
    }
}

/// What the flags of one command said, before the command picks what it uses.
#[derive(Default)]
struct Parsed {
    flags: MetaFlags,
    key: Option<Bytes>,
    value: bool,
    no_bump: bool,
    invalidate: bool,
    touch: Option<i64>,
    vivify: Option<i64>,
    recache: Option<i64>,
    client_flags: u32,
    compare_cas: Option<u64>,
    mode: Option<u8>,
    initial: u64,
    delta: Option<u64>,
}

/// A flag error: memcached's message (without `CLIENT_ERROR `).
struct FlagError(&'static str);

const DUPLICATE_FLAG: &str = "duplicate flag";
const INVALID_FLAG: &str = "invalid flag";
const BAD_TOKEN: &str = "bad token in command line format";
const DECODE_KEY: &str = "error decoding key";
const OPAQUE_TOO_LONG: &str = "opaque token too long";
const INVALID_OR_DUPLICATE: &str = "invalid or duplicate flag";

/// memcached's `_meta_flag_preparse`: every flag word once, in order. Duplicate and unknown
/// letters stop at once; bad tokens are noted (the last one noted is reported) and the scan
/// goes on.
fn preparse(raw_key: &[u8], words: &[&[u8]]) -> Result<Parsed, FlagError> {
    let mut parsed = Parsed::default();
    let mut seen = [false; 128];
    let mut error: Option<&'static str> = None;
    for word in words {
        let letter = word[0];
        let token = &word[1..];
        if letter >= 127 || seen[usize::from(letter)] {
            return Err(FlagError(DUPLICATE_FLAG));
        }
        seen[usize::from(letter)] = true;
        parsed.flags.push(letter);
        let number =
            |into: &mut Option<i64>, error: &mut Option<&'static str>| match parse_i64(token) {
                Some(n) => *into = Some(n),
                None => *error = Some(BAD_TOKEN),
            };
        match letter {
            b'b' => {
                parsed.flags.base64 = true;
                match decode_key(raw_key) {
                    Some(key) => parsed.key = Some(key),
                    None => error = Some(DECODE_KEY),
                }
            }
            b'N' => number(&mut parsed.vivify, &mut error),
            b'T' => number(&mut parsed.touch, &mut error),
            b'R' => number(&mut parsed.recache, &mut error),
            b'O' => parsed.flags.opaque = Some(Bytes::copy_from_slice(token)),
            b'L' => parsed.flags.level = Level::parse(token),
            b'P' | b'k' | b's' | b't' | b'c' | b'f' | b'l' | b'h' => {}
            b'v' => parsed.value = true,
            b'u' => parsed.no_bump = true,
            b'q' => parsed.flags.quiet = true,
            b'F' => match parse_u32(token) {
                Some(n) => parsed.client_flags = n,
                // memcached notes the error without a message of its own.
                None => error = Some(error.unwrap_or(BAD_FORMAT)),
            },
            b'C' => match parse_u64(token) {
                Some(n) => parsed.compare_cas = Some(n),
                None => error = Some(BAD_TOKEN),
            },
            b'M' => match token {
                [mode] => parsed.mode = Some(*mode),
                _ => error = Some("incorrect length for M token"),
            },
            b'J' => match parse_u64(token) {
                Some(n) => parsed.initial = n,
                None => error = Some("invalid numeric initial value"),
            },
            b'D' => match parse_u64(token) {
                Some(n) => parsed.delta = Some(n),
                None => error = Some("invalid numeric delta value"),
            },
            b'I' => parsed.invalidate = true,
            _ => return Err(FlagError(INVALID_FLAG)),
        }
    }
    match error {
        Some(message) => Err(FlagError(message)),
        None => Ok(parsed),
    }
}

fn error_reply(reason: &str, consumed: usize, after: AfterError) -> ParseOutcome {
    ParseOutcome::Invalid {
        reply: Response::ClientError(reason.to_owned()),
        consumed,
        after,
    }
}

fn done(request: Request, consumed: usize) -> ParseOutcome {
    ParseOutcome::Request { request, consumed }
}

fn unknown(consumed: usize) -> ParseOutcome {
    ParseOutcome::Invalid {
        reply: Response::Error,
        consumed,
        after: AfterError::Continue,
    }
}

/// The key a command works on: the decoded one for `b`, else the word as sent.
fn key_of(parsed: &mut Parsed, raw: &[u8]) -> Bytes {
    parsed
        .key
        .take()
        .unwrap_or_else(|| Bytes::copy_from_slice(raw))
}

fn opaque_too_long(parsed: &Parsed) -> bool {
    parsed
        .flags
        .opaque
        .as_ref()
        .is_some_and(|o| o.len() + 1 > MAX_OPAQUE_LEN)
}

/// Parses a meta command whose line is `line` (`command` is its first word, two bytes
/// starting with `m`); `buf` holds the line and whatever followed it (an `ms` data block).
pub(crate) fn parse(command: &[u8], line: Line<'_>, buf: &[u8], limits: &Limits) -> ParseOutcome {
    let tokens = Tokens::split(line.text);
    match command {
        b"mn" => done(Request::MetaNoop, line.consumed),
        b"me" => parse_debug(&tokens, line, limits),
        b"mg" => parse_get(&tokens, line, limits),
        b"ms" => parse_set(&tokens, line, buf, limits),
        b"md" => parse_delete(&tokens, line, limits),
        b"ma" => parse_arith(&tokens, line, limits),
        _ => unknown(line.consumed),
    }
}

/// ```text
/// me <key> [b]
/// ```
fn parse_debug(tokens: &Tokens<'_>, line: Line<'_>, limits: &Limits) -> ParseOutcome {
    let bad = || error_reply(BAD_FORMAT, line.consumed, AfterError::Continue);
    if tokens.ntokens() < 3 || tokens.get(1).len() > limits.max_key_len {
        return bad();
    }
    let raw = tokens.get(1);
    let base64 = tokens.ntokens() >= 4 && tokens.get(2) == b"b";
    let key = if base64 {
        match decode_key(raw) {
            Some(key) => key,
            None => return bad(),
        }
    } else {
        Bytes::copy_from_slice(raw)
    };
    done(Request::MetaDebug { key, base64 }, line.consumed)
}

/// The checks `mg`, `md` and `ma` make before their flags: a key, of legal length, and not too
/// many flags.
fn check_line(
    tokens: &Tokens<'_>,
    line: Line<'_>,
    limits: &Limits,
    too_long: &'static str,
) -> Result<(), ParseOutcome> {
    if tokens.ntokens() < 3 {
        return Err(unknown(line.consumed));
    }
    if tokens.get(1).len() > limits.max_key_len {
        return Err(error_reply(BAD_FORMAT, line.consumed, AfterError::Continue));
    }
    if tokens.ntokens() > MAX_META_TOKENS {
        return Err(error_reply(too_long, line.consumed, AfterError::Continue));
    }
    Ok(())
}

/// ```text
/// mg <key> <flags>*
/// ```
fn parse_get(tokens: &Tokens<'_>, line: Line<'_>, limits: &Limits) -> ParseOutcome {
    if let Err(outcome) = check_line(tokens, line, limits, "options flags are too long") {
        return outcome;
    }
    let raw = tokens.get(1);
    let mut parsed = match preparse(raw, tokens.flags_from(2)) {
        Ok(parsed) => parsed,
        Err(FlagError(reason)) => {
            return error_reply(reason, line.consumed, AfterError::Continue);
        }
    };
    if opaque_too_long(&parsed) {
        return error_reply(OPAQUE_TOO_LONG, line.consumed, AfterError::Continue);
    }
    let key = key_of(&mut parsed, raw);
    done(
        Request::MetaGet(Box::new(MetaGet {
            key,
            value: parsed.value,
            no_bump: parsed.no_bump,
            touch: parsed.touch,
            vivify: parsed.vivify,
            recache: parsed.recache,
            flags: parsed.flags,
        })),
        line.consumed,
    )
}

/// ```text
/// ms <key> <datalen> <flags>*\r\n<data>\r\n
/// ```
fn parse_set(tokens: &Tokens<'_>, line: Line<'_>, buf: &[u8], limits: &Limits) -> ParseOutcome {
    let bad_line = || error_reply(BAD_FORMAT, line.consumed, AfterError::Continue);
    if tokens.ntokens() < 3 {
        return unknown(line.consumed);
    }
    if tokens.get(1).len() > limits.max_key_len || tokens.ntokens() == 3 {
        return bad_line();
    }
    if tokens.ntokens() > MAX_META_TOKENS {
        return error_reply(
            "options flags too long",
            line.consumed,
            AfterError::Continue,
        );
    }
    let Some(len) = parse_i64(tokens.get(2)) else {
        return bad_line();
    };
    // memcached's own bound; the length is only a number here, nothing is allocated for it.
    let Some(len) = usize::try_from(len)
        .ok()
        .filter(|&len| len <= i32::MAX as usize - 2)
    else {
        return bad_line();
    };
    // From here on an error swallows the data block memcached expects.
    let swallow = AfterError::Swallow(len + 2);
    let raw = tokens.get(1);
    let mut parsed = match preparse(raw, tokens.flags_from(3)) {
        Ok(parsed) => parsed,
        Err(FlagError(reason)) => return error_reply(reason, line.consumed, swallow),
    };
    let mode = match parsed.mode {
        None => SetMode::Set,
        Some(letter) => match SetMode::from_letter(letter) {
            Some(mode) => mode,
            None => {
                return error_reply("invalid mode for ms M token", line.consumed, swallow);
            }
        },
    };
    if opaque_too_long(&parsed) {
        return error_reply(OPAQUE_TOO_LONG, line.consumed, swallow);
    }
    if len > limits.max_value_len {
        // memcached's mset unlinks the key's old item whatever the mode; its errors are
        // never silenced.
        return done(
            Request::Oversized {
                op: StoreOp::Set,
                key: key_of(&mut parsed, raw),
                swallow: len + 2,
                noreply: false,
            },
            line.consumed,
        );
    }
    let end = line.consumed + len + 2;
    if buf.len() < end {
        return ParseOutcome::Incomplete;
    }
    if &buf[end - 2..end] != b"\r\n" {
        return error_reply(BAD_CHUNK, end, AfterError::Continue);
    }
    let key = key_of(&mut parsed, raw);
    done(
        Request::MetaSet(Box::new(MetaSet {
            key,
            value: Bytes::copy_from_slice(&buf[line.consumed..end - 2]),
            mode,
            compare_cas: parsed.compare_cas,
            invalidate: parsed.invalidate,
            client_flags: parsed.client_flags,
            exptime: parsed.touch.unwrap_or(0),
            flags: parsed.flags,
        })),
        end,
    )
}

/// ```text
/// md <key> <flags>*
/// ```
fn parse_delete(tokens: &Tokens<'_>, line: Line<'_>, limits: &Limits) -> ParseOutcome {
    if let Err(outcome) = check_line(tokens, line, limits, "options flags too long") {
        return outcome;
    }
    let raw = tokens.get(1);
    let Ok(mut parsed) = preparse(raw, tokens.flags_from(2)) else {
        return error_reply(INVALID_OR_DUPLICATE, line.consumed, AfterError::Continue);
    };
    if opaque_too_long(&parsed) {
        return error_reply(OPAQUE_TOO_LONG, line.consumed, AfterError::Continue);
    }
    let key = key_of(&mut parsed, raw);
    done(
        Request::MetaDelete(Box::new(MetaDelete {
            key,
            compare_cas: parsed.compare_cas,
            invalidate: parsed.invalidate,
            touch: parsed.touch,
            flags: parsed.flags,
        })),
        line.consumed,
    )
}

/// ```text
/// ma <key> <flags>*
/// ```
fn parse_arith(tokens: &Tokens<'_>, line: Line<'_>, limits: &Limits) -> ParseOutcome {
    if let Err(outcome) = check_line(tokens, line, limits, "options flags too long") {
        return outcome;
    }
    let raw = tokens.get(1);
    let Ok(mut parsed) = preparse(raw, tokens.flags_from(2)) else {
        return error_reply(INVALID_OR_DUPLICATE, line.consumed, AfterError::Continue);
    };
    let incr = match parsed.mode {
        None | Some(b'I' | b'+') => true,
        Some(b'D' | b'-') => false,
        Some(_) => {
            return error_reply(
                "invalid mode for ma M token",
                line.consumed,
                AfterError::Continue,
            );
        }
    };
    if opaque_too_long(&parsed) {
        return error_reply(OPAQUE_TOO_LONG, line.consumed, AfterError::Continue);
    }
    let key = key_of(&mut parsed, raw);
    done(
        Request::MetaArith(Box::new(MetaArith {
            key,
            incr,
            delta: parsed.delta.unwrap_or(1),
            initial: parsed.initial,
            vivify: parsed.vivify,
            compare_cas: parsed.compare_cas,
            touch: parsed.touch,
            value: parsed.value,
            flags: parsed.flags,
        })),
        line.consumed,
    )
}
