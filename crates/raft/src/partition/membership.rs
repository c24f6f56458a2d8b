//! Membership changes: adding learners, promoting them to voters and removing voters, each
//! serialized on the partition and checked on a leader that is a voter of its own membership.

use super::Partition;
use crate::error::PartitionError;
use crate::types::NodeId;
use openraft::{BasicNode, ChangeMembers, ServerState};
use std::collections::BTreeSet;

impl Partition {
    /// Refuses a membership change on a leader that is not a voter of its own membership: a
    /// leader that removed itself keeps leading until that change commits and it steps down,
    /// and openraft asserts (killing its Raft core in debug builds) when such a leader appends
    /// another membership entry. Checked inside the Raft core (not on metrics, which lag it),
    /// under the partition's membership lock: the check runs after every change proposed
    /// before it (the core takes requests in order), and no other change through this
    /// partition can come between the check and its own proposal. The caller retries on the
    /// next leader.
    async fn membership_leader(&self) -> Result<(), PartitionError> {
        let me = self.node_id;
        let leads_as_voter = self
            .raft
            .with_raft_state(move |st| {
                st.server_state == ServerState::Leader
                    && st
                        .membership_state
                        .effective()
                        .membership()
                        .voter_ids()
                        .any(|v| v == me)
            })
            .await?;
        if !leads_as_voter {
            return Err(PartitionError::NotLeader {
                leader_id: None,
                leader_addr: None,
            });
        }
        Ok(())
    }

    /// Adds a learner (a replica that receives the log but does not vote) and waits until it
    /// has caught up when `blocking`.
    pub async fn add_learner(
        &self,
        id: NodeId,
        addr: String,
        blocking: bool,
    ) -> Result<(), PartitionError> {
        self.wake().await;
        let _serial = self.membership.lock().await;
        self.membership_leader().await?;
        self.raft
            .add_learner(id, BasicNode { addr }, blocking)
            .await
            .map(|_| ())
            .map_err(PartitionError::from)
    }

    /// Makes these learners voters.
    pub async fn promote(&self, ids: BTreeSet<NodeId>) -> Result<(), PartitionError> {
        self.wake().await;
        let _serial = self.membership.lock().await;
        self.membership_leader().await?;
        self.raft
            .change_membership(ChangeMembers::AddVoterIds(ids), false)
            .await
            .map(|_| ())
            .map_err(PartitionError::from)
    }

    /// Removes these voters (and their nodes) from the group.
    pub async fn remove_voters(&self, ids: BTreeSet<NodeId>) -> Result<(), PartitionError> {
        self.wake().await;
        let _serial = self.membership.lock().await;
        self.membership_leader().await?;
        self.raft
            .change_membership(ChangeMembers::RemoveVoters(ids), false)
            .await
            .map(|_| ())
            .map_err(PartitionError::from)
    }
}
