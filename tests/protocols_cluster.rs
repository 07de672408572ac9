//! Every protocol through a three-peer cluster of each mode, served by a follower (a peer that
//! is not the ordered queue's leader): the differential sessions against memcached,
//! memcapable's whole suite, the `memcache` crate over binary and ASCII. Then, through a
//! linearizable cluster, concurrent binary increments and meta compare-and-swap loops from
//! clients on every peer: no update is lost.

mod common;

use common::clients::{memcapable_passes, rust_memcache_crate_at, Protocol};
use common::cluster::{Cluster, ClusterSpec};
use common::memcached::MemcachedProcess;
use common::sessions::compare_with_memcached;
use memcord_protocol::binary::{
    compose_request, parse_response, BinaryRequest, BinaryResponseParse, Opcode, Status,
};
use memcord_protocol::Limits;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// A peer of `cluster` that does not lead its queue (any peer in the eventual mode).
fn follower(cluster: &Cluster, mode: &str) -> usize {
    if mode == "eventual" {
        return 1;
    }
    (cluster.leader(Duration::from_secs(20)) + 1) % 3
}

fn spec(mode: &'static str) -> ClusterSpec {
    if mode == "eventual" {
        ClusterSpec::eventual()
    } else {
        ClusterSpec::ordered(mode)
    }
}

/// The protocols through a follower of one cluster: memcached's answers, byte for byte.
fn protocols_through_a_follower(mode: &'static str) {
    let cluster = Cluster::start(spec(mode));
    let peer = follower(&cluster, mode);
    let addr = cluster.client_addrs[peer];
    let (text, binary) = compare_with_memcached(addr);
    let reference = MemcachedProcess::start();
    let expected = memcapable_passes(reference.port());
    let passed = memcapable_passes(addr.port());
    assert_eq!(passed, expected, "memcapable through a {mode} follower");
    println!(
        "{mode} follower: {text} meta/text requests and {binary} binary frames as memcached; \
         memcapable {passed}/{expected}"
    );
    rust_memcache_crate_at(addr, Protocol::Binary, true);
    rust_memcache_crate_at(addr, Protocol::Ascii, true);
}

#[test]
fn linearizable_follower_speaks_every_protocol() {
    protocols_through_a_follower("linearizable");
}

#[test]
fn sequential_follower_speaks_every_protocol() {
    protocols_through_a_follower("sequential");
}

#[test]
fn eventual_peer_speaks_every_protocol() {
    protocols_through_a_follower("eventual");
}

/// One binary request and its reply.
fn binary_call(
    stream: &mut TcpStream,
    request: &BinaryRequest,
) -> memcord_protocol::binary::BinaryResponse {
    let mut out = bytes::BytesMut::new();
    compose_request(request, &mut out);
    stream.write_all(&out).expect("write");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let BinaryResponseParse::Response { response, .. } =
            parse_response(&got, &Limits::default())
        {
            return response;
        }
        assert!(Instant::now() < deadline, "no binary reply");
        let n = stream.read(&mut buf).expect("read");
        assert!(n > 0, "closed");
        got.extend_from_slice(&buf[..n]);
    }
}

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).expect("connect");
    stream.set_nodelay(true).ok();
    stream.set_read_timeout(Some(Duration::from_secs(20))).ok();
    stream
}

#[test]
fn linearizable_binary_increments_and_meta_cas_loops_lose_nothing() {
    let cluster = Cluster::start(ClusterSpec::ordered("linearizable"));
    let addrs = cluster.client_addrs.clone();

    // N binary clients × M increments, two clients on every peer.
    const CLIENTS: usize = 6;
    const INCREMENTS: u64 = 40;
    let mut setup = connect(addrs[0]);
    let set = BinaryRequest::store(Opcode::Set, b"counter".to_vec(), 0, 0, b"0".to_vec());
    assert_eq!(binary_call(&mut setup, &set).status, Status::Success);
    let workers: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let addr = addrs[i % addrs.len()];
            std::thread::spawn(move || {
                let mut stream = connect(addr);
                for _ in 0..INCREMENTS {
                    let incr =
                        BinaryRequest::arith(Opcode::Increment, b"counter".to_vec(), 1, 0, 0);
                    let reply = binary_call(&mut stream, &incr);
                    assert_eq!(reply.status, Status::Success, "{reply:?}");
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().expect("incr client");
    }
    for &addr in &addrs {
        let mut stream = connect(addr);
        let get = BinaryRequest::keyed(Opcode::Get, b"counter".to_vec());
        let reply = binary_call(&mut stream, &get);
        assert_eq!(
            String::from_utf8_lossy(&reply.value),
            (CLIENTS as u64 * INCREMENTS).to_string(),
            "every increment counted, read through {addr}"
        );
    }

    // Meta compare-and-swap loops: read value and cas, write value + 1 only if the cas is
    // still the item's; on EX read again.
    const LOOPERS: usize = 6;
    const UPDATES: u64 = 15;
    let mut setup = common::peer::RawClient::connect(addrs[0]);
    setup.roundtrip(b"ms casloop 1\r\n0\r\n", b"HD\r\n");
    let loopers: Vec<_> = (0..LOOPERS)
        .map(|i| {
            let addr = addrs[i % addrs.len()];
            std::thread::spawn(move || {
                let mut client = common::peer::RawClient::connect(addr);
                let deadline = Instant::now() + Duration::from_secs(120);
                let mut done = 0;
                let mut conflicts = 0;
                while done < UPDATES {
                    assert!(Instant::now() < deadline, "cas loop did not finish");
                    client.send(b"mg casloop v c\r\n");
                    // `VA <size> c<cas>\r\n<digits>\r\n`: the digits hold no line break.
                    let mut reply = Vec::new();
                    while reply.windows(2).filter(|w| w == b"\r\n").count() < 2 {
                        reply.extend(client.read_until(b"\r\n"));
                    }
                    let text = String::from_utf8(reply).unwrap();
                    let (line, data) = text.split_once("\r\n").unwrap();
                    let cas: u64 = line
                        .split_whitespace()
                        .find_map(|w| w.strip_prefix('c'))
                        .and_then(|c| c.parse().ok())
                        .unwrap_or_else(|| panic!("no cas in {line:?}"));
                    let value: u64 = data.trim_end().parse().unwrap();
                    let next = (value + 1).to_string();
                    client
                        .send(format!("ms casloop {} C{cas}\r\n{next}\r\n", next.len()).as_bytes());
                    let answer = client.read_until(b"\r\n");
                    match &answer[..] {
                        b"HD\r\n" => done += 1,
                        b"EX\r\n" => conflicts += 1,
                        other => panic!("unexpected {}", String::from_utf8_lossy(other)),
                    }
                }
                conflicts
            })
        })
        .collect();
    let conflicts: u64 = loopers
        .into_iter()
        .map(|l| l.join().expect("cas loop"))
        .sum();
    for &addr in &addrs {
        let mut client = common::peer::RawClient::connect(addr);
        client.send(b"mg casloop v\r\n");
        let expected = (LOOPERS as u64 * UPDATES).to_string();
        client.expect(format!("VA {}\r\n{expected}\r\n", expected.len()).as_bytes());
    }
    println!(
        "meta cas loops: {} updates, {conflicts} conflicts retried",
        LOOPERS as u64 * UPDATES
    );
}
