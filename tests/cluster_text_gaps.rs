//! The text protocol's admin commands and the oversized `set` in a three-peer cluster of each
//! mode, through a follower: an oversized `set` drops the key's old item on every replica
//! (a replicated delete), `append` keeps it, and the store's admin commands answer with the
//! follower's own figures (`cache_memlimit` is per replica, never replicated).

mod common;

use common::cases::OVERSIZED;
use common::cluster::{get, wait_for, Cluster, ClusterSpec};
use common::peer::{stat, RawClient};
use std::time::Duration;

/// How long a replicated write may take to reach every peer.
const SPREAD: Duration = Duration::from_secs(10);

fn oversized(command: &str, key: &str, noreply: bool) -> Vec<u8> {
    let noreply = if noreply { " noreply" } else { "" };
    let mut request = format!("{command} {key} 0 0 {OVERSIZED}{noreply}\r\n").into_bytes();
    request.extend_from_slice(&vec![b'v'; OVERSIZED]);
    request.extend(b"\r\n");
    request
}

/// Waits until every peer reads `expected` under `key`.
fn everywhere(cluster: &Cluster, key: &str, expected: Option<&[u8]>, mode: &str) {
    for id in 0..3 {
        let mut client = cluster.client(id);
        let seen = wait_for(SPREAD, || get(&mut client, key).as_deref() == expected);
        assert!(
            seen.is_some(),
            "{mode}: peer {id} never read {key} as {expected:?}\n{}",
            cluster.logs()
        );
    }
}

fn check_through(cluster: &Cluster, follower: usize, mode: &str) {
    let mut c: RawClient = cluster.client(follower);
    c.roundtrip(b"set big 0 0 3\r\nold\r\n", b"STORED\r\n");
    c.roundtrip(b"set kept 0 0 3\r\nold\r\n", b"STORED\r\n");
    c.roundtrip(b"set quiet 0 0 3\r\nold\r\n", b"STORED\r\n");
    everywhere(cluster, "big", Some(b"old"), mode);
    everywhere(cluster, "quiet", Some(b"old"), mode);

    c.send(&oversized("set", "big", false));
    c.expect(b"SERVER_ERROR object too large for cache\r\n");
    c.send(&oversized("append", "kept", false));
    c.expect(b"SERVER_ERROR object too large for cache\r\n");
    c.send(&oversized("set", "quiet", true));
    c.roundtrip(
        b"get big quiet kept\r\n",
        b"VALUE kept 0 3\r\nold\r\nEND\r\n",
    );
    everywhere(cluster, "big", None, mode);
    everywhere(cluster, "quiet", None, mode);
    everywhere(cluster, "kept", Some(b"old"), mode);
    assert_eq!(stat(&c.stats(""), "store_too_large"), 3, "{mode}");

    // The store's admin commands answer with this peer's own figures.
    let items = c.stats("items");
    assert!(
        items.iter().any(|(name, _)| name.ends_with(":number")),
        "{mode}: {items:?}"
    );
    c.send(b"lru_crawler metadump all\r\n");
    let dump = String::from_utf8(c.read_until(b"END\r\n")).unwrap();
    assert!(dump.contains("key=kept "), "{mode}: {dump}");
    c.roundtrip(b"cache_memlimit 32\r\n", b"OK\r\n");
    assert_eq!(stat(&c.stats(""), "limit_maxbytes"), 32 << 20, "{mode}");
    let other = (follower + 1) % 3;
    assert_eq!(
        stat(&cluster.client(other).stats(""), "limit_maxbytes"),
        64 << 20,
        "{mode}: cache_memlimit is per replica"
    );
    c.roundtrip(b"stats detail on\r\nget kept:1\r\n", b"OK\r\nEND\r\n");
    c.roundtrip(
        b"stats detail dump\r\n",
        b"PREFIX kept get 1 hit 0 set 0 del 0\r\nEND\r\n",
    );
    c.roundtrip(b"shutdown\r\n", b"ERROR: shutdown not enabled\r\n");
    c.send(b"GET / HTTP/1.1\r\n");
    c.expect_closed(b"");
}

#[test]
fn oversized_sets_unlink_on_every_replica_and_admin_commands_answer_through_a_follower() {
    for (mode, spec) in [
        ("eventual", ClusterSpec::eventual()),
        ("linearizable", ClusterSpec::ordered("linearizable")),
        ("sequential", ClusterSpec::ordered("sequential")),
    ] {
        let cluster = Cluster::start(spec);
        let follower = if mode == "eventual" {
            1
        } else {
            (cluster.leader(Duration::from_secs(10)) + 1) % 3
        };
        check_through(&cluster, follower, mode);
    }
}
