//! Responses: one frame type, and constructors for each reply memcached sends, so the server
//! answers with memcached's exact frames.

use super::header::{Frame, RESPONSE_MAGIC};
use super::{suppressed, BinaryRequest, Opcode, Status};
use bytes::{Bytes, BytesMut};

/// One binary response, as framed on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BinaryResponse {
    /// The request's opcode, quiet form included (memcached echoes it unchanged).
    pub opcode: Opcode,
    /// The outcome.
    pub status: Status,
    /// The key (`GetK`-family replies, stat names); empty otherwise.
    pub key: Bytes,
    /// The extras: the 4-byte flags of a hit or touch, empty otherwise.
    pub extras: Bytes,
    /// The value, a counter's 8 bytes, a version or stat text, or an error's text.
    pub value: Bytes,
    /// The request's opaque.
    pub opaque: u32,
    /// The item's cas id after the request (0 when there is none, as in misses and errors).
    pub cas: u64,
    /// The data type byte (always 0 from memcached).
    pub data_type: u8,
}

impl BinaryResponse {
    /// A reply with `status` and an empty body.
    pub fn new(opcode: Opcode, status: Status, opaque: u32) -> Self {
        BinaryResponse {
            opcode,
            status,
            key: Bytes::new(),
            extras: Bytes::new(),
            value: Bytes::new(),
            opaque,
            cas: 0,
            data_type: 0,
        }
    }

    /// memcached's error reply: `status` with its text as the value ([`Status::message`]).
    pub fn error_for(opcode: Opcode, opaque: u32, status: Status) -> Self {
        Self::new(opcode, status, opaque)
            .with_value(Bytes::from_static(status.message().as_bytes()))
    }

    /// The error reply to `request`.
    pub fn error(request: &BinaryRequest, status: Status) -> Self {
        Self::error_for(request.opcode, request.opaque, status)
    }

    /// An empty success (`Delete`, `Flush`, `Noop`, `Quit` …): no body, cas 0.
    pub fn success(request: &BinaryRequest) -> Self {
        Self::new(request.opcode, Status::Success, request.opaque)
    }

    /// A storage command's success (`Set`, `Add`, `Replace`, `Append`, `Prepend`): no body, the
    /// stored item's cas id in the header.
    pub fn stored(request: &BinaryRequest, cas: u64) -> Self {
        Self::success(request).with_cas(cas)
    }

    /// A hit for the get and touch family: the 4-byte flags as extras, the key for the
    /// `GetK`/`GatK` family, then the value, and the item's cas id. A `Touch` hit carries the
    /// flags but no value (what memcached 1.6.18 sends), so `value` is dropped for it.
    pub fn hit(request: &BinaryRequest, flags: u32, value: impl Into<Bytes>, cas: u64) -> Self {
        let mut reply = Self::success(request)
            .with_extras(Bytes::copy_from_slice(&flags.to_be_bytes()))
            .with_cas(cas);
        if request.opcode.returns_key() {
            reply.key = request.key.clone();
        }
        if request.opcode != Opcode::Touch {
            reply.value = value.into();
        }
        reply
    }

    /// A miss for the get and touch family: `GetK`/`GatK` and their quiet forms carry the key
    /// and no text; the others are the "Not found" error. (The quiet gets' misses are
    /// [`suppressed`].)
    pub fn miss(request: &BinaryRequest) -> Self {
        if request.opcode.returns_key() {
            Self::new(request.opcode, Status::KeyNotFound, request.opaque)
                .with_key(request.key.clone())
        } else {
            Self::error(request, Status::KeyNotFound)
        }
    }

    /// An `Increment`/`Decrement` success: the new value as 8 big-endian bytes, and the cas id.
    pub fn counter(request: &BinaryRequest, value: u64, cas: u64) -> Self {
        Self::success(request)
            .with_value(Bytes::copy_from_slice(&value.to_be_bytes()))
            .with_cas(cas)
    }

    /// The `Version` reply: the version text as the value.
    pub fn version(request: &BinaryRequest, version: &str) -> Self {
        Self::success(request).with_value(Bytes::copy_from_slice(version.as_bytes()))
    }

    /// One stat of a `Stat` reply: key = name, value = value, cas 0.
    pub fn stat(request: &BinaryRequest, name: &str, value: &str) -> Self {
        Self::new(Opcode::Stat, Status::Success, request.opaque)
            .with_key(Bytes::copy_from_slice(name.as_bytes()))
            .with_value(Bytes::copy_from_slice(value.as_bytes()))
    }

    /// The empty reply that ends a `Stat` reply (and is the whole reply to `stat reset` and
    /// `stat detail on|off`).
    pub fn stats_end(request: &BinaryRequest) -> Self {
        Self::new(Opcode::Stat, Status::Success, request.opaque)
    }

    /// The same reply with `key`.
    pub fn with_key(mut self, key: impl Into<Bytes>) -> Self {
        self.key = key.into();
        self
    }

    /// The same reply with `extras`.
    pub fn with_extras(mut self, extras: impl Into<Bytes>) -> Self {
        self.extras = extras.into();
        self
    }

    /// The same reply with `value`.
    pub fn with_value(mut self, value: impl Into<Bytes>) -> Self {
        self.value = value.into();
        self
    }

    /// The same reply with a cas id.
    pub fn with_cas(mut self, cas: u64) -> Self {
        self.cas = cas;
        self
    }

    /// Whether memcached leaves this reply out ([`suppressed`] for its opcode and status).
    pub fn is_suppressed(&self) -> bool {
        suppressed(self.opcode, self.status)
    }

    /// The flags of a hit or touch reply (4-byte extras).
    pub fn flags(&self) -> Option<u32> {
        let bytes: [u8; 4] = self.extras[..].try_into().ok()?;
        Some(u32::from_be_bytes(bytes))
    }

    /// The new value of a successful `Increment`/`Decrement` (8-byte value).
    pub fn counter_value(&self) -> Option<u64> {
        if self.status != Status::Success
            || !matches!(self.opcode.loud(), Opcode::Increment | Opcode::Decrement)
        {
            return None;
        }
        let bytes: [u8; 8] = self.value[..].try_into().ok()?;
        Some(u64::from_be_bytes(bytes))
    }
}

/// Appends `response` as one frame (server side). Whether to send it at all is the caller's
/// decision ([`BinaryResponse::is_suppressed`]).
pub fn compose_response(response: &BinaryResponse, out: &mut BytesMut) {
    Frame {
        magic: RESPONSE_MAGIC,
        opcode: response.opcode.code(),
        data_type: response.data_type,
        vbucket_or_status: response.status.code(),
        opaque: response.opaque,
        cas: response.cas,
        extras: &response.extras,
        key: &response.key,
        value: &response.value,
    }
    .compose(out);
}
