//! One behaviour suite for both stores (`MemoryStore`, `MemcachedStore` over a real memcached),
//! plus the tests that only make sense for one of them: LRU eviction for the embedded store,
//! a dying, restarting or silent backend for the memcached adapter.
//!
//! Tests that need memcached fail loudly when the binary is missing; they are never skipped.

#[path = "store_suite/behaviours.rs"]
mod behaviours;
mod common;

use bytes::Bytes;
use common::memcached::{memcached_binary, MemcachedProcess};
use memcord_proxy::clock::{HybridClock, Timestamp};
use memcord_proxy::store::{
    ExpiresAt, Item, MemcachedConfig, MemcachedStore, MemoryConfig, MemoryStore, Store, StoreError,
    StoreOutcome,
};
use std::any::Any;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A store under test, the clock stamping its writes, and whatever keeps its backend alive.
pub struct Fixture<S> {
    /// The store.
    pub store: Arc<S>,
    /// Versions for writes.
    pub clock: Arc<HybridClock>,
    /// The store's largest value.
    pub max_item: usize,
    _backend: Option<Box<dyn Any + Send>>,
}

impl<S: Store> Fixture<S> {
    /// The next version.
    pub fn ts(&self) -> Timestamp {
        self.clock.now()
    }

    /// A never-expiring item written now.
    pub fn item(&self, value: &str, flags: u32) -> Item {
        let value = Bytes::copy_from_slice(value.as_bytes());
        Item::new(value, flags, ExpiresAt::NEVER, self.ts())
    }
}

async fn memory_fixture() -> Fixture<MemoryStore> {
    let config = MemoryConfig {
        max_item_size: 256 * 1024,
        ..MemoryConfig::default()
    };
    Fixture {
        store: Arc::new(MemoryStore::new(config)),
        clock: Arc::new(HybridClock::new(1)),
        max_item: config.max_item_size,
        _backend: None,
    }
}

async fn memcached_fixture() -> Fixture<MemcachedStore> {
    let backend = MemcachedProcess::start();
    let config = MemcachedConfig::new(backend.addr().to_string());
    let max_item = config.max_item_size;
    let store = MemcachedStore::connect(config).await.expect("connect");
    Fixture {
        store: Arc::new(store),
        clock: Arc::new(HybridClock::new(1)),
        max_item,
        _backend: Some(Box::new(backend)),
    }
}

/// Generates one `#[tokio::test]` per behaviour for one store.
macro_rules! store_suite {
    ($module:ident, $fixture:path, [$($behaviour:ident),* $(,)?]) => {
        mod $module {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $behaviour() {
                    let fixture = $fixture().await;
                    crate::behaviours::$behaviour(&fixture).await;
                }
            )*
        }
    };
}

macro_rules! both_stores {
    ($($behaviour:ident),* $(,)?) => {
        store_suite!(memory, crate::memory_fixture, [$($behaviour),*]);
        store_suite!(memcached, crate::memcached_fixture, [$($behaviour),*]);
    };
}

both_stores!(
    get_miss_then_hit,
    multi_get_keeps_order_with_misses,
    concurrent_gets_each_get_their_own_keys,
    set_overwrites,
    add_and_replace_conditions,
    append_prepend_keep_flags_and_expiry,
    cas_match_mismatch_missing,
    delete_hit_and_miss,
    incr_decr_edge_cases,
    touch_and_gat_keep_cas,
    short_ttl_expires_for_every_operation,
    already_expired_writes_remove_the_key,
    flush_all_now,
    flush_all_delayed,
    binary_values_round_trip,
    too_large_values_are_refused,
    concurrent_incr_loses_nothing,
    concurrent_cas_loops_lose_nothing,
    dump_lists_every_live_item_and_clear_empties,
    peek_reports_the_access_record_before_the_read,
    update_modifies_replaces_and_removes,
    concurrent_updates_lose_nothing,
);

// ---------------------------------------------------------------------------------------------
// MemoryStore only

fn value(len: usize) -> Bytes {
    Bytes::from(vec![b'v'; len])
}

