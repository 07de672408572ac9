//! The server over real TCP against a real `memcord peer` process: exact reply bytes for every
//! command and error path, noreply, pipelining, split segments, binary values, multi-get, stats.
//! Expected bytes were checked against memcached 1.6.18.

mod common;

use common::peer::{stat, PeerProcess};
use std::time::Duration;

fn peer() -> PeerProcess {
    PeerProcess::start(&["--kv-type", "memory"])
}

#[test]
fn storage_commands_answer_exactly() {
    let peer = peer();
    let mut c = peer.client();
    c.roundtrip(b"set k 1 0 3\r\nabc\r\n", b"STORED\r\n");
    c.roundtrip(b"get k\r\n", b"VALUE k 1 3\r\nabc\r\nEND\r\n");
    c.roundtrip(b"gets nosuch\r\n", b"END\r\n");
    c.roundtrip(b"add k 0 0 1\r\nx\r\n", b"NOT_STORED\r\n");
    c.roundtrip(b"add k2 0 0 1\r\nx\r\n", b"STORED\r\n");
    c.roundtrip(b"replace nokey 0 0 1\r\nx\r\n", b"NOT_STORED\r\n");
    c.roundtrip(b"replace k2 5 0 1\r\ny\r\n", b"STORED\r\n");
    c.roundtrip(b"append k 0 0 2\r\nde\r\n", b"STORED\r\n");
    c.roundtrip(b"prepend k 0 0 2\r\nzz\r\n", b"STORED\r\n");
    c.roundtrip(b"append nokey 0 0 2\r\nde\r\n", b"NOT_STORED\r\n");
    c.roundtrip(
        b"get k k2\r\n",
        b"VALUE k 1 7\r\nzzabcde\r\nVALUE k2 5 1\r\ny\r\nEND\r\n",
    );
    c.roundtrip(b"delete k\r\n", b"DELETED\r\n");
    c.roundtrip(b"delete k\r\n", b"NOT_FOUND\r\n");
    c.roundtrip(b"delete k2 0\r\n", b"DELETED\r\n");
    c.roundtrip(b"get k k2\r\n", b"END\r\n");
}

#[test]
fn cas_uses_the_id_from_gets() {
    let peer = peer();
    let mut c = peer.client();
    c.roundtrip(b"cas nokey 0 0 1 1\r\ny\r\n", b"NOT_FOUND\r\n");
    c.roundtrip(b"set k 0 0 1\r\nx\r\n", b"STORED\r\n");
    c.send(b"gets k\r\n");
    let reply = String::from_utf8(c.read_until(b"END\r\n")).unwrap();
    let header = reply.lines().next().unwrap();
    let cas: u64 = header.split(' ').nth(4).unwrap().parse().unwrap();
    assert_eq!(reply, format!("VALUE k 0 1 {cas}\r\nx\r\nEND\r\n"));
    c.roundtrip(
        format!("cas k 0 0 1 {}\r\ny\r\n", cas.wrapping_add(1)).as_bytes(),
        b"EXISTS\r\n",
    );
    c.roundtrip(
        format!("cas k 0 0 1 {cas}\r\ny\r\n").as_bytes(),
        b"STORED\r\n",
    );
    c.roundtrip(
        format!("cas k 0 0 1 {cas}\r\nz\r\n").as_bytes(),
        b"EXISTS\r\n",
    );
    c.roundtrip(b"get k\r\n", b"VALUE k 0 1\r\ny\r\nEND\r\n");
}

#[test]
fn arithmetic_and_its_errors() {
    let peer = peer();
    let mut c = peer.client();
    c.send(
        b"set n 0 0 2\r\n10\r\nincr n 5\r\ndecr n 100\r\nincr nokey 1\r\ndecr nokey 1\r\n\
          incr n abc\r\nincr n -1\r\nset s 0 0 1\r\nx\r\nincr s 1\r\n\
          incr n 18446744073709551615\r\nincr n 1\r\n",
    );
    c.expect(
        b"STORED\r\n15\r\n0\r\nNOT_FOUND\r\nNOT_FOUND\r\n\
          CLIENT_ERROR invalid numeric delta argument\r\n\
          CLIENT_ERROR invalid numeric delta argument\r\nSTORED\r\n\
          CLIENT_ERROR cannot increment or decrement non-numeric value\r\n\
          18446744073709551615\r\n0\r\n",
    );
}

