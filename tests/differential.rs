//! The differential test: scripted sessions in the meta, binary and classic protocols (quiet
//! pipelines, errors, stale and win flows) sent to a real memcached 1.6.18 and to memcord with
//! each store; the replies must agree byte for byte once each server's own cas ids, clocks and
//! size classes are normalised (see `tests/common/differential.rs`).

mod common;

use common::differential::{differences, run};
use common::memcached::MemcachedProcess;
use common::peer::PeerProcess;
use common::sessions::{compare_with_memcached, s, text};

#[test]
fn memcord_with_the_embedded_store_answers_as_memcached() {
    let peer = PeerProcess::start(&["--kv-type", "memory"]);
    compare_with_memcached(peer.addr);
}

#[test]
fn memcord_in_front_of_memcached_answers_as_memcached() {
    let backend = MemcachedProcess::start();
    let port = backend.port().to_string();
    let peer = PeerProcess::start(&["--kv-type", "memcached", "--kv-port", &port]);
    compare_with_memcached(peer.addr);
}

#[test]
fn the_harness_normalises_only_what_servers_choose() {
    let memcached = MemcachedProcess::start();
    let session = text(
        "normalised",
        vec![s("ms {p}a 2 T100\r\nhi\r\n"), s("mg {p}a c t v\r\n")],
    );
    let got = run(memcached.addr(), &session, "h1_");
    let reply = String::from_utf8(got[1].clone()).unwrap();
    assert!(
        reply.starts_with("VA 2 c") && reply.ends_with(" t100\r\nhi\r\n"),
        "{reply}"
    );
    // Another cas id and a TTL a second apart are the same answer …
    let other_cas = vec![got[0].clone(), b"VA 2 c987654321 t99\r\nhi\r\n".to_vec()];
    assert!(differences(&session, &got, &other_cas).is_empty());
    // … another value, or a TTL further off, is not.
    let other_value = vec![got[0].clone(), reply.replace("hi", "ho").into_bytes()];
    assert_eq!(differences(&session, &got, &other_value).len(), 1);
    let far_ttl = vec![got[0].clone(), b"VA 2 c1 t90\r\nhi\r\n".to_vec()];
    assert_eq!(differences(&session, &got, &far_ttl).len(), 1);
}
