//! Proves the binary codec's expected replies against the real memcached 1.6.18: scripted
//! binary frames go to a memcached over TCP, its reply bytes are parsed with
//! `protocol::binary::parse_response`, and each must be exactly the reply the codec's
//! constructors build (for served requests) or the verdict `parse_request` gives (for refused
//! frames). Quiet replies are dropped with `suppressed`, so the suppression rule is memcached's
//! too. Cas ids are memcached's own: they are compared as "none" or "some", except where a
//! test feeds one back.

mod common;

use common::memcached::MemcachedProcess;
use memcord_protocol::binary::{
    compose_request, parse_request, parse_response, BinaryParse, BinaryRequest, BinaryResponse,
    BinaryResponseParse, Opcode, Status, ARITH_NO_CREATE,
};
use memcord_protocol::{AfterError, Limits};
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use Opcode::*;

/// How long a reply (or a close) may take.
const DEADLINE: Duration = Duration::from_secs(5);
/// Stands for "memcached sent some cas id" in an expected reply.
const ANY_CAS: u64 = 1;
/// memcached's `-I 1m` item size max, plus one.
const TOO_LARGE: usize = 1024 * 1024 + 1;

fn limits() -> Limits {
    Limits::default()
}

/// One binary connection to memcached.
struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    fn connect(memcached: &MemcachedProcess) -> Client {
        let stream = TcpStream::connect(memcached.addr()).expect("connect to memcached");
        stream
            .set_read_timeout(Some(Duration::from_millis(50)))
            .expect("read timeout");
        stream.set_nodelay(true).expect("nodelay");
        let mut client = Client {
            stream,
            buf: Vec::new(),
        };
        // memcached picks the protocol from a connection's first byte: a noop first, so every
        // later frame is judged as binary (a bad magic included).
        client.exchange(&[]);
        client
    }

    fn send_bytes(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write to memcached");
    }

    fn send(&mut self, requests: &[BinaryRequest]) {
        let mut out = bytes::BytesMut::new();
        for request in requests {
            compose_request(request, &mut out);
        }
        self.send_bytes(&out);
    }

    /// Reads into the buffer; `false` on end of stream.
    fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 64 * 1024];
        match self.stream.read(&mut chunk) {
            Ok(0) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => true,
            Err(e) if e.kind() == ErrorKind::ConnectionReset => false,
            Err(e) => panic!("reading from memcached: {e}"),
        }
    }

    /// The next reply, parsed with the codec.
    fn recv(&mut self) -> BinaryResponse {
        let until = Instant::now() + DEADLINE;
        loop {
            match parse_response(&self.buf, &limits()) {
                BinaryResponseParse::Response { response, consumed } => {
                    self.buf.drain(..consumed);
                    return response;
                }
                BinaryResponseParse::Invalid(why) => {
                    panic!("memcached sent an unparsable reply ({why}): {:?}", self.buf)
                }
                BinaryResponseParse::Incomplete => {}
            }
            assert!(
                Instant::now() < until,
                "no whole reply within {DEADLINE:?}; have {:?}",
                self.buf
            );
            assert!(
                self.fill(),
                "memcached closed while a reply was expected; have {:?}",
                self.buf
            );
        }
    }

    /// memcached closes the connection, with no reply bytes left unread.
    fn expect_close(&mut self) {
        let until = Instant::now() + DEADLINE;
        while self.fill() {
            assert!(
                self.buf.is_empty(),
                "unexpected bytes before the close: {:?}",
                parse_response(&self.buf, &limits())
            );
            assert!(Instant::now() < until, "memcached kept the connection open");
        }
        assert!(self.buf.is_empty(), "unexpected bytes: {:?}", self.buf);
    }

    /// Nothing arrives for a while (and the connection stays open).
    fn expect_silence(&mut self, wait: Duration) {
        let until = Instant::now() + wait;
        while Instant::now() < until {
            assert!(self.fill(), "memcached closed the connection");
            assert!(self.buf.is_empty(), "unexpected bytes: {:?}", self.buf);
        }
    }

    /// Sends every step's request and a `Noop` in one write, and expects each step's reply
    /// (unless memcached suppresses it for a quiet opcode), then the noop's. Each request gets
    /// its step number as opaque, so the replies' opaques are checked too. Returns the replies
    /// as received (memcached's cas ids included).
    fn exchange(&mut self, steps: &[(BinaryRequest, BinaryResponse)]) -> Vec<BinaryResponse> {
        let mut requests = Vec::new();
        let mut expected = Vec::new();
        for (n, (request, reply)) in steps.iter().enumerate() {
            let opaque = n as u32 + 1;
            requests.push(request.clone().with_opaque(opaque));
            if !reply.is_suppressed() {
                expected.push(BinaryResponse {
                    opaque,
                    ..reply.clone()
                });
            }
        }
        let noop = BinaryRequest::new(Noop).with_opaque(0xfeed);
        requests.push(noop.clone());
        expected.push(BinaryResponse::success(&noop));
        self.send(&requests);
        let mut received = Vec::new();
        for want in expected {
            let got = self.recv();
            assert_eq!(
                normalised(&got),
                normalised(&want),
                "reply to opaque {}",
                want.opaque
            );
            received.push(got);
        }
        received
    }

    /// Sends `frame`, which the codec refuses, and expects memcached to do what the verdict
    /// says: the same reply, then the same close, or the connection going on exactly after
    /// the frame (a `Noop` right behind it is answered).
    fn expect_verdict(&mut self, frame: &[u8]) {
        let (reply, after) = match parse_request(frame, &limits()) {
            BinaryParse::Invalid { reply, after, .. } => (reply, after),
            BinaryParse::TooLarge { reply, swallow, .. } => {
                (Some(reply), AfterError::Swallow(swallow))
            }
            _ => panic!("the codec serves {:?}", &frame[..frame.len().min(24)]),
        };
        let noop = BinaryRequest::new(Noop).with_opaque(0xfeed);
        let mut bytes = frame.to_vec();
        if after != AfterError::Close {
            let mut out = bytes::BytesMut::new();
            compose_request(&noop, &mut out);
            bytes.extend_from_slice(&out);
        }
        self.send_bytes(&bytes);
        if let Some(reply) = reply {
            assert_eq!(normalised(&self.recv()), normalised(&reply));
        }
        match after {
            AfterError::Close => self.expect_close(),
            AfterError::Continue | AfterError::Swallow(_) => {
                assert_eq!(self.recv(), BinaryResponse::success(&noop));
            }
        }
    }
}

