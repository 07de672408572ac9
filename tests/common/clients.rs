//! Third-party clients as test helpers: the Rust `memcache` crate's session and libmemcached's
//! `memccapable` suite, each run against any address.

use std::collections::HashMap;
use std::process::Command;
use std::time::Duration;

/// Which protocol the `memcache` crate speaks: its default is binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `?protocol=ascii`.
    Ascii,
    /// The crate's default.
    Binary,
}

/// The `memcache` crate's whole session against `addr` over `protocol` (`memcord`: the server
/// is memcord, whose version text is checked).
pub fn rust_memcache_crate_at(addr: std::net::SocketAddr, protocol: Protocol, memcord: bool) {
    let url = match protocol {
        Protocol::Ascii => format!("memcache://{addr}?protocol=ascii"),
        // No `protocol` parameter: the crate's default, the binary protocol.
        Protocol::Binary => format!("memcache://{addr}"),
    };
    let client = memcache::Client::builder()
        .add_server(url.as_str())
        .unwrap()
        .with_read_timeout(Duration::from_secs(10))
        .with_write_timeout(Duration::from_secs(10))
        .with_connection_timeout(Duration::from_secs(10))
        .build()
        .unwrap();

    let version = client.version().unwrap();
    if memcord {
        assert_eq!(version[0].1, memcord_protocol::VERSION);
    }

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
    match protocol {
        // Over ASCII the crate maps NOT_STORED to Ok(()); the value shows the second add lost.
        Protocol::Ascii => client.add("fresh", "b", 0).unwrap(),
        // Over binary memcached answers "Data exists for key.", which the crate returns.
        Protocol::Binary => assert!(matches!(
            client.add("fresh", "b", 0),
            Err(memcache::MemcacheError::CommandError(
                memcache::CommandError::KeyExists
            ))
        )),
    }
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

    if protocol == Protocol::Binary {
        // Over binary the crate reads the whole stats reply (its ASCII reader stops after
        // the first line: an inverted END check).
        let stats = client.stats().unwrap();
        assert!(stats[0].1.contains_key("curr_items"), "{stats:?}");
    }

    client.flush().unwrap();
    assert_eq!(client.get::<String>("greeting").unwrap(), None);
}

/// Runs a libmemcached-tools program against the peer, failing loudly when it is missing.
pub fn libmemcached_tool(program: &str, args: &[&str]) -> std::process::Output {
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

/// Runs memcapable's whole suite (ASCII and binary) against `port`; the number of tests
/// that passed.
pub fn memcapable_passes(port: u16) -> usize {
    let port = port.to_string();
    let out = libmemcached_tool("memccapable", &["-t", "10", "-h", "127.0.0.1", "-p", &port]);
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(report.contains("All tests passed"), "{report}");
    let passed = report.lines().filter(|l| l.ends_with("[pass]")).count();
    assert!(
        report.lines().filter(|l| l.starts_with("binary ")).count() >= 25,
        "{report}"
    );
    passed
}
