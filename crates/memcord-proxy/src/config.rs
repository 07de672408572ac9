//! Configuration: `config.ini`, `MEMCORD_*` environment variables and command-line flags, merged
//! into one typed [`PeerConfig`] for the peer being started.
//!
//! Precedence, highest first: flags (and their flat `MEMCORD_<FLAG>` variables, which clap reads
//! as the flag itself) > structured variables `MEMCORD_<SECTION>__<KEY>` (for example
//! `MEMCORD_CLUSTER__HEARTBEAT_MS`, `MEMCORD_PEER__1__CLIENT_ADDR`) > the file > defaults.
//!
//! ```text
//! [cluster]                 consistency, heartbeat_ms, failure_timeout_ms, sync_interval_ms,
//!                           secret, peers (a count "3" or ids "0,1,2"; optional),
//!                           replication_factor, vnodes, read_consistency, write_consistency,
//!                           max_hints, max_hint_bytes (eventual mode's ring and levels)
//! [server]                  max_connections, idle_timeout (s, 0 = none), max_item_size (bytes,
//!                           or with memcached's k/m suffix), threads (0 = one per usable CPU),
//!                           memory_limit_mb, udp_port (0 = no UDP), enable_shutdown,
//!                           log_level, log_file
//! [kv]                      type (memory | memcached), timeout_ms, connections
//! [peer.N]                  client_addr, peer_addr, kv_addr (host:port each)
//! ```
//!
//! A file is read only when one is named (`--config` / `MEMCORD_CONFIG`), so a bare
//! `memcord peer --port 11311` is always a cluster of one whatever the working directory holds.

use crate::protocol::Level;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The named config file does not exist.
    #[error("config file {0} not found")]
    MissingFile(PathBuf),
    /// The file or an environment variable could not be read or has a value of the wrong type.
    #[error("reading configuration: {0}")]
    Read(#[from] config::ConfigError),
    /// `consistency` is not one of the three mode names.
    #[error("unknown consistency mode '{0}' (expected linearizable, sequential or eventual)")]
    UnknownConsistency(String),
    /// `kv.type` / `--kv-type` is not a known store.
    #[error("unknown kv type '{0}' (expected memory or memcached)")]
    UnknownKvType(String),
    /// An address is not `host:port` with a valid port.
    #[error("{key}: invalid address '{value}' ({reason})")]
    BadAddress {
        /// Which setting.
        key: String,
        /// What it said.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// `--id` names a peer the configuration does not define.
    #[error("unknown peer id {id} (the configuration defines peers {known})")]
    UnknownPeer {
        /// The requested id.
        id: u16,
        /// The ids that exist, comma-separated.
        known: String,
    },
    /// Any other inconsistency, described.
    #[error("{0}")]
    Invalid(String),
}

/// The consistency mode a cluster runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Consistency {
    /// Every request, reads included, is ordered by the cluster's queue.
    #[default]
    Linearizable,
    /// Writes are ordered; reads are local once this connection's writes have applied.
    Sequential,
    /// Writes apply locally at once and spread by periodic anti-entropy.
    Eventual,
}

impl Consistency {
    /// The name used in config files, flags and `stats`.
    pub fn name(self) -> &'static str {
        match self {
            Consistency::Linearizable => "linearizable",
            Consistency::Sequential => "sequential",
            Consistency::Eventual => "eventual",
        }
    }
}

impl FromStr for Consistency {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, ConfigError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "linearizable" => Ok(Consistency::Linearizable),
            "sequential" => Ok(Consistency::Sequential),
            "eventual" => Ok(Consistency::Eventual),
            _ => Err(ConfigError::UnknownConsistency(s.to_string())),
        }
    }
}

impl fmt::Display for Consistency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which backing store a peer keeps its items in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum KvType {
    /// The embedded in-memory store (needs nothing else installed).
    #[default]
    Memory,
    /// A real memcached server at the peer's `kv_addr`.
    Memcached,
}

impl KvType {
    /// The name used in config files, flags and `stats`.
    pub fn name(self) -> &'static str {
        match self {
            KvType::Memory => "memory",
            KvType::Memcached => "memcached",
        }
    }
}

