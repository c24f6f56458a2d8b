//! An in-memory Raft transport for in-process clusters: every message is a direct call on the
//! target node's peer handle (what its real transport would dispatch to), through per-link rules the test controls (cut, drop with a seeded
//! probability, delay with jitter; jitter reorders messages).

use openraft::error::{NetworkError, RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::{RPCOption, RaftNetworkFactory, RaftNetworkV2};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::{AnyError, BasicNode};
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use strata_raft::codec::{decode_entry, encode_payload};
use strata_raft::transport::GroupHandle;
use strata_raft::types::{NodeId, TypeConfig, Vote};
use strata_raft::{GroupId, RaftIndex};

/// Rules for the link from one node to another.
#[derive(Debug, Clone, Copy, Default)]
pub struct LinkRule {
    /// Messages fail as unreachable.
    pub cut: bool,
    /// Probability (0..=1) that a message is dropped (fails as a network error).
    pub drop_probability: f64,
    /// Added delay, and a random extra of up to `jitter_ms` (which reorders messages).
    pub delay_ms: u64,
    /// See `delay_ms`.
    pub jitter_ms: u64,
}

/// Routes messages between the nodes of one process, per group.
pub struct Router {
    rafts: RwLock<HashMap<(GroupId, NodeId), Arc<dyn GroupHandle>>>,
    rules: Mutex<HashMap<(NodeId, NodeId), LinkRule>>,
    isolated: Mutex<HashSet<NodeId>>,
    rng: Mutex<u64>,
    /// Raft messages routed so far (to see that sleeping groups send none).
    pub messages: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router")
            .field("rules", &self.rules)
            .field("isolated", &self.isolated)
            .finish_non_exhaustive()
    }
}

