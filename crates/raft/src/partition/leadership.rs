//! Leadership and the leader lease: who leads, whether this replica may serve as leader now
//! (leads, caught up with what its log held when it took over, acknowledged by a quorum within
//! the lease), elections and leader transfers, and the wait for a deposition.

use super::{Partition, SleepState, lock};
use crate::error::PartitionError;
use crate::numbers::RaftIndex;
use crate::types::{NodeId, TypeConfig};
use openraft::type_config::async_runtime::WatchReceiver;
use openraft::{Instant as _, RaftMetrics, ServerState};
use std::sync::Mutex;
use std::time::Duration;

/// The leadership this replica observed: its term and the Raft index of its last entry when it
/// was first seen leading in that term.
pub(super) type LeadStart = Mutex<Option<(u64, RaftIndex)>>;

/// Whether `m` shows a leader that may serve: it leads, has applied everything its log held
/// when its leadership was first observed (every committed entry is in a leader's log, so its
/// high watermark and producer state are then current; an entry of its own term is not
/// enough, because openraft restores a leader's committed vote after a restart, with the
/// same term and a stale commit index), and a quorum acknowledged it within the lease.
fn ready_leader(m: &RaftMetrics<TypeConfig>, me: NodeId, lease_ms: u64, lead: &LeadStart) -> bool {
    if m.current_leader != Some(me) || m.state != ServerState::Leader {
        return false;
    }
    let start = {
        let mut l = lock(lead);
        match *l {
            Some((term, start)) if term == m.current_term => start,
            _ => {
                let start = RaftIndex::new(m.last_log_index.unwrap_or(0));
                *l = Some((m.current_term, start));
                start
            }
        }
    };
    m.last_applied.is_some_and(|l| {
        l.committed_leader_id().term == m.current_term && RaftIndex::new(l.index) >= start
    }) && quorum_acked_within(m, me, lease_ms)
}

/// Whether a quorum acknowledged this leader within `lease_ms`. A leader that is the only
/// voter is its own quorum: openraft never refreshes `last_quorum_acked` for it (nobody
/// answers), and no other leader can be elected without a membership change it commits itself.
pub(super) fn quorum_acked_within(m: &RaftMetrics<TypeConfig>, me: NodeId, lease_ms: u64) -> bool {
    let mut voters = m.membership_config.membership().voter_ids();
    let sole_voter = voters.next() == Some(me) && voters.next().is_none();
    sole_voter
        || m.last_quorum_acked
            .as_ref()
            .is_some_and(|t| t.elapsed() <= Duration::from_millis(lease_ms))
}

impl Partition {
    /// The leader as this replica knows it: (node id, peer address).
    pub fn leader(&self) -> Option<(NodeId, String)> {
        let m = self.metrics();
        let id = m.current_leader?;
        let addr = m
            .membership_config
            .membership()
            .get_node(&id)
            .map(|n| n.addr.clone())
            .unwrap_or_default();
        Some((id, addr))
    }

    fn not_leader(&self, m: &RaftMetrics<TypeConfig>) -> PartitionError {
        let leader_id = m.current_leader.filter(|l| *l != self.node_id);
        let leader_addr = leader_id.and_then(|id| {
            m.membership_config
                .membership()
                .get_node(&id)
                .map(|n| n.addr.clone())
        });
        PartitionError::NotLeader {
            leader_id,
            leader_addr,
        }
    }

    /// Whether this replica may serve as leader now: it leads, has applied everything its log
    /// held when its leadership was first observed (so its high watermark and producer state
    /// are current; see `ready_leader`), and a quorum acknowledged it within the leader lease
    /// (a leader cut off from its quorum stops serving before a new one can be elected).
    pub fn is_ready_leader(&self) -> bool {
        self.with_metrics(|m| ready_leader(m, self.node_id, self.lease_ms, &self.lead))
    }

