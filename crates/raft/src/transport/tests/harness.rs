//! The test harness: fake groups that record calls, a peer server on 127.0.0.1:0, and
//! client helpers.

use super::*;
use futures_util::future::BoxFuture;
use openraft::RaftNetworkFactory;
use openraft::error::{Fatal, RPCError, RaftError};
use openraft::network::RPCOption;
use openraft::raft::{
    AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest, TransferLeaderResponse,
    VoteRequest, VoteResponse,
};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

/// What a fake group was asked.
#[derive(Debug, Clone)]
pub(super) enum Seen {
    Append(Req),
    Vote(VoteRequest<TypeConfig>),
    PreVote(VoteRequest<TypeConfig>),
    Snapshot(Vote, Snapshot),
    Transfer(TransferLeaderRequest<TypeConfig>),
}

/// A group that records every call and answers from a script: appends pop `answers` (then
/// succeed), votes are granted, pre-votes refused (so the two are told apart), and appends
/// wait while `stalled` is true.
#[derive(Default)]
pub(super) struct FakeGroup {
    seen: Mutex<Vec<Seen>>,
    pub answers: Mutex<VecDeque<AppendEntriesResponse<TypeConfig>>>,
    stalled: Option<watch::Receiver<bool>>,
}

impl FakeGroup {
    /// A group whose appends wait while `stalled` holds true.
    pub fn stalled_while(stalled: watch::Receiver<bool>) -> FakeGroup {
        FakeGroup {
            stalled: Some(stalled),
            ..FakeGroup::default()
        }
    }

    fn record(&self, seen: Seen) {
        strata_record::sync::lock(&self.seen).push(seen);
    }

    pub fn seen(&self) -> Vec<Seen> {
        strata_record::sync::lock(&self.seen).clone()
    }
}

impl GroupHandle for FakeGroup {
    fn append_entries(
        &self,
        rpc: Req,
    ) -> BoxFuture<'_, Result<AppendEntriesResponse<TypeConfig>, RaftError<TypeConfig>>> {
        Box::pin(async move {
            if let Some(stalled) = &self.stalled {
                let _ = stalled.clone().wait_for(|s| !*s).await;
            }
            self.record(Seen::Append(rpc));
            let next = strata_record::sync::lock(&self.answers).pop_front();
            Ok(next.unwrap_or(AppendEntriesResponse::Success))
        })
    }

    fn vote(
        &self,
        rpc: VoteRequest<TypeConfig>,
    ) -> BoxFuture<'_, Result<VoteResponse<TypeConfig>, RaftError<TypeConfig>>> {
        self.record(Seen::Vote(rpc.clone()));
        Box::pin(async move { Ok(VoteResponse::new(rpc.vote, None, true)) })
    }

    fn pre_vote(
        &self,
        rpc: VoteRequest<TypeConfig>,
    ) -> BoxFuture<'_, Result<VoteResponse<TypeConfig>, RaftError<TypeConfig>>> {
        self.record(Seen::PreVote(rpc.clone()));
        Box::pin(async move { Ok(VoteResponse::new(vote(9, 9, true), None, false)) })
    }

    fn install_full_snapshot(
        &self,
        vote: Vote,
        snapshot: Snapshot,
    ) -> BoxFuture<'_, Result<SnapshotResponse<TypeConfig>, Fatal<TypeConfig>>> {
        self.record(Seen::Snapshot(vote, snapshot));
        Box::pin(async move { Ok(SnapshotResponse::new(vote)) })
    }

    fn transfer_leader(
        &self,
        req: TransferLeaderRequest<TypeConfig>,
    ) -> BoxFuture<'_, Result<TransferLeaderResponse<TypeConfig>, Fatal<TypeConfig>>> {
        self.record(Seen::Transfer(req));
        Box::pin(async { Ok(Ok(())) })
    }
}

pub(super) const SERVER: PeerIdentity = PeerIdentity {
    cluster_id: 7,
    node_id: 2,
    incarnation: 3,
};
pub(super) const CLIENT: PeerIdentity = PeerIdentity {
    cluster_id: 7,
    node_id: 1,
    incarnation: 1,
};

/// A peer server on an ephemeral port; [`TestServer::stop`] shuts it down and joins it.
pub(super) struct TestServer {
    pub addr: SocketAddr,
    registry: Arc<GroupRegistry>,
    pub stats: Arc<ServerStats>,
    shutdown: oneshot::Sender<()>,
    task: JoinHandle<Result<(), TransportError>>,
}

impl TestServer {
    pub async fn start(config: &TransportConfig) -> TestServer {
        TestServer::start_as(SERVER, config).await
    }

    pub async fn start_as(identity: PeerIdentity, config: &TransportConfig) -> TestServer {
        TestServer::start_with(identity, config, None).await
    }

    /// A server whose liveness messages go to `liveness`.
    pub async fn start_with(
        identity: PeerIdentity,
        config: &TransportConfig,
        liveness: Option<Arc<crate::liveness::Liveness>>,
    ) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let registry = Arc::new(GroupRegistry::new());
        let mut service = PeerService::new(identity, registry.clone(), config).expect("config");
        if let Some(l) = liveness {
            service = service.with_liveness(l);
        }
        let stats = service.stats();
        let (shutdown, stop) = oneshot::channel();
        let task = tokio::spawn(serve(listener, async { stop.await.unwrap_or(()) }, service));
        TestServer {
            addr,
            registry,
            stats,
            shutdown,
            task,
        }
    }

    pub fn host(&self, group_id: u64, group: FakeGroup) -> Arc<FakeGroup> {
        let group = Arc::new(group);
        self.registry.insert(GroupId::new(group_id), group.clone());
        group
    }

    pub fn registry(&self) -> &GroupRegistry {
        &self.registry
    }

    pub fn node(&self) -> BasicNode {
        BasicNode::new(self.addr)
    }

    pub async fn stop(self) {
        let _ = self.shutdown.send(());
        let served = self.task.await.expect("server task");
        assert!(served.is_ok(), "{served:?}");
    }
}

pub(super) fn test_config() -> TransportConfig {
    TransportConfig {
        request_timeout_ms: 5_000,
        heartbeat_batch_ms: 20,
        heartbeat_batch_groups_max: 16,
        ..TransportConfig::default()
    }
}

pub(super) fn peers(identity: PeerIdentity, config: &TransportConfig) -> Arc<Peers> {
    Peers::new(identity, config.clone()).expect("config")
}

pub(super) async fn client(
    peers: &Arc<Peers>,
    group_id: u64,
    target: u64,
    node: &BasicNode,
) -> PeerClient {
    PeerNetwork::new(GroupId::new(group_id), peers.clone())
        .new_client(target, node)
        .await
}

pub(super) fn option() -> RPCOption {
    RPCOption::new(Duration::from_secs(10))
}

pub(super) fn vote_request() -> VoteRequest<TypeConfig> {
    VoteRequest::new(vote(5, 1, false), Some(log_id(4, 10)))
}

/// Asserts `result` failed as `Unreachable` with `needle` in its message.
pub(super) fn assert_unreachable<T: std::fmt::Debug>(
    result: Result<T, RPCError<TypeConfig>>,
    needle: &str,
) {
    match result {
        Err(RPCError::Unreachable(e)) => assert!(e.to_string().contains(needle), "{e}"),
        other => panic!("expected Unreachable({needle}), got {other:?}"),
    }
}
