//! The linearizable mode: every write goes through the ordered queue and is answered once
//! applied; a read is served from the local store once it has applied a read index that the
//! leader confirmed with a quorum after the read began (openraft's read-index path), so it
//! sees every write acknowledged before it started, through any peer.
//!
//! **Test-only switch:** with the environment variable [`UNSAFE_LOCAL_READS_ENV`]
//! (`MEMCORD_UNSAFE_LOCAL_READS=1`) set when the peer starts, reads skip the read index and
//! are answered from the local store at once. That breaks linearizability (a cut-off or
//! lagging peer answers stale values) and exists only so the tests can prove that
//! `memcord check` catches a broken build. Never set it in a deployment; the peer logs an
//! error when it is on.

use super::ordered::{Ordered, ReadPolicy};
use super::{Coordinator, Session};
use crate::clock::HybridClock;
use crate::cluster::Transport;
use crate::order::OrderedQueue;
use crate::protocol::{Request, Response};
use crate::store::Store;
use std::sync::Arc;

/// The test-only variable that breaks linearizable reads on purpose (see the module docs).
pub const UNSAFE_LOCAL_READS_ENV: &str = "MEMCORD_UNSAFE_LOCAL_READS";

/// Whether the test-only unsafe local reads are switched on.
fn unsafe_local_reads() -> bool {
    std::env::var(UNSAFE_LOCAL_READS_ENV).is_ok_and(|v| !v.is_empty() && v != "0")
}

/// The linearizable-mode coordinator of one peer.
pub struct Linearizable<S: Store> {
    inner: Ordered<S>,
}

impl<S: Store> Linearizable<S> {
    /// Wires the coordinator to a started queue and starts the peer transport on `listener`.
    pub fn start(
        store: Arc<S>,
        clock: Arc<HybridClock>,
        queue: Arc<OrderedQueue>,
        transport: Arc<Transport>,
        listener: tokio::net::TcpListener,
        admin_commands: bool,
    ) -> Self {
        let policy = if unsafe_local_reads() {
            tracing::error!(
                "{UNSAFE_LOCAL_READS_ENV} is set: linearizable reads are served from the local \
                 store WITHOUT a read index; this peer is deliberately NOT linearizable \
                 (test-only switch)"
            );
            ReadPolicy::UnsafeLocal
        } else {
            ReadPolicy::Linearizable
        };
        Linearizable {
            inner: Ordered::start(
                store,
                clock,
                queue,
                transport,
                listener,
                policy,
                admin_commands,
            ),
        }
    }

    /// The ordered queue (for status and tests).
    pub fn queue(&self) -> &Arc<OrderedQueue> {
        self.inner.queue()
    }
}

impl<S: Store> Coordinator for Linearizable<S> {
    async fn handle(&self, session: &mut Session, request: Request) -> Response {
        self.inner.handle(session, request).await
    }

    fn mode(&self) -> &'static str {
        ReadPolicy::Linearizable.mode()
    }

    async fn stats(&self) -> Vec<(String, String)> {
        self.inner.stats().await
    }

    async fn stats_group(&self, group: &str) -> Option<Vec<(String, String)>> {
        if group == "cluster" {
            Some(self.inner.cluster_stats().await)
        } else {
            None
        }
    }
}
