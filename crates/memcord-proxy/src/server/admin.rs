//! memcached's admin commands as the server answers them: the tunables memcord keeps (and
//! reports in `stats settings`) without a counterpart of its own, `stats detail`'s per-prefix
//! counters, `stats conns`, `shutdown`, and the store's commands handed to the coordinator.
//!
//! memcord has no slab allocator, no segmented LRU, no LRU maintainer, no log watchers, no
//! external storage and no TLS, so those commands get the answer memcached gives when the
//! feature is off (`slabs reassign`: `CLIENT_ERROR slab reassignment disabled`; `lru mode` /
//! `lru temp_ttl`: `ERROR`, as without the LRU maintainer; `watch`: `CLIENT_ERROR watch
//! commands not allowed`; `extstore`, `misbehave`, `debugtime`: `ERROR`, as in a build
//! without them). Settings memcached accepts without a feature depending on them (`lru
//! tune`, `slabs automove`, `lru_crawler sleep|tocrawl`) are kept and reported back.

use super::Shared;
use crate::modes::Coordinator;
use crate::protocol::admin::{Admin, Decimal, DetailOp, LruTune};
use crate::protocol::{Response, StoreAdmin};
use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

/// Most key prefixes `stats detail` counts (memcached has no bound; new prefixes past it are
/// not counted).
pub const MAX_PREFIXES: usize = 10_000;
/// The byte memcached's `stats detail` splits a key's prefix at (its `-D`).
pub const PREFIX_DELIMITER: u8 = b':';

/// memcached's tunables that memcord accepts and reports, with memcached 1.6.18's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tunables {
    /// `lru_crawler enable|disable`.
    pub crawler_enabled: bool,
    /// `lru_crawler sleep`.
    pub crawler_sleep: u32,
    /// `lru_crawler tocrawl`.
    pub crawler_tocrawl: u32,
    /// `slabs automove <level>`.
    pub slab_automove: u32,
    /// `slabs automove ratio`.
    pub automove_ratio: Decimal,
    /// `lru tune`.
    pub lru: LruTune,
}

impl Default for Tunables {
    fn default() -> Self {
        Tunables {
            crawler_enabled: true,
            crawler_sleep: 100,
            crawler_tocrawl: 0,
            slab_automove: 1,
            automove_ratio: Decimal(0.8),
            lru: LruTune {
                hot_pct: 20,
                warm_pct: 40,
                hot_factor: Decimal(0.2),
                warm_factor: Decimal(2.0),
            },
        }
    }
}

/// One prefix's `stats detail` counts.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct PrefixCount {
    gets: u64,
    hits: u64,
    sets: u64,
    deletes: u64,
}

/// What a counted request did, for `stats detail`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrefixOp {
    /// A key fetched (hit or not).
    Get(bool),
    /// A storage command.
    Set,
    /// A delete.
    Delete,
}

/// A client connection as `stats conns` shows it.
#[derive(Debug)]
pub struct ConnEntry {
    /// The client's address.
    pub peer: SocketAddr,
    /// The address it connected to.
    pub local: SocketAddr,
    /// When it last sent a command (the server's coarse clock, unix seconds).
    pub last_cmd: Arc<AtomicU64>,
}

/// The server's admin state.
#[derive(Debug, Default)]
pub struct AdminState {
    /// `stats detail on`: count requests per key prefix (checked once per request).
    pub detail_enabled: AtomicBool,
    prefixes: Mutex<BTreeMap<Bytes, PrefixCount>>,
    /// The tunables.
    pub tunables: Mutex<Tunables>,
    /// Open client connections by session id.
    pub conns: Mutex<BTreeMap<u64, ConnEntry>>,
}

impl AdminState {
    /// Counts one key for `stats detail` (only called while it is on).
    pub fn record(&self, key: &[u8], op: PrefixOp) {
        let Some(end) = key.iter().position(|&b| b == PREFIX_DELIMITER || b == 0) else {
            return;
        };
        if key[end] != PREFIX_DELIMITER {
            return;
        }
        let prefix = &key[..end];
        let mut prefixes = self.prefixes.lock();
        if !prefixes.contains_key(prefix) {
            if prefixes.len() >= MAX_PREFIXES {
                return;
            }
            prefixes.insert(Bytes::copy_from_slice(prefix), PrefixCount::default());
        }
        let Some(count) = prefixes.get_mut(prefix) else {
            return;
        };
        match op {
            PrefixOp::Get(hit) => {
                count.gets += 1;
                count.hits += u64::from(hit);
            }
            PrefixOp::Set => count.sets += 1,
            PrefixOp::Delete => count.deletes += 1,
        }
    }

    /// Forgets the prefix counts (`stats reset`).
    pub fn reset(&self) {
        self.prefixes.lock().clear();
    }

    /// `stats detail dump`: `PREFIX <p> get N hit N set N del N` lines, by prefix.
    fn dump(&self) -> Bytes {
        let mut out = Vec::new();
        for (prefix, c) in self.prefixes.lock().iter() {
            out.extend_from_slice(b"PREFIX ");
            out.extend_from_slice(prefix);
            out.extend_from_slice(
                format!(
                    " get {} hit {} set {} del {}\r\n",
                    c.gets, c.hits, c.sets, c.deletes
                )
                .as_bytes(),
            );
        }
        Bytes::from(out)
    }
}

/// What the connection does after an admin command.
#[derive(Debug, PartialEq)]
pub enum AdminAnswer {
    /// Send this reply (nothing for `Response::None`) and go on.
    Reply(Response),
    /// Close the connection without a reply; the server is stopping (`shutdown`).
    Shutdown,
}

