//! The meta protocol (`mg`, `ms`, `md`, `ma`, `mn`, `me`), as memcached 1.6.18 speaks it.
//!
//! Meta commands share a connection with the classic text commands: a two-letter word, a key,
//! then single-letter flags, some carrying a token (`T30`, `Oopaque`). Replies are a two-letter
//! code and the flags the request asked to see, *in the order the request named them*:
//!
//! ```text
//! mg foo s t c f v\r\n          →  VA 2 s2 t-1 c7 f0\r\nhi\r\n
//! ms foo 2 T90 F1 c\r\nhi\r\n   →  HD c8
//! md foo I T30\r\n              →  HD            (marked stale, not removed)
//! ma foo N0 J5 v\r\n            →  VA 1\r\n5\r\n  (created from J on a miss)
//! mn\r\n                        →  MN
//! ```
//!
//! * server side: [`super::parse_request`] turns a line (and an `ms` data block) into a
//!   [`Request`](super::Request) holding one of [`MetaGet`], [`MetaSet`], [`MetaDelete`],
//!   [`MetaArith`], with the reply's shape in [`MetaFlags`]; a coordinator answers with a
//!   [`MetaReply`] (what happened, and a [`MetaItem`] view of the item), which
//!   [`MetaReply::compose`] writes exactly as memcached would;
//! * client side (the memcached adapter, `bench`): [`compose_request`] writes a meta request,
//!   and [`super::parse_response`] reads any meta reply line into a generic [`MetaLine`].
//!
//! # The rules, as measured against memcached 1.6.18
//!
//! Every row was observed on the real binary; `tests/meta_differential.rs` replays scripted
//! sessions against it and against memcord and compares the bytes.
//!
//! | input | memcached's reply |
//! | --- | --- |
//! | `mg`, `ms`, `md`, `ma` without a key | `ERROR` |
//! | key over 250 bytes (before base64 decoding) | `CE bad command line format` |
//! | `me` without a key, or a `b` key that does not decode | `CE bad command line format` |
//! | more than 17 flags (`mg`/`md`/`ma`), 16 (`ms`) | `CE options flags are too long` (`mg`), `CE options flags too long` (others) |
//! | a flag letter twice | `CE duplicate flag` (`mg`, `ms`); `CE invalid or duplicate flag` (`md`, `ma`) |
//! | an unknown flag letter | `CE invalid flag` (`mg`, `ms`); `CE invalid or duplicate flag` (`md`, `ma`) |
//! | `T`/`N`/`R`/`C` token not a number | `CE bad token in command line format` (`mg`, `ms`) |
//! | `F` token not a 32-bit number | `CE bad command line format` (`ms`) |
//! | `J`, `D` token not a number | `CE invalid numeric initial value`, `CE invalid numeric delta value` (`mg`, `ms`; `md`/`ma` say `invalid or duplicate flag`) |
//! | `M` token not one letter | `CE incorrect length for M token` |
//! | `ms` mode other than `E A P R S`; `ma` mode other than `I + D -` | `CE invalid mode for ms M token`; `CE invalid mode for ma M token` |
//! | `O` token over 32 bytes | `CE opaque token too long` |
//! | `ms <key>` without a length; length not a number or negative | `CE bad command line format`, the data line then read as a command |
//! | `ms` flag errors once the length is known | the error, and `length + 2` bytes swallowed |
//! | `ms` value over the item size limit | `SE object too large for cache`, the data swallowed, the key's old item removed |
//! | `ms` data not ending in `\r\n` | `CE bad data chunk` |
//! | `mn` with anything after it | `MN` |
//! | `q` | hides `EN` (`mg`), `HD` (`ms`, `md`, `ma` on a hit, even with `v`); every other code and every error is sent |
//! | `P`, `L` tokens | ignored (hints for proxies); memcord reads `L<one\|quorum\|all>` as the consistency level of the eventual mode |
//!
//! Flags are accepted by every meta command whatever their meaning to it (`md foo v` is
//! valid); `mg` echoes `O` and `k` on a miss (`EN kfoo O1`) and adds `W`, `X`, `Z` after the
//! requested flags; `ma` counts a created item's TTL from `N`, and a `t` shows the TTL as it is
//! at that point of the flag list (`t` before `T` shows the old TTL).
//!
//! # Where memcord differs
//!
//! * `h` and `l` are each replica's own record of reads (not replicated), as memcached's are
//!   per server; memcord updates the last-access time on every bumping read (memcached's
//!   segmented LRU moves it only on the second hit).
//! * `me` reports memcord's figures: `cls` is memcord's size class (the one `stats items`
//!   reports) and `size` the key, value and per-item overhead the store charges. Its `exp` is memcached's: the TTL left,
//!   negated (`exp=-30` for 30 seconds left), -1 for never.

mod compose;
mod parse;
pub(crate) mod reply;

#[cfg(test)]
mod tests;

