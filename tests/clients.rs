//! Third-party memcache clients against a running `memcord peer`: the Rust `memcache` crate and
//! Python's pymemcache (Debian's `python3-pymemcache`, run with `/usr/bin/python3`).

mod common;

use common::memcached::MemcachedProcess;
use common::peer::PeerProcess;
use std::collections::HashMap;
use std::process::Command;
use std::time::Duration;

/// A peer in front of a fresh real memcached (returned too, to keep it alive).
fn memcached_backed_peer() -> (MemcachedProcess, PeerProcess) {
    let backend = MemcachedProcess::start();
    let port = backend.port().to_string();
    let peer = PeerProcess::start(&["--kv-type", "memcached", "--kv-port", &port]);
    (backend, peer)
}

#[test]
fn rust_memcache_crate() {
    rust_memcache_crate_against(&PeerProcess::start(&["--kv-type", "memory"]));
}

#[test]
fn rust_memcache_crate_memcached_backed() {
    let (_backend, peer) = memcached_backed_peer();
    rust_memcache_crate_against(&peer);
}

fn rust_memcache_crate_against(peer: &PeerProcess) {
    let url = format!("memcache://{}?protocol=ascii", peer.addr);
    let client = memcache::Client::builder()
        .add_server(url.as_str())
        .unwrap()
        .with_read_timeout(Duration::from_secs(10))
        .with_write_timeout(Duration::from_secs(10))
        .with_connection_timeout(Duration::from_secs(10))
        .build()
        .unwrap();

    let version = client.version().unwrap();
    assert_eq!(version[0].1, memcord::protocol::VERSION);

    client.set("greeting", "hello", 0).unwrap();
    assert_eq!(
        client.get::<String>("greeting").unwrap().as_deref(),
        Some("hello")
    );
    assert_eq!(client.get::<String>("missing").unwrap(), None);

    // gets + cas: the id from gets wins once, then is stale.
    let got: HashMap<String, (Vec<u8>, u32, Option<u64>)> = client.gets(&["greeting"]).unwrap();
    let cas = got["greeting"].2.expect("gets returns a cas id");
    assert!(client.cas("greeting", "hi", 0, cas).unwrap());
    assert!(!client.cas("greeting", "again", 0, cas).unwrap());
    assert_eq!(
        client.get::<String>("greeting").unwrap().as_deref(),
        Some("hi")
    );

    client.set("counter", 41u64, 0).unwrap();
    assert_eq!(client.increment("counter", 1).unwrap(), 42);
    assert_eq!(client.decrement("counter", 50).unwrap(), 0);

    client.add("fresh", "a", 0).unwrap();
    // The crate maps NOT_STORED to Ok(()); the value shows that the second add lost.
    client.add("fresh", "b", 0).unwrap();
    assert_eq!(client.get::<String>("fresh").unwrap().as_deref(), Some("a"));
    client.append("fresh", "z").unwrap();
    client.prepend("fresh", "y").unwrap();
    assert_eq!(
        client.get::<String>("fresh").unwrap().as_deref(),
        Some("yaz")
    );
    client.replace("fresh", "r", 0).unwrap();

    assert!(client.touch("fresh", 100).unwrap());
    assert!(!client.touch("missing", 100).unwrap());

    let many: HashMap<String, String> = client.gets(&["greeting", "fresh", "missing"]).unwrap();
    assert_eq!(many.len(), 2);
    assert_eq!(many["greeting"], "hi");
    assert_eq!(many["fresh"], "r");

    let binary: Vec<u8> = (0..=255).collect();
    client.set("binary", binary.as_slice(), 0).unwrap();
    assert_eq!(client.get::<Vec<u8>>("binary").unwrap(), Some(binary));

    assert!(client.delete("fresh").unwrap());
    assert!(!client.delete("fresh").unwrap());

    // Not `client.stats()`: memcache 0.21 stops reading a stats reply after its first line
    // (an inverted END check), leaving the rest on the connection.

    client.flush().unwrap();
    assert_eq!(client.get::<String>("greeting").unwrap(), None);
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

/// Runs a libmemcached-tools program against the peer, failing loudly when it is missing.
fn libmemcached_tool(program: &str, args: &[&str]) -> std::process::Output {
    let out = Command::new(program).args(args).output().unwrap_or_else(|err| {
        panic!("{program} is missing ({err}); run scripts/test.sh (apt-get install libmemcached-tools)")
    });
    assert!(
        out.status.success(),
        "{program} {args:?} failed:\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
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
