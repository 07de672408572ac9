//! The shared behaviour table: memcached's exact replies, byte for byte, for every command and
//! every error path. `tests/memcached_reference.rs` proves the table against the real memcached;
//! the server tests replay it against `memcord peer` (embedded and memcached-backed stores).
//!
//! # Running it
//!
//! [`run_cases`]`(addr)` runs every case, each over its own fresh `std::net::TcpStream` (blocking
//! I/O with read deadlines, no runtime needed, so it can be called from sync and `#[tokio::test]`
//! code alike, the latter via `spawn_blocking`), and panics with a report of every failing case,
//! step and the expected and received bytes, escaped. [`run_cases_where`] runs a subset.
//!
//! # Case format
//!
//! A [`Case`] is a name and a list of [`Step`]s; a step sends bytes (in one write, or split over
//! several writes with short pauses) and expects an exact reply. Patterns in both:
//!
//! * `{p}`: the case's own key prefix ([`PREFIX_LEN`] bytes, unique per case and per run), so
//!   cases never see each other's keys and the table can run twice against one server;
//! * `{cas:NAME}` in an expected reply captures a decimal number (a `gets` cas id); in a later
//!   request it is replaced by the captured number;
//! * `{any}` in an expected reply matches one or more bytes up to the end of the line (version
//!   text).
//!
//! After the last step each case sends `get {p}__end` and expects a bare `END`, so a reply that
//! should not exist (a `noreply` that answered anyway) fails the case that caused it. A step
//! marked [`Step::closes`] expects the server to close the connection after its reply.
//!
//! # Left out on purpose
//!
//! Things that legitimately differ between implementations: cas id values, `version` text,
//! `stats` contents, meta commands (`mn` answers `MN` in memcached, memcord has no meta protocol
//! yet), decr's space padding (`decr` 10 → 9 leaves `"9 "` stored in memcached, so no case reads a
//! value back after a shrinking decr), incr on `"1 2"`, over-long lines (memcached closes
//! silently; memcord says `CLIENT_ERROR line too long` first), NUL or `\r` in keys (memcord
//! refuses them), numbers beyond 32 bits (memcached truncates), memcached discarding replies
//! queued in the same read when a multi-get key is too long (every step here waits for its
//! reply, so queues are empty), and the admin replies that describe a server rather than
//! a protocol (`stats items|slabs|sizes|conns`, `stats detail dump`, metadump contents,
//! `slabs reassign`, `lru mode`, `watch`, `extstore <setting>`: see `tests/server.rs`).

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Length of the per-case key prefix that `{p}` expands to.
pub const PREFIX_LEN: usize = 12;
/// How long one step may wait for its reply (the oversized-value case moves ~1 MB).
const STEP_DEADLINE: Duration = Duration::from_secs(10);
/// Pause between the writes of a split step, so they arrive as separate segments.
const SEGMENT_PAUSE: Duration = Duration::from_millis(25);
/// A value above both memcached's `-I 1m` and memcord's default 1 MiB limit.
pub const OVERSIZED: usize = 1_100_000;

/// One named behaviour: steps over one fresh connection.
pub struct Case {
    /// Unique name, reported on failure.
    pub name: &'static str,
    /// What to send and what must come back, in order.
    pub steps: Vec<Step>,
}

/// One exchange: bytes out (one or more writes), the exact reply back.
pub struct Step {
    /// Writes, in order (usually one).
    pub send: Vec<Vec<u8>>,
    /// The exact reply pattern.
    pub expect: Vec<u8>,
    /// The server must close the connection after the reply.
    pub closes: bool,
}

impl Step {
    /// A step that sends `send` in one write and expects `expect`.
    pub fn new(send: impl AsRef<[u8]>, expect: impl AsRef<[u8]>) -> Self {
        Step {
            send: vec![send.as_ref().to_vec()],
            expect: expect.as_ref().to_vec(),
            closes: false,
        }
    }

    /// A step whose request is sent as several writes with short pauses between them.
    pub fn split(segments: &[&str], expect: impl AsRef<[u8]>) -> Self {
        Step {
            send: segments.iter().map(|s| s.as_bytes().to_vec()).collect(),
            expect: expect.as_ref().to_vec(),
            closes: false,
        }
    }

    /// This step's reply is followed by the server closing the connection.
    pub fn closes(mut self) -> Self {
        self.closes = true;
        self
    }
}

fn case(name: &'static str, steps: Vec<Step>) -> Case {
    Case { name, steps }
}

fn s(send: impl AsRef<[u8]>, expect: impl AsRef<[u8]>) -> Step {
    Step::new(send, expect)
}

/// A key of exactly `len` bytes that starts with the case prefix.
fn long_key(len: usize) -> String {
    format!("{{p}}{}", "k".repeat(len - PREFIX_LEN))
}

const FORMAT: &str = "CLIENT_ERROR bad command line format\r\n";
const FORMAT_THEN_DATA: &str = "CLIENT_ERROR bad command line format\r\nERROR\r\n";
const DELETE_USAGE: &str =
    "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n";
const DELTA: &str = "CLIENT_ERROR invalid numeric delta argument\r\n";
const EXPTIME: &str = "CLIENT_ERROR invalid exptime argument\r\n";
const NON_NUMERIC: &str = "CLIENT_ERROR cannot increment or decrement non-numeric value\r\n";
const CHUNK: &str = "CLIENT_ERROR bad data chunk\r\n";
const TOO_LARGE: &str = "SERVER_ERROR object too large for cache\r\n";
const DETAIL_USAGE: &str = "CLIENT_ERROR usage: stats detail on|off|dump\r\n";
const BADCLASS: &str = "BADCLASS invalid class id\r\n";
const SHUTDOWN_OFF: &str = "ERROR: shutdown not enabled\r\n";

/// `<command line>` then an oversized block, then `get {p}k`.
fn oversized_then_get(line: &str) -> Vec<u8> {
    let mut request = line.as_bytes().to_vec();
    request.extend_from_slice(&vec![b'v'; OVERSIZED]);
    request.extend_from_slice(b"\r\nget {p}k\r\n");
    request
}

