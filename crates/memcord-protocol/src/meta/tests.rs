//! Meta codec tests: exact bytes in and out for every command and error path, and property
//! tests (no panics on any bytes; compose → parse round-trips both ways).

use super::*;
use crate::{parse_request, parse_response, AfterError, Limits, ParseOutcome};
use crate::{Request, Response, ResponseOutcome};
use bytes::BytesMut;
use proptest::prelude::*;

fn parse(input: &str) -> ParseOutcome {
    parse_request(input.as_bytes(), &Limits::default())
}

fn request(input: &str) -> Request {
    match parse(input) {
        ParseOutcome::Request { request, consumed } => {
            assert_eq!(consumed, input.len(), "{input:?} consumed");
            request
        }
        other => panic!("{input:?} did not parse: {other:?}"),
    }
}

fn refused(input: &str) -> (Response, AfterError) {
    match parse(input) {
        ParseOutcome::Invalid { reply, after, .. } => (reply, after),
        other => panic!("{input:?} was not refused: {other:?}"),
    }
}

fn ce(reason: &str) -> Response {
    Response::ClientError(reason.into())
}

fn composed(reply: MetaReply) -> String {
    let mut out = BytesMut::new();
    reply.compose(&mut out);
    String::from_utf8(out.to_vec()).unwrap()
}

fn flags_of(request: &Request) -> &MetaFlags {
    match request {
        Request::MetaGet(r) => &r.flags,
        Request::MetaSet(r) => &r.flags,
        Request::MetaDelete(r) => &r.flags,
        Request::MetaArith(r) => &r.flags,
        other => panic!("not a meta request: {other:?}"),
    }
}

#[test]
fn mg_reads_its_flags_in_order() {
    let Request::MetaGet(get) = request("mg foo s t v c O123 T30 N5 R10 u q k\r\n") else {
        panic!("not an mg");
    };
    assert_eq!(&get.key[..], b"foo");
    assert!(get.value && get.no_bump);
    assert_eq!(
        (get.touch, get.vivify, get.recache),
        (Some(30), Some(5), Some(10))
    );
    assert_eq!(get.flags.letters(), b"stvcOTNRuqk");
    assert_eq!(get.flags.opaque.as_deref(), Some(&b"123"[..]));
    assert!(get.flags.quiet && !get.flags.base64);
}

#[test]
fn ms_reads_its_data_block_and_mode() {
    let Request::MetaSet(set) = request("ms k 2 MA F7 T9 C42 I c\r\nhi\r\n") else {
        panic!("not an ms");
    };
    assert_eq!((&set.key[..], &set.value[..]), (&b"k"[..], &b"hi"[..]));
    assert_eq!(set.mode, SetMode::Append);
    assert_eq!((set.client_flags, set.exptime), (7, 9));
    assert_eq!(set.compare_cas, Some(42));
    assert!(set.invalidate);
    assert_eq!(
        parse("ms k 2 T1\r\nh"),
        ParseOutcome::Incomplete,
        "waits for the block"
    );
}

#[test]
fn md_and_ma_and_the_rest() {
    let Request::MetaDelete(delete) = request("md k I T30 C5 q\r\n") else {
        panic!("not an md");
    };
    assert!(delete.invalidate && delete.flags.quiet);
    assert_eq!((delete.touch, delete.compare_cas), (Some(30), Some(5)));
    let Request::MetaArith(arith) = request("ma k MD D5 J9 N0 v\r\n") else {
        panic!("not an ma");
    };
    assert!(!arith.incr && arith.value);
    assert_eq!((arith.delta, arith.initial, arith.vivify), (5, 9, Some(0)));
    let Request::MetaArith(default) = request("ma k\r\n") else {
        panic!("not an ma");
    };
    assert!(default.incr);
    assert_eq!(default.delta, 1);
    assert_eq!(request("mn\r\n"), Request::MetaNoop);
    assert_eq!(request("mn anything at all\r\n"), Request::MetaNoop);
    assert_eq!(
        request("me azE= b\r\n"),
        Request::MetaDebug {
            key: Bytes::from_static(b"k1"),
            base64: true
        }
    );
}

#[test]
fn base64_keys_are_decoded_and_echoed_encoded() {
    let req = request("mg azE= b k v\r\n");
    let Request::MetaGet(get) = &req else {
        panic!("not an mg");
    };
    assert_eq!(&get.key[..], b"k1");
    assert!(get.flags.base64);
    let reply = MetaReply {
        kind: MetaKind::Get,
        status: MetaStatus::Miss,
        key: get.key.clone(),
        flags: get.flags.clone(),
        item: None,
    };
    assert_eq!(composed(reply), "EN kazE= b\r\n");
}

