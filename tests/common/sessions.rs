//! The differential sessions (`tests/common/differential.rs` runs them): meta, binary and
//! classic requests, quiet pipelines, errors, stale and win flows.

use super::differential::{
    differences, request_count, run, Session, Step, Transcript, Wire, CAS_HOLE,
};
use super::memcached::MemcachedProcess;
use memcord_protocol::binary::{BinaryRequest, Opcode, ARITH_NO_CREATE};
use std::net::SocketAddr;

pub fn text(name: &'static str, steps: Vec<Step>) -> Session {
    Session {
        name,
        wire: Wire::Text,
        steps,
    }
}

pub fn binary(name: &'static str, steps: Vec<Step>) -> Session {
    Session {
        name,
        wire: Wire::Binary,
        steps,
    }
}

pub fn s(send: &str) -> Step {
    Step::new(send)
}

/// The meta and mixed text sessions.
fn text_sessions() -> Vec<Session> {
    vec![
        text(
            "mg_misses",
            vec![
                s("mg {p}a\r\n"),
                s("mg {p}a v\r\n"),
                s("mg {p}a v q\r\n"),
                s("mg {p}a k O123 v\r\n"),
                s("mg {p}a q k O5\r\nmg {p}b q\r\nmg {p}c v q\r\n"),
                s("me {p}a\r\n"),
            ],
        ),
        text(
            "mg_hit_flags_in_order",
            vec![
                s("ms {p}a 2 F30 T100\r\nhi\r\n"),
                s("mg {p}a s t c f l h k O9 v\r\n"),
                s("mg {p}a v k s\r\n"),
                s("mg {p}a h l\r\n"),
                s("mg {p}a u h\r\n"),
                s("mg {p}a q\r\n"),
                s("mg {p}a c\r\n"),
                s("me {p}a\r\n"),
            ],
        ),
        text(
            "mg_no_bump_keeps_the_hit_record",
            vec![
                s("ms {p}a 1\r\nx\r\n"),
                s("mg {p}a u h v\r\n"),
                s("mg {p}a u h\r\n"),
                s("mg {p}a h\r\n"),
                s("mg {p}a h\r\n"),
            ],
        ),
        text(
            "mg_touch_and_ttl_order",
            vec![
                s("ms {p}a 1 T100\r\nx\r\n"),
                s("mg {p}a t T300 t v\r\n"),
                s("mg {p}a t\r\n"),
                s("mg {p}a T0 t\r\n"),
                s("mg {p}a t\r\n"),
                s("mg {p}missing T30 t\r\n"),
                s("mg {p}a T-1 v\r\n"),
                s("mg {p}a v\r\n"),
            ],
        ),
        text(
            "mg_errors",
            vec![
                s("mg\r\n"),
                s("mg {p}a v v\r\n"),
                s("mg {p}a zz\r\n"),
                s("mg {p}a T1x\r\n"),
                s("mg {p}a N\r\n"),
                s("mg {p}a b\r\n"),
                s("mg {p}a O123456789012345678901234567890123\r\n"),
                s("mg {p}a s t c f l h k v O1 q u T1 N1 R1 P L I F1\r\n"),
                s(&format!("mg {{p}}{} v\r\n", "k".repeat(250))),
                s("MG {p}a\r\n"),
                s("mx {p}a\r\n"),
                s("mg {p}a Pproxy Lpath v\r\n"),
            ],
        ),
        text(
            "vivify_wins_once",
            vec![
                s("mg {p}a N30 v t\r\n"),
                s("mg {p}a N30 v t\r\n"),
                s("mg {p}a t R40\r\n"),
                s("ms {p}a 5\r\nfresh\r\n"),
                s("mg {p}a N30 v\r\n"),
                s("mg {p}b T60 N30 t v\r\n"),
                s("mg {p}c N30 T60 t v\r\n"),
            ],
        ),
        text(
            "recache_wins_below_the_ttl",
            vec![
                s("ms {p}a 2 T100\r\nhi\r\n"),
                s("mg {p}a R30 v t\r\n"),
                s("mg {p}a R200 v t\r\n"),
                s("mg {p}a R200 v t\r\n"),
                s("ms {p}b 2\r\nhi\r\n"),
                s("mg {p}b R30 v\r\n"),
            ],
        ),
        text(
            "invalidate_then_one_winner",
            vec![
                s("ms {p}a 3 T100\r\nold\r\n"),
                s("md {p}a I T30\r\n"),
                s("mg {p}a t v c\r\n"),
                s("mg {p}a t v\r\n"),
                s("mg {p}a v\r\n"),
                Step::capture("mg {p}a c\r\n", "stale"),
                s("ms {p}a 3 C{cas:stale}\r\nnew\r\n"),
                s("mg {p}a v t\r\n"),
                s("md {p}a q I\r\nmg {p}a v\r\n"),
            ],
        ),
        text(
            "set_stale_with_an_older_cas",
            vec![
                Step::capture("ms {p}a 1 c\r\nx\r\n", "first"),
                s("ms {p}a 1\r\ny\r\n"),
                s("ms {p}a 1 C{cas:first} I\r\nz\r\n"),
                s("mg {p}a v\r\n"),
                s("mg {p}a v\r\n"),
                s("ms {p}a 1 C{cas:first}\r\nw\r\n"),
            ],
        ),
        text(
            "ms_modes",
            vec![
                s("ms {p}a 2 MA\r\nhi\r\n"),
                s("ms {p}a 2 MP\r\nhi\r\n"),
                s("ms {p}a 2 MR\r\nhi\r\n"),
                s("ms {p}a 2 ME F5 T100\r\nab\r\n"),
                s("ms {p}a 2 ME\r\ncd\r\n"),
                s("ms {p}a 2 MA\r\nef\r\n"),
                s("ms {p}a 2 MP\r\n01\r\n"),
                s("mg {p}a v f s t\r\n"),
                s("ms {p}a 1 MR F7\r\nr\r\n"),
                s("mg {p}a v f t\r\n"),
                s("ms {p}a 1 MS\r\ns\r\n"),
                s("mg {p}a v f t\r\n"),
                s("ms {p}a 0\r\n\r\n"),
                s("mg {p}a v s\r\n"),
            ],
        ),
        text(
            "ms_cas_and_returned_flags",
            vec![
                Step::capture("ms {p}a 2 c k Oab\r\nhi\r\n", "one"),
                s("ms {p}a 2 C{cas:one} c\r\nho\r\n"),
                s("ms {p}a 2 C{cas:one} c\r\nhu\r\n"),
                s("ms {p}missing 2 C123 c\r\nhi\r\n"),
                Step::capture("mg {p}a c\r\n", "two"),
                s("ms {p}a 1 MA C{cas:two}\r\nx\r\n"),
                s("ms {p}a 1 MA C1\r\ny\r\n"),
                s("ms {p}a 1 MP C0\r\nz\r\n"),
                s("ms {p}a 1 ME C1\r\nz\r\n"),
                s("ms {p}a 1 MR C1\r\nz\r\n"),
                s("mg {p}a v\r\n"),
                s("gets {p}a\r\n"),
            ],
        ),
        text(
            "ms_quiet_pipeline",
            vec![
                s("ms {p}a 1 q\r\na\r\nms {p}b 1 q\r\nb\r\nms {p}c 1 q ME\r\nc\r\nms {p}a 1 q ME\r\nx\r\n"),
                s("mg {p}a q v k\r\nmg {p}zz q v k\r\nmg {p}b q v k\r\nmg {p}c q v k\r\n"),
                s("md {p}a q\r\nmd {p}a q\r\nmd {p}b q C1\r\n"),
            ],
        ),
        text(
            "ms_errors",
            vec![
                s("ms\r\n"),
                s("ms {p}a\r\n"),
                s("ms {p}a abc\r\nhi\r\n"),
                s("ms {p}a -1\r\nhi\r\n"),
                s("ms {p}a 2 MZ\r\nhi\r\n"),
                s("ms {p}a 2 F-1\r\nhi\r\n"),
                s("ms {p}a 2 T1x\r\nhi\r\n"),
                s("ms {p}a 2 v v\r\nhi\r\n"),
                s("ms {p}a 2 zz\r\nhi\r\n"),
                s("ms {p}a 2 MAB\r\nhi\r\n"),
                s("ms {p}a 2 C-5\r\nhi\r\n"),
                s("ms {p}a 2 b\r\nhi\r\n"),
                s("ms {p}a 2 O123456789012345678901234567890123\r\nhi\r\n"),
                s("ms {p}a 1\r\nabc\r\n"),
                s("ms {p}a 2 q\r\nabc\r\n"),
                s("mg {p}a v\r\n"),
            ],
        ),
        text(
            "base64_keys",
            vec![
                s("ms {p}YWJj 2 b k\r\nhi\r\n"),
                s("mg {p}YWJj b k v\r\n"),
                s("ms YWJjZA== 2 b k c\r\nhi\r\n"),
                s("mg YWJjZA== b k v s\r\n"),
                s("get abcd\r\n"),
                s("md YWJjZA== b k q\r\nmg YWJjZA== b k v\r\n"),
                s("me YWJjZA== b\r\n"),
                s("mg !!!! b\r\n"),
                s("md !!!! b\r\n"),
            ],
        ),
        text(
            "md_flags",
            vec![
                s("md {p}a\r\n"),
                s("md {p}a k Oz q\r\n"),
                s("ms {p}a 1\r\nx\r\n"),
                Step::capture("mg {p}a c\r\n", "a"),
                s("md {p}a C1\r\n"),
                s("md {p}a C{cas:a} k\r\n"),
                s("mg {p}a v\r\n"),
                s("md {p}a zz\r\n"),
                s("md {p}a T1x\r\n"),
                s("md\r\n"),
                s("md {p}a v s t\r\n"),
            ],
        ),
        text(
            "ma_counters",
            vec![
                s("ma {p}n\r\n"),
                s("ma {p}n q\r\n"),
                s("ma {p}n N0 J5 v\r\n"),
                s("ma {p}n v\r\n"),
                s("ma {p}n v t MD D2\r\n"),
                s("ma {p}n v M- D10\r\n"),
                s("ma {p}n v M+ D18446744073709551615\r\n"),
                s("ma {p}n v MI D2\r\n"),
                s("ma {p}n q\r\n"),
                s("ma {p}n q v\r\n"),
                s("ma {p}m q N0\r\n"),
                s("ma {p}n C1 v\r\n"),
                Step::capture("ma {p}n c\r\n", "n"),
                s("ma {p}n C{cas:n} v\r\n"),
                s("ma {p}n T100 t v\r\n"),
                s("ma {p}n t T200 v\r\n"),
                s("ma {p}o N100 t v\r\n"),
                s("ma {p}p T50 N100 t v\r\n"),
                s("ma {p}n k O7 v\r\n"),
                // Not a classic get: memcached pads a counter that shrank in place.
                s("ma {p}n v D0\r\n"),
            ],
        ),
        text(
            "ma_errors",
            vec![
                s("ma\r\n"),
                s("ma {p}n Mx\r\n"),
                s("ma {p}n D-1\r\n"),
                s("ma {p}n Dx\r\n"),
                s("ma {p}n J-1 N0\r\n"),
                s("ms {p}t 3\r\nabc\r\n"),
                s("ma {p}t\r\n"),
                s("ma {p}t C1\r\n"),
                s("ms {p}e 0\r\n\r\n"),
                s("ma {p}e C1\r\n"),
                s("ma {p}missing k O1\r\n"),
            ],
        ),
        text(
            "mn_and_me",
            vec![
                s("mn\r\n"),
                s("mn with words\r\n"),
                s("me\r\n"),
                s("me {p}none\r\n"),
                s("set {p}a 0 100 1\r\nx\r\n"),
                s("me {p}a\r\n"),
                s("get {p}a\r\nme {p}a\r\n"),
            ],
        ),
        text(
            "classic_and_meta_mixed",
            vec![
                s("set {p}a 5 0 2\r\nhi\r\n"),
                s("mg {p}a v f s\r\n"),
                Step::capture("mg {p}a c\r\n", "a"),
                s("cas {p}a 6 0 2 {cas:a}\r\nho\r\n"),
                s("gets {p}a\r\n"),
                Step::capture("gets {p}a\r\n", "b"),
                s("ms {p}a 2 C{cas:b}\r\nhu\r\n"),
                s("get {p}a\r\n"),
                s("incr {p}c 1\r\n"),
                s("ma {p}c N0 J10 v\r\n"),
                s("incr {p}c 5\r\n"),
                s("touch {p}a 100\r\n"),
                s("mg {p}a t h\r\n"),
                s("gat 200 {p}a\r\n"),
                s("mg {p}a t\r\n"),
                s("delete {p}a\r\n"),
                s("mg {p}a v\r\n"),
                s("flush_all\r\n"),
                s("mg {p}c v\r\n"),
            ],
        ),
        text(
            "stale_and_token_survive_classic_commands",
            vec![
                s("ms {p}a 1\r\nx\r\n"),
                s("md {p}a I\r\n"),
                s("touch {p}a 100\r\n"),
                s("mg {p}a v t\r\n"),
                s("mg {p}a v\r\n"),
                s("append {p}a 0 0 1\r\ny\r\n"),
                s("mg {p}a v\r\n"),
            ],
        ),
    ]
}