/// The whole table.
pub fn cases() -> Vec<Case> {
    let k251 = long_key(251);
    let k250 = long_key(250);
    let mut oversized = format!("set {{p}}big 0 0 {OVERSIZED}\r\n").into_bytes();
    // The swallowed block is full of commands: if it were parsed, their replies would show.
    oversized.extend(b"get swallowed\r\n".iter().cycle().take(OVERSIZED));
    oversized.extend_from_slice(b"\r\nget {p}big\r\n");
    let mut oversized_noreply = format!("set {{p}}big 0 0 {OVERSIZED} noreply\r\n").into_bytes();
    oversized_noreply.extend(b"version\r\n".iter().cycle().take(OVERSIZED));
    oversized_noreply.extend_from_slice(b"\r\nget {p}big\r\n");
    let binary: &[u8] = b"a\r\nEND\r\n\0z\r";
    let oversized_over_existing = oversized_then_get(&format!("set {{p}}k 0 0 {OVERSIZED}\r\n"));
    let oversized_noreply_over_existing =
        oversized_then_get(&format!("set {{p}}k 0 0 {OVERSIZED} noreply\r\n"));
    let oversized_append = oversized_then_get(&format!("append {{p}}k 0 0 {OVERSIZED}\r\n"));

    vec![
        // ---- storage ----
        case(
            "set_then_get",
            vec![
                s("set {p}k 5 0 5\r\nhello\r\n", "STORED\r\n"),
                s("get {p}k\r\n", "VALUE {p}k 5 5\r\nhello\r\nEND\r\n"),
                s("set {p}k 6 0 3\r\nbye\r\n", "STORED\r\n"),
                s("get {p}k\r\n", "VALUE {p}k 6 3\r\nbye\r\nEND\r\n"),
            ],
        ),
        case(
            "get_miss",
            vec![s("get {p}missing\r\n", "END\r\n"), s("gets {p}missing\r\n", "END\r\n")],
        ),
        case(
            "add",
            vec![
                s("add {p}k 0 0 1\r\na\r\n", "STORED\r\n"),
                s("add {p}k 0 0 1\r\nb\r\n", "NOT_STORED\r\n"),
                s("get {p}k\r\n", "VALUE {p}k 0 1\r\na\r\nEND\r\n"),
            ],
        ),
        case(
            "replace",
            vec![
                s("replace {p}k 0 0 1\r\na\r\n", "NOT_STORED\r\n"),
                s("get {p}k\r\n", "END\r\n"),
                s("set {p}k 0 0 1\r\na\r\n", "STORED\r\n"),
                s("replace {p}k 7 0 1\r\nb\r\n", "STORED\r\n"),
                s("get {p}k\r\n", "VALUE {p}k 7 1\r\nb\r\nEND\r\n"),
            ],
        ),
        case(
            "append_prepend_keep_flags",
            vec![
                s("set {p}k 5 0 1\r\na\r\n", "STORED\r\n"),
                s("append {p}k 9 0 1\r\nb\r\n", "STORED\r\n"),
                s("prepend {p}k 9 0 1\r\nc\r\n", "STORED\r\n"),
                s("get {p}k\r\n", "VALUE {p}k 5 3\r\ncab\r\nEND\r\n"),
                s("append {p}nope 0 0 1\r\nx\r\n", "NOT_STORED\r\n"),
                s("prepend {p}nope 0 0 1\r\nx\r\n", "NOT_STORED\r\n"),
                s("get {p}nope\r\n", "END\r\n"),
            ],
        ),
        case(
            "empty_value",
            vec![
                s("set {p}k 0 0 0\r\n\r\n", "STORED\r\n"),
                s("get {p}k\r\n", "VALUE {p}k 0 0\r\n\r\nEND\r\n"),
            ],
        ),
        case("binary_safe_value", {
            let mut set = b"set {p}k 0 0 11\r\n".to_vec();
            set.extend_from_slice(binary);
            set.extend_from_slice(b"\r\n");
            let mut reply = b"VALUE {p}k 0 11\r\n".to_vec();
            reply.extend_from_slice(binary);
            reply.extend_from_slice(b"\r\nEND\r\n");
            vec![s(set, "STORED\r\n"), s("get {p}k\r\n", reply)]
        }),
        case(
            "flags_range_and_signs",
            vec![
                s("set {p}k 4294967295 0 1\r\na\r\n", "STORED\r\n"),
                s("get {p}k\r\n", "VALUE {p}k 4294967295 1\r\na\r\nEND\r\n"),
                s("set {p}k +5 +0 +1\r\nb\r\n", "STORED\r\n"),
                s("get {p}k\r\n", "VALUE {p}k 5 1\r\nb\r\nEND\r\n"),
                s("set {p}k -0 0 1\r\nc\r\n", "STORED\r\n"),
                s("get {p}k\r\n", "VALUE {p}k 0 1\r\nc\r\nEND\r\n"),
            ],
        ),
        case(
            "negative_exptime_is_expired",
            vec![
                s("set {p}k 0 -1 1\r\na\r\n", "STORED\r\n"),
                s("get {p}k\r\n", "END\r\n"),
            ],
        ),
        case(
            "set_sixth_word_not_noreply_is_ignored",
            vec![
                s("set {p}k 0 0 1 extra\r\na\r\n", "STORED\r\n"),
                s("get {p}k\r\n", "VALUE {p}k 0 1\r\na\r\nEND\r\n"),
            ],
        ),
        case(
            "key_of_250_bytes",
            vec![
                s(format!("set {k250} 0 0 1\r\na\r\n"), "STORED\r\n"),
                s(
                    format!("get {k250}\r\n"),
                    format!("VALUE {k250} 0 1\r\na\r\nEND\r\n"),
                ),
            ],
        ),
        case(
            "multi_get_hits_and_misses",
            vec![
                s("set {p}a 1 0 1\r\nA\r\nset {p}b 2 0 2\r\nBB\r\n", "STORED\r\nSTORED\r\n"),
                s(
                    "get {p}a {p}miss {p}b {p}a\r\n",
                    "VALUE {p}a 1 1\r\nA\r\nVALUE {p}b 2 2\r\nBB\r\nVALUE {p}a 1 1\r\nA\r\nEND\r\n",
                ),
                s(
                    "gets {p}miss {p}b\r\n",
                    "VALUE {p}b 2 2 {cas:b}\r\nBB\r\nEND\r\n",
                ),
            ],
        ),
        case(
            "get_with_many_keys",
            vec![s(
                {
                    let keys: Vec<String> = (0..40).map(|i| format!("{{p}}m{i}")).collect();
                    format!("get {}\r\n", keys.join(" "))
                },
                "END\r\n",
            )],
        ),
        case(
            "noreply_is_a_key_for_get",
            vec![
                s("set {p}k 0 0 1\r\na\r\n", "STORED\r\n"),
                s("get {p}k noreply\r\n", "VALUE {p}k 0 1\r\na\r\nEND\r\n"),
            ],
        ),
        // ---- cas ----
        case(
            "cas_flow",
            vec![
                s("set {p}k 0 0 1\r\na\r\n", "STORED\r\n"),
                s("gets {p}k\r\n", "VALUE {p}k 0 1 {cas:one}\r\na\r\nEND\r\n"),
                s("cas {p}k 3 0 1 {cas:one}\r\nb\r\n", "STORED\r\n"),
                s("cas {p}k 0 0 1 {cas:one}\r\nc\r\n", "EXISTS\r\n"),
                s("gets {p}k\r\n", "VALUE {p}k 3 1 {cas:two}\r\nb\r\nEND\r\n"),
                s(
                    "cas {p}k 0 0 1 {cas:two} noreply\r\nd\r\nget {p}k\r\n",
                    "VALUE {p}k 0 1\r\nd\r\nEND\r\n",
                ),
                s("cas {p}missing 0 0 1 1\r\nx\r\n", "NOT_FOUND\r\n"),
                s("cas {p}k 0 0 1 987654321987654 extra\r\nx\r\n", "EXISTS\r\n"),
            ],
        ),
        case(
            "cas_bad_unique",
            vec![
                s("cas {p}k 0 0 1 abc\r\nx\r\n", FORMAT_THEN_DATA),
                s("cas {p}k 0 0 1 -1\r\nx\r\n", FORMAT_THEN_DATA),
                s("cas {p}k 0 0 1 18446744073709551616\r\nx\r\n", FORMAT_THEN_DATA),
                s("cas {p}k 0 0 1\r\nx\r\n", "ERROR\r\nERROR\r\n"),
                s("cas {p}k 0 0 1 abc noreply\r\nx\r\n", "ERROR\r\n"),
            ],
        ),
        // ---- storage errors ----
        case(
            "set_bad_numbers",
            vec![
                s("set {p}k a 0 1\r\nx\r\n", FORMAT_THEN_DATA),
                s("set {p}k 0 a 1\r\nx\r\n", FORMAT_THEN_DATA),
                s("set {p}k 0 0 a\r\nx\r\n", FORMAT_THEN_DATA),
                s("set {p}k -1 0 1\r\nx\r\n", FORMAT_THEN_DATA),
                s("set {p}k 0 0 -1\r\nx\r\n", FORMAT_THEN_DATA),
                s("set {p}k 0 0 1x\r\nx\r\n", FORMAT_THEN_DATA),
                s("set {p}k 0 0 99999999999999999999\r\nx\r\n", FORMAT_THEN_DATA),
                s("set {p}k 0 0 2147483646\r\nx\r\n", FORMAT_THEN_DATA),
                s("get {p}k\r\n", "END\r\n"),
            ],
        ),
        case(
            "set_bad_numbers_noreply",
            vec![
                s("set {p}k a 0 1 noreply\r\nx\r\n", "ERROR\r\n"),
                s("set {p}k 0 0 noreply\r\n", ""),
                s("get {p}k\r\n", "END\r\n"),
            ],
        ),
        case(
            "storage_wrong_word_count",
            vec![
                s("set\r\n", "ERROR\r\n"),
                s("set {p}k\r\n", "ERROR\r\n"),
                s("set {p}k 0 0\r\nx\r\n", "ERROR\r\nERROR\r\n"),
                s("set {p}k 0 0 1 noreply extra\r\nx\r\n", "ERROR\r\nERROR\r\n"),
                s("set {p}k 0 0 1 2 3 4 5 6 7 8 9\r\nx\r\n", "ERROR\r\nERROR\r\n"),
                s("add {p}k 0 0\r\n", "ERROR\r\n"),
                s("replace {p}k\r\n", "ERROR\r\n"),
                s("append {p}k 0\r\n", "ERROR\r\n"),
                s("prepend\r\n", "ERROR\r\n"),
                s("get {p}k\r\n", "END\r\n"),
            ],
        ),
        case(
            "bad_data_chunk",
            vec![
                s("set {p}k 0 0 1\r\nabc\r\n", format!("{CHUNK}ERROR\r\n")),
                s("get {p}k\r\n", "END\r\n"),
                // The block is exactly `bytes + 2` long; what follows is read as commands.
                s("set {p}k 0 0 2\r\nab\nget {p}k\r\n", format!("{CHUNK}ERROR\r\n")),
                s("set {p}k 0 0 1 noreply\r\nabc\r\n", "ERROR\r\n"),
                s("set {p}k 0 0 1\r\nab", ""),
                s("\r\nversion\r\n", format!("{CHUNK}ERROR\r\nVERSION {{any}}\r\n")),
                s("get {p}k\r\n", "END\r\n"),
            ],
        ),
        case(
            "oversized_value_is_swallowed",
            vec![
                s(oversized, format!("{TOO_LARGE}END\r\n")),
                s(oversized_noreply, "END\r\n"),
            ],
        ),
        // ---- keys ----
        case(
            "key_too_long",
            vec![
                s(format!("get {k251}\r\n"), FORMAT),
                s(format!("gets {k251}\r\n"), FORMAT),
                s(format!("set {k251} 0 0 1\r\nx\r\n"), FORMAT_THEN_DATA),
                s(format!("set {k251} 0 0 1 noreply\r\nx\r\n"), "ERROR\r\n"),
                s(format!("delete {k251}\r\n"), FORMAT),
                s(format!("delete {k251} noreply\r\n"), ""),
                s(format!("incr {k251} 1\r\n"), FORMAT),
                s(format!("decr {k251} x\r\n"), FORMAT),
                s(format!("touch {k251} 1\r\n"), FORMAT),
                s(format!("gat 1 {k251}\r\n"), FORMAT),
                s(format!("get {k251} noreply\r\n"), FORMAT),
            ],
        ),
        case(
            "multi_get_with_one_key_too_long",
            vec![
                s("set {p}a 0 0 1\r\na\r\n", "STORED\r\n"),
                s(format!("get {{p}}a {k251} {{p}}b\r\n"), FORMAT),
                s("get {p}a\r\n", "VALUE {p}a 0 1\r\na\r\nEND\r\n"),
            ],
        ),
        // ---- delete ----
        case(
            "delete",
            vec![
                s("set {p}k 0 0 1\r\na\r\n", "STORED\r\n"),
                s("delete {p}k\r\n", "DELETED\r\n"),
                s("delete {p}k\r\n", "NOT_FOUND\r\n"),
                s("set {p}k 0 0 1\r\na\r\n", "STORED\r\n"),
                s("delete {p}k 0\r\n", "DELETED\r\n"),
                s("delete {p}k 0\r\n", "NOT_FOUND\r\n"),
                s("delete noreply\r\n", "NOT_FOUND\r\n"),
            ],
        ),
        case(
            "delete_bad_arguments",
            vec![
                s("set {p}k 0 0 1\r\na\r\n", "STORED\r\n"),
                s("delete {p}k 5\r\n", DELETE_USAGE),
                s("delete {p}k 0 0\r\n", DELETE_USAGE),
                s("delete {p}k noreply 0\r\n", DELETE_USAGE),
                s("delete {p}k 5 noreply\r\n", ""),
                s("delete\r\n", "ERROR\r\n"),
                s("delete {p}k a b c\r\n", "ERROR\r\n"),
                s("get {p}k\r\n", "VALUE {p}k 0 1\r\na\r\nEND\r\n"),
            ],
        ),
        // ---- incr / decr ----
        case(
            "incr_decr",
            vec![
                s("set {p}n 0 0 2\r\n10\r\n", "STORED\r\n"),
                s("incr {p}n 5\r\n", "15\r\n"),
                s("get {p}n\r\n", "VALUE {p}n 0 2\r\n15\r\nEND\r\n"),
                s("incr {p}n 85\r\n", "100\r\n"),
                s("get {p}n\r\n", "VALUE {p}n 0 3\r\n100\r\nEND\r\n"),
                s("decr {p}n 1\r\n", "99\r\n"),
                s("decr {p}n 1000\r\n", "0\r\n"),
                s("incr {p}n 1 foo\r\n", "1\r\n"),
                s("decr {p}n +1\r\n", "0\r\n"),
                s("incr {p}missing 1\r\n", "NOT_FOUND\r\n"),
                s("decr {p}missing 1\r\n", "NOT_FOUND\r\n"),
            ],
        ),
        case(
            "incr_wraps_at_2_64",
            vec![
                s("set {p}n 0 0 20\r\n18446744073709551615\r\n", "STORED\r\n"),
                s("incr {p}n 2\r\n", "1\r\n"),
                s("set {p}n 0 0 1\r\n1\r\n", "STORED\r\n"),
                s("incr {p}n 18446744073709551615\r\n", "0\r\n"),
                s("set {p}m 0 0 1\r\n1\r\n", "STORED\r\n"),
                s("incr {p}m 9223372036854775808\r\n", "9223372036854775809\r\n"),
            ],
        ),
        case(
            "incr_bad_delta",
            vec![
                s("set {p}n 0 0 1\r\n5\r\n", "STORED\r\n"),
                s("incr {p}n abc\r\n", DELTA),
                s("incr {p}n -1\r\n", DELTA),
                s("incr {p}n 18446744073709551616\r\n", DELTA),
                s("decr {p}n x\r\n", DELTA),
                s("incr {p}n abc noreply\r\n", ""),
                s("incr {p}n noreply\r\n", ""),
                s("incr {p}n\r\n", "ERROR\r\n"),
                s("incr\r\n", "ERROR\r\n"),
                s("incr {p}n 1 noreply x\r\n", "ERROR\r\n"),
                s("get {p}n\r\n", "VALUE {p}n 0 1\r\n5\r\nEND\r\n"),
            ],
        ),
        case(
            "incr_non_numeric_value",
            vec![
                s("set {p}n 0 0 1\r\nx\r\n", "STORED\r\n"),
                s("incr {p}n 1\r\n", NON_NUMERIC),
                s("decr {p}n 1\r\n", NON_NUMERIC),
                s("set {p}n 0 0 0\r\n\r\n", "STORED\r\n"),
                s("incr {p}n 1\r\n", NON_NUMERIC),
                s("set {p}n 0 0 2\r\n-1\r\n", "STORED\r\n"),
                s("incr {p}n 1\r\n", NON_NUMERIC),
                s("set {p}n 0 0 21\r\n184467440737095516150\r\n", "STORED\r\n"),
                s("incr {p}n 1\r\n", NON_NUMERIC),
                s("set {p}n 0 0 20\r\n18446744073709551616\r\n", "STORED\r\n"),
                s("incr {p}n 1\r\n", NON_NUMERIC),
            ],
        ),
        // ---- touch / gat ----
        case(
            "touch",
            vec![
                s("set {p}k 0 0 1\r\na\r\n", "STORED\r\n"),
                s("touch {p}k 100\r\n", "TOUCHED\r\n"),
                s("touch {p}missing 100\r\n", "NOT_FOUND\r\n"),
                s("touch {p}k 1000 foo\r\n", "TOUCHED\r\n"),
                s("touch {p}k abc\r\n", EXPTIME),
                s("touch {p}k x noreply\r\n", ""),
                s("touch {p}k\r\n", "ERROR\r\n"),
                s("touch {p}k 1 2 3\r\n", "ERROR\r\n"),
                s("get {p}k\r\n", "VALUE {p}k 0 1\r\na\r\nEND\r\n"),
                s("touch {p}k -1\r\n", "TOUCHED\r\n"),
                s("get {p}k\r\n", "END\r\n"),
            ],
        ),
        case(
            "gat_gats",
            vec![
                s("set {p}k 3 0 1\r\na\r\n", "STORED\r\n"),
                s("gat 100 {p}k\r\n", "VALUE {p}k 3 1\r\na\r\nEND\r\n"),
                s(
                    "gats 100 {p}k {p}missing\r\n",
                    "VALUE {p}k 3 1 {cas:c}\r\na\r\nEND\r\n",
                ),
                s("gat 100 {p}missing\r\n", "END\r\n"),
                s("gat 100\r\n", "END\r\n"),
                s("gat 100 {p}k noreply\r\n", "VALUE {p}k 3 1\r\na\r\nEND\r\n"),
                s("gat -1 {p}k\r\n", "VALUE {p}k 3 1\r\na\r\nEND\r\n"),
                s("get {p}k\r\n", "END\r\n"),
            ],
        ),
        case(
            "gat_errors",
            vec![
                s("gat\r\n", "ERROR\r\n"),
                s("gats\r\n", "ERROR\r\n"),
                s("gat {p}k\r\n", EXPTIME),
                s("gat abc {p}k\r\n", EXPTIME),
                s("gats abc {p}k noreply\r\n", EXPTIME),
            ],
        ),
        // ---- noreply: every storage-ish command, each proved silent by the next reply ----
        case(
            "noreply_everywhere",
            vec![
                s(
                    "set {p}k 0 0 1 noreply\r\n1\r\nget {p}k\r\n",
                    "VALUE {p}k 0 1\r\n1\r\nEND\r\n",
                ),
                s(
                    "add {p}k 0 0 1 noreply\r\n2\r\nadd {p}j 0 0 1 noreply\r\n2\r\nget {p}k {p}j\r\n",
                    "VALUE {p}k 0 1\r\n1\r\nVALUE {p}j 0 1\r\n2\r\nEND\r\n",
                ),
                s(
                    "replace {p}k 0 0 1 noreply\r\n3\r\nreplace {p}x 0 0 1 noreply\r\n3\r\nget {p}k {p}x\r\n",
                    "VALUE {p}k 0 1\r\n3\r\nEND\r\n",
                ),
                s(
                    "append {p}k 0 0 1 noreply\r\n4\r\nprepend {p}k 0 0 1 noreply\r\n2\r\nget {p}k\r\n",
                    "VALUE {p}k 0 3\r\n234\r\nEND\r\n",
                ),
                s(
                    "incr {p}k 10 noreply\r\ndecr {p}k 4 noreply\r\nincr {p}x 1 noreply\r\nget {p}k\r\n",
                    "VALUE {p}k 0 3\r\n240\r\nEND\r\n",
                ),
                s(
                    "touch {p}k 100 noreply\r\ntouch {p}x 100 noreply\r\nget {p}k\r\n",
                    "VALUE {p}k 0 3\r\n240\r\nEND\r\n",
                ),
                s(
                    "delete {p}k noreply\r\ndelete {p}k noreply\r\ndelete {p}j 0 noreply\r\nget {p}k {p}j\r\n",
                    "END\r\n",
                ),
                s("verbosity 0 noreply\r\nget {p}k\r\n", "END\r\n"),
            ],
        ),
        // ---- pipelining and segmentation ----
        case(
            "pipelined_commands",
            vec![s(
                "set {p}a 0 0 1\r\n1\r\nget {p}a\r\nincr {p}a 2\r\nbogus\r\nappend {p}a 0 0 1\r\n0\r\n\
                 gets {p}none\r\ndelete {p}a\r\nget {p}a\r\ntouch {p}a 1\r\ndecr {p}a 1\r\n",
                "STORED\r\nVALUE {p}a 0 1\r\n1\r\nEND\r\n3\r\nERROR\r\nSTORED\r\nEND\r\n\
                 DELETED\r\nEND\r\nNOT_FOUND\r\nNOT_FOUND\r\n",
            )],
        ),
        case(
            "split_across_writes",
            vec![
                Step::split(
                    &["se", "t {p}k 0 0 5", "\r", "\nhel", "lo", "\r", "\n"],
                    "STORED\r\n",
                ),
                Step::split(&["get {p}", "k\r", "\n"], "VALUE {p}k 0 5\r\nhello\r\nEND\r\n"),
                Step::split(
                    &["get {p}k\r\nge", "t {p}k {p}", "k\r\n"],
                    "VALUE {p}k 0 5\r\nhello\r\nEND\r\nVALUE {p}k 0 5\r\nhello\r\nVALUE {p}k 0 5\r\nhello\r\nEND\r\n",
                ),
            ],
        ),
        case(
            "newline_only_line_endings",
            vec![
                s(
                    "set {p}k 0 0 2\nab\r\nget {p}k\n",
                    "STORED\r\nVALUE {p}k 0 2\r\nab\r\nEND\r\n",
                ),
                s("delete {p}k\nget {p}k\n", "DELETED\r\nEND\r\n"),
                // The data block itself must end in \r\n.
                s("set {p}k 0 0 2\nab\nget {p}k\n", format!("{CHUNK}ERROR\r\n")),
            ],
        ),
        case(
            "spaces_between_words",
            vec![
                s("set {p}k 0 0 1\r\na\r\n", "STORED\r\n"),
                s(
                    "   get  {p}k   {p}k \r\n",
                    "VALUE {p}k 0 1\r\na\r\nVALUE {p}k 0 1\r\na\r\nEND\r\n",
                ),
                s("incr  {p}k   1\r\n", NON_NUMERIC),
            ],
        ),
        // ---- other commands ----
        case(
            "unknown_commands",
            vec![
                s("foo\r\n", "ERROR\r\n"),
                s("\r\n", "ERROR\r\n"),
                s("\n", "ERROR\r\n"),
                s("GET {p}k\r\n", "ERROR\r\n"),
                s("g\r\n", "ERROR\r\n"),
                s("get\r\n", "ERROR\r\n"),
                s("get \r\n", "ERROR\r\n"),
                s("gets\r\n", "ERROR\r\n"),
                s("foo bar baz noreply\r\n", "ERROR\r\n"),
            ],
        ),
        case(
            "flush_all_now",
            vec![
                s("set {p}k 0 0 1\r\na\r\n", "STORED\r\n"),
                s("flush_all\r\n", "OK\r\n"),
                s("get {p}k\r\n", "END\r\n"),
                s("set {p}k 0 0 1\r\na\r\n", "STORED\r\n"),
                s("flush_all 0\r\n", "OK\r\n"),
                s("get {p}k\r\n", "END\r\n"),
                s("set {p}k 0 0 1\r\na\r\n", "STORED\r\n"),
                s("flush_all -1\r\n", "OK\r\n"),
                s("get {p}k\r\n", "END\r\n"),
                s("set {p}k 0 0 1\r\na\r\n", "STORED\r\n"),
                s("flush_all noreply\r\nget {p}k\r\n", "END\r\n"),
                s("set {p}k 0 0 1\r\na\r\n", "STORED\r\n"),
                s("flush_all 0 noreply\r\nget {p}k\r\n", "END\r\n"),
                s("flush_all 0 0\r\n", "OK\r\n"),
            ],
        ),
        case(
            "flush_all_errors",
            vec![
                s("set {p}k 0 0 1\r\na\r\n", "STORED\r\n"),
                s("flush_all abc\r\n", EXPTIME),
                s("flush_all abc noreply\r\n", ""),
                s("flush_all noreply 0\r\n", EXPTIME),
                s("flush_all 1 2 3\r\n", "ERROR\r\n"),
                s("get {p}k\r\n", "VALUE {p}k 0 1\r\na\r\nEND\r\n"),
            ],
        ),
        case(
            "flush_all_delayed_leaves_items_for_now",
            vec![
                s("set {p}k 0 0 1\r\na\r\n", "STORED\r\n"),
                s("flush_all 3600\r\n", "OK\r\n"),
                s("get {p}k\r\n", "VALUE {p}k 0 1\r\na\r\nEND\r\n"),
            ],
        ),
        case(
            "verbosity",
            vec![
                s("verbosity 0\r\n", "OK\r\n"),
                s("verbosity 0 2\r\n", "OK\r\n"),
                s("verbosity\r\n", "ERROR\r\n"),
                s("verbosity 1 2 3\r\n", "ERROR\r\n"),
                s("verbosity abc\r\n", FORMAT),
                s("verbosity -1\r\n", FORMAT),
                s("verbosity abc noreply\r\n", ""),
                s("verbosity noreply\r\n", ""),
                s("verbosity 0 noreply\r\n", ""),
            ],
        ),
        case(
            "version",
            vec![
                s("version\r\n", "VERSION {any}\r\n"),
                s("version please\r\n", "VERSION {any}\r\n"),
            ],
        ),
        case(
            "stats_groups",
            vec![
                s("stats nosuchgroup\r\n", "ERROR\r\n"),
                s("stats reset\r\n", "RESET\r\n"),
            ],
        ),
        // ---- admin commands ----
        case(
            "stats_detail_usage",
            vec![
                s("stats detail\r\n", DETAIL_USAGE),
                s("stats detail foo\r\n", DETAIL_USAGE),
                s("stats detail on\r\n", "OK\r\n"),
                s("stats detail off\r\n", "OK\r\n"),
                s("stats detail off on\r\n", "OK\r\n"),
            ],
        ),
        case(
            "stats_cachedump_arguments",
            vec![
                s("stats cachedump\r\n", "CLIENT_ERROR bad command line\r\n"),
                s("stats cachedump 1\r\n", "CLIENT_ERROR bad command line\r\n"),
                s("stats cachedump x 1\r\n", FORMAT),
                s("stats cachedump 1 x\r\n", FORMAT),
                s("stats cachedump -1 2\r\n", FORMAT),
                s("stats cachedump 64 2\r\n", "CLIENT_ERROR Illegal slab id\r\n"),
                s("stats cachedump 0 1\r\n", "END\r\n"),
            ],
        ),
        case(
            "cache_memlimit",
            vec![
                s("cache_memlimit\r\n", "ERROR\r\n"),
                s("cache_memlimit x\r\n", "ERROR\r\n"),
                s("cache_memlimit -1\r\n", "ERROR\r\n"),
                s("cache_memlimit 1 2 3\r\n", "ERROR\r\n"),
                s(
                    "cache_memlimit 4\r\n",
                    "MEMLIMIT_TOO_SMALL cannot set maxbytes to less than 8m\r\n",
                ),
                s(
                    "cache_memlimit 2000000000\r\n",
                    "MEMLIMIT_ADJUST_FAILED input value is megabytes not bytes\r\n",
                ),
                s("cache_memlimit 5 noreply\r\n", ""),
                s("cache_memlimit x noreply\r\n", ""),
                // Back to the 64 MiB every server of the table starts with.
                s("cache_memlimit 64\r\n", "OK\r\n"),
                s("cache_memlimit 64 noreply\r\n", ""),
            ],
        ),
        case(
            "lru_crawler_arguments",
            vec![
                s("lru_crawler\r\n", "ERROR\r\n"),
                s("lru_crawler foo\r\n", "ERROR\r\n"),
                s("lru_crawler metadump\r\n", "ERROR\r\n"),
                s("lru_crawler crawl 1 noreply\r\n", "ERROR\r\n"),
                s("lru_crawler crawl x\r\n", BADCLASS),
                s("lru_crawler crawl 0\r\n", BADCLASS),
                s("lru_crawler crawl 64\r\n", BADCLASS),
                s("lru_crawler metadump 1,x\r\n", BADCLASS),
                s("lru_crawler metadump 99\r\n", BADCLASS),
                s("lru_crawler metadump 63\r\n", "END\r\n"),
                s("lru_crawler tocrawl x\r\n", FORMAT),
                s("lru_crawler sleep x\r\n", FORMAT),
                s(
                    "lru_crawler sleep 2000000\r\n",
                    "CLIENT_ERROR sleep must be one second or less\r\n",
                ),
                s("lru_crawler sleep 100\r\n", "OK\r\n"),
                s("lru_crawler tocrawl 0\r\n", "OK\r\n"),
                s(
                    "lru_crawler enable\r\n",
                    "ERROR failed to start lru crawler thread\r\n",
                ),
            ],
        ),
        case(
            "shutdown_not_enabled",
            vec![
                s("shutdown\r\n", SHUTDOWN_OFF),
                s("shutdown graceful\r\n", SHUTDOWN_OFF),
                s("shutdown now please\r\n", SHUTDOWN_OFF),
            ],
        ),
        case(
            "slabs_and_lru_arguments",
            vec![
                s("slabs\r\n", "ERROR\r\n"),
                s("slabs foo\r\n", "ERROR\r\n"),
                s("slabs reassign 1\r\n", "ERROR\r\n"),
                s("slabs automove 3\r\n", "ERROR\r\n"),
                s("slabs automove x\r\n", FORMAT),
                s("slabs automove ratio\r\n", "ERROR\r\n"),
                s("slabs automove 1\r\n", "OK\r\n"),
                s("slabs automove 1 noreply\r\n", ""),
                s("slabs automove ratio 0.8\r\n", "OK\r\n"),
                s("lru\r\n", "ERROR\r\n"),
                s("lru foo\r\n", "ERROR\r\n"),
                s("lru tune x 40 0.2 2\r\n", "ERROR\r\n"),
                s(
                    "lru tune 50 50 0.1 2.0\r\n",
                    "ERROR hot and warm pcts must not exceed 80\r\n",
                ),
                s(
                    "lru tune 10 20 0 2.0\r\n",
                    "ERROR hot/warm age factors must be greater than 0\r\n",
                ),
                s("lru tune 20 40 0.2 2.0\r\n", "OK\r\n"),
                s("lru tune 20 40 0.2 2.0 noreply\r\n", ""),
            ],
        ),
        case(
            "disabled_features",
            vec![
                s("refresh_certs\r\n", "Error TLS not enabled\r\n"),
                s("refresh_certs noreply\r\n", "Error TLS not enabled\r\n"),
                s("extstore\r\n", "ERROR\r\n"),
                s("misbehave\r\n", "ERROR\r\n"),
                s("debugtime 1\r\n", "ERROR\r\n"),
            ],
        ),
        case(
            "http_get_closes",
            vec![s("GET / HTTP/1.0\r\n", "").closes()],
        ),
        case(
            "http_delete_closes",
            vec![s("DELETE HTTP/1.1\r\n", "").closes()],
        ),
        case(
            "http_post_with_headers_closes",
            vec![s("POST /x HTTP/1.1\r\nHost: x\r\n", "").closes()],
        ),
        case(
            "http_like_lines_that_do_not_close",
            vec![
                s("foo HTTPx\r\n", "ERROR\r\n"),
                s("set a b HTTP/1.0\r\n", "ERROR\r\n"),
                s("H HTTP/1.0\r\n", "ERROR\r\n"),
                s("get / HTTP/1.0\r\n", "END\r\n"),
            ],
        ),
        case(
            "oversized_set_unlinks_the_old_item",
            vec![
                s("set {p}k 0 0 1\r\nx\r\n", "STORED\r\n"),
                s(oversized_over_existing, format!("{TOO_LARGE}END\r\n")),
            ],
        ),
        case(
            "oversized_set_noreply_unlinks_silently",
            vec![
                s("set {p}k 0 0 1\r\nx\r\n", "STORED\r\n"),
                s(oversized_noreply_over_existing, "END\r\n"),
            ],
        ),
        case(
            "oversized_append_keeps_the_old_item",
            vec![
                s("set {p}k 0 0 1\r\nx\r\n", "STORED\r\n"),
                s(
                    oversized_append,
                    format!("{TOO_LARGE}VALUE {{p}}k 0 1\r\nx\r\nEND\r\n"),
                ),
            ],
        ),
        case(
            "quit",
            vec![s("get {p}k\r\nquit\r\nget {p}k\r\n", "END\r\n").closes()],
        ),
        case("quit_with_argument", vec![s("quit now\r\n", "").closes()]),
    ]
}