/// A reply with its cas reduced to "none" (0) or "some" ([`ANY_CAS`]).
fn normalised(reply: &BinaryResponse) -> BinaryResponse {
    BinaryResponse {
        cas: reply.cas.min(ANY_CAS),
        ..reply.clone()
    }
}

fn frame(request: &BinaryRequest) -> Vec<u8> {
    let mut out = bytes::BytesMut::new();
    compose_request(request, &mut out);
    out.to_vec()
}

fn set(key: &str, flags: u32, value: &str) -> (BinaryRequest, BinaryResponse) {
    let request = BinaryRequest::store(Set, key.to_owned(), flags, 0, value.to_owned());
    let reply = BinaryResponse::stored(&request, ANY_CAS);
    (request, reply)
}

fn hit(opcode: Opcode, key: &str, flags: u32, value: &str) -> (BinaryRequest, BinaryResponse) {
    let request = BinaryRequest::keyed(opcode, key.to_owned());
    let reply = BinaryResponse::hit(&request, flags, value.to_owned(), ANY_CAS);
    (request, reply)
}

fn miss(opcode: Opcode, key: &str) -> (BinaryRequest, BinaryResponse) {
    let request = BinaryRequest::keyed(opcode, key.to_owned());
    let reply = BinaryResponse::miss(&request);
    (request, reply)
}

fn refused(request: BinaryRequest, status: Status) -> (BinaryRequest, BinaryResponse) {
    let reply = BinaryResponse::error(&request, status);
    (request, reply)
}

fn stored(request: BinaryRequest) -> (BinaryRequest, BinaryResponse) {
    let reply = BinaryResponse::stored(&request, ANY_CAS);
    (request, reply)
}

fn succeeds(request: BinaryRequest) -> (BinaryRequest, BinaryResponse) {
    let reply = BinaryResponse::success(&request);
    (request, reply)
}

fn counter(request: BinaryRequest, value: u64) -> (BinaryRequest, BinaryResponse) {
    let reply = BinaryResponse::counter(&request, value, ANY_CAS);
    (request, reply)
}

