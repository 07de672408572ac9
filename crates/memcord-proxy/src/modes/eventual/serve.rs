//! Serving a client's request: the level it asks for, a read, a meta read that may become a
//! write, a write at its level; fault simulation; the [`Coordinator`] impl.

use super::levels::{may_carry_prefix, meta_level, strip_level_prefixes};
use super::{sync, DynamoError, Eventual, PeerState, Shared};
use crate::cluster::LogEntry;
use crate::modes::translate::{
    command_for, escalated_response, meta_read, response_for, values_reply, MetaRead, ReadOrWrite,
};
use crate::modes::{Coordinator, Session};
use crate::protocol::{Level, Request, Response};
use crate::replicated::{Command, Outcome};
use crate::store::Store;
use std::time::Instant;

/// The levels one request is served at.
#[derive(Debug, Clone, Copy)]
struct Levels {
    read: Level,
    write: Level,
}

impl<S: Store> Shared<S> {
    /// Serves one client request.
    pub(super) async fn handle(&self, session: &mut Session, mut request: Request) -> Response {
        if let Some(reply) = self.connection_word(session, &request) {
            return reply;
        }
        match self.state() {
            PeerState::Serving => {}
            PeerState::CatchingUp => return Response::ServerError("catching up".into()),
            PeerState::Failed => return Response::ServerError("peer failed".into()),
        }
        // A level prefix on a key (`@quorum:key`) beats the connection's level, which beats
        // the cluster's default. Replies name keys as the client sent them.
        // The request as sent is kept only when a key may carry a prefix (no copy otherwise).
        let original = may_carry_prefix(&request).then(|| request.clone());
        let named = match original {
            Some(_) => strip_level_prefixes(&mut request),
            None => None,
        }
        .or_else(|| meta_level(&request))
        .or(session.level);
        let levels = Levels {
            read: named.unwrap_or(self.config.read_level),
            write: named.unwrap_or(self.config.write_level),
        };
        let command = command_for(&request, &self.replica.clock);
        let original = original.as_ref().unwrap_or(&request);
        match command {
            ReadOrWrite::Read { keys, with_cas } => {
                match self.read_keys(&keys, levels.read).await {
                    Ok(items) => match original {
                        Request::Get { keys: shown, .. } => values_reply(shown, items, with_cas),
                        _ => values_reply(&keys, items, with_cas),
                    },
                    Err(err) => Response::ServerError(err.to_string()),
                }
            }
            ReadOrWrite::MetaRead { key, bump } => {
                self.serve_meta_read(original, key, bump, levels).await
            }
            ReadOrWrite::Write(command) => match self.write(command, levels.write).await {
                Ok(outcome) => response_for(original, Ok(outcome)),
                Err(DynamoError::Store(err)) => response_for(original, Err(err)),
                Err(err) => Response::ServerError(err.to_string()),
            },
            ReadOrWrite::NotData => Response::Error,
        }
    }

    /// The words a connection says to this mode itself: `fail`, `recover`, `consistency`.
    fn connection_word(&self, session: &mut Session, request: &Request) -> Option<Response> {
        match request {
            Request::Fail | Request::Recover if !self.config.admin_commands => {
                Some(Response::Error)
            }
            Request::Fail => Some(self.fail()),
            Request::Recover => Some(self.recover()),
            Request::Consistency(level) => {
                session.level = Some(*level);
                Some(Response::Ok)
            }
            _ => None,
        }
    }

    /// A meta read at the read level; a write at the write level when it must become one.
    async fn serve_meta_read(
        &self,
        request: &Request,
        key: bytes::Bytes,
        bump: bool,
        levels: Levels,
    ) -> Response {
        let found = match self.read_meta(&key, levels.read, bump).await {
            Ok(found) => found,
            Err(err) => return Response::ServerError(err.to_string()),
        };
        let seen = found.as_ref().map(|(_, access)| *access);
        match meta_read(request, found, &self.replica.clock) {
            MetaRead::Answer(reply) => reply,
            MetaRead::Escalate(command) => match self.write(command, levels.write).await {
                Ok(outcome) => escalated_response(request, Ok(outcome), seen),
                Err(DynamoError::Store(err)) => escalated_response(request, Err(err), seen),
                Err(err) => Response::ServerError(err.to_string()),
            },
        }
    }

    pub(super) async fn write(
        &self,
        command: Command,
        level: Level,
    ) -> Result<Outcome, DynamoError> {
        match command {
            Command::FlushAll { cutoff, .. } => {
                self.replica.log.record_flush(cutoff);
                self.replica.store.flush_all(cutoff).await?;
                self.push(LogEntry::Flush { cutoff });
                Ok(Outcome::Flushed)
            }
            Command::Gat {
                keys,
                expires_at,
                version,
            } => {
                let mut items = Vec::with_capacity(keys.len());
                for key in keys {
                    let one = Command::Gat {
                        keys: vec![key.clone()],
                        expires_at,
                        version,
                    };
                    match self.write_key(key, one, level).await? {
                        Outcome::Items(mut got) => items.push(got.pop().flatten()),
                        _ => items.push(None),
                    }
                }
                Ok(Outcome::Items(items))
            }
            Command::Get { keys } => Ok(Outcome::Items(self.read_keys(&keys, level).await?)),
            Command::Write { ref key, .. }
            | Command::Delete { ref key, .. }
            | Command::Arith { ref key, .. }
            | Command::Touch { ref key, .. }
            | Command::MetaGet { ref key, .. }
            | Command::MetaSet { ref key, .. }
            | Command::MetaDelete { ref key, .. }
            | Command::MetaArith { ref key, .. } => {
                let key = key.clone();
                self.write_key(key, command, level).await
            }
        }
    }

    pub(super) fn fail(&self) -> Response {
        if self.state() != PeerState::Failed {
            tracing::warn!("fault simulation: this peer is now failed (cut off from its peers)");
            *self.status.failed_at.lock() = Some(Instant::now());
            self.set_state(PeerState::Failed);
            self.transport.fail();
        }
        Response::Ok
    }

    pub(super) fn recover(&self) -> Response {
        if self.state() == PeerState::Failed {
            tracing::info!("fault simulation: recovering, catching up before serving");
            self.set_state(PeerState::CatchingUp);
            self.transport.recover();
            // The catch-up task is started by the coordinator, which holds the Arc.
        }
        Response::Ok
    }
}

impl<S: Store> Coordinator for Eventual<S> {
    async fn handle(&self, session: &mut Session, request: Request) -> Response {
        let recovering = matches!(request, Request::Recover)
            && self.shared.config.admin_commands
            && self.state() == PeerState::Failed;
        let response = self.shared.handle(session, request).await;
        if recovering {
            tokio::spawn(sync::catch_up(self.shared.clone(), false));
        }
        response
    }

    fn mode(&self) -> &'static str {
        "eventual"
    }

    async fn stats(&self) -> Vec<(String, String)> {
        let mut lines =
            crate::modes::standalone::store_stat_lines(self.shared.replica.store.stats().await);
        lines.push(("memcord_peer_state".into(), self.state().name().into()));
        lines
    }

    async fn stats_group(&self, group: &str) -> Option<Vec<(String, String)>> {
        (group == "cluster").then(|| sync::cluster_stats(&self.shared))
    }

    async fn admin(&self, request: crate::protocol::StoreAdmin) -> Response {
        crate::modes::store_admin(&*self.shared.replica.store, &request).await
    }
}
