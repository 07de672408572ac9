//! Coordinators: one per consistency mode. A coordinator takes a [`Request`] and gives a
//! [`Response`]; it decides where the request goes and when it is answered. It knows nothing of
//! sockets or bytes.

pub mod eventual;
pub mod linearizable;
pub mod ordered;
mod standalone;
mod translate;

pub use eventual::{Eventual, EventualConfig};
pub use ordered::{Ordered, ReadPolicy};
pub use standalone::Standalone;
pub use translate::{
    command_for, escalated_response, meta_read, response_for, MetaRead, ReadOrWrite,
};

use crate::protocol::{Level, Request, Response, StoreAdmin};
use std::future::Future;

/// Per-connection state a coordinator may keep (program order for the sequential mode).
#[derive(Debug, Default, Clone)]
pub struct Session {
    /// A process-unique id for the client connection.
    pub id: u64,
    /// Position of this connection's last acknowledged write in the mode's order, if any.
    pub last_write: Option<u64>,
    /// The consistency level this connection chose with `consistency <level>` (eventual
    /// mode); `None` uses the cluster's defaults.
    pub level: Option<Level>,
}

impl Session {
    /// A fresh session for connection `id`.
    pub fn new(id: u64) -> Session {
        Session {
            id,
            last_write: None,
            level: None,
        }
    }
}

/// Decides how one peer serves data requests under one consistency mode.
pub trait Coordinator: Send + Sync + 'static {
    /// Serves one data request (get-family, storage, delete, arithmetic, touch, flush_all).
    /// Connection-level requests (version, verbosity, stats, quit) never reach it. The reply is
    /// given as if `noreply` were absent; the connection layer suppresses it for `noreply`
    /// requests (except `SERVER_ERROR`, as memcached does) after counting it in `stats`.
    fn handle(
        &self,
        session: &mut Session,
        request: Request,
    ) -> impl Future<Output = Response> + Send;

    /// Whether `request` may be served together with the writes pipelined around it on the
    /// same connection ([`Coordinator::handle_batch`]): a mode whose writes each pay a round
    /// trip lets a pipeline of them share one.
    fn batches(&self, _request: &Request) -> bool {
        false
    }

    /// Serves requests that arrived pipelined on one connection, each one that
    /// [`Coordinator::batches`], in order: the replies in the same order. The default serves
    /// them one by one.
    fn handle_batch(
        &self,
        session: &mut Session,
        requests: Vec<Request>,
    ) -> impl Future<Output = Vec<Response>> + Send {
        async move {
            let mut replies = Vec::with_capacity(requests.len());
            for request in requests {
                replies.push(self.handle(session, request).await);
            }
            replies
        }
    }

    /// The mode's name as configured (`standalone`, `eventual`, …).
    fn mode(&self) -> &'static str;

    /// Extra `STAT` lines for the plain `stats` reply (store counters, mode counters).
    fn stats(&self) -> impl Future<Output = Vec<(String, String)>> + Send;

    /// Lines for `stats <group>`, or `None` if the group is unknown to this coordinator.
    fn stats_group(
        &self,
        group: &str,
    ) -> impl Future<Output = Option<Vec<(String, String)>>> + Send;

    /// Answers an admin request about this peer's own store (`stats items`, `cache_memlimit`,
    /// `lru_crawler metadump`, …): a per-replica matter, never replicated. A coordinator
    /// without a store answers `ERROR`.
    fn admin(&self, request: StoreAdmin) -> impl Future<Output = Response> + Send {
        let _ = request;
        async { Response::Error }
    }
}

/// A store's answer to an admin request, its failure as `SERVER_ERROR`.
pub async fn store_admin<S: crate::store::Store>(store: &S, request: &StoreAdmin) -> Response {
    match store.admin(request).await {
        Ok(reply) => reply,
        Err(err) => Response::ServerError(err.to_string()),
    }
}
