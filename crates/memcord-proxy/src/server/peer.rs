//! Starting one peer from its [`PeerConfig`]: the store, the coordinator for its mode, the
//! listener, and the server until shutdown.

use super::Settings;
use crate::clock::HybridClock;
use crate::cluster::{Membership, Transport, TransportConfig};
use crate::config::Consistency;
use crate::config::{HostPort, KvType, PeerConfig};
use crate::modes::eventual::HintLimits;
use crate::modes::{Eventual, EventualConfig, Ordered, ReadPolicy, Standalone};
use crate::order::state_machine::KeyIndex;
use crate::order::{OrderConfig, OrderedQueue};
use crate::protocol::Limits;
use crate::store::{AnyStore, MemcachedConfig, MemcachedStore, MemoryConfig, MemoryStore};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// Why a peer could not start.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// The client address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The configured address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// The ordered queue could not start (data directory, Raft).
    #[error("ordered queue: {0}")]
    Queue(#[from] crate::order::queue::StartError),
    /// The backing memcached restarted (and so lost this replica's items): the peer stops
    /// rather than serve from it; restarting the peer rebuilds the store.
    #[error(
        "backing memcached at {0} restarted and lost this replica's items; stopping so that \
         a restart rebuilds them from the cluster"
    )]
    BackendReplaced(String),
    /// The configuration names several peers but no cluster secret.
    #[error("[cluster] secret is empty: peers authenticate each other with it, set one")]
    NoSecret,
}

/// A peer bound to its client address, ready to serve.
pub struct BoundPeer {
    listener: TcpListener,
    /// The UDP socket, when `[server] udp_port` / `-U` asks for one.
    udp: Option<tokio::net::UdpSocket>,
    /// The peer-port listener, when the configuration names other peers.
    peer_listener: Option<TcpListener>,
    config: PeerConfig,
    store: Arc<AnyStore>,
    /// The largest value the store takes, enforced by the parser so that a refused value is
    /// swallowed, not buffered.
    max_value_len: usize,
}

impl BoundPeer {
    /// Checks that this build can serve `config`, connects the store and binds the listener.
    pub async fn bind(config: PeerConfig) -> Result<BoundPeer, PeerError> {
        if config.peers.len() > 1 && config.cluster.secret.is_empty() {
            return Err(PeerError::NoSecret);
        }
        let (store, max_value_len) = build_store(&config).await?;
        Self::bind_with_store(config, Arc::new(store), max_value_len).await
    }

    /// Like [`BoundPeer::bind`], over a store that already exists (a peer restarted in
    /// process keeps its items, as one in front of a memcached that kept running does).
    pub async fn bind_with_store(
        config: PeerConfig,
        store: Arc<AnyStore>,
        max_value_len: usize,
    ) -> Result<BoundPeer, PeerError> {
        let clustered = config.peers.len() > 1;
        if clustered && config.cluster.secret.is_empty() {
            return Err(PeerError::NoSecret);
        }
        let addr = config.me().client_addr.to_string();
        let listener = TcpListener::bind(&addr)
            .await
            .map_err(|source| PeerError::Bind { addr, source })?;
        let udp = match config.server.udp_port {
            0 => None,
            port => {
                let addr = HostPort::new(config.me().client_addr.host.clone(), port).to_string();
                Some(
                    tokio::net::UdpSocket::bind(&addr)
                        .await
                        .map_err(|source| PeerError::Bind { addr, source })?,
                )
            }
        };
        let peer_listener = if clustered {
            let addr = config.me().peer_addr.to_string();
            Some(
                TcpListener::bind(&addr)
                    .await
                    .map_err(|source| PeerError::Bind { addr, source })?,
            )
        } else {
            None
        };
        Ok(BoundPeer {
            listener,
            udp,
            peer_listener,
            config,
            store,
            max_value_len,
        })
    }

    /// The peer's store (tests look at what one peer holds).
    pub fn store(&self) -> Arc<AnyStore> {
        self.store.clone()
    }

