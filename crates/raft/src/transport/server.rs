//! The peer server: [`PeerService`] answers `strata.internal.v1.RaftPeer` for every hosted
//! group, and [`serve`] runs it on a listener until shutdown (like mini-redis `run`).
//!
//! Every request is checked in this order: the header names this node
//! ([`PeerIdentity::check`], `FAILED_PRECONDITION`), the group is hosted (`NOT_FOUND`), the
//! message is well formed (`INVALID_ARGUMENT`); then the group answers, or `UNAVAILABLE` when its
//! Raft has stopped. Size limits are set on both directions from
//! [`TransportConfig::message_bytes_max`]: tonic answers an oversized request `OUT_OF_RANGE`.

use super::config::TransportConfig;
use super::convert::{FromWire, ToWire};
use super::error::TransportError;
use super::group::{GroupHandle, GroupRegistry, Snapshot};
use super::identity::PeerIdentity;
use crate::numbers::GroupId;
use crate::types::{TypeConfig, Vote};
use futures_util::future::{join_all, ready};
use futures_util::stream::{self, BoxStream, StreamExt};
use openraft::error::{Fatal, RaftError};
use openraft::raft::{AppendEntriesRequest, TransferLeaderRequest, VoteRequest};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use strata_proto::internal::v1 as pb;
use strata_proto::internal::v1::raft_peer_server::{RaftPeer, RaftPeerServer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::transport::Server;
use tonic::transport::server::Router;
use tonic::{Request, Response, Status, Streaming};

/// Counters of what the server received; cheap to read at any time (tests, metrics).
#[derive(Debug, Default)]
pub struct ServerStats {
    votes: AtomicU64,
    appends: AtomicU64,
    append_streams: AtomicU64,
    heartbeat_batches: AtomicU64,
    heartbeats: AtomicU64,
    snapshots: AtomicU64,
    transfers: AtomicU64,
    rejected: AtomicU64,
}

/// A copy of [`ServerStats`] at one moment.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ServerCounts {
    /// Vote and pre-vote RPCs.
    pub votes: u64,
    /// Unary Append RPCs.
    pub appends: u64,
    /// AppendStream RPCs (streams, not their messages).
    pub append_streams: u64,
    /// Heartbeat RPCs (batches).
    pub heartbeat_batches: u64,
    /// Heartbeats inside those batches.
    pub heartbeats: u64,
    /// InstallSnapshot RPCs.
    pub snapshots: u64,
    /// TransferLeader RPCs.
    pub transfers: u64,
    /// Requests refused for a header that does not name this node.
    pub rejected: u64,
}

impl ServerStats {
    /// The counters now.
    pub fn counts(&self) -> ServerCounts {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ServerCounts {
            votes: get(&self.votes),
            appends: get(&self.appends),
            append_streams: get(&self.append_streams),
            heartbeat_batches: get(&self.heartbeat_batches),
            heartbeats: get(&self.heartbeats),
            snapshots: get(&self.snapshots),
            transfers: get(&self.transfers),
            rejected: get(&self.rejected),
        }
    }
}

fn bump(counter: &AtomicU64, by: u64) {
    counter.fetch_add(by, Ordering::Relaxed);
}

/// The `RaftPeer` service of one node: routes each request by group id to the
/// [`GroupRegistry`].
#[derive(Clone)]
pub struct PeerService {
    identity: PeerIdentity,
    registry: Arc<GroupRegistry>,
    stats: Arc<ServerStats>,
    config: TransportConfig,
    /// Set once the server shuts down: open append streams end at once.
    stopping: Arc<watch::Sender<bool>>,
    /// The node's liveness ticker, told of peers' liveness messages.
    liveness: Option<Arc<crate::liveness::Liveness>>,
}

impl PeerService {
    /// A service for the node `identity`, answering for the groups in `registry`, with the
    /// limits of `config` (checked here).
    pub fn new(
        identity: PeerIdentity,
        registry: Arc<GroupRegistry>,
        config: &TransportConfig,
    ) -> Result<PeerService, TransportError> {
        config.validate()?;
        Ok(PeerService {
            identity,
            registry,
            stats: Arc::default(),
            config: config.clone(),
            stopping: Arc::new(watch::Sender::new(false)),
            liveness: None,
        })
    }

