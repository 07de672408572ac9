//! From raw values to the typed [`PeerConfig`]: each section in turn takes the flag's value,
//! else the merged file/variable value, else the section's `Default` (the one home of every
//! default, see [`super::types`]), and is checked as a whole; then the peer table is built,
//! this peer picked, and its address flags applied.

use super::parse::{Overrides, RawCluster, RawConfig, RawKv, RawPeer, RawServer};
use super::{
    ClusterSettings, ConfigError, HostPort, KvSettings, PeerAddrs, PeerConfig, ServerSettings,
};
use crate::protocol::Level;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The typed configuration of the peer `o` asks for, from the merged raw layers.
pub(super) fn resolve(mut raw: RawConfig, o: &Overrides) -> Result<PeerConfig, ConfigError> {
    let listed = raw.cluster.peers.take();
    let cluster = cluster_settings(raw.cluster, o)?;
    let server = server_settings(raw.server, o)?;
    let kv = kv_settings(raw.kv, o)?;
    let mut peers = peer_table(&raw.peer, listed.as_deref())?;
    let id = this_peer(o.id, &peers)?;
    check_peers(&cluster, &peers, id)?;
    // Without a config naming it, a lone peer serves where memcached would.
    let me = peers.entry(id).or_insert_with(|| PeerAddrs::lone(id));
    apply_address_flags(me, o);
    Ok(PeerConfig {
        id,
        cluster,
        server,
        kv,
        peers,
    })
}

/// `[cluster]`, with `--consistency` over it.
fn cluster_settings(raw: RawCluster, o: &Overrides) -> Result<ClusterSettings, ConfigError> {
    let d = ClusterSettings::default();
    let consistency = match o.consistency.as_deref().or(raw.consistency.as_deref()) {
        Some(name) => name.parse()?,
        None => d.consistency,
    };
    let cluster = ClusterSettings {
        consistency,
        heartbeat_ms: raw.heartbeat_ms.unwrap_or(d.heartbeat_ms),
        failure_timeout_ms: raw.failure_timeout_ms.unwrap_or(d.failure_timeout_ms),
        sync_interval_ms: raw.sync_interval_ms.unwrap_or(d.sync_interval_ms),
        secret: raw.secret.unwrap_or(d.secret),
        tombstone_ttl_secs: raw.tombstone_ttl_secs.unwrap_or(d.tombstone_ttl_secs),
        admin_commands: raw.admin_commands.unwrap_or(d.admin_commands),
        push: raw.push.unwrap_or(d.push),
        data_dir: non_empty(raw.data_dir).map_or(d.data_dir, PathBuf::from),
        fsync: raw.fsync.unwrap_or(d.fsync),
        quorum_timeout_ms: raw.quorum_timeout_ms.unwrap_or(d.quorum_timeout_ms),
        snapshot_logs: raw.snapshot_logs.unwrap_or(d.snapshot_logs),
        log_memory_mb: raw.log_memory_mb.unwrap_or(d.log_memory_mb).min(1 << 20),
        batch_linger_us: raw
            .batch_linger_us
            .unwrap_or(d.batch_linger_us)
            .min(1_000_000),
        lease_reads: raw.lease_reads.unwrap_or(d.lease_reads),
        replication_factor: raw.replication_factor.or(d.replication_factor),
        vnodes: raw.vnodes.unwrap_or(d.vnodes),
        read_consistency: level("read_consistency", raw.read_consistency, d.read_consistency)?,
        write_consistency: level(
            "write_consistency",
            raw.write_consistency,
            d.write_consistency,
        )?,
        max_hints: raw.max_hints.unwrap_or(d.max_hints),
        max_hint_bytes: raw.max_hint_bytes.unwrap_or(d.max_hint_bytes),
    };
    if cluster.snapshot_logs == 0 {
        // Snapshots are what compacts the log: without them it would grow without bound.
        return Err(ConfigError::Invalid(
            "cluster.snapshot_logs must be at least 1 (log entries between snapshots, which \
             are what compacts the log)"
                .into(),
        ));
    }
    if !(1..=crate::cluster::ring::MAX_VNODES).contains(&cluster.vnodes) {
        return Err(ConfigError::Invalid(format!(
            "cluster.vnodes must be from 1 to {}",
            crate::cluster::ring::MAX_VNODES
        )));
    }
    Ok(cluster)
}