/// The per-run, per-case key prefix: exactly [`PREFIX_LEN`] bytes.
fn prefix(run: u32, index: usize) -> String {
    let p = format!("r{:06x}c{:03}_", run & 0xff_ffff, index % 1000);
    debug_assert_eq!(p.len(), PREFIX_LEN);
    p
}

fn run_id() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    nanos ^ std::process::id().rotate_left(12)
}

/// Runs every case against `addr`; panics listing each failure.
pub fn run_cases(addr: SocketAddr) {
    run_cases_where(addr, |_| true);
}

/// Runs the cases whose name `select` accepts; panics listing each failure. Returns how many
/// cases ran.
pub fn run_cases_where(addr: SocketAddr, select: impl Fn(&str) -> bool) -> usize {
    let run = run_id();
    let mut failures = vec![];
    let mut ran = 0;
    for (index, case) in cases().iter().enumerate() {
        if !select(case.name) {
            continue;
        }
        ran += 1;
        if let Err(failure) = run_case(addr, case, &prefix(run, index)) {
            failures.push(failure);
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {ran} behaviour cases failed against {addr}:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
    ran
}

/// Runs one case over a fresh connection, with `{p}` expanded to `prefix`.
pub fn run_case(addr: SocketAddr, case: &Case, prefix: &str) -> Result<(), String> {
    let fail = |step: usize, what: String| format!("case `{}` step {}: {what}", case.name, step);
    let mut stream = TcpStream::connect(addr).map_err(|e| fail(0, format!("connect: {e}")))?;
    stream.set_nodelay(true).ok();
    let mut captures = HashMap::new();
    let sentinel = Step::new("get {p}__end\r\n", "END\r\n");
    let closes = case.steps.last().is_some_and(|step| step.closes);
    let steps = case
        .steps
        .iter()
        .chain((!closes).then_some(&sentinel))
        .enumerate();
    for (index, step) in steps {
        run_step(&mut stream, step, prefix, &mut captures).map_err(|what| fail(index + 1, what))?;
    }
    Ok(())
}

/// Sends one step and checks its reply; the error says what was sent, expected and received.
fn run_step(
    stream: &mut TcpStream,
    step: &Step,
    prefix: &str,
    captures: &mut HashMap<String, u64>,
) -> Result<(), String> {
    let mut sent = Vec::new();
    for (i, segment) in step.send.iter().enumerate() {
        if i > 0 {
            std::thread::sleep(SEGMENT_PAUSE);
        }
        let bytes = expand(segment, prefix, captures)?;
        stream
            .write_all(&bytes)
            .map_err(|e| format!("write: {e}"))?;
        stream.flush().ok();
        sent.extend_from_slice(&bytes);
    }
    let pattern = Pattern::parse(&replace(&step.expect, b"{p}", prefix.as_bytes()));
    let deadline = Instant::now() + STEP_DEADLINE;
    let mut got = Vec::new();
    let report = |why: &str, got: &[u8]| {
        format!(
            "{why}\n  sent     {}\n  expected {}\n  received {}",
            escape(&sent),
            escape(&pattern.source),
            escape(got)
        )
    };
    let mut buf = [0u8; 64 * 1024];
    loop {
        match pattern.matches(&got) {
            Match::Done(found) => {
                if got.len() > found.consumed {
                    return Err(report("unexpected bytes after the reply", &got));
                }
                captures.extend(found.captures);
                break;
            }
            Match::Mismatch => return Err(report("reply differs", &got)),
            Match::NeedMore => {}
        }
        let Some(left) = deadline.checked_duration_since(Instant::now()) else {
            return Err(report("timed out waiting for the reply", &got));
        };
        stream
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .ok();
        match stream.read(&mut buf) {
            Ok(0) => {
                return Err(report(
                    "connection closed before the reply was complete",
                    &got,
                ))
            }
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if is_timeout(&e) => {}
            Err(e) => return Err(report(&format!("read error {e}"), &got)),
        }
    }
    if step.closes {
        loop {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return Err(report("connection not closed after the reply", &got));
            };
            stream
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .ok();
            match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    got.extend_from_slice(&buf[..n]);
                    return Err(report("bytes after the reply instead of a close", &got));
                }
                Err(e) if is_timeout(&e) => {}
                // A reset is a close too.
                Err(_) => break,
            }
        }
    }
    Ok(())
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

