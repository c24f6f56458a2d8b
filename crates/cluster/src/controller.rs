//! The controller: Raft group 0, whose replicated state is the [`ClusterMeta`].
//!
//! Every node hosts a replica of group 0 (the initial cluster's nodes as voters, nodes that
//! joined later as learners), so every node applies the same metadata and can answer metadata
//! requests. Commands are JSON control entries of group 0; [`MetaHook`] applies them and keeps
//! the outcome of recent ones by Raft index so that the proposer can read its own. A node that
//! does not lead group 0 forwards its proposal to the leader through a [`ControlLink`] (the
//! node's implementation speaks `strata.internal.v1.NodeControl` on the peer port); the node
//! that receives it answers with [`Controller::propose_forwarded`].

use crate::meta::{ClusterMeta, Command, NodeId, Outcome, Refusal};
use bytes::Bytes;
use futures_util::future::BoxFuture;
use std::collections::{BTreeMap, HashMap};
use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use strata_log::Offset;
use strata_raft::error::PartitionError;
use strata_raft::outcomes::Outcomes;
use strata_raft::partition::Partition;
use strata_raft::replica::Replica;
use strata_raft::state_machine::StateHook;
use strata_raft::{GroupId, RaftIndex};
use tokio::sync::watch;

/// How a controller reaches the others: forwarded proposals and leadership hints. The node
/// implements it over its peer port; tests may implement it in memory.
pub trait ControlLink: Send + Sync + 'static {
    /// Sends `command` (a JSON [`Command`]) to node `to` at `addr`, which proposes it (or
    /// forwards it once more to its leader, unless `forwarded`). Resolves to the entry's Raft
    /// index and the outcome of applying it.
    fn propose(
        &self,
        to: NodeId,
        addr: &str,
        command: Bytes,
        forwarded: bool,
    ) -> BoxFuture<'static, Result<(RaftIndex, Outcome), ControllerError>>;

    /// Tells node `to` at `addr` which groups this node leads, in which terms.
    fn hints(
        &self,
        to: NodeId,
        addr: &str,
        led: Vec<(GroupId, u64)>,
    ) -> BoxFuture<'static, Result<(), ControllerError>>;
}

/// The controller's Raft group id.
pub const CONTROLLER_GROUP: GroupId = GroupId::new(0);

/// Why a proposal failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ControllerError {
    /// The controller has no reachable leader now; retry later.
    #[error("controller unavailable: {0}")]
    Unavailable(String),
    /// The command was applied and refused.
    #[error(transparent)]
    Refused(#[from] Refusal),
}

