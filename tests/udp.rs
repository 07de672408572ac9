//! memcached's UDP protocol through a real `memcord peer -U <port>` and, for the same
//! datagrams, a real memcached 1.6.18 `-U <port>`: exact datagrams back (8-byte frame
//! header, replies cut at 1400 bytes, one run of datagrams per reply), multi-datagram
//! requests dropped, requests served by the same code as TCP (the item set over UDP is read
//! over TCP).

mod common;

use common::memcached::MemcachedProcess;
use common::peer::{PeerProcess, REPLY_DEADLINE};
use std::net::{SocketAddr, UdpSocket};

/// A UDP port that was free a moment ago.
fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("bind udp")
        .port()
}

/// memcached's frame header.
fn header(request_id: u16, seq: u16, total: u16) -> Vec<u8> {
    [request_id, seq, total, 0]
        .iter()
        .flat_map(|n| n.to_be_bytes())
        .collect()
}

/// One datagram: a header and its payload.
fn datagram(request_id: u16, seq: u16, total: u16, payload: &[u8]) -> Vec<u8> {
    let mut d = header(request_id, seq, total);
    d.extend_from_slice(payload);
    d
}

struct UdpClient {
    socket: UdpSocket,
    server: SocketAddr,
}

impl UdpClient {
    fn new(server: SocketAddr) -> UdpClient {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind client");
        socket.set_read_timeout(Some(REPLY_DEADLINE)).unwrap();
        UdpClient { socket, server }
    }

    fn receive(&self) -> Vec<u8> {
        let mut buf = vec![0u8; 65536];
        let (n, _) = self
            .socket
            .recv_from(&mut buf)
            .unwrap_or_else(|err| panic!("no datagram from {} ({err})", self.server));
        buf.truncate(n);
        buf
    }

    /// Sends one datagram and asserts the datagrams that come back, in order.
    fn exchange(&self, sent: &[u8], expected: &[Vec<u8>]) {
        self.socket.send_to(sent, self.server).expect("send");
        for (i, want) in expected.iter().enumerate() {
            let got = self.receive();
            assert_eq!(
                got.escape_ascii().to_string(),
                want.escape_ascii().to_string(),
                "datagram {i} of the reply to {:?} from {}",
                sent.escape_ascii().to_string(),
                self.server
            );
        }
    }

    /// Sends `sent`, which must get no reply: a `version` with request id 999 after it must
    /// be the next datagram back.
    fn dropped(&self, sent: &[u8]) {
        self.socket.send_to(sent, self.server).expect("send");
        self.socket
            .send_to(&datagram(999, 0, 1, b"version\r\n"), self.server)
            .expect("send");
        let got = self.receive();
        assert_eq!(
            &got[..8],
            &header(999, 0, 1)[..],
            "{:?} was answered by {}: {:?}",
            sent.escape_ascii().to_string(),
            self.server,
            got.escape_ascii().to_string()
        );
    }
}

/// The same datagrams, the same answers, from any memcached-compatible UDP server.
fn speak_udp(server: SocketAddr) {
    let c = UdpClient::new(server);
    let one = |rid, payload: &[u8]| datagram(rid, 0, 1, payload);
    c.exchange(&one(1, b"set a 0 0 1\r\nx\r\n"), &[one(1, b"STORED\r\n")]);
    c.exchange(
        &one(2, b"get a\r\n"),
        &[one(2, b"VALUE a 0 1\r\nx\r\nEND\r\n")],
    );
    // Several requests in one datagram; each value of a multi-get is a reply of its own.
    c.exchange(
        &one(3, b"set b 0 0 1\r\ny\r\nget a nokey b\r\n"),
        &[
            one(3, b"STORED\r\n"),
            one(3, b"VALUE a 0 1\r\nx\r\n"),
            one(3, b"VALUE b 0 1\r\ny\r\nEND\r\n"),
        ],
    );
    // A 3000-byte value: 1392 bytes of reply per datagram, numbered 0..3 of 3.
    let value = vec![b'z'; 3000];
    let mut set = b"set big 0 0 3000\r\n".to_vec();
    set.extend(&value);
    set.extend(b"\r\n");
    c.exchange(&one(4, &set), &[one(4, b"STORED\r\n")]);
    let mut reply = b"VALUE big 0 3000\r\n".to_vec();
    reply.extend(&value);
    reply.extend(b"\r\nEND\r\n");
    let parts: Vec<Vec<u8>> = reply
        .chunks(1392)
        .enumerate()
        .map(|(seq, chunk)| datagram(5, seq as u16, 3, chunk))
        .collect();
    c.exchange(&one(5, b"get big\r\n"), &parts);
    c.exchange(&one(6, b"bogus\r\n"), &[one(6, b"ERROR\r\n")]);
    // The sequence number and the reserved bytes of a request are ignored.
    c.exchange(
        &datagram(7, 3, 1, b"delete b\r\n"),
        &[one(7, b"DELETED\r\n")],
    );
    // Requests spanning several datagrams, header-only datagrams and noreply: no answer.
    c.dropped(&datagram(8, 0, 2, b"get a\r\n"));
    c.dropped(&datagram(9, 1, 2, b"get a\r\n"));
    c.dropped(&datagram(10, 0, 0, b"get a\r\n"));
    c.dropped(&header(11, 0, 1));
    c.dropped(&one(12, b"set c 0 0 1 noreply\r\nz\r\n"));
    c.exchange(
        &one(13, b"get c\r\n"),
        &[one(13, b"VALUE c 0 1\r\nz\r\nEND\r\n")],
    );
}

#[test]
fn udp_answers_as_memcached_does() {
    let udp_port = free_udp_port().to_string();
    let memcached = MemcachedProcess::start_with_args(&["-m", "64", "-U", &udp_port]);
    assert_eq!(memcached.addr().ip().to_string(), "127.0.0.1");
    speak_udp(SocketAddr::from((
        [127, 0, 0, 1],
        udp_port.parse().unwrap(),
    )));

    let peer = PeerProcess::start(&["-U", "0"]);
    assert!(
        !peer.ready_line.contains("udp:"),
        "UDP is off unless a port is given: {}",
        peer.ready_line
    );
    let udp_port = free_udp_port().to_string();
    let peer = PeerProcess::start(&["-U", &udp_port]);
    let udp_addr: SocketAddr = peer
        .ready_line
        .split("udp: ")
        .nth(1)
        .and_then(|rest| rest.trim_end_matches(')').parse().ok())
        .unwrap_or_else(|| panic!("no udp address in {:?}", peer.ready_line));
    assert_eq!(udp_addr.port().to_string(), udp_port);
    speak_udp(udp_addr);
    // The same store and counters as TCP.
    let mut tcp = peer.client();
    tcp.roundtrip(b"get a\r\n", b"VALUE a 0 1\r\nx\r\nEND\r\n");
    let stats = tcp.stats("settings");
    assert!(stats
        .iter()
        .any(|(name, value)| name == "udpport" && *value == udp_port));
}

#[test]
fn udp_through_the_memcached_store() {
    let backend = MemcachedProcess::start();
    let port = backend.port().to_string();
    let udp_port = free_udp_port().to_string();
    let _peer = PeerProcess::start(&[
        "--kv-type",
        "memcached",
        "--kv-port",
        &port,
        "--udp-port",
        &udp_port,
    ]);
    speak_udp(SocketAddr::from((
        [127, 0, 0, 1],
        udp_port.parse().unwrap(),
    )));
}
