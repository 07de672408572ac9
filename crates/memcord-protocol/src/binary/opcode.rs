//! Opcodes and status codes, and which replies memcached leaves out for the quiet opcodes.

/// A binary command, by its opcode byte (memcached 1.6.18's `protocol_binary.h`).
///
/// Every opcode memcached's `dispatch_bin_command` serves has a variant, plus `Verbosity`
/// (0x1b, which 1.6.18 does not serve: it answers "Unknown command"). Any other byte is
/// `Unknown`; [`Opcode::from`] never builds `Unknown` for a byte that has a variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Opcode {
    /// 0x00: value by key; a miss is answered "Not found".
    Get,
    /// 0x01: store unconditionally (a cas in the header makes it a compare-and-swap).
    Set,
    /// 0x02: store only if the key is absent (with a cas in the header, memcached runs it as a
    /// compare-and-swap instead).
    Add,
    /// 0x03: store only if the key is present.
    Replace,
    /// 0x04: remove the key (a cas in the header must match).
    Delete,
    /// 0x05: add to a decimal value, or create it from `initial`.
    Increment,
    /// 0x06: subtract from a decimal value (stopping at 0), or create it.
    Decrement,
    /// 0x07: reply, then close the connection.
    Quit,
    /// 0x08: invalidate every item, now or at an exptime.
    Flush,
    /// 0x09: quiet `Get`: misses are not answered.
    GetQ,
    /// 0x0a: answered with an empty success; ends a pipeline of quiet requests.
    Noop,
    /// 0x0b: the server's version string.
    Version,
    /// 0x0c: `Get` whose replies (hits and misses) carry the key.
    GetK,
    /// 0x0d: quiet `GetK`.
    GetKQ,
    /// 0x0e: add the value after the stored one.
    Append,
    /// 0x0f: add the value before the stored one.
    Prepend,
    /// 0x10: statistics, one reply per stat, ended by an empty one; the key names a group.
    Stat,
    /// 0x11: quiet `Set`.
    SetQ,
    /// 0x12: quiet `Add`.
    AddQ,
    /// 0x13: quiet `Replace`.
    ReplaceQ,
    /// 0x14: quiet `Delete`.
    DeleteQ,
    /// 0x15: quiet `Increment`.
    IncrementQ,
    /// 0x16: quiet `Decrement`.
    DecrementQ,
    /// 0x17: close the connection without a reply.
    QuitQ,
    /// 0x18: quiet `Flush`.
    FlushQ,
    /// 0x19: quiet `Append`.
    AppendQ,
    /// 0x1a: quiet `Prepend`.
    PrependQ,
    /// 0x1b: set the log level (4-byte extras); memcached 1.6.18 does not serve it.
    Verbosity,
    /// 0x1c: set a key's exptime; the reply carries the flags but not the value.
    Touch,
    /// 0x1d: get and touch.
    Gat,
    /// 0x1e: quiet `Gat`.
    GatQ,
    /// 0x20: SASL mechanisms (served only by a memcached started with `-S`).
    SaslListMechs,
    /// 0x21: first SASL step.
    SaslAuth,
    /// 0x22: further SASL step.
    SaslStep,
    /// 0x23: `Gat` whose replies carry the key.
    GatK,
    /// 0x24: quiet `GatK`.
    GatKQ,
    /// Any other opcode byte (memcached answers "Unknown command").
    Unknown(u8),
}