/// Applies controller commands to the metadata.
#[derive(Debug)]
pub struct MetaHook {
    meta: watch::Sender<ClusterMeta>,
    state: Mutex<Outcomes<Outcome>>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct HookSnapshot {
    applied: RaftIndex,
    meta: ClusterMeta,
}

impl MetaHook {
    fn new() -> Arc<MetaHook> {
        Arc::new(MetaHook {
            meta: watch::Sender::new(ClusterMeta::default()),
            state: Mutex::default(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Outcomes<Outcome>> {
        strata_record::sync::lock(&self.state)
    }

    fn take_outcome(&self, index: RaftIndex) -> Option<Outcome> {
        self.lock().take(index)
    }
}

impl StateHook for MetaHook {
    fn apply_batch(&self, index: RaftIndex, _base_offset: Offset, _batch: &[u8]) {
        tracing::warn!(%index, "controller log holds a record batch; ignored");
    }

    fn apply_control(&self, index: RaftIndex, payload: &[u8]) {
        let mut s = self.lock();
        if !s.admit(index) {
            return;
        }
        let outcome = match serde_json::from_slice::<Command>(payload) {
            Ok(cmd) => {
                let mut outcome = Outcome::Ok;
                self.meta.send_modify(|m| outcome = m.apply(&cmd));
                tracing::debug!(%index, ?cmd, ?outcome, "controller applied");
                outcome
            }
            Err(e) => {
                tracing::error!(%index, error = %e, "undecodable controller command; skipped");
                Outcome::Refused(Refusal::Invalid(format!("undecodable command: {e}")))
            }
        };
        s.record(index, outcome);
    }

    fn snapshot(&self) -> Vec<u8> {
        let s = self.lock();
        let snap = HookSnapshot {
            applied: s.applied(),
            meta: self.meta.borrow().clone(),
        };
        serde_json::to_vec(&snap).unwrap_or_default()
    }

    fn restore(&self, state: &[u8]) -> io::Result<()> {
        if state.is_empty() {
            return Ok(());
        }
        let snap: HookSnapshot = serde_json::from_slice(state)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        self.lock().restore(snap.applied);
        self.meta.send_replace(snap.meta);
        Ok(())
    }
}

/// This node's replica of the controller group, and the way to change the metadata.
pub struct Controller {
    node_id: NodeId,
    hook: Arc<MetaHook>,
    replica: Replica,
    link: Arc<dyn ControlLink>,
    /// Peer addresses to try when the leader is unknown (the initial cluster, or the voters
    /// a join answered).
    seeds: Mutex<BTreeMap<NodeId, String>>,
    timeout: Duration,
}

impl std::fmt::Debug for Controller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Controller")
            .field("node", &self.node_id)
            .finish()
    }
}

impl Controller {
    /// Opens this node's controller replica (supervised: reopened after a storage failure).
    pub async fn open(
        node_id: NodeId,
        link: Arc<dyn ControlLink>,
        start: impl FnOnce(
            Arc<dyn StateHook>,
        )
            -> futures_util::future::BoxFuture<'static, Result<Replica, PartitionError>>,
        seeds: BTreeMap<NodeId, String>,
        timeout: Duration,
    ) -> Result<Controller, PartitionError> {
        let hook = MetaHook::new();
        let replica = start(hook.clone()).await?;
        Ok(Controller {
            node_id,
            hook,
            replica,
            link,
            seeds: Mutex::new(seeds),
            timeout,
        })
    }

    /// The replica (for bootstrap and shutdown).
    pub fn replica(&self) -> &Replica {
        &self.replica
    }

    /// Stops the controller replica, whoever else still holds the controller (see
    /// `Partition::close`).
    pub async fn close(&self) {
        if let Some(p) = self.replica.stop().await {
            let _ = p.close().await;
        }
    }

    /// Stops the controller's replica as a power loss would (see `Partition::halt`).
    pub async fn crash(&self) {
        if let Some(p) = self.replica.stop().await {
            let _ = p.halt().await;
        }
    }

    /// The running partition of group 0, if up.
    pub fn partition(&self) -> Option<Arc<Partition>> {
        self.replica.partition()
    }

    /// The metadata as applied here.
    pub fn meta(&self) -> watch::Receiver<ClusterMeta> {
        self.hook.meta.subscribe()
    }

    /// `f` of the metadata as applied here, without copying it (`f` must not block: it
    /// holds the metadata's read lock).
    pub fn read_meta<T>(&self, f: impl FnOnce(&ClusterMeta) -> T) -> T {
        f(&self.hook.meta.borrow())
    }

    /// A copy of the metadata as applied here.
    pub fn snapshot(&self) -> ClusterMeta {
        self.hook.meta.borrow().clone()
    }

    /// The controller leader as this node knows it.
    pub fn leader(&self) -> Option<(NodeId, String)> {
        self.partition()?.leader()
    }

    /// Adds peers to try when the leader is unknown.
    pub fn add_seeds(&self, seeds: impl IntoIterator<Item = (NodeId, String)>) {
        strata_record::sync::lock(&self.seeds).extend(seeds);
    }

    /// Proposes `cmd` on this node, which must lead group 0. Returns the entry's Raft index and
    /// what applying it produced.
    pub async fn propose_local(
        &self,
        cmd: &Command,
    ) -> Result<(RaftIndex, Outcome), ControllerError> {
        let p = self
            .partition()
            .ok_or_else(|| ControllerError::Unavailable("controller replica is down".into()))?;
        let payload = serde_json::to_vec(cmd)
            .map_err(|e| ControllerError::Unavailable(format!("encode: {e}")))?;
        let index = p
            .propose_control(Bytes::from(payload))
            .await
            .map_err(|e| ControllerError::Unavailable(e.to_string()))?;
        let outcome = self.hook.take_outcome(index).ok_or_else(|| {
            ControllerError::Unavailable(format!(
                "the outcome of controller entry {index} is no longer known"
            ))
        })?;
        Ok((index, outcome))
    }

    /// Waits (bounded) until this node applied controller entry `index`, so that what a
    /// caller changed is visible in this node's metadata.
    async fn wait_applied(&self, index: RaftIndex) {
        let deadline = Instant::now() + self.timeout;
        while self.hook.lock().applied() < index && Instant::now() < deadline {
            let mut rx = self.meta();
            let _ = tokio::time::timeout(Duration::from_millis(20), rx.changed()).await;
        }
    }

    async fn forward(
        &self,
        to: NodeId,
        addr: &str,
        cmd: &[u8],
        forwarded: bool,
    ) -> Result<(RaftIndex, Outcome), ControllerError> {
        self.link
            .propose(to, addr, Bytes::copy_from_slice(cmd), forwarded)
            .await
    }

    /// Answers a proposal another node forwarded here (`forwarded`: it was forwarded once
    /// already and must not travel further): proposed here if this node leads, else
    /// forwarded once to the leader this node knows.
    pub async fn propose_forwarded(
        &self,
        command: &[u8],
        forwarded: bool,
    ) -> Result<(RaftIndex, Outcome), ControllerError> {
        let cmd: Command = serde_json::from_slice(command).map_err(|e| {
            ControllerError::Refused(Refusal::Invalid(format!("undecodable command: {e}")))
        })?;
        let me = self.node_id;
        match self.leader() {
            Some((id, _)) if id == me => self.propose_local(&cmd).await,
            Some((id, addr)) if !forwarded && !addr.is_empty() => {
                self.forward(id, &addr, command, true).await
            }
            _ => Err(ControllerError::Unavailable(format!(
                "node {me} does not know the controller's leader"
            ))),
        }
    }

    /// Tells node `to` at `addr` which groups this node leads (see [`LeaderHints`]).
    pub async fn send_hints(
        &self,
        to: NodeId,
        addr: &str,
        led: Vec<(GroupId, u64)>,
    ) -> Result<(), ControllerError> {
        self.link.hints(to, addr, led).await
    }

    /// Proposes once: locally if this node leads, else to the leader it knows, else to the
    /// seeds (each forwards to its leader).
    async fn propose_once(&self, cmd: &Command) -> Result<(RaftIndex, Outcome), ControllerError> {
        let me = self.node_id;
        let leader = self.leader();
        if let Some((id, _)) = &leader
            && *id == me
        {
            return self.propose_local(cmd).await;
        }
        let bytes = serde_json::to_vec(cmd)
            .map_err(|e| ControllerError::Unavailable(format!("encode: {e}")))?;
        if let Some((id, addr)) = leader
            && !addr.is_empty()
        {
            return self.forward(id, &addr, &bytes, false).await;
        }
        let seeds: Vec<(NodeId, String)> = strata_record::sync::lock(&self.seeds)
            .iter()
            .filter(|(id, _)| **id != me)
            .map(|(id, a)| (*id, a.clone()))
            .collect();
        let mut last = ControllerError::Unavailable("no controller leader known".into());
        for (id, addr) in seeds {
            match self.forward(id, &addr, &bytes, false).await {
                Ok(o) => return Ok(o),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// Proposes `cmd` wherever the leader is, retrying while the controller has no leader, up
    /// to `patience`. A refusal is returned as [`ControllerError::Refused`].
    pub async fn propose(
        &self,
        cmd: &Command,
        patience: Duration,
    ) -> Result<Outcome, ControllerError> {
        let deadline = Instant::now() + patience;
        let mut backoff = Duration::from_millis(20);
        loop {
            match self.propose_once(cmd).await {
                Ok((index, outcome)) => {
                    self.wait_applied(index).await;
                    return match outcome {
                        Outcome::Refused(r) => Err(ControllerError::Refused(r)),
                        o => Ok(o),
                    };
                }
                Err(e) => {
                    if Instant::now() + backoff > deadline {
                        return Err(e);
                    }
                    tracing::debug!(error = %e, "controller proposal retried");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_millis(500));
                }
            }
        }
    }

    /// Waits until the metadata satisfies `f` (bounded).
    pub async fn wait_meta(&self, patience: Duration, f: impl Fn(&ClusterMeta) -> bool) -> bool {
        let mut rx = self.meta();
        tokio::time::timeout(patience, rx.wait_for(|m| f(m)))
            .await
            .is_ok_and(|r| r.is_ok())
    }
}

/// A forwarded proposal's answer as it travels back: the entry's index and its outcome.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Answer {
    /// The Raft index of the proposal's entry in the controller group (a plain number in the
    /// JSON).
    pub index: RaftIndex,
    /// What applying it produced.
    pub outcome: Outcome,
}

/// Who leads which partition group, as other nodes said (for partitions this node does not
/// host).
#[derive(Debug, Default)]
pub struct LeaderHints {
    map: Mutex<HashMap<GroupId, (NodeId, u64, Instant)>>,
}

/// How long a hint is believed without being repeated.
const HINT_TTL: Duration = Duration::from_secs(5);

impl LeaderHints {
    /// Records that `node` leads `group` in `term` (a lower term than known is ignored).
    pub fn record(&self, node: NodeId, group: GroupId, term: u64) {
        let mut m = strata_record::sync::lock(&self.map);
        let now = Instant::now();
        let newer = m
            .get(&group)
            .is_none_or(|(_, t, at)| term >= *t || at.elapsed() > HINT_TTL);
        if newer {
            m.insert(group, (node, term, now));
        }
    }

    /// The leader of `group` and its term, if a node said so recently.
    pub fn get(&self, group: GroupId) -> Option<(NodeId, u64)> {
        let m = strata_record::sync::lock(&self.map);
        m.get(&group)
            .filter(|(_, _, at)| at.elapsed() <= HINT_TTL)
            .map(|(n, t, _)| (*n, *t))
    }
}
