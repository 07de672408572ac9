//! The behaviours every store must show, each a generic async fn run against every store.
//!
//! Outcomes are asserted exactly; waits on time (expiry, delayed flush) poll a condition
//! under a deadline instead of sleeping blindly.

use super::Fixture;
use bytes::Bytes;
use memcord_proxy::clock::{unix_ms, unix_secs, Timestamp};
use memcord_proxy::store::{ArithOutcome, ExpiresAt, Item, Store, StoreOutcome, REALTIME_MAXDELTA};
use std::sync::Arc;
use std::time::Duration;

fn b(text: &str) -> Bytes {
    Bytes::copy_from_slice(text.as_bytes())
}

/// Polls `$cond` (an async expression giving bool) until it holds, or panics after `$secs`.
macro_rules! wait_until {
    ($secs:expr, $what:expr, $cond:expr) => {{
        let deadline = std::time::Instant::now() + Duration::from_secs($secs);
        loop {
            if $cond {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "not within {}s: {}",
                $secs,
                $what
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }};
}

async fn get_one<S: Store>(f: &Fixture<S>, key: &str) -> Option<Item> {
    f.store.get(&[b(key)]).await.expect("get").pop().flatten()
}

async fn value_of<S: Store>(f: &Fixture<S>, key: &str) -> Option<Bytes> {
    get_one(f, key).await.map(|item| item.value)
}

/// get: a miss, then a hit carrying everything that was stored.
pub async fn get_miss_then_hit<S: Store>(f: &Fixture<S>) {
    assert_eq!(get_one(f, "k").await, None);
    let item = Item::new(b("v"), 0xFFFF_FFFF, ExpiresAt(unix_secs() + 3600), f.ts());
    assert_eq!(
        f.store.set(b("k"), item.clone()).await,
        Ok(StoreOutcome::Stored)
    );
    let got = get_one(f, "k").await.expect("hit");
    assert_eq!(got, item);
    assert_eq!(got.cas, item.version.as_u64());
}

/// A multi-key get answers in key order, with misses (and repeats) in place.
pub async fn multi_get_keeps_order_with_misses<S: Store>(f: &Fixture<S>) {
    f.store.set(b("a"), f.item("1", 1)).await.unwrap();
    f.store.set(b("c"), f.item("3", 3)).await.unwrap();
    let keys = [b("a"), b("b"), b("c"), b("a"), b("zz")];
    let got: Vec<Option<Bytes>> = f
        .store
        .get(&keys)
        .await
        .unwrap()
        .into_iter()
        .map(|item| item.map(|item| item.value))
        .collect();
    assert_eq!(
        got,
        vec![Some(b("1")), None, Some(b("3")), Some(b("1")), None]
    );
    // Many keys: long enough that the memcached adapter splits its backend request.
    let many: Vec<Bytes> = (0..300)
        .map(|i| b(&format!("key-{i:04}-{}", "x".repeat(40))))
        .collect();
    for key in many.iter().step_by(3) {
        f.store.set(key.clone(), f.item("m", 0)).await.unwrap();
    }
    let got = f.store.get(&many).await.unwrap();
    assert_eq!(got.len(), many.len());
    for (i, item) in got.iter().enumerate() {
        assert_eq!(item.is_some(), i % 3 == 0, "key {i}");
    }
}

/// set overwrites value and flags and gives a new cas id.
pub async fn set_overwrites<S: Store>(f: &Fixture<S>) {
    f.store.set(b("k"), f.item("old", 1)).await.unwrap();
    let first = get_one(f, "k").await.unwrap();
    let newer = f.item("new", 2);
    assert_eq!(
        f.store.set(b("k"), newer.clone()).await,
        Ok(StoreOutcome::Stored)
    );
    let second = get_one(f, "k").await.unwrap();
    assert_eq!(second, newer);
    assert_ne!(second.cas, first.cas);
}

/// add stores only when absent; replace only when present.
pub async fn add_and_replace_conditions<S: Store>(f: &Fixture<S>) {
    assert_eq!(
        f.store.replace(b("k"), f.item("r", 0)).await,
        Ok(StoreOutcome::NotStored)
    );
    assert_eq!(get_one(f, "k").await, None);
    assert_eq!(
        f.store.add(b("k"), f.item("a", 1)).await,
        Ok(StoreOutcome::Stored)
    );
    assert_eq!(
        f.store.add(b("k"), f.item("b", 2)).await,
        Ok(StoreOutcome::NotStored)
    );
    assert_eq!(value_of(f, "k").await, Some(b("a")));
    let replacement = f.item("r", 7);
    assert_eq!(
        f.store.replace(b("k"), replacement.clone()).await,
        Ok(StoreOutcome::Stored)
    );
    assert_eq!(get_one(f, "k").await, Some(replacement));
}

/// append/prepend need a present item, keep its flags and expiry, and give a new cas id.
pub async fn append_prepend_keep_flags_and_expiry<S: Store>(f: &Fixture<S>) {
    assert_eq!(
        f.store.append(b("k"), b("x"), f.ts()).await,
        Ok(StoreOutcome::NotStored)
    );
    assert_eq!(
        f.store.prepend(b("k"), b("x"), f.ts()).await,
        Ok(StoreOutcome::NotStored)
    );
    let expires = ExpiresAt(unix_secs() + 3600);
    let original = Item::new(b("mid"), 42, expires, f.ts());
    f.store.set(b("k"), original.clone()).await.unwrap();
    let v1 = f.ts();
    assert_eq!(
        f.store.append(b("k"), b(">"), v1).await,
        Ok(StoreOutcome::Stored)
    );
    let v2 = f.ts();
    assert_eq!(
        f.store.prepend(b("k"), b("<"), v2).await,
        Ok(StoreOutcome::Stored)
    );
    let got = get_one(f, "k").await.unwrap();
    assert_eq!(got.value, b("<mid>"));
    assert_eq!(got.flags, 42);
    assert_eq!(got.expires_at, expires);
    assert_eq!(got.version, v2);
    assert_eq!(got.cas, v2.as_u64());
}

/// cas: missing → NotFound, other id → Exists (unchanged), matching id → Stored.
pub async fn cas_match_mismatch_missing<S: Store>(f: &Fixture<S>) {
    assert_eq!(
        f.store.cas(b("k"), f.item("v", 0), 1).await,
        Ok(StoreOutcome::NotFound)
    );
    f.store.set(b("k"), f.item("v1", 0)).await.unwrap();
    let current = get_one(f, "k").await.unwrap();
    assert_eq!(
        f.store.cas(b("k"), f.item("v2", 0), current.cas + 1).await,
        Ok(StoreOutcome::Exists)
    );
    assert_eq!(value_of(f, "k").await, Some(b("v1")));
    let next = f.item("v2", 9);
    assert_eq!(
        f.store.cas(b("k"), next.clone(), current.cas).await,
        Ok(StoreOutcome::Stored)
    );
    assert_eq!(get_one(f, "k").await, Some(next));
    assert_eq!(
        f.store.cas(b("k"), f.item("v3", 0), current.cas).await,
        Ok(StoreOutcome::Exists),
        "the old cas id is stale now"
    );
}

/// delete: true once, then false; the item is gone.
pub async fn delete_hit_and_miss<S: Store>(f: &Fixture<S>) {
    assert_eq!(f.store.delete(b("k"), f.ts()).await, Ok(false));
    f.store.set(b("k"), f.item("v", 0)).await.unwrap();
    assert_eq!(f.store.delete(b("k"), f.ts()).await, Ok(true));
    assert_eq!(get_one(f, "k").await, None);
    assert_eq!(f.store.delete(b("k"), f.ts()).await, Ok(false));
}

/// incr/decr: missing, non-numeric, wrap on incr, stop at 0 on decr, trailing spaces, no
/// padding written back, flags and expiry kept, new cas id.
pub async fn incr_decr_edge_cases<S: Store>(f: &Fixture<S>) {
    assert_eq!(
        f.store.incr(b("n"), 1, f.ts()).await,
        Ok(ArithOutcome::NotFound)
    );
    assert_eq!(
        f.store.decr(b("n"), 1, f.ts()).await,
        Ok(ArithOutcome::NotFound)
    );
    let expires = ExpiresAt(unix_secs() + 3600);
    f.store
        .set(b("n"), Item::new(b("10"), 5, expires, f.ts()))
        .await
        .unwrap();
    let v = f.ts();
    assert_eq!(
        f.store.incr(b("n"), 5, v).await,
        Ok(ArithOutcome::Value(15))
    );
    let got = get_one(f, "n").await.unwrap();
    assert_eq!(
        (got.value, got.flags, got.expires_at),
        (b("15"), 5, expires)
    );
    assert_eq!((got.version, got.cas), (v, v.as_u64()));
    assert_eq!(
        f.store.decr(b("n"), 20, f.ts()).await,
        Ok(ArithOutcome::Value(0))
    );
    assert_eq!(value_of(f, "n").await, Some(b("0")));
    f.store.set(b("n"), f.item("100", 0)).await.unwrap();
    assert_eq!(
        f.store.decr(b("n"), 91, f.ts()).await,
        Ok(ArithOutcome::Value(9))
    );
    assert_eq!(value_of(f, "n").await, Some(b("9")), "no space padding");
    f.store
        .set(b("n"), f.item("18446744073709551615", 0))
        .await
        .unwrap();
    assert_eq!(
        f.store.incr(b("n"), 2, f.ts()).await,
        Ok(ArithOutcome::Value(1))
    );
    f.store.set(b("n"), f.item("7  ", 0)).await.unwrap();
    assert_eq!(
        f.store.incr(b("n"), 1, f.ts()).await,
        Ok(ArithOutcome::Value(8))
    );
    assert_eq!(value_of(f, "n").await, Some(b("8")));
    for bad in ["abc", "", "-1", "1x", "18446744073709551616", " 1"] {
        f.store.set(b("n"), f.item(bad, 0)).await.unwrap();
        assert_eq!(
            f.store.incr(b("n"), 1, f.ts()).await,
            Ok(ArithOutcome::NonNumeric),
            "{bad:?}"
        );
        assert_eq!(
            f.store.decr(b("n"), 1, f.ts()).await,
            Ok(ArithOutcome::NonNumeric)
        );
        assert_eq!(value_of(f, "n").await, Some(b(bad)), "left unchanged");
    }
}

/// touch and gat change expiry and version but keep the cas id; misses are misses.
pub async fn touch_and_gat_keep_cas<S: Store>(f: &Fixture<S>) {
    assert_eq!(
        f.store.touch(b("k"), ExpiresAt::NEVER, f.ts()).await,
        Ok(false)
    );
    f.store.set(b("k"), f.item("v", 3)).await.unwrap();
    let before = get_one(f, "k").await.unwrap();
    let (later, v) = (ExpiresAt(unix_secs() + 7200), f.ts());
    assert_eq!(f.store.touch(b("k"), later, v).await, Ok(true));
    let after = get_one(f, "k").await.unwrap();
    assert_eq!(
        (after.cas, after.expires_at, after.version),
        (before.cas, later, v)
    );
    assert_eq!((after.value, after.flags), (b("v"), 3));

    let (again, v2) = (ExpiresAt(unix_secs() + 9000), f.ts());
    let got = f
        .store
        .gat(&[b("k"), b("missing")], again, v2)
        .await
        .unwrap();
    assert_eq!(got.len(), 2);
    let hit = got[0].clone().expect("hit");
    assert_eq!(
        (hit.cas, hit.expires_at, hit.version),
        (before.cas, again, v2)
    );
    assert_eq!(got[1], None);
    assert_eq!(get_one(f, "k").await, Some(hit));
    // A touch into the past kills the item (gat still returns it this once).
    let got = f
        .store
        .gat(&[b("k")], ExpiresAt::EXPIRED, f.ts())
        .await
        .unwrap();
    assert!(got[0].is_some());
    assert_eq!(get_one(f, "k").await, None);
}

/// A short relative TTL: alive at first, then invisible to every operation.
pub async fn short_ttl_expires_for_every_operation<S: Store>(f: &Fixture<S>) {
    let expires = ExpiresAt::from_exptime(1, unix_secs());
    for key in ["k", "n"] {
        let value = if key == "n" { "5" } else { "v" };
        let item = Item::new(b(value), 0, expires, f.ts());
        f.store.set(b(key), item).await.unwrap();
    }
    assert_eq!(value_of(f, "k").await, Some(b("v")));
    wait_until!(5, "the item expires", get_one(f, "k").await.is_none());
    assert_eq!(
        f.store.incr(b("n"), 1, f.ts()).await,
        Ok(ArithOutcome::NotFound)
    );
    assert_eq!(
        f.store.touch(b("n"), ExpiresAt::NEVER, f.ts()).await,
        Ok(false)
    );
    assert_eq!(f.store.delete(b("n"), f.ts()).await, Ok(false));
    assert_eq!(
        f.store.append(b("k"), b("x"), f.ts()).await,
        Ok(StoreOutcome::NotStored)
    );
    assert_eq!(
        f.store.replace(b("k"), f.item("r", 0)).await,
        Ok(StoreOutcome::NotStored)
    );
    assert_eq!(
        f.store.cas(b("k"), f.item("c", 0), 0).await,
        Ok(StoreOutcome::NotFound)
    );
    assert_eq!(
        f.store.add(b("k"), f.item("a", 0)).await,
        Ok(StoreOutcome::Stored)
    );
    assert_eq!(value_of(f, "k").await, Some(b("a")));
}

/// A negative exptime or an absolute time in the past: Stored, never visible, and the
/// previous value is gone.
pub async fn already_expired_writes_remove_the_key<S: Store>(f: &Fixture<S>) {
    let past_absolute = ExpiresAt::from_exptime(REALTIME_MAXDELTA + 1000, unix_secs());
    for expired in [ExpiresAt::from_exptime(-1, unix_secs()), past_absolute] {
        f.store.set(b("k"), f.item("live", 0)).await.unwrap();
        let dead = Item::new(b("dead"), 0, expired, f.ts());
        assert_eq!(
            f.store.set(b("k"), dead.clone()).await,
            Ok(StoreOutcome::Stored)
        );
        assert_eq!(get_one(f, "k").await, None, "{expired:?}");
        assert_eq!(f.store.add(b("k"), dead).await, Ok(StoreOutcome::Stored));
        assert_eq!(get_one(f, "k").await, None);
    }
}

/// flush_all now: everything written before is gone, writes after survive.
pub async fn flush_all_now<S: Store>(f: &Fixture<S>) {
    f.store.set(b("a"), f.item("1", 0)).await.unwrap();
    f.store.set(b("b"), f.item("2", 0)).await.unwrap();
    f.store.flush_all(f.ts()).await.unwrap();
    assert_eq!(
        f.store.get(&[b("a"), b("b")]).await.unwrap(),
        vec![None, None]
    );
    assert_eq!(
        f.store.add(b("a"), f.item("3", 0)).await,
        Ok(StoreOutcome::Stored)
    );
    f.store.set(b("c"), f.item("4", 0)).await.unwrap();
    assert_eq!(value_of(f, "a").await, Some(b("3")));
    assert_eq!(value_of(f, "c").await, Some(b("4")));
}

/// flush_all with a delay: items written before the cutoff stay until it, then go; items
/// written after it survive.
pub async fn flush_all_delayed<S: Store>(f: &Fixture<S>) {
    f.store.set(b("old"), f.item("1", 0)).await.unwrap();
    // Whole seconds, as the coordinator computes a delayed cutoff.
    let cutoff = Timestamp::new((unix_secs() + 3) * 1000, 0, 0);
    f.store.flush_all(cutoff).await.unwrap();
    f.store.set(b("before"), f.item("2", 0)).await.unwrap();
    assert_eq!(value_of(f, "old").await, Some(b("1")), "not flushed yet");
    assert_eq!(value_of(f, "before").await, Some(b("2")));
    wait_until!(
        8,
        "the delayed flush takes effect",
        get_one(f, "old").await.is_none()
    );
    assert!(
        unix_ms() + 1000 >= cutoff.physical_ms(),
        "flushed far too early"
    );
    assert_eq!(get_one(f, "before").await, None);
    // memcached's own delayed flush counts whole seconds; write clear of that second.
    wait_until!(
        5,
        "clock passes the cutoff",
        unix_ms() >= cutoff.physical_ms() + 1100
    );
    f.store.set(b("after"), f.item("3", 0)).await.unwrap();
    assert!(f.ts() > cutoff);
    assert_eq!(value_of(f, "after").await, Some(b("3")));
}

/// Values are opaque bytes: CRLF, NUL, protocol words and non-UTF-8 round-trip.
pub async fn binary_values_round_trip<S: Store>(f: &Fixture<S>) {
    let nasty: &[&[u8]] = &[
        b"",
        b"\r\n",
        b"a\r\nEND\r\nVALUE x 0 1\r\n",
        b"\0\0\0",
        &[0xFE, 0xCD, 0x01, 0x00, 0xFF],
    ];
    for (i, value) in nasty.iter().enumerate() {
        let key = b(&format!("bin{i}"));
        let item = Item::new(Bytes::copy_from_slice(value), 0, ExpiresAt::NEVER, f.ts());
        f.store.set(key.clone(), item.clone()).await.unwrap();
        assert_eq!(f.store.get(&[key]).await.unwrap()[0], Some(item));
    }
    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let item = Item::new(Bytes::from(big), 1, ExpiresAt::NEVER, f.ts());
    f.store.set(b("big"), item.clone()).await.unwrap();
    assert_eq!(get_one(f, "big").await, Some(item));
}

/// Values over the maximum are refused; a refused set also drops the old value.
pub async fn too_large_values_are_refused<S: Store>(f: &Fixture<S>) {
    let max = f.max_item;
    let at_max = Item::new(Bytes::from(vec![b'x'; max]), 0, ExpiresAt::NEVER, f.ts());
    assert_eq!(f.store.set(b("k"), at_max).await, Ok(StoreOutcome::Stored));
    assert_eq!(
        f.store.append(b("k"), b("y"), f.ts()).await,
        Ok(StoreOutcome::TooLarge)
    );
    assert_eq!(
        f.store.prepend(b("k"), b("y"), f.ts()).await,
        Ok(StoreOutcome::TooLarge)
    );
    assert_eq!(get_one(f, "k").await.map(|i| i.value.len()), Some(max));
    let over = Item::new(
        Bytes::from(vec![b'x'; max + 1]),
        0,
        ExpiresAt::NEVER,
        f.ts(),
    );
    for outcome in [
        f.store.add(b("k"), over.clone()).await,
        f.store.replace(b("k"), over.clone()).await,
        f.store.cas(b("k"), over.clone(), 0).await,
    ] {
        assert_eq!(outcome, Ok(StoreOutcome::TooLarge));
    }
    assert_eq!(get_one(f, "k").await.map(|i| i.value.len()), Some(max));
    assert_eq!(f.store.set(b("k"), over).await, Ok(StoreOutcome::TooLarge));
    assert_eq!(
        get_one(f, "k").await,
        None,
        "a failed set drops the old value"
    );
}

const TASKS: u64 = 8;
const ROUNDS: u64 = 50;

/// N tasks × M increments on one key end at exactly N × M.
pub async fn concurrent_incr_loses_nothing<S: Store>(f: &Fixture<S>) {
    f.store.set(b("n"), f.item("0", 0)).await.unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..TASKS {
        let (store, clock) = (Arc::clone(&f.store), Arc::clone(&f.clock));
        tasks.spawn(async move {
            for _ in 0..ROUNDS {
                let outcome = store.incr(b("n"), 1, clock.now()).await.expect("incr");
                assert!(matches!(outcome, ArithOutcome::Value(_)));
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("task");
    }
    assert_eq!(
        value_of(f, "n").await,
        Some(b(&(TASKS * ROUNDS).to_string()))
    );
}

/// Concurrent gets/cas loops never lose an update.
pub async fn concurrent_cas_loops_lose_nothing<S: Store>(f: &Fixture<S>) {
    f.store.set(b("c"), f.item("0", 0)).await.unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..TASKS {
        let (store, clock) = (Arc::clone(&f.store), Arc::clone(&f.clock));
        tasks.spawn(async move {
            for _ in 0..ROUNDS {
                loop {
                    let current = store.get(&[b("c")]).await.unwrap()[0].clone().unwrap();
                    let n: u64 = std::str::from_utf8(&current.value)
                        .unwrap()
                        .parse()
                        .unwrap();
                    let next = Item::new(b(&(n + 1).to_string()), 0, ExpiresAt::NEVER, clock.now());
                    match store.cas(b("c"), next, current.cas).await.unwrap() {
                        StoreOutcome::Stored => break,
                        StoreOutcome::Exists => tokio::task::yield_now().await,
                        other => panic!("cas answered {other:?}"),
                    }
                }
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("task");
    }
    assert_eq!(
        value_of(f, "c").await,
        Some(b(&(TASKS * ROUNDS).to_string()))
    );
}

/// Many tasks reading at once (which the memcached adapter sends as merged multi-key gets)
/// each get exactly their own keys' values, in order, with misses and repeats in place.
pub async fn concurrent_gets_each_get_their_own_keys<S: Store>(f: &Fixture<S>) {
    const KEYS: u64 = 24;
    for k in (0..KEYS).filter(|k| k % 3 != 0) {
        let key = b(&format!("key{k}"));
        f.store
            .set(key, f.item(&format!("value{k}"), k as u32))
            .await
            .unwrap();
    }
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..32u64 {
        let store = Arc::clone(&f.store);
        tasks.spawn(async move {
            for round in 0..40u64 {
                // One to four keys, overlapping other tasks' keys, sometimes repeated.
                let first = (task * 7 + round) % KEYS;
                let wanted: Vec<u64> = (0..1 + (task + round) % 4)
                    .map(|i| {
                        if i == 2 {
                            first
                        } else {
                            (first + i * 5) % KEYS
                        }
                    })
                    .collect();
                let keys: Vec<Bytes> = wanted.iter().map(|k| b(&format!("key{k}"))).collect();
                let got = store.get(&keys).await.expect("get");
                let got: Vec<Option<(Bytes, u32)>> = got
                    .into_iter()
                    .map(|hit| hit.map(|item| (item.value, item.flags)))
                    .collect();
                let expected: Vec<Option<(Bytes, u32)>> = wanted
                    .iter()
                    .map(|&k| (k % 3 != 0).then(|| (b(&format!("value{k}")), k as u32)))
                    .collect();
                assert_eq!(got, expected, "task {task} round {round} keys {wanted:?}");
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("task");
    }
}

/// dump lists exactly the live items (deleted and expired ones left out), with everything
/// a snapshot needs; clear empties the store.
pub async fn dump_lists_every_live_item_and_clear_empties<S: Store>(f: &Fixture<S>) {
    let mut expected = Vec::new();
    for (key, value, flags) in [
        ("plain", "1", 0),
        ("a/b:c%", "two", 7),
        ("k\u{e9}y", "3", 9),
    ] {
        let item = Item::new(b(value), flags, ExpiresAt(unix_secs() + 3600), f.ts());
        f.store.set(b(key), item.clone()).await.unwrap();
        expected.push((b(key), item));
    }
    f.store.set(b("gone"), f.item("x", 0)).await.unwrap();
    f.store.delete(b("gone"), f.ts()).await.unwrap();
    let dead = Item::new(b("old"), 0, ExpiresAt::EXPIRED, f.ts());
    f.store.set(b("dead"), dead).await.unwrap();
    let mut dumped = f.store.dump().await.expect("dump");
    dumped.sort_by(|a, b| a.0.cmp(&b.0));
    expected.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(dumped, expected);
    f.store.clear().await.expect("clear");
    assert_eq!(f.store.dump().await.expect("dump"), Vec::new());
    assert_eq!(get_one(f, "plain").await, None);
}

/// peek: the access record as it was before the read; a bump marks the item fetched, a peek
/// without one (and `peek_items`, replication's read) leaves it unfetched.
pub async fn peek_reports_the_access_record_before_the_read<S: Store>(f: &Fixture<S>) {
    assert_eq!(f.store.peek(&b("k"), true).await.unwrap(), None);
    f.store.set(b("k"), f.item("v", 3)).await.unwrap();
    let quiet = f.store.peek_items(&[b("k"), b("missing")]).await.unwrap();
    assert_eq!(quiet[0].as_ref().map(|i| i.value.clone()), Some(b("v")));
    assert_eq!(quiet[1], None);
    let (item, access) = f.store.peek(&b("k"), false).await.unwrap().unwrap();
    assert_eq!((item.value, item.flags), (b("v"), 3));
    assert!(
        !access.fetched,
        "neither peek_items nor peek without a bump fetches"
    );
    let (_, access) = f.store.peek(&b("k"), true).await.unwrap().unwrap();
    assert!(!access.fetched, "the record before this read");
    let (_, access) = f.store.peek(&b("k"), false).await.unwrap().unwrap();
    assert!(access.fetched, "the bump counted");
    // A classic get is a fetch too; a new value starts unfetched again.
    f.store.set(b("k"), f.item("w", 0)).await.unwrap();
    get_one(f, "k").await.unwrap();
    assert!(
        f.store
            .peek(&b("k"), false)
            .await
            .unwrap()
            .unwrap()
            .1
            .fetched
    );
    f.store.set(b("k"), f.item("x", 0)).await.unwrap();
    assert!(
        !f.store
            .peek(&b("k"), false)
            .await
            .unwrap()
            .unwrap()
            .1
            .fetched
    );
}

/// update: `Modify` keeps the access record (and a bump marks it), `Replace` starts afresh,
/// `Remove` deletes, `Keep` writes nothing; a too-large item is refused.
pub async fn update_modifies_replaces_and_removes<S: Store>(f: &Fixture<S>) {
    use memcord_proxy::store::Change;
    let seen = f
        .store
        .update(&b("k"), false, |cur| Change::Keep(cur.is_some()))
        .await
        .unwrap();
    assert_eq!(seen, Some(false));
    let one = f.item("one", 1);
    let created = f
        .store
        .update(&b("k"), false, |_| Change::Replace(one.clone(), "created"))
        .await
        .unwrap();
    assert_eq!(created, Some("created"));
    get_one(f, "k").await.unwrap();
    let ts = f.ts();
    let answer = f
        .store
        .update(&b("k"), false, |cur| {
            let (item, access) = cur.expect("present");
            let mut marked = item.clone();
            marked.stale = true;
            marked.version = ts;
            Change::Modify(marked, access.fetched)
        })
        .await
        .unwrap();
    assert_eq!(answer, Some(true), "the get above fetched it");
    let (item, access) = f.store.peek(&b("k"), false).await.unwrap().unwrap();
    assert!(
        item.stale && access.fetched,
        "a change in place keeps the record"
    );
    assert_eq!(item.version, ts);
    let two = f.item("two", 2);
    f.store
        .update(&b("k"), false, |_| Change::Replace(two.clone(), ()))
        .await
        .unwrap();
    let (item, access) = f.store.peek(&b("k"), false).await.unwrap().unwrap();
    assert!(!item.stale && !access.fetched, "a new item starts afresh");
    let too_large = Item::new(
        Bytes::from(vec![b'x'; f.max_item + 1]),
        0,
        ExpiresAt::NEVER,
        f.ts(),
    );
    let refused = f
        .store
        .update(&b("k"), false, |_| Change::Replace(too_large.clone(), ()))
        .await
        .unwrap();
    assert_eq!(refused, None);
    assert_eq!(value_of(f, "k").await, Some(b("two")));
    let removed = f
        .store
        .update(&b("k"), false, |_| Change::Remove("gone"))
        .await
        .unwrap();
    assert_eq!(removed, Some("gone"));
    assert_eq!(get_one(f, "k").await, None);
}

/// Concurrent read-modify-writes through `update` lose nothing.
pub async fn concurrent_updates_lose_nothing<S: Store>(f: &Fixture<S>) {
    use memcord_proxy::store::Change;
    f.store.set(b("n"), f.item("0", 0)).await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let store = f.store.clone();
        let clock = f.clock.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..25 {
                store
                    .update(&b("n"), false, |cur| {
                        let (item, _) = cur.expect("present");
                        let n: u64 = std::str::from_utf8(&item.value).unwrap().parse().unwrap();
                        let mut next = item.clone();
                        next.value = Bytes::from((n + 1).to_string());
                        next.version = clock.now();
                        Change::Modify(next, ())
                    })
                    .await
                    .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(value_of(f, "n").await, Some(b("200")));
}