#[test]
fn errors_are_memcacheds_own() {
    let cont = AfterError::Continue;
    let long_key = format!("mg {} v\r\n", "k".repeat(251));
    let many = "mg k s t c f l h k v O1 q u T1 N1 R1 P L I F1\r\n";
    let table: Vec<(&str, Response, AfterError)> = vec![
        ("mg\r\n", Response::Error, cont),
        ("md\r\n", Response::Error, cont),
        ("MG k\r\n", Response::Error, cont),
        ("mx k\r\n", Response::Error, cont),
        ("me\r\n", ce("bad command line format"), cont),
        ("me !!!! b\r\n", ce("bad command line format"), cont),
        (&long_key, ce("bad command line format"), cont),
        ("mg k v v\r\n", ce("duplicate flag"), cont),
        ("mg k zz\r\n", ce("invalid flag"), cont),
        ("mg k T1x\r\n", ce("bad token in command line format"), cont),
        ("mg k b\r\n", ce("error decoding key"), cont),
        ("md k zz\r\n", ce("invalid or duplicate flag"), cont),
        ("md k T1x\r\n", ce("invalid or duplicate flag"), cont),
        ("ma k D-1\r\n", ce("invalid or duplicate flag"), cont),
        ("ma k Mx\r\n", ce("invalid mode for ma M token"), cont),
        (
            "mg k O123456789012345678901234567890123\r\n",
            ce("opaque token too long"),
            cont,
        ),
        ("ms k\r\n", ce("bad command line format"), cont),
        ("ms k abc\r\n", ce("bad command line format"), cont),
        ("ms k -1\r\n", ce("bad command line format"), cont),
        (
            "ms k 2 MZ\r\nhi\r\n",
            ce("invalid mode for ms M token"),
            AfterError::Swallow(4),
        ),
        (
            "ms k 2 F-1\r\nhi\r\n",
            ce("bad command line format"),
            AfterError::Swallow(4),
        ),
        (
            "ms k 2 MAB\r\nhi\r\n",
            ce("incorrect length for M token"),
            AfterError::Swallow(4),
        ),
        (
            "ms k 2 v v\r\nhi\r\n",
            ce("duplicate flag"),
            AfterError::Swallow(4),
        ),
        (
            "ms k 2\r\nhix\r\n",
            ce("bad data chunk"),
            AfterError::Continue,
        ),
    ];
    for (input, reply, after) in table {
        assert_eq!(refused(input), (reply, after), "{input:?}");
    }
    assert_eq!(
        refused(many).0,
        ce("options flags are too long"),
        "18 flags"
    );
    let too_large = format!("ms k {}\r\n", Limits::default().max_value_len + 1);
    assert_eq!(
        request(&too_large),
        Request::Oversized {
            op: crate::StoreOp::Set,
            key: Bytes::from_static(b"k"),
            swallow: Limits::default().max_value_len + 3,
            noreply: false,
        },
        "an oversized ms unlinks the key's old item, as memcached's does"
    );
}

fn hit(value: &str) -> MetaItem {
    MetaItem {
        value: Bytes::copy_from_slice(value.as_bytes()),
        client_flags: 5,
        cas: 77,
        ttl: 30,
        footprint: 120,
        ..MetaItem::default()
    }
}

fn reply_to(input: &str, kind: MetaKind, status: MetaStatus, item: Option<MetaItem>) -> String {
    let req = request(input);
    composed(MetaReply {
        kind,
        status,
        key: Bytes::from_static(b"foo"),
        flags: flags_of(&req).clone(),
        item,
    })
}

