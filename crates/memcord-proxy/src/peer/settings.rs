//! The one translation of a [`PeerConfig`] into each module's own config: the ordered queue,
//! the eventual mode, the peer transport and its membership, both stores, and the server.
//!
//! The settings' defaults live in [`crate::config`] (README's Configuration reference). The
//! module configs keep defaults of their own for tests and for use without a configuration
//! (`MemoryStore::default()`, `OrderConfig::new`), and the tests below fail when translating
//! [`PeerConfig::default`] does not give exactly those, so the two can never disagree.
//! Clamps that keep a module working whatever the file says (a zero interval taken as 1 ms)
//! are made here, once.

use crate::cluster::TransportConfig;
use crate::config::{Consistency, PeerConfig};
use crate::modes::eventual::HintLimits;
use crate::modes::{EventualConfig, ReadPolicy};
use crate::order::state_machine::KeyIndex;
use crate::order::OrderConfig;
use crate::protocol::Limits;
use crate::server::Settings;
use crate::store::{MemcachedConfig, MemoryConfig};
use std::path::PathBuf;
use std::time::Duration;

/// Largest peer frame accepted after the handshake (a sync page or a snapshot chunk).
pub const MAX_PEER_FRAME: usize = 64 * 1024 * 1024;
/// Outbound peer frames queued per link before senders wait (or pushes are dropped).
pub const PEER_QUEUE_DEPTH: usize = 4096;

/// Where this peer keeps its durable state: `data_dir/peer-N`.
pub fn peer_dir(config: &PeerConfig) -> PathBuf {
    config.cluster.data_dir.join(format!("peer-{}", config.id))
}

/// The ordered queue's config (linearizable and sequential modes); `key_index` says how its
/// snapshots find the store's keys.
pub fn order_config(config: &PeerConfig, key_index: KeyIndex) -> OrderConfig {
    let cluster = &config.cluster;
    #[allow(unused_mut)] // set again below by the fault-injection build
    let mut order = OrderConfig {
        fsync: cluster.fsync,
        quorum_timeout: millis(cluster.quorum_timeout_ms),
        heartbeat: millis(cluster.heartbeat_ms),
        election_timeout: Duration::from_millis(cluster.failure_timeout_ms.max(10)),
        snapshot_logs: cluster.snapshot_logs,
        log_memory: cluster.log_memory_mb << 20,
        batch_linger: Duration::from_micros(cluster.batch_linger_us),
        lease_reads: cluster.lease_reads,
        key_index,
        ..OrderConfig::new(peer_dir(config))
    };
    #[cfg(feature = "fault-injection")]
    if read_policy(config) == Some(ReadPolicy::UnsafeLocal) {
        // The broken build lags on followers for certain, not by the luck of a race.
        order.follower_apply_lag = crate::faults::UNSAFE_FOLLOWER_LAG;
    }
    order
}

/// How the ordered modes serve reads: after a read index (linearizable, unless the test-only
/// fault switch of a `fault-injection` build is armed) or after this connection's own writes
/// (sequential); `None` for the eventual mode.
pub fn read_policy(config: &PeerConfig) -> Option<ReadPolicy> {
    match config.cluster.consistency {
        Consistency::Linearizable => Some(crate::modes::linearizable::read_policy()),
        Consistency::Sequential => Some(ReadPolicy::Sequential),
        Consistency::Eventual => None,
    }
}

/// The eventual mode's config.
pub fn eventual_config(config: &PeerConfig) -> EventualConfig {
    let cluster = &config.cluster;
    EventualConfig {
        sync_interval: millis(cluster.sync_interval_ms),
        tombstone_ttl: Duration::from_secs(cluster.tombstone_ttl_secs),
        join_window: failure_timeout(config) * 2,
        admin_commands: cluster.admin_commands,
        push: cluster.push,
        replication: cluster.replication_factor,
        vnodes: cluster.vnodes,
        read_level: cluster.read_consistency,
        write_level: cluster.write_consistency,
        level_timeout: millis(cluster.quorum_timeout_ms),
        hints_dir: Some(peer_dir(config).join("hints")),
        hint_limits: HintLimits {
            max_per_peer: cluster.max_hints,
            max_bytes: cluster.max_hint_bytes,
        },
        ..EventualConfig::default()
    }
}

/// The silence after which membership marks a peer down.
pub fn failure_timeout(config: &PeerConfig) -> Duration {
    millis(config.cluster.failure_timeout_ms)
}