/// Every named opcode with its byte, in byte order.
pub const OPCODES: [(Opcode, u8); 36] = [
    (Opcode::Get, 0x00),
    (Opcode::Set, 0x01),
    (Opcode::Add, 0x02),
    (Opcode::Replace, 0x03),
    (Opcode::Delete, 0x04),
    (Opcode::Increment, 0x05),
    (Opcode::Decrement, 0x06),
    (Opcode::Quit, 0x07),
    (Opcode::Flush, 0x08),
    (Opcode::GetQ, 0x09),
    (Opcode::Noop, 0x0a),
    (Opcode::Version, 0x0b),
    (Opcode::GetK, 0x0c),
    (Opcode::GetKQ, 0x0d),
    (Opcode::Append, 0x0e),
    (Opcode::Prepend, 0x0f),
    (Opcode::Stat, 0x10),
    (Opcode::SetQ, 0x11),
    (Opcode::AddQ, 0x12),
    (Opcode::ReplaceQ, 0x13),
    (Opcode::DeleteQ, 0x14),
    (Opcode::IncrementQ, 0x15),
    (Opcode::DecrementQ, 0x16),
    (Opcode::QuitQ, 0x17),
    (Opcode::FlushQ, 0x18),
    (Opcode::AppendQ, 0x19),
    (Opcode::PrependQ, 0x1a),
    (Opcode::Verbosity, 0x1b),
    (Opcode::Touch, 0x1c),
    (Opcode::Gat, 0x1d),
    (Opcode::GatQ, 0x1e),
    (Opcode::SaslListMechs, 0x20),
    (Opcode::SaslAuth, 0x21),
    (Opcode::SaslStep, 0x22),
    (Opcode::GatK, 0x23),
    (Opcode::GatKQ, 0x24),
];

impl From<u8> for Opcode {
    fn from(code: u8) -> Self {
        match OPCODES.iter().find(|(_, c)| *c == code) {
            Some((opcode, _)) => *opcode,
            None => Opcode::Unknown(code),
        }
    }
}

impl From<Opcode> for u8 {
    fn from(opcode: Opcode) -> Self {
        opcode.code()
    }
}

impl Opcode {
    /// The opcode byte.
    pub fn code(self) -> u8 {
        match self {
            Opcode::Unknown(code) => code,
            named => OPCODES
                .iter()
                .find(|(o, _)| *o == named)
                .map_or(0xff, |(_, code)| *code),
        }
    }

    /// Whether this is a quiet opcode: memcached leaves out some of its replies (which ones:
    /// [`suppressed`]).
    pub fn is_quiet(self) -> bool {
        self.loud() != self
    }

    /// The non-quiet opcode doing the same work (`GetQ` → `Get`, `GatKQ` → `GatK` …), as
    /// memcached maps them before dispatching; any other opcode is returned as is.
    pub fn loud(self) -> Opcode {
        match self {
            Opcode::GetQ => Opcode::Get,
            Opcode::GetKQ => Opcode::GetK,
            Opcode::SetQ => Opcode::Set,
            Opcode::AddQ => Opcode::Add,
            Opcode::ReplaceQ => Opcode::Replace,
            Opcode::DeleteQ => Opcode::Delete,
            Opcode::IncrementQ => Opcode::Increment,
            Opcode::DecrementQ => Opcode::Decrement,
            Opcode::QuitQ => Opcode::Quit,
            Opcode::FlushQ => Opcode::Flush,
            Opcode::AppendQ => Opcode::Append,
            Opcode::PrependQ => Opcode::Prepend,
            Opcode::GatQ => Opcode::Gat,
            Opcode::GatKQ => Opcode::GatK,
            other => other,
        }
    }

    /// Whether a hit (and a miss) carries the key back: `GetK`, `GetKQ`, `GatK`, `GatKQ`.
    pub fn returns_key(self) -> bool {
        matches!(self.loud(), Opcode::GetK | Opcode::GatK)
    }

    /// Whether memcached closes the connection after this request (`Quit`, `QuitQ`).
    pub fn closes_connection(self) -> bool {
        self.loud() == Opcode::Quit
    }
}

