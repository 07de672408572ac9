//! The plain `stats` and `stats settings` replies: every key memcached 1.6.18 prints, in its
//! order, with memcord's value where memcord has one and memcached's value for an idle or
//! absent feature otherwise; memcord's own keys (`memcord_*`) follow.
//!
//! Keys memcached prints that memcord leaves out, each for a reason (`tests/server.rs`
//! compares the key sets with a real memcached's):
//!
//! * `stats settings` `ext_*` and `slab_automove_freeratio`: memcached prints them only when
//!   built with external storage (extstore); memcord has none, and answers `extstore` as a
//!   memcached built without it does (`ERROR`).

use super::Shared;
use crate::config::{KvType, PeerConfig};
use crate::protocol::VERSION;
use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;

/// The general `stats` keys, in memcached 1.6.18's order.
const GENERAL: &[&str] = &[
    "pid",
    "uptime",
    "time",
    "version",
    "libevent",
    "pointer_size",
    "rusage_user",
    "rusage_system",
    "max_connections",
    "curr_connections",
    "total_connections",
    "rejected_connections",
    "connection_structures",
    "response_obj_oom",
    "response_obj_count",
    "response_obj_bytes",
    "read_buf_count",
    "read_buf_bytes",
    "read_buf_bytes_free",
    "read_buf_oom",
    "reserved_fds",
    "cmd_get",
    "cmd_set",
    "cmd_flush",
    "cmd_touch",
    "cmd_meta",
    "get_hits",
    "get_misses",
    "get_expired",
    "get_flushed",
    "delete_misses",
    "delete_hits",
    "incr_misses",
    "incr_hits",
    "decr_misses",
    "decr_hits",
    "cas_misses",
    "cas_hits",
    "cas_badval",
    "touch_hits",
    "touch_misses",
    "store_too_large",
    "store_no_memory",
    "auth_cmds",
    "auth_errors",
    "bytes_read",
    "bytes_written",
    "limit_maxbytes",
    "accepting_conns",
    "listen_disabled_num",
    "time_in_listen_disabled_us",
    "threads",
    "conn_yields",
    "hash_power_level",
    "hash_bytes",
    "hash_is_expanding",
    "slab_reassign_rescues",
    "slab_reassign_chunk_rescues",
    "slab_reassign_evictions_nomem",
    "slab_reassign_inline_reclaim",
    "slab_reassign_busy_items",
    "slab_reassign_busy_deletes",
    "slab_reassign_running",
    "slabs_moved",
    "lru_crawler_running",
    "lru_crawler_starts",
    "lru_maintainer_juggles",
    "malloc_fails",
    "log_worker_dropped",
    "log_worker_written",
    "log_watcher_skipped",
    "log_watcher_sent",
    "log_watchers",
    "unexpected_napi_ids",
    "round_robin_fallback",
    "bytes",
    "curr_items",
    "total_items",
    "slab_global_page_pool",
    "expired_unfetched",
    "evicted_unfetched",
    "evicted_active",
    "evictions",
    "reclaimed",
    "crawler_reclaimed",
    "crawler_items_checked",
    "lrutail_reflocked",
    "moves_to_cold",
    "moves_to_warm",
    "moves_within_lru",
    "direct_reclaims",
    "lru_bumps_dropped",
];

/// The plain `stats` reply: memcached's keys in its order, then memcord's. `store` holds the
/// coordinator's lines (the store's `curr_items`, `bytes`, … and the mode's own keys).
pub(super) fn general(
    shared: &Shared,
    threads: usize,
    store: Vec<(String, String)>,
) -> Vec<(String, String)> {
    let stats = &shared.stats;
    let mut known: HashMap<String, String> = stats.counters.lines().into_iter().collect();
    let (user, system) = super::stats::rusage();
    let curr = stats.curr_connections.load(Relaxed);
    let fixed: [(&str, String); 15] = [
        ("pid", std::process::id().to_string()),
        ("uptime", stats.uptime_secs().to_string()),
        ("time", shared.now_secs.load(Relaxed).to_string()),
        ("version", VERSION.to_string()),
        ("libevent", "none".into()),
        ("pointer_size", (usize::BITS).to_string()),
        ("rusage_user", user),
        ("rusage_system", system),
        (
            "max_connections",
            shared.settings.max_connections.to_string(),
        ),
        ("curr_connections", curr.to_string()),
        (
            "total_connections",
            stats.total_connections.load(Relaxed).to_string(),
        ),
        (
            "rejected_connections",
            stats.rejected_connections.load(Relaxed).to_string(),
        ),
        // The connections and the listener.
        ("connection_structures", (curr + 1).to_string()),
        ("accepting_conns", "1".into()),
        ("threads", threads.to_string()),
    ];
    known.extend(fixed.map(|(name, value)| (name.to_string(), value)));
    let mut extra = Vec::new();
    for (name, value) in store {
        if GENERAL.contains(&name.as_str()) {
            known.insert(name, value);
        } else {
            extra.push((name, value));
        }
    }
    let mut lines: Vec<(String, String)> = GENERAL
        .iter()
        .map(|name| {
            let value = known.remove(*name).unwrap_or_else(|| "0".into());
            (name.to_string(), value)
        })
        .collect();
    lines.extend(extra);
    lines
}