fn line(text: &str) -> Response {
    Response::Line(text.to_owned())
}

/// Answers an admin command for the connection `session`.
pub(crate) async fn answer<C: Coordinator>(
    shared: &Shared,
    coordinator: &C,
    session: u64,
    command: Admin,
) -> AdminAnswer {
    let reply = match command {
        Admin::Store(request) => store_reply(shared, coordinator, request).await,
        Admin::StatsDetail(op) => detail(shared, op),
        Admin::StatsConns => Response::Stats(conns_lines(shared, session)),
        Admin::Shutdown { .. } | Admin::ShutdownInvalid if !shared.settings.enable_shutdown => {
            line("ERROR: shutdown not enabled")
        }
        Admin::Shutdown { graceful } => {
            tracing::info!(graceful, "shutdown requested by a client");
            shared.stop.notify_one();
            return AdminAnswer::Shutdown;
        }
        Admin::ShutdownInvalid => Response::ClientError("invalid shutdown mode".into()),
        Admin::Watch => Response::ClientError("watch commands not allowed".into()),
        Admin::SlabsReassign => Response::ClientError("slab reassignment disabled".into()),
        // Without memcached's LRU maintainer its `lru mode` and `lru temp_ttl` are `ERROR`.
        Admin::LruMode(_) | Admin::LruTempTtl(_) => Response::Error,
        other => tunable(shared, other),
    };
    AdminAnswer::Reply(reply)
}

/// The store's commands, checked against the tunables first as memcached checks them.
async fn store_reply<C: Coordinator>(
    shared: &Shared,
    coordinator: &C,
    request: StoreAdmin,
) -> Response {
    if matches!(request, StoreAdmin::Metadump(_)) && !shared.admin.tunables.lock().crawler_enabled {
        return Response::ClientError("lru crawler disabled".into());
    }
    coordinator.admin(request).await
}

fn detail(shared: &Shared, op: DetailOp) -> Response {
    match op {
        DetailOp::On | DetailOp::Off => {
            shared
                .admin
                .detail_enabled
                .store(op == DetailOp::On, Relaxed);
            Response::Ok
        }
        DetailOp::Dump => Response::Block(shared.admin.dump()),
    }
}

/// The commands that only change a tunable.
fn tunable(shared: &Shared, command: Admin) -> Response {
    let mut t = shared.admin.tunables.lock();
    match command {
        Admin::CrawlerCrawl(_) if !t.crawler_enabled => {
            Response::ClientError("lru crawler disabled".into())
        }
        // Nothing to do: the stores reclaim dead items when they meet them.
        Admin::CrawlerCrawl(_) => Response::Ok,
        Admin::CrawlerTocrawl(n) => {
            t.crawler_tocrawl = n;
            Response::Ok
        }
        Admin::CrawlerSleep(n) => {
            t.crawler_sleep = n;
            Response::Ok
        }
        Admin::CrawlerEnable if t.crawler_enabled => {
            line("ERROR failed to start lru crawler thread")
        }
        Admin::CrawlerEnable | Admin::CrawlerDisable => {
            t.crawler_enabled = command == Admin::CrawlerEnable;
            Response::Ok
        }
        Admin::SlabsAutomove(level) => {
            t.slab_automove = level;
            Response::Ok
        }
        Admin::SlabsAutomoveRatio(ratio) => {
            t.automove_ratio = ratio;
            Response::Ok
        }
        Admin::LruTune(tune) => {
            t.lru = tune;
            Response::Ok
        }
        _ => Response::Error,
    }
}

/// `stats conns`: the listener (id 0), then every client connection by session id, in
/// memcached's shape (`<id>:addr`, `<id>:listen_addr`, `<id>:state`,
/// `<id>:secs_since_last_cmd`). memcached numbers them by file descriptor.
fn conns_lines(shared: &Shared, asking: u64) -> Vec<(String, String)> {
    let now = shared.now_secs.load(Relaxed);
    let mut lines = vec![
        ("0:addr".into(), format!("tcp:{}", shared.listen_addr)),
        ("0:state".into(), "conn_listening".into()),
        (
            "0:secs_since_last_cmd".into(),
            now.saturating_sub(shared.started_secs).to_string(),
        ),
    ];
    for (id, conn) in shared.admin.conns.lock().iter() {
        let state = if *id == asking {
            "conn_parse_cmd"
        } else {
            "conn_waiting"
        };
        let idle = now.saturating_sub(conn.last_cmd.load(Relaxed));
        lines.push((format!("{id}:addr"), format!("tcp:{}", conn.peer)));
        lines.push((format!("{id}:listen_addr"), format!("tcp:{}", conn.local)));
        lines.push((format!("{id}:state"), state.into()));
        lines.push((format!("{id}:secs_since_last_cmd"), idle.to_string()));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_end_at_the_delimiter_and_are_bounded() {
        let state = AdminState::default();
        state.record(b"user:1", PrefixOp::Get(true));
        state.record(b"user:2", PrefixOp::Get(false));
        state.record(b"user:3", PrefixOp::Set);
        state.record(b"nodelimiter", PrefixOp::Set);
        state.record(b"a:b:c", PrefixOp::Delete);
        assert_eq!(
            &state.dump()[..],
            b"PREFIX a get 0 hit 0 set 0 del 1\r\nPREFIX user get 2 hit 1 set 1 del 0\r\n"
        );
        for i in 0..MAX_PREFIXES + 10 {
            state.record(format!("p{i}:k").as_bytes(), PrefixOp::Set);
        }
        assert_eq!(state.prefixes.lock().len(), MAX_PREFIXES);
        state.reset();
        assert!(state.dump().is_empty());
    }
}