#[test]
fn replies_list_flags_in_request_order() {
    use MetaKind::*;
    use MetaStatus::*;
    let get = "mg foo s t c f l h k O9 v\r\n";
    assert_eq!(
        reply_to(get, Get, Found, Some(hit("hi"))),
        "VA 2 s2 t30 c77 f5 l0 h0 kfoo O9\r\nhi\r\n"
    );
    assert_eq!(reply_to(get, Get, Miss, None), "EN kfoo O9\r\n");
    assert_eq!(reply_to("mg foo q\r\n", Get, Miss, None), "");
    assert_eq!(
        reply_to("mg foo q\r\n", Get, Found, Some(hit("hi"))),
        "HD\r\n",
        "a quiet hit is still sent"
    );
    let marked = MetaItem {
        stale: true,
        token_sent: true,
        ..hit("x")
    };
    assert_eq!(
        reply_to("mg foo c\r\n", Get, Found, Some(marked)),
        "HD c77 Z X\r\n"
    );
    let won = MetaItem {
        won: true,
        ..hit("")
    };
    assert_eq!(
        reply_to("mg foo v\r\n", Get, Found, Some(won)),
        "VA 0 W\r\n\r\n"
    );
    let touched = MetaItem {
        ttl_touched: Some(90),
        ..hit("x")
    };
    assert_eq!(
        reply_to("mg foo t T90 s\r\n", Get, Found, Some(touched.clone())),
        "HD t30 s1\r\n",
        "a t before T shows the old TTL"
    );
    assert_eq!(
        reply_to("mg foo T90 t\r\n", Get, Found, Some(touched)),
        "HD t90\r\n"
    );
}

#[test]
fn set_delete_and_arith_replies() {
    use MetaKind::*;
    use MetaStatus::*;
    let stored = Some(hit(""));
    assert_eq!(
        reply_to("ms foo 2 c k Oab\r\nhi\r\n", Set, Done, stored.clone()),
        "HD c77 kfoo Oab\r\n"
    );
    assert_eq!(
        reply_to("ms foo 2 c\r\nhi\r\n", Set, NotStored, None),
        "NS c0\r\n"
    );
    assert_eq!(reply_to("ms foo 2 q\r\nhi\r\n", Set, Done, stored), "");
    assert_eq!(
        reply_to("ms foo 2 q\r\nhi\r\n", Set, Exists, None),
        "EX\r\n"
    );
    assert_eq!(reply_to("md foo q\r\n", Delete, Done, None), "");
    assert_eq!(
        reply_to("md foo k Oz\r\n", Delete, NotFound, None),
        "NF kfoo Oz\r\n"
    );
    let counted = MetaItem {
        ttl: -1,
        ..hit("3")
    };
    assert_eq!(
        reply_to("ma foo v t c\r\n", Arith, Found, Some(counted.clone())),
        "VA 1 t-1 c77\r\n3\r\n"
    );
    assert_eq!(reply_to("ma foo q v\r\n", Arith, Found, Some(counted)), "");
    let created = MetaItem {
        ttl: -1,
        ttl_vivified: Some(-1),
        ..hit("0")
    };
    assert_eq!(
        reply_to("ma foo q N0\r\n", Arith, Found, Some(created)),
        "HD\r\n",
        "a quiet creation is still sent"
    );
    assert_eq!(reply_to("ma foo\r\n", Arith, NotFound, None), "NF\r\n");
}

#[test]
fn me_prints_memcacheds_fields() {
    let item = MetaItem {
        ttl: 30,
        idle_secs: 2,
        hit_before: true,
        footprint: 99,
        class: 2,
        ..hit("v")
    };
    let reply = MetaReply {
        kind: MetaKind::Debug,
        status: MetaStatus::Found,
        key: Bytes::from_static(b"foo"),
        flags: MetaFlags::new(),
        item: Some(item),
    };
    assert_eq!(
        composed(reply),
        "ME foo exp=-30 la=2 cas=77 fetch=yes cls=2 size=99\r\n"
    );
}

#[test]
fn client_side_parses_every_meta_reply() {
    let limits = Limits::default();
    let cases: Vec<(&[u8], MetaLine)> = vec![
        (
            b"VA 2 s2 c7\r\nhi\r\n",
            MetaLine {
                code: *b"VA",
                tokens: vec![Bytes::from_static(b"s2"), Bytes::from_static(b"c7")],
                value: Some(Bytes::from_static(b"hi")),
            },
        ),
        (
            b"HD\r\n",
            MetaLine {
                code: *b"HD",
                tokens: vec![],
                value: None,
            },
        ),
        (
            b"EN\r\n",
            MetaLine {
                code: *b"EN",
                tokens: vec![],
                value: None,
            },
        ),
        (
            b"MN\r\n",
            MetaLine {
                code: *b"MN",
                tokens: vec![],
                value: None,
            },
        ),
    ];
    for (bytes, line) in cases {
        assert_eq!(
            parse_response(bytes, &limits),
            ResponseOutcome::Response {
                response: Response::MetaLine(line),
                consumed: bytes.len()
            }
        );
    }
    assert_eq!(
        parse_response(b"VA 5 s5\r\nab", &limits),
        ResponseOutcome::Incomplete
    );
    assert!(matches!(
        parse_response(b"VA 2\r\nhiXX", &limits),
        ResponseOutcome::Invalid(_)
    ));
    // `END` is still a classic reply, not `EN` plus a letter.
    assert_eq!(
        parse_response(b"END\r\n", &limits),
        ResponseOutcome::Response {
            response: Response::Values(vec![]),
            consumed: 5
        }
    );
}