impl FromStr for KvType {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, ConfigError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "memory" => Ok(KvType::Memory),
            "memcached" => Ok(KvType::Memcached),
            _ => Err(ConfigError::UnknownKvType(s.to_string())),
        }
    }
}

impl fmt::Display for KvType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A `host:port` pair; the host may be a name (resolved when used) or an IP literal.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostPort {
    /// Host name or IP address.
    pub host: String,
    /// TCP port (0 lets the OS choose, for listeners).
    pub port: u16,
}

impl HostPort {
    /// A pair from its parts.
    pub fn new(host: impl Into<String>, port: u16) -> HostPort {
        HostPort {
            host: host.into(),
            port,
        }
    }

    /// Parses `host:port` (IPv6 hosts in brackets), naming `key` in errors.
    pub fn parse(key: &str, value: &str) -> Result<HostPort, ConfigError> {
        let bad = |reason| ConfigError::BadAddress {
            key: key.to_string(),
            value: value.to_string(),
            reason,
        };
        let value_trimmed = value.trim();
        let (host, port) = value_trimmed
            .rsplit_once(':')
            .ok_or_else(|| bad("expected host:port"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() || host.contains(char::is_whitespace) {
            return Err(bad("missing or malformed host"));
        }
        let port = port
            .parse::<u16>()
            .map_err(|_| bad("port must be a number from 0 to 65535"))?;
        Ok(HostPort::new(host, port))
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// `[cluster]`: what every peer of one cluster shares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterSettings {
    /// The consistency mode.
    pub consistency: Consistency,
    /// How often peers send heartbeats.
    pub heartbeat_ms: u64,
    /// Silence after which a peer is marked down.
    pub failure_timeout_ms: u64,
    /// How often the eventual mode exchanges replication logs.
    pub sync_interval_ms: u64,
    /// Shared secret authenticating peer connections.
    pub secret: String,
    /// How long the eventual mode keeps a delete's tombstone, in seconds.
    pub tombstone_ttl_secs: u64,
    /// Whether the fault-simulation words `fail` / `recover` are accepted from clients.
    pub admin_commands: bool,
    /// Whether the eventual mode pushes each write to live peers at once (the periodic sync
    /// alone also converges, within two sync intervals).
    pub push: bool,
    /// Where a peer keeps durable state (the ordered queue's log); relative to the
    /// working directory.
    pub data_dir: PathBuf,
    /// Whether the ordered queue fsyncs its log and vote before acknowledging (safe default).
    pub fsync: bool,
    /// How long an ordered-mode request may wait for a quorum before `SERVER_ERROR no quorum`.
    pub quorum_timeout_ms: u64,
    /// Log entries between two snapshots of the ordered queue (the log before a snapshot is
    /// compacted away; a lagging or new peer is sent the snapshot).
    pub snapshot_logs: u64,
    /// MiB of applied Raft log entries a peer keeps in memory; older ones are read back from
    /// the log file (a lagging follower, a log rewrite). 0 keeps only unapplied entries.
    pub log_memory_mb: u64,
    /// Microseconds the ordered queue's leader may hold a busy batch open for the sources of
    /// its last batches (own clients, followers) to join it; 0 never waits.
    pub batch_linger_us: u64,
    /// Whether the linearizable mode's leader answers reads from its lease (no quorum round
    /// per read); relies on peers' clocks running at about the same rate.
    pub lease_reads: bool,
    /// Eventual mode: replicas per key; `None` = every peer (full replication).
    pub replication_factor: Option<u32>,
    /// Eventual mode: points per peer on the consistent-hash ring.
    pub vnodes: u32,
    /// Eventual mode: the cluster's default read consistency level.
    pub read_consistency: Level,
    /// Eventual mode: the cluster's default write consistency level.
    pub write_consistency: Level,
    /// Eventual mode: most hinted writes kept for one unreachable peer.
    pub max_hints: usize,
    /// Eventual mode: most bytes of hinted writes kept for all unreachable peers together.
    pub max_hint_bytes: u64,
}

/// `[server]`: the client-facing listener and process settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSettings {
    /// Most client connections served at once (memcached's `-c`).
    pub max_connections: usize,
    /// Seconds a connection may stay silent before it is closed; 0 = never.
    pub idle_timeout_secs: u64,
    /// Worker threads (memcached's `-t`); 0 = one per CPU the process may run on. One runs
    /// the whole peer on its main thread.
    pub threads: usize,
    /// Largest value accepted, in bytes (memcached's `-I`).
    pub max_item_size: usize,
    /// Memory limit of the embedded store, in MiB (memcached's `-m`).
    pub memory_limit_mb: u64,
    /// `tracing` filter directive (`info`, `memcord=debug`, …).
    pub log_level: String,
    /// Log file; `None` logs to stderr.
    pub log_file: Option<PathBuf>,
    /// UDP port for memcached's UDP protocol (memcached's `-U`); 0 = none.
    pub udp_port: u16,
    /// Whether the `shutdown` command stops the peer (memcached's `-A`).
    pub enable_shutdown: bool,
    /// memcached's `-v` count (reported as `verbosity`; `-vv` and more also raise the
    /// default log level).
    pub verbosity: u32,
}

/// `[kv]`: how a peer reaches its backing store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvSettings {
    /// Embedded or memcached.
    pub kv_type: KvType,
    /// Deadline for one backend operation.
    pub timeout_ms: u64,
    /// Connections to the backend memcached.
    pub connections: usize,
}

/// `[peer.N]`: where one peer can be reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerAddrs {
    /// Where clients connect (memcache text protocol).
    pub client_addr: HostPort,
    /// Where other peers connect (peer transport).
    pub peer_addr: HostPort,
    /// The backing memcached (used when `kv.type = memcached`).
    pub kv_addr: HostPort,
}