    /// The address actually bound (the real port when the config asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// The mode name the peer will report.
    pub fn mode(&self) -> &'static str {
        if self.peer_listener.is_some() {
            self.config.cluster.consistency.name()
        } else {
            "standalone"
        }
    }

    /// The UDP address bound, when the peer serves UDP.
    pub fn udp_addr(&self) -> Option<SocketAddr> {
        self.udp
            .as_ref()
            .and_then(|socket| socket.local_addr().ok())
    }

    /// The line printed on stdout once the peer accepts clients. Tests and scripts read the
    /// address from it, so its shape is part of the command-line contract; a UDP listener
    /// adds `, udp: ADDR` inside the parentheses.
    pub fn ready_line(&self) -> String {
        let udp = self
            .udp_addr()
            .map(|addr| format!(", udp: {addr}"))
            .unwrap_or_default();
        format!(
            "memcord peer {} listening on {} (kv: {}, mode: {}{udp})",
            self.config.id,
            self.local_addr(),
            self.config.kv.kv_type,
            self.mode()
        )
    }

    /// Serves until `shutdown` completes and every connection has finished. An ordered mode
    /// opens its queue's data directory first, and fails if it cannot.
    pub async fn serve(self, shutdown: impl Future) -> Result<(), PeerError> {
        let clock = Arc::new(HybridClock::new(self.config.id));
        let mut settings = server_settings(&self.config);
        settings.limits.max_value_len = self.max_value_len;
        let Some(peer_listener) = self.peer_listener else {
            // A cluster of one: every mode is the same thing, a drop-in memcached.
            let coordinator = Arc::new(Standalone::new(self.store.clone(), clock));
            super::run_with_udp(self.listener, self.udp, coordinator, settings, shutdown).await;
            return Ok(());
        };
        // A replica whose backend restarted empty stops serving at once (fail-stop).
        let replaced = self.store.replaced();
        let shutdown = async {
            match &replaced {
                Some(token) => tokio::select! {
                    _ = shutdown => {}
                    _ = token.cancelled() => {}
                },
                None => {
                    shutdown.await;
                }
            }
        };
        let transport = cluster_transport(&self.config, clock.clone());
        let admin = self.config.cluster.admin_commands;
        match self.config.cluster.consistency {
            Consistency::Eventual => {
                let coordinator = Arc::new(Eventual::start(
                    self.store.clone(),
                    clock,
                    transport.clone(),
                    peer_listener,
                    eventual_config(&self.config),
                ));
                super::run_with_udp(self.listener, self.udp, coordinator, settings, shutdown).await;
            }
            mode @ (Consistency::Linearizable | Consistency::Sequential) => {
                let queue =
                    start_queue(&self.config, self.store.clone(), transport.clone()).await?;
                let (store, listener, udp) = (self.store.clone(), self.listener, self.udp);
                let policy = if mode == Consistency::Linearizable {
                    crate::modes::linearizable::read_policy()
                } else {
                    ReadPolicy::Sequential
                };
                let coordinator = Arc::new(Ordered::start(
                    store,
                    clock,
                    queue.clone(),
                    transport.clone(),
                    peer_listener,
                    policy,
                    admin,
                ));
                super::run_with_udp(listener, udp, coordinator, settings, shutdown).await;
                queue.shutdown().await;
            }
        }
        transport.shutdown();
        if replaced.is_some_and(|token| token.is_cancelled()) {
            return Err(PeerError::BackendReplaced(
                self.config.me().kv_addr.to_string(),
            ));
        }
        Ok(())
    }
}

/// Opens the ordered queue of a clustered peer in `data_dir/peer-N`.
async fn start_queue(
    config: &PeerConfig,
    store: Arc<AnyStore>,
    transport: Arc<Transport>,
) -> Result<Arc<OrderedQueue>, PeerError> {
    let cluster = &config.cluster;
    let members = config
        .peers
        .iter()
        .map(|(id, addrs)| {
            (
                *id as u64,
                openraft::BasicNode::new(addrs.peer_addr.to_string()),
            )
        })
        .collect();
    let mut order = OrderConfig::new(cluster.data_dir.join(format!("peer-{}", config.id)));
    order.fsync = cluster.fsync;
    order.quorum_timeout = Duration::from_millis(cluster.quorum_timeout_ms.max(1));
    order.heartbeat = Duration::from_millis(cluster.heartbeat_ms.max(1));
    order.election_timeout = Duration::from_millis(cluster.failure_timeout_ms.max(10));
    order.snapshot_logs = cluster.snapshot_logs;
    order.log_memory = cluster.log_memory_mb << 20;
    order.batch_linger = Duration::from_micros(cluster.batch_linger_us);
    order.lease_reads = cluster.lease_reads;
    if cluster.consistency == Consistency::Linearizable
        && crate::modes::linearizable::unsafe_local_reads()
    {
        // The broken build lags on followers for certain, not by the luck of a race.
        order.follower_apply_lag = crate::modes::linearizable::UNSAFE_FOLLOWER_LAG;
    }
    // memcached cannot list its keys exactly: the state machine keeps its own index.
    order.key_index = match *store {
        AnyStore::Memory(_) => KeyIndex::Store,
        _ => KeyIndex::Tracked,
    };
    Ok(OrderedQueue::start(config.id as u64, members, store, transport, order).await?)
}