    /// Hands peers' liveness messages to this node's ticker (without one they are accepted and
    /// ignored, and groups never sleep on this node's followers).
    pub fn with_liveness(mut self, liveness: Arc<crate::liveness::Liveness>) -> PeerService {
        self.liveness = Some(liveness);
        self
    }

    /// The server's counters.
    pub fn stats(&self) -> Arc<ServerStats> {
        self.stats.clone()
    }

    /// Ends every open append stream (now and later) with `UNAVAILABLE`: a stream stays open
    /// as long as its leader has entries to send, so a graceful shutdown would otherwise wait
    /// for the peers. [`serve`] calls this when its shutdown signal fires; call it before
    /// shutting down a server built from [`PeerService::into_server`].
    pub fn stop_streams(&self) {
        self.stopping.send_replace(true);
    }

    /// The tonic service with the size limits set on both directions, for a caller that builds
    /// its own server.
    pub fn into_server(self) -> RaftPeerServer<PeerService> {
        let limit = self.config.message_bytes_max;
        RaftPeerServer::new(self)
            .max_decoding_message_size(limit)
            .max_encoding_message_size(limit)
    }

    /// A tonic router serving only this service, with TCP_NODELAY, HTTP/2 keepalive and the
    /// per-connection stream limit of the config.
    pub fn into_router(self) -> Router {
        let config = self.config.clone();
        // TLS (a later issue) is configured on this builder (`Server::tls_config`).
        Server::builder()
            .tcp_nodelay(true)
            .http2_keepalive_interval(Some(config.keepalive_interval()))
            .http2_keepalive_timeout(Some(config.keepalive_timeout()))
            .max_concurrent_streams(config.streams_per_connection_max)
            .add_service(self.into_server())
    }

    /// The hosted group a request names, after checking its header.
    fn group(
        &self,
        header: Option<&pb::PeerHeader>,
        group_id: u64,
    ) -> Result<Arc<dyn GroupHandle>, Status> {
        check_identity(&self.identity, &self.stats, header)?;
        lookup(&self.identity, &self.registry, group_id)
    }
}

fn check_identity(
    identity: &PeerIdentity,
    stats: &ServerStats,
    header: Option<&pb::PeerHeader>,
) -> Result<(), Status> {
    identity
        .check(header)
        .inspect_err(|_| bump(&stats.rejected, 1))
}

fn lookup(
    identity: &PeerIdentity,
    registry: &GroupRegistry,
    group_id: u64,
) -> Result<Arc<dyn GroupHandle>, Status> {
    registry.get(GroupId::new(group_id)).ok_or_else(|| {
        Status::not_found(format!(
            "group {group_id} is not hosted on node {}",
            identity.node_id
        ))
    })
}

fn fatal_status(group_id: u64, fatal: &Fatal<TypeConfig>) -> Status {
    Status::unavailable(format!("group {group_id} has stopped: {fatal}"))
}

fn raft_status(group_id: u64, e: RaftError<TypeConfig>) -> Status {
    match e {
        RaftError::Fatal(f) => fatal_status(group_id, &f),
        RaftError::APIError(never) => match never {},
    }
}

/// Runs the peer server on `listener` until `shutdown` completes, then stops accepting and
/// waits for open requests to finish (as mini-redis `run(listener, shutdown)`).
///
/// Open append streams are ended at once ([`PeerService::stop_streams`]) so that peers still
/// replicating to this node cannot hold the shutdown open; other requests are answered first.
pub async fn serve(
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
    service: PeerService,
) -> Result<(), TransportError> {
    let stopping = service.stopping.clone();
    let signal = async move {
        shutdown.await;
        stopping.send_replace(true);
    };
    service
        .into_router()
        // tonic applies `tcp_nodelay` only to listeners it binds itself: set it on the accepted
        // connections here, or small replies wait out the peer's delayed ACK (~40 ms).
        .serve_with_incoming_shutdown(
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
            signal,
        )
        .await
        .map_err(TransportError::Serve)
}

/// As [`serve`], with more services on the same listener (`add` adds them to the router),
/// e.g. the node's forwarded controller proposals.
pub async fn serve_with(
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
    service: PeerService,
    add: impl FnOnce(Router) -> Router,
) -> Result<(), TransportError> {
    let stopping = service.stopping.clone();
    let signal = async move {
        shutdown.await;
        stopping.send_replace(true);
    };
    add(service.into_router())
        .serve_with_incoming_shutdown(
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
            signal,
        )
        .await
        .map_err(TransportError::Serve)
}