fn get(opcode: Opcode, key: &str, opaque: u32) -> BinaryRequest {
    BinaryRequest::keyed(opcode, key.as_bytes().to_vec()).with_opaque(opaque)
}

fn store(opcode: Opcode, key: &str, value: &str, flags: u32, exptime: u32) -> BinaryRequest {
    BinaryRequest::store(
        opcode,
        key.as_bytes().to_vec(),
        flags,
        exptime,
        value.as_bytes().to_vec(),
    )
}

fn f(frames: Vec<BinaryRequest>) -> Step {
    Step::frames(frames)
}

/// The binary sessions.
fn binary_sessions() -> Vec<Session> {
    use Opcode::*;
    vec![
        binary(
            "binary_get_family",
            vec![
                f(vec![get(Get, "{p}a", 1)]),
                f(vec![get(GetK, "{p}a", 2)]),
                f(vec![get(GetQ, "{p}a", 3), get(GetKQ, "{p}a", 4)]),
                f(vec![store(Set, "{p}a", "hello", 0xdead_beef, 0)]),
                f(vec![get(Get, "{p}a", 5), get(GetK, "{p}a", 6)]),
                f(vec![
                    get(GetQ, "{p}a", 7),
                    get(GetKQ, "{p}a", 8),
                    get(GetKQ, "{p}zz", 9),
                ]),
            ],
        ),
        binary(
            "binary_storage",
            vec![
                f(vec![store(Add, "{p}a", "one", 1, 0)]),
                f(vec![store(Add, "{p}a", "two", 2, 0)]),
                f(vec![store(Replace, "{p}b", "x", 0, 0)]),
                f(vec![store(Replace, "{p}a", "three", 3, 0)]),
                f(vec![get(Get, "{p}a", 1)]),
                f(vec![
                    store(SetQ, "{p}c", "q", 0, 0),
                    store(AddQ, "{p}c", "q", 0, 0),
                ]),
                f(vec![
                    store(ReplaceQ, "{p}d", "q", 0, 0),
                    store(ReplaceQ, "{p}c", "r", 0, 0),
                ]),
                f(vec![BinaryRequest::concat(
                    Append,
                    b"{p}a".to_vec(),
                    b"+a".to_vec(),
                )]),
                f(vec![BinaryRequest::concat(
                    Prepend,
                    b"{p}a".to_vec(),
                    b"p+".to_vec(),
                )]),
                f(vec![BinaryRequest::concat(
                    AppendQ,
                    b"{p}zz".to_vec(),
                    b"x".to_vec(),
                )]),
                f(vec![BinaryRequest::concat(
                    PrependQ,
                    b"{p}a".to_vec(),
                    b"q".to_vec(),
                )]),
                f(vec![get(GetK, "{p}a", 2), get(GetK, "{p}c", 3)]),
            ],
        ),
        binary(
            "binary_cas",
            vec![
                f(vec![store(Set, "{p}a", "v1", 0, 0)]).keep_cas("a"),
                f(vec![store(Set, "{p}a", "v2", 0, 0).with_cas(CAS_HOLE)]).with_cas("a"),
                f(vec![store(Set, "{p}a", "v3", 0, 0).with_cas(CAS_HOLE)]).with_cas("a"),
                f(vec![store(Set, "{p}zz", "v", 0, 0).with_cas(12345)]),
                f(vec![store(Add, "{p}a", "v", 0, 0).with_cas(12345)]),
                f(vec![store(Add, "{p}yy", "v", 0, 0).with_cas(12345)]),
                f(vec![get(Get, "{p}a", 1)]).keep_cas("b"),
                f(vec![BinaryRequest::concat(
                    Append,
                    b"{p}a".to_vec(),
                    b"!".to_vec(),
                )
                .with_cas(1)]),
                f(vec![BinaryRequest::concat(
                    Append,
                    b"{p}a".to_vec(),
                    b"!".to_vec(),
                )
                .with_cas(CAS_HOLE)])
                .with_cas("b"),
                f(vec![get(Get, "{p}a", 1)]).keep_cas("c"),
                f(vec![get(Delete, "{p}a", 1).with_cas(1)]),
                f(vec![get(Delete, "{p}a", 1).with_cas(CAS_HOLE)]).with_cas("c"),
                f(vec![get(Get, "{p}a", 1)]),
            ],
        ),
        binary(
            "binary_delete_and_counters",
            vec![
                f(vec![get(Delete, "{p}a", 1)]),
                f(vec![get(DeleteQ, "{p}a", 2)]),
                f(vec![BinaryRequest::arith(
                    Increment,
                    b"{p}n".to_vec(),
                    1,
                    5,
                    ARITH_NO_CREATE,
                )]),
                f(vec![BinaryRequest::arith(
                    Increment,
                    b"{p}n".to_vec(),
                    1,
                    5,
                    0,
                )]),
                f(vec![BinaryRequest::arith(
                    Increment,
                    b"{p}n".to_vec(),
                    10,
                    5,
                    0,
                )]),
                f(vec![BinaryRequest::arith(
                    Decrement,
                    b"{p}n".to_vec(),
                    100,
                    5,
                    0,
                )]),
                f(vec![BinaryRequest::arith(
                    IncrementQ,
                    b"{p}n".to_vec(),
                    u64::MAX,
                    0,
                    0,
                )]),
                f(vec![BinaryRequest::arith(
                    DecrementQ,
                    b"{p}m".to_vec(),
                    1,
                    7,
                    0,
                )]),
                f(vec![get(Get, "{p}n", 1), get(Get, "{p}m", 2)]),
                f(vec![store(Set, "{p}t", "text", 0, 0)]),
                f(vec![BinaryRequest::arith(
                    Increment,
                    b"{p}t".to_vec(),
                    1,
                    0,
                    0,
                )]),
                f(vec![get(Delete, "{p}n", 3), get(DeleteQ, "{p}m", 4)]),
                f(vec![get(Get, "{p}n", 5)]),
            ],
        ),
        binary(
            "binary_touch_and_gat",
            vec![
                f(vec![BinaryRequest::touch(Touch, b"{p}a".to_vec(), 100)]),
                f(vec![store(Set, "{p}a", "x", 3, 0)]),
                f(vec![BinaryRequest::touch(Touch, b"{p}a".to_vec(), 100)]),
                f(vec![BinaryRequest::touch(Gat, b"{p}a".to_vec(), 200)]),
                f(vec![BinaryRequest::touch(GatK, b"{p}a".to_vec(), 200)]),
                f(vec![
                    BinaryRequest::touch(GatQ, b"{p}zz".to_vec(), 200),
                    BinaryRequest::touch(GatKQ, b"{p}zz".to_vec(), 200),
                    BinaryRequest::touch(GatKQ, b"{p}a".to_vec(), 200),
                ]),
                f(vec![BinaryRequest::touch(GatK, b"{p}zz".to_vec(), 200)]),
            ],
        ),
        binary(
            "binary_misc",
            vec![
                f(vec![BinaryRequest::new(Noop).with_opaque(77)]),
                f(vec![BinaryRequest::new(Version)]),
                f(vec![store(Set, "{p}a", "x", 0, 0)]),
                f(vec![BinaryRequest::flush(Flush, None)]),
                f(vec![get(Get, "{p}a", 1)]),
                f(vec![
                    store(Set, "{p}a", "x", 0, 0),
                    BinaryRequest::flush(FlushQ, Some(0)),
                ]),
                f(vec![get(Get, "{p}a", 1)]),
                f(vec![BinaryRequest::stat(b"nonsense".to_vec())]),
                f(vec![BinaryRequest::stat(b"reset".to_vec())]),
                f(vec![BinaryRequest::new(Unknown(0x40))]),
                f(vec![BinaryRequest::new(SaslListMechs)]),
            ],
        ),
        binary(
            "binary_errors",
            vec![f(vec![
                get(Get, "{p}a", 1).with_value(b"value on a get".to_vec())
            ])
            .closes()],
        ),
        binary(
            "binary_too_large_set_unlinks",
            vec![
                f(vec![store(Set, "{p}a", "old", 0, 0)]),
                f(vec![store(Set, "{p}a", &"x".repeat(1_100_000), 0, 0)]),
                f(vec![get(Get, "{p}a", 1)]),
                f(vec![store(Set, "{p}b", "old", 0, 0)]),
                f(vec![store(Add, "{p}b", &"x".repeat(1_100_000), 0, 0)]),
                f(vec![get(Get, "{p}b", 1)]),
            ],
        ),
        binary(
            "binary_quit",
            vec![
                f(vec![BinaryRequest::new(Noop)]),
                Step::frames(vec![BinaryRequest::new(Quit).with_opaque(9)]).closes(),
            ],
        ),
        binary(
            "binary_quitq",
            vec![Step::frames(vec![BinaryRequest::new(QuitQ)]).closes()],
        ),
        binary(
            "binary_bad_magic_closes",
            vec![
                f(vec![BinaryRequest::new(Opcode::Noop)]),
                Step::new([0x81u8; 24]).closes(),
            ],
        ),
    ]
}