#[tokio::test]
async fn memory_evicts_least_recently_used_under_the_limit() {
    // Ten 100-byte items under 3-byte keys fill the limit exactly.
    let footprint = Item::new(value(100), 0, ExpiresAt::NEVER, Timestamp::ZERO).footprint(3);
    let store = MemoryStore::new(MemoryConfig {
        limit_bytes: 10 * footprint,
        max_item_size: 1024,
        shards: 1,
    });
    let clock = HybridClock::new(1);
    let key = |i: usize| Bytes::from(format!("k{i:02}"));
    for i in 0..10 {
        let item = Item::new(value(100), 0, ExpiresAt::NEVER, clock.now());
        store.set(key(i), item).await.unwrap();
    }
    assert_eq!(store.stats().await.evictions, 0);
    // Use k00 so that k01..k05 are the least recently used.
    assert!(store.get(&[key(0)]).await.unwrap()[0].is_some());
    for i in 10..15 {
        let item = Item::new(value(100), 0, ExpiresAt::NEVER, clock.now());
        store.set(key(i), item).await.unwrap();
    }
    let stats = store.stats().await;
    assert_eq!((stats.evictions, stats.curr_items), (5, 10));
    assert!(stats.bytes <= stats.limit_maxbytes);
    let keys: Vec<Bytes> = (0..15).map(key).collect();
    let present: Vec<bool> = store
        .get(&keys)
        .await
        .unwrap()
        .iter()
        .map(Option::is_some)
        .collect();
    let expected: Vec<bool> = (0..15).map(|i| i == 0 || i > 5).collect();
    assert_eq!(present, expected);
}

#[tokio::test]
async fn memory_flush_frees_memory_now_but_spares_newer_versions() {
    let store = MemoryStore::default();
    let clock = HybridClock::new(1);
    for i in 0..10 {
        let item = Item::new(value(10), 0, ExpiresAt::NEVER, clock.now());
        store.set(Bytes::from(format!("k{i}")), item).await.unwrap();
    }
    let cutoff = clock.now();
    // A replica may apply a write stamped after the flush before the flush itself.
    let newer = Item::new(value(10), 0, ExpiresAt::NEVER, clock.now());
    store
        .set(Bytes::from_static(b"newer"), newer)
        .await
        .unwrap();
    store.flush_all(cutoff).await.unwrap();
    let stats = store.stats().await;
    assert_eq!(stats.curr_items, 1);
    assert_eq!(
        stats.bytes as usize,
        5 + 10 + memcord_proxy::store::ITEM_OVERHEAD
    );
    assert!(store.get(&[Bytes::from_static(b"newer")]).await.unwrap()[0].is_some());
}

