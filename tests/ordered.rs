//! The linearizable and sequential modes end to end: three real `memcord peer` processes on
//! loopback agreeing on one order through Raft.

mod common;

use common::cases::run_cases;
use common::cluster::{get, wait_for, Cluster, ClusterSpec};
use common::peer::RawClient;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Sends one request and returns its one-line reply.
fn line(client: &mut RawClient, request: &str) -> String {
    client.send(request.as_bytes());
    String::from_utf8(client.read_until(b"\r\n")).expect("utf-8 reply")
}

fn set(client: &mut RawClient, key: &str, value: &str) -> String {
    line(
        client,
        &format!("set {key} 0 0 {}\r\n{value}\r\n", value.len()),
    )
}

fn stat(cluster: &Cluster, id: usize, name: &str) -> String {
    cluster
        .cluster_stats(id)
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
        .unwrap_or_default()
}

/// A numeric `stats cluster` line summed over the peers `ids`.
fn stat_sum(cluster: &Cluster, ids: std::ops::Range<usize>, name: &str) -> u64 {
    ids.map(|id| stat(cluster, id, name).parse::<u64>().unwrap())
        .sum()
}

fn behaviour_table_through_every_peer(consistency: &'static str) {
    let cluster = Cluster::start(ClusterSpec::ordered(consistency));
    for addr in &cluster.client_addrs {
        run_cases(*addr);
    }
}

#[test]
fn linearizable_behaves_like_one_memcached_through_every_peer() {
    behaviour_table_through_every_peer("linearizable");
}

#[test]
fn sequential_behaves_like_one_memcached_through_every_peer() {
    behaviour_table_through_every_peer("sequential");
}

/// N clients × M `incr` spread over every peer end at exactly N×M.
fn concurrent_incr_sums_exactly(cluster: &Cluster, clients_per_peer: usize, incrs: u64) {
    let mut c = cluster.client(0);
    assert_eq!(set(&mut c, "counter", "0"), "STORED\r\n");
    let mut threads = Vec::new();
    for peer in 0..cluster.client_addrs.len() {
        for _ in 0..clients_per_peer {
            let addr = cluster.client_addrs[peer];
            threads.push(std::thread::spawn(move || {
                let mut client = RawClient::connect(addr);
                for _ in 0..incrs {
                    let reply = line(&mut client, "incr counter 1\r\n");
                    assert!(
                        reply.trim().parse::<u64>().is_ok(),
                        "incr answered {reply:?}"
                    );
                }
            }));
        }
    }
    for t in threads {
        t.join().expect("incr thread");
    }
    let total = (cluster.client_addrs.len() * clients_per_peer) as u64 * incrs;
    for peer in 0..cluster.client_addrs.len() {
        let mut client = cluster.client(peer);
        // Sequential reads are local: write through this connection first so the read waits
        // for everything ordered before that write.
        line(&mut client, "touch counter 0\r\n");
        assert_eq!(
            get(&mut client, "counter"),
            Some(total.to_string().into_bytes()),
            "peer {peer}"
        );
    }
}

#[test]
fn linearizable_incr_from_every_peer_sums_exactly() {
    let cluster = Cluster::start(ClusterSpec::ordered("linearizable"));
    concurrent_incr_sums_exactly(&cluster, 3, 40);
    // Every write went through exactly one batch: 1 set, 360 increments, 3 touches.
    let batched = stat_sum(&cluster, 0..3, "cluster_batched_commands");
    assert_eq!(batched, 364);
}

#[test]
fn sequential_incr_from_every_peer_sums_exactly() {
    let cluster = Cluster::start(ClusterSpec::ordered("sequential"));
    concurrent_incr_sums_exactly(&cluster, 3, 40);
}