#[test]
fn get_and_getk_hits_and_misses() {
    let memcached = MemcachedProcess::start();
    let mut c = Client::connect(&memcached);
    c.exchange(&[
        set("k", 0xdead_beef, "hello"),
        hit(Get, "k", 0xdead_beef, "hello"),
        miss(Get, "absent"),
        hit(GetK, "k", 0xdead_beef, "hello"),
        miss(GetK, "absent"),
        // Keys are bytes: spaces and control bytes are fine in binary.
        set("a b\r\n\x01", 1, ""),
        hit(GetK, "a b\r\n\x01", 1, ""),
    ]);
}

#[test]
fn quiet_gets_answer_only_hits_before_the_noop() {
    let memcached = MemcachedProcess::start();
    let mut c = Client::connect(&memcached);
    c.exchange(&[set("a", 1, "A"), set("b", 2, "B")]);
    let replies = c.exchange(&[
        hit(GetQ, "a", 1, "A"),
        miss(GetQ, "x"),
        hit(GetKQ, "b", 2, "B"),
        miss(GetKQ, "y"),
        miss(GetQ, "z"),
    ]);
    // Two hits and the noop: the three misses were left out.
    assert_eq!(replies.len(), 3);
}

#[test]
fn storage_commands_and_their_quiet_forms() {
    let memcached = MemcachedProcess::start();
    let mut c = Client::connect(&memcached);
    c.exchange(&[
        stored(BinaryRequest::store(Add, "k", 0, 0, "1")),
        refused(BinaryRequest::store(Add, "k", 0, 0, "2"), Status::KeyExists),
        refused(
            BinaryRequest::store(Replace, "absent", 0, 0, "2"),
            Status::KeyNotFound,
        ),
        stored(BinaryRequest::store(Replace, "k", 5, 0, "3")),
        hit(Get, "k", 5, "3"),
        stored(BinaryRequest::store(SetQ, "q", 0, 0, "1")),
        refused(
            BinaryRequest::store(AddQ, "q", 0, 0, "2"),
            Status::KeyExists,
        ),
        stored(BinaryRequest::store(AddQ, "q2", 0, 0, "2")),
        refused(
            BinaryRequest::store(ReplaceQ, "absent", 0, 0, "2"),
            Status::KeyNotFound,
        ),
        stored(BinaryRequest::store(ReplaceQ, "q", 9, 0, "4")),
        hit(Get, "q", 9, "4"),
        hit(Get, "q2", 0, "2"),
    ]);
}

#[test]
fn cas_conditions() {
    let memcached = MemcachedProcess::start();
    let mut c = Client::connect(&memcached);
    let replies = c.exchange(&[set("k", 0, "v1")]);
    let cas = replies[0].cas;
    assert_ne!(cas, 0, "a store reply carries the item's cas");
    c.exchange(&[
        refused(
            BinaryRequest::store(Set, "k", 0, 0, "x").with_cas(cas + 1),
            Status::KeyExists,
        ),
        refused(
            BinaryRequest::store(Set, "absent", 0, 0, "x").with_cas(cas),
            Status::KeyNotFound,
        ),
        // An add with a cas is a compare-and-swap: it fails on a present key with another cas
        // (KeyExists, as any add would) and on a missing key (KeyNotFound, unlike an add).
        refused(
            BinaryRequest::store(Add, "k", 0, 0, "x").with_cas(cas + 1),
            Status::KeyExists,
        ),
        refused(
            BinaryRequest::store(Add, "absent", 0, 0, "x").with_cas(cas),
            Status::KeyNotFound,
        ),
        refused(
            BinaryRequest::store(Replace, "k", 0, 0, "x").with_cas(cas + 1),
            Status::KeyExists,
        ),
        refused(
            BinaryRequest::keyed(Delete, "k").with_cas(cas + 1),
            Status::KeyExists,
        ),
        hit(Get, "k", 0, "v1"),
    ]);
    let replies = c.exchange(&[stored(
        BinaryRequest::store(Set, "k", 3, 0, "v2").with_cas(cas),
    )]);
    let cas = replies[0].cas;
    c.exchange(&[
        hit(Get, "k", 3, "v2"),
        succeeds(BinaryRequest::keyed(Delete, "k").with_cas(cas)),
        miss(Get, "k"),
    ]);
}

