//! Table-driven codec tests: every verb, every error path, every split point, and property
//! tests (no panics on any bytes; compose → parse round-trips).

use super::*;
use bytes::{Bytes, BytesMut};
use proptest::prelude::*;

fn limits() -> Limits {
    Limits::default()
}

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn ok(request: Request, consumed: usize) -> ParseOutcome {
    ParseOutcome::Request { request, consumed }
}

fn err(reply: Response, consumed: usize, after: AfterError) -> ParseOutcome {
    ParseOutcome::Invalid {
        reply,
        consumed,
        after,
    }
}

fn ce(reason: &str, consumed: usize) -> ParseOutcome {
    err(
        Response::ClientError(reason.into()),
        consumed,
        AfterError::Continue,
    )
}

fn silent(consumed: usize) -> ParseOutcome {
    err(Response::None, consumed, AfterError::Continue)
}

fn error(consumed: usize) -> ParseOutcome {
    err(Response::Error, consumed, AfterError::Continue)
}

fn store(op: StoreOp, key: &str, flags: u32, exptime: i64, value: &str) -> Request {
    Request::Store {
        op,
        key: b(key),
        flags,
        exptime,
        value: b(value),
        cas_unique: 0,
        noreply: false,
    }
}

const FORMAT: &str = "bad command line format";
const DELETE_USAGE: &str = "bad command line format.  Usage: delete <key> [noreply]";
const DELTA: &str = "invalid numeric delta argument";
const EXPTIME: &str = "invalid exptime argument";

