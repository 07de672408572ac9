//! The 24-byte header every binary frame starts with, and the one function that writes a
//! whole frame (both directions share the layout; only the magic and the meaning of bytes 6..8
//! differ).

use bytes::{BufMut, BytesMut};

/// Length of the fixed header ahead of every request and response body.
pub const HEADER_LEN: usize = 24;
/// First byte of every request (memcached's `PROTOCOL_BINARY_REQ`); a connection whose first
/// byte is this one speaks the binary protocol.
pub const REQUEST_MAGIC: u8 = 0x80;
/// First byte of every response (`PROTOCOL_BINARY_RES`).
pub const RESPONSE_MAGIC: u8 = 0x81;

/// The fixed header, field by field, as on the wire (multi-byte fields big-endian).
///
/// ```text
/// byte   0      1       2..4     4           5          6..8              8..12       12..16  16..24
///        magic  opcode  key len  extras len  data type  vbucket | status  total body  opaque  cas
/// ```
///
/// The body that follows is `extras`, then `key`, then the value: `total body` bytes in all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Header {
    /// [`REQUEST_MAGIC`] or [`RESPONSE_MAGIC`].
    pub magic: u8,
    /// The command (see [`super::Opcode`]); a response repeats the request's opcode.
    pub opcode: u8,
    /// Length of the key in the body.
    pub key_len: u16,
    /// Length of the extras at the start of the body.
    pub extras_len: u8,
    /// Data type: always 0 (raw bytes) from memcached, ignored in requests.
    pub data_type: u8,
    /// The vbucket id in a request (ignored by memcached), the status in a response.
    pub vbucket_or_status: u16,
    /// Length of extras, key and value together.
    pub total_body: u32,
    /// Copied from the request into its response, so a client can match pipelined replies.
    pub opaque: u32,
    /// Compare-and-swap id: a condition in a request (0 = none), the item's id in a response.
    pub cas: u64,
}

impl Header {
    /// Reads the header at the front of `buf`; `None` when fewer than [`HEADER_LEN`] bytes are
    /// there. Any 24 bytes decode: checking the fields is the parsers' business.
    pub fn decode(buf: &[u8]) -> Option<Header> {
        let b: &[u8; HEADER_LEN] = buf.get(..HEADER_LEN)?.try_into().ok()?;
        Some(Header {
            magic: b[0],
            opcode: b[1],
            key_len: u16::from_be_bytes([b[2], b[3]]),
            extras_len: b[4],
            data_type: b[5],
            vbucket_or_status: u16::from_be_bytes([b[6], b[7]]),
            total_body: u32::from_be_bytes([b[8], b[9], b[10], b[11]]),
            opaque: u32::from_be_bytes([b[12], b[13], b[14], b[15]]),
            cas: u64::from_be_bytes([b[16], b[17], b[18], b[19], b[20], b[21], b[22], b[23]]),
        })
    }

    /// Appends the 24 header bytes to `out`.
    pub fn encode(&self, out: &mut BytesMut) {
        out.reserve(HEADER_LEN);
        out.put_u8(self.magic);
        out.put_u8(self.opcode);
        out.put_u16(self.key_len);
        out.put_u8(self.extras_len);
        out.put_u8(self.data_type);
        out.put_u16(self.vbucket_or_status);
        out.put_u32(self.total_body);
        out.put_u32(self.opaque);
        out.put_u64(self.cas);
    }

    /// Length of the value (the body after extras and key); `None` when the key and extras
    /// announced do not fit in the total body.
    pub fn value_len(&self) -> Option<u32> {
        self.total_body
            .checked_sub(u32::from(self.key_len) + u32::from(self.extras_len))
    }

    /// Length of the whole frame, header included.
    pub fn frame_len(&self) -> usize {
        // u32 always fits a usize on the targets tokio supports (32 and 64 bits); saturating
        // keeps a 32-bit build from wrapping on a 4 GiB announcement.
        HEADER_LEN.saturating_add(self.total_body as usize)
    }
}

/// The fields of one frame apart from its magic, so requests and responses compose alike.
pub(crate) struct Frame<'a> {
    pub magic: u8,
    pub opcode: u8,
    pub data_type: u8,
    pub vbucket_or_status: u16,
    pub opaque: u32,
    pub cas: u64,
    pub extras: &'a [u8],
    pub key: &'a [u8],
    pub value: &'a [u8],
}

impl Frame<'_> {
    /// Appends header and body. Parts longer than the header can announce (extras over 255
    /// bytes, a key over 65,535, a body over 4 GiB) are cut to what it can, so the frame on the
    /// wire is always self-consistent: composing never panics and never desynchronises the
    /// stream, and no valid request or reply comes anywhere near those sizes.
    pub fn compose(&self, out: &mut BytesMut) {
        let extras = &self.extras[..self.extras.len().min(usize::from(u8::MAX))];
        let key = &self.key[..self.key.len().min(usize::from(u16::MAX))];
        let room = (u32::MAX as usize).saturating_sub(extras.len() + key.len());
        let value = &self.value[..self.value.len().min(room)];
        let total = extras.len() + key.len() + value.len();
        let header = Header {
            magic: self.magic,
            opcode: self.opcode,
            // The three casts are exact: each length was cut to its field's range above.
            key_len: key.len() as u16,
            extras_len: extras.len() as u8,
            data_type: self.data_type,
            vbucket_or_status: self.vbucket_or_status,
            total_body: total as u32,
            opaque: self.opaque,
            cas: self.cas,
        };
        out.reserve(HEADER_LEN + total);
        header.encode(out);
        out.extend_from_slice(extras);
        out.extend_from_slice(key);
        out.extend_from_slice(value);
    }
}