/// The other peers, by id, at their peer addresses.
pub fn other_peers(config: &PeerConfig) -> Vec<(u16, String)> {
    config
        .peers
        .iter()
        .filter(|(id, _)| **id != config.id)
        .map(|(id, addrs)| (*id, addrs.peer_addr.to_string()))
        .collect()
}

/// The peer transport's config.
pub fn transport_config(config: &PeerConfig) -> TransportConfig {
    let cluster = &config.cluster;
    TransportConfig {
        me: config.id,
        peers: other_peers(config),
        secret: cluster.secret.clone().into_bytes(),
        mode: cluster.consistency.name().to_string(),
        max_frame: MAX_PEER_FRAME,
        queue_depth: PEER_QUEUE_DEPTH,
        heartbeat: millis(cluster.heartbeat_ms),
        connect_timeout: failure_timeout(config).max(Duration::from_millis(500)),
    }
}

/// The embedded store's config.
pub fn memory_config(config: &PeerConfig) -> MemoryConfig {
    MemoryConfig {
        limit_bytes: (config.server.memory_limit_mb as usize).saturating_mul(1024 * 1024),
        max_item_size: config.server.max_item_size,
        ..MemoryConfig::default()
    }
}

/// The memcached store's config, for this peer's `kv_addr`.
pub fn memcached_config(config: &PeerConfig) -> MemcachedConfig {
    let mut backend = MemcachedConfig::new(config.me().kv_addr.to_string());
    // A replica must notice a backend that restarted empty (see `instance`); a cache of one
    // is allowed to lose items like any memcached.
    backend.pin_instance = config.peers.len() > 1;
    backend.pool_size = config.kv.connections;
    backend.request_timeout = millis(config.kv.timeout_ms);
    // The envelope and memcached's own item header must fit the backend's `-I` (1 MiB by
    // default): never promise clients more than that.
    backend.max_item_size = backend.max_item_size.min(config.server.max_item_size);
    backend
}

/// The client-facing server's settings, with the configuration's `stats` and `stats
/// settings` lines.
pub fn server_settings(config: &PeerConfig) -> Settings {
    let server = &config.server;
    Settings {
        limits: Limits {
            max_value_len: server.max_item_size,
            ..Limits::default()
        },
        max_connections: server.max_connections,
        idle_timeout: (server.idle_timeout_secs > 0)
            .then(|| Duration::from_secs(server.idle_timeout_secs)),
        info: crate::server::report::config_info(config),
        settings: crate::server::report::config_settings(config),
        enable_shutdown: server.enable_shutdown,
        udp_port: None,
        verbosity: server.verbosity,
    }
}

/// A millisecond setting as a duration, at least 1 ms (a zero interval would spin).
fn millis(ms: u64) -> Duration {
    Duration::from_millis(ms.max(1))
}

#[cfg(test)]
mod tests {
    //! Every module default against the translation of `PeerConfig::default()`. Configs are
    //! compared by their `Debug` text, which lists every field, so a field added to a module
    //! config is compared too without touching these tests.

    use super::*;

    fn same<T: std::fmt::Debug>(module: T, translated: T, what: &str) {
        assert_eq!(
            format!("{module:#?}"),
            format!("{translated:#?}"),
            "{what}'s own default disagrees with the documented setting"
        );
    }

    #[test]
    fn the_ordered_queue_defaults_are_the_documented_ones() {
        let config = PeerConfig::default();
        same(
            OrderConfig::new(peer_dir(&config)),
            order_config(&config, KeyIndex::Store),
            "OrderConfig",
        );
    }

    #[test]
    fn the_eventual_mode_defaults_are_the_documented_ones() {
        // Where hints are kept depends on the peer, not on a setting.
        let translated = EventualConfig {
            hints_dir: None,
            ..eventual_config(&PeerConfig::default())
        };
        same(EventualConfig::default(), translated, "EventualConfig");
    }

    #[test]
    fn the_store_defaults_are_the_documented_ones() {
        let config = PeerConfig::default();
        same(
            MemoryConfig::default(),
            memory_config(&config),
            "MemoryConfig",
        );
        same(
            MemcachedConfig::new(config.me().kv_addr.to_string()),
            memcached_config(&config),
            "MemcachedConfig",
        );
    }

    #[test]
    fn the_server_defaults_are_the_documented_ones() {
        // The `stats` lines describe the peer, not a setting.
        let translated = Settings {
            info: Vec::new(),
            settings: Vec::new(),
            ..server_settings(&PeerConfig::default())
        };
        same(Settings::default(), translated, "server Settings");
    }
}
