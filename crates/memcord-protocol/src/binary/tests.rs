//! Table-driven codec tests (exact bytes in, exact bytes out) for every opcode and every error
//! path, and property tests: no panics on any bytes, `Incomplete` for every strict prefix of a
//! valid frame, compose → parse round trips in both directions.

use super::*;
use crate::{AfterError, Limits};
use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use Opcode::*;

fn limits() -> Limits {
    Limits::default()
}

/// Packs a frame field by field, independently of `Header::encode`, so the tables check the
/// codec against the layout and not against itself.
#[allow(clippy::too_many_arguments)]
fn raw(
    magic: u8,
    opcode: u8,
    key_len: u16,
    extras_len: u8,
    status: u16,
    total: u32,
    opaque: u32,
    cas: u64,
    body: &[u8],
) -> Vec<u8> {
    let mut v = vec![magic, opcode];
    v.extend(key_len.to_be_bytes());
    v.push(extras_len);
    v.push(0);
    v.extend(status.to_be_bytes());
    v.extend(total.to_be_bytes());
    v.extend(opaque.to_be_bytes());
    v.extend(cas.to_be_bytes());
    v.extend(body);
    v
}

/// A request frame whose lengths are those of its parts.
fn req(opcode: u8, extras: &[u8], key: &[u8], value: &[u8]) -> Vec<u8> {
    let total = extras.len() + key.len() + value.len();
    raw(
        0x80,
        opcode,
        key.len() as u16,
        extras.len() as u8,
        0,
        total as u32,
        0,
        0,
        &[extras, key, value].concat(),
    )
}

/// A bare request header announcing the given lengths (no body bytes follow).
fn head(opcode: u8, key_len: u16, extras_len: u8, total: u32) -> Vec<u8> {
    raw(0x80, opcode, key_len, extras_len, 0, total, 0, 0, &[])
}

fn hex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s.bytes().filter(u8::is_ascii_hexdigit).collect();
    digits
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
        .collect()
}

fn composed(request: &BinaryRequest) -> Vec<u8> {
    let mut out = BytesMut::new();
    compose_request(request, &mut out);
    out.to_vec()
}

fn reply_bytes(response: &BinaryResponse) -> Vec<u8> {
    let mut out = BytesMut::new();
    compose_response(response, &mut out);
    out.to_vec()
}

fn parsed(input: &[u8]) -> BinaryRequest {
    match parse_request(input, &limits()) {
        BinaryParse::Request { request, consumed } => {
            assert_eq!(consumed, input.len(), "consumed");
            request
        }
        other => panic!("expected a request, got {other:?}"),
    }
}

fn closed(opcode: Opcode, status: Status, input: &[u8]) -> BinaryParse {
    BinaryParse::Invalid {
        reply: Some(BinaryResponse::error_for(opcode, 0, status)),
        consumed: input.len(),
        after: AfterError::Close,
    }
}

fn swallowed(opcode: Opcode, status: Status, body: usize) -> BinaryParse {
    BinaryParse::Invalid {
        reply: Some(BinaryResponse::error_for(opcode, 0, status)),
        consumed: HEADER_LEN,
        after: if body == 0 {
            AfterError::Continue
        } else {
            AfterError::Swallow(body)
        },
    }
}

fn too_large(opcode: Opcode, key: &'static [u8], value: usize) -> BinaryParse {
    BinaryParse::TooLarge {
        reply: BinaryResponse::error_for(opcode, 0, Status::TooLarge),
        key: Bytes::from_static(key),
        consumed: HEADER_LEN + 8 + key.len(),
        swallow: value,
    }
}

const STORE_EXTRAS: [u8; 8] = [0xde, 0xad, 0xbe, 0xef, 0, 0, 0x1c, 0x20];

fn arith_extras(delta: u64, initial: u64, exptime: u32) -> Vec<u8> {
    [
        &delta.to_be_bytes()[..],
        &initial.to_be_bytes(),
        &exptime.to_be_bytes(),
    ]
    .concat()
}

// ---- the header, byte for byte ---------------------------------------------------------------

#[test]
fn get_request_bytes_match_the_spec_example() {
    let wire = hex("80 00 0005 00 00 0000 00000005 00000000 0000000000000000 48656c6c6f");
    let request = BinaryRequest::keyed(Get, "Hello");
    assert_eq!(parsed(&wire), request);
    assert_eq!(composed(&request), wire);
}