    /// Whether this replica serves the partition now: a ready leader (see
    /// [`Partition::is_ready_leader`]), or the leader of an idle group that sleeps (no
    /// heartbeats, so no lease) while a majority of its voters, itself included, is `alive`
    /// (the node's liveness view): it wakes on the next request. What `/readyz` and the
    /// `is_leader` gauge report.
    pub fn can_serve(&self, alive: impl Fn(NodeId) -> bool) -> bool {
        if *self.closed.borrow() {
            return false;
        }
        if self.is_ready_leader() {
            return true;
        }
        if !matches!(self.sleep_state(), SleepState::LeaderAsleep { .. }) {
            return false;
        }
        self.with_metrics(|m| {
            let voters: Vec<NodeId> = m.membership_config.membership().voter_ids().collect();
            let up = voters
                .iter()
                .filter(|v| **v == self.node_id || alive(**v))
                .count();
            m.current_leader == Some(self.node_id) && up * 2 > voters.len()
        })
    }

    /// Waits (bounded) until this replica is a ready leader (see [`Partition::is_ready_leader`]).
    /// Wakes the group first if it sleeps.
    pub(super) async fn ready_leader(&self) -> Result<(), PartitionError> {
        self.check_open()?;
        self.wake().await;
        let me = self.node_id;
        let lease = self.lease_ms;
        let lead = self.lead.clone();
        let ready = move |m: &RaftMetrics<TypeConfig>| ready_leader(m, me, lease, &lead);
        let m = self.metrics();
        if ready(&m) {
            return Ok(());
        }
        if m.current_leader != Some(me) {
            return Err(self.not_leader(&m));
        }
        self.raft
            .wait(Some(self.write_timeout))
            .metrics(|m| ready(m) || m.current_leader != Some(me), "leader ready")
            .await
            .map_err(|_| self.not_leader(&self.metrics()))?;
        let m = self.metrics();
        if ready(&m) {
            Ok(())
        } else {
            Err(self.not_leader(&m))
        }
    }

    /// Fails unless this replica can serve as the partition's leader now (leader, caught up,
    /// within its lease): what a caller checks before answering from this replica's state
    /// (a follower's or a deposed leader's high watermark may be behind).
    pub async fn ensure_serving(&self) -> Result<(), PartitionError> {
        self.ready_leader().await
    }

    /// Whether this replica is the leader (ready or not, awake or asleep).
    pub fn leads(&self) -> bool {
        self.with_metrics(|m| {
            m.state == ServerState::Leader && m.current_leader == Some(self.node_id)
        })
    }

    /// Stands for election at once (after a pre-vote round, so a healthy leader is not
    /// disturbed). Used by a new group's preferred leader, and by the liveness ticker for the
    /// followers of a leader whose node fell silent.
    pub async fn elect(&self) -> Result<(), PartitionError> {
        if self.quarantine.until().is_some() {
            return Ok(());
        }
        Ok(self.raft.trigger().elect(true).await?)
    }

    /// Waits up to `timeout` until this replica no longer counts `node` as its leader.
    pub async fn wait_leader_is_not(&self, node: NodeId, timeout: Duration) -> bool {
        self.raft
            .wait(Some(timeout))
            .metrics(|m| m.current_leader != Some(node), "leader changed")
            .await
            .is_ok()
    }

    /// Asks the current leader (this replica) to hand leadership to `to`.
    pub async fn transfer_leader(&self, to: NodeId) -> Result<(), PartitionError> {
        self.wake().await;
        Ok(self.raft.trigger().transfer_leader(to).await?)
    }

    /// Resolves with the new leader (if known) once this replica no longer leads (or stops).
    /// Watches the server metrics, which change only with the vote, state or leader.
    pub(super) async fn deposed(&self) -> Option<NodeId> {
        let mut server = self.raft.server_metrics();
        loop {
            let leader = server.borrow_watched().current_leader;
            if leader != Some(self.node_id) {
                return leader;
            }
            if server.changed().await.is_err() {
                return None;
            }
        }
    }
}
