//! Parsing requests (server side), following the checks memcached 1.6.18 makes in
//! `try_read_command_binary` and `dispatch_bin_command`, in its order. Every verdict on an
//! invalid frame is taken from the header alone, so nothing announced by the peer is waited
//! for, let alone buffered, before it has been bounded.

use super::header::{Header, HEADER_LEN, REQUEST_MAGIC};
use super::{BinaryRequest, BinaryResponse, Opcode, Status};
use crate::{AfterError, Limits};
use bytes::Bytes;

/// The result of trying to parse one binary request from the front of a buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BinaryParse {
    /// Not enough bytes yet; read more and try again with the same buffer.
    Incomplete,
    /// A whole request occupying the first `consumed` bytes.
    Request {
        /// The request.
        request: BinaryRequest,
        /// Bytes it occupied (header and body).
        consumed: usize,
    },
    /// A `Set`/`SetQ` whose value is over the size limit: answered `reply` ("Too large."),
    /// the value swallowed, and, as memcached does, the key's old item removed.
    TooLarge {
        /// memcached's reply.
        reply: BinaryResponse,
        /// The key whose old item must go.
        key: Bytes,
        /// Bytes to drop from the buffer now (header, extras and key).
        consumed: usize,
        /// The value's bytes, swallowed as they arrive.
        swallow: usize,
    },
    /// A frame memcached does not serve, answered with `reply`.
    Invalid {
        /// memcached's reply (`None`: it closes without one). Never left out for a quiet
        /// opcode: memcached sends every error reply.
        reply: Option<BinaryResponse>,
        /// Bytes to drop from the buffer (the header; everything for a close).
        consumed: usize,
        /// What the connection does next: go on, swallow the frame's body as it arrives, or
        /// close after the reply.
        after: AfterError,
    },
}

/// An error reply, then close.
fn close(reply: Option<BinaryResponse>, buf: &[u8]) -> BinaryParse {
    BinaryParse::Invalid {
        reply,
        consumed: buf.len(),
        after: AfterError::Close,
    }
}

/// An error reply after the header; the body (which may not have arrived) is swallowed.
fn swallow(reply: BinaryResponse, header: &Header) -> BinaryParse {
    let body = header.total_body as usize;
    BinaryParse::Invalid {
        reply: Some(reply),
        consumed: HEADER_LEN,
        after: if body == 0 {
            AfterError::Continue
        } else {
            AfterError::Swallow(body)
        },
    }
}

/// Whether the frame's lengths are ones memcached serves for `opcode` (`None`: an opcode
/// memcached does not serve at all).
fn lengths_fit(opcode: Opcode, extras: usize, key: usize, value: u32) -> Option<bool> {
    let no_value = value == 0;
    Some(match opcode {
        Opcode::Version | Opcode::Noop | Opcode::Quit | Opcode::QuitQ | Opcode::SaslListMechs => {
            extras == 0 && key == 0 && no_value
        }
        Opcode::Flush | Opcode::FlushQ => key == 0 && no_value && (extras == 0 || extras == 4),
        Opcode::Set
        | Opcode::SetQ
        | Opcode::Add
        | Opcode::AddQ
        | Opcode::Replace
        | Opcode::ReplaceQ => extras == 8 && key > 0,
        Opcode::Get
        | Opcode::GetQ
        | Opcode::GetK
        | Opcode::GetKQ
        | Opcode::Delete
        | Opcode::DeleteQ => extras == 0 && key > 0 && no_value,
        Opcode::Increment | Opcode::IncrementQ | Opcode::Decrement | Opcode::DecrementQ => {
            extras == 20 && key > 0 && no_value
        }
        Opcode::Append
        | Opcode::AppendQ
        | Opcode::Prepend
        | Opcode::PrependQ
        | Opcode::SaslAuth
        | Opcode::SaslStep => extras == 0 && key > 0,
        // memcached does not check these two for a value, and reads one as the next frame;
        // memcord refuses it as memcached refuses a value on every other such opcode.
        Opcode::Stat => extras == 0 && no_value,
        Opcode::Touch | Opcode::Gat | Opcode::GatQ | Opcode::GatK | Opcode::GatKQ => {
            extras == 4 && key > 0 && no_value
        }
        Opcode::Verbosity | Opcode::Unknown(_) => return None,
    })
}