#[test]
fn set_request_bytes_match_the_spec_example() {
    let wire = hex("80 01 0005 08 00 0000 00000012 00000000 0000000000000000
         deadbeef 00001c20 48656c6c6f 576f726c64");
    let request = BinaryRequest::store(Set, "Hello", 0xdeadbeef, 7200, "World");
    assert_eq!(parsed(&wire), request);
    assert_eq!(composed(&request), wire);
    assert_eq!(
        request.decode_extras(),
        Some(Extras::Store {
            flags: 0xdeadbeef,
            exptime: 7200
        })
    );
}

#[test]
fn incr_request_and_reply_bytes() {
    let wire = hex("80 05 0007 14 00 0000 0000001b 00000000 0000000000000000
         0000000000000001 0000000000000000 00000e10 636f756e746572");
    let request = BinaryRequest::arith(Increment, "counter", 1, 0, 3600);
    assert_eq!(parsed(&wire), request);
    assert_eq!(composed(&request), wire);
    let reply = BinaryResponse::counter(&request, 0, 5);
    assert_eq!(
        reply_bytes(&reply),
        hex("81 05 0000 00 00 0000 00000008 00000000 0000000000000005 0000000000000000")
    );
    assert_eq!(reply.counter_value(), Some(0));
}

#[test]
fn get_hit_bytes_match_the_spec_example() {
    let request = BinaryRequest::keyed(Get, "Hello");
    assert_eq!(
        reply_bytes(&BinaryResponse::hit(&request, 0xdeadbeef, "World", 1)),
        hex("81 00 0000 04 00 0000 00000009 00000000 0000000000000001 deadbeef 576f726c64")
    );
}

#[test]
fn header_fields_round_trip_and_short_headers_do_not_decode() {
    let header = Header {
        magic: 0x80,
        opcode: 0x24,
        key_len: 0x0102,
        extras_len: 4,
        data_type: 7,
        vbucket_or_status: 0xabcd,
        total_body: 0x0102_0304,
        opaque: 0xdead_beef,
        cas: 0x0102_0304_0506_0708,
    };
    let mut out = BytesMut::new();
    header.encode(&mut out);
    assert_eq!(
        out.to_vec(),
        hex("80 24 0102 04 07 abcd 01020304 deadbeef 0102030405060708")
    );
    assert_eq!(Header::decode(&out), Some(header));
    assert_eq!(Header::decode(&out[..23]), None);
    assert_eq!(header.value_len(), Some(0x0102_0304 - 0x0102 - 4));
    assert_eq!(header.frame_len(), 24 + 0x0102_0304);
    let short = Header {
        total_body: 3,
        ..header
    };
    assert_eq!(short.value_len(), None);
}

#[test]
fn opaque_cas_vbucket_and_data_type_are_kept() {
    let wire = raw(0x80, 0x0a, 0, 0, 0x0201, 0, 0xdead_beef, 77, &[]);
    let mut wire_with_type = wire.clone();
    wire_with_type[5] = 9;
    let request = parsed(&wire_with_type);
    assert_eq!(
        (
            request.opaque,
            request.cas,
            request.vbucket,
            request.data_type
        ),
        (0xdead_beef, 77, 0x0201, 9)
    );
    assert_eq!(composed(&request), wire_with_type);
}

// ---- every opcode memcached serves ------------------------------------------------------------

/// (frame, the request it parses to, its typed extras) for every served opcode.
fn served() -> Vec<(Vec<u8>, BinaryRequest, Extras)> {
    let store = Extras::Store {
        flags: 0xdeadbeef,
        exptime: 7200,
    };
    let mut t = vec![];
    for (op, code) in [(Get, 0x00), (GetQ, 0x09), (GetK, 0x0c), (GetKQ, 0x0d)] {
        t.push((
            req(code, &[], b"k", &[]),
            BinaryRequest::keyed(op, "k"),
            Extras::None,
        ));
    }
    for (op, code) in [(Delete, 0x04), (DeleteQ, 0x14)] {
        t.push((
            req(code, &[], b"k", &[]),
            BinaryRequest::keyed(op, "k"),
            Extras::None,
        ));
    }
    for (op, code) in [
        (Set, 0x01),
        (SetQ, 0x11),
        (Add, 0x02),
        (AddQ, 0x12),
        (Replace, 0x03),
        (ReplaceQ, 0x13),
    ] {
        t.push((
            req(code, &STORE_EXTRAS, b"key", b"value"),
            BinaryRequest::store(op, "key", 0xdeadbeef, 7200, "value"),
            store,
        ));
    }
    // An empty value is a value.
    t.push((
        req(0x01, &STORE_EXTRAS, b"key", b""),
        BinaryRequest::store(Set, "key", 0xdeadbeef, 7200, ""),
        store,
    ));
    for (op, code) in [
        (Append, 0x0e),
        (AppendQ, 0x19),
        (Prepend, 0x0f),
        (PrependQ, 0x1a),
    ] {
        t.push((
            req(code, &[], b"key", b"tail"),
            BinaryRequest::concat(op, "key", "tail"),
            Extras::None,
        ));
    }
    for (op, code) in [
        (Increment, 0x05),
        (IncrementQ, 0x15),
        (Decrement, 0x06),
        (DecrementQ, 0x16),
    ] {
        t.push((
            req(code, &arith_extras(3, 10, ARITH_NO_CREATE), b"n", &[]),
            BinaryRequest::arith(op, "n", 3, 10, ARITH_NO_CREATE),
            Extras::Arith {
                delta: 3,
                initial: 10,
                exptime: ARITH_NO_CREATE,
            },
        ));
    }
    for (op, code) in [
        (Touch, 0x1c),
        (Gat, 0x1d),
        (GatQ, 0x1e),
        (GatK, 0x23),
        (GatKQ, 0x24),
    ] {
        t.push((
            req(code, &100u32.to_be_bytes(), b"k", &[]),
            BinaryRequest::touch(op, "k", 100),
            Extras::Touch { exptime: 100 },
        ));
    }
    for (op, code) in [(Flush, 0x08), (FlushQ, 0x18)] {
        t.push((
            req(code, &[], &[], &[]),
            BinaryRequest::flush(op, None),
            Extras::Flush { exptime: None },
        ));
        t.push((
            req(code, &30u32.to_be_bytes(), &[], &[]),
            BinaryRequest::flush(op, Some(30)),
            Extras::Flush { exptime: Some(30) },
        ));
    }
    t.push((
        req(0x10, &[], &[], &[]),
        BinaryRequest::stat(""),
        Extras::None,
    ));
    t.push((
        req(0x10, &[], b"settings", &[]),
        BinaryRequest::stat("settings"),
        Extras::None,
    ));
    for (op, code) in [(Noop, 0x0a), (Version, 0x0b), (Quit, 0x07), (QuitQ, 0x17)] {
        t.push((
            req(code, &[], &[], &[]),
            BinaryRequest::new(op),
            Extras::None,
        ));
    }
    // The longest key memcached takes, and keys with any bytes in them.
    let key250 = vec![b'k'; 250];
    t.push((
        req(0x00, &[], &key250, &[]),
        BinaryRequest::keyed(Get, key250.clone()),
        Extras::None,
    ));
    t.push((
        req(0x00, &[], b"a b\r\n\0\x01", &[]),
        BinaryRequest::keyed(Get, &b"a b\r\n\0\x01"[..]),
        Extras::None,
    ));
    t
}

#[test]
fn every_served_opcode_parses_composes_and_decodes_its_extras() {
    for (wire, request, extras) in served() {
        assert_eq!(parsed(&wire), request, "{:?}", request.opcode);
        assert_eq!(composed(&request), wire, "{:?}", request.opcode);
        assert_eq!(
            request.decode_extras(),
            Some(extras),
            "{:?}",
            request.opcode
        );
        // Pipelined: the request is parsed from the front, the rest left alone.
        let mut two = wire.clone();
        two.extend(req(0x0a, &[], &[], &[]));
        assert_eq!(
            parse_request(&two, &limits()),
            BinaryParse::Request {
                request: request.clone(),
                consumed: wire.len()
            }
        );
    }
}

#[test]
fn every_strict_prefix_of_a_served_frame_is_incomplete() {
    for (wire, request, _) in served() {
        for cut in 0..wire.len() {
            assert_eq!(
                parse_request(&wire[..cut], &limits()),
                BinaryParse::Incomplete,
                "{:?} cut at {cut}",
                request.opcode
            );
        }
    }
}

// ---- every error path -------------------------------------------------------------------------

/// (name, frame, memcached's verdict) for every frame memcached does not serve.
fn refused() -> Vec<(&'static str, Vec<u8>, BinaryParse)> {
    let close_no_reply = |input: Vec<u8>| {
        let consumed = input.len();
        (
            input,
            BinaryParse::Invalid {
                reply: None,
                consumed,
                after: AfterError::Close,
            },
        )
    };
    let mut t: Vec<(&'static str, Vec<u8>, BinaryParse)> = vec![];
    let mut add = |name, input: Vec<u8>, outcome: BinaryParse| t.push((name, input, outcome));
    let mut bad_magic = req(0x0a, &[], &[], &[]);
    bad_magic[0] = 0x81;
    let (input, outcome) = close_no_reply(bad_magic);
    add("response magic", input, outcome);
    let (input, outcome) = close_no_reply(b"get k\r\n".to_vec());
    add("text after binary", input, outcome);
    let (input, outcome) = close_no_reply(vec![0x00]);
    add("bad magic is judged on one byte", input, outcome);

    // key + extras longer than the body: Unknown command and close, whatever the opcode.
    let input = raw(0x80, 0x00, 3, 0, 0, 2, 0, 0, b"ab");
    add(
        "key > body",
        input.clone(),
        closed(Get, Status::UnknownCommand, &input),
    );
    let input = raw(0x80, 0x01, 1, 8, 0, 8, 0, 0, &[0; 8]);
    add(
        "key + extras > body",
        input.clone(),
        closed(Set, Status::UnknownCommand, &input),
    );
    let input = raw(0x80, 0x40, 3, 0, 0, 1, 0, 0, b"a");
    add(
        "key > body, unknown opcode",
        input.clone(),
        closed(Unknown(0x40), Status::UnknownCommand, &input),
    );

    // key longer than 250: Invalid arguments and close, unknown opcodes too; decided on the
    // header (the key need not have arrived).
    let input = req(0x00, &[], &[b'k'; 251], &[]);
    add(
        "key 251",
        input.clone(),
        closed(Get, Status::InvalidArguments, &input),
    );
    let input = head(0x00, 251, 0, 251);
    add(
        "key 251, header only",
        input.clone(),
        closed(Get, Status::InvalidArguments, &input),
    );
    let input = head(0x40, 300, 0, 300);
    add(
        "key 300, unknown opcode",
        input.clone(),
        closed(Unknown(0x40), Status::InvalidArguments, &input),
    );
    let input = req(0x01, &STORE_EXTRAS, &[b'k'; 251], b"v");
    add(
        "set key 251",
        input.clone(),
        closed(Set, Status::InvalidArguments, &input),
    );

    // lengths that are not the opcode's: Invalid arguments and close.
    let four = [0u8; 4];
    let cases: Vec<(&'static str, Opcode, Vec<u8>)> = vec![
        ("get with extras", Get, req(0x00, &four, b"k", &[])),
        ("get without key", Get, req(0x00, &[], &[], &[])),
        ("get with value", Get, req(0x00, &[], b"k", b"v")),
        ("getq with extras", GetQ, req(0x09, &four, b"k", &[])),
        ("getk with value", GetK, req(0x0c, &[], b"k", b"v")),
        ("getkq without key", GetKQ, req(0x0d, &[], &[], &[])),
        ("set with 4 extras", Set, req(0x01, &four, b"k", b"v")),
        ("set without extras", Set, req(0x01, &[], b"k", b"v")),
        ("set without key", Set, req(0x01, &STORE_EXTRAS, &[], b"v")),
        ("addq with 20 extras", AddQ, req(0x12, &[0; 20], b"k", b"v")),
        (
            "replace without key",
            Replace,
            req(0x03, &STORE_EXTRAS, &[], &[]),
        ),
        ("delete with value", Delete, req(0x04, &[], b"k", b"v")),
        ("delete with extras", Delete, req(0x04, &four, b"k", &[])),
        ("deleteq without key", DeleteQ, req(0x14, &[], &[], &[])),
        (
            "incr with 19 extras",
            Increment,
            req(0x05, &[0; 19], b"k", &[]),
        ),
        (
            "incr with value",
            Increment,
            req(0x05, &[0; 20], b"k", b"v"),
        ),
        ("decr without key", Decrement, req(0x06, &[0; 20], &[], &[])),
        (
            "incrq without extras",
            IncrementQ,
            req(0x15, &[], b"k", &[]),
        ),
        ("append with extras", Append, req(0x0e, &four, b"k", b"v")),
        ("prepend without key", Prepend, req(0x0f, &[], &[], b"v")),
        ("touch without extras", Touch, req(0x1c, &[], b"k", &[])),
        ("touch without key", Touch, req(0x1c, &four, &[], &[])),
        ("touch with value", Touch, req(0x1c, &four, b"k", b"v")),
        ("gat with 8 extras", Gat, req(0x1d, &[0; 8], b"k", &[])),
        ("gatq with value", GatQ, req(0x1e, &four, b"k", b"v")),
        ("gatk without key", GatK, req(0x23, &four, &[], &[])),
        ("gatkq without extras", GatKQ, req(0x24, &[], b"k", &[])),
        ("stat with extras", Stat, req(0x10, &four, &[], &[])),
        ("stat with value", Stat, req(0x10, &[], b"items", b"x")),
        ("flush with 2 extras", Flush, req(0x08, &[0; 2], &[], &[])),
        ("flush with key", Flush, req(0x08, &[], b"k", &[])),
        ("flushq with value", FlushQ, req(0x18, &four, &[], b"v")),
        ("noop with extras", Noop, req(0x0a, &four, &[], &[])),
        ("noop with value", Noop, req(0x0a, &[], &[], b"v")),
        ("version with key", Version, req(0x0b, &[], b"k", &[])),
        ("quit with value", Quit, req(0x07, &[], &[], b"v")),
        ("quitq with key", QuitQ, req(0x17, &[], b"k", &[])),
        (
            "sasl list with key",
            SaslListMechs,
            req(0x20, &[], b"k", &[]),
        ),
        ("sasl auth without key", SaslAuth, req(0x21, &[], &[], b"v")),
        (
            "sasl step with extras",
            SaslStep,
            req(0x22, &four, b"k", b"v"),
        ),
    ];
    for (name, opcode, input) in cases {
        add(
            name,
            input.clone(),
            closed(opcode, Status::InvalidArguments, &input),
        );
    }

    // opcodes memcached does not serve: Unknown command, body swallowed, connection kept.
    add(
        "unknown, empty",
        req(0x40, &[], &[], &[]),
        swallowed(Unknown(0x40), Status::UnknownCommand, 0),
    );
    add(
        "unknown, value",
        req(0x40, &[], &[], b"vvv"),
        swallowed(Unknown(0x40), Status::UnknownCommand, 3),
    );
    add(
        "unknown, key",
        req(0xff, &[], b"abc", &[]),
        swallowed(Unknown(0xff), Status::UnknownCommand, 3),
    );
    add(
        "range get 0x30",
        req(0x30, &[], b"k", &[]),
        swallowed(Unknown(0x30), Status::UnknownCommand, 1),
    );
    add(
        "0x1f",
        req(0x1f, &[], &[], &[]),
        swallowed(Unknown(0x1f), Status::UnknownCommand, 0),
    );
    add(
        "verbosity",
        req(0x1b, &1u32.to_be_bytes(), &[], &[]),
        swallowed(Verbosity, Status::UnknownCommand, 4),
    );
    add(
        "verbosity, header only",
        head(0x1b, 0, 4, 4),
        swallowed(Verbosity, Status::UnknownCommand, 4),
    );
    add(
        "sasl list",
        req(0x20, &[], &[], &[]),
        swallowed(SaslListMechs, Status::UnknownCommand, 0),
    );
    add(
        "sasl auth",
        req(0x21, &[], b"PLAIN", b"\0u\0p"),
        swallowed(SaslAuth, Status::UnknownCommand, 9),
    );
    add(
        "sasl step",
        req(0x22, &[], b"PLAIN", &[]),
        swallowed(SaslStep, Status::UnknownCommand, 5),
    );

    // values over the limit: Too large., the body swallowed (decided on the header).
    let big = 1024 * 1024 + 1;
    // A set waits for its key, which loses its old item.
    add(
        "set 1 MiB + 1",
        [
            head(0x01, 1, 8, 9 + big),
            STORE_EXTRAS.to_vec(),
            b"k".to_vec(),
        ]
        .concat(),
        too_large(Set, b"k", big as usize),
    );
    add(
        "setq 1 MiB + 1",
        [
            head(0x11, 1, 8, 9 + big),
            STORE_EXTRAS.to_vec(),
            b"k".to_vec(),
        ]
        .concat(),
        too_large(SetQ, b"k", big as usize),
    );
    add(
        "add 4 GiB",
        head(0x02, 1, 8, u32::MAX),
        swallowed(Add, Status::TooLarge, u32::MAX as usize),
    );
    add(
        "replaceq 1 MiB + 1",
        head(0x13, 1, 8, 9 + big),
        swallowed(ReplaceQ, Status::TooLarge, 9 + big as usize),
    );
    add(
        "append 1 MiB + 1",
        head(0x0e, 1, 0, 1 + big),
        swallowed(Append, Status::TooLarge, 1 + big as usize),
    );
    add(
        "prependq 1 MiB + 1",
        head(0x1a, 1, 0, 1 + big),
        swallowed(PrependQ, Status::TooLarge, 1 + big as usize),
    );
    t
}

#[test]
fn every_refused_frame_gets_memcacheds_verdict() {
    for (name, input, want) in refused() {
        assert_eq!(parse_request(&input, &limits()), want, "{name}");
    }
}

#[test]
fn refusals_echo_opcode_and_opaque_and_carry_the_exact_error_bytes() {
    let mut input = req(0x09, &[0; 4], b"k", &[]);
    input[12..16].copy_from_slice(&0xdead_beef_u32.to_be_bytes());
    let BinaryParse::Invalid {
        reply: Some(reply), ..
    } = parse_request(&input, &limits())
    else {
        panic!("getq with extras must be refused");
    };
    assert_eq!(
        reply_bytes(&reply),
        [
            hex("81 09 0000 00 00 0004 00000011 deadbeef 0000000000000000"),
            b"Invalid arguments".to_vec()
        ]
        .concat()
    );
}

#[test]
fn the_value_limit_is_the_limits_own() {
    let small = Limits {
        max_value_len: 4,
        ..Limits::default()
    };
    let fits = req(0x01, &STORE_EXTRAS, b"k", b"1234");
    assert!(matches!(
        parse_request(&fits, &small),
        BinaryParse::Request { .. }
    ));
    let over = req(0x01, &STORE_EXTRAS, b"k", b"12345");
    assert_eq!(parse_request(&over, &small), too_large(Set, b"k", 5));
    assert_eq!(
        parse_request(&over[..HEADER_LEN + 8], &small),
        BinaryParse::Incomplete,
        "an oversized set waits for its key"
    );
    // Frames without a value are not concerned.
    let get = req(0x00, &[], b"k", &[]);
    assert!(matches!(
        parse_request(&get, &small),
        BinaryParse::Request { .. }
    ));
    let short_keys = Limits {
        max_key_len: 2,
        ..Limits::default()
    };
    let input = req(0x00, &[], b"abc", &[]);
    assert_eq!(
        parse_request(&input, &short_keys),
        closed(Get, Status::InvalidArguments, &input)
    );
}

#[test]
fn incomplete_frames_wait() {
    assert_eq!(parse_request(&[], &limits()), BinaryParse::Incomplete);
    assert_eq!(parse_request(&[0x80], &limits()), BinaryParse::Incomplete);
    let set = req(0x01, &STORE_EXTRAS, b"key", &[b'x'; 1000]);
    for cut in [23, 24, 31, 35, 500, set.len() - 1] {
        assert_eq!(
            parse_request(&set[..cut], &limits()),
            BinaryParse::Incomplete,
            "{cut}"
        );
    }
}

// ---- responses --------------------------------------------------------------------------------

#[test]
fn reply_constructors_compose_memcacheds_frames() {
    let get = BinaryRequest::keyed(Get, "k").with_opaque(7);
    let getk = BinaryRequest::keyed(GetK, "k");
    let getkq = BinaryRequest::keyed(GetKQ, "k");
    let gatk = BinaryRequest::touch(GatK, "k", 0);
    let touch = BinaryRequest::touch(Touch, "k", 0);
    let set = BinaryRequest::store(SetQ, "k", 0, 0, "v");
    let delete = BinaryRequest::keyed(Delete, "k");
    let stat = BinaryRequest::stat("").with_opaque(3);
    let flags = hex("00000005");
    let cases: Vec<(&str, BinaryResponse, Vec<u8>)> = vec![
        (
            "get hit",
            BinaryResponse::hit(&get, 5, "val", 9),
            [
                hex("81 00 0000 04 00 0000 00000007 00000007 0000000000000009"),
                flags.clone(),
                b"val".to_vec(),
            ]
            .concat(),
        ),
        (
            "getk hit",
            BinaryResponse::hit(&getk, 5, "val", 9),
            [
                hex("81 0c 0001 04 00 0000 00000008 00000000 0000000000000009"),
                flags.clone(),
                b"kval".to_vec(),
            ]
            .concat(),
        ),
        (
            "getkq hit",
            BinaryResponse::hit(&getkq, 5, "", 9),
            [
                hex("81 0d 0001 04 00 0000 00000005 00000000 0000000000000009"),
                flags.clone(),
                b"k".to_vec(),
            ]
            .concat(),
        ),
        (
            "gatk hit",
            BinaryResponse::hit(&gatk, 5, "v", 9),
            [
                hex("81 23 0001 04 00 0000 00000006 00000000 0000000000000009"),
                flags.clone(),
                b"kv".to_vec(),
            ]
            .concat(),
        ),
        (
            "touch hit: flags, no value",
            BinaryResponse::hit(&touch, 5, "ignored", 9),
            [
                hex("81 1c 0000 04 00 0000 00000004 00000000 0000000000000009"),
                flags.clone(),
            ]
            .concat(),
        ),
        (
            "get miss",
            BinaryResponse::miss(&get),
            [
                hex("81 00 0000 00 00 0001 00000009 00000007 0000000000000000"),
                b"Not found".to_vec(),
            ]
            .concat(),
        ),
        (
            "getk miss: the key, no text",
            BinaryResponse::miss(&getk),
            [
                hex("81 0c 0001 00 00 0001 00000001 00000000 0000000000000000"),
                b"k".to_vec(),
            ]
            .concat(),
        ),
        (
            "touch miss",
            BinaryResponse::miss(&touch),
            [
                hex("81 1c 0000 00 00 0001 00000009 00000000 0000000000000000"),
                b"Not found".to_vec(),
            ]
            .concat(),
        ),
        (
            "stored",
            BinaryResponse::stored(&set, 0x1234),
            hex("81 11 0000 00 00 0000 00000000 00000000 0000000000001234"),
        ),
        (
            "deleted",
            BinaryResponse::success(&delete),
            hex("81 04 0000 00 00 0000 00000000 00000000 0000000000000000"),
        ),
        (
            "not stored",
            BinaryResponse::error(&set, Status::NotStored),
            [
                hex("81 11 0000 00 00 0005 0000000b 00000000 0000000000000000"),
                b"Not stored.".to_vec(),
            ]
            .concat(),
        ),
        (
            "version",
            BinaryResponse::version(&BinaryRequest::new(Version), "1.6.18"),
            [
                hex("81 0b 0000 00 00 0000 00000006 00000000 0000000000000000"),
                b"1.6.18".to_vec(),
            ]
            .concat(),
        ),
        (
            "one stat",
            BinaryResponse::stat(&stat, "pid", "42"),
            [
                hex("81 10 0003 00 00 0000 00000005 00000003 0000000000000000"),
                b"pid42".to_vec(),
            ]
            .concat(),
        ),
        (
            "stats end",
            BinaryResponse::stats_end(&stat),
            hex("81 10 0000 00 00 0000 00000000 00000003 0000000000000000"),
        ),
        (
            "unknown command",
            BinaryResponse::error_for(Unknown(0x40), 0, Status::UnknownCommand),
            [
                hex("81 40 0000 00 00 0081 0000000f 00000000 0000000000000000"),
                b"Unknown command".to_vec(),
            ]
            .concat(),
        ),
    ];
    for (name, response, wire) in cases {
        assert_eq!(reply_bytes(&response), wire, "{name}");
        assert_eq!(
            parse_response(&wire, &limits()),
            BinaryResponseParse::Response {
                response,
                consumed: wire.len()
            },
            "{name}"
        );
    }
}

#[test]
fn status_codes_and_texts_are_memcacheds() {
    let table = [
        (Status::Success, 0x00, ""),
        (Status::KeyNotFound, 0x01, "Not found"),
        (Status::KeyExists, 0x02, "Data exists for key."),
        (Status::TooLarge, 0x03, "Too large."),
        (Status::InvalidArguments, 0x04, "Invalid arguments"),
        (Status::NotStored, 0x05, "Not stored."),
        (
            Status::NonNumeric,
            0x06,
            "Non-numeric server-side value for incr or decr",
        ),
        (Status::AuthError, 0x20, "Auth failure."),
        (Status::AuthContinue, 0x21, ""),
        (Status::UnknownCommand, 0x81, "Unknown command"),
        (Status::OutOfMemory, 0x82, "Out of memory"),
        (Status::Other(0x99), 0x99, ""),
    ];
    for (status, code, text) in table {
        assert_eq!(status.code(), code);
        assert_eq!(Status::from(code), status);
        assert_eq!(u16::from(status), code);
        assert_eq!(status.message(), text);
    }
    for code in 0..=u16::MAX {
        assert_eq!(Status::from(code).code(), code);
    }
}

#[test]
fn opcodes_map_to_their_bytes() {
    for (opcode, code) in OPCODES {
        assert_eq!(opcode.code(), code);
        assert_eq!(Opcode::from(code), opcode);
    }
    for code in 0..=u8::MAX {
        let opcode = Opcode::from(code);
        assert_eq!(opcode.code(), code);
        assert_eq!(u8::from(opcode), code);
        let named = OPCODES.iter().any(|(_, c)| *c == code);
        assert_eq!(opcode == Unknown(code), !named, "{code:#04x}");
    }
    let quiet = [
        GetQ, GetKQ, SetQ, AddQ, ReplaceQ, DeleteQ, IncrementQ, DecrementQ, QuitQ, FlushQ, AppendQ,
        PrependQ, GatQ, GatKQ,
    ];
    for (opcode, _) in OPCODES {
        assert_eq!(opcode.is_quiet(), quiet.contains(&opcode), "{opcode:?}");
        assert!(!opcode.loud().is_quiet());
        assert_eq!(opcode.loud() == opcode, !opcode.is_quiet());
    }
    assert_eq!(GatKQ.loud(), GatK);
    assert_eq!(QuitQ.loud(), Quit);
    for opcode in [GetK, GetKQ, GatK, GatKQ] {
        assert!(opcode.returns_key());
    }
    assert!(!Get.returns_key() && !Gat.returns_key() && !Touch.returns_key());
    assert!(Quit.closes_connection() && QuitQ.closes_connection());
    assert!(!Noop.closes_connection());
}

#[test]
fn quiet_opcodes_suppress_what_memcached_leaves_out() {
    use Status::*;
    for opcode in [GetQ, GetKQ, GatQ, GatKQ] {
        assert!(suppressed(opcode, KeyNotFound), "{opcode:?} miss");
        assert!(!suppressed(opcode, Success), "{opcode:?} hit");
        assert!(!suppressed(opcode, InvalidArguments));
    }
    for opcode in [
        SetQ, AddQ, ReplaceQ, AppendQ, PrependQ, DeleteQ, IncrementQ, DecrementQ, FlushQ, QuitQ,
    ] {
        assert!(suppressed(opcode, Success), "{opcode:?} success");
        for error in [KeyNotFound, KeyExists, NotStored, NonNumeric, TooLarge] {
            assert!(!suppressed(opcode, error), "{opcode:?} {error:?}");
        }
    }
    for (opcode, _) in OPCODES.iter().filter(|(o, _)| !o.is_quiet()) {
        for status in [Success, KeyNotFound, KeyExists, UnknownCommand] {
            assert!(!suppressed(*opcode, status), "{opcode:?}");
        }
    }
    let miss = BinaryResponse::miss(&BinaryRequest::keyed(GetKQ, "k"));
    assert!(miss.is_suppressed());
}

#[test]
fn refused_responses_and_waiting_responses() {
    let ok = hex("81 0a 0000 00 00 0000 00000000 00000000 0000000000000000");
    for cut in 0..ok.len() {
        assert_eq!(
            parse_response(&ok[..cut], &limits()),
            BinaryResponseParse::Incomplete
        );
    }
    let invalid = |bytes: &[u8]| {
        matches!(
            parse_response(bytes, &limits()),
            BinaryResponseParse::Invalid(_)
        )
    };
    assert!(invalid(&hex(
        "80 0a 0000 00 00 0000 00000000 00000000 0000000000000000"
    )));
    assert!(invalid(b"VALUE k 0 1\r\n"));
    assert!(invalid(&raw(0x81, 0, 4, 1, 0, 4, 0, 0, &[0; 4])));
    assert!(invalid(&raw(0x81, 0, 251, 0, 0, 251, 0, 0, &[])));
    assert!(invalid(&raw(
        0x81,
        0,
        0,
        4,
        0,
        4 + 1024 * 1024 + 1,
        0,
        0,
        &[]
    )));
    // Waiting for a bounded body is fine.
    assert_eq!(
        parse_response(
            &raw(0x81, 0, 0, 4, 0, 4 + 1024 * 1024, 0, 0, &[]),
            &limits()
        ),
        BinaryResponseParse::Incomplete
    );
}

#[test]
fn response_views() {
    let request = BinaryRequest::keyed(Get, "k");
    assert_eq!(BinaryResponse::hit(&request, 9, "v", 1).flags(), Some(9));
    assert_eq!(BinaryResponse::miss(&request).flags(), None);
    let incr = BinaryRequest::arith(DecrementQ, "k", 1, 0, 0);
    assert_eq!(
        BinaryResponse::counter(&incr, u64::MAX, 1).counter_value(),
        Some(u64::MAX)
    );
    assert_eq!(
        BinaryResponse::error(&incr, Status::NonNumeric).counter_value(),
        None
    );
    assert_eq!(
        BinaryResponse::version(&request, "12345678").counter_value(),
        None
    );
}

#[test]
fn extras_views_refuse_lengths_memcached_refuses() {
    let cases = [
        (
            BinaryRequest::keyed(Set, "k").with_raw_extras(vec![0; 4]),
            None,
        ),
        (BinaryRequest::keyed(Increment, "k"), None),
        (
            BinaryRequest::keyed(Touch, "k").with_raw_extras(vec![0; 8]),
            None,
        ),
        (
            BinaryRequest::flush(Flush, None).with_raw_extras(vec![0; 2]),
            None,
        ),
        (
            BinaryRequest::keyed(Get, "k").with_raw_extras(vec![0; 4]),
            None,
        ),
        (
            BinaryRequest::verbosity(2),
            Some(Extras::Verbosity { level: 2 }),
        ),
        (BinaryRequest::new(Unknown(0x40)), Some(Extras::None)),
    ];
    for (request, want) in cases {
        assert_eq!(request.decode_extras(), want, "{:?}", request.opcode);
    }
}

#[test]
fn oversized_parts_compose_to_a_consistent_frame() {
    let request = BinaryRequest::keyed(Get, vec![b'k'; 70_000]).with_raw_extras(vec![1; 300]);
    let wire = composed(&request);
    let header = Header::decode(&wire).unwrap();
    assert_eq!(
        (header.key_len, header.extras_len, header.total_body),
        (u16::MAX, u8::MAX, 65_535 + 255)
    );
    assert_eq!(wire.len(), header.frame_len());
}

// ---- properties -------------------------------------------------------------------------------

fn key_strategy() -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(any::<u8>(), 1..=250).prop_map(Bytes::from)
}

fn value_strategy() -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(any::<u8>(), 0..300).prop_map(Bytes::from)
}

fn one_of(opcodes: &'static [Opcode]) -> impl Strategy<Value = Opcode> {
    proptest::sample::select(opcodes)
}

/// Any request memcached serves, with random header fields.
fn request_strategy() -> impl Strategy<Value = BinaryRequest> {
    let shape = prop_oneof![
        (
            one_of(&[Get, GetQ, GetK, GetKQ, Delete, DeleteQ]),
            key_strategy()
        )
            .prop_map(|(op, key)| BinaryRequest::keyed(op, key)),
        (
            one_of(&[Set, SetQ, Add, AddQ, Replace, ReplaceQ]),
            key_strategy(),
            any::<u32>(),
            any::<u32>(),
            value_strategy()
        )
            .prop_map(|(op, key, flags, exptime, value)| {
                BinaryRequest::store(op, key, flags, exptime, value)
            }),
        (
            one_of(&[Append, AppendQ, Prepend, PrependQ]),
            key_strategy(),
            value_strategy()
        )
            .prop_map(|(op, key, value)| BinaryRequest::concat(op, key, value)),
        (
            one_of(&[Increment, IncrementQ, Decrement, DecrementQ]),
            key_strategy(),
            any::<u64>(),
            any::<u64>(),
            any::<u32>()
        )
            .prop_map(|(op, key, delta, initial, exptime)| {
                BinaryRequest::arith(op, key, delta, initial, exptime)
            }),
        (
            one_of(&[Touch, Gat, GatQ, GatK, GatKQ]),
            key_strategy(),
            any::<u32>()
        )
            .prop_map(|(op, key, exptime)| BinaryRequest::touch(op, key, exptime)),
        (one_of(&[Flush, FlushQ]), proptest::option::of(any::<u32>()))
            .prop_map(|(op, exptime)| BinaryRequest::flush(op, exptime)),
        proptest::collection::vec(any::<u8>(), 0..=250).prop_map(BinaryRequest::stat),
        one_of(&[Noop, Version, Quit, QuitQ]).prop_map(BinaryRequest::new),
    ];
    (shape, any::<u32>(), any::<u64>(), any::<u16>(), any::<u8>()).prop_map(
        |(request, opaque, cas, vbucket, data_type)| BinaryRequest {
            opaque,
            cas,
            vbucket,
            data_type,
            ..request
        },
    )
}

/// Any structurally valid response (any opcode and status).
fn response_strategy() -> impl Strategy<Value = BinaryResponse> {
    (
        any::<u8>(),
        any::<u16>(),
        proptest::collection::vec(any::<u8>(), 0..=250),
        proptest::collection::vec(any::<u8>(), 0..=8),
        value_strategy(),
        any::<u32>(),
        any::<u64>(),
        any::<u8>(),
    )
        .prop_map(
            |(opcode, status, key, extras, value, opaque, cas, data_type)| BinaryResponse {
                opcode: Opcode::from(opcode),
                status: Status::from(status),
                key: key.into(),
                extras: extras.into(),
                value,
                opaque,
                cas,
                data_type,
            },
        )
}

/// A header with random fields (magic 0x80) followed by up to 64 random body bytes.
fn header_and_body() -> impl Strategy<Value = Vec<u8>> {
    (
        any::<u8>(),
        prop_oneof![0u16..8, 245u16..260, any::<u16>()],
        prop_oneof![Just(0u8), Just(4), Just(8), Just(20), any::<u8>()],
        prop_oneof![0u32..64, any::<u32>()],
        proptest::collection::vec(any::<u8>(), 0..64),
    )
        .prop_map(|(opcode, key_len, extras_len, total, body)| {
            raw(0x80, opcode, key_len, extras_len, 0, total, 0, 0, &body)
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn requests_round_trip(request in request_strategy()) {
        let wire = composed(&request);
        prop_assert_eq!(
            parse_request(&wire, &limits()),
            BinaryParse::Request { request: request.clone(), consumed: wire.len() }
        );
        prop_assert!(request.decode_extras().is_some());
        for cut in 0..wire.len() {
            prop_assert_eq!(parse_request(&wire[..cut], &limits()), BinaryParse::Incomplete);
        }
        // Whatever follows the frame does not change it.
        let mut more = wire.clone();
        more.extend_from_slice(&[0x80, 0x0a, 0xff]);
        prop_assert_eq!(
            parse_request(&more, &limits()),
            BinaryParse::Request { request, consumed: wire.len() }
        );
    }

    #[test]
    fn responses_round_trip(response in response_strategy()) {
        let wire = reply_bytes(&response);
        prop_assert_eq!(
            parse_response(&wire, &limits()),
            BinaryResponseParse::Response { response, consumed: wire.len() }
        );
        for cut in 0..wire.len() {
            prop_assert_eq!(parse_response(&wire[..cut], &limits()), BinaryResponseParse::Incomplete);
        }
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let small = Limits { max_key_len: 8, max_value_len: 16, ..Limits::default() };
        let mut binary = bytes.clone();
        if let Some(first) = binary.first_mut() {
            *first = 0x80;
        }
        let mut response = bytes.clone();
        if let Some(first) = response.first_mut() {
            *first = 0x81;
        }
        for l in [limits(), small] {
            for input in [&bytes, &binary] {
                match parse_request(input, &l) {
                    BinaryParse::Request { consumed, request } => {
                        prop_assert!(consumed >= HEADER_LEN && consumed <= input.len());
                        prop_assert!(request.key.len() <= l.max_key_len);
                        prop_assert!(request.value.len() <= l.max_value_len);
                        prop_assert!(request.decode_extras().is_some());
                    }
                    BinaryParse::Invalid { consumed, .. } => {
                        prop_assert!(consumed > 0 && consumed <= input.len());
                    }
                    BinaryParse::TooLarge { consumed, key, .. } => {
                        prop_assert!(consumed <= input.len() && key.len() <= l.max_key_len);
                    }
                    BinaryParse::Incomplete => {}
                }
            }
            for input in [&bytes, &response] {
                if let BinaryResponseParse::Response { consumed, .. } = parse_response(input, &l) {
                    prop_assert!(consumed >= HEADER_LEN && consumed <= input.len());
                }
            }
        }
    }

    #[test]
    fn random_headers_never_panic_and_verdicts_need_only_the_header(input in header_and_body()) {
        let full = parse_request(&input, &limits());
        if let BinaryParse::Request { consumed, .. } | BinaryParse::Invalid { consumed, .. } = &full {
            prop_assert!(*consumed > 0 && *consumed <= input.len());
        }
        // A refusal is the same whether or not the body has arrived.
        if let BinaryParse::Invalid { reply, after, .. } = &full {
            match parse_request(&input[..HEADER_LEN], &limits()) {
                BinaryParse::Invalid { reply: early, after: early_after, .. } => {
                    prop_assert_eq!(&early, reply);
                    prop_assert_eq!(early_after, *after);
                }
                other => prop_assert!(false, "header alone gave {:?}", other),
            }
        }
        let _ = parse_response(&input, &limits());
    }
}