#[tokio::test]
async fn memory_counts_expired_items_it_reclaims() {
    let store = MemoryStore::default();
    let clock = HybridClock::new(1);
    let expires = ExpiresAt::from_exptime(1, memcord_proxy::clock::unix_secs());
    store
        .set(
            Bytes::from_static(b"k"),
            Item::new(value(1), 0, expires, clock.now()),
        )
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while store.get(&[Bytes::from_static(b"k")]).await.unwrap()[0].is_some() {
        assert!(Instant::now() < deadline, "item did not expire");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stats = store.stats().await;
    assert_eq!((stats.reclaimed, stats.curr_items, stats.bytes), (1, 0, 0));
}

// ---------------------------------------------------------------------------------------------
// MemcachedStore only

/// A memcached on a fixed port that can be killed and started again on the same port.
struct RestartableMemcached {
    port: u16,
    child: Option<Child>,
}

impl RestartableMemcached {
    fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut backend = RestartableMemcached { port, child: None };
        backend.restart();
        backend
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    fn restart(&mut self) {
        let mut command = Command::new(memcached_binary());
        command.args(["-l", "127.0.0.1", "-U", "0", "-p", &self.port.to_string()]);
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            command.args(["-u", "root"]);
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn memcached");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect_timeout(&self.addr(), Duration::from_millis(200)).is_err() {
            assert!(
                Instant::now() < deadline,
                "memcached did not come up on {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RestartableMemcached {
    fn drop(&mut self) {
        self.kill();
    }
}

fn key(text: &'static str) -> Bytes {
    Bytes::from_static(text.as_bytes())
}

fn quick_config(addr: SocketAddr) -> MemcachedConfig {
    MemcachedConfig {
        request_timeout: Duration::from_millis(300),
        connect_timeout: Duration::from_millis(100),
        ..MemcachedConfig::new(addr.to_string())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memcached_backend_death_fails_fast_and_restart_recovers() {
    let mut backend = RestartableMemcached::start();
    let store = MemcachedStore::connect(quick_config(backend.addr()))
        .await
        .unwrap();
    let clock = HybridClock::new(1);
    let item = || Item::new(value(3), 0, ExpiresAt::NEVER, clock.now());
    assert_eq!(store.set(key("k"), item()).await, Ok(StoreOutcome::Stored));

    backend.kill();
    // Every request answers within the bound, with an error, and soon at once.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let started = Instant::now();
        let result = store.get(&[key("k")]).await;
        let took = started.elapsed();
        assert!(took < Duration::from_secs(1), "request took {took:?}");
        match result {
            Err(StoreError::Unavailable)
                if took < Duration::from_millis(50) && !store.is_connected() =>
            {
                break
            }
            Err(_) => {}
            Ok(_) => {} // the kill may not have reached the connection yet
        }
        assert!(Instant::now() < deadline, "never failed fast");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    backend.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.set(key("k"), item()).await.is_err() {
        assert!(Instant::now() < deadline, "did not reconnect");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(store.get(&[key("k")]).await.unwrap()[0].is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memcached_silent_backend_times_out() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket); // accept, never answer
        }
    });
    let store = MemcachedStore::connect(quick_config(addr)).await.unwrap();
    for _ in 0..3 {
        let started = Instant::now();
        let result = store.get(&[key("k")]).await;
        let took = started.elapsed();
        assert!(took < Duration::from_secs(1), "took {took:?}");
        assert!(
            matches!(result, Err(StoreError::Timeout | StoreError::Unavailable)),
            "{result:?}"
        );
        if result == Err(StoreError::Timeout) {
            assert!(
                took >= Duration::from_millis(250),
                "timed out early: {took:?}"
            );
        }
    }
    let started = Instant::now();
    let mut saw_timeout = false;
    while !saw_timeout && started.elapsed() < Duration::from_secs(5) {
        saw_timeout = store.incr(key("k"), 1, Timestamp::ZERO).await == Err(StoreError::Timeout);
    }
    assert!(saw_timeout, "a silent backend must answer Timeout");
}

#[tokio::test]
async fn memcached_unreachable_backend_fails_fast() {
    // A port nobody listens on.
    let addr = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let started = Instant::now();
    let connected = MemcachedStore::connect(quick_config(addr)).await;
    assert!(matches!(connected, Err(StoreError::Unavailable)));
    assert!(started.elapsed() < Duration::from_secs(1));
    let store = MemcachedStore::new(quick_config(addr));
    let started = Instant::now();
    assert_eq!(store.get(&[key("k")]).await, Err(StoreError::Unavailable));
    assert!(started.elapsed() < Duration::from_millis(100));
}

/// Talks to the backend directly, as a client outside memcord would.
fn raw(addr: SocketAddr, request: &[u8], reply_end: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream.write_all(request).unwrap();
    let mut reply = Vec::new();
    let mut buf = [0u8; 4096];
    while !reply.ends_with(reply_end) {
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "backend closed");
        reply.extend_from_slice(&buf[..n]);
    }
    reply
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memcached_envelopes_in_the_backend_and_foreign_values() {
    let backend = MemcachedProcess::start();
    let store = MemcachedStore::connect(MemcachedConfig::new(backend.addr().to_string()))
        .await
        .unwrap();
    let clock = HybridClock::new(1);
    let item = Item::new(key("hello"), 77, ExpiresAt::NEVER, clock.now());
    store.set(key("mine"), item).await.unwrap();
    let reply = raw(backend.addr(), b"get mine\r\n", b"END\r\n");
    let header = format!("VALUE mine 77 {}\r\n", 32 + 5);
    assert!(
        reply.starts_with(header.as_bytes()),
        "{}",
        reply.escape_ascii()
    );
    assert_eq!(&reply[header.len()..header.len() + 3], &[0xFE, 0xCD, 1]);

    raw(
        backend.addr(),
        b"set foreign 7 0 2\r\n41\r\n",
        b"STORED\r\n",
    );
    let got = store.get(&[key("foreign")]).await.unwrap()[0]
        .clone()
        .unwrap();
    assert_eq!(
        (got.value, got.flags, got.cas, got.version),
        (key("41"), 7, 0, Timestamp::ZERO)
    );
    assert_eq!(
        store.incr(key("foreign"), 1, clock.now()).await,
        Ok(memcord_proxy::store::ArithOutcome::Value(42))
    );
    let got = store.get(&[key("foreign")]).await.unwrap()[0]
        .clone()
        .unwrap();
    assert_eq!((got.value, got.flags), (key("42"), 7));
    assert_ne!(got.cas, 0, "rewritten as an envelope");

    let stats = store.stats().await;
    assert_eq!(stats.curr_items, 2);
    assert_eq!(stats.limit_maxbytes, 64 * 1024 * 1024);
}