/// The peer transport (with its membership table) for a clustered peer.
fn cluster_transport(config: &PeerConfig, clock: Arc<HybridClock>) -> Arc<Transport> {
    let cluster = &config.cluster;
    let others: Vec<(u16, String)> = config
        .peers
        .iter()
        .filter(|(id, _)| **id != config.id)
        .map(|(id, addrs)| (*id, addrs.peer_addr.to_string()))
        .collect();
    let failure_timeout = Duration::from_millis(cluster.failure_timeout_ms.max(1));
    let membership = Arc::new(Membership::new(others.clone(), failure_timeout));
    Transport::new(
        TransportConfig {
            me: config.id,
            peers: others,
            secret: cluster.secret.clone().into_bytes(),
            mode: cluster.consistency.name().to_string(),
            max_frame: 64 * 1024 * 1024,
            queue_depth: 4096,
            heartbeat: Duration::from_millis(cluster.heartbeat_ms.max(1)),
            connect_timeout: failure_timeout.max(Duration::from_millis(500)),
        },
        clock,
        membership,
    )
}

/// The eventual mode's settings from a peer's configuration.
fn eventual_config(config: &PeerConfig) -> EventualConfig {
    let cluster = &config.cluster;
    EventualConfig {
        sync_interval: Duration::from_millis(cluster.sync_interval_ms.max(1)),
        tombstone_ttl: Duration::from_secs(cluster.tombstone_ttl_secs),
        join_window: Duration::from_millis(cluster.failure_timeout_ms.max(1) * 2),
        admin_commands: cluster.admin_commands,
        push: cluster.push,
        replication: cluster.replication_factor,
        vnodes: cluster.vnodes,
        read_level: cluster.read_consistency,
        write_level: cluster.write_consistency,
        level_timeout: Duration::from_millis(cluster.quorum_timeout_ms.max(1)),
        hints_dir: Some(
            cluster
                .data_dir
                .join(format!("peer-{}", config.id))
                .join("hints"),
        ),
        hint_limits: HintLimits {
            max_per_peer: cluster.max_hints,
            max_bytes: cluster.max_hint_bytes,
        },
        ..EventualConfig::default()
    }
}

/// The server settings and the extra `stats` lines derived from a peer's configuration.
pub fn server_settings(config: &PeerConfig) -> Settings {
    let server = &config.server;
    let limits = Limits {
        max_value_len: server.max_item_size,
        ..Limits::default()
    };
    Settings {
        limits,
        max_connections: server.max_connections,
        idle_timeout: (server.idle_timeout_secs > 0)
            .then(|| Duration::from_secs(server.idle_timeout_secs)),
        info: vec![
            ("memcord_peer_id".into(), config.id.to_string()),
            ("memcord_kv_type".into(), config.kv.kv_type.to_string()),
            (
                "memcord_consistency".into(),
                config.cluster.consistency.to_string(),
            ),
            ("memcord_peers".into(), config.peers.len().to_string()),
            ("memcord_version".into(), env!("CARGO_PKG_VERSION").into()),
        ],
        settings: config.settings_lines(),
        enable_shutdown: server.enable_shutdown,
        udp_port: None,
        verbosity: server.verbosity,
    }
}

/// The store `config` asks for, and the largest value it takes.
async fn build_store(config: &PeerConfig) -> Result<(AnyStore, usize), PeerError> {
    let max_item_size = config.server.max_item_size;
    match config.kv.kv_type {
        KvType::Memory => {
            let store = MemoryStore::new(MemoryConfig {
                limit_bytes: (config.server.memory_limit_mb as usize).saturating_mul(1024 * 1024),
                max_item_size,
                ..MemoryConfig::default()
            });
            Ok((AnyStore::Memory(store), max_item_size))
        }
        KvType::Memcached => {
            let addr = config.me().kv_addr.to_string();
            let mut backend = MemcachedConfig::new(addr.clone());
            // A replica must notice a backend that restarted empty (see `instance`); a cache of
            // one is allowed to lose items like any memcached.
            backend.pin_instance = config.peers.len() > 1;
            backend.pool_size = config.kv.connections;
            backend.request_timeout = Duration::from_millis(config.kv.timeout_ms.max(1));
            // The envelope and memcached's own item header must fit the backend's `-I`
            // (1 MiB by default): never promise clients more than that.
            backend.max_item_size = backend.max_item_size.min(max_item_size);
            let store = match MemcachedStore::connect(backend.clone()).await {
                Ok(store) => store,
                Err(err) => {
                    // A backend that is down now may be up in a moment (a restart): serve
                    // SERVER_ERROR until it is, rather than refusing to start.
                    tracing::warn!(%addr, %err, "backing memcached not reachable yet");
                    MemcachedStore::new(backend)
                }
            };
            let max = store.max_item_size();
            Ok((AnyStore::Memcached(store), max))
        }
    }
}
