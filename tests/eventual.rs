//! The eventual mode end to end: three real `memcord peer` processes on loopback.

mod common;

use common::cluster::{get, wait_for, Cluster, ClusterSpec};
use common::peer::RawClient;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn set(client: &mut RawClient, key: &str, value: &str) {
    client.roundtrip(
        format!("set {key} 0 0 {}\r\n{value}\r\n", value.len()).as_bytes(),
        b"STORED\r\n",
    );
}

/// Deletes `key`; the local replica may or may not have received it yet, and a tombstone is
/// replicated either way.
fn delete_either(client: &mut RawClient, key: &str) {
    client.send(format!("delete {key}\r\n").as_bytes());
    let reply = client.read_until(b"\r\n");
    assert!(
        reply == b"DELETED\r\n" || reply == b"NOT_FOUND\r\n",
        "{reply:?}"
    );
}

/// Waits until every peer answers `expected` for every key; returns how long that took.
fn wait_converged(
    cluster: &Cluster,
    keys: &[(String, Option<String>)],
    deadline: Duration,
) -> Duration {
    let mut clients: Vec<RawClient> = (0..cluster.client_addrs.len())
        .map(|i| cluster.client(i))
        .collect();
    let mut last = String::new();
    let took = wait_for(deadline, || {
        for (id, client) in clients.iter_mut().enumerate() {
            for (key, expected) in keys {
                let got = get(client, key).map(|v| String::from_utf8(v).unwrap());
                if &got != expected {
                    last = format!("peer {id} key {key}: {got:?} (want {expected:?})");
                    return false;
                }
            }
        }
        true
    });
    took.unwrap_or_else(|| {
        panic!(
            "not converged within {deadline:?}: {last}\n{}",
            cluster.logs()
        )
    })
}

#[test]
fn writes_through_different_peers_converge_by_the_periodic_sync_alone() {
    // Push off: only the anti-entropy sync carries writes, so this tests its bound.
    let cluster = Cluster::start(ClusterSpec::eventual().with("push = false"));
    let sync_interval = Duration::from_millis(200);
    let mut keys = Vec::new();
    for i in 0..30 {
        let key = format!("sync-{i}");
        let value = format!("value-{i}");
        set(&mut cluster.client(i % 3), &key, &value);
        keys.push((key, Some(value)));
    }
    // Through a peer that may not have the key yet: the tombstone replicates either way.
    delete_either(&mut cluster.client(1), "sync-0");
    keys[0].1 = None;
    let took = wait_converged(
        &cluster,
        &keys,
        2 * sync_interval + Duration::from_millis(300),
    );
    eprintln!("converged by sync in {took:?}");
}

#[test]
fn writes_converge_within_milliseconds_with_push() {
    let cluster = Cluster::start(ClusterSpec::eventual().with("sync_interval_ms = 5000"));
    let mut keys = Vec::new();
    for i in 0..20 {
        let key = format!("push-{i}");
        let value = format!("v{i}");
        set(&mut cluster.client(i % 3), &key, &value);
        keys.push((key, Some(value)));
    }
    // Far below the sync interval: only pushes can make this.
    let took = wait_converged(&cluster, &keys, Duration::from_secs(2));
    eprintln!("converged by push in {took:?}");
}