/// (input, expected outcome) for every verb and every error path.
fn table() -> Vec<(Vec<u8>, ParseOutcome)> {
    let long_key = "k".repeat(251);
    let key250 = "k".repeat(250);
    let mut t: Vec<(Vec<u8>, ParseOutcome)> = vec![];
    let mut add = |input: &str, outcome: ParseOutcome| t.push((input.as_bytes().to_vec(), outcome));

    // retrieval
    let get = |keys: &[&str], with_cas| Request::Get {
        keys: keys.iter().map(|k| b(k)).collect(),
        with_cas,
    };
    add("get a\r\n", ok(get(&["a"], false), 7));
    add("get a\n", ok(get(&["a"], false), 6));
    add("gets a b a\r\n", ok(get(&["a", "b", "a"], true), 12));
    add("  get   a  b \r\n", ok(get(&["a", "b"], false), 15));
    add("get noreply\r\n", ok(get(&["noreply"], false), 13));
    add(
        &format!("get {key250}\r\n"),
        ok(get(&[&key250], false), 256),
    );
    add(&format!("get {long_key}\r\n"), ce(FORMAT, 257));
    add(&format!("get a {long_key} b\r\n"), ce(FORMAT, 261));
    add("get a\tb\r\n", ok(get(&["a\tb"], false), 9));
    add(
        "get \x10\x10k\x7f\r\n",
        ok(get(&["\x10\x10k\x7f"], false), 10),
    );
    add("get a\r\r\n", ce(FORMAT, 8));
    add("get\r\n", error(5));
    add("get \r\n", error(6));
    add("gets\r\n", error(6));
    let gat = |exptime, keys: &[&str], with_cas| Request::Gat {
        exptime,
        keys: keys.iter().map(|k| b(k)).collect(),
        with_cas,
    };
    add("gat 100 a b\r\n", ok(gat(100, &["a", "b"], false), 13));
    add("gats -1 a\r\n", ok(gat(-1, &["a"], true), 11));
    add("gat 100\r\n", ok(gat(100, &[], false), 9));
    add("gat\r\n", error(5));
    add("gats\r\n", error(6));
    add("gat a\r\n", ce(EXPTIME, 7));
    add("gat abc a\r\n", ce(EXPTIME, 11));
    add(&format!("gat 1 {long_key}\r\n"), ce(FORMAT, 259));

    // storage
    add(
        "set k 1 2 3\r\nabc\r\n",
        ok(store(StoreOp::Set, "k", 1, 2, "abc"), 18),
    );
    add(
        "set k 0 0 3\nabc\r\n",
        ok(store(StoreOp::Set, "k", 0, 0, "abc"), 17),
    );
    add(
        "add k 0 0 1\r\na\r\n",
        ok(store(StoreOp::Add, "k", 0, 0, "a"), 16),
    );
    add(
        "replace k 0 0 1\r\na\r\n",
        ok(store(StoreOp::Replace, "k", 0, 0, "a"), 20),
    );
    add(
        "append k 0 0 1\r\na\r\n",
        ok(store(StoreOp::Append, "k", 0, 0, "a"), 19),
    );
    add(
        "prepend k 0 0 1\r\na\r\n",
        ok(store(StoreOp::Prepend, "k", 0, 0, "a"), 20),
    );
    add(
        "set k 4294967295 -1 0\r\n\r\n",
        ok(store(StoreOp::Set, "k", u32::MAX, -1, ""), 25),
    );
    add(
        "set k +5 +0 -0\r\n\r\n",
        ok(store(StoreOp::Set, "k", 5, 0, ""), 18),
    );
    add(
        "set k 0 0 4\r\na\r\nb\r\n",
        ok(store(StoreOp::Set, "k", 0, 0, "a\r\nb"), 19),
    );
    add(
        "set k 0 0 1 extra\r\na\r\n",
        ok(store(StoreOp::Set, "k", 0, 0, "a"), 22),
    );
    add(
        "set k 0 0 1 noreply\r\na\r\n",
        ok(
            Request::Store {
                op: StoreOp::Set,
                key: b("k"),
                flags: 0,
                exptime: 0,
                value: b("a"),
                cas_unique: 0,
                noreply: true,
            },
            24,
        ),
    );
    add(
        "cas k 1 2 1 99\r\na\r\n",
        ok(
            Request::Store {
                op: StoreOp::Cas,
                key: b("k"),
                flags: 1,
                exptime: 2,
                value: b("a"),
                cas_unique: 99,
                noreply: false,
            },
            19,
        ),
    );
    add(
        "cas k 0 0 1 18446744073709551615 noreply\r\na\r\n",
        ok(
            Request::Store {
                op: StoreOp::Cas,
                key: b("k"),
                flags: 0,
                exptime: 0,
                value: b("a"),
                cas_unique: u64::MAX,
                noreply: true,
            },
            45,
        ),
    );
    add("set k 0 0\r\na\r\n", error(11));
    add("set k\r\n", error(7));
    add("set\r\n", error(5));
    add("set k 0 0 1 noreply extra\r\na\r\n", error(27));
    add("set k 0 0 1 2 3 4 5 6 7 8 9\r\na\r\n", error(29));
    add("cas k 0 0 1\r\na\r\n", error(13));
    add("set k a 0 1\r\na\r\n", ce(FORMAT, 13));
    add("set k 0 a 1\r\na\r\n", ce(FORMAT, 13));
    add("set k 0 0 a\r\na\r\n", ce(FORMAT, 13));
    add("set k -1 0 1\r\na\r\n", ce(FORMAT, 14));
    add("set k 0 0 -1\r\na\r\n", ce(FORMAT, 14));
    add("set k 0 0 99999999999999999999\r\n", ce(FORMAT, 32));
    add("set k 0 0 2147483646\r\n", ce(FORMAT, 22));
    add("set k 4294967296 0 1\r\na\r\n", ce(FORMAT, 22));
    add("set k a 0 1 noreply\r\na\r\n", silent(21));
    add(&format!("set {long_key} 0 0 1\r\na\r\n"), ce(FORMAT, 263));
    add(&format!("set {long_key} 0 0 1 noreply\r\n"), silent(271));
    add("set a\x00b 0 0 1\r\nx\r\n", ce(FORMAT, 15));
    add("cas k 0 0 1 abc\r\na\r\n", ce(FORMAT, 17));
    add("cas k 0 0 1 -1\r\na\r\n", ce(FORMAT, 16));
    add("cas k 0 0 1 18446744073709551616\r\n", ce(FORMAT, 34));
    add("cas k 0 0 1 abc noreply\r\na\r\n", silent(25));
    add("set k 0 0 1\r\nabc\r\n", ce("bad data chunk", 16));
    add("set k 0 0 1\r\na\n\r\n", ce("bad data chunk", 16));
    add("set k 0 0 2\nab\nget\n", ce("bad data chunk", 16));
    add("set k 0 0 1 noreply\r\nabc\r\n", silent(24));
    let oversized = |op, noreply| Request::Oversized {
        op,
        key: Bytes::from_static(b"k"),
        swallow: 2_000_002,
        noreply,
    };
    add(
        "set k 0 0 2000000\r\n",
        ok(oversized(StoreOp::Set, false), 19),
    );
    add(
        "set k 0 0 2000000 noreply\r\nxx",
        ok(oversized(StoreOp::Set, true), 27),
    );
    add(
        "append k 0 0 2000000\r\n",
        ok(oversized(StoreOp::Append, false), 22),
    );

    // delete
    let del = |key: &str, noreply| Request::Delete {
        key: b(key),
        noreply,
    };
    add("delete k\r\n", ok(del("k", false), 10));
    add("delete k 0\r\n", ok(del("k", false), 12));
    add("delete k noreply\r\n", ok(del("k", true), 18));
    add("delete k 0 noreply\r\n", ok(del("k", true), 20));
    add("delete noreply\r\n", ok(del("noreply", false), 16));
    add("delete k 5\r\n", ce(DELETE_USAGE, 12));
    add("delete k 0 0\r\n", ce(DELETE_USAGE, 14));
    add("delete k noreply 0\r\n", ce(DELETE_USAGE, 20));
    add("delete k 5 noreply\r\n", silent(20));
    add("delete\r\n", error(8));
    add("delete k x y z\r\n", error(16));
    add(&format!("delete {long_key}\r\n"), ce(FORMAT, 260));
    add(&format!("delete {long_key} noreply\r\n"), silent(268));

    // incr / decr
    let arith = |op, key: &str, delta, noreply| Request::Arith {
        op,
        key: b(key),
        delta,
        noreply,
    };
    add("incr k 5\r\n", ok(arith(ArithOp::Incr, "k", 5, false), 10));
    add(
        "decr k 18446744073709551615 noreply\r\n",
        ok(arith(ArithOp::Decr, "k", u64::MAX, true), 37),
    );
    add(
        "incr k 1 foo\r\n",
        ok(arith(ArithOp::Incr, "k", 1, false), 14),
    );
    add("incr k abc\r\n", ce(DELTA, 12));
    add("incr k -1\r\n", ce(DELTA, 11));
    add("incr k 18446744073709551616\r\n", ce(DELTA, 29));
    add("decr k x\r\n", ce(DELTA, 10));
    add("incr k abc noreply\r\n", silent(20));
    add("incr k\r\n", error(8));
    add("incr\r\n", error(6));
    add("incr k 1 noreply x\r\n", error(20));
    add(&format!("decr {long_key} x\r\n"), ce(FORMAT, 260));

    // touch
    let touch = |key: &str, exptime, noreply| Request::Touch {
        key: b(key),
        exptime,
        noreply,
    };
    add("touch k 100\r\n", ok(touch("k", 100, false), 13));
    add("touch k -1 noreply\r\n", ok(touch("k", -1, true), 20));
    add("touch k 1 foo\r\n", ok(touch("k", 1, false), 15));
    add("touch k abc\r\n", ce(EXPTIME, 13));
    add("touch k x noreply\r\n", silent(19));
    add("touch k\r\n", error(9));
    add("touch k 1 2 3\r\n", error(15));
    add(&format!("touch {long_key} 1\r\n"), ce(FORMAT, 261));

    // flush_all
    let flush = |delay, noreply| Request::FlushAll { delay, noreply };
    add("flush_all\r\n", ok(flush(0, false), 11));
    add("flush_all 0\r\n", ok(flush(0, false), 13));
    add("flush_all -1\r\n", ok(flush(-1, false), 14));
    add("flush_all 60\r\n", ok(flush(60, false), 14));
    add("flush_all noreply\r\n", ok(flush(0, true), 19));
    add("flush_all 5 noreply\r\n", ok(flush(5, true), 21));
    add("flush_all 0 0\r\n", ok(flush(0, false), 15));
    add("flush_all abc\r\n", ce(EXPTIME, 15));
    add("flush_all abc noreply\r\n", silent(23));
    add("flush_all noreply 0\r\n", ce(EXPTIME, 21));
    add("flush_all 1 2 3\r\n", error(17));

    // verbosity, version, stats, quit
    let verbosity = |level, noreply| Request::Verbosity { level, noreply };
    add("verbosity 1\r\n", ok(verbosity(1, false), 13));
    add("verbosity 1 2\r\n", ok(verbosity(1, false), 15));
    add("verbosity 1 noreply\r\n", ok(verbosity(1, true), 21));
    add("verbosity\r\n", error(11));
    add("verbosity 1 2 3\r\n", error(17));
    add("verbosity abc\r\n", ce(FORMAT, 15));
    add("verbosity -1\r\n", ce(FORMAT, 14));
    add("verbosity noreply\r\n", silent(19));
    add("version\r\n", ok(Request::Version, 9));
    add("version foo\n", ok(Request::Version, 12));
    add("quit\r\n", ok(Request::Quit, 6));
    add("quit now\r\n", ok(Request::Quit, 10));
    add("fail\r\n", ok(Request::Fail, 6));
    add("recover\r\n", ok(Request::Recover, 9));
    add(
        "consistency QUORUM\r\n",
        ok(Request::Consistency(Level::Quorum), 20),
    );
    add("consistency most\r\n", ce(parse::BAD_LEVEL, 18));
    add("consistency\r\n", ce(parse::BAD_LEVEL, 13));
    add("fail now\r\n", error(10));
    add("stats\r\n", ok(Request::Stats { group: None }, 7));
    add(
        "stats settings x\r\n",
        ok(
            Request::Stats {
                group: Some("settings".into()),
            },
            18,
        ),
    );

    // unknown
    add("\r\n", error(2));
    add("\n", error(1));
    add("\r\r\n", error(3));
    add("foo\r\n", error(5));
    add("GET a\r\n", error(7));
    add("g\r\n", error(3));
    add("MN\r\n", error(4));
    add("mx\r\n", error(4));
    add("mn\r\n", ok(Request::MetaNoop, 4));
    add("\rget a\r\n", error(8));
    t
}

