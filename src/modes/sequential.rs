//! The sequential mode: writes go through the ordered queue like the linearizable mode's; a
//! read is served from the local store at once, once the store has applied this connection's
//! last write, with no round trip to the leader. Each connection sees its own writes in
//! program order; reads may lag other clients' writes.

use super::ordered::{Ordered, ReadPolicy};
use super::{Coordinator, Session};
use crate::clock::HybridClock;
use crate::cluster::Transport;
use crate::order::OrderedQueue;
use crate::protocol::{Request, Response};
use crate::store::Store;
use std::sync::Arc;

/// The sequential-mode coordinator of one peer.
pub struct Sequential<S: Store> {
    inner: Ordered<S>,
}

impl<S: Store> Sequential<S> {
    /// Wires the coordinator to a started queue and starts the peer transport on `listener`.
    pub fn start(
        store: Arc<S>,
        clock: Arc<HybridClock>,
        queue: Arc<OrderedQueue>,
        transport: Arc<Transport>,
        listener: tokio::net::TcpListener,
        admin_commands: bool,
    ) -> Self {
        Sequential {
            inner: Ordered::start(
                store,
                clock,
                queue,
                transport,
                listener,
                ReadPolicy::Sequential,
                admin_commands,
            ),
        }
    }

    /// The ordered queue (for status and tests).
    pub fn queue(&self) -> &Arc<OrderedQueue> {
        self.inner.queue()
    }
}

impl<S: Store> Coordinator for Sequential<S> {
    async fn handle(&self, session: &mut Session, request: Request) -> Response {
        self.inner.handle(session, request).await
    }

    fn mode(&self) -> &'static str {
        ReadPolicy::Sequential.mode()
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
