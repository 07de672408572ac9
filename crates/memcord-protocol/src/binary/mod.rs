//! The memcache binary protocol: a pure codec, both directions, no I/O.
//!
//! * server side: [`parse_request`] turns bytes into a [`BinaryRequest`] (or memcached's exact
//!   verdict on an invalid frame); [`compose_response`] turns a [`BinaryResponse`] into bytes,
//!   and the constructors on [`BinaryResponse`] build the replies memcached sends;
//! * client side (the load generator, tests against a real memcached): [`compose_request`]
//!   and [`parse_response`].
//!
//! As in the text codec, "not enough bytes yet" is kept apart from "invalid", memcache errors
//! are values, nothing panics on any input, and a length announced by the peer is bounded by
//! [`Limits`](crate::Limits) (key ≤ `max_key_len`, value ≤ `max_value_len`, extras by opcode) before the
//! parser waits for the bytes behind it.
//!
//! # The frame
//!
//! ```text
//! header (24 bytes, big-endian)                                  body (total body bytes)
//! magic opcode keylen extlen datatype vbucket|status totalbody opaque cas | extras key value
//!   1     1      2      1      1          2             4        4     8
//! ```
//!
//! A request's magic is `0x80` (a connection whose first byte is `0x80` speaks binary), a
//! response's `0x81`. A response repeats the request's opcode (quiet form included) and opaque.
//!
//! # The rules, as measured against memcached 1.6.18
//!
//! From `proto_bin.c` (`try_read_command_binary`, `dispatch_bin_command`), checked on the
//! running binary: `tests/binary_reference.rs` sends every case below to a real memcached and
//! parses its replies with [`parse_response`]. Checks run in this order:
//!
//! | frame | memcached's reply | after |
//! | --- | --- | --- |
//! | magic not `0x80` (a connection already speaking binary) | none | close |
//! | key length + extras length > total body | `0x81` "Unknown command" | close |
//! | key length > 250 (any opcode, unknown ones too) | `0x04` "Invalid arguments" | close |
//! | lengths not the opcode's (next table) | `0x04` "Invalid arguments" | close |
//! | unknown opcode (also `Verbosity` 0x1b, the range opcodes 0x30–0x3c) | `0x81` "Unknown command" | the body is swallowed (see the differences) |
//! | SASL opcodes (memcached without `-S`, as memcord) | `0x81` "Unknown command" | the value is swallowed |
//! | value > item size max (`Set`…`Prepend` and their quiet forms) | `0x03` "Too large." | the value is swallowed; an existing key is unlinked by `Set`/`SetQ` |
//! | `datatype`, `vbucket` | ignored | |
//!
//! Errors are sent for quiet opcodes too. The lengths memcached accepts per opcode:
//!
//! | opcode | extras | key | value |
//! | --- | --- | --- | --- |
//! | `Get` `GetQ` `GetK` `GetKQ` `Delete` `DeleteQ` | 0 | 1..=250 | none |
//! | `Set` `Add` `Replace` (+ quiet) | 8: flags, exptime | 1..=250 | any |
//! | `Append` `Prepend` (+ quiet) | 0 | 1..=250 | any |
//! | `Increment` `Decrement` (+ quiet) | 20: delta, initial, exptime | 1..=250 | none |
//! | `Touch` `Gat` `GatQ` `GatK` `GatKQ` | 4: exptime | 1..=250 | none (not checked by memcached) |
//! | `Flush` `FlushQ` | 0, or 4: exptime | 0 | none |
//! | `Stat` | 0 | 0..=250: the group | none (not checked by memcached) |
//! | `Noop` `Version` `Quit` `QuitQ` `SaslListMechs` | 0 | 0 | none |
//! | `SaslAuth` `SaslStep` | 0 | 1..=250 | any |
//!
//! What memcached answers to valid requests (the constructors on [`BinaryResponse`]):
//!
//! | request | memcached's reply |
//! | --- | --- |
//! | get family hit | extras = 4-byte flags, the key for `GetK`/`GetKQ`/`GatK`/`GatKQ`, the value; the item's cas ([`BinaryResponse::hit`]) |
//! | `Touch` hit | extras = flags, no value, the item's cas (the old spec says no extras) |
//! | `Get`, `Gat`, `Touch` miss | `0x01` "Not found" |
//! | `GetK`, `GatK` miss | `0x01` with the key and no text ([`BinaryResponse::miss`]) |
//! | `Set`/`Add`/`Replace`/`Append`/`Prepend` stored | empty, the new item's cas ([`BinaryResponse::stored`]) |
//! | `Add` on a present key / `Replace` on a missing one | `0x02` "Data exists for key." / `0x01` "Not found" |
//! | a cas in the header of `Set`, `Add`, `Replace`: mismatch / missing key | `0x02` / `0x01`: `Add` with a cas is a compare-and-swap, not an add |
//! | `Append`/`Prepend` on a missing key / cas mismatch | `0x05` "Not stored." / `0x02` |
//! | `Delete` hit / miss / cas mismatch | empty with cas 0 / `0x01` / `0x02` |
//! | `Increment`/`Decrement` | the new value, 8 bytes big-endian, and the item's cas; `Decrement` stops at 0 |
//! | … on a missing key | creates it with `initial` and answers `initial`; with exptime `0xffffffff`, `0x01` "Not found" |
//! | … on a value that is not a number | `0x06` "Non-numeric server-side value for incr or decr" |
//! | quiet opcodes | `GetQ` `GetKQ` `GatQ` `GatKQ` leave out misses; the other quiet ones leave out success ([`suppressed`]) |
//! | `Noop` | empty success (memcached flushes its pipeline) |
//! | `Version` | the version text as the value |
//! | `Stat` | one reply per stat (key = name, value = text, cas 0), then an empty reply; `settings`, `items`, `slabs` … as in text; an unknown group `0x01` "Not found"; `reset` and `detail on\|off` only the empty reply |
//! | `Flush` (with or without exptime) | empty success |
//! | `Quit` / `QuitQ` | empty success, then close / close without a reply |
//!
//! # Where memcord deliberately differs
//!
//! * **Unknown opcodes swallow exactly their body.** memcached reads key and extras, then
//!   swallows `total body` more bytes, so an unknown request with a key or extras eats that
//!   many bytes of the next request: libmemcached's `Verbosity` (4 bytes of extras) costs the
//!   following request its first 4 bytes, and the connection usually dies on a bad magic.
//!   memcord drops the frame and nothing else.
//! * **A value on `Stat` or the `Touch`/`Gat` family** is served by memcached, which then reads
//!   the value as the next frame (usually a bad magic: it closes, dropping the reply it had
//!   queued). memcord answers "Invalid arguments" and closes, as memcached does for a value on
//!   every other opcode that takes none.
//! * **Item size**: memcached's limit includes its item header and the key; memcord compares
//!   the value with [`Limits::max_value_len`](crate::Limits::max_value_len) alone (as the text codec).
//! * **Verdicts come from the header alone** (a bad magic from the first byte); memcached waits
//!   for the extras and key (the whole header) first. Only the timing differs.
//! * **Bodies near 4 GiB**: memcached computes the value length as a C `int`, which goes
//!   negative for a total body above 2^31 + key + extras (it then swallows nothing); memcord
//!   swallows what was announced.
//! * **An oversized `Set`** unlinks the key in memcached; the codec reports the rejection and
//!   leaves the unlink to the server, as the text codec does.
//!
//! Keys may hold any byte (spaces, control bytes, NUL), as in memcached: a server that hands
//! them to a store speaking the text protocol must refuse the ones text cannot carry.

mod header;
mod opcode;
mod parse;
mod reply;
mod request;
mod response;

#[cfg(test)]
mod tests;

pub use header::{Header, HEADER_LEN, REQUEST_MAGIC, RESPONSE_MAGIC};
pub use opcode::{suppressed, Opcode, Status, OPCODES};
pub use parse::{parse_request, BinaryParse};
pub use reply::{parse_response, BinaryResponseParse};
pub use request::{compose_request, BinaryRequest, Extras, ARITH_NO_CREATE};
pub use response::{compose_response, BinaryResponse};