#[test]
fn linearizable_concurrent_cas_loops_never_lose_an_update() {
    let cluster = Cluster::start(ClusterSpec::ordered("linearizable"));
    assert_eq!(set(&mut cluster.client(0), "cas-key", "0"), "STORED\r\n");
    let rounds = 15;
    let threads: Vec<_> = (0..3)
        .map(|peer| {
            let addr = cluster.client_addrs[peer];
            std::thread::spawn(move || {
                let mut client = RawClient::connect(addr);
                let mut done = 0;
                let mut attempts = 0;
                while done < rounds {
                    attempts += 1;
                    assert!(attempts < 10_000, "cas loop made no progress");
                    client.send(b"gets cas-key\r\n");
                    let reply = String::from_utf8(client.read_until(b"END\r\n")).unwrap();
                    let mut parts = reply.lines().next().unwrap().split(' ');
                    let cas: u64 = parts.nth(4).unwrap().parse().unwrap();
                    let value: u64 = reply.lines().nth(1).unwrap().parse().unwrap();
                    let next = (value + 1).to_string();
                    let request = format!("cas cas-key 0 0 {} {cas}\r\n{next}\r\n", next.len());
                    match line(&mut client, &request).as_str() {
                        "STORED\r\n" => done += 1,
                        "EXISTS\r\n" => {}
                        other => panic!("cas answered {other:?}"),
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("cas thread");
    }
    assert_eq!(
        get(&mut cluster.client(1), "cas-key"),
        Some((3 * rounds).to_string().into_bytes())
    );
}

#[test]
fn linearizable_acknowledged_write_is_visible_through_every_other_peer() {
    let cluster = Cluster::start(ClusterSpec::ordered("linearizable"));
    let mut clients: Vec<RawClient> = (0..3).map(|id| cluster.client(id)).collect();
    for round in 0..30 {
        let writer = round % 3;
        let value = format!("v{round}");
        assert_eq!(set(&mut clients[writer], "seen", &value), "STORED\r\n");
        for (reader, client) in clients.iter_mut().enumerate() {
            assert_eq!(
                get(client, "seen"),
                Some(value.clone().into_bytes()),
                "round {round}: written through {writer}, read through {reader}"
            );
        }
    }
}

#[test]
fn linearizable_leader_serves_reads_from_its_lease_and_a_cut_leader_stops_at_once() {
    let cluster = Cluster::start(ClusterSpec::ordered("linearizable"));
    let leader = cluster.leader(Duration::from_secs(10));
    let mut through_leader = cluster.client(leader);
    assert_eq!(set(&mut through_leader, "k", "v1"), "STORED\r\n");
    for _ in 0..200 {
        assert_eq!(get(&mut through_leader, "k"), Some(b"v1".to_vec()));
    }
    let lease_reads: u64 = stat(&cluster, leader, "cluster_lease_reads")
        .parse()
        .unwrap();
    let rounds: u64 = stat(&cluster, leader, "cluster_read_rounds")
        .parse()
        .unwrap();
    assert!(
        lease_reads > rounds,
        "most reads use the lease: {lease_reads} lease reads, {rounds} rounds"
    );
    // Cut the leader off; the others elect a new one and accept a newer value. The old
    // leader must never answer the old value once the new one could be acknowledged: its
    // lease (3/4 of the 400 ms failure timeout) ends before the others may elect.
    assert_eq!(line(&mut through_leader, "fail\r\n"), "OK\r\n");
    let other = (leader + 1) % 3;
    let mut through_other = cluster.client(other);
    let resumed = wait_for(Duration::from_secs(10), || {
        set(&mut through_other, "k", "v2") == "STORED\r\n"
    });
    assert!(resumed.is_some(), "the majority serves\n{}", cluster.logs());
    assert_eq!(
        line(&mut through_leader, "get k\r\n"),
        "SERVER_ERROR no quorum\r\n"
    );
    assert_eq!(line(&mut through_leader, "recover\r\n"), "OK\r\n");
}

#[test]
fn linearizable_without_lease_reads_confirms_every_read_round() {
    let cluster = Cluster::start(ClusterSpec::ordered("linearizable").with("lease_reads = false"));
    let leader = cluster.leader(Duration::from_secs(10));
    let mut client = cluster.client(leader);
    assert_eq!(set(&mut client, "k", "v"), "STORED\r\n");
    for _ in 0..50 {
        assert_eq!(get(&mut client, "k"), Some(b"v".to_vec()));
    }
    assert_eq!(stat(&cluster, leader, "cluster_lease_reads"), "0");
    let rounds: u64 = stat(&cluster, leader, "cluster_read_rounds")
        .parse()
        .unwrap();
    assert!(rounds >= 50, "{rounds} confirmation rounds for 50 reads");
}

#[test]
fn sequential_client_reads_its_own_writes_through_a_follower() {
    let cluster = Cluster::start(ClusterSpec::ordered("sequential"));
    let leader = cluster.leader(Duration::from_secs(10));
    let follower = (leader + 1) % 3;
    let mut client = cluster.client(follower);
    for round in 0..100 {
        let value = format!("mine-{round}");
        assert_eq!(set(&mut client, "own", &value), "STORED\r\n");
        assert_eq!(get(&mut client, "own"), Some(value.into_bytes()));
    }
}

/// Clients writing `incr load 1` in a loop, counting acknowledged increments and those whose
/// outcome is unknown (an error reply: the increment may or may not be applied).
struct IncrLoad {
    stop: Arc<AtomicBool>,
    acked: Arc<AtomicU64>,
    unknown: Arc<AtomicU64>,
    writers: Vec<std::thread::JoinHandle<()>>,
}

impl IncrLoad {
    /// `per_peer` writers on each of `peers`.
    fn start(cluster: &Cluster, peers: &[usize], per_peer: usize) -> IncrLoad {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(AtomicU64::new(0));
        let unknown = Arc::new(AtomicU64::new(0));
        let mut writers = Vec::new();
        for &id in peers {
            for _ in 0..per_peer {
                let addr = cluster.client_addrs[id];
                let (stop, acked, unknown) = (stop.clone(), acked.clone(), unknown.clone());
                writers.push(std::thread::spawn(move || {
                    let mut client = RawClient::connect(addr);
                    while !stop.load(Ordering::SeqCst) {
                        let reply = line(&mut client, "incr load 1\r\n");
                        if reply.trim().parse::<u64>().is_ok() {
                            acked.fetch_add(1, Ordering::SeqCst);
                        } else {
                            assert!(reply.starts_with("SERVER_ERROR"), "incr answered {reply:?}");
                            unknown.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                }));
            }
        }
        IncrLoad {
            stop,
            acked,
            unknown,
            writers,
        }
    }

    /// Increments acknowledged so far.
    fn acked(&self) -> u64 {
        self.acked.load(Ordering::SeqCst)
    }

    /// Waits until `more` increments beyond those acknowledged now are acknowledged.
    fn wait_for_more(&self, more: u64, what: &str) -> Duration {
        let before = self.acked();
        wait_for(Duration::from_secs(10), || self.acked() > before + more).expect(what)
    }

    /// Stops the writers: `(acknowledged, unknown)`.
    fn finish(self) -> (u64, u64) {
        self.stop.store(true, Ordering::SeqCst);
        for w in self.writers {
            w.join().expect("writer");
        }
        (
            self.acked.load(Ordering::SeqCst),
            self.unknown.load(Ordering::SeqCst),
        )
    }
}

#[test]
fn linearizable_survives_sigkill_of_the_leader_and_the_peer_catches_up_on_restart() {
    // With no applied entry kept in memory, what the restarted peer missed is sent from
    // records read back from the new leader's log file.
    let mut cluster =
        Cluster::start(ClusterSpec::ordered("linearizable").with("log_memory_mb = 0"));
    assert_eq!(set(&mut cluster.client(0), "load", "0"), "STORED\r\n");
    let leader = cluster.leader(Duration::from_secs(10));
    let survivors: Vec<usize> = (0..3).filter(|&id| id != leader).collect();
    let load = IncrLoad::start(&cluster, &survivors, 2);
    load.wait_for_more(50, "load is acknowledged before the kill");
    cluster.kill(leader);
    let killed_at = Instant::now();
    // Service resumes: acknowledgements flow again through the survivors.
    let resumed = load.wait_for_more(20, "service resumes after the leader is killed");
    eprintln!(
        "fail-over: writes acknowledged again {:?} after SIGKILL of leader {leader}",
        killed_at.elapsed().min(resumed + Duration::from_millis(1))
    );
    let (acked, unknown) = load.finish();
    let value: u64 = String::from_utf8(get(&mut cluster.client(survivors[0]), "load").unwrap())
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        value >= acked && value <= acked + unknown,
        "value {value}, acknowledged {acked}, unknown {unknown}"
    );
    // The killed peer restarts from its data directory and catches up.
    cluster.start_peer(leader);
    cluster.wait_serving(leader, Duration::from_secs(20));
    let mut restarted = cluster.client(leader);
    assert_eq!(
        get(&mut restarted, "load"),
        Some(value.to_string().into_bytes())
    );
    assert_eq!(set(&mut restarted, "after", "restart"), "STORED\r\n");
    let applied = |id| stat(&cluster, id, "cluster_applied_index");
    wait_for(Duration::from_secs(10), || {
        applied(leader) == applied(survivors[0])
    })
    .expect("the restarted peer applies everything the others did");
}

#[test]
fn linearizable_failed_peer_answers_no_quorum_and_catches_up_after_recover() {
    // No applied entry stays in memory: the leader sends the recovered peer what it missed
    // from records read back from its log file.
    let cluster = Cluster::start(ClusterSpec::ordered("linearizable").with("log_memory_mb = 0"));
    let mut cut = cluster.client(2);
    assert_eq!(set(&mut cut, "before", "fail"), "STORED\r\n");
    assert_eq!(line(&mut cut, "fail\r\n"), "OK\r\n");
    // The other two go on (after an election if the cut peer led).
    let mut other = cluster.client(0);
    let resumed = wait_for(Duration::from_secs(10), || {
        set(&mut other, "during", "cut") == "STORED\r\n"
    });
    assert!(resumed.is_some(), "the majority serves\n{}", cluster.logs());
    // The cut peer answers no quorum, within the bound, for writes and reads alike.
    for request in ["set x 0 0 1\r\nx\r\n", "get during\r\n"] {
        let started = Instant::now();
        assert_eq!(line(&mut cut, request), "SERVER_ERROR no quorum\r\n");
        assert!(started.elapsed() < Duration::from_secs(4), "{request:?}");
    }
    assert_eq!(line(&mut cut, "recover\r\n"), "OK\r\n");
    // Until its links are back, the recovered peer may still answer `no quorum`.
    let caught_up = wait_for(Duration::from_secs(15), || {
        cut.send(b"get during\r\n");
        let mut reply = Vec::new();
        while !(reply.ends_with(b"END\r\n")
            || reply.starts_with(b"SERVER_ERROR") && reply.ends_with(b"\r\n"))
        {
            reply.extend(cut.read_until(b"\r\n"));
        }
        reply == b"VALUE during 0 3\r\ncut\r\nEND\r\n"
    });
    assert!(
        caught_up.is_some(),
        "the recovered peer catches up\n{}",
        cluster.logs()
    );
    let read_back = stat_sum(&cluster, 0..2, "cluster_log_read_back");
    assert!(
        read_back > 0,
        "the leader read what it sent back from its log file"
    );
}

#[test]
fn a_lone_peer_answers_no_quorum_within_the_bound() {
    let mut cluster = Cluster::start(ClusterSpec::ordered("sequential"));
    cluster.kill(0);
    cluster.kill(1);
    let mut lone = cluster.client(2);
    let started = Instant::now();
    assert_eq!(set(&mut lone, "k", "v"), "SERVER_ERROR no quorum\r\n");
    assert!(started.elapsed() < Duration::from_secs(4));
}

#[test]
fn both_ordered_modes_run_over_real_memcached_backends() {
    for consistency in ["linearizable", "sequential"] {
        let mut spec = ClusterSpec::ordered(consistency);
        spec.memcached = true;
        let cluster = Cluster::start(spec);
        concurrent_incr_sums_exactly(&cluster, 2, 20);
        let mut writer = cluster.client(1);
        assert_eq!(set(&mut writer, "mc", "value"), "STORED\r\n");
        let mut reader = cluster.client(2);
        line(&mut reader, "touch mc 0\r\n");
        assert_eq!(get(&mut reader, "mc"), Some(b"value".to_vec()));
    }
}

#[test]
fn a_peer_whose_memcached_restarts_empty_stops_and_its_restart_rebuilds_the_backend() {
    let mut spec = ClusterSpec::ordered("linearizable");
    spec.memcached = true;
    let mut cluster = Cluster::start(spec);
    let mut writer = cluster.client(1);
    for i in 0..50 {
        assert_eq!(
            set(&mut writer, &format!("key:{i}"), &format!("v{i}")),
            "STORED\r\n"
        );
    }
    assert_eq!(get(&mut cluster.client(0), "key:49"), Some(b"v49".to_vec()));
    // Peer 0's memcached crashes and comes back empty on its port: peer 0 must not serve from
    // it (an `add` would succeed on a key that exists, a read would miss acknowledged writes).
    cluster.backends[0].restart();
    let (status, log) = cluster.wait_exit(0, Duration::from_secs(10));
    assert!(!status.success(), "peer 0 exited with {status}");
    assert!(
        log.contains("backing memcached restarted"),
        "peer 0's log says why it stopped:\n{log}"
    );
    // The other two go on meanwhile.
    assert_eq!(set(&mut writer, "during", "outage"), "STORED\r\n");
    assert_eq!(
        line(&mut writer, "add key:7 0 0 1\r\nx\r\n"),
        "NOT_STORED\r\n"
    );
    // Restarted (as a supervisor would), peer 0 rebuilds its memcached from the cluster.
    cluster.start_peer(0);
    cluster.wait_serving(0, Duration::from_secs(20));
    let mut reader = cluster.client(0);
    for i in 0..50 {
        assert_eq!(
            get(&mut reader, &format!("key:{i}")),
            Some(format!("v{i}").into_bytes()),
            "key:{i} through peer 0 after its restart"
        );
    }
    assert_eq!(get(&mut reader, "during"), Some(b"outage".to_vec()));
    assert_eq!(
        line(&mut reader, "add key:3 0 0 1\r\nx\r\n"),
        "NOT_STORED\r\n"
    );
    // The items are really back in peer 0's own memcached (as envelopes).
    let mut backend = RawClient::connect(cluster.backends[0].addr());
    backend.send(b"get key:0 during\r\n");
    let raw = backend.read_until(b"END\r\n");
    let text = String::from_utf8_lossy(&raw);
    assert!(
        text.contains("VALUE key:0 ") && text.contains("VALUE during "),
        "peer 0's memcached after the rebuild: {text}"
    );
}

#[test]
fn sequential_over_memcached_survives_sigkill_and_the_peer_catches_up_from_a_snapshot() {
    // Snapshots every 100 entries (and only 100 kept after one), so the restarted peer is
    // too far behind for the log alone: it is sent a snapshot the leader built by reading its
    // key index back from its memcached backend.
    let mut spec = ClusterSpec::ordered("sequential").with("snapshot_logs = 100");
    spec.memcached = true;
    let mut cluster = Cluster::start(spec);
    assert_eq!(set(&mut cluster.client(0), "load", "0"), "STORED\r\n");
    let leader = cluster.leader(Duration::from_secs(10));
    let survivors: Vec<usize> = (0..3).filter(|&id| id != leader).collect();
    let load = IncrLoad::start(&cluster, &survivors, 1);
    load.wait_for_more(30, "load is acknowledged before the kill");
    cluster.kill(leader);
    load.wait_for_more(20, "service resumes after the leader is killed");
    // Many more entries while the old leader is down, one key each.
    let mut writer = cluster.client(survivors[0]);
    for i in 0..300 {
        assert_eq!(
            set(&mut writer, &format!("key:{i}"), &format!("v{i}")),
            "STORED\r\n"
        );
    }
    let (acked, unknown) = load.finish();
    line(&mut writer, "touch load 0\r\n");
    let value: u64 = String::from_utf8(get(&mut writer, "load").unwrap())
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        value >= acked && value <= acked + unknown,
        "value {value}, acknowledged {acked}, unknown {unknown}"
    );
    let snapshot = stat(&cluster, survivors[0], "cluster_snapshot_index");
    assert!(
        snapshot.parse::<u64>().unwrap() > 100,
        "snapshot at {snapshot}"
    );
    cluster.start_peer(leader);
    cluster.wait_serving(leader, Duration::from_secs(20));
    let applied = |id| stat(&cluster, id, "cluster_applied_index");
    wait_for(Duration::from_secs(10), || {
        applied(leader) == applied(survivors[0])
    })
    .expect("the restarted peer applies everything the others did");
    let mut restarted = cluster.client(leader);
    // A write through this connection first: its reads then see everything ordered before.
    assert_eq!(set(&mut restarted, "after", "restart"), "STORED\r\n");
    assert_eq!(
        get(&mut restarted, "load"),
        Some(value.to_string().into_bytes())
    );
    for i in 0..300 {
        assert_eq!(
            get(&mut restarted, &format!("key:{i}")),
            Some(format!("v{i}").into_bytes()),
            "key:{i} through the restarted peer"
        );
    }
}

#[test]
fn a_pipeline_of_writes_rides_few_log_entries_in_both_ordered_modes() {
    for mode in ["linearizable", "sequential"] {
        let cluster = Cluster::start(ClusterSpec::ordered(mode));
        let leader = cluster.leader(Duration::from_secs(20));
        let follower = (leader + 1) % 3;
        let before = stat(&cluster, leader, "cluster_last_log_index")
            .parse::<u64>()
            .unwrap();
        // 60 writes in one segment, mixed with noreply and a meta set, then a read of the
        // last: the replies come in order, the read sees every write before it.
        let mut pipeline = String::new();
        let mut expected = String::new();
        for i in 0..60 {
            if i % 3 == 0 {
                pipeline += &format!("set p{i} 0 0 2 noreply\r\nv{}\r\n", i % 10);
            } else if i % 3 == 1 {
                pipeline += &format!("ms p{i} 2\r\nv{}\r\n", i % 10);
                expected += "HD\r\n";
            } else {
                pipeline += &format!("set p{i} 0 0 2\r\nv{}\r\n", i % 10);
                expected += "STORED\r\n";
            }
        }
        pipeline += "incr counter 1\r\nset counter 0 0 1\r\n5\r\nincr counter 2\r\nget p59\r\n";
        expected += "NOT_FOUND\r\nSTORED\r\n7\r\nVALUE p59 0 2\r\nv9\r\nEND\r\n";
        let mut client = cluster.client(follower);
        client.roundtrip(pipeline.as_bytes(), expected.as_bytes());
        let after = stat(&cluster, leader, "cluster_last_log_index")
            .parse::<u64>()
            .unwrap();
        // Unbatched, 63 writes cost 63 entries; gathered, a handful.
        assert!(
            after - before <= 12,
            "{mode}: {} log entries for 63 pipelined writes",
            after - before
        );
        for key in ["p0", "p31", "p59"] {
            for id in 0..3 {
                let mut c = cluster.client(id);
                let deadline = Instant::now() + Duration::from_secs(10);
                while get(&mut c, key).is_none() {
                    assert!(Instant::now() < deadline, "{key} never reached peer {id}");
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
    }
}