#[test]
fn append_and_prepend() {
    let memcached = MemcachedProcess::start();
    let mut c = Client::connect(&memcached);
    c.exchange(&[
        refused(
            BinaryRequest::concat(Append, "absent", "x"),
            Status::NotStored,
        ),
        refused(
            BinaryRequest::concat(PrependQ, "absent", "x"),
            Status::NotStored,
        ),
        set("k", 7, "b"),
        stored(BinaryRequest::concat(Append, "k", "c")),
        stored(BinaryRequest::concat(Prepend, "k", "a")),
        stored(BinaryRequest::concat(AppendQ, "k", "d")),
        stored(BinaryRequest::concat(PrependQ, "k", "_")),
        refused(
            BinaryRequest::concat(Append, "k", "z").with_cas(u64::MAX),
            Status::KeyExists,
        ),
        // The flags stay the stored item's.
        hit(Get, "k", 7, "_abcd"),
    ]);
}

#[test]
fn delete_and_its_quiet_form() {
    let memcached = MemcachedProcess::start();
    let mut c = Client::connect(&memcached);
    c.exchange(&[
        set("a", 0, "1"),
        set("b", 0, "1"),
        succeeds(BinaryRequest::keyed(Delete, "a")),
        refused(BinaryRequest::keyed(Delete, "a"), Status::KeyNotFound),
        succeeds(BinaryRequest::keyed(DeleteQ, "b")),
        refused(BinaryRequest::keyed(DeleteQ, "b"), Status::KeyNotFound),
        miss(Get, "b"),
    ]);
}

#[test]
fn incr_and_decr() {
    let memcached = MemcachedProcess::start();
    let mut c = Client::connect(&memcached);
    c.exchange(&[
        // A missing key is created from `initial` unless the exptime says not to.
        counter(BinaryRequest::arith(Increment, "n", 1, 10, 0), 10),
        counter(BinaryRequest::arith(Increment, "n", 5, 99, 0), 15),
        counter(BinaryRequest::arith(Decrement, "n", 100, 0, 0), 0),
        refused(
            BinaryRequest::arith(Increment, "absent", 1, 10, ARITH_NO_CREATE),
            Status::KeyNotFound,
        ),
        refused(
            BinaryRequest::arith(DecrementQ, "absent", 1, 10, ARITH_NO_CREATE),
            Status::KeyNotFound,
        ),
        counter(BinaryRequest::arith(Decrement, "m", 1, 7, 0), 7),
        counter(BinaryRequest::arith(IncrementQ, "n", 4, 0, 0), 4),
        counter(BinaryRequest::arith(Increment, "n", 0, 0, 0), 4),
        set("text", 0, "abc"),
        refused(
            BinaryRequest::arith(Increment, "text", 1, 0, 0),
            Status::NonNumeric,
        ),
        refused(
            BinaryRequest::arith(IncrementQ, "text", 1, 0, 0),
            Status::NonNumeric,
        ),
        refused(
            BinaryRequest::arith(Increment, "n", 1, 0, 0).with_cas(u64::MAX),
            Status::KeyExists,
        ),
        set("max", 0, "18446744073709551615"),
        counter(BinaryRequest::arith(Increment, "max", 2, 0, 0), 1),
        // The stored value is the decimal text (a decr that shortens it pads it with spaces,
        // so the check uses a counter that only grew).
        counter(BinaryRequest::arith(Increment, "m", 3, 0, 0), 10),
        hit(Get, "m", 0, "10"),
    ]);
}

#[test]
fn touch_and_the_gat_family() {
    let memcached = MemcachedProcess::start();
    let mut c = Client::connect(&memcached);
    let touch = |opcode, key: &str| BinaryRequest::touch(opcode, key.to_owned(), 100);
    let touched = |opcode, key: &str, value: &str| {
        let request = touch(opcode, key);
        let reply = BinaryResponse::hit(&request, 3, value.to_owned(), ANY_CAS);
        (request, reply)
    };
    let untouched = |opcode, key: &str| {
        let request = touch(opcode, key);
        let reply = BinaryResponse::miss(&request);
        (request, reply)
    };
    c.exchange(&[
        set("k", 3, "v"),
        // A touch hit carries the flags and no value.
        touched(Touch, "k", "v"),
        untouched(Touch, "absent"),
        touched(Gat, "k", "v"),
        untouched(Gat, "absent"),
        touched(GatK, "k", "v"),
        untouched(GatK, "absent"),
        touched(GatQ, "k", "v"),
        untouched(GatQ, "absent"),
        touched(GatKQ, "k", "v"),
        untouched(GatKQ, "absent"),
    ]);
}