impl PeerAddrs {
    /// The conventional addresses of peer `id`: clients on 8000+id, peers on 9000+id,
    /// memcached on 11201+id, all on localhost.
    pub fn default_for(id: u16) -> PeerAddrs {
        PeerAddrs {
            client_addr: HostPort::new("127.0.0.1", 8000u16.saturating_add(id)),
            peer_addr: HostPort::new("127.0.0.1", 9000u16.saturating_add(id)),
            kv_addr: HostPort::new("127.0.0.1", 11201u16.saturating_add(id)),
        }
    }
}

/// Everything one peer needs to start: its id, its own addresses and the cluster's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerConfig {
    /// This peer's id.
    pub id: u16,
    /// Shared cluster settings.
    pub cluster: ClusterSettings,
    /// Client-facing server settings.
    pub server: ServerSettings,
    /// Backing store settings.
    pub kv: KvSettings,
    /// Every peer of the cluster by id, this one included (with flag overrides applied).
    pub peers: BTreeMap<u16, PeerAddrs>,
}

impl PeerConfig {
    /// This peer's addresses.
    pub fn me(&self) -> &PeerAddrs {
        &self.peers[&self.id]
    }

    /// The effective settings as `stats settings` lines (memcached's names where they exist).
    pub fn settings_lines(&self) -> Vec<(String, String)> {
        let me = self.me();
        let mut lines = vec![
            ("memcord_peer_id".to_string(), self.id.to_string()),
            ("memcord_peers".into(), self.peers.len().to_string()),
            (
                "memcord_consistency".into(),
                self.cluster.consistency.to_string(),
            ),
            ("memcord_client_addr".into(), me.client_addr.to_string()),
            ("memcord_peer_addr".into(), me.peer_addr.to_string()),
            ("memcord_kv_type".into(), self.kv.kv_type.to_string()),
            (
                "memcord_heartbeat_ms".into(),
                self.cluster.heartbeat_ms.to_string(),
            ),
            (
                "memcord_failure_timeout_ms".into(),
                self.cluster.failure_timeout_ms.to_string(),
            ),
            (
                "memcord_sync_interval_ms".into(),
                self.cluster.sync_interval_ms.to_string(),
            ),
            (
                "memcord_tombstone_ttl_secs".into(),
                self.cluster.tombstone_ttl_secs.to_string(),
            ),
            ("memcord_push".into(), self.cluster.push.to_string()),
            (
                "memcord_replication_factor".into(),
                self.cluster
                    .replication_factor
                    .map(|r| r as usize)
                    .unwrap_or(self.peers.len())
                    .to_string(),
            ),
            ("memcord_vnodes".into(), self.cluster.vnodes.to_string()),
            (
                "memcord_read_consistency".into(),
                self.cluster.read_consistency.name().into(),
            ),
            (
                "memcord_write_consistency".into(),
                self.cluster.write_consistency.name().into(),
            ),
            (
                "memcord_admin_commands".into(),
                self.cluster.admin_commands.to_string(),
            ),
            ("memcord_log_level".into(), self.server.log_level.clone()),
        ];
        if self.peers.len() > 1 {
            // Every peer's client address, so a client of this one (the console's `fail N`)
            // can reach any of them, whatever the mode.
            for (id, addrs) in &self.peers {
                lines.push((
                    format!("memcord_peer.{id}.client_addr"),
                    addrs.client_addr.to_string(),
                ));
            }
        }
        if self.kv.kv_type == KvType::Memcached {
            lines.push(("memcord_kv_addr".into(), me.kv_addr.to_string()));
            lines.push((
                "memcord_kv_timeout_ms".into(),
                self.kv.timeout_ms.to_string(),
            ));
            lines.push((
                "memcord_kv_connections".into(),
                self.kv.connections.to_string(),
            ));
        }
        lines
    }
}

