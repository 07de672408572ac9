//! Third-party memcache clients against a running `memcord peer`: the Rust `memcache` crate and
//! Python's pymemcache (Debian's `python3-pymemcache`, run with `/usr/bin/python3`).

mod common;

use common::clients::{libmemcached_tool, memcapable_passes, rust_memcache_crate_at, Protocol};
use common::memcached::MemcachedProcess;
use common::peer::PeerProcess;
use std::process::Command;

/// A peer in front of a fresh real memcached (returned too, to keep it alive).
fn memcached_backed_peer() -> (MemcachedProcess, PeerProcess) {
    let backend = MemcachedProcess::start();
    let port = backend.port().to_string();
    let peer = PeerProcess::start(&["--kv-type", "memcached", "--kv-port", &port]);
    (backend, peer)
}

#[test]
fn rust_memcache_crate() {
    let peer = PeerProcess::start(&["--kv-type", "memory"]);
    rust_memcache_crate_against(&peer, Protocol::Ascii);
    rust_memcache_crate_against(&peer, Protocol::Binary);
}

#[test]
fn rust_memcache_crate_memcached_backed() {
    let (_backend, peer) = memcached_backed_peer();
    rust_memcache_crate_against(&peer, Protocol::Ascii);
    rust_memcache_crate_against(&peer, Protocol::Binary);
}

#[test]
fn rust_memcache_crate_expectations_hold_for_memcached_itself() {
    let memcached = MemcachedProcess::start();
    rust_memcache_crate_at(memcached.addr(), Protocol::Ascii, false);
    rust_memcache_crate_at(memcached.addr(), Protocol::Binary, false);
}

fn rust_memcache_crate_against(peer: &PeerProcess, protocol: Protocol) {
    rust_memcache_crate_at(peer.addr, protocol, true);
}

#[test]
fn python_pymemcache() {
    pymemcache_against(&PeerProcess::start(&["--kv-type", "memory"]));
}

#[test]
fn python_pymemcache_memcached_backed() {
    let (_backend, peer) = memcached_backed_peer();
    pymemcache_against(&peer);
}

fn pymemcache_against(peer: &PeerProcess) {
    let python = common::python_with_pymemcache();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/clients/pymemcache_smoke.py"
    );
    let out = Command::new(python)
        .args([script, "127.0.0.1", &peer.port().to_string()])
        .output()
        .expect("running the pymemcache script");
    assert!(
        out.status.success(),
        "pymemcache smoke test failed:\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("pymemcache smoke: ok"));
}

#[test]
fn libmemcached_capability_suite_over_both_protocols_and_stores() {
    let memory = PeerProcess::start(&["--kv-type", "memory"]);
    let (_backend, backed) = memcached_backed_peer();
    // The same count as against memcached itself.
    let reference = MemcachedProcess::start();
    let expected = memcapable_passes(reference.port());
    assert_eq!(memcapable_passes(memory.port()), expected);
    assert_eq!(memcapable_passes(backed.port()), expected);
}

#[test]
fn libmemcached_capability_suite_and_tools() {
    let peer = PeerProcess::start(&["--kv-type", "memory"]);
    let port = peer.port().to_string();
    // memcapable's ASCII suite: every classic command, with and without noreply.
    let out = libmemcached_tool(
        "memccapable",
        &["-a", "-t", "10", "-h", "127.0.0.1", "-p", &port],
    );
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(report.contains("All tests passed"), "{report}");

    let servers = format!("--servers=127.0.0.1:{port}");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("libmemcached-key");
    std::fs::write(&file, b"copied by memccp").unwrap();
    libmemcached_tool("memccp", &[&servers, file.to_str().unwrap()]);
    let out = libmemcached_tool("memccat", &[&servers, "libmemcached-key"]);
    assert_eq!(out.stdout, b"copied by memccp\n");
    let out = libmemcached_tool("memcstat", &[&servers]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("curr_items"));
}