#[test]
fn noop_version_flush() {
    let memcached = MemcachedProcess::start();
    let mut c = Client::connect(&memcached);
    let version = BinaryRequest::new(Version);
    let mut ignored_fields = BinaryRequest::new(Noop);
    ignored_fields.vbucket = 0x0102;
    ignored_fields.data_type = 7;
    c.exchange(&[
        (version.clone(), BinaryResponse::version(&version, "1.6.18")),
        succeeds(ignored_fields),
        succeeds(BinaryRequest::new(Noop)),
        set("k", 0, "v"),
        succeeds(BinaryRequest::flush(Flush, None)),
        miss(Get, "k"),
        set("k", 0, "v"),
        succeeds(BinaryRequest::flush(FlushQ, Some(0))),
        miss(Get, "k"),
        succeeds(BinaryRequest::flush(Flush, Some(0))),
        succeeds(BinaryRequest::flush(FlushQ, None)),
    ]);
}

/// Sends a `Stat` and collects its replies up to the empty one, which must be the codec's
/// `stats_end`.
fn stats(c: &mut Client, group: &str) -> Vec<(String, String)> {
    let request = BinaryRequest::stat(group.to_owned()).with_opaque(0x5747);
    c.send(std::slice::from_ref(&request));
    let mut stats = Vec::new();
    loop {
        let reply = c.recv();
        if reply.key.is_empty() {
            assert_eq!(reply, BinaryResponse::stats_end(&request), "stat {group}");
            return stats;
        }
        let name = String::from_utf8_lossy(&reply.key).into_owned();
        let value = String::from_utf8_lossy(&reply.value).into_owned();
        assert_eq!(
            reply,
            BinaryResponse::stat(&request, &name, &value),
            "stat {group}"
        );
        stats.push((name, value));
    }
}