fn key_strategy() -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(0x21u8..0x7f, 1..=40).prop_map(Bytes::from)
}

fn token_value() -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(prop_oneof![b'a'..=b'z', b'0'..=b'9'], 1..=20).prop_map(Bytes::from)
}

/// A flag set whose letters match the fields set (what a client composes).
fn flags_strategy(letters: &'static [u8]) -> impl Strategy<Value = (Vec<u8>, Option<Bytes>)> {
    (
        proptest::sample::subsequence(letters.to_vec(), 0..=letters.len()).prop_shuffle(),
        proptest::option::of(token_value()),
    )
}

fn meta_flags(letters: &[u8], opaque: Option<Bytes>) -> MetaFlags {
    let mut flags = MetaFlags::with_letters(letters);
    flags.quiet = letters.contains(&b'q');
    flags.base64 = letters.contains(&b'b');
    flags.opaque = if letters.contains(&b'O') {
        Some(opaque.unwrap_or_else(|| Bytes::from_static(b"1")))
    } else {
        None
    };
    flags
}

fn has(letters: &[u8], letter: u8) -> bool {
    letters.contains(&letter)
}

fn get_strategy() -> impl Strategy<Value = Request> {
    (
        key_strategy(),
        flags_strategy(b"bcfhklOqstuvTNR"),
        -100i64..100_000,
    )
        .prop_map(|(key, (letters, opaque), n)| {
            Request::MetaGet(Box::new(MetaGet {
                key,
                value: has(&letters, b'v'),
                no_bump: has(&letters, b'u'),
                touch: has(&letters, b'T').then_some(n),
                vivify: has(&letters, b'N').then_some(n + 1),
                recache: has(&letters, b'R').then_some(n + 2),
                flags: meta_flags(&letters, opaque),
            }))
        })
}

fn set_strategy() -> impl Strategy<Value = Request> {
    (
        key_strategy(),
        flags_strategy(b"bckOqITFCM"),
        proptest::collection::vec(any::<u8>(), 0..100),
        any::<u32>(),
        any::<u64>(),
        -100i64..100_000,
        proptest::sample::select(vec![
            SetMode::Set,
            SetMode::Add,
            SetMode::Replace,
            SetMode::Append,
            SetMode::Prepend,
        ]),
    )
        .prop_map(
            |(key, (letters, opaque), value, flags, cas, exptime, mode)| {
                Request::MetaSet(Box::new(MetaSet {
                    key,
                    value: Bytes::from(value),
                    mode: if has(&letters, b'M') {
                        mode
                    } else {
                        SetMode::Set
                    },
                    compare_cas: has(&letters, b'C').then_some(cas),
                    invalidate: has(&letters, b'I'),
                    client_flags: if has(&letters, b'F') { flags } else { 0 },
                    exptime: if has(&letters, b'T') { exptime } else { 0 },
                    flags: meta_flags(&letters, opaque),
                }))
            },
        )
}

fn delete_strategy() -> impl Strategy<Value = Request> {
    (
        key_strategy(),
        flags_strategy(b"bCIkOqT"),
        any::<u64>(),
        -100i64..100_000,
    )
        .prop_map(|(key, (letters, opaque), cas, exptime)| {
            Request::MetaDelete(Box::new(MetaDelete {
                key,
                compare_cas: has(&letters, b'C').then_some(cas),
                invalidate: has(&letters, b'I'),
                touch: has(&letters, b'T').then_some(exptime),
                flags: meta_flags(&letters, opaque),
            }))
        })
}