/// Values given on the command line (or through their flat `MEMCORD_<FLAG>` variables); `None`
/// leaves the lower layers' value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    /// The config file to read.
    pub config: Option<PathBuf>,
    /// Which `[peer.N]` this process is.
    pub id: Option<u16>,
    /// Client listen host.
    pub host: Option<String>,
    /// Client listen port.
    pub port: Option<u16>,
    /// Store kind.
    pub kv_type: Option<String>,
    /// Backend memcached host.
    pub kv_host: Option<String>,
    /// Backend memcached port.
    pub kv_port: Option<u16>,
    /// Consistency mode name.
    pub consistency: Option<String>,
    /// Embedded store memory limit.
    pub memory_limit_mb: Option<u64>,
    /// Largest value.
    pub max_item_size: Option<usize>,
    /// Connection cap.
    pub max_connections: Option<usize>,
    /// Idle timeout in seconds.
    pub idle_timeout: Option<u64>,
    /// Worker threads.
    pub threads: Option<usize>,
    /// Log filter.
    pub log_level: Option<String>,
    /// Log file.
    pub log_file: Option<PathBuf>,
    /// UDP port.
    pub udp_port: Option<u16>,
    /// Enable the `shutdown` command.
    pub enable_shutdown: Option<bool>,
    /// `-v` count.
    pub verbosity: Option<u32>,
}