#[test]
fn conflicting_writes_converge_to_the_highest_version_and_deletes_follow_lww() {
    let cluster = Cluster::start(ClusterSpec::eventual().with("push = false"));
    // Concurrent writers on all peers hammer one key.
    let handles: Vec<_> = (0..3)
        .map(|id| {
            let addr = cluster.client_addrs[id];
            std::thread::spawn(move || {
                let mut client = RawClient::connect(addr);
                for round in 0..50 {
                    set(&mut client, "contended", &format!("peer{id}-round{round}"));
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    // All peers end with the same value and the same cas id (= the winning version).
    let mut gets = Vec::new();
    let agreed = wait_for(Duration::from_secs(5), || {
        gets = (0..3)
            .map(|id| {
                let mut c = cluster.client(id);
                c.send(b"gets contended\r\n");
                c.read_until(b"END\r\n")
            })
            .collect();
        gets.iter().all(|g| g == &gets[0])
    });
    assert!(
        agreed.is_some(),
        "replicas disagree: {:?}",
        gets.iter()
            .map(|g| String::from_utf8_lossy(g).into_owned())
            .collect::<Vec<_>>()
    );
    // The winner is a final write of one of the writers (their last round has the newest version
    // that writer produced).
    let winner = String::from_utf8_lossy(&gets[0]).into_owned();
    assert!(
        winner.contains("-round49"),
        "winner is not a last write: {winner}"
    );

    // Writes through different peers that never talked are ordered by their hybrid clocks,
    // whose physical part is this machine's wall clock in milliseconds: two writes in the same
    // millisecond are concurrent and either may win. A few milliseconds apart, the later wins.
    let tick = || std::thread::sleep(Duration::from_millis(3));
    // A delete after a set wins over it, wherever each happened...
    set(&mut cluster.client(0), "lww", "first");
    tick();
    delete_either(&mut cluster.client(1), "lww");
    wait_converged(&cluster, &[("lww".into(), None)], Duration::from_secs(3));
    // ...and a set after the delete wins over the delete.
    set(&mut cluster.client(2), "lww", "second");
    tick();
    delete_either(&mut cluster.client(0), "lww");
    tick();
    set(&mut cluster.client(1), "lww", "third");
    wait_converged(
        &cluster,
        &[("lww".into(), Some("third".into()))],
        Duration::from_secs(3),
    );
}

fn write_loop(
    cluster: &Cluster,
    peers: &[usize],
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<usize> {
    let addrs: Vec<_> = peers.iter().map(|&p| cluster.client_addrs[p]).collect();
    std::thread::spawn(move || {
        let mut clients: Vec<RawClient> = addrs.iter().map(|a| RawClient::connect(*a)).collect();
        let mut n = 0;
        while !stop.load(Ordering::SeqCst) && n < 20_000 {
            let client = &mut clients[n % addrs.len()];
            let key = format!("load-{}", n % 200);
            set(client, &key, &format!("{n}"));
            if n % 7 == 0 {
                client.send(format!("delete load-{}\r\n", (n / 7) % 200).as_bytes());
                let reply = client.read_until(b"\r\n");
                assert!(
                    reply == b"DELETED\r\n" || reply == b"NOT_FOUND\r\n",
                    "{reply:?}"
                );
            }
            n += 1;
        }
        n
    })
}

/// Reads every load key from every peer and asserts they all hold exactly the same.
fn assert_identical(cluster: &Cluster, deadline: Duration) {
    let keys: Vec<String> = (0..200).map(|i| format!("load-{i}")).collect();
    let mut diff = String::new();
    let same = wait_for(deadline, || {
        let views: Vec<Vec<Option<Vec<u8>>>> = (0..3)
            .map(|id| {
                let mut c = cluster.client(id);
                keys.iter().map(|k| get(&mut c, k)).collect()
            })
            .collect();
        for (i, key) in keys.iter().enumerate() {
            if views[0][i] != views[1][i] || views[0][i] != views[2][i] {
                diff = format!(
                    "{key}: {:?} / {:?} / {:?}",
                    views[0][i], views[1][i], views[2][i]
                );
                return false;
            }
        }
        true
    });
    assert!(
        same.is_some(),
        "replicas differ: {diff}\n{}",
        cluster.logs()
    );
}

#[test]
fn a_killed_peer_restarted_empty_catches_up_before_serving() {
    let mut cluster = Cluster::start(ClusterSpec::eventual());
    let stop = Arc::new(AtomicBool::new(false));
    let writer = write_loop(&cluster, &[0, 1], stop.clone());
    std::thread::sleep(Duration::from_millis(300)); // let some writes land first
    cluster.kill(2);
    std::thread::sleep(Duration::from_millis(300)); // writes continue while it is down
    cluster.start_peer(2);
    cluster.wait_serving(2, Duration::from_secs(20));
    assert!(
        cluster.peer(2).log().contains("caught up"),
        "{}",
        cluster.peer(2).log()
    );
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::SeqCst);
    let writes = writer.join().unwrap();
    assert!(writes > 0);
    assert_identical(&cluster, Duration::from_secs(5));
}

#[test]
fn a_failed_peer_refuses_clients_and_converges_after_recover() {
    let cluster = Cluster::start(ClusterSpec::eventual());
    let mut admin = cluster.client(2);
    admin.roundtrip(b"fail\r\n", b"OK\r\n");
    admin.roundtrip(b"get anything\r\n", b"SERVER_ERROR peer failed\r\n");
    admin.roundtrip(b"set k 0 0 1\r\nx\r\n", b"SERVER_ERROR peer failed\r\n");
    // The others see it down and go on serving.
    let down = wait_for(Duration::from_secs(5), || {
        cluster
            .cluster_stats(0)
            .iter()
            .any(|(k, v)| k == "peer.2.status" && v == "down")
    });
    assert!(down.is_some(), "peer 0 never saw peer 2 down");
    let stop = Arc::new(AtomicBool::new(false));
    let writer = write_loop(&cluster, &[0, 1], stop.clone());
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::SeqCst);
    writer.join().unwrap();
    admin.roundtrip(b"recover\r\n", b"OK\r\n");
    cluster.wait_serving(2, Duration::from_secs(20));
    assert_identical(&cluster, Duration::from_secs(5));
}

#[test]
fn the_cluster_converges_over_real_memcached_backends() {
    let spec = ClusterSpec {
        memcached: true,
        ..ClusterSpec::eventual()
    };
    let cluster = Cluster::start(spec);
    let mut keys = Vec::new();
    for i in 0..30 {
        let key = format!("mc-{i}");
        let value = format!("value-{i}");
        set(&mut cluster.client(i % 3), &key, &value);
        keys.push((key, Some(value)));
    }
    cluster
        .client(2)
        .roundtrip(b"incr mc-counter 1\r\n", b"NOT_FOUND\r\n");
    set(&mut cluster.client(0), "mc-counter", "41");
    wait_converged(
        &cluster,
        &[("mc-counter".into(), Some("41".into()))],
        Duration::from_secs(3),
    );
    cluster
        .client(1)
        .roundtrip(b"incr mc-counter 1\r\n", b"42\r\n");
    keys.push(("mc-counter".into(), Some("42".into())));
    wait_converged(&cluster, &keys, Duration::from_secs(3));
}

#[test]
fn bad_peer_traffic_is_dropped_without_harming_the_peer() {
    use memcord_proxy::cluster::frame;
    use memcord_proxy::cluster::message::{Challenge, Hello, Proof, PROTOCOL_VERSION};
    let cluster = Cluster::start(ClusterSpec::eventual());
    let peer_port = cluster.peer_addrs[1];
    let closed = |stream: &mut TcpStream| {
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut buf = [0u8; 64];
        loop {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => return true,
                Ok(_) => continue,
            }
        }
    };
    // Garbage instead of a hello.
    let mut s = TcpStream::connect(peer_port).unwrap();
    s.write_all(&[0, 0, 0, 5, 0xff, 0xff, 0xff, 0xff, 0xff])
        .unwrap();
    assert!(closed(&mut s));
    // An oversized frame: refused on the length alone.
    let mut s = TcpStream::connect(peer_port).unwrap();
    s.write_all(&u32::MAX.to_be_bytes()).unwrap();
    assert!(closed(&mut s));
    // A well-formed hello from someone without the secret.
    let mut s = TcpStream::connect(peer_port).unwrap();
    let mut out = Vec::new();
    frame::encode(
        &Hello {
            protocol: PROTOCOL_VERSION,
            from: 0,
            to: 1,
            mode: "eventual".into(),
            nonce: [7; 32],
        },
        &mut out,
    )
    .unwrap();
    s.write_all(&out).unwrap();
    let mut len = [0u8; 4];
    s.read_exact(&mut len).unwrap();
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut body).unwrap();
    let challenge: Challenge = postcard::from_bytes(&body).unwrap();
    assert!(matches!(challenge, Challenge::Continue { .. }));
    out.clear();
    frame::encode(&Proof { proof: [0; 32] }, &mut out).unwrap();
    s.write_all(&out).unwrap();
    assert!(closed(&mut s));
    let refused = wait_for(Duration::from_secs(5), || {
        cluster.peer(1).log().contains("wrong cluster secret")
    });
    assert!(refused.is_some(), "{}", cluster.peer(1).log());
    // A peer with another mode is refused with a clear line.
    let mut s = TcpStream::connect(peer_port).unwrap();
    out.clear();
    frame::encode(
        &Hello {
            protocol: PROTOCOL_VERSION,
            from: 0,
            to: 1,
            mode: "linearizable".into(),
            nonce: [1; 32],
        },
        &mut out,
    )
    .unwrap();
    s.write_all(&out).unwrap();
    assert!(closed(&mut s));
    assert!(wait_for(Duration::from_secs(5), || cluster
        .peer(1)
        .log()
        .contains("runs consistency mode 'linearizable'"))
    .is_some());

    // The cluster is unharmed: a write through peer 0 reaches peer 1.
    set(&mut cluster.client(0), "after-garbage", "fine");
    wait_converged(
        &cluster,
        &[("after-garbage".into(), Some("fine".into()))],
        Duration::from_secs(3),
    );
}
