//! The sending half: [`PeerNetwork`] is openraft's network factory for one group, and
//! [`PeerClient`] sends that group's messages to one target over the shared [`Peers`].
//!
//! Routing: votes, pre-votes and leader transfers take the peer's control channel; an
//! AppendEntries without entries (a heartbeat) joins the peer's heartbeat batch; appends with
//! entries take the data channel (a pipelined `AppendStream` for replication, unary `Append`
//! otherwise); snapshots take the data channel.
//!
//! Deadlines: a call gives up at openraft's soft deadline (`RPCOption::soft_ttl`, before the
//! hard one) or at [`super::TransportConfig::request_timeout_ms`], whichever is sooner, and
//! fails as `Timeout`. Errors are classified as [`super::error`] says.

use super::append_stream;
use super::convert::{FromWire, ToWire};
use super::error::Call;
use super::group::Snapshot;
use super::link::Verdict;
use super::peers::{Peer, Peers};
use crate::numbers::GroupId;
use crate::types::{NodeId, SnapshotData, TypeConfig, Vote};
use futures_util::Stream;
use openraft::base::{BoxFuture, BoxStream};
use openraft::error::{RPCError, ReplicationClosed, StreamingError};
use openraft::network::{RPCOption, RaftNetworkFactory, RaftNetworkV2, stream_append_sequential};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, StreamAppendResult,
    TransferLeaderRequest, TransferLeaderResponse, VoteRequest, VoteResponse,
};
use openraft::{BasicNode, OptionalSend, RPCTypes};
use prost::Message;
use std::future::Future;
use std::sync::Arc;
use strata_proto::internal::v1 as pb;
use tonic::{Request, Response, Status};

/// openraft's network factory for one group: every client it makes shares the node's
/// [`Peers`] (channels and heartbeat batchers).
#[derive(Debug, Clone)]
pub struct PeerNetwork {
    group_id: GroupId,
    peers: Arc<Peers>,
}

impl PeerNetwork {
    /// The network of group `group_id` over `peers`.
    pub fn new(group_id: GroupId, peers: Arc<Peers>) -> PeerNetwork {
        PeerNetwork { group_id, peers }
    }

    /// The group this network sends for.
    pub fn group_id(&self) -> GroupId {
        self.group_id
    }

    fn client(&self, target: NodeId, node: &BasicNode, role: Role) -> PeerClient {
        PeerClient {
            group_id: self.group_id,
            target,
            addr: node.addr.clone(),
            peers: self.peers.clone(),
            peer: None,
            role,
        }
    }
}

impl RaftNetworkFactory<TypeConfig> for PeerNetwork {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> PeerClient {
        self.client(target, node, Role::Replication)
    }

    async fn new_heartbeat_client(&mut self, target: NodeId, node: &BasicNode) -> PeerClient {
        self.client(target, node, Role::Heartbeat)
    }
}

/// What openraft made a client for: replication streams go to the data channel; heartbeat
/// "streams" (one empty AppendEntries at a time) go to the heartbeat batcher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Replication,
    Heartbeat,
}

/// Sends one group's messages to one target node (openraft's `RaftNetworkV2`).
pub struct PeerClient {
    group_id: GroupId,
    target: NodeId,
    addr: String,
    peers: Arc<Peers>,
    peer: Option<Arc<Peer>>,
    role: Role,
}

impl std::fmt::Debug for PeerClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerClient")
            .field("group_id", &self.group_id)
            .field("target", &self.target)
            .field("addr", &self.addr)
            .field("role", &self.role)
            .finish()
    }
}

/// What an append stream needs of its client; see [`append_stream`].
pub(crate) struct StreamSetup {
    pub peer: Arc<Peer>,
    pub peers: Arc<Peers>,
    pub group_id: GroupId,
    pub call: Call,
}

impl PeerClient {
    fn call(&self, action: RPCTypes, option: &RPCOption) -> Call {
        Call {
            action,
            from: self.peers.identity().node_id,
            target: self.target,
            group_id: self.group_id,
            timeout: option.soft_ttl().min(self.peers.config().request_timeout()),
        }
    }

    /// The shared peer entry (channels are created on first use, connected on first send).
    fn peer(&mut self, call: &Call) -> Result<Arc<Peer>, RPCError<TypeConfig>> {
        if let Some(peer) = &self.peer {
            return Ok(peer.clone());
        }
        let peer = self
            .peers
            .peer(self.target, &self.addr)
            .map_err(|e| call.unreachable(e))?;
        self.peer = Some(peer.clone());
        Ok(peer)
    }

    fn check_size(&self, call: &Call, what: &str, len: usize) -> Result<(), RPCError<TypeConfig>> {
        check_size(&self.peers, call, what, len)
    }

    /// Runs one unary call under the call's deadline, after [`admit`] lets it through.
    async fn unary<T, Fut>(&self, call: &Call, send: Fut) -> Result<T, RPCError<TypeConfig>>
    where
        Fut: Future<Output = Result<Response<T>, Status>>,
    {
        let attempt = async {
            admit(&self.peers, call).await?;
            send.await
                .map(Response::into_inner)
                .map_err(|s| call.status_error(&s))
        };
        tokio::time::timeout(call.timeout, attempt)
            .await
            .unwrap_or_else(|_| Err(call.timeout_error()))
    }

    fn request<T>(call: &Call, message: T) -> Request<T> {
        let mut request = Request::new(message);
        request.set_timeout(call.timeout);
        request
    }

