//! The shared behaviour table (`tests/common/cases.rs`, proven against real memcached by
//! `tests/memcached_reference.rs`) replayed against `memcord peer`, with the embedded store and
//! with a real memcached behind it.

mod common;

use common::cases::run_cases;
use common::memcached::MemcachedProcess;
use common::peer::PeerProcess;

#[test]
fn memcord_with_the_embedded_store_behaves_like_memcached() {
    let peer = PeerProcess::start(&["--kv-type", "memory"]);
    run_cases(peer.addr);
    // Cases use per-run key prefixes, so the table can run again on the same server.
    run_cases(peer.addr);
}

#[test]
fn memcord_in_front_of_memcached_behaves_like_memcached() {
    let backend = MemcachedProcess::start();
    let port = backend.port().to_string();
    let peer = PeerProcess::start(&[
        "--kv-type",
        "memcached",
        "--kv-host",
        "127.0.0.1",
        "--kv-port",
        &port,
    ]);
    assert!(
        peer.ready_line.contains("(kv: memcached,"),
        "{}",
        peer.ready_line
    );
    run_cases(peer.addr);
}
