//! Parsing responses (client side: the load generator, tests against a real memcached). The
//! body's announced length is bounded by [`Limits`] before the parser waits for it.

use super::header::{Header, HEADER_LEN, RESPONSE_MAGIC};
use super::{BinaryResponse, Opcode, Status};
use crate::Limits;
use bytes::Bytes;

/// The result of trying to parse one binary response from the front of a buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BinaryResponseParse {
    /// Not enough bytes yet.
    Incomplete,
    /// A whole response occupying the first `consumed` bytes.
    Response {
        /// The response.
        response: BinaryResponse,
        /// Bytes it occupied (header and body).
        consumed: usize,
    },
    /// The bytes are not a binary memcache response; the connection must be dropped.
    Invalid(String),
}

/// Parses one binary response from the front of `buf`. The structure is checked (magic,
/// lengths within the body, key and value within `limits`); what the body means for the
/// opcode is left to [`BinaryResponse::flags`] and [`BinaryResponse::counter_value`].
pub fn parse_response(buf: &[u8], limits: &Limits) -> BinaryResponseParse {
    match buf.first() {
        None => return BinaryResponseParse::Incomplete,
        Some(&magic) if magic != RESPONSE_MAGIC => {
            return BinaryResponseParse::Invalid(format!("bad response magic {magic:#04x}"));
        }
        Some(_) => {}
    }
    let Some(header) = Header::decode(buf) else {
        return BinaryResponseParse::Incomplete;
    };
    let Some(value_len) = header.value_len() else {
        return BinaryResponseParse::Invalid(format!(
            "key ({}) and extras ({}) longer than the body ({})",
            header.key_len, header.extras_len, header.total_body
        ));
    };
    let key_len = usize::from(header.key_len);
    if key_len > limits.max_key_len {
        return BinaryResponseParse::Invalid(format!("key of {key_len} bytes in a response"));
    }
    if value_len as usize > limits.max_value_len {
        return BinaryResponseParse::Invalid(format!(
            "value of {value_len} bytes, over the limit of {}",
            limits.max_value_len
        ));
    }
    let end = header.frame_len();
    let Some(body) = buf.get(HEADER_LEN..end) else {
        return BinaryResponseParse::Incomplete;
    };
    // Cannot fail: `value_len` proved that extras and key fit in the body.
    let Some((extras, rest)) = body.split_at_checked(usize::from(header.extras_len)) else {
        return BinaryResponseParse::Invalid("extras beyond the body".to_owned());
    };
    let Some((key, value)) = rest.split_at_checked(key_len) else {
        return BinaryResponseParse::Invalid("key beyond the body".to_owned());
    };
    BinaryResponseParse::Response {
        response: BinaryResponse {
            opcode: Opcode::from(header.opcode),
            status: Status::from(header.vbucket_or_status),
            key: Bytes::copy_from_slice(key),
            extras: Bytes::copy_from_slice(extras),
            value: Bytes::copy_from_slice(value),
            opaque: header.opaque,
            cas: header.cas,
            data_type: header.data_type,
        },
        consumed: end,
    }
}