#[tonic::async_trait]
impl RaftPeer for PeerService {
    async fn vote(
        &self,
        request: Request<pb::VoteRequest>,
    ) -> Result<Response<pb::VoteResponse>, Status> {
        bump(&self.stats.votes, 1);
        let req = request.into_inner();
        let (group_id, pre_vote) = (req.group_id, req.pre_vote);
        let group = self.group(req.header.as_ref(), group_id)?;
        let rpc = VoteRequest::from_wire(req)?;
        let resp = if pre_vote {
            group.pre_vote(rpc).await
        } else {
            group.vote(rpc).await
        };
        let resp = resp.map_err(|e| raft_status(group_id, e))?;
        Ok(Response::new(resp.to_wire()))
    }

    async fn append(
        &self,
        request: Request<pb::AppendRequest>,
    ) -> Result<Response<pb::AppendResponse>, Status> {
        bump(&self.stats.appends, 1);
        let req = request.into_inner();
        let group_id = req.group_id;
        let group = self.group(req.header.as_ref(), group_id)?;
        let rpc = AppendEntriesRequest::from_wire(req)?;
        let resp = group
            .append_entries(rpc)
            .await
            .map_err(|e| raft_status(group_id, e))?;
        Ok(Response::new(resp.to_wire()))
    }

    type AppendStreamStream = BoxStream<'static, Result<pb::AppendStreamResponse, Status>>;

    async fn append_stream(
        &self,
        request: Request<Streaming<pb::AppendRequest>>,
    ) -> Result<Response<Self::AppendStreamStream>, Status> {
        bump(&self.stats.append_streams, 1);
        // Answer at once and route when the first request arrives, so opening a stream never
        // waits for the leader's first message.
        let (identity, registry, stats) = (self.identity, self.registry.clone(), self.stats());
        let inbound = request.into_inner();
        let out = stream::once(route_append_stream(identity, registry, stats, inbound)).flatten();
        Ok(Response::new(until_stopped(
            out,
            self.stopping.subscribe(),
            identity,
        )))
    }

    async fn heartbeat(
        &self,
        request: Request<pb::HeartbeatRequest>,
    ) -> Result<Response<pb::HeartbeatResponse>, Status> {
        let req = request.into_inner();
        check_identity(&self.identity, &self.stats, req.header.as_ref())?;
        bump(&self.stats.heartbeat_batches, 1);
        bump(&self.stats.heartbeats, req.heartbeats.len() as u64);
        let results = join_all(req.heartbeats.into_iter().map(|hb| self.one_heartbeat(hb))).await;
        Ok(Response::new(pb::HeartbeatResponse { results }))
    }

    async fn liveness(
        &self,
        request: Request<pb::LivenessRequest>,
    ) -> Result<Response<pb::LivenessResponse>, Status> {
        let req = request.into_inner();
        check_identity(&self.identity, &self.stats, req.header.as_ref())?;
        let from = req.header.as_ref().map_or(0, |h| h.from_node);
        if let Some(l) = &self.liveness {
            l.on_message(&crate::liveness::LivenessMessage {
                from,
                sleeping: req
                    .sleeping
                    .iter()
                    .map(|g| (GroupId::new(g.group_id), g.term))
                    .collect(),
            });
        }
        Ok(Response::new(pb::LivenessResponse {}))
    }

    async fn install_snapshot(
        &self,
        request: Request<pb::InstallSnapshotRequest>,
    ) -> Result<Response<pb::InstallSnapshotResponse>, Status> {
        bump(&self.stats.snapshots, 1);
        let req = request.into_inner();
        let group_id = req.group_id;
        let group = self.group(req.header.as_ref(), group_id)?;
        let (vote, snapshot) = <(Vote, Snapshot)>::from_wire(req)?;
        let resp = group
            .install_full_snapshot(vote, snapshot)
            .await
            .map_err(|f| fatal_status(group_id, &f))?;
        Ok(Response::new(resp.to_wire()))
    }

