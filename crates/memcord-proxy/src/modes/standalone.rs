//! A cluster of one: every request is applied to the local store at once.

use super::translate::{
    command_for, escalated_response, meta_read, response_for, values_reply, MetaRead, ReadOrWrite,
};
use super::{Coordinator, Session};
use crate::clock::HybridClock;
use crate::protocol::{Request, Response};
use crate::replicated::apply;
use crate::store::{Store, StoreStats};
use std::sync::Arc;

/// The coordinator of a single peer with no others: a drop-in memcached.
pub struct Standalone<S: Store> {
    store: Arc<S>,
    clock: Arc<HybridClock>,
}

impl<S: Store> Standalone<S> {
    /// Serves from `store`, stamping writes with `clock`.
    pub fn new(store: Arc<S>, clock: Arc<HybridClock>) -> Self {
        Standalone { store, clock }
    }
}

impl<S: Store> Coordinator for Standalone<S> {
    async fn handle(&self, _session: &mut Session, request: Request) -> Response {
        // `gat <exptime>` with no keys is legal (memcached answers a bare END); a backend
        // memcached would take a keyless line for an unknown command, so no store sees it.
        if let Request::Get { keys, .. } | Request::Gat { keys, .. } = &request {
            if keys.is_empty() {
                return Response::Values(Vec::new());
            }
        }
        if let Request::Consistency(_) = request {
            // The one peer is every key's only replica: every level is met by it.
            return Response::Ok;
        }
        match command_for(&request, &self.clock) {
            ReadOrWrite::Read { keys, with_cas } => match self.store.get(&keys).await {
                Ok(items) => values_reply(&keys, items, with_cas),
                Err(err) => Response::ServerError(err.to_string()),
            },
            ReadOrWrite::MetaRead { key, bump } => {
                let found = match self.store.peek(&key, bump).await {
                    Ok(found) => found,
                    Err(err) => return Response::ServerError(err.to_string()),
                };
                let seen = found.as_ref().map(|(_, access)| *access);
                match meta_read(&request, found, &self.clock) {
                    MetaRead::Answer(reply) => reply,
                    MetaRead::Escalate(command) => {
                        let outcome = apply(self.store.as_ref(), command).await;
                        escalated_response(&request, outcome, seen)
                    }
                }
            }
            ReadOrWrite::Write(command) => {
                let outcome = apply(self.store.as_ref(), command).await;
                response_for(&request, outcome)
            }
            ReadOrWrite::NotData => Response::Error,
        }
    }

    fn mode(&self) -> &'static str {
        "standalone"
    }

    async fn stats(&self) -> Vec<(String, String)> {
        store_stat_lines(self.store.stats().await)
    }

    async fn stats_group(&self, _group: &str) -> Option<Vec<(String, String)>> {
        None
    }

    async fn admin(&self, request: crate::protocol::StoreAdmin) -> Response {
        super::store_admin(&*self.store, &request).await
    }
}

/// The store's counters as memcached-named `STAT` lines.
pub fn store_stat_lines(stats: StoreStats) -> Vec<(String, String)> {
    vec![
        ("curr_items".into(), stats.curr_items.to_string()),
        ("bytes".into(), stats.bytes.to_string()),
        ("evictions".into(), stats.evictions.to_string()),
        ("reclaimed".into(), stats.reclaimed.to_string()),
        ("limit_maxbytes".into(), stats.limit_maxbytes.to_string()),
    ]
}