/// Expands `{p}` and `{cas:NAME}` in bytes to send.
fn expand(bytes: &[u8], prefix: &str, captures: &HashMap<String, u64>) -> Result<Vec<u8>, String> {
    let mut out = replace(bytes, b"{p}", prefix.as_bytes());
    while let Some(start) = find(&out, b"{cas:") {
        let end =
            start + find(&out[start..], b"}").ok_or_else(|| "unterminated {cas:".to_string())?;
        let name = String::from_utf8_lossy(&out[start + 5..end]).into_owned();
        let value = captures
            .get(&name)
            .ok_or_else(|| format!("cas `{name}` used before it was captured"))?;
        out.splice(start..=end, value.to_string().into_bytes());
    }
    Ok(out)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn replace(bytes: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut rest = bytes;
    while let Some(at) = find(rest, from) {
        out.extend_from_slice(&rest[..at]);
        out.extend_from_slice(to);
        rest = &rest[at + from.len()..];
    }
    out.extend_from_slice(rest);
    out
}

/// Printable form of bytes (`\r`, `\n`, `\0`, …), long runs shortened.
pub fn escape(bytes: &[u8]) -> String {
    const SHOW: usize = 400;
    if bytes.len() > SHOW {
        format!(
            "\"{}\" … ({} bytes) … \"{}\"",
            bytes[..SHOW / 2].escape_ascii(),
            bytes.len(),
            bytes[bytes.len() - SHOW / 4..].escape_ascii()
        )
    } else {
        format!("\"{}\"", bytes.escape_ascii())
    }
}

/// An expected reply: literal bytes with `{cas:NAME}` and `{any}` holes.
struct Pattern {
    parts: Vec<Part>,
    source: Vec<u8>,
}

enum Part {
    Literal(Vec<u8>),
    Capture(String),
    Any,
}

struct Found {
    consumed: usize,
    captures: HashMap<String, u64>,
}

enum Match {
    Done(Found),
    NeedMore,
    Mismatch,
}

impl Pattern {
    fn parse(source: &[u8]) -> Pattern {
        let mut parts = vec![];
        let mut literal = vec![];
        let mut rest = source;
        while !rest.is_empty() {
            if rest.starts_with(b"{any}") {
                parts.push(Part::Literal(std::mem::take(&mut literal)));
                parts.push(Part::Any);
                rest = &rest[5..];
            } else if let (true, Some(end)) = (rest.starts_with(b"{cas:"), find(rest, b"}")) {
                parts.push(Part::Literal(std::mem::take(&mut literal)));
                parts.push(Part::Capture(
                    String::from_utf8_lossy(&rest[5..end]).into_owned(),
                ));
                rest = &rest[end + 1..];
            } else {
                literal.push(rest[0]);
                rest = &rest[1..];
            }
        }
        parts.push(Part::Literal(literal));
        Pattern {
            parts,
            source: source.to_vec(),
        }
    }

    /// Matches `got` against the pattern from the start.
    fn matches(&self, got: &[u8]) -> Match {
        let mut at = 0;
        let mut captures = HashMap::new();
        for part in &self.parts {
            let rest = &got[at..];
            match part {
                Part::Literal(lit) => {
                    let n = lit.len().min(rest.len());
                    if rest[..n] != lit[..n] {
                        return Match::Mismatch;
                    }
                    if n < lit.len() {
                        return Match::NeedMore;
                    }
                    at += n;
                }
                Part::Capture(name) => {
                    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
                    if digits == rest.len() {
                        return Match::NeedMore;
                    }
                    let Some(value) = std::str::from_utf8(&rest[..digits])
                        .ok()
                        .and_then(|d| d.parse::<u64>().ok())
                    else {
                        return Match::Mismatch;
                    };
                    captures.insert(name.clone(), value);
                    at += digits;
                }
                Part::Any => {
                    let len = rest
                        .iter()
                        .take_while(|&&b| b != b'\r' && b != b'\n')
                        .count();
                    if len == rest.len() {
                        return Match::NeedMore;
                    }
                    if len == 0 {
                        return Match::Mismatch;
                    }
                    at += len;
                }
            }
        }
        Match::Done(Found {
            consumed: at,
            captures,
        })
    }
}
