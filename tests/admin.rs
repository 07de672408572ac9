//! memcached's admin commands and full `stats` through a real `memcord peer` over TCP, exact
//! bytes: the embedded store's size classes (`stats items|slabs|sizes|cachedump`,
//! `lru_crawler metadump`), `cache_memlimit` evicting live, `stats detail`, `stats conns`,
//! `shutdown` with and without `-A`, the memcached store's relayed figures and its client's
//! view of a metadump, and the key sets of `stats` / `stats settings` against a real
//! memcached 1.6.18.

mod common;

use common::memcached::MemcachedProcess;
use common::peer::{stat, PeerProcess, RawClient, REPLY_DEADLINE};
use std::collections::BTreeSet;

fn embedded() -> PeerProcess {
    PeerProcess::start(&["--kv-type", "memory"])
}

fn in_front_of(backend: &MemcachedProcess) -> PeerProcess {
    let port = backend.port().to_string();
    PeerProcess::start(&["--kv-type", "memcached", "--kv-port", &port])
}

/// The reply to `request` read up to its closing `END\r\n`, as text.
fn listing(c: &mut RawClient, request: &str) -> String {
    c.send(request.as_bytes());
    String::from_utf8(c.read_until(b"END\r\n")).expect("utf-8 listing")
}

/// A backend's crawler can miss items its LRU maintainer is moving (memcached's metadump is
/// best effort: an item just read moves between LRU segments): asks until `complete` holds.
fn backend_listing(c: &mut RawClient, request: &str, complete: impl Fn(&str) -> bool) -> String {
    let deadline = std::time::Instant::now() + REPLY_DEADLINE;
    loop {
        let reply = listing(c, request);
        if complete(&reply) {
            return reply;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{request:?} kept answering {reply:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// The cas id `gets key` reports.
fn cas_of(c: &mut RawClient, key: &str) -> u64 {
    let reply = listing(c, &format!("gets {key}\r\n"));
    let header = reply.lines().next().expect("VALUE line");
    header
        .split(' ')
        .nth(4)
        .expect("cas")
        .parse()
        .expect("cas number")
}

/// The names of a stats reply.
fn names(stats: &[(String, String)]) -> BTreeSet<String> {
    stats.iter().map(|(name, _)| name.clone()).collect()
}

/// memcached keys `stats settings` leaves out on purpose, each for the reason in
/// `src/server/report.rs`: external storage (extstore) settings; memcord has none.
fn deliberately_absent_setting(name: &str) -> bool {
    name.starts_with("ext_") || name == "slab_automove_freeratio"
}

#[test]
fn stats_and_stats_settings_have_every_memcached_key() {
    let memcached = MemcachedProcess::start();
    let backend = MemcachedProcess::start();
    for peer in [embedded(), in_front_of(&backend)] {
        same_keys_as(
            &mut RawClient::connect(memcached.addr()),
            &mut peer.client(),
        );
    }
}

/// Compares the key sets (and the order of memcached's keys) of `stats` and `stats settings`.
fn same_keys_as(reference: &mut RawClient, c: &mut RawClient) {
    let theirs = names(&reference.stats(""));
    let ours = names(&c.stats(""));
    let missing: Vec<_> = theirs.difference(&ours).collect();
    assert!(missing.is_empty(), "stats lacks {missing:?}");
    let extra: Vec<_> = ours.difference(&theirs).collect();
    assert!(
        extra.iter().all(|name| name.starts_with("memcord_")),
        "stats has keys memcached does not: {extra:?}"
    );
    // In memcached's order.
    let ours_in_order: Vec<String> = c
        .stats("")
        .into_iter()
        .map(|(name, _)| name)
        .filter(|name| theirs.contains(name))
        .collect();
    let theirs_in_order: Vec<String> = reference.stats("").into_iter().map(|(n, _)| n).collect();
    assert_eq!(ours_in_order, theirs_in_order);

    let theirs = names(&reference.stats("settings"));
    let ours = names(&c.stats("settings"));
    let missing: Vec<_> = theirs
        .difference(&ours)
        .filter(|name| !deliberately_absent_setting(name))
        .collect();
    assert!(missing.is_empty(), "stats settings lacks {missing:?}");
    let extra: Vec<_> = ours.difference(&theirs).collect();
    assert!(
        extra.iter().all(|name| name.starts_with("memcord_")),
        "stats settings has keys memcached does not: {extra:?}"
    );
}

#[test]
fn stats_values_are_memcords_own() {
    let peer = PeerProcess::start(&["--max-item-size", "2000", "--memory-limit-mb", "16"]);
    let mut c = peer.client();
    let before = c.stats("");
    let mut big = b"set k 0 0 2001\r\n".to_vec();
    big.extend_from_slice(&[b'v'; 2001]);
    big.extend(b"\r\nset k 0 0 1\r\nx\r\nset j 0 0 1\r\ny\r\n");
    c.send(&big);
    c.expect(b"SERVER_ERROR object too large for cache\r\nSTORED\r\nSTORED\r\n");
    let stats = c.stats("");
    let delta = |name: &str| stat(&stats, name) - stat(&before, name);
    assert_eq!(delta("store_too_large"), 1);
    assert_eq!(delta("total_items"), 2);
    assert_eq!(stat(&stats, "curr_items"), 2);
    assert_eq!(stat(&stats, "limit_maxbytes"), 16 << 20);
    assert_eq!(stat(&stats, "accepting_conns"), 1);
    assert_eq!(stat(&stats, "cmd_meta"), 0);
    let settings = c.stats("settings");
    assert_eq!(stat(&settings, "maxbytes"), 16 << 20);
    assert_eq!(stat(&settings, "item_size_max"), 2000);
    let find = |name: &str| settings.iter().find(|(n, _)| n == name).unwrap().1.clone();
    assert_eq!(find("shutdown_command"), "no");
    assert_eq!(find("detail_enabled"), "no");
    assert_eq!(find("lru_crawler"), "yes");
    assert_eq!(find("inter"), "127.0.0.1");
    c.roundtrip(
        b"stats detail on\r\nlru_crawler sleep 250\r\n",
        b"OK\r\nOK\r\n",
    );
    c.roundtrip(
        b"slabs automove 2\r\nlru tune 10 30 0.5 3\r\n",
        b"OK\r\nOK\r\n",
    );
    let settings = c.stats("settings");
    let find = |name: &str| settings.iter().find(|(n, _)| n == name).unwrap().1.clone();
    assert_eq!(find("detail_enabled"), "yes");
    assert_eq!(find("lru_crawler_sleep"), "250");
    assert_eq!(find("slab_automove"), "2");
    assert_eq!(
        [
            "hot_lru_pct",
            "warm_lru_pct",
            "hot_max_factor",
            "warm_max_factor"
        ]
        .map(find),
        ["10", "30", "0.50", "3.00"]
    );
}

#[test]
fn the_embedded_stores_size_classes() {
    let peer = embedded();
    let mut c = peer.client();
    // Footprints (key + value + 96): 98 (class 2, up to 128 bytes) and 399 (class 4, up to 512).
    c.roundtrip(b"set a 0 0 1\r\nx\r\n", b"STORED\r\n");
    let value = "y".repeat(300);
    c.roundtrip(
        format!("set bb 0 0 300\r\n{value}\r\n").as_bytes(),
        b"STORED\r\n",
    );
    let items = c.stats("items");
    assert_eq!(stat(&items, "items:2:number"), 1);
    assert_eq!(stat(&items, "items:2:mem_requested"), 98);
    assert_eq!(stat(&items, "items:4:number"), 1);
    assert_eq!(stat(&items, "items:4:mem_requested"), 398);
    assert_eq!(
        items.len(),
        2 * 28,
        "28 counters for each of the two classes"
    );
    assert_eq!(
        listing(&mut c, "stats slabs\r\n"),
        "STAT 2:chunk_size 128\r\nSTAT 2:chunks_per_page 1\r\nSTAT 2:total_pages 1\r\n\
         STAT 2:total_chunks 1\r\nSTAT 2:used_chunks 1\r\nSTAT 2:free_chunks 0\r\n\
         STAT 2:free_chunks_end 0\r\nSTAT 4:chunk_size 512\r\nSTAT 4:chunks_per_page 1\r\n\
         STAT 4:total_pages 1\r\nSTAT 4:total_chunks 1\r\nSTAT 4:used_chunks 1\r\n\
         STAT 4:free_chunks 0\r\nSTAT 4:free_chunks_end 0\r\nSTAT active_slabs 2\r\n\
         STAT total_malloced 496\r\nEND\r\n"
    );
    assert_eq!(
        listing(&mut c, "stats sizes\r\n"),
        "STAT 128 1\r\nSTAT 416 1\r\nEND\r\n"
    );
    c.roundtrip(b"stats cachedump 2 0\r\n", b"ITEM a [1 b; 0 s]\r\nEND\r\n");
    c.roundtrip(b"stats cachedump 3 0\r\n", b"END\r\n");
    // An item with an expiry shows its absolute time.
    c.roundtrip(b"set c 0 1000 2\r\nzz\r\n", b"STORED\r\n");
    let cachedump = listing(&mut c, "stats cachedump 2 1\r\n");
    let line = cachedump.lines().next().unwrap();
    let expiry: u64 = line
        .strip_prefix("ITEM c [2 b; ")
        .and_then(|rest| rest.strip_suffix(" s]"))
        .unwrap_or_else(|| panic!("{cachedump:?}"))
        .parse()
        .unwrap();
    let now = stat(&c.stats(""), "time");
    assert!(
        (now + 998..=now + 1001).contains(&expiry),
        "{expiry} vs {now}"
    );
    assert_eq!(cachedump.lines().count(), 2, "limit 1: {cachedump:?}");
}

#[test]
fn metadump_lists_the_clients_view_of_each_item() {
    let peer = embedded();
    let mut c = peer.client();
    c.roundtrip(b"set k%20x 0 0 2\r\nab\r\n", b"STORED\r\n");
    let cas = cas_of(&mut c, "k%20x");
    let dump = listing(&mut c, "lru_crawler metadump all\r\n");
    let line = dump
        .strip_suffix("\nEND\r\n")
        .expect("lines end in \\n, then END");
    let fields: Vec<&str> = line.split(' ').collect();
    assert_eq!(fields[0], "key=k%2520x");
    assert_eq!(fields[1], "exp=-1");
    assert!(fields[2].starts_with("la="));
    assert_eq!(fields[3], format!("cas={cas}"));
    // The `gets` above fetched it, as memcached would report.
    assert_eq!(fields[4..], ["fetch=yes", "cls=2", "size=103"]);
    assert_eq!(listing(&mut c, "lru_crawler metadump 2\r\n"), dump);
    assert_eq!(listing(&mut c, "lru_crawler metadump hash\r\n"), dump);
    c.roundtrip(b"lru_crawler metadump 1,3\r\n", b"END\r\n");
    // A disabled crawler refuses, as memcached's does.
    c.roundtrip(b"lru_crawler disable\r\n", b"OK\r\n");
    c.roundtrip(
        b"lru_crawler metadump all\r\nlru_crawler crawl all\r\n",
        b"CLIENT_ERROR lru crawler disabled\r\nCLIENT_ERROR lru crawler disabled\r\n",
    );
    c.roundtrip(b"lru_crawler enable\r\n", b"OK\r\n");
    c.roundtrip(b"lru_crawler crawl 1,2\r\n", b"OK\r\n");
    // An item nobody has read is not fetched; a read marks it.
    c.roundtrip(b"set fresh 0 0 1\r\nz\r\n", b"STORED\r\n");
    let fresh = |c: &mut RawClient| {
        let dump = listing(c, "lru_crawler metadump all\r\n");
        dump.lines()
            .find(|l| l.starts_with("key=fresh "))
            .map(str::to_owned)
            .unwrap_or_else(|| panic!("{dump:?}"))
    };
    assert!(fresh(&mut c).contains(" fetch=no "));
    c.roundtrip(b"get fresh\r\n", b"VALUE fresh 0 1\r\nz\r\nEND\r\n");
    assert!(fresh(&mut c).contains(" fetch=yes "));
}

#[test]
fn cache_memlimit_evicts_down_to_the_new_limit() {
    let peer = PeerProcess::start(&["--memory-limit-mb", "64"]);
    let mut c = peer.client();
    let value = "v".repeat(10_000);
    let mut batch = Vec::new();
    for i in 0..2_000 {
        batch.extend(format!("set k{i} 0 0 10000 noreply\r\n{value}\r\n").as_bytes());
    }
    c.send(&batch);
    c.roundtrip(
        b"version\r\n",
        format!("VERSION {}\r\n", memcord_protocol::VERSION).as_bytes(),
    );
    let before = c.stats("");
    assert_eq!(stat(&before, "curr_items"), 2_000);
    assert_eq!(stat(&before, "evictions"), 0);
    c.roundtrip(b"cache_memlimit 8\r\n", b"OK\r\n");
    let after = c.stats("");
    assert_eq!(stat(&after, "limit_maxbytes"), 8 << 20);
    assert!(
        stat(&after, "bytes") <= 8 << 20,
        "{}",
        stat(&after, "bytes")
    );
    assert!(stat(&after, "evictions") > 1_000);
    assert_eq!(
        stat(&after, "curr_items") + stat(&after, "evictions"),
        2_000
    );
    assert_eq!(stat(&c.stats("settings"), "maxbytes"), 8 << 20);
    let evicted: u64 = c
        .stats("items")
        .iter()
        .filter(|(name, _)| name.ends_with(":evicted"))
        .map(|(_, value)| value.parse::<u64>().unwrap())
        .sum();
    assert_eq!(evicted, stat(&after, "evictions"));
}

#[test]
fn stats_detail_counts_per_prefix() {
    let peer = embedded();
    let mut c = peer.client();
    c.roundtrip(b"stats detail dump\r\n", b"END\r\n");
    c.roundtrip(b"get user:1\r\n", b"END\r\n");
    c.roundtrip(b"stats detail on\r\n", b"OK\r\n");
    c.send(
        b"set user:1 0 0 1\r\nx\r\nget user:1 user:2 plain\r\ndelete user:1\r\n\
          set other:k 0 0 1 noreply\r\ny\r\ngat 0 other:k\r\n",
    );
    c.expect(
        b"STORED\r\nVALUE user:1 0 1\r\nx\r\nEND\r\nDELETED\r\nVALUE other:k 0 1\r\ny\r\nEND\r\n",
    );
    c.roundtrip(
        b"stats detail dump\r\n",
        b"PREFIX other get 1 hit 1 set 1 del 0\r\nPREFIX user get 2 hit 1 set 1 del 1\r\nEND\r\n",
    );
    // Off stops counting, and what was counted stays, as in memcached.
    c.roundtrip(b"stats detail off\r\nget user:3\r\n", b"OK\r\nEND\r\n");
    c.roundtrip(
        b"stats detail dump\r\n",
        b"PREFIX other get 1 hit 1 set 1 del 0\r\nPREFIX user get 2 hit 1 set 1 del 1\r\nEND\r\n",
    );
    c.roundtrip(b"stats reset\r\nstats detail dump\r\n", b"RESET\r\nEND\r\n");
}

#[test]
fn stats_detail_dump_matches_memcached_for_one_prefix() {
    let memcached = MemcachedProcess::start();
    let peer = embedded();
    let script: &[u8] = b"stats detail on\r\nset p:a 0 0 1\r\nx\r\nget p:a p:b\r\ndelete p:b\r\n\
        stats detail dump\r\n";
    let expected = b"OK\r\nSTORED\r\nVALUE p:a 0 1\r\nx\r\nEND\r\nNOT_FOUND\r\n\
        PREFIX p get 2 hit 1 set 1 del 1\r\nEND\r\n";
    for addr in [memcached.addr(), peer.addr] {
        RawClient::connect(addr).roundtrip(script, expected);
    }
}

#[test]
fn stats_conns_lists_the_listener_and_each_client() {
    let peer = embedded();
    let mut a = peer.client();
    let mut b = peer.client();
    b.roundtrip(
        b"version\r\n",
        format!("VERSION {}\r\n", memcord_protocol::VERSION).as_bytes(),
    );
    let conns = a.stats("conns");
    let value = |name: &str| {
        conns
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no {name} in {conns:?}"))
            .1
            .clone()
    };
    assert_eq!(value("0:addr"), format!("tcp:{}", peer.addr));
    assert_eq!(value("0:state"), "conn_listening");
    let a_local = a.stream().local_addr().unwrap();
    let b_local = b.stream().local_addr().unwrap();
    let id_of = |addr: std::net::SocketAddr| {
        let (name, _) = conns
            .iter()
            .find(|(_, v)| *v == format!("tcp:{addr}"))
            .unwrap_or_else(|| panic!("no connection from {addr} in {conns:?}"));
        name.split(':').next().unwrap().to_string()
    };
    let (ida, idb) = (id_of(a_local), id_of(b_local));
    assert_eq!(value(&format!("{ida}:state")), "conn_parse_cmd");
    assert_eq!(value(&format!("{idb}:state")), "conn_waiting");
    assert_eq!(
        value(&format!("{ida}:listen_addr")),
        format!("tcp:{}", peer.addr)
    );
    assert_eq!(conns.len(), 3 + 2 * 4);
}

#[test]
fn shutdown_stops_the_peer_only_when_enabled() {
    let mut peer = PeerProcess::start(&["-A"]);
    let mut c = peer.client();
    c.roundtrip(
        b"shutdown now\r\n",
        b"CLIENT_ERROR invalid shutdown mode\r\n",
    );
    let mut other = peer.client();
    other.roundtrip(b"get k\r\n", b"END\r\n");
    c.send(b"shutdown\r\n");
    c.expect_closed(b"");
    assert_eq!(peer.wait(REPLY_DEADLINE).code(), Some(0));

    let mut peer = PeerProcess::start(&["--enable-shutdown"]);
    let mut c = peer.client();
    c.send(b"shutdown graceful\r\n");
    c.expect_closed(b"");
    assert_eq!(peer.wait(REPLY_DEADLINE).code(), Some(0));
}

#[test]
fn disabled_features_answer_as_memcached_without_them() {
    let peer = embedded();
    let mut c = peer.client();
    c.roundtrip(b"watch\r\n", b"CLIENT_ERROR watch commands not allowed\r\n");
    c.roundtrip(b"watch fetchers noreply\r\n", b"");
    c.roundtrip(
        b"slabs reassign 1 2\r\n",
        b"CLIENT_ERROR slab reassignment disabled\r\n",
    );
    c.roundtrip(
        b"lru mode flat\r\nlru temp_ttl 5\r\n",
        b"ERROR\r\nERROR\r\n",
    );
    c.roundtrip(b"extstore item_size 5\r\n", b"ERROR\r\n");
    c.roundtrip(b"get k\r\n", b"END\r\n");
}

#[test]
fn the_memcached_store_relays_the_backends_figures() {
    let backend = MemcachedProcess::start();
    let peer = in_front_of(&backend);
    let mut c = peer.client();
    let mut direct = RawClient::connect(backend.addr());
    c.roundtrip(b"set a 0 0 1\r\nx\r\n", b"STORED\r\n");
    c.roundtrip(b"set k%20x 0 100 2\r\nab\r\n", b"STORED\r\n");
    // The backend's own classes and counters (its items hold memcord's 32-byte envelope).
    let items = c.stats("items");
    assert_eq!(names(&items), names(&direct.stats("items")));
    // 93 and 98 bytes in the backend: its classes 1 (96-byte chunks) and 2 (120).
    assert_eq!(stat(&items, "items:1:number"), 1);
    assert_eq!(stat(&items, "items:2:number"), 1);
    let slabs = c.stats("slabs");
    assert_eq!(stat(&slabs, "1:chunk_size"), 96);
    assert_eq!(stat(&slabs, "active_slabs"), 2);
    c.roundtrip(b"stats sizes\r\n", b"STAT sizes_status disabled\r\nEND\r\n");
    // cache_memlimit reaches the backend.
    c.roundtrip(b"cache_memlimit 100\r\n", b"OK\r\n");
    assert_eq!(stat(&direct.stats("settings"), "maxbytes"), 100 << 20);
    assert_eq!(stat(&c.stats("settings"), "maxbytes"), 100 << 20);
    // A metadump shows memcord's cas ids and expiry, and the client's value sizes.
    let cas_a = cas_of(&mut c, "a");
    let cas_k = cas_of(&mut c, "k%20x");
    let dump = backend_listing(&mut c, "lru_crawler metadump all\r\n", |d| {
        d.lines().count() == 3
    });
    let mut lines: Vec<&str> = dump.strip_suffix("END\r\n").unwrap().lines().collect();
    lines.sort();
    assert_eq!(lines.len(), 2, "{dump:?}");
    let fields = |line: &str| line.split(' ').map(str::to_string).collect::<Vec<_>>();
    let a = fields(lines[0]);
    assert_eq!(a[0], "key=a");
    assert_eq!(a[1], "exp=-1");
    assert_eq!(a[3], format!("cas={cas_a}"));
    assert_eq!(a[5..], ["cls=1", "size=61"]);
    let k = fields(lines[1]);
    assert_eq!(k[0], "key=k%2520x");
    let exp: u64 = k[1].strip_prefix("exp=").unwrap().parse().unwrap();
    let now = stat(&c.stats(""), "time");
    assert!((now + 98..=now + 101).contains(&exp), "{exp} vs {now}");
    assert_eq!(k[3], format!("cas={cas_k}"));
    // The backend's listing says otherwise: its own cas ids, its expiry with memcord's slack.
    let theirs = listing(&mut direct, "lru_crawler metadump all\r\n");
    assert!(!theirs.contains(&format!("cas={cas_a}")), "{theirs}");
    // cachedump: the client's value sizes and memcord's expiry, not the backend's.
    let cachedump = backend_listing(&mut c, "stats cachedump 1 0\r\n", |d| d.len() > 5);
    assert_eq!(cachedump, "ITEM a [1 b; 0 s]\r\nEND\r\n");
    let cachedump = backend_listing(&mut c, "stats cachedump 2 1\r\n", |d| d.len() > 5);
    assert_eq!(cachedump, format!("ITEM k%20x [2 b; {exp} s]\r\nEND\r\n"));
    c.roundtrip(b"stats cachedump 0 0\r\n", b"END\r\n");
}