    async fn transfer_leader(
        &self,
        request: Request<pb::TransferLeaderRequest>,
    ) -> Result<Response<pb::TransferLeaderResponse>, Status> {
        bump(&self.stats.transfers, 1);
        let req = request.into_inner();
        let group_id = req.group_id;
        let group = self.group(req.header.as_ref(), group_id)?;
        let rpc = TransferLeaderRequest::from_wire(req)?;
        let resp = group
            .transfer_leader(rpc)
            .await
            .map_err(|f| fatal_status(group_id, &f))?;
        Ok(Response::new(resp.to_wire()))
    }
}

impl PeerService {
    /// One heartbeat of a batch: its group's answer, or why there is none.
    async fn one_heartbeat(&self, hb: pb::GroupHeartbeat) -> pb::GroupHeartbeatResult {
        use pb::group_heartbeat_result::Result as R;
        let group_id = hb.group_id;
        let answer = async {
            let group = lookup(&self.identity, &self.registry, group_id)?;
            let rpc = AppendEntriesRequest::from_wire(hb)?;
            group
                .append_entries(rpc)
                .await
                .map_err(|e| raft_status(group_id, e))
        };
        let result = match answer.await {
            Ok(resp) => R::Response(resp.to_wire()),
            Err(status) => R::Error(pb::GroupError {
                code: status.code() as i32,
                message: status.message().to_string(),
            }),
        };
        pb::GroupHeartbeatResult {
            group_id,
            result: Some(result),
        }
    }
}

/// Routes an append stream by its first request, then feeds the group every request that names
/// this node and the same group. A request that does not ends the input; the output then ends
/// with that request's error after the answers to the requests before it.
async fn route_append_stream(
    identity: PeerIdentity,
    registry: Arc<GroupRegistry>,
    stats: Arc<ServerStats>,
    mut inbound: Streaming<pb::AppendRequest>,
) -> BoxStream<'static, Result<pb::AppendStreamResponse, Status>> {
    let first = match inbound.message().await {
        Ok(Some(first)) => first,
        Ok(None) => return stream::empty().boxed(),
        Err(status) => return stream::once(ready(Err(status))).boxed(),
    };
    let group_id = first.group_id;
    let group = check_identity(&identity, &stats, first.header.as_ref())
        .and_then(|()| lookup(&identity, &registry, group_id));
    let group = match group {
        Ok(group) => group,
        Err(status) => return stream::once(ready(Err(status))).boxed(),
    };
    let failure: Arc<Mutex<Option<Status>>> = Arc::default();
    let failure_in = failure.clone();
    let requests = stream::once(ready(Ok(first)))
        .chain(inbound)
        .map(move |msg| {
            let msg = msg?;
            check_identity(&identity, &stats, msg.header.as_ref())?;
            if msg.group_id != group_id {
                return Err(Status::invalid_argument(format!(
                    "append stream of group {group_id} got a request for group {}",
                    msg.group_id
                )));
            }
            Ok(AppendEntriesRequest::from_wire(msg)?)
        })
        .scan((), move |(), msg| {
            ready(match msg {
                Ok(rpc) => Some(rpc),
                Err(status) => {
                    *strata_record::sync::lock(&failure_in) = Some(status);
                    None
                }
            })
        })
        .boxed();
    let answers = group
        .stream_append(requests)
        .map(move |answer| match answer {
            Ok(result) => Ok(result.to_wire()),
            Err(fatal) => Err(fatal_status(group_id, &fatal)),
        });
    let tail = stream::once(async move { strata_record::sync::lock(&failure).take() })
        .filter_map(|failure| ready(failure.map(Err)));
    answers.chain(tail).boxed()
}

/// Ends `answers` when the server shuts down, with a last `UNAVAILABLE` naming the reason.
fn until_stopped(
    answers: impl futures_util::Stream<Item = Result<pb::AppendStreamResponse, Status>> + Send + 'static,
    stopping: watch::Receiver<bool>,
    identity: PeerIdentity,
) -> BoxStream<'static, Result<pb::AppendStreamResponse, Status>> {
    let mut stopped = stopping.clone();
    let stop = async move {
        // An error means the service is gone: stop as well.
        let _ = stopped.wait_for(|stop| *stop).await;
    };
    let last = stream::once(async move {
        (*stopping.borrow()).then(|| {
            Err(Status::unavailable(format!(
                "node {} is shutting down",
                identity.node_id
            )))
        })
    })
    .filter_map(ready);
    answers.take_until(stop).chain(last).boxed()
}