#[test]
fn every_verb_and_error_path() {
    let mut wrong = vec![];
    for (input, want) in table() {
        let got = parse_request(&input, &limits());
        if got != want {
            let input = input.escape_ascii().to_string();
            wrong.push(format!("{input:.80}\n   got  {got:?}\n   want {want:?}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn every_prefix_is_incomplete() {
    for (input, want) in table() {
        let whole = parse_request(&input, &limits());
        assert_eq!(whole, want);
        // Decided as soon as the consumed bytes are there (an oversized set from its line alone).
        let decided_at = match &want {
            ParseOutcome::Request { consumed, .. } | ParseOutcome::Invalid { consumed, .. } => {
                *consumed
            }
            ParseOutcome::Incomplete => input.len(),
        };
        for cut in 0..decided_at {
            let got = parse_request(&input[..cut], &limits());
            assert_eq!(
                got,
                ParseOutcome::Incomplete,
                "prefix {:?} of {:?}",
                input[..cut].escape_ascii().to_string(),
                input.escape_ascii().to_string()
            );
        }
    }
}

#[test]
fn trailing_bytes_do_not_change_the_result() {
    for (input, want) in table() {
        let mut longer = input.clone();
        longer.extend_from_slice(b"get next\r\n");
        assert_eq!(parse_request(&longer, &limits()), want);
    }
}

#[test]
fn pipelined_requests_parse_one_after_another() {
    let input = b"set a 0 0 1\r\n1\r\nget a b\r\nbogus\r\ndelete a noreply\r\nincr a 1\r\n";
    let mut at = 0;
    let mut seen = vec![];
    while at < input.len() {
        match parse_request(&input[at..], &limits()) {
            ParseOutcome::Request { request, consumed } => {
                seen.push(format!("{request:?}"));
                at += consumed;
            }
            ParseOutcome::Invalid {
                reply, consumed, ..
            } => {
                seen.push(format!("{reply:?}"));
                at += consumed;
            }
            ParseOutcome::Incomplete => panic!("incomplete at {at}"),
        }
    }
    assert_eq!(seen.len(), 5);
    assert_eq!(seen[2], "Error");
}

#[test]
fn long_lines_are_refused_not_buffered() {
    let l = limits();
    let too_long = |consumed| {
        err(
            Response::ClientError("line too long".into()),
            consumed,
            AfterError::Close,
        )
    };
    // Exactly the limit without a newline: still waiting; one more byte: refused.
    let line = vec![b'x'; 2048];
    assert_eq!(parse_request(&line, &l), ParseOutcome::Incomplete);
    let line = vec![b'x'; 2049];
    assert_eq!(parse_request(&line, &l), too_long(2049));
    // A line of 2048 bytes plus its newline is a line; 2049 plus newline is too long even
    // though the newline has arrived (the outcome must not depend on read sizes).
    let mut line = vec![b'x'; 2048];
    line.push(b'\n');
    assert_eq!(parse_request(&line, &l), error(2049));
    let mut line = vec![b'x'; 2049];
    line.extend_from_slice(b"\r\n");
    assert_eq!(parse_request(&line, &l), too_long(2051));
    // Multi-get lines may be longer, up to their own limit.
    let mut get = b"get".to_vec();
    for i in 0..1000 {
        get.extend_from_slice(format!(" key{i}").as_bytes());
    }
    assert_eq!(parse_request(&get, &l), ParseOutcome::Incomplete);
    get.extend_from_slice(b"\r\n");
    match parse_request(&get, &l) {
        ParseOutcome::Request {
            request: Request::Get { keys, .. },
            consumed,
        } => {
            assert_eq!(keys.len(), 1000);
            assert_eq!(consumed, get.len());
        }
        other => panic!("{other:?}"),
    }
    let mut gat = b"gat 0 ".to_vec();
    gat.resize(l.max_get_line_len + 1, b'k');
    assert_eq!(parse_request(&gat, &l), too_long(gat.len()));
    gat.truncate(l.max_get_line_len);
    assert_eq!(parse_request(&gat, &l), ParseOutcome::Incomplete);
}

#[test]
fn value_limit_is_configurable_and_checked_before_the_block_arrives() {
    let l = Limits {
        max_value_len: 10,
        ..Limits::default()
    };
    assert_eq!(
        parse_request(b"set k 0 0 11\r\n", &l),
        ok(
            Request::Oversized {
                op: StoreOp::Set,
                key: Bytes::from_static(b"k"),
                swallow: 13,
                noreply: false,
            },
            14
        )
    );
    assert!(matches!(
        parse_request(b"set k 0 0 10\r\n0123456789\r\n", &l),
        ParseOutcome::Request { consumed: 26, .. }
    ));
    let l = Limits {
        max_key_len: 3,
        ..Limits::default()
    };
    assert_eq!(parse_request(b"get abcd\r\n", &l), ce(FORMAT, 10));
}

// ---- responses ----

fn value(key: &str, flags: u32, cas: Option<u64>, data: &[u8]) -> Value {
    Value {
        key: b(key),
        flags,
        cas,
        data: Bytes::copy_from_slice(data),
    }
}

fn response_table() -> Vec<(&'static [u8], Response)> {
    vec![
        (b"STORED\r\n", Response::Stored),
        (b"NOT_STORED\r\n", Response::NotStored),
        (b"EXISTS\r\n", Response::Exists),
        (b"NOT_FOUND\r\n", Response::NotFound),
        (b"DELETED\r\n", Response::Deleted),
        (b"TOUCHED\r\n", Response::Touched),
        (b"OK\r\n", Response::Ok),
        (b"RESET\r\n", Response::Reset),
        (b"ERROR\r\n", Response::Error),
        (b"42\r\n", Response::Number(42)),
        (b"18446744073709551615\r\n", Response::Number(u64::MAX)),
        (b"VERSION 1.6.18\r\n", Response::Version("1.6.18".into())),
        (
            b"CLIENT_ERROR bad data chunk\r\n",
            Response::ClientError("bad data chunk".into()),
        ),
        (
            b"SERVER_ERROR object too large for cache\r\n",
            Response::ServerError("object too large for cache".into()),
        ),
        (b"END\r\n", Response::Values(vec![])),
        (
            b"VALUE a 5 3\r\nabc\r\nEND\r\n",
            Response::Values(vec![value("a", 5, None, b"abc")]),
        ),
        (
            b"VALUE a 0 4 77\r\na\r\nb\r\nVALUE b 1 0 78\r\n\r\nEND\r\n",
            Response::Values(vec![
                value("a", 0, Some(77), b"a\r\nb"),
                value("b", 1, Some(78), b""),
            ]),
        ),
        (
            b"STAT pid 1\r\nSTAT version 1.6 x\r\nEND\r\n",
            Response::Stats(vec![
                ("pid".into(), "1".into()),
                ("version".into(), "1.6 x".into()),
            ]),
        ),
    ]
}

#[test]
fn responses_parse_and_compose_exactly() {
    for (wire, want) in response_table() {
        let got = parse_response(wire, &limits());
        assert_eq!(
            got,
            ResponseOutcome::Response {
                response: want.clone(),
                consumed: wire.len()
            },
            "{:?}",
            wire.escape_ascii().to_string()
        );
        let mut out = BytesMut::new();
        want.compose(&mut out);
        assert_eq!(&out[..], wire);
        for cut in 0..wire.len() {
            assert_eq!(
                parse_response(&wire[..cut], &limits()),
                ResponseOutcome::Incomplete
            );
        }
    }
    let mut out = BytesMut::new();
    Response::None.compose(&mut out);
    assert!(out.is_empty());
}

#[test]
fn bad_responses_are_refused() {
    let l = Limits {
        max_value_len: 10,
        ..Limits::default()
    };
    for wire in [
        &b"HELLO\r\n"[..],
        b"VALUE a 0 11\r\n",
        b"VALUE a 0 18446744073709551615\r\n",
        b"VALUE a x 1\r\na\r\nEND\r\n",
        b"VALUE a 0 1\r\nab\r\nEND\r\n",
        b"VALUE a 0 1\r\na\r\nSTORED\r\n",
        b"STAT a b\r\nVALUE a 0 1\r\n",
        b"-1\r\n",
    ] {
        assert!(
            matches!(parse_response(wire, &l), ResponseOutcome::Invalid(_)),
            "{:?}",
            wire.escape_ascii().to_string()
        );
    }
    let endless = vec![b'x'; l.max_get_line_len + 2];
    assert!(matches!(
        parse_response(&endless, &l),
        ResponseOutcome::Invalid(_)
    ));
}

#[test]
fn requests_compose_to_memcached_wire_form() {
    let cases: Vec<(Request, &[u8])> = vec![
        (
            Request::Get {
                keys: vec![b("a"), b("b")],
                with_cas: false,
            },
            b"get a b\r\n",
        ),
        (
            Request::Gat {
                exptime: -1,
                keys: vec![b("a")],
                with_cas: true,
            },
            b"gats -1 a\r\n",
        ),
        (
            Request::Store {
                op: StoreOp::Cas,
                key: b("k"),
                flags: 3,
                exptime: 10,
                value: b("xy"),
                cas_unique: 9,
                noreply: true,
            },
            b"cas k 3 10 2 9 noreply\r\nxy\r\n",
        ),
        (
            store(StoreOp::Append, "k", 0, 0, ""),
            b"append k 0 0 0\r\n\r\n",
        ),
        (
            Request::Delete {
                key: b("k"),
                noreply: false,
            },
            b"delete k\r\n",
        ),
        (
            Request::Arith {
                op: ArithOp::Decr,
                key: b("k"),
                delta: 2,
                noreply: true,
            },
            b"decr k 2 noreply\r\n",
        ),
        (
            Request::Touch {
                key: b("k"),
                exptime: 5,
                noreply: false,
            },
            b"touch k 5\r\n",
        ),
        (
            Request::FlushAll {
                delay: 0,
                noreply: true,
            },
            b"flush_all noreply\r\n",
        ),
        (
            Request::FlushAll {
                delay: 7,
                noreply: false,
            },
            b"flush_all 7\r\n",
        ),
        (Request::Version, b"version\r\n"),
        (
            Request::Verbosity {
                level: 1,
                noreply: false,
            },
            b"verbosity 1\r\n",
        ),
        (
            Request::Stats {
                group: Some("settings".into()),
            },
            b"stats settings\r\n",
        ),
        (Request::Stats { group: None }, b"stats\r\n"),
        (Request::Quit, b"quit\r\n"),
        (Request::Fail, b"fail\r\n"),
        (Request::Recover, b"recover\r\n"),
    ];
    for (request, wire) in cases {
        let mut out = BytesMut::new();
        request.compose(&mut out);
        assert_eq!(&out[..], wire);
    }
}

// ---- properties ----

fn key_strategy() -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(0x21u8..=0xff, 1..=250)
        .prop_filter("no DEL", |k| !k.contains(&0x7f))
        .prop_map(Bytes::from)
}

fn keys_strategy(min: usize) -> impl Strategy<Value = Vec<Bytes>> {
    proptest::collection::vec(key_strategy(), min..5)
}

fn data_strategy() -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(any::<u8>(), 0..300).prop_map(Bytes::from)
}

fn word_strategy() -> impl Strategy<Value = String> {
    "[a-z_]{1,12}"
}

fn request_strategy() -> impl Strategy<Value = Request> {
    let store_op = prop_oneof![
        Just(StoreOp::Set),
        Just(StoreOp::Add),
        Just(StoreOp::Replace),
        Just(StoreOp::Append),
        Just(StoreOp::Prepend),
        Just(StoreOp::Cas),
    ];
    prop_oneof![
        (keys_strategy(1), any::<bool>())
            .prop_map(|(keys, with_cas)| Request::Get { keys, with_cas }),
        (any::<i64>(), keys_strategy(0), any::<bool>()).prop_map(|(exptime, keys, with_cas)| {
            Request::Gat {
                exptime,
                keys,
                with_cas,
            }
        }),
        (
            store_op,
            key_strategy(),
            any::<u32>(),
            any::<i64>(),
            data_strategy(),
            any::<u64>(),
            any::<bool>()
        )
            .prop_map(
                |(op, key, flags, exptime, value, cas, noreply)| Request::Store {
                    op,
                    key,
                    flags,
                    exptime,
                    value,
                    cas_unique: if op == StoreOp::Cas { cas } else { 0 },
                    noreply,
                }
            ),
        (key_strategy(), any::<bool>()).prop_map(|(key, noreply)| Request::Delete { key, noreply }),
        (
            prop_oneof![Just(ArithOp::Incr), Just(ArithOp::Decr)],
            key_strategy(),
            any::<u64>(),
            any::<bool>()
        )
            .prop_map(|(op, key, delta, noreply)| Request::Arith {
                op,
                key,
                delta,
                noreply
            }),
        (key_strategy(), any::<i64>(), any::<bool>()).prop_map(|(key, exptime, noreply)| {
            Request::Touch {
                key,
                exptime,
                noreply,
            }
        }),
        (any::<i64>(), any::<bool>())
            .prop_map(|(delay, noreply)| Request::FlushAll { delay, noreply }),
        Just(Request::Version),
        (any::<u32>(), any::<bool>())
            .prop_map(|(level, noreply)| Request::Verbosity { level, noreply }),
        proptest::option::of(word_strategy()).prop_map(|group| Request::Stats { group }),
        Just(Request::Quit),
        Just(Request::Fail),
        Just(Request::Recover),
        prop_oneof![Just(Level::One), Just(Level::Quorum), Just(Level::All)]
            .prop_map(Request::Consistency),
    ]
}

fn response_strategy() -> impl Strategy<Value = Response> {
    let value = (
        key_strategy(),
        any::<u32>(),
        proptest::option::of(any::<u64>()),
        data_strategy(),
    )
        .prop_map(|(key, flags, cas, data)| Value {
            key,
            flags,
            cas,
            data,
        });
    let text = "[ -~]{0,40}";
    prop_oneof![
        proptest::collection::vec(value, 0..4).prop_map(Response::Values),
        Just(Response::Stored),
        Just(Response::NotStored),
        Just(Response::Exists),
        Just(Response::NotFound),
        Just(Response::Deleted),
        Just(Response::Touched),
        Just(Response::Ok),
        Just(Response::Reset),
        Just(Response::Error),
        any::<u64>().prop_map(Response::Number),
        "[!-~][ -~]{0,30}".prop_map(Response::Version),
        proptest::collection::vec((word_strategy(), text), 1..5).prop_map(Response::Stats),
        text.prop_map(Response::ClientError),
        text.prop_map(Response::ServerError),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let small = Limits { max_key_len: 250, max_value_len: 64, max_line_len: 100, max_get_line_len: 200 };
        for l in [limits(), small] {
            if let ParseOutcome::Request { consumed, .. } | ParseOutcome::Invalid { consumed, .. } =
                parse_request(&bytes, &l)
            {
                prop_assert!(consumed > 0 && consumed <= bytes.len());
            }
            if let ResponseOutcome::Response { consumed, .. } = parse_response(&bytes, &l) {
                prop_assert!(consumed > 0 && consumed <= bytes.len());
            }
        }
    }

    #[test]
    fn wordy_input_never_panics(words in proptest::collection::vec(
        prop_oneof![
            Just("get".to_string()), Just("set".to_string()), Just("cas".to_string()),
            Just("gat".to_string()), Just("delete".to_string()), Just("incr".to_string()),
            Just("noreply".to_string()), Just("0".to_string()), Just("-1".to_string()),
            Just("99999999999999999999".to_string()), Just("\r\n".to_string()),
            Just("VALUE".to_string()), Just("END".to_string()), "[ -~]{0,6}",
        ], 0..12)) {
        let input = words.join(" ");
        let _ = parse_request(input.as_bytes(), &limits());
        let _ = parse_response(input.as_bytes(), &limits());
    }

    #[test]
    fn accepted_requests_have_valid_keys(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let mut input = b"get ".to_vec();
        input.extend_from_slice(&bytes);
        input.extend_from_slice(b"\r\n");
        if let ParseOutcome::Request { request: Request::Get { keys, .. }, .. } = parse_request(&input, &limits()) {
            for key in keys {
                prop_assert!(!key.is_empty() && key.len() <= 250);
                prop_assert!(!key.iter().any(|&b| matches!(b, 0 | b'\r' | b'\n' | b' ')));
            }
        }
    }

    #[test]
    fn requests_round_trip(request in request_strategy()) {
        let mut out = BytesMut::new();
        request.compose(&mut out);
        prop_assert_eq!(
            parse_request(&out, &limits()),
            ParseOutcome::Request { request: request.clone(), consumed: out.len() }
        );
        // Split anywhere: incomplete until the last byte.
        let cut = out.len() / 2;
        prop_assert_eq!(parse_request(&out[..cut], &limits()), ParseOutcome::Incomplete);
    }

    #[test]
    fn responses_round_trip(response in response_strategy()) {
        let mut out = BytesMut::new();
        response.compose(&mut out);
        prop_assert_eq!(
            parse_response(&out, &limits()),
            ResponseOutcome::Response { response: response.clone(), consumed: out.len() }
        );
        let cut = out.len() / 2;
        prop_assert_eq!(parse_response(&out[..cut], &limits()), ResponseOutcome::Incomplete);
    }
}

#[test]
fn admin_replies_parse_back() {
    let l = Limits::default();
    let cases: [(&[u8], Response); 4] = [
        (
            b"MEMLIMIT_TOO_SMALL cannot set maxbytes to less than 8m\r\n",
            Response::Line("MEMLIMIT_TOO_SMALL cannot set maxbytes to less than 8m".into()),
        ),
        (
            b"ERROR: shutdown not enabled\r\n",
            Response::Line("ERROR: shutdown not enabled".into()),
        ),
        (
            b"PREFIX a get 1 hit 0 set 0 del 0\r\nEND\r\n",
            Response::Block(Bytes::from_static(b"PREFIX a get 1 hit 0 set 0 del 0\r\n")),
        ),
        (
            b"key=a exp=-1 la=1 cas=2 fetch=no cls=1 size=61\nkey=b exp=-1 la=1 cas=3 fetch=no cls=1 size=61\nEND\r\n",
            Response::Block(Bytes::from_static(
                b"key=a exp=-1 la=1 cas=2 fetch=no cls=1 size=61\nkey=b exp=-1 la=1 cas=3 fetch=no cls=1 size=61\n",
            )),
        ),
    ];
    for (wire, response) in cases {
        let mut composed = BytesMut::new();
        response.compose(&mut composed);
        assert_eq!(&composed[..], wire);
        assert_eq!(
            parse_response(wire, &l),
            ResponseOutcome::Response {
                response,
                consumed: wire.len()
            }
        );
        assert_eq!(
            parse_response(&wire[..wire.len() - 1], &l),
            ResponseOutcome::Incomplete
        );
    }
}