/// Parses one binary request from the front of `buf`.
pub fn parse_request(buf: &[u8], limits: &Limits) -> BinaryParse {
    // memcached waits for a whole header before it looks at the magic; the verdict (close,
    // no reply) is the same, and needs only the first byte.
    match buf.first() {
        None => return BinaryParse::Incomplete,
        Some(&magic) if magic != REQUEST_MAGIC => return close(None, buf),
        Some(_) => {}
    }
    let Some(header) = Header::decode(buf) else {
        return BinaryParse::Incomplete;
    };
    let opcode = Opcode::from(header.opcode);
    let error = |status| BinaryResponse::error_for(opcode, header.opaque, status);
    let extras_len = usize::from(header.extras_len);
    let key_len = usize::from(header.key_len);
    let Some(value_len) = header.value_len() else {
        return close(Some(error(Status::UnknownCommand)), buf);
    };
    // memcached's KEY_MAX_LENGTH, checked for every opcode (unknown ones too) before dispatch.
    if key_len > limits.max_key_len {
        return close(Some(error(Status::InvalidArguments)), buf);
    }
    match lengths_fit(opcode, extras_len, key_len, value_len) {
        None => return swallow(error(Status::UnknownCommand), &header),
        Some(false) => return close(Some(error(Status::InvalidArguments)), buf),
        Some(true) => {}
    }
    match opcode.loud() {
        // memcord has no SASL: these are answered as by a memcached started without `-S`.
        Opcode::SaslListMechs | Opcode::SaslAuth | Opcode::SaslStep => {
            return swallow(error(Status::UnknownCommand), &header);
        }
        Opcode::Set if value_len as usize > limits.max_value_len => {
            // The key is needed to unlink the old item: wait for it (at most 8 + 250 bytes).
            let head = HEADER_LEN + extras_len + key_len;
            let Some(key) = buf.get(HEADER_LEN + extras_len..head) else {
                return BinaryParse::Incomplete;
            };
            return BinaryParse::TooLarge {
                reply: error(Status::TooLarge),
                key: Bytes::copy_from_slice(key),
                consumed: head,
                swallow: value_len as usize,
            };
        }
        Opcode::Add | Opcode::Replace | Opcode::Append | Opcode::Prepend
            if value_len as usize > limits.max_value_len =>
        {
            return swallow(error(Status::TooLarge), &header);
        }
        _ => {}
    }
    // From here the frame is bounded: extras ≤ 20, key ≤ max_key_len, value ≤ max_value_len.
    let end = header.frame_len();
    if buf.len() < end {
        return BinaryParse::Incomplete;
    }
    // The three slices cannot fail (the buffer holds the frame, and `value_len` proved that
    // extras and key fit in the body); the checked forms keep the parser free of panics.
    let Some(body) = buf.get(HEADER_LEN..end) else {
        return BinaryParse::Incomplete;
    };
    let Some((extras, rest)) = body.split_at_checked(extras_len) else {
        return close(Some(error(Status::UnknownCommand)), buf);
    };
    let Some((key, value)) = rest.split_at_checked(key_len) else {
        return close(Some(error(Status::UnknownCommand)), buf);
    };
    BinaryParse::Request {
        request: BinaryRequest {
            opcode,
            key: Bytes::copy_from_slice(key),
            extras: Bytes::copy_from_slice(extras),
            value: Bytes::copy_from_slice(value),
            opaque: header.opaque,
            cas: header.cas,
            vbucket: header.vbucket_or_status,
            data_type: header.data_type,
        },
        consumed: end,
    }
}
