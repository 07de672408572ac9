//! Connection limits, idle timeout, oversized input and graceful shutdown, against a real
//! `memcord peer` process (and, for the in-flight request, the server run in-process with a
//! coordinator that holds a request until told to answer).

mod common;

use common::peer::{stat, PeerProcess, RawClient, REPLY_DEADLINE};
use memcord_protocol::{Request, Response};
use memcord_proxy::modes::{Coordinator, Session};
use memcord_proxy::server::{self, Settings, TOO_MANY_CONNECTIONS};
use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, Mutex};

#[test]
fn connections_over_the_limit_are_told_and_closed() {
    let peer = PeerProcess::start(&["--max-connections", "2"]);
    let mut a = peer.client();
    let mut b = peer.client();
    a.roundtrip(b"version\r\n", b"VERSION ");
    b.roundtrip(b"version\r\n", b"VERSION ");
    let mut c = peer.client();
    c.expect_closed(TOO_MANY_CONNECTIONS);
    drop(a);
    // The slot frees once the server has seen the close; retry until then, within a deadline.
    let until = Instant::now() + REPLY_DEADLINE;
    let mut d = loop {
        let mut d = RawClient::connect(peer.addr);
        d.send(b"get k\r\n");
        let mut first = [0u8; 3];
        d.stream().read_exact(&mut first).expect("a reply");
        if &first == b"END" {
            d.expect(b"\r\n");
            break d;
        }
        assert!(Instant::now() < until, "slot never freed");
        std::thread::sleep(Duration::from_millis(10));
    };
    let stats = d.stats("");
    assert!(stat(&stats, "rejected_connections") >= 1);
    assert_eq!(stat(&stats, "max_connections"), 2);
}

#[test]
fn idle_connections_are_closed() {
    let peer = PeerProcess::start(&["--idle-timeout", "1"]);
    let mut idle = peer.client();
    idle.roundtrip(b"set k 0 0 1\r\nx\r\n", b"STORED\r\n");
    let started = Instant::now();
    idle.expect_closed(b"");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900),
        "closed after {waited:?}"
    );
    // The server itself is fine.
    peer.client()
        .roundtrip(b"get k\r\n", b"VALUE k 0 1\r\nx\r\nEND\r\n");
}

#[test]
fn without_idle_timeout_connections_stay() {
    let peer = PeerProcess::start(&[]);
    let mut c = peer.client();
    c.stream()
        .set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    let mut buf = [0u8; 1];
    let err = c
        .stream()
        .read(&mut buf)
        .expect_err("no bytes and no close");
    assert!(matches!(
        err.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    ));
    c.stream().set_read_timeout(Some(REPLY_DEADLINE)).unwrap();
    c.roundtrip(b"get k\r\n", b"END\r\n");
}

#[test]
fn too_long_lines_are_refused_and_closed() {
    let peer = PeerProcess::start(&[]);
    let mut c = peer.client();
    c.send(&[b'x'; 5000]);
    c.expect_closed(b"CLIENT_ERROR line too long\r\n");
    let mut c = peer.client();
    let mut long_set = b"set ".to_vec();
    long_set.extend([b'k'; 3000]);
    long_set.extend(b" 0 0 1\r\nx\r\n");
    c.send(&long_set);
    c.expect_closed(b"CLIENT_ERROR line too long\r\n");
    // A long multi-key get is legal.
    let keys = vec!["k"; 5000].join(" ");
    peer.client()
        .roundtrip(format!("get {keys}\r\n").as_bytes(), b"END\r\n");
}

#[test]
fn sigterm_finishes_pipelined_requests_and_exits_zero() {
    let mut peer = PeerProcess::start(&[]);
    let mut idle = peer.client();
    let mut busy = peer.client();
    let mut request = Vec::new();
    let mut expected = Vec::new();
    for i in 0..200 {
        request.extend(format!("set k{i} 0 0 1\r\nx\r\n").bytes());
        expected.extend(b"STORED\r\n");
    }
    busy.send(&request);
    busy.expect(&expected);
    peer.signal(libc::SIGTERM);
    idle.expect_closed(b"");
    busy.expect_closed(b"");
    let status = peer.wait(REPLY_DEADLINE);
    assert_eq!(status.code(), Some(0), "log:\n{}", peer.log());
}

#[test]
fn sigint_exits_zero() {
    let mut peer = PeerProcess::start(&[]);
    peer.client().roundtrip(b"get k\r\n", b"END\r\n");
    peer.signal(libc::SIGINT);
    assert_eq!(peer.wait(REPLY_DEADLINE).code(), Some(0));
}

/// Answers `get` only when the test says so, and reports when a request has arrived.
struct HeldCoordinator {
    arrived: mpsc::UnboundedSender<()>,
    release: Mutex<Option<oneshot::Receiver<()>>>,
}

impl Coordinator for HeldCoordinator {
    async fn handle(&self, _session: &mut Session, _request: Request) -> Response {
        let _ = self.arrived.send(());
        if let Some(release) = self.release.lock().await.take() {
            let _ = release.await;
        }
        Response::Values(Vec::new())
    }
    fn mode(&self) -> &'static str {
        "held"
    }
    async fn stats(&self) -> Vec<(String, String)> {
        Vec::new()
    }
    async fn stats_group(&self, _group: &str) -> Option<Vec<(String, String)>> {
        None
    }
}

#[tokio::test]
async fn shutdown_waits_for_the_request_in_flight() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (arrived_tx, mut arrived) = mpsc::unbounded_channel();
    let (release_tx, release_rx) = oneshot::channel();
    let coordinator = Arc::new(HeldCoordinator {
        arrived: arrived_tx,
        release: Mutex::new(Some(release_rx)),
    });
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let server = tokio::spawn(server::run(
        listener,
        coordinator,
        Settings::default(),
        async {
            let _ = stop_rx.await;
        },
    ));
    let deadline = REPLY_DEADLINE;
    let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
    client.write_all(b"get k\r\n").await.unwrap();
    tokio::time::timeout(deadline, arrived.recv())
        .await
        .expect("request reached the coordinator");
    // Shut down while the request is held: the server must not return yet.
    stop_tx.send(()).unwrap();
    let mut server = server;
    assert!(
        tokio::time::timeout(Duration::from_millis(200), &mut server)
            .await
            .is_err(),
        "server returned with a request in flight"
    );
    release_tx.send(()).unwrap();
    let mut reply = Vec::new();
    tokio::time::timeout(deadline, client.read_to_end(&mut reply))
        .await
        .expect("reply and close in time")
        .unwrap();
    assert_eq!(reply, b"END\r\n");
    tokio::time::timeout(deadline, server)
        .await
        .expect("server returns after the last connection")
        .unwrap();
    // And it no longer accepts.
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}