/// The `stats settings` reply: memcached's keys in its order with memcord's values, then the
/// effective configuration's `memcord_*` lines.
pub(super) fn settings(
    shared: &Shared,
    mode: &str,
    threads: usize,
    maxbytes: u64,
) -> Vec<(String, String)> {
    let s = &shared.settings;
    let t = *shared.admin.tunables.lock();
    let yes_no = |on: bool| if on { "yes" } else { "no" }.to_string();
    let detail = shared.admin.detail_enabled.load(Relaxed);
    let mut lines = named([
        ("maxbytes", maxbytes.to_string()),
        ("maxconns", s.max_connections.to_string()),
        ("tcpport", shared.listen_addr.port().to_string()),
        ("udpport", s.udp_port.unwrap_or(0).to_string()),
        ("inter", shared.listen_addr.ip().to_string()),
        ("verbosity", shared.verbosity.load(Relaxed).to_string()),
        ("oldest", "0".into()),
        ("evictions", "on".into()),
        ("domain_socket", "NULL".into()),
        ("umask", "700".into()),
        ("shutdown_command", yes_no(s.enable_shutdown)),
        // The embedded store's size classes double (see `stats slabs`), from 64 bytes.
        ("growth_factor", "2.00".into()),
        ("chunk_size", "64".into()),
        ("num_threads", threads.to_string()),
        ("num_threads_per_udp", threads.to_string()),
        ("stat_key_prefix", ":".into()),
        ("detail_enabled", yes_no(detail)),
        ("reqs_per_event", "20".into()),
        ("cas_enabled", "yes".into()),
        ("tcp_backlog", "1024".into()),
        ("binding_protocol", "ascii".into()),
        ("auth_enabled_sasl", "no".into()),
        ("auth_enabled_ascii", "no".into()),
        ("item_size_max", s.limits.max_value_len.to_string()),
        ("maxconns_fast", "yes".into()),
        ("hashpower_init", "0".into()),
        ("slab_reassign", "no".into()),
        ("slab_automove", t.slab_automove.to_string()),
        ("slab_automove_ratio", format!("{:.2}", t.automove_ratio.0)),
        ("slab_automove_window", "30".into()),
        ("slab_chunk_max", (s.limits.max_value_len / 2).to_string()),
        ("lru_crawler", yes_no(t.crawler_enabled)),
        ("lru_crawler_sleep", t.crawler_sleep.to_string()),
        ("lru_crawler_tocrawl", t.crawler_tocrawl.to_string()),
        ("tail_repair_time", "0".into()),
        ("flush_enabled", "yes".into()),
        ("dump_enabled", "yes".into()),
        ("hash_algorithm", "fnv1a".into()),
        ("lru_maintainer_thread", "no".into()),
        ("lru_segmented", "no".into()),
        ("hot_lru_pct", t.lru.hot_pct.to_string()),
        ("warm_lru_pct", t.lru.warm_pct.to_string()),
        ("hot_max_factor", format!("{:.2}", t.lru.hot_factor.0)),
        ("warm_max_factor", format!("{:.2}", t.lru.warm_factor.0)),
        ("temp_lru", "no".into()),
        ("temporary_ttl", "61".into()),
        (
            "idle_timeout",
            s.idle_timeout.map_or(0, |d| d.as_secs()).to_string(),
        ),
        ("watcher_logbuf_size", "0".into()),
        ("worker_logbuf_size", "0".into()),
        ("read_buf_mem_limit", "0".into()),
        ("track_sizes", "no".into()),
        ("inline_ascii_response", "no".into()),
        ("ssl_enabled", "no".into()),
        ("ssl_chain_cert", "(null)".into()),
        ("ssl_key", "(null)".into()),
        ("ssl_verify_mode", "0".into()),
        ("ssl_keyformat", "1".into()),
        ("ssl_ciphers", "NULL".into()),
        ("ssl_ca_cert", "NULL".into()),
        ("ssl_wbuf_size", "16384".into()),
        ("ssl_session_cache", "no".into()),
        ("ssl_kernel_tls", "no".into()),
        ("ssl_min_version", "tlsv1.2".into()),
        ("num_napi_ids", "(null)".into()),
        ("memory_file", "(null)".into()),
        ("memcord_mode", mode.to_string()),
    ]);
    lines.extend(s.settings.iter().cloned());
    lines
}

