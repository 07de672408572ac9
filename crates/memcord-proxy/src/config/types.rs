//! The typed configuration of one peer, and the one home of every setting's default: the
//! `Default` of each section struct is what an empty file, no variables and no flags give
//! (README's Configuration reference lists the same values; `tests/docs.rs` checks it), and
//! [`PeerConfig::default`] is the whole lone peer.

use super::ConfigError;
use crate::protocol::Level;
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

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

    /// Peer `id` when no file names it: clients on memcached's `127.0.0.1:11211`, the rest
    /// as [`PeerAddrs::default_for`].
    pub fn lone(id: u16) -> PeerAddrs {
        PeerAddrs {
            client_addr: HostPort::new("127.0.0.1", 11211),
            ..PeerAddrs::default_for(id)
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
}

/// A peer started without a file: peer 0, alone, where memcached would serve.
impl Default for PeerConfig {
    fn default() -> Self {
        PeerConfig {
            id: 0,
            cluster: ClusterSettings::default(),
            server: ServerSettings::default(),
            kv: KvSettings::default(),
            peers: BTreeMap::from([(0, PeerAddrs::lone(0))]),
        }
    }
}

/// `[cluster]`'s defaults.
impl Default for ClusterSettings {
    fn default() -> Self {
        ClusterSettings {
            consistency: Consistency::default(),
            heartbeat_ms: 200,
            failure_timeout_ms: 1000,
            sync_interval_ms: 500,
            secret: String::new(),
            tombstone_ttl_secs: 3600,
            admin_commands: true,
            push: true,
            data_dir: PathBuf::from("data"),
            fsync: true,
            quorum_timeout_ms: 2000,
            snapshot_logs: 5000,
            log_memory_mb: 16,
            batch_linger_us: 1000,
            lease_reads: true,
            replication_factor: None,
            vnodes: 128,
            read_consistency: Level::One,
            write_consistency: Level::One,
            max_hints: 100_000,
            max_hint_bytes: 64 * 1024 * 1024,
        }
    }
}

/// `[server]`'s defaults: memcached's (`-c 1024`, `-I 1m`, `-m 64`, no UDP).
impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            max_connections: 1024,
            idle_timeout_secs: 0,
            threads: 0,
            max_item_size: 1024 * 1024,
            memory_limit_mb: 64,
            log_level: "info".to_string(),
            log_file: None,
            udp_port: 0,
            enable_shutdown: false,
            verbosity: 0,
        }
    }
}

/// `[kv]`'s defaults: the embedded store (the memcached ones apply once `type = memcached`).
impl Default for KvSettings {
    fn default() -> Self {
        KvSettings {
            kv_type: KvType::default(),
            timeout_ms: 1000,
            connections: 4,
        }
    }
}