pub use compose::compose_request;
pub(crate) use parse::parse;
pub use reply::MetaLine;

use super::Level;
use bytes::Bytes;

/// Most flags one meta command carries (memcached refuses more than 17, or 16 for `ms`).
pub const MAX_FLAGS: usize = 20;
/// Longest `O` (opaque) token memcached echoes.
pub const MAX_OPAQUE_LEN: usize = 32;

/// The flags of a meta command that shape its reply or route it: every flag letter in request
/// order (replies list their flags in that order), the opaque token, `q`, `b` and memcord's
/// consistency level.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetaFlags {
    letters: [u8; MAX_FLAGS],
    len: u8,
    /// The token of `O`, echoed in the reply.
    pub opaque: Option<Bytes>,
    /// `q`: hide the nominal reply.
    pub quiet: bool,
    /// `b`: the key was sent base64-encoded (replies re-encode it).
    pub base64: bool,
    /// `L<level>`: the consistency level of this request in the eventual mode.
    pub level: Option<Level>,
}

impl MetaFlags {
    /// Flags that ask for nothing.
    pub fn new() -> MetaFlags {
        MetaFlags::default()
    }

    /// Flags naming `letters` in order (tokens such as `O` are set separately); letters past
    /// [`MAX_FLAGS`] are dropped.
    pub fn with_letters(letters: &[u8]) -> MetaFlags {
        let mut flags = MetaFlags::new();
        for &letter in letters {
            flags.push(letter);
        }
        flags
    }

    /// Adds a letter at the end (ignored past [`MAX_FLAGS`]).
    pub fn push(&mut self, letter: u8) {
        if usize::from(self.len) < MAX_FLAGS {
            self.letters[usize::from(self.len)] = letter;
            self.len += 1;
        }
    }

    /// The letters in request order.
    pub fn letters(&self) -> &[u8] {
        &self.letters[..usize::from(self.len)]
    }

    /// Whether the request named `letter`.
    pub fn has(&self, letter: u8) -> bool {
        self.letters().contains(&letter)
    }
}

/// `ms` modes (the `M` token).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SetMode {
    /// `MS`, the default: store unconditionally (or compare-and-swap with `C`).
    #[default]
    Set,
    /// `ME`: store only if absent.
    Add,
    /// `MR`: store only if present.
    Replace,
    /// `MA`: append to a present value.
    Append,
    /// `MP`: prepend to a present value.
    Prepend,
}

impl SetMode {
    /// The mode's `M` letter.
    pub fn letter(self) -> u8 {
        match self {
            SetMode::Set => b'S',
            SetMode::Add => b'E',
            SetMode::Replace => b'R',
            SetMode::Append => b'A',
            SetMode::Prepend => b'P',
        }
    }

    /// The mode of an `M` letter, if `ms` knows it.
    pub fn from_letter(letter: u8) -> Option<SetMode> {
        Some(match letter {
            b'S' => SetMode::Set,
            b'E' => SetMode::Add,
            b'R' => SetMode::Replace,
            b'A' => SetMode::Append,
            b'P' => SetMode::Prepend,
            _ => return None,
        })
    }
}

/// ```text
/// mg <key> <flags>*\r\n
/// ```
/// A read that may also touch (`T`), create a stub on a miss (`N`) or hand out the recache
/// token (`R`, or any fetch of a stale item).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaGet {
    /// The key (decoded when it was sent base64-encoded).
    pub key: Bytes,
    /// `v`: send the value.
    pub value: bool,
    /// `u`: do not bump the item (its hit and last-access record stay as they are).
    pub no_bump: bool,
    /// `T<exptime>`: new expiry, as the client sent it.
    pub touch: Option<i64>,
    /// `N<exptime>`: on a miss, create an empty item expiring then and win its recache token.
    pub vivify: Option<i64>,
    /// `R<secs>`: win the recache token when the item has less TTL left than this.
    pub recache: Option<i64>,
    /// The reply's shape.
    pub flags: MetaFlags,
}

impl MetaGet {
    /// A meta get of `key` naming `letters` (no `T`, `N` or `R`); `v` and `u` among them ask
    /// for the value and for no bump, as when parsed.
    pub fn asking(key: Bytes, letters: &[u8]) -> MetaGet {
        MetaGet {
            key,
            value: letters.contains(&b'v'),
            no_bump: letters.contains(&b'u'),
            touch: None,
            vivify: None,
            recache: None,
            flags: MetaFlags::with_letters(letters),
        }
    }

    /// Whether this get may change the item (touch, create, or hand out a token on `R`).
    pub fn modifies(&self) -> bool {
        self.touch.is_some() || self.vivify.is_some() || self.recache.is_some()
    }
}