/// The configuration's lines of the plain `stats` reply.
pub(crate) fn config_info(config: &PeerConfig) -> Vec<(String, String)> {
    named([
        ("memcord_peer_id", config.id.to_string()),
        ("memcord_kv_type", config.kv.kv_type.to_string()),
        (
            "memcord_consistency",
            config.cluster.consistency.to_string(),
        ),
        ("memcord_peers", config.peers.len().to_string()),
        ("memcord_version", env!("CARGO_PKG_VERSION").into()),
    ])
}

/// The configuration's `stats settings` lines (`memcord_*`), after memcached's own.
pub(crate) fn config_settings(config: &PeerConfig) -> Vec<(String, String)> {
    let (me, cluster) = (config.me(), &config.cluster);
    let replication = cluster
        .replication_factor
        .map_or(config.peers.len(), |r| r as usize);
    let mut lines = named([
        ("memcord_peer_id", config.id.to_string()),
        ("memcord_peers", config.peers.len().to_string()),
        ("memcord_consistency", cluster.consistency.to_string()),
        ("memcord_client_addr", me.client_addr.to_string()),
        ("memcord_peer_addr", me.peer_addr.to_string()),
        ("memcord_kv_type", config.kv.kv_type.to_string()),
        ("memcord_heartbeat_ms", cluster.heartbeat_ms.to_string()),
        (
            "memcord_failure_timeout_ms",
            cluster.failure_timeout_ms.to_string(),
        ),
        (
            "memcord_sync_interval_ms",
            cluster.sync_interval_ms.to_string(),
        ),
        (
            "memcord_tombstone_ttl_secs",
            cluster.tombstone_ttl_secs.to_string(),
        ),
        ("memcord_push", cluster.push.to_string()),
        ("memcord_replication_factor", replication.to_string()),
        ("memcord_vnodes", cluster.vnodes.to_string()),
        (
            "memcord_read_consistency",
            cluster.read_consistency.name().into(),
        ),
        (
            "memcord_write_consistency",
            cluster.write_consistency.name().into(),
        ),
        ("memcord_admin_commands", cluster.admin_commands.to_string()),
        ("memcord_log_level", config.server.log_level.clone()),
    ]);
    if config.peers.len() > 1 {
        // Every peer's client address, so a client of this one (the console's `fail N`)
        // can reach any of them, whatever the mode.
        for (id, addrs) in &config.peers {
            lines.push((
                format!("memcord_peer.{id}.client_addr"),
                addrs.client_addr.to_string(),
            ));
        }
    }
    if config.kv.kv_type == KvType::Memcached {
        lines.extend(named([
            ("memcord_kv_addr", me.kv_addr.to_string()),
            ("memcord_kv_timeout_ms", config.kv.timeout_ms.to_string()),
            ("memcord_kv_connections", config.kv.connections.to_string()),
        ]));
    }
    // A peer running the broken linearizable build says so (`memcord check` refuses to
    // call a run broken on purpose unless every peer does).
    #[cfg(feature = "fault-injection")]
    if config.peers.len() > 1
        && crate::peer::settings::read_policy(config) == Some(crate::modes::ReadPolicy::UnsafeLocal)
    {
        lines.push(("memcord_unsafe_local_reads".into(), "yes".into()));
    }
    lines
}

/// Lines with static names as owned pairs.
fn named<'a>(lines: impl IntoIterator<Item = (&'a str, String)>) -> Vec<(String, String)> {
    lines
        .into_iter()
        .map(|(name, value)| (name.to_string(), value))
        .collect()
}