    async fn send_vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
        pre_vote: bool,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        let call = self.call(RPCTypes::Vote, &option);
        let peer = self.peer(&call)?;
        let message = pb::VoteRequest {
            header: Some(peer.header(&self.peers.identity())),
            group_id: self.group_id.get(),
            pre_vote,
            ..rpc.to_wire()
        };
        let mut control = peer.control.clone();
        let answer = self
            .unary(&call, control.vote(Self::request(&call, message)))
            .await?;
        VoteResponse::from_wire(answer).map_err(|e| call.network(e))
    }

    /// A heartbeat: joins the peer's next batch and waits for this group's answer.
    async fn heartbeat(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        call: Call,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        let peer = self.peer(&call)?;
        let prev = rpc.prev_log_id;
        let heartbeat = pb::GroupHeartbeat {
            group_id: self.group_id.get(),
            ..rpc.to_wire()
        };
        let attempt = async {
            admit(&self.peers, &call).await?;
            peer.heartbeats
                .send(heartbeat)
                .await
                .map_err(|s| call.status_error(&s))
        };
        let answer = tokio::time::timeout(call.timeout, attempt)
            .await
            .unwrap_or_else(|_| Err(call.timeout_error()))?;
        append_answer(&call, prev, answer)
    }
}

/// Fails a message over the transport's size limit before it is sent, naming the limit.
pub(crate) fn check_size(
    peers: &Peers,
    call: &Call,
    what: &str,
    len: usize,
) -> Result<(), RPCError<TypeConfig>> {
    let limit = peers.config().message_bytes_max;
    if len > limit {
        return Err(call.unreachable(format!(
            "{what} is {len} bytes, over the transport limit message_bytes_max = {limit} \
             (cap the bytes per append below it)"
        )));
    }
    Ok(())
}

/// Applies [`super::LinkControl`] to one message: fail it, or wait out its delay.
pub(crate) async fn admit(peers: &Peers, call: &Call) -> Result<(), RPCError<TypeConfig>> {
    match peers.links().verdict(call.from, call.target) {
        Verdict::Deliver(delay) => {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            Ok(())
        }
        Verdict::Cut => Err(call.unreachable("link cut by LinkControl")),
        Verdict::Drop => Err(call.timeout_error()),
    }
}

/// Reads an append answer, refusing a conflict for a request without `prev_log_id` (openraft
/// would panic on it; an empty prefix always matches).
fn append_answer(
    call: &Call,
    prev: Option<crate::types::LogId>,
    answer: pb::AppendResponse,
) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
    let resp = AppendEntriesResponse::from_wire(answer).map_err(|e| call.network(e))?;
    if resp.is_conflict() && prev.is_none() {
        return Err(call.network("peer answered Conflict to a request without prev_log_id"));
    }
    Ok(resp)
}

impl RaftNetworkV2<TypeConfig> for PeerClient {
    type SnapshotData = SnapshotData;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        let call = self.call(RPCTypes::AppendEntries, &option);
        if rpc.entries.is_empty() {
            return self.heartbeat(rpc, call).await;
        }
        let peer = self.peer(&call)?;
        let prev = rpc.prev_log_id;
        let message = pb::AppendRequest {
            header: Some(peer.header(&self.peers.identity())),
            group_id: self.group_id.get(),
            ..rpc.to_wire()
        };
        self.check_size(&call, "append request", message.encoded_len())?;
        let mut data = peer.data.clone();
        let answer = self
            .unary(&call, data.append(Self::request(&call, message)))
            .await?;
        append_answer(&call, prev, answer)
    }

    fn stream_append<'s, S>(
        &'s mut self,
        input: S,
        option: RPCOption,
    ) -> BoxFuture<
        's,
        Result<
            BoxStream<'s, Result<StreamAppendResult<TypeConfig>, RPCError<TypeConfig>>>,
            RPCError<TypeConfig>,
        >,
    >
    where
        S: Stream<Item = AppendEntriesRequest<TypeConfig>> + OptionalSend + Unpin + 'static,
    {
        if self.role == Role::Heartbeat {
            // openraft's heartbeat worker sends one empty request per "stream"; each goes
            // through `append_entries`, hence into the peer's heartbeat batch.
            return stream_append_sequential(self, input, option);
        }
        Box::pin(async move {
            let call = self.call(RPCTypes::AppendEntries, &option);
            let setup = StreamSetup {
                peer: self.peer(&call)?,
                peers: self.peers.clone(),
                group_id: self.group_id,
                call,
            };
            append_stream::open(setup, input).await
        })
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.send_vote(rpc, option, false).await
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.send_vote(rpc, option, true).await
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let call = self.call(RPCTypes::InstallSnapshot, &option);
        let peer = self.peer(&call)?;
        let message = pb::InstallSnapshotRequest {
            header: Some(peer.header(&self.peers.identity())),
            group_id: self.group_id.get(),
            ..(vote, snapshot).to_wire()
        };
        self.check_size(&call, "snapshot", message.encoded_len())?;
        let mut data = peer.data.clone();
        let send = self.unary(&call, data.install_snapshot(Self::request(&call, message)));
        let answer = tokio::select! {
            answer = send => answer?,
            closed = cancel => return Err(StreamingError::Closed(closed)),
        };
        SnapshotResponse::from_wire(answer).map_err(|e| call.network(e).into())
    }

    async fn transfer_leader(
        &mut self,
        req: TransferLeaderRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<TransferLeaderResponse<TypeConfig>, RPCError<TypeConfig>> {
        let call = self.call(RPCTypes::TransferLeader, &option);
        let peer = self.peer(&call)?;
        let message = pb::TransferLeaderRequest {
            header: Some(peer.header(&self.peers.identity())),
            group_id: self.group_id.get(),
            ..req.to_wire()
        };
        let mut control = peer.control.clone();
        let answer = self
            .unary(
                &call,
                control.transfer_leader(Self::request(&call, message)),
            )
            .await?;
        TransferLeaderResponse::from_wire(answer).map_err(|e| call.network(e))
    }
}