#[test]
fn touch_and_gat() {
    let peer = peer();
    let mut c = peer.client();
    c.send(
        b"set k 3 0 1\r\nx\r\ngat 100 k nokey\r\ngats 100 nokey\r\ntouch k 0\r\ntouch nokey 0\r\n",
    );
    c.expect(b"STORED\r\nVALUE k 3 1\r\nx\r\nEND\r\nEND\r\nTOUCHED\r\nNOT_FOUND\r\n");
    // A negative exptime expires the item at once.
    c.roundtrip(b"touch k -1\r\n", b"TOUCHED\r\n");
    c.roundtrip(b"get k\r\n", b"END\r\n");
}

#[test]
fn noreply_suppresses_every_reply() {
    let peer = peer();
    let mut c = peer.client();
    c.send(
        b"set k 0 0 1 noreply\r\n1\r\nadd k 0 0 1 noreply\r\n2\r\nincr k 5 noreply\r\n\
          delete nokey noreply\r\ntouch k 10 noreply\r\nappend k 0 0 1 noreply\r\n0\r\n\
          flush_all 100 noreply\r\nverbosity 1 noreply\r\nincr k 1\r\nget k\r\n",
    );
    c.expect(b"61\r\nVALUE k 0 2\r\n61\r\nEND\r\n");
}

#[test]
fn command_errors_keep_the_connection() {
    let peer = peer();
    let mut c = peer.client();
    c.send(
        b"incr\r\ndelete\r\ntouch k\r\nbogus\r\n\r\nget\r\nverbosity\r\nflush_all x\r\n\
          delete k 0\r\ndelete k 1\r\nSET k 0 0 1\r\n",
    );
    c.expect(
        b"ERROR\r\nERROR\r\nERROR\r\nERROR\r\nERROR\r\nERROR\r\nERROR\r\n\
          CLIENT_ERROR invalid exptime argument\r\nNOT_FOUND\r\n\
          CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\nERROR\r\n",
    );
    c.roundtrip(
        b"version\r\n",
        format!("VERSION {}\r\n", memcord_protocol::VERSION).as_bytes(),
    );
}

#[test]
fn bad_data_blocks_and_bad_lines() {
    let peer = peer();
    let mut c = peer.client();
    // A block longer than announced: the rest of the line is read as a command.
    c.roundtrip(
        b"set k 0 0 3\r\nabcde\r\n",
        b"CLIENT_ERROR bad data chunk\r\nERROR\r\n",
    );
    c.roundtrip(b"get k\r\n", b"END\r\n");
    c.roundtrip(
        b"set k 0 0 x\r\n",
        b"CLIENT_ERROR bad command line format\r\n",
    );
    let long_key = "a".repeat(251);
    c.roundtrip(
        format!("set {long_key} 0 0 1\r\nx\r\n").as_bytes(),
        b"CLIENT_ERROR bad command line format\r\nERROR\r\n",
    );
    c.roundtrip(
        format!("get {long_key}\r\n").as_bytes(),
        b"CLIENT_ERROR bad command line format\r\n",
    );
    let max_key = "b".repeat(250);
    c.roundtrip(
        format!("set {max_key} 0 0 1\r\nx\r\n").as_bytes(),
        b"STORED\r\n",
    );
    c.roundtrip(
        b"version\r\n",
        format!("VERSION {}\r\n", memcord_protocol::VERSION).as_bytes(),
    );
}

#[test]
fn too_large_values_are_refused_and_swallowed() {
    let peer = PeerProcess::start(&["--max-item-size", "1000"]);
    let mut c = peer.client();
    let mut request = b"set big 0 0 1001\r\n".to_vec();
    request.extend(std::iter::repeat_n(b'v', 1001));
    request.extend(b"\r\nget big\r\nset ok 0 0 1000\r\n");
    request.extend(std::iter::repeat_n(b'w', 1000));
    request.extend(b"\r\n");
    c.send(&request);
    c.expect(b"SERVER_ERROR object too large for cache\r\nEND\r\nSTORED\r\n");
}

#[test]
fn flush_all_now() {
    let peer = peer();
    let mut c = peer.client();
    c.send(b"set k 0 0 1\r\nx\r\nflush_all\r\nget k\r\nflush_all noreply\r\nflush_all 0\r\n");
    c.expect(b"STORED\r\nOK\r\nEND\r\nOK\r\n");
}

#[test]
fn values_are_binary_safe() {
    let peer = peer();
    let mut c = peer.client();
    let value: Vec<u8> = (0..=255u8).chain(b"\r\nEND\r\n".iter().copied()).collect();
    let mut request = format!("set bin 7 0 {}\r\n", value.len()).into_bytes();
    request.extend(&value);
    request.extend(b"\r\n");
    c.roundtrip(&request, b"STORED\r\n");
    let mut expected = format!("VALUE bin 7 {}\r\n", value.len()).into_bytes();
    expected.extend(&value);
    expected.extend(b"\r\nEND\r\n");
    c.roundtrip(b"get bin\r\n", &expected);
}

