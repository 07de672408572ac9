//! The queue's traffic between peers: Raft RPCs and forwarded client work, as opaque
//! `PeerRequest::Order` payloads over the authenticated peer transport (postcard inside).
//! Outbound here ([`Network`]); inbound in [`super::queue`], which owns the Raft handle.

use super::queue::QueueError;
use super::{Batch, NodeId, TypeConfig};
use crate::cluster::{CallError, PeerRequest, PeerResponse, Transport};
use bytes::Bytes;
use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, Unreachable};
use openraft::network::{Backoff, RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::BasicNode;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// One request of the queue's peer traffic.
#[derive(Debug, Serialize, Deserialize)]
pub enum OrderRequest {
    /// Raft AppendEntries (replication and heartbeats).
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    /// Raft RequestVote.
    Vote(VoteRequest<NodeId>),
    /// One chunk of a Raft snapshot.
    InstallSnapshot(InstallSnapshotRequest<TypeConfig>),
    /// A batch a follower forwards to the leader.
    Write(Batch),
    /// A follower asks the leader for a linearizable read index.
    ReadIndex,
}

/// The answer to an [`OrderRequest`].
#[derive(Debug, Serialize, Deserialize)]
pub enum OrderResponse {
    /// Answer to AppendEntries.
    AppendEntries(Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>),
    /// Answer to RequestVote.
    Vote(Result<VoteResponse<NodeId>, RaftError<NodeId>>),
    /// Answer to a snapshot chunk.
    InstallSnapshot(
        Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>,
    ),
    /// One result per command of the forwarded batch, in order: its log index and outcome,
    /// or why it was not applied (`NotLeader`: it was not queued, the sender may retry it).
    Write(Vec<Result<(u64, crate::store::StoreResult<crate::replicated::Outcome>), QueueError>>),
    /// The index a read must see applied.
    ReadIndex(Result<u64, QueueError>),
}

/// Encodes a message for the transport.
pub fn encode<T: Serialize>(message: &T) -> Bytes {
    Bytes::from(super::encode_exact(message).expect("queue messages always serialize"))
}

/// Sends one request to `target` and decodes its answer.
pub async fn call(
    transport: &Transport,
    target: NodeId,
    request: &OrderRequest,
    timeout: Duration,
) -> Result<OrderResponse, CallError> {
    let peer = target as u16;
    match transport
        .call(peer, PeerRequest::Order(encode(request)), timeout)
        .await?
    {
        PeerResponse::Order(bytes) => postcard::from_bytes(&bytes).map_err(|e| {
            tracing::warn!(peer, %e, "undecodable queue answer");
            CallError::Closed(peer)
        }),
        PeerResponse::Error(reason) => {
            tracing::debug!(peer, %reason, "peer refused a queue request");
            Err(CallError::Closed(peer))
        }
        _ => Err(CallError::Closed(peer)),
    }
}

/// Builds one [`Network`] per target for openraft.
pub struct NetworkFactory {
    /// The peer transport.
    pub transport: Arc<Transport>,
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = Network;

    async fn new_client(&mut self, target: NodeId, _node: &BasicNode) -> Network {
        Network {
            transport: self.transport.clone(),
            target,
        }
    }
}

/// Raft RPCs to one peer.
pub struct Network {
    transport: Arc<Transport>,
    target: NodeId,
}

type RpcResult<T, E = RaftError<NodeId>> = Result<T, RPCError<NodeId, BasicNode, E>>;

impl Network {
    async fn send(
        &self,
        request: OrderRequest,
        option: &RPCOption,
    ) -> Result<OrderResponse, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        call(&self.transport, self.target, &request, option.hard_ttl())
            .await
            .map_err(|e| match e {
                CallError::NotConnected(_) => RPCError::Unreachable(Unreachable::new(&e)),
                _ => RPCError::Network(NetworkError::new(&e)),
            })
    }
}

fn unexpected<E: std::error::Error>(what: &str) -> RPCError<NodeId, BasicNode, E> {
    RPCError::Network(NetworkError::new(&std::io::Error::other(format!(
        "unexpected answer to {what}"
    ))))
}

fn remote<E: std::error::Error>(target: NodeId, e: E) -> RPCError<NodeId, BasicNode, E> {
    RPCError::RemoteError(openraft::error::RemoteError::new(target, e))
}

impl RaftNetwork<TypeConfig> for Network {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>> {
        match self.send(OrderRequest::AppendEntries(rpc), &option).await? {
            OrderResponse::AppendEntries(answer) => answer.map_err(|e| remote(self.target, e)),
            _ => Err(unexpected("append_entries")),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>> {
        let answer = call(
            &self.transport,
            self.target,
            &OrderRequest::InstallSnapshot(rpc),
            option.hard_ttl(),
        )
        .await
        .map_err(|e| match e {
            CallError::NotConnected(_) => RPCError::Unreachable(Unreachable::new(&e)),
            _ => RPCError::Network(NetworkError::new(&e)),
        })?;
        match answer {
            OrderResponse::InstallSnapshot(answer) => answer.map_err(|e| remote(self.target, e)),
            _ => Err(unexpected("install_snapshot")),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<NodeId>> {
        match self.send(OrderRequest::Vote(rpc), &option).await? {
            OrderResponse::Vote(answer) => answer.map_err(|e| remote(self.target, e)),
            _ => Err(unexpected("vote")),
        }
    }

    fn backoff(&self) -> Backoff {
        // The transport redials on its own; retry soon so a peer that comes back (restart,
        // `recover`) is caught up quickly.
        Backoff::new(std::iter::repeat(Duration::from_millis(100)))
    }
}