/// The file's shape, every value optional so that defaults fill the gaps.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawConfig {
    cluster: RawCluster,
    server: RawServer,
    kv: RawKv,
    peer: BTreeMap<String, RawPeer>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawCluster {
    peers: Option<String>,
    consistency: Option<String>,
    heartbeat_ms: Option<u64>,
    failure_timeout_ms: Option<u64>,
    sync_interval_ms: Option<u64>,
    secret: Option<String>,
    tombstone_ttl_secs: Option<u64>,
    admin_commands: Option<bool>,
    push: Option<bool>,
    data_dir: Option<String>,
    fsync: Option<bool>,
    quorum_timeout_ms: Option<u64>,
    snapshot_logs: Option<u64>,
    log_memory_mb: Option<u64>,
    batch_linger_us: Option<u64>,
    lease_reads: Option<bool>,
    replication_factor: Option<u32>,
    vnodes: Option<u32>,
    read_consistency: Option<String>,
    write_consistency: Option<String>,
    max_hints: Option<usize>,
    max_hint_bytes: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawServer {
    max_connections: Option<usize>,
    idle_timeout: Option<u64>,
    threads: Option<usize>,
    max_item_size: Option<ItemSize>,
    memory_limit_mb: Option<u64>,
    log_level: Option<String>,
    log_file: Option<String>,
    udp_port: Option<u16>,
    enable_shutdown: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawKv {
    #[serde(rename = "type")]
    kv_type: Option<String>,
    timeout_ms: Option<u64>,
    connections: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawPeer {
    client_addr: Option<String>,
    peer_addr: Option<String>,
    kv_addr: Option<String>,
}

/// Loads the configuration of one peer from `overrides.config` (if any), the structured
/// `MEMCORD_<SECTION>__<KEY>` variables among `env`, and the overrides.
pub fn load(
    overrides: &Overrides,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<PeerConfig, ConfigError> {
    let mut builder = config::Config::builder();
    if let Some(path) = &overrides.config {
        if !path.is_file() {
            return Err(ConfigError::MissingFile(path.clone()));
        }
        builder = builder.add_source(
            config::File::from(path.as_path())
                .format(config::FileFormat::Ini)
                .required(true),
        );
    }
    // Only the double-underscore variables are structured settings; the flat ones
    // (MEMCORD_PORT, MEMCORD_LOG …) are flags, read by clap, and must not be taken for
    // unknown top-level keys here.
    let structured: config::Map<String, String> = env
        .into_iter()
        .filter(|(k, _)| k.starts_with("MEMCORD_") && k.contains("__"))
        .collect();
    builder = builder.add_source(
        config::Environment::with_prefix("MEMCORD")
            .prefix_separator("_")
            .separator("__")
            .source(Some(structured)),
    );
    let raw: RawConfig = builder.build()?.try_deserialize()?;
    resolve(raw, overrides)
}

fn resolve(raw: RawConfig, o: &Overrides) -> Result<PeerConfig, ConfigError> {
    let consistency = match o
        .consistency
        .as_deref()
        .or(raw.cluster.consistency.as_deref())
    {
        Some(name) => name.parse()?,
        None => Consistency::default(),
    };
    let kv_type = match o.kv_type.as_deref().or(raw.kv.kv_type.as_deref()) {
        Some(name) => name.parse()?,
        None => KvType::default(),
    };
    let cluster = ClusterSettings {
        consistency,
        heartbeat_ms: raw.cluster.heartbeat_ms.unwrap_or(200),
        failure_timeout_ms: raw.cluster.failure_timeout_ms.unwrap_or(1000),
        sync_interval_ms: raw.cluster.sync_interval_ms.unwrap_or(500),
        secret: raw.cluster.secret.unwrap_or_default(),
        tombstone_ttl_secs: raw.cluster.tombstone_ttl_secs.unwrap_or(3600),
        admin_commands: raw.cluster.admin_commands.unwrap_or(true),
        push: raw.cluster.push.unwrap_or(true),
        data_dir: PathBuf::from(
            raw.cluster
                .data_dir
                .filter(|d| !d.is_empty())
                .unwrap_or_else(|| "data".to_string()),
        ),
        fsync: raw.cluster.fsync.unwrap_or(true),
        quorum_timeout_ms: raw.cluster.quorum_timeout_ms.unwrap_or(2000),
        snapshot_logs: raw.cluster.snapshot_logs.unwrap_or(5000),
        log_memory_mb: raw.cluster.log_memory_mb.unwrap_or(16).min(1 << 20),
        batch_linger_us: raw.cluster.batch_linger_us.unwrap_or(1000).min(1_000_000),
        lease_reads: raw.cluster.lease_reads.unwrap_or(true),
        replication_factor: raw.cluster.replication_factor,
        vnodes: raw.cluster.vnodes.unwrap_or(128),
        read_consistency: level_setting("read_consistency", &raw.cluster.read_consistency)?,
        write_consistency: level_setting("write_consistency", &raw.cluster.write_consistency)?,
        max_hints: raw.cluster.max_hints.unwrap_or(100_000),
        max_hint_bytes: raw.cluster.max_hint_bytes.unwrap_or(64 * 1024 * 1024),
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
    let server = ServerSettings {
        max_connections: o
            .max_connections
            .or(raw.server.max_connections)
            .unwrap_or(1024),
        idle_timeout_secs: o.idle_timeout.or(raw.server.idle_timeout).unwrap_or(0),
        threads: o.threads.or(raw.server.threads).unwrap_or(0),
        max_item_size: o
            .max_item_size
            .or(raw.server.max_item_size.map(|size| size.0))
            .unwrap_or(1024 * 1024),
        memory_limit_mb: o
            .memory_limit_mb
            .or(raw.server.memory_limit_mb)
            .unwrap_or(64),
        log_level: o
            .log_level
            .clone()
            .or(raw.server.log_level)
            .unwrap_or_else(|| default_log_level(o.verbosity.unwrap_or(0)).to_string()),
        log_file: o.log_file.clone().or(raw
            .server
            .log_file
            .filter(|f| !f.is_empty())
            .map(PathBuf::from)),
        udp_port: o.udp_port.or(raw.server.udp_port).unwrap_or(0),
        enable_shutdown: o
            .enable_shutdown
            .or(raw.server.enable_shutdown)
            .unwrap_or(false),
        verbosity: o.verbosity.unwrap_or(0),
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
    let kv = KvSettings {
        kv_type,
        timeout_ms: raw.kv.timeout_ms.unwrap_or(1000),
        connections: raw.kv.connections.unwrap_or(4).max(1),
    };

    let mut peers = BTreeMap::new();
    for (name, section) in &raw.peer {
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
    if let Some(listed) = &raw.cluster.peers {
        for id in peer_ids(listed)? {
            peers
                .entry(id)
                .or_insert_with(|| PeerAddrs::default_for(id));
        }
    }

    let id = match (o.id, peers.len()) {
        (Some(id), 0) => id,
        (Some(id), _) if peers.contains_key(&id) => id,
        (Some(id), _) => {
            return Err(ConfigError::UnknownPeer {
                id,
                known: peers
                    .keys()
                    .map(u16::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
            })
        }
        (None, 0) => 0,
        (None, 1) => *peers.keys().next().expect("one peer"),
        (None, _) => {
            return Err(ConfigError::Invalid(
                "the configuration defines several peers: say which one this is with --id N".into(),
            ))
        }
    };
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
    if let Some(r) = cluster.replication_factor {
        if r == 0 || (peers.len() > 1 && r as usize > peers.len()) {
            return Err(ConfigError::Invalid(format!(
                "cluster.replication_factor must be from 1 to the number of peers ({}), not {r}",
                peers.len()
            )));
        }
    }
    // Without a config naming it, a lone peer serves where memcached would.
    let me = peers.entry(id).or_insert_with(|| PeerAddrs {
        client_addr: HostPort::new("127.0.0.1", 11211),
        ..PeerAddrs::default_for(id)
    });
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
    Ok(PeerConfig {
        id,
        cluster,
        server,
        kv,
        peers,
    })
}

/// The log level `-v`, `-vv`, `-vvv` ask for when no log level is configured: `info` (the
/// default) up to `-v`, `debug` for `-vv`, `trace` beyond.
fn default_log_level(verbosity: u32) -> &'static str {
    match verbosity {
        0 | 1 => "info",
        2 => "debug",
        _ => "trace",
    }
}

/// Item sizes accepted: 1 byte to memcached's `-I` maximum, 1 GiB (memcached's minimum,
/// 1 KiB, is not enforced: tests use smaller limits).
const ITEM_SIZE_RANGE: std::ops::RangeInclusive<usize> = 1..=1024 * 1024 * 1024;

/// Parses an item size as memcached's `-I` does: bytes, or a number with a `k`/`K` (KiB) or
/// `m`/`M` (MiB) suffix, at most 1 GiB.
pub fn parse_item_size(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let (digits, unit) = match text.char_indices().last() {
        Some((at, 'k' | 'K')) => (&text[..at], 1024),
        Some((at, 'm' | 'M')) => (&text[..at], 1024 * 1024),
        _ => (text, 1),
    };
    let size = digits
        .parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(unit))
        .ok_or_else(|| format!("'{text}' is not a size (bytes, or a number with k or m)"))?;
    if !ITEM_SIZE_RANGE.contains(&size) {
        return Err(format!(
            "item size {size} is out of range (at most 1024m, as memcached's -I)"
        ));
    }
    Ok(size)
}

/// `[server] max_item_size`: a number of bytes, or a size with memcached's suffixes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ItemSize(usize);

impl<'de> Deserialize<'de> for ItemSize {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // ini values arrive as text, environment values too.
        let text = String::deserialize(deserializer)?;
        parse_item_size(&text)
            .map(ItemSize)
            .map_err(serde::de::Error::custom)
    }
}

/// Reads a consistency level setting (`one`, `quorum`, `all`; default `one`).
fn level_setting(key: &str, value: &Option<String>) -> Result<Level, ConfigError> {
    match value {
        None => Ok(Level::One),
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