#[test]
fn quit_answers_what_came_before_and_closes() {
    let peer = peer();
    let mut c = peer.client();
    c.send(b"set k 0 0 1\r\nx\r\nget k\r\nquit\r\nget k\r\n");
    c.expect_closed(b"STORED\r\nVALUE k 0 1\r\nx\r\nEND\r\n");
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    pipelined_requests_against(&peer());
}

#[test]
fn pipelined_requests_through_a_memcached_backend() {
    let backend = common::memcached::MemcachedProcess::start();
    let port = backend.port().to_string();
    let peer = PeerProcess::start(&["--kv-type", "memcached", "--kv-port", &port]);
    pipelined_requests_against(&peer);
    let stats = peer.client().stats("");
    assert_eq!(stat(&stats, "cmd_set"), 500);
    assert!(stats
        .iter()
        .any(|(n, v)| n == "memcord_kv_type" && v == "memcached"));
}

fn pipelined_requests_against(peer: &PeerProcess) {
    let mut c = peer.client();
    let mut request = Vec::new();
    let mut expected = Vec::new();
    for i in 0..500 {
        request.extend(
            format!(
                "set key{i} {i} 0 {}\r\nvalue{i}\r\n",
                5 + i.to_string().len()
            )
            .bytes(),
        );
        expected.extend(b"STORED\r\n");
    }
    for i in (0..500).step_by(7) {
        request.extend(format!("get key{i} nokey\r\nincr key{i} 1\r\n").bytes());
        expected.extend(
            format!(
                "VALUE key{i} {i} {}\r\nvalue{i}\r\nEND\r\n",
                5 + i.to_string().len()
            )
            .bytes(),
        );
        expected.extend(b"CLIENT_ERROR cannot increment or decrement non-numeric value\r\n");
    }
    c.send(&request);
    c.expect(&expected);
}

#[test]
fn requests_split_across_segments() {
    let peer = peer();
    let mut c = peer.client();
    let request: &[u8] = b"set split 3 0 10\r\n0123456789\r\nget split\r\n";
    // Cut at every byte: inside the command word, the line, the \r\n, the data and its trailer.
    for cut in 1..request.len() {
        c.send(&request[..cut]);
        // Give the server a chance to see the first part alone; correctness never depends on it.
        std::thread::sleep(Duration::from_millis(2));
        c.send(&request[cut..]);
        c.expect(b"STORED\r\nVALUE split 3 10\r\n0123456789\r\nEND\r\n");
    }
    // One byte per segment.
    for byte in request {
        c.send(std::slice::from_ref(byte));
    }
    c.expect(b"STORED\r\nVALUE split 3 10\r\n0123456789\r\nEND\r\n");
}

#[test]
fn multi_get_keeps_request_order_and_skips_misses() {
    let peer = peer();
    let mut c = peer.client();
    for i in (0..100).step_by(2) {
        c.roundtrip(
            format!("set m{i} 0 0 {}\r\n{i}\r\n", i.to_string().len()).as_bytes(),
            b"STORED\r\n",
        );
    }
    let keys: Vec<String> = (0..100).rev().map(|i| format!("m{i}")).collect();
    let mut expected = Vec::new();
    for i in (0..100).rev().filter(|i| i % 2 == 0) {
        expected.extend(format!("VALUE m{i} 0 {}\r\n{i}\r\n", i.to_string().len()).bytes());
    }
    expected.extend(b"END\r\n");
    c.roundtrip(format!("get {}\r\n", keys.join(" ")).as_bytes(), &expected);
    // A key asked twice is answered twice, as memcached does.
    c.roundtrip(
        b"get m0 m0\r\n",
        b"VALUE m0 0 1\r\n0\r\nVALUE m0 0 1\r\n0\r\nEND\r\n",
    );
}

