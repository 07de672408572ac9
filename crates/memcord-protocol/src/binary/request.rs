//! Requests: one frame type for every opcode, typed views of its extras, and constructors for
//! the client side.

use super::header::{Frame, REQUEST_MAGIC};
use super::Opcode;
use bytes::{BufMut, Bytes, BytesMut};

/// The exptime that tells `Increment`/`Decrement` not to create a missing key (memcached then
/// answers "Not found").
pub const ARITH_NO_CREATE: u32 = 0xffff_ffff;

/// One binary request, as framed on the wire.
///
/// The parser fills it only with frames memcached would serve (see [`super::parse_request`]):
/// its key is 1..=250 bytes where the opcode takes one, and its extras have the length the
/// opcode requires, so [`BinaryRequest::decode_extras`] succeeds on every parsed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BinaryRequest {
    /// The command, quiet form included.
    pub opcode: Opcode,
    /// The key (empty for `Noop`, `Version`, `Flush`, `Quit` and the all-stats `Stat`; the
    /// group name of a `Stat`). Any bytes: the binary protocol has no forbidden key byte.
    pub key: Bytes,
    /// The extras, raw (typed by [`BinaryRequest::decode_extras`]).
    pub extras: Bytes,
    /// The value (storage commands and SASL data; empty otherwise).
    pub value: Bytes,
    /// Echoed in the reply.
    pub opaque: u32,
    /// Compare-and-swap condition, 0 for none.
    pub cas: u64,
    /// The vbucket id: ignored by memcached, kept so a request composes back unchanged.
    pub vbucket: u16,
    /// The data type byte: ignored by memcached, kept for the same reason.
    pub data_type: u8,
}

/// The extras of a request, read as memcached reads them for its opcode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Extras {
    /// No extras (get, delete, append, prepend, stat, noop, version, quit, SASL).
    None,
    /// `Set`/`Add`/`Replace` and quiet forms: 8 bytes.
    Store {
        /// Opaque client flags stored with the item.
        flags: u32,
        /// memcached's exptime: 0 never, up to 30 days relative seconds, else a unix time.
        exptime: u32,
    },
    /// `Increment`/`Decrement` and quiet forms: 20 bytes.
    Arith {
        /// Amount to add or subtract.
        delta: u64,
        /// Value stored when the key is missing (unless `exptime` is [`ARITH_NO_CREATE`]).
        initial: u64,
        /// Exptime of a created item; [`ARITH_NO_CREATE`] means "do not create".
        exptime: u32,
    },
    /// `Touch` and the `Gat` family: 4 bytes.
    Touch {
        /// The new exptime.
        exptime: u32,
    },
    /// `Flush`/`FlushQ`: no extras (flush now) or 4 bytes.
    Flush {
        /// When to flush (`None` or `Some(0)`: now).
        exptime: Option<u32>,
    },
    /// `Verbosity`: 4 bytes (memcached 1.6.18 does not serve the opcode).
    Verbosity {
        /// The log level.
        level: u32,
    },
}

impl Extras {
    /// The wire form of these extras.
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(20);
        match *self {
            Extras::None | Extras::Flush { exptime: None } => {}
            Extras::Store { flags, exptime } => {
                out.put_u32(flags);
                out.put_u32(exptime);
            }
            Extras::Arith {
                delta,
                initial,
                exptime,
            } => {
                out.put_u64(delta);
                out.put_u64(initial);
                out.put_u32(exptime);
            }
            Extras::Touch { exptime }
            | Extras::Flush {
                exptime: Some(exptime),
            } => out.put_u32(exptime),
            Extras::Verbosity { level } => out.put_u32(level),
        }
        out.freeze()
    }
}

/// Big-endian u32 at `at`; the callers have checked the length.
fn be_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let b: [u8; 4] = bytes.get(at..at + 4)?.try_into().ok()?;
    Some(u32::from_be_bytes(b))
}

fn be_u64(bytes: &[u8], at: usize) -> Option<u64> {
    let b: [u8; 8] = bytes.get(at..at + 8)?.try_into().ok()?;
    Some(u64::from_be_bytes(b))
}

impl BinaryRequest {
    /// A request with no key, extras or value (`Noop`, `Version`, `Quit`, `SaslListMechs` …).
    pub fn new(opcode: Opcode) -> Self {
        BinaryRequest {
            opcode,
            key: Bytes::new(),
            extras: Bytes::new(),
            value: Bytes::new(),
            opaque: 0,
            cas: 0,
            vbucket: 0,
            data_type: 0,
        }
    }

    /// `Get`, `GetQ`, `GetK`, `GetKQ`, or `Delete`/`DeleteQ`: a key and nothing else.
    pub fn keyed(opcode: Opcode, key: impl Into<Bytes>) -> Self {
        Self::new(opcode).with_key(key)
    }