fn all_sessions() -> Vec<Session> {
    text_sessions()
        .into_iter()
        .chain(binary_sessions())
        .collect()
}

fn transcripts(addr: SocketAddr, sessions: &[Session], run_id: &str) -> Vec<Transcript> {
    sessions
        .iter()
        .enumerate()
        .map(|(i, session)| run(addr, session, &format!("{run_id}{i:03}_")))
        .collect()
}

/// Runs every session against a fresh memcached and against `memcord`; fails with every
/// difference. Returns how many text/meta requests and binary frames were compared.
pub fn compare_with_memcached(memcord: SocketAddr) -> (usize, usize) {
    let sessions = all_sessions();
    let memcached = MemcachedProcess::start();
    let run_id = format!("d{}_", std::process::id());
    let expected = transcripts(memcached.addr(), &sessions, &run_id);
    let got = transcripts(memcord, &sessions, &run_id);
    let mut failures = Vec::new();
    for (session, (expected, got)) in sessions.iter().zip(expected.iter().zip(&got)) {
        failures.extend(differences(session, expected, got));
    }
    let text: usize = sessions
        .iter()
        .filter(|s| s.wire == Wire::Text)
        .map(request_count)
        .sum();
    let binary: usize = sessions
        .iter()
        .filter(|s| s.wire == Wire::Binary)
        .map(request_count)
        .sum();
    println!("differential: {text} text/meta requests and {binary} binary frames compared");
    assert!(
        failures.is_empty(),
        "{} differences from memcached:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
    (text, binary)
}