fn arith_strategy() -> impl Strategy<Value = Request> {
    (
        key_strategy(),
        flags_strategy(b"bCNJDTMqtcvkO"),
        any::<(u64, u64, u64, bool)>(),
        -100i64..100_000,
    )
        .prop_map(|(key, (letters, opaque), (cas, delta, initial, incr), n)| {
            Request::MetaArith(Box::new(MetaArith {
                key,
                incr: !has(&letters, b'M') || incr,
                delta: if has(&letters, b'D') { delta } else { 1 },
                initial: if has(&letters, b'J') { initial } else { 0 },
                vivify: has(&letters, b'N').then_some(n),
                compare_cas: has(&letters, b'C').then_some(cas),
                touch: has(&letters, b'T').then_some(n + 1),
                value: has(&letters, b'v'),
                flags: meta_flags(&letters, opaque),
            }))
        })
}

fn meta_request_strategy() -> impl Strategy<Value = Request> {
    prop_oneof![
        get_strategy(),
        set_strategy(),
        delete_strategy(),
        arith_strategy(),
        Just(Request::MetaNoop),
        (key_strategy(), any::<bool>())
            .prop_map(|(key, base64)| Request::MetaDebug { key, base64 }),
    ]
}

fn meta_line_strategy() -> impl Strategy<Value = MetaLine> {
    (
        proptest::sample::select(vec![*b"VA", *b"HD", *b"EN", *b"NF", *b"NS", *b"EX", *b"MN"]),
        proptest::collection::vec(token_value(), 0..6),
        proptest::collection::vec(any::<u8>(), 0..64),
    )
        .prop_map(|(code, tokens, value)| MetaLine {
            value: (&code == b"VA").then(|| Bytes::from(value)),
            code,
            tokens,
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn composed_meta_requests_parse_back(request in meta_request_strategy()) {
        let mut out = BytesMut::new();
        request.compose(&mut out);
        let parsed = parse_request(&out, &Limits::default());
        prop_assert_eq!(
            parsed,
            ParseOutcome::Request { request: request.clone(), consumed: out.len() },
            "wire: {:?}", String::from_utf8_lossy(&out)
        );
        // Every strict prefix is incomplete, never an error.
        for cut in 0..out.len() {
            prop_assert_eq!(parse_request(&out[..cut], &Limits::default()), ParseOutcome::Incomplete);
        }
    }

    #[test]
    fn meta_lines_round_trip(line in meta_line_strategy()) {
        let mut out = BytesMut::new();
        line.compose(&mut out);
        prop_assert_eq!(
            parse_response(&out, &Limits::default()),
            ResponseOutcome::Response { response: Response::MetaLine(line), consumed: out.len() }
        );
    }

    #[test]
    fn a_composed_reply_reads_back_as_its_code_and_flags(
        request in get_strategy(),
        found in any::<bool>(),
        value in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let Request::MetaGet(get) = &request else { unreachable!() };
        let item = found.then(|| MetaItem { value: Bytes::from(value.clone()), ..MetaItem::default() });
        let reply = MetaReply {
            kind: MetaKind::Get,
            status: if found { MetaStatus::Found } else { MetaStatus::Miss },
            key: get.key.clone(),
            flags: get.flags.clone(),
            item,
        };
        let mut out = BytesMut::new();
        reply.compose(&mut out);
        if out.is_empty() {
            prop_assert!(get.flags.quiet && !found);
            return Ok(());
        }
        let ResponseOutcome::Response { response: Response::MetaLine(line), consumed } =
            parse_response(&out, &Limits::default())
        else {
            return Err(TestCaseError::fail(format!("unparsed {:?}", String::from_utf8_lossy(&out))));
        };
        prop_assert_eq!(consumed, out.len());
        let expected_code: &[u8; 2] = match (found, get.value) {
            (false, _) => b"EN",
            (true, true) => b"VA",
            (true, false) => b"HD",
        };
        prop_assert_eq!(&line.code, expected_code);
        if found && get.value {
            prop_assert_eq!(line.value.as_deref(), Some(&value[..]));
        }
        if get.flags.has(b'O') {
            prop_assert_eq!(line.flag(b'O'), get.flags.opaque.as_deref());
        }
    }

    #[test]
    fn any_bytes_after_a_meta_word_never_panic(
        word in proptest::sample::select(vec!["mg", "ms", "md", "ma", "mn", "me"]),
        rest in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let mut input = word.as_bytes().to_vec();
        input.push(b' ');
        input.extend_from_slice(&rest);
        match parse_request(&input, &Limits::default()) {
            ParseOutcome::Request { consumed, .. } | ParseOutcome::Invalid { consumed, .. } => {
                prop_assert!(consumed <= input.len());
            }
            ParseOutcome::Incomplete => {}
        }
    }
}