#[test]
fn stats_report_the_memcached_fields() {
    let peer = peer();
    let mut c = peer.client();
    let stats = c.stats("");
    for name in [
        "pid",
        "uptime",
        "time",
        "version",
        "pointer_size",
        "rusage_user",
        "rusage_system",
        "max_connections",
        "curr_connections",
        "total_connections",
        "rejected_connections",
        "cmd_get",
        "cmd_set",
        "cmd_flush",
        "cmd_touch",
        "get_hits",
        "get_misses",
        "delete_misses",
        "delete_hits",
        "incr_misses",
        "incr_hits",
        "decr_misses",
        "decr_hits",
        "cas_misses",
        "cas_hits",
        "cas_badval",
        "touch_hits",
        "touch_misses",
        "bytes_read",
        "bytes_written",
        "threads",
        "curr_items",
        "bytes",
        "evictions",
        "limit_maxbytes",
        "memcord_mode",
        "memcord_kv_type",
        "memcord_peer_id",
    ] {
        assert!(stats.iter().any(|(n, _)| n == name), "no STAT {name}");
    }
    assert_eq!(stat(&stats, "pid"), u64::from(peer.pid()));
    assert_eq!(stat(&stats, "curr_connections"), 1);
    let find = |name: &str| stats.iter().find(|(n, _)| n == name).unwrap().1.clone();
    assert_eq!(find("memcord_kv_type"), "memory");
    assert_eq!(find("memcord_mode"), "standalone");
    assert_eq!(find("version"), memcord_protocol::VERSION);
}

#[test]
fn stats_counters_move() {
    let peer = peer();
    let mut c = peer.client();
    // The harness's readiness probe was a connection too: compare against a baseline.
    let before = c.stats("");
    c.send(
        b"set a 0 0 1\r\n1\r\nset b 0 0 1 noreply\r\nx\r\nget a b nokey\r\ndelete b\r\ndelete b\r\n\
          incr a 1\r\nincr nokey 1\r\ndecr a 1\r\ndecr nokey 1\r\ncas a 0 0 1 1\r\n1\r\n\
          cas nokey 0 0 1 1\r\n1\r\ntouch a 0\r\ntouch nokey 0\r\nflush_all\r\n",
    );
    c.expect(
        b"STORED\r\nVALUE a 0 1\r\n1\r\nVALUE b 0 1\r\nx\r\nEND\r\nDELETED\r\nNOT_FOUND\r\n\
          2\r\nNOT_FOUND\r\n1\r\nNOT_FOUND\r\nEXISTS\r\nNOT_FOUND\r\nTOUCHED\r\nNOT_FOUND\r\nOK\r\n",
    );
    let stats = c.stats("");
    for (name, value) in [
        ("cmd_get", 3),
        ("get_hits", 2),
        ("get_misses", 1),
        ("cmd_set", 4),
        ("delete_hits", 1),
        ("delete_misses", 1),
        ("incr_hits", 1),
        ("incr_misses", 1),
        ("decr_hits", 1),
        ("decr_misses", 1),
        ("cas_badval", 1),
        ("cas_misses", 1),
        ("cas_hits", 0),
        ("cmd_touch", 2),
        ("touch_hits", 1),
        ("touch_misses", 1),
        ("cmd_flush", 1),
    ] {
        assert_eq!(
            stat(&stats, name) - stat(&before, name),
            value,
            "STAT {name}"
        );
    }
    assert!(stat(&stats, "bytes_read") > 200);
    assert!(stat(&stats, "bytes_written") > 100);
    // A second connection shows up in the gauges.
    let mut other = peer.client();
    let stats = other.stats("");
    assert_eq!(stat(&stats, "curr_connections"), 2);
    assert_eq!(
        stat(&stats, "total_connections"),
        stat(&before, "total_connections") + 1
    );
    // `stats reset` zeroes the counters but not the gauges.
    other.roundtrip(b"stats reset\r\n", b"RESET\r\n");
    let stats = other.stats("");
    assert_eq!(stat(&stats, "cmd_get"), 0);
    assert_eq!(stat(&stats, "cmd_set"), 0);
    assert_eq!(stat(&stats, "curr_connections"), 2);
}

#[test]
fn stats_groups() {
    let peer = PeerProcess::start(&["--max-connections", "77", "--max-item-size", "4096"]);
    let mut c = peer.client();
    let settings = c.stats("settings");
    assert_eq!(stat(&settings, "maxconns"), 77);
    assert_eq!(stat(&settings, "item_size_max"), 4096);
    assert_eq!(stat(&settings, "tcpport"), u64::from(peer.port()));
    assert_eq!(stat(&settings, "idle_timeout"), 0);
    assert!(settings
        .iter()
        .any(|(n, v)| n == "memcord_consistency" && v == "linearizable"));
    c.roundtrip(b"verbosity 2\r\n", b"OK\r\n");
    assert_eq!(stat(&c.stats("settings"), "verbosity"), 2);
    c.roundtrip(b"stats nosuchgroup\r\n", b"ERROR\r\n");
    c.roundtrip(b"stats reset\r\n", b"RESET\r\n");
}