/// A response status (memcached 1.6.18's `protocol_binary_response_status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// 0x00: success.
    Success,
    /// 0x01 `KEY_ENOENT`: no such key (also cas or replace on a missing key).
    KeyNotFound,
    /// 0x02 `KEY_EEXISTS`: cas mismatch, or add on an existing key.
    KeyExists,
    /// 0x03 `E2BIG`: the value is larger than the item size limit.
    TooLarge,
    /// 0x04 `EINVAL`: the frame's lengths do not fit its opcode (memcached then closes).
    InvalidArguments,
    /// 0x05 `NOT_STORED`: append/prepend on a missing key.
    NotStored,
    /// 0x06 `DELTA_BADVAL`: incr/decr on a value that is not a number.
    NonNumeric,
    /// 0x20 `AUTH_ERROR`: SASL authentication failed (or flush is disabled).
    AuthError,
    /// 0x21 `AUTH_CONTINUE`: a further SASL step is needed.
    AuthContinue,
    /// 0x81 `UNKNOWN_COMMAND`: opcode not served (also key + extras longer than the body).
    UnknownCommand,
    /// 0x82 `ENOMEM`: out of memory.
    OutOfMemory,
    /// Any other status code.
    Other(u16),
}

impl From<u16> for Status {
    fn from(code: u16) -> Self {
        match code {
            0x00 => Status::Success,
            0x01 => Status::KeyNotFound,
            0x02 => Status::KeyExists,
            0x03 => Status::TooLarge,
            0x04 => Status::InvalidArguments,
            0x05 => Status::NotStored,
            0x06 => Status::NonNumeric,
            0x20 => Status::AuthError,
            0x21 => Status::AuthContinue,
            0x81 => Status::UnknownCommand,
            0x82 => Status::OutOfMemory,
            other => Status::Other(other),
        }
    }
}

impl From<Status> for u16 {
    fn from(status: Status) -> Self {
        status.code()
    }
}

impl Status {
    /// The status code.
    pub fn code(self) -> u16 {
        match self {
            Status::Success => 0x00,
            Status::KeyNotFound => 0x01,
            Status::KeyExists => 0x02,
            Status::TooLarge => 0x03,
            Status::InvalidArguments => 0x04,
            Status::NotStored => 0x05,
            Status::NonNumeric => 0x06,
            Status::AuthError => 0x20,
            Status::AuthContinue => 0x21,
            Status::UnknownCommand => 0x81,
            Status::OutOfMemory => 0x82,
            Status::Other(code) => code,
        }
    }

    /// The body text memcached's `write_bin_error` sends with this status (empty for success,
    /// `AuthContinue` and unknown codes). memcached's own out-of-memory replies carry a more
    /// specific text (`"Out of memory allocating item"` …); `"Out of memory"` is its default.
    pub fn message(self) -> &'static str {
        match self {
            Status::Success | Status::AuthContinue | Status::Other(_) => "",
            Status::KeyNotFound => "Not found",
            Status::KeyExists => "Data exists for key.",
            Status::TooLarge => "Too large.",
            Status::InvalidArguments => "Invalid arguments",
            Status::NotStored => "Not stored.",
            Status::NonNumeric => "Non-numeric server-side value for incr or decr",
            Status::AuthError => "Auth failure.",
            Status::UnknownCommand => "Unknown command",
            Status::OutOfMemory => "Out of memory",
        }
    }
}

/// Whether memcached sends no reply with `status` to a request with `opcode`.
///
/// The quiet gets (`GetQ`, `GetKQ`, `GatQ`, `GatKQ`) leave out misses and send hits; the other
/// quiet opcodes (`SetQ`, `AddQ`, `ReplaceQ`, `AppendQ`, `PrependQ`, `DeleteQ`, `IncrementQ`,
/// `DecrementQ`, `FlushQ`, `QuitQ`) leave out success and send every error. Non-quiet opcodes
/// always reply, and every opcode replies to an invalid frame.
pub fn suppressed(opcode: Opcode, status: Status) -> bool {
    match opcode {
        Opcode::GetQ | Opcode::GetKQ | Opcode::GatQ | Opcode::GatKQ => {
            status == Status::KeyNotFound
        }
        Opcode::SetQ
        | Opcode::AddQ
        | Opcode::ReplaceQ
        | Opcode::AppendQ
        | Opcode::PrependQ
        | Opcode::DeleteQ
        | Opcode::IncrementQ
        | Opcode::DecrementQ
        | Opcode::FlushQ
        | Opcode::QuitQ => status == Status::Success,
        _ => false,
    }
}