#[test]
fn stat_groups() {
    let memcached = MemcachedProcess::start();
    let mut c = Client::connect(&memcached);
    let all = stats(&mut c, "");
    let find = |stats: &[(String, String)], name: &str| {
        stats
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(find(&all, "version").as_deref(), Some("1.6.18"));
    assert!(find(&all, "pid").is_some());
    let settings = stats(&mut c, "settings");
    assert_eq!(find(&settings, "item_size_max").as_deref(), Some("1048576"));
    // `reset` and `detail on` answer with the terminator alone.
    assert!(stats(&mut c, "reset").is_empty());
    assert!(stats(&mut c, "detail off").is_empty());
    c.exchange(&[
        refused(BinaryRequest::stat("bogus"), Status::KeyNotFound),
        refused(BinaryRequest::stat("detail bogus"), Status::KeyNotFound),
    ]);
}

#[test]
fn quit_replies_then_closes_and_quitq_closes_silently() {
    let memcached = MemcachedProcess::start();
    let mut c = Client::connect(&memcached);
    let quit = BinaryRequest::new(Quit).with_opaque(5);
    // Anything after a quit is never read.
    c.send(&[quit.clone(), BinaryRequest::new(Noop)]);
    assert_eq!(c.recv(), BinaryResponse::success(&quit));
    c.expect_close();
    let mut c = Client::connect(&memcached);
    c.send(&[BinaryRequest::new(QuitQ), BinaryRequest::new(Noop)]);
    c.expect_close();
}

#[test]
fn refused_frames_get_the_codecs_verdicts() {
    let memcached = MemcachedProcess::start();
    let get = BinaryRequest::keyed(Get, "k");
    let mut key_longer_than_body = frame(&get);
    // The key's byte is sent: memcached waits for key and extras before it checks them.
    key_longer_than_body[8..12].copy_from_slice(&0u32.to_be_bytes());
    let mut bad_magic = frame(&BinaryRequest::new(Noop));
    bad_magic[0] = 0x81;
    let closing: Vec<(&str, Vec<u8>)> = vec![
        ("bad magic", bad_magic),
        // memcached judges the magic once 24 bytes are in.
        (
            "text in a binary connection",
            b"get aaaaaaaaaaaaaaaaaaaaaaaaa\r\n".to_vec(),
        ),
        ("key longer than the body", key_longer_than_body),
        (
            "key 251",
            frame(&BinaryRequest::keyed(Get, vec![b'k'; 251])),
        ),
        (
            "key 251, unknown opcode",
            frame(&BinaryRequest::keyed(Unknown(0x40), vec![b'k'; 251])),
        ),
        (
            "get with extras",
            frame(&get.clone().with_raw_extras(vec![0; 4])),
        ),
        ("get with value", frame(&get.clone().with_value("v"))),
        ("getq without key", frame(&BinaryRequest::new(GetQ))),
        (
            "set with 4 extras",
            frame(&BinaryRequest::concat(Set, "k", "v").with_raw_extras(vec![0; 4])),
        ),
        (
            "set without key",
            frame(&BinaryRequest::store(Set, "", 0, 0, "v")),
        ),
        (
            "incr with 19 extras",
            frame(&BinaryRequest::keyed(Increment, "k").with_raw_extras(vec![0; 19])),
        ),
        (
            "decrq with value",
            frame(&BinaryRequest::arith(DecrementQ, "k", 1, 0, 0).with_value("v")),
        ),
        (
            "delete with extras",
            frame(&BinaryRequest::keyed(Delete, "k").with_raw_extras(vec![0; 4])),
        ),
        (
            "append with extras",
            frame(&BinaryRequest::store(Append, "k", 0, 0, "v")),
        ),
        (
            "prepend without key",
            frame(&BinaryRequest::concat(Prepend, "", "v")),
        ),
        (
            "touch without extras",
            frame(&BinaryRequest::keyed(Touch, "k")),
        ),
        (
            "gatkq without key",
            frame(&BinaryRequest::touch(GatKQ, "", 0)),
        ),
        (
            "flush with 2 extras",
            frame(&BinaryRequest::new(Flush).with_raw_extras(vec![0; 2])),
        ),
        (
            "flush with key",
            frame(&BinaryRequest::flush(Flush, None).with_key("k")),
        ),
        (
            "stat with extras",
            frame(&BinaryRequest::stat("").with_raw_extras(vec![0; 4])),
        ),
        (
            "noop with value",
            frame(&BinaryRequest::new(Noop).with_value("v")),
        ),
        (
            "version with key",
            frame(&BinaryRequest::new(Version).with_key("k")),
        ),
        (
            "quit with extras",
            frame(&BinaryRequest::new(Quit).with_raw_extras(vec![0; 4])),
        ),
        (
            "sasl list with key",
            frame(&BinaryRequest::keyed(SaslListMechs, "k")),
        ),
        (
            "sasl auth without key",
            frame(&BinaryRequest::new(SaslAuth).with_value("x")),
        ),
    ];
    for (name, bytes) in closing {
        let verdict = parse_request(&bytes, &limits());
        assert!(
            matches!(
                verdict,
                BinaryParse::Invalid {
                    after: AfterError::Close,
                    ..
                }
            ),
            "{name}: {verdict:?}"
        );
        let mut c = Client::connect(&memcached);
        c.expect_verdict(&bytes);
    }
    // Refusals that keep the connection: one connection for all of them.
    let mut c = Client::connect(&memcached);
    let kept = [
        frame(&BinaryRequest::new(Unknown(0x40))),
        frame(&BinaryRequest::new(Unknown(0xff)).with_value("body")),
        frame(&BinaryRequest::new(Unknown(0x30)).with_value("range get")),
        frame(&BinaryRequest::new(SaslListMechs)),
        frame(&BinaryRequest::concat(SaslAuth, "PLAIN", "\0user\0pass")),
        frame(&BinaryRequest::keyed(SaslStep, "PLAIN")),
    ];
    for bytes in kept {
        c.expect_verdict(&bytes);
    }
}

#[test]
fn oversized_values_are_refused_and_their_bodies_swallowed() {
    let memcached = MemcachedProcess::start();
    let mut c = Client::connect(&memcached);
    let big = vec![b'x'; TOO_LARGE];
    c.exchange(&[
        set("k", 0, "small"),
        set("q", 0, "small"),
        set("r", 0, "small"),
    ]);
    for request in [
        BinaryRequest::store(Set, "k", 0, 0, big.clone()),
        BinaryRequest::store(SetQ, "q", 0, 0, big.clone()),
        BinaryRequest::store(Add, "new", 0, 0, big.clone()),
        BinaryRequest::store(ReplaceQ, "r", 0, 0, big.clone()),
        BinaryRequest::concat(Append, "r", big.clone()),
        BinaryRequest::concat(PrependQ, "r", big.clone()),
    ] {
        let bytes = frame(&request);
        let reply = BinaryResponse::error(&request, Status::TooLarge);
        let verdict = if request.opcode.loud() == Set {
            // A set names the key whose old item goes.
            let head = 24 + 8 + request.key.len();
            BinaryParse::TooLarge {
                reply,
                key: request.key.clone(),
                consumed: head,
                swallow: bytes.len() - head,
            }
        } else {
            BinaryParse::Invalid {
                reply: Some(reply),
                consumed: 24,
                after: AfterError::Swallow(bytes.len() - 24),
            }
        };
        assert_eq!(parse_request(&bytes, &limits()), verdict);
        c.expect_verdict(&bytes);
    }
    // An oversized set (quiet or not) unlinks the key it names; the others leave theirs.
    c.exchange(&[
        miss(Get, "k"),
        miss(Get, "q"),
        miss(Get, "new"),
        hit(Get, "r", 0, "small"),
    ]);
}

#[test]
fn memcached_swallows_key_and_extras_twice_after_an_unknown_opcode() {
    // Where memcord differs: memcached reads key and extras, then swallows `total body` more
    // bytes, eating that many of the next request. The codec drops the frame alone.
    let memcached = MemcachedProcess::start();
    let mut c = Client::connect(&memcached);
    for request in [
        BinaryRequest::verbosity(1),
        BinaryRequest::keyed(Unknown(0x40), "abc"),
        BinaryRequest::keyed(Unknown(0x40), "abc").with_value("value"),
    ] {
        let bytes = frame(&request);
        let surplus = request.key.len() + request.extras.len();
        assert_eq!(
            parse_request(&bytes, &limits()),
            BinaryParse::Invalid {
                reply: Some(BinaryResponse::error(&request, Status::UnknownCommand)),
                consumed: 24,
                after: AfterError::Swallow(bytes.len() - 24),
            }
        );
        let mut padded = bytes.clone();
        padded.extend(vec![0u8; surplus]);
        c.send_bytes(&padded);
        assert_eq!(
            c.recv(),
            BinaryResponse::error(&request, Status::UnknownCommand)
        );
        c.exchange(&[]);
    }
    // Without padding, the noop behind a verbosity loses its first 4 bytes and is never read.
    let mut c = Client::connect(&memcached);
    let mut bytes = frame(&BinaryRequest::verbosity(1));
    bytes.extend(frame(&BinaryRequest::new(Noop)));
    c.send_bytes(&bytes);
    assert_eq!(
        c.recv(),
        BinaryResponse::error(&BinaryRequest::verbosity(1), Status::UnknownCommand)
    );
    c.expect_silence(Duration::from_millis(300));
}

#[test]
fn memcached_reads_a_value_on_stat_or_touch_as_the_next_frame() {
    // Where memcord differs: memcached serves a `Touch` (or `Stat`) whose body runs past its
    // key, then parses the surplus as a frame of its own; the codec refuses the frame.
    let memcached = MemcachedProcess::start();
    let mut c = Client::connect(&memcached);
    c.exchange(&[set("k", 3, "v")]);
    let inner = BinaryRequest::new(Noop).with_opaque(77);
    let touch = BinaryRequest::touch(Touch, "k", 0).with_value(frame(&inner));
    let bytes = frame(&touch);
    assert_eq!(
        parse_request(&bytes, &limits()),
        BinaryParse::Invalid {
            reply: Some(BinaryResponse::error(&touch, Status::InvalidArguments)),
            consumed: bytes.len(),
            after: AfterError::Close,
        }
    );
    c.send_bytes(&bytes);
    let served = BinaryRequest::touch(Touch, "k", 0);
    assert_eq!(
        normalised(&c.recv()),
        BinaryResponse::hit(&served, 3, "", ANY_CAS)
    );
    assert_eq!(c.recv(), BinaryResponse::success(&inner));
    c.exchange(&[]);
}

#[test]
#[should_panic(expected = "reply to opaque 1")]
fn the_harness_catches_a_reply_memcached_does_not_send() {
    let memcached = MemcachedProcess::start();
    let mut c = Client::connect(&memcached);
    c.exchange(&[hit(Get, "absent", 0, "")]);
}

#[test]
#[should_panic(expected = "reply to opaque")]
fn the_harness_catches_a_reply_wrongly_taken_as_suppressed() {
    // A quiet miss is expected to be left out, but a hit is sent: the noop's place shows it.
    let memcached = MemcachedProcess::start();
    let mut c = Client::connect(&memcached);
    c.exchange(&[set("k", 0, "v")]);
    c.exchange(&[miss(GetQ, "k")]);
}