/// ```text
/// ms <key> <datalen> <flags>*\r\n<data>\r\n
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaSet {
    /// The key.
    pub key: Bytes,
    /// The data block.
    pub value: Bytes,
    /// `M<mode>`.
    pub mode: SetMode,
    /// `C<cas>`: store only if the item's cas id is this (with `I`, a lower one stores the
    /// value marked stale).
    pub compare_cas: Option<u64>,
    /// `I`: with `C`, accept an older cas id and mark the item stale.
    pub invalidate: bool,
    /// `F<flags>`: client flags (0 when absent).
    pub client_flags: u32,
    /// `T<exptime>`: expiry as the client sent it (0, never, when absent).
    pub exptime: i64,
    /// The reply's shape.
    pub flags: MetaFlags,
}

/// ```text
/// md <key> <flags>*\r\n
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaDelete {
    /// The key.
    pub key: Bytes,
    /// `C<cas>`: only if the item's cas id is this.
    pub compare_cas: Option<u64>,
    /// `I`: mark the item stale (new cas id, recache token released) instead of removing it.
    pub invalidate: bool,
    /// `T<exptime>`: with `I`, the stale item's new expiry.
    pub touch: Option<i64>,
    /// The reply's shape.
    pub flags: MetaFlags,
}

/// ```text
/// ma <key> <flags>*\r\n
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaArith {
    /// The key.
    pub key: Bytes,
    /// `MI`/`M+` (the default) or `MD`/`M-`.
    pub incr: bool,
    /// `D<delta>` (default 1).
    pub delta: u64,
    /// `J<initial>`: the value of an item created on a miss (default 0).
    pub initial: u64,
    /// `N<exptime>`: on a miss, create the item expiring then.
    pub vivify: Option<i64>,
    /// `C<cas>`: only if the item's cas id is this (0 compares nothing, as in memcached).
    pub compare_cas: Option<u64>,
    /// `T<exptime>`: new expiry on success.
    pub touch: Option<i64>,
    /// `v`: send the new value.
    pub value: bool,
    /// The reply's shape.
    pub flags: MetaFlags,
}

/// Which meta command a reply answers (each composes its flags its own way).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetaKind {
    /// `mg`.
    Get,
    /// `ms`.
    Set,
    /// `md`.
    Delete,
    /// `ma`.
    Arith,
    /// `me`.
    Debug,
}

/// What a meta command did: the reply's code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetaStatus {
    /// `VA`/`HD` with the item (`mg` hit, `ma` success).
    Found,
    /// `EN`: `mg` miss.
    Miss,
    /// `HD`: stored (`ms`) or deleted / marked stale (`md`).
    Done,
    /// `NS`: not stored (a condition failed, or `ma` could not create).
    NotStored,
    /// `EX`: the cas id did not match.
    Exists,
    /// `NF`: no such item.
    NotFound,
}

/// What a reply can show of an item, taken when the command ran.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetaItem {
    /// The value (sent with `v`; its length is `s` and `VA`'s size).
    pub value: Bytes,
    /// Client flags (`f`).
    pub client_flags: u32,
    /// Cas id (`c`).
    pub cas: u64,
    /// Seconds of life left before this command's `T`/`N` changed them (`t`; -1: never).
    pub ttl: i64,
    /// Seconds left after `T` (shown by a `t` that follows `T`).
    pub ttl_touched: Option<i64>,
    /// Seconds left after `N` created the item (shown by a `t` that follows `N`).
    pub ttl_vivified: Option<i64>,
    /// `h`: whether the item had been fetched before this command.
    pub hit_before: bool,
    /// `l`: seconds since the item was last accessed, before this command.
    pub idle_secs: u64,
    /// `X`: the item is stale.
    pub stale: bool,
    /// `Z`: another client already holds the recache token.
    pub token_sent: bool,
    /// `W`: this client won the recache token.
    pub won: bool,
    /// Bytes the store charges for the item (`me`'s `size`).
    pub footprint: usize,
    /// The item's size class (`me`'s `cls`).
    pub class: u32,
}

/// A coordinator's answer to a meta command, composed by [`MetaReply::compose`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaReply {
    /// Which command.
    pub kind: MetaKind,
    /// What happened.
    pub status: MetaStatus,
    /// The key as the store knows it (re-encoded for `k` when the request used `b`).
    pub key: Bytes,
    /// The request's flags.
    pub flags: MetaFlags,
    /// The item, when the reply shows one (`mg` hit, `ma` success, `ms` stored: its cas id).
    pub item: Option<MetaItem>,
}

/// Decodes a base64 key as memcached does: bytes outside the alphabet are skipped, padding is
/// required, an empty result is an error.
pub fn decode_key(encoded: &[u8]) -> Option<Bytes> {
    use base64::Engine;
    let filtered: Vec<u8> = encoded
        .iter()
        .copied()
        .filter(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
        .collect();
    if filtered.is_empty() || filtered.len() % 4 != 0 {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(&filtered)
        .ok()?;
    (!decoded.is_empty()).then(|| Bytes::from(decoded))
}

/// Encodes a key for a `k` flag of a `b` request.
pub fn encode_key(key: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(key)
}