    /// `Set`, `Add`, `Replace` (or a quiet form): flags and exptime in the extras.
    pub fn store(
        opcode: Opcode,
        key: impl Into<Bytes>,
        flags: u32,
        exptime: u32,
        value: impl Into<Bytes>,
    ) -> Self {
        Self::keyed(opcode, key)
            .with_extras(Extras::Store { flags, exptime })
            .with_value(value)
    }

    /// `Append`, `Prepend` (or a quiet form): key and value, no extras.
    pub fn concat(opcode: Opcode, key: impl Into<Bytes>, value: impl Into<Bytes>) -> Self {
        Self::keyed(opcode, key).with_value(value)
    }

    /// `Increment`, `Decrement` (or a quiet form).
    pub fn arith(
        opcode: Opcode,
        key: impl Into<Bytes>,
        delta: u64,
        initial: u64,
        exptime: u32,
    ) -> Self {
        Self::keyed(opcode, key).with_extras(Extras::Arith {
            delta,
            initial,
            exptime,
        })
    }

    /// `Touch`, `Gat`, `GatQ`, `GatK`, `GatKQ`.
    pub fn touch(opcode: Opcode, key: impl Into<Bytes>, exptime: u32) -> Self {
        Self::keyed(opcode, key).with_extras(Extras::Touch { exptime })
    }

    /// `Flush`/`FlushQ`, with the 4-byte exptime or without extras.
    pub fn flush(opcode: Opcode, exptime: Option<u32>) -> Self {
        Self::new(opcode).with_extras(Extras::Flush { exptime })
    }

    /// `Stat` for one group (`b"settings"`, `b"items"` …), or all stats when `group` is empty.
    pub fn stat(group: impl Into<Bytes>) -> Self {
        Self::keyed(Opcode::Stat, group)
    }

    /// `Verbosity` with its 4-byte level.
    pub fn verbosity(level: u32) -> Self {
        Self::new(Opcode::Verbosity).with_extras(Extras::Verbosity { level })
    }

    /// The same request with `key`.
    pub fn with_key(mut self, key: impl Into<Bytes>) -> Self {
        self.key = key.into();
        self
    }

    /// The same request with typed extras.
    pub fn with_extras(mut self, extras: Extras) -> Self {
        self.extras = extras.encode();
        self
    }

    /// The same request with raw extras (for frames memcached refuses, in tests).
    pub fn with_raw_extras(mut self, extras: impl Into<Bytes>) -> Self {
        self.extras = extras.into();
        self
    }

    /// The same request with `value`.
    pub fn with_value(mut self, value: impl Into<Bytes>) -> Self {
        self.value = value.into();
        self
    }

    /// The same request with `opaque`.
    pub fn with_opaque(mut self, opaque: u32) -> Self {
        self.opaque = opaque;
        self
    }

    /// The same request with a cas condition.
    pub fn with_cas(mut self, cas: u64) -> Self {
        self.cas = cas;
        self
    }

    /// The extras read by the opcode's rules; `None` when their length is not one memcached
    /// accepts for the opcode (never for a request [`super::parse_request`] returned).
    pub fn decode_extras(&self) -> Option<Extras> {
        let e = &self.extras[..];
        match (self.opcode.loud(), e.len()) {
            (Opcode::Set | Opcode::Add | Opcode::Replace, 8) => Some(Extras::Store {
                flags: be_u32(e, 0)?,
                exptime: be_u32(e, 4)?,
            }),
            (Opcode::Increment | Opcode::Decrement, 20) => Some(Extras::Arith {
                delta: be_u64(e, 0)?,
                initial: be_u64(e, 8)?,
                exptime: be_u32(e, 16)?,
            }),
            (Opcode::Touch | Opcode::Gat | Opcode::GatK, 4) => Some(Extras::Touch {
                exptime: be_u32(e, 0)?,
            }),
            (Opcode::Flush, 0) => Some(Extras::Flush { exptime: None }),
            (Opcode::Flush, 4) => Some(Extras::Flush {
                exptime: Some(be_u32(e, 0)?),
            }),
            (Opcode::Verbosity, 4) => Some(Extras::Verbosity {
                level: be_u32(e, 0)?,
            }),
            (
                Opcode::Set
                | Opcode::Add
                | Opcode::Replace
                | Opcode::Increment
                | Opcode::Decrement
                | Opcode::Touch
                | Opcode::Gat
                | Opcode::GatK
                | Opcode::Flush
                | Opcode::Verbosity,
                _,
            ) => None,
            (_, 0) => Some(Extras::None),
            _ => None,
        }
    }
}

/// Appends `request` as one frame (client side: the load generator, tests).
pub fn compose_request(request: &BinaryRequest, out: &mut BytesMut) {
    Frame {
        magic: REQUEST_MAGIC,
        opcode: request.opcode.code(),
        data_type: request.data_type,
        vbucket_or_status: request.vbucket,
        opaque: request.opaque,
        cas: request.cas,
        extras: &request.extras,
        key: &request.key,
        value: &request.value,
    }
    .compose(out);
}