/// `[server]`, with the server flags over it.
fn server_settings(raw: RawServer, o: &Overrides) -> Result<ServerSettings, ConfigError> {
    let d = ServerSettings::default();
    let verbosity = o.verbosity.unwrap_or(d.verbosity);
    let server = ServerSettings {
        max_connections: o
            .max_connections
            .or(raw.max_connections)
            .unwrap_or(d.max_connections),
        idle_timeout_secs: o
            .idle_timeout
            .or(raw.idle_timeout)
            .unwrap_or(d.idle_timeout_secs),
        threads: o.threads.or(raw.threads).unwrap_or(d.threads),
        max_item_size: o
            .max_item_size
            .or(raw.max_item_size.map(|size| size.0))
            .unwrap_or(d.max_item_size),
        memory_limit_mb: o
            .memory_limit_mb
            .or(raw.memory_limit_mb)
            .unwrap_or(d.memory_limit_mb),
        log_level: o
            .log_level
            .clone()
            .or(raw.log_level)
            .unwrap_or_else(|| log_level_for(verbosity, d.log_level)),
        log_file: o
            .log_file
            .clone()
            .or(non_empty(raw.log_file).map(PathBuf::from))
            .or(d.log_file),
        udp_port: o.udp_port.or(raw.udp_port).unwrap_or(d.udp_port),
        enable_shutdown: o
            .enable_shutdown
            .or(raw.enable_shutdown)
            .unwrap_or(d.enable_shutdown),
        verbosity,
    };
    if server.max_connections == 0 {
        return Err(ConfigError::Invalid(
            "max_connections must be at least 1".into(),
        ));
    }
    if server.max_item_size == 0 {
        return Err(ConfigError::Invalid(
            "max_item_size must be at least 1".into(),
        ));
    }
    Ok(server)
}

/// `[kv]`, with `--kv-type` over it.
fn kv_settings(raw: RawKv, o: &Overrides) -> Result<KvSettings, ConfigError> {
    let d = KvSettings::default();
    Ok(KvSettings {
        kv_type: match o.kv_type.as_deref().or(raw.kv_type.as_deref()) {
            Some(name) => name.parse()?,
            None => d.kv_type,
        },
        timeout_ms: raw.timeout_ms.unwrap_or(d.timeout_ms),
        connections: raw.connections.unwrap_or(d.connections).max(1),
    })
}

/// Every `[peer.N]` section, and the peers `[cluster] peers` lists on their default addresses.
fn peer_table(
    sections: &BTreeMap<String, RawPeer>,
    listed: Option<&str>,
) -> Result<BTreeMap<u16, PeerAddrs>, ConfigError> {
    let mut peers = BTreeMap::new();
    for (name, section) in sections {
        let id: u16 = name.parse().map_err(|_| {
            ConfigError::Invalid(format!(
                "[peer.{name}]: peer sections are named by a number, like [peer.0]"
            ))
        })?;
        let defaults = PeerAddrs::default_for(id);
        let addr = |field: &str, value: &Option<String>, default: HostPort| match value {
            Some(v) => HostPort::parse(&format!("peer.{id}.{field}"), v),
            None => Ok(default),
        };
        peers.insert(
            id,
            PeerAddrs {
                client_addr: addr("client_addr", &section.client_addr, defaults.client_addr)?,
                peer_addr: addr("peer_addr", &section.peer_addr, defaults.peer_addr)?,
                kv_addr: addr("kv_addr", &section.kv_addr, defaults.kv_addr)?,
            },
        );
    }
    if let Some(listed) = listed {
        for id in peer_ids(listed)? {
            peers
                .entry(id)
                .or_insert_with(|| PeerAddrs::default_for(id));
        }
    }
    Ok(peers)
}