impl Router {
    /// A router; `seed` drives drops and jitter.
    pub fn new(seed: u64) -> Arc<Router> {
        Arc::new(Router {
            rafts: RwLock::new(HashMap::new()),
            rules: Mutex::new(HashMap::new()),
            isolated: Mutex::new(HashSet::new()),
            rng: Mutex::new(seed | 1),
            messages: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// Registers the peer handle of `node` for `group` (`Partition::peer_handle`).
    pub fn register(&self, group: GroupId, node: NodeId, raft: Arc<dyn GroupHandle>) {
        strata_record::sync::write(&self.rafts).insert((group, node), raft);
    }

    /// Forgets `node`'s handle for `group` (the node is down).
    pub fn unregister(&self, group: GroupId, node: NodeId) {
        strata_record::sync::write(&self.rafts).remove(&(group, node));
    }

    /// Sets the rule of the link `from -> to`.
    pub fn set_rule(&self, from: NodeId, to: NodeId, rule: LinkRule) {
        strata_record::sync::lock(&self.rules).insert((from, to), rule);
    }

    /// Cuts (or heals) every link to and from `node`.
    pub fn isolate(&self, node: NodeId, isolated: bool) {
        let mut s = strata_record::sync::lock(&self.isolated);
        if isolated {
            s.insert(node);
        } else {
            s.remove(&node);
        }
    }

    /// Whether a message from `from` to `to` would pass (no cut, no isolation); for node-level
    /// messages that bypass delay and drop.
    pub fn allows(&self, from: NodeId, to: NodeId) -> bool {
        let isolated = {
            let s = strata_record::sync::lock(&self.isolated);
            s.contains(&from) || s.contains(&to)
        };
        let cut = strata_record::sync::lock(&self.rules)
            .get(&(from, to))
            .is_some_and(|r| r.cut);
        !isolated && !cut
    }

    fn next_random(&self) -> u64 {
        let mut x = strata_record::sync::lock(&self.rng);
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        *x
    }

    /// Applies the link rules to one message; returns the target's handle if it gets through.
    async fn pass(
        &self,
        group: GroupId,
        from: NodeId,
        to: NodeId,
    ) -> Result<Arc<dyn GroupHandle>, RPCError<TypeConfig>> {
        let unreachable = |why: &str| {
            RPCError::Unreachable(Unreachable::new(&AnyError::error(format!(
                "{from} -> {to}: {why}"
            ))))
        };
        let isolated = {
            let s = strata_record::sync::lock(&self.isolated);
            s.contains(&from) || s.contains(&to)
        };
        if isolated {
            return Err(unreachable("node isolated"));
        }
        let rule = strata_record::sync::lock(&self.rules)
            .get(&(from, to))
            .copied()
            .unwrap_or_default();
        if rule.cut {
            return Err(unreachable("link cut"));
        }
        if rule.drop_probability > 0.0 {
            let r = (self.next_random() % 10_000) as f64 / 10_000.0;
            if r < rule.drop_probability {
                return Err(RPCError::Network(NetworkError::new(&AnyError::error(
                    "message dropped",
                ))));
            }
        }
        let delay = rule.delay_ms
            + if rule.jitter_ms > 0 {
                self.next_random() % rule.jitter_ms
            } else {
                0
            };
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        strata_record::sync::read(&self.rafts)
            .get(&(group, to))
            .cloned()
            .ok_or_else(|| unreachable("node down"))
    }
}

/// The network factory of one node for one group.
#[derive(Debug, Clone)]
pub struct MemNetwork {
    /// The group.
    pub group: GroupId,
    /// This node.
    pub from: NodeId,
    /// The shared router.
    pub router: Arc<Router>,
}

/// A connection from one node to another for one group.
#[derive(Debug)]
pub struct MemConnection {
    group: GroupId,
    from: NodeId,
    to: NodeId,
    router: Arc<Router>,
}

impl RaftNetworkFactory<TypeConfig> for MemNetwork {
    type Network = MemConnection;

    async fn new_client(&mut self, target: NodeId, _node: &BasicNode) -> MemConnection {
        MemConnection {
            group: self.group,
            from: self.from,
            to: target,
            router: self.router.clone(),
        }
    }
}

/// Copies a request's entries out of the sender's memory, as a real transport's encoding does:
/// a leader's entries are views of its log's mapping, and a simulated power loss of the leader
/// shrinks the mapped files while a follower (or a delayed message) still holds them (SIGBUS).
fn detach(mut rpc: AppendEntriesRequest<TypeConfig>) -> AppendEntriesRequest<TypeConfig> {
    rpc.entries = rpc
        .entries
        .into_iter()
        .map(|e| {
            let (kind, bytes) = encode_payload(&e.payload);
            decode_entry(
                e.log_id.committed_leader_id().term,
                RaftIndex::new(e.log_id.index),
                kind,
                bytes::Bytes::copy_from_slice(&bytes),
            )
            .expect("an entry decodes from its own encoding")
        })
        .collect();
    rpc
}

fn remote<E: std::error::Error + 'static>(e: E) -> RPCError<TypeConfig> {
    RPCError::Network(NetworkError::new(&e))
}

impl RaftNetworkV2<TypeConfig> for MemConnection {
    type SnapshotData = bytes::Bytes;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        let rpc = detach(rpc);
        let raft = self.router.pass(self.group, self.from, self.to).await?;
        raft.append_entries(rpc).await.map_err(remote)
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        let raft = self.router.pass(self.group, self.from, self.to).await?;
        raft.vote(rpc).await.map_err(remote)
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        let raft = self.router.pass(self.group, self.from, self.to).await?;
        raft.pre_vote(rpc).await.map_err(remote)
    }

    async fn transfer_leader(
        &mut self,
        req: openraft::raft::TransferLeaderRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<openraft::raft::TransferLeaderResponse<TypeConfig>, RPCError<TypeConfig>> {
        let raft = self.router.pass(self.group, self.from, self.to).await?;
        raft.transfer_leader(req).await.map_err(remote)
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: strata_raft::state_machine::Snapshot,
        _cancel: impl Future<Output = ReplicationClosed> + Send + 'static,
        _option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let mut snapshot = snapshot;
        snapshot.snapshot = bytes::Bytes::copy_from_slice(&snapshot.snapshot);
        let raft = self
            .router
            .pass(self.group, self.from, self.to)
            .await
            .map_err(|e| StreamingError::Unreachable(Unreachable::new(&e)))?;
        raft.install_full_snapshot(vote, snapshot)
            .await
            .map_err(|e| StreamingError::Unreachable(Unreachable::new(&e)))
    }
}
