//! The memcache protocols: pure codecs, both directions, no I/O. This module is the text
//! protocol (classic commands, and the meta commands of [`meta`], which share its connections);
//! [`binary`] is the binary protocol.
//!
//! * server side: [`parse_request`] turns bytes into a [`Request`]; [`Response::compose`]
//!   turns a reply into bytes;
//! * client side (the memcached adapter, `check`, `bench`, the console): [`Request::compose`]
//!   and [`parse_response`].
//!
//! Parsing keeps "not enough bytes yet" ([`ParseOutcome::Incomplete`]) apart from "invalid"
//! ([`ParseOutcome::Invalid`], which carries memcached's exact error reply and what the
//! connection must do next). memcache error replies are values, never Rust errors. The parser
//! never panics, and allocates only for keys and values it has accepted: sizes announced by the
//! peer are checked against [`Limits`] first.
//!
//! # The rules, as measured against memcached 1.6.18
//!
//! Every row was observed on the real binary (`tests/memcached_reference.rs` replays the shared
//! table in `tests/common/cases.rs` against it). `CE` is `CLIENT_ERROR`, `SE` `SERVER_ERROR`;
//! "silenced" means the reply is dropped when the line's last word is `noreply`.
//!
//! | input | memcached's reply | after |
//! | --- | --- | --- |
//! | unknown word, empty line, upper-case `GET`, `MG`, `mx` … | `ERROR` | continue |
//! | wrong word count (`get`, `set k 0 0`, `incr k`, `verbosity`, `delete`, `touch k 1 2 3`, `set` with 7 words …) | `ERROR` (never silenced: counted before `noreply` is looked at) | continue; a `set`'s data line is then read as a command (`ERROR` again) |
//! | line end | `\n` alone is accepted, one `\r` before it stripped; leading and repeated spaces ignored | |
//! | key > 250 bytes (any command) | `CE bad command line format` (silenced) | continue; a storage command's data line is read as a command |
//! | `set` flags/exptime/bytes not a number, flags or bytes negative, `+5` | bad: `CE bad command line format` (silenced); `+5` and `-0` are accepted | continue (data line read as a command, so `ERROR` follows) |
//! | `set` bytes > INT_MAX-2 | `CE bad command line format` | continue |
//! | `set` bytes > item size max (`-I`) | `SE object too large for cache` (silenced), sent after the block is swallowed | swallow `bytes + 2`; an existing `set` key is unlinked (not for `add`/`replace`/`append`/`prepend`/`cas`); the parser says so with [`Request::Oversized`] |
//! | data block not ending in `\r\n` | `CE bad data chunk` (silenced) | the `bytes + 2` are consumed; what follows is read as commands |
//! | set negative exptime | `STORED`, item immediately invisible | |
//! | extra 6th `set` word that is not `noreply` | ignored (`STORED`) | |
//! | `cas` unique not a number / negative / ≥ 2^64; `cas` without unique | `CE bad command line format`; `ERROR` | continue |
//! | `delete k 0`, `delete k noreply`, `delete k 0 noreply` | `DELETED`/`NOT_FOUND` | |
//! | `delete k 5`, `delete k 0 0`, `delete k noreply 0` | `CE bad command line format.  Usage: delete <key> [noreply]` (silenced when last word is `noreply`) | continue |
//! | `incr k abc`, `incr k -1`, delta ≥ 2^64 | `CE invalid numeric delta argument` (silenced) | |
//! | incr/decr on a value that is not a decimal ≤ 20 digits (also empty, `-1`) | `CE cannot increment or decrement non-numeric value` | store's reply |
//! | incr/decr on a missing key | `NOT_FOUND` | |
//! | incr past 2^64-1 | wraps (`18446744073709551615 + 2 = 1`) | |
//! | decr below 0 | `0` | |
//! | `incr k 1 foo` (4th word not `noreply`) | ignored, normal reply | |
//! | `touch k abc` | `CE invalid exptime argument` (silenced) | |
//! | `gat abc k`, `gat k` (exptime missing) | `CE invalid exptime argument` (never silenced) | |
//! | `gat 10` (no key) | `END` | |
//! | `gat`/`get`/`gets`/`gats` without arguments | `ERROR` | |
//! | `noreply` on a retrieval command | read as a key | |
//! | `flush_all`, `flush_all 0`, `flush_all -1` (= now), `flush_all 0 0` (2nd word ignored) | `OK` | |
//! | `flush_all abc` | `CE invalid exptime argument` (silenced) | |
//! | `flush_all 1 2 3` | `ERROR` | |
//! | `verbosity 1`, `verbosity 1 2` | `OK` | |
//! | `verbosity abc`, `verbosity -1` | `CE bad command line format` (silenced; `verbosity noreply` is silent) | |
//! | `stats <unknown>` | `ERROR` (`stats` groups are the server's business) | |
//! | `stats detail`, `stats detail foo` | `CE usage: stats detail on\|off\|dump` | |
//! | `stats cachedump` with fewer than 2 arguments; non-numeric; class ≥ 64 | `CE bad command line`; `CE bad command line format`; `CE Illegal slab id` | |
//! | `cache_memlimit` without a number / wrong word count; < 8; > 10^9 | `ERROR`; `MEMLIMIT_TOO_SMALL cannot set maxbytes to less than 8m`; `MEMLIMIT_ADJUST_FAILED input value is megabytes not bytes` (all silenced) | |
//! | `lru_crawler crawl\|metadump` with a bad class list (0, ≥ 64, not a number) | `BADCLASS invalid class id` | |
//! | `lru_crawler sleep` > 1000000; `tocrawl`/`sleep` not a number; other words | `CE sleep must be one second or less`; `CE bad command line format`; `ERROR` | |
//! | `slabs automove 3`, `… x`, `… ratio` alone; `lru tune` pcts > 80 or factor ≤ 0 | `ERROR`, `CE bad command line format`, `ERROR`; `ERROR hot and warm pcts must not exceed 80`, `ERROR hot/warm age factors must be greater than 0` (silenced) | |
//! | `shutdown` without `-A` | `ERROR: shutdown not enabled` | with `-A`: no reply, the server stops |
//! | unknown command whose last word starts with `HTTP/` (`GET / HTTP/1.1`) | none | connection closed (not for words starting like a memcached command: `get / HTTP/1.1` is a `get`) |
//! | `version anything`, `quit anything` | extra words ignored | |
//! | line > 2048 bytes without `\n` (not `get `/`gets `) | connection closed, no reply | |
//! | multi-get with one bad key | only `CE bad command line format` (no `VALUE`s, no `END`) | |
//!
//! # Where memcord deliberately differs
//!
//! * **NUL, `\r` and `\n` in keys** are refused with `CE bad command line format`; memcached
//!   lets a stray `\r` through (it strips only the last one). Other control bytes are taken,
//!   as memcached does (memcaslap's keys are full of them).
//! * **Over-long lines** get `CLIENT_ERROR line too long` before the close (memcached closes
//!   silently), and the limit is applied to the line's length whether or not its `\n` has
//!   arrived, so the outcome never depends on how the bytes were split across reads (memcached
//!   only checks when 2048 bytes are buffered without a newline). `gat`/`gats` lines get the
//!   multi-get limit too (memcached extends it to `get`/`gets` only).
//! * **Numbers beyond 32 bits**: memcached parses flags, exptime and byte counts as C longs and
//!   then truncates them to 32 bits (`set k 4294967296 0 1` stores flags 0; `set k 0 0
//!   4294967296` reads a 0-byte block). memcord refuses flags and byte counts that do not fit
//!   (`CE bad command line format`) and keeps exptimes at 64 bits.
//! * **Item size**: memcached's limit includes its item header; memcord compares the value's
//!   length with [`Limits::max_value_len`] alone.
//! * The meta commands (`mg`, `ms`, `md`, `ma`, `mn`, `me`) follow their own table, in
//!   [`meta`].
//! * **Admin commands for features memcord lacks** (see [`admin`] and `server::admin`):
//!   `slabs reassign`, `lru mode`, `lru temp_ttl`, `watch`, `extstore` get memcached's answer
//!   for the feature turned off, where memcached 1.6.18 as built here answers `NOSPARE …`,
//!   `OK`, a log stream, `OK`.
//!
//! Artefacts kept out of the shared behaviour table because another implementation may
//! legitimately differ: cas id values, the `version` text, `stats` contents, decr's space
//! padding of a shrunk value (`decr 10 → 9` leaves `"9 "` stored), incr accepting `"1 2"` (a
//! number followed by a space), memcached dropping replies still queued in the same read when a
//! multi-get key is too long, and the unlinking of an existing key by an oversized `set`.

pub mod admin;
pub mod binary;
mod compose;
mod limits;
mod line;
pub mod meta;
mod parse;
mod reply;
mod request;
mod response;

#[cfg(test)]
mod tests;

pub use admin::{Admin, StoreAdmin};
pub use limits::Limits;
pub use parse::TOO_LARGE;
pub use parse::{parse_request, AfterError, ParseOutcome};
pub use reply::{parse_response, ResponseOutcome};
pub use request::{ArithOp, Level, Request, StoreOp};
pub use response::{Response, Value};

/// The version string memcord reports to `version` (numeric first, so clients can parse it).
pub const VERSION: &str = concat!("1.6.0-memcord-", env!("CARGO_PKG_VERSION"));