/// Which peer this process is: `--id`, or the only one the configuration defines.
fn this_peer(id: Option<u16>, peers: &BTreeMap<u16, PeerAddrs>) -> Result<u16, ConfigError> {
    match (id, peers.len()) {
        (Some(id), 0) => Ok(id),
        (Some(id), _) if peers.contains_key(&id) => Ok(id),
        (Some(id), _) => Err(ConfigError::UnknownPeer {
            id,
            known: peers
                .keys()
                .map(u16::to_string)
                .collect::<Vec<_>>()
                .join(", "),
        }),
        (None, 0) => Ok(0),
        (None, 1) => Ok(*peers.keys().next().expect("one peer")),
        (None, _) => Err(ConfigError::Invalid(
            "the configuration defines several peers: say which one this is with --id N".into(),
        )),
    }
}

/// What the peer table must satisfy: ids that fit the clock, a replication factor it can
/// hold.
fn check_peers(
    cluster: &ClusterSettings,
    peers: &BTreeMap<u16, PeerAddrs>,
    id: u16,
) -> Result<(), ConfigError> {
    // A peer id is packed into every hybrid-clock timestamp (and so into every cas id).
    if let Some(too_big) = peers
        .keys()
        .chain(std::iter::once(&id))
        .find(|&&p| p > crate::clock::MAX_PEER_ID)
    {
        return Err(ConfigError::Invalid(format!(
            "peer id {too_big} is too large (at most {})",
            crate::clock::MAX_PEER_ID
        )));
    }
    match cluster.replication_factor {
        Some(r) if r == 0 || (peers.len() > 1 && r as usize > peers.len()) => {
            Err(ConfigError::Invalid(format!(
                "cluster.replication_factor must be from 1 to the number of peers ({}), not {r}",
                peers.len()
            )))
        }
        _ => Ok(()),
    }
}

/// `--host`, `--port`, `--kv-host`, `--kv-port`: this peer's addresses, over the file's.
fn apply_address_flags(me: &mut PeerAddrs, o: &Overrides) {
    if let Some(host) = &o.host {
        me.client_addr.host = host.clone();
    }
    if let Some(port) = o.port {
        me.client_addr.port = port;
    }
    if let Some(host) = &o.kv_host {
        me.kv_addr.host = host.clone();
    }
    if let Some(port) = o.kv_port {
        me.kv_addr.port = port;
    }
}

/// A text setting, where empty means unset (`log_file =` in config.ini).
fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.is_empty())
}

/// The log level `-v`, `-vv`, `-vvv` ask for when no log level is configured: the default up
/// to `-v`, `debug` for `-vv`, `trace` beyond.
fn log_level_for(verbosity: u32, default: String) -> String {
    match verbosity {
        0 | 1 => default,
        2 => "debug".into(),
        _ => "trace".into(),
    }
}

/// Reads a consistency level setting (`one`, `quorum`, `all`).
fn level(key: &str, value: Option<String>, default: Level) -> Result<Level, ConfigError> {
    match value {
        None => Ok(default),
        Some(v) => Level::parse(v.trim().as_bytes()).ok_or_else(|| {
            ConfigError::Invalid(format!(
                "cluster.{key}: unknown consistency level '{v}' (expected one, quorum or all)"
            ))
        }),
    }
}

/// Reads `[cluster] peers`: a count (`3` means ids 0, 1, 2) or a comma-separated id list.
fn peer_ids(listed: &str) -> Result<Vec<u16>, ConfigError> {
    let bad = || {
        ConfigError::Invalid(format!(
            "cluster.peers: '{listed}' is neither a peer count nor a list of peer ids"
        ))
    };
    let listed = listed.trim();
    if listed.is_empty() {
        return Ok(Vec::new());
    }
    if !listed.contains(',') {
        let count: u16 = listed.parse().map_err(|_| bad())?;
        return Ok((0..count).collect());
    }
    listed
        .split(',')
        .map(|id| id.trim().parse().map_err(|_| bad()))
        .collect()
}
