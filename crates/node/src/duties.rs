//! A node's background duties: registering with the controller, following the metadata
//! (replica reconciliation, moves), keeping the controller's voters right on its leader,
//! periodic disk checks, preferred leaders and leadership hints.

use crate::controller::{Controller, ControllerError};
use crate::error::NodeError;
use crate::meta::{ClusterMeta, Command, NodeMeta, NodeState, Refusal};
use crate::shared::Shared;
use std::sync::Arc;
use std::time::Duration;
use strata_raft::GroupId;
use strata_raft::replica::ReplicaStatus;
use tokio::sync::watch;

pub(crate) async fn register(
    controller: &Controller,
    node_id: u64,
    me: NodeMeta,
) -> Result<(), NodeError> {
    let cmd = Command::RegisterNode { node_id, meta: me };
    loop {
        match controller.propose(&cmd, Duration::from_secs(30)).await {
            Ok(_) => return Ok(()),
            Err(ControllerError::Refused(r @ Refusal::IncarnationMismatch { .. })) => {
                return Err(NodeError::Refused(r.to_string()));
            }
            Err(ControllerError::Refused(r)) => return Err(NodeError::Refused(r.to_string())),
            Err(ControllerError::Unavailable(m)) => {
                tracing::warn!(reason = %m, "waiting for the controller to register this node");
            }
        }
    }
}

pub(crate) async fn follow_meta(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut rx = shared.controller.meta();
    loop {
        let meta = rx.borrow_and_update().clone();
        shared.replicas.reconcile(&meta).await;
        shared.replicas.drive_moves(&meta, &shared.controller);
        maintain_controller(&shared, &meta).await;
        tokio::select! {
            r = rx.changed() => if r.is_err() { return },
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// On the controller's leader: every registered node follows the controller (as a learner if
/// it is not a voter); nodes that no longer exist are dropped.
async fn maintain_controller(shared: &Shared, meta: &ClusterMeta) {
    let Some(p) = shared.controller.partition() else {
        return;
    };
    if !p.is_ready_leader() {
        return;
    }
    let st = p.status();
    let members: Vec<u64> = st.members.keys().copied().collect();
    for (id, n) in &meta.nodes {
        if !members.contains(id) {
            tracing::info!(node = id, "adding node to the controller as a learner");
            if let Err(e) = p.add_learner(*id, n.peer_addr.clone(), false).await {
                tracing::warn!(node = id, error = %e, "add controller learner");
            }
        }
    }
    // Voters: 1 below 3 active nodes, 3 below 5, then 5, chosen among active nodes.
    // Caught-up, live learners are promoted; a decommissioning voter is removed once enough
    // active voters remain (or none can replace it).
    let active = meta.active_nodes();
    let want = match active.len() {
        0..=2 => 1,
        3 | 4 => 3,
        _ => 5,
    };
    let (voters, last, matched) = (
        st.voters.clone(),
        st.last_log_index.unwrap_or_default(),
        st.matched.clone(),
    );
    let active_voters = voters.iter().filter(|v| active.contains(v)).count();
    let candidates: Vec<u64> = active
        .iter()
        .filter(|id| !voters.contains(id) && shared.alive(**id))
        .filter(|id| matched.get(id).is_some_and(|m| last.entries_after(*m) < 16))
        .copied()
        .collect();
    if active_voters < want && !candidates.is_empty() {
        let promote: std::collections::BTreeSet<u64> = candidates
            .iter()
            .take(want - active_voters)
            .copied()
            .collect();
        // Keep an odd number of voters: promote one short only when a leaving voter goes next.
        let leaving = voters.len() - active_voters;
        if promote.len() == want - active_voters || leaving > 0 {
            tracing::info!(?promote, "promoting nodes to controller voters");
            if let Err(e) = p.promote(promote).await {
                tracing::warn!(error = %e, "promote controller voters");
            }
            return;
        }
    }
    let leaving: std::collections::BTreeSet<u64> = voters
        .iter()
        .filter(|v| !active.contains(v) && meta.nodes.contains_key(v))
        .copied()
        .collect();
    if !leaving.is_empty() && (active_voters >= want || candidates.is_empty()) && active_voters > 0
    {
        tracing::info!(
            ?leaving,
            "removing decommissioned nodes from the controller voters"
        );
        if let Err(e) = p.remove_voters(leaving).await {
            tracing::warn!(error = %e, "remove controller voters");
        }
    }
}

/// How often (seconds) leaders hand leadership back to preferred leaders.
const PREFER_LEADERS_EVERY_S: u64 = 30;

/// Tells every other node which groups this node leads (fire and forget, in the background).
fn send_hints(shared: &Arc<Shared>, meta: &ClusterMeta) {
    let me = shared.identity.node_id;
    let led: Vec<(GroupId, u64)> = shared
        .replicas
        .all()
        .iter()
        .filter_map(|h| {
            let st = h.partition()?.status();
            (st.leader == Some(me)).then_some((h.group_id, st.term))
        })
        .collect();
    if led.is_empty() {
        return;
    }
    for (id, n) in &meta.nodes {
        if *id == me || n.state != NodeState::Active || !shared.alive(*id) {
            continue;
        }
        let (shared, to, addr, led) = (shared.clone(), *id, n.peer_addr.clone(), led.clone());
        tokio::spawn(async move {
            let _ = shared.controller.send_hints(to, &addr, led).await;
        });
    }
}

pub(crate) async fn periodic(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut n: u64 = 0;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        n += 1;
        let s = shared.clone();
        let _ = tokio::task::spawn_blocking(move || s.refresh_disk()).await;
        let meta = shared.controller.snapshot();
        shared.replicas.drive_moves(&meta, &shared.controller);
        maintain_controller(&shared, &meta).await;
        if n.is_multiple_of(PREFER_LEADERS_EVERY_S) {
            shared.replicas.prefer_leaders(&meta).await;
        }
        send_hints(&shared, &meta);
        // A replica that came back after a failure may have been registered under a stale
        // handle: the supervisor's on_open re-registered it.
        for r in shared.replicas.all() {
            if let ReplicaStatus::Down { reason } = r.replica.status() {
                tracing::debug!(topic = %r.topic, partition = r.partition, %reason, "replica down");
            }
        }
    }
}

/// How often group coordinators check sessions and rebalance timeouts.
const GROUPS_TICK: Duration = Duration::from_millis(500);

/// Expires group members whose session or rebalance timeout passed, on the coordinators this
/// node leads, and publishes each group's lag (`strata_group_lag`) for the partitions whose
/// replica is hosted here.
pub(crate) async fn groups(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(GROUPS_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        for (group, topic, partition, lag) in shared.broker.groups_tick().await {
            metrics::gauge!("strata_group_lag", "group" => group, "topic" => topic,
                "partition" => partition.to_string())
            .set(lag as f64);
        }
    }
}

/// How often partition leaders move dead letters and settle what retention removed.
const QUEUES_TICK: Duration = Duration::from_millis(200);

/// Dead-letters records that are due (rejected, or delivered `max_deliveries` times and not
/// locked) and settles records retention removed, for the queue groups of the partitions this
/// node leads.
pub(crate) async fn queues(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(QUEUES_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        shared.broker.queues_tick().await;
    }
}
