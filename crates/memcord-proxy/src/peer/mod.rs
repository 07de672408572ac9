//! A peer composed from its [`PeerConfig`]: the store, the coordinator for its mode, the
//! transport and queue of a clustered peer, the listeners, and the server until shutdown.
//!
//! This is the one place that knows every module of a peer; [`settings`] is the one
//! translation of the configuration into each module's own config. It is also reachable as
//! `server::peer`.

pub mod settings;

use crate::clock::HybridClock;
use crate::cluster::{Membership, Transport};
use crate::config::{Consistency, HostPort, KvType, PeerConfig};
use crate::modes::{Eventual, Ordered, Standalone};
use crate::order::state_machine::KeyIndex;
use crate::order::OrderedQueue;
use crate::server::run_with_udp;
use crate::store::{AnyStore, MemcachedStore, MemoryStore};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

/// Why a peer could not start.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// The client address could not be bound.
    #[error("cannot listen on {addr}: {error}")]
    Bind {
        /// The configured address.
        addr: String,
        /// Why (in the message, not a `source`: printed once).
        error: std::io::Error,
    },
    /// The ordered queue could not start (data directory, Raft).
    #[error("ordered queue: {0}")]
    Queue(crate::order::queue::StartError),
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
            .map_err(|error| PeerError::Bind { addr, error })?;
        let udp = match config.server.udp_port {
            0 => None,
            port => {
                let addr = HostPort::new(config.me().client_addr.host.clone(), port).to_string();
                Some(
                    tokio::net::UdpSocket::bind(&addr)
                        .await
                        .map_err(|error| PeerError::Bind { addr, error })?,
                )
            }
        };
        let peer_listener = if clustered {
            let addr = config.me().peer_addr.to_string();
            Some(
                TcpListener::bind(&addr)
                    .await
                    .map_err(|error| PeerError::Bind { addr, error })?,
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
        let mut server = settings::server_settings(&self.config);
        server.limits.max_value_len = self.max_value_len;
        let Some(peer_listener) = self.peer_listener else {
            // A cluster of one: every mode is the same thing, a drop-in memcached.
            let coordinator = Arc::new(Standalone::new(self.store.clone(), clock));
            run_with_udp(self.listener, self.udp, coordinator, server, shutdown).await;
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
                    settings::eventual_config(&self.config),
                ));
                run_with_udp(self.listener, self.udp, coordinator, server, shutdown).await;
            }
            Consistency::Linearizable | Consistency::Sequential => {
                let queue =
                    start_queue(&self.config, self.store.clone(), transport.clone()).await?;
                let (store, listener, udp) = (self.store.clone(), self.listener, self.udp);
                let policy = settings::read_policy(&self.config).expect("an ordered mode");
                #[cfg(feature = "fault-injection")]
                if policy == crate::modes::ReadPolicy::UnsafeLocal {
                    crate::faults::log_unsafe_local_reads();
                }
                let coordinator = Arc::new(Ordered::start(
                    store,
                    clock,
                    queue.clone(),
                    transport.clone(),
                    peer_listener,
                    policy,
                    admin,
                ));
                run_with_udp(listener, udp, coordinator, server, shutdown).await;
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

impl From<crate::order::queue::StartError> for PeerError {
    fn from(err: crate::order::queue::StartError) -> Self {
        PeerError::Queue(err)
    }
}

/// Opens the ordered queue of a clustered peer in `data_dir/peer-N`.
async fn start_queue(
    config: &PeerConfig,
    store: Arc<AnyStore>,
    transport: Arc<Transport>,
) -> Result<Arc<OrderedQueue>, PeerError> {
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
    // memcached cannot list its keys exactly: the state machine keeps its own index.
    let key_index = match *store {
        AnyStore::Memory(_) => KeyIndex::Store,
        _ => KeyIndex::Tracked,
    };
    let order = settings::order_config(config, key_index);
    Ok(OrderedQueue::start(config.id as u64, members, store, transport, order).await?)
}

/// The peer transport (with its membership table) for a clustered peer.
fn cluster_transport(config: &PeerConfig, clock: Arc<HybridClock>) -> Arc<Transport> {
    let membership = Arc::new(Membership::new(
        settings::other_peers(config),
        settings::failure_timeout(config),
    ));
    Transport::new(settings::transport_config(config), clock, membership)
}

/// The store `config` asks for, and the largest value it takes.
async fn build_store(config: &PeerConfig) -> Result<(AnyStore, usize), PeerError> {
    match config.kv.kv_type {
        KvType::Memory => {
            let store = MemoryStore::new(settings::memory_config(config));
            Ok((AnyStore::Memory(store), config.server.max_item_size))
        }
        KvType::Memcached => {
            let backend = settings::memcached_config(config);
            let store = match MemcachedStore::connect(backend.clone()).await {
                Ok(store) => store,
                Err(err) => {
                    // A backend that is down now may be up in a moment (a restart): serve
                    // SERVER_ERROR until it is, rather than refusing to start.
                    tracing::warn!(addr = %backend.addr, %err, "backing memcached not reachable yet");
                    MemcachedStore::new(backend)
                }
            };
            let max = store.max_item_size();
            Ok((AnyStore::Memcached(store), max))
        }
    }
}
