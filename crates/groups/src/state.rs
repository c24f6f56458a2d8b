//! [`GroupsState`]: the groups of one `__consumer_offsets` partition, and the [`Command`]s
//! that change them.
//!
//! `apply` is deterministic (no clock: times come in the command, stamped by the
//! coordinator) and all-or-nothing: a refused command changes nothing. It is where the
//! invariants are enforced, whatever the coordinator computed:
//! - a partition is held by at most one member of a group;
//! - a committed offset never goes backwards, except through an explicit [`Command::Reset`];
//! - only a member holding a partition, in its current (or previous) epoch, commits for it;
//!   a group with members accepts no commit from outside them;
//! - a group's epoch never goes backwards.

use crate::error::GroupError;
use crate::model::{Committed, Group, Member, TopicPartition};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The longest group name, in bytes.
pub const GROUP_NAME_BYTES_MAX: usize = 255;

/// The longest metadata string of a committed offset, in bytes (Kafka's default
/// `offset.metadata.max.bytes`).
pub const COMMIT_METADATA_BYTES_MAX: usize = 4096;

/// One offset to commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitEntry {
    /// The partition.
    pub tp: TopicPartition,
    /// The next offset to read.
    pub offset: i64,
    /// The client's metadata string.
    pub metadata: String,
}

/// A change to the groups of a partition, as proposed by its coordinator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Writes members (a join, or a change of subscription, epoch or partitions) and removes
    /// others, at group epoch `epoch`. Creates the group if it does not exist.
    Update {
        /// The group.
        group: String,
        /// The group's epoch after the change.
        epoch: u64,
        /// Members written whole.
        put: Vec<Member>,
        /// Members removed, with the reason.
        remove: Vec<(String, String)>,
        /// For a Kafka classic group: its protocol type and chosen protocol.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        classic: Option<(String, String)>,
    },
    /// Commits offsets for a member (`member_id` empty: a client outside the group's
    /// membership, accepted only while the group has no members).
    Commit {
        /// The group.
        group: String,
        /// The committing member, or empty.
        member_id: String,
        /// The member's epoch as it knows it.
        member_epoch: u64,
        /// The offsets.
        offsets: Vec<CommitEntry>,
        /// The coordinator's clock when it proposed the commit.
        now_ms: u64,
    },
    /// Sets offsets whatever they were (an operator's reset); the group must have no members.
    Reset {
        /// The group.
        group: String,
        /// The new offsets.
        offsets: Vec<(TopicPartition, i64)>,
        /// The coordinator's clock.
        now_ms: u64,
    },
    /// Deletes a group with no members, with its offsets.
    Delete {
        /// The group.
        group: String,
    },
    /// Forgets a deleted topic: its offsets in every group, and its partitions in members'
    /// assignments.
    DropTopic {
        /// The deleted topic's id.
        topic_id: String,
    },
}

/// The groups of one `__consumer_offsets` partition.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupsState {
    /// Groups by name.
    pub groups: BTreeMap<String, Group>,
}

/// Why a group name is not acceptable.
pub fn check_group_name(name: &str) -> Result<(), GroupError> {
    if name.is_empty() {
        return Err(GroupError::InvalidName("group name is empty".into()));
    }
    if name.len() > GROUP_NAME_BYTES_MAX {
        return Err(GroupError::InvalidName(format!(
            "group name is {} bytes long; the limit is {GROUP_NAME_BYTES_MAX}",
            name.len()
        )));
    }
    if name.chars().any(|c| c.is_control()) {
        return Err(GroupError::InvalidName(format!(
            "group name {name:?} contains a control character"
        )));
    }
    Ok(())
}

impl GroupsState {
    /// Applies `cmd`; on a refusal nothing changed.
    pub fn apply(&mut self, cmd: &Command) -> Result<(), GroupError> {
        match cmd {
            Command::Update {
                group,
                epoch,
                put,
                remove,
                classic,
            } => {
                check_group_name(group)?;
                let mut g = self.groups.get(group).cloned().unwrap_or_default();
                if *epoch < g.epoch {
                    return Err(GroupError::StaleGroupEpoch {
                        current: g.epoch,
                        got: *epoch,
                    });
                }
                g.epoch = *epoch;
                if classic.is_some() {
                    g.classic_protocol.clone_from(classic);
                }
                for (id, _) in remove {
                    g.members.remove(id);
                }
                for m in put {
                    g.members.insert(m.id.clone(), m.clone());
                }
                if let Some(tp) = g.doubly_owned() {
                    return Err(GroupError::Invariant(format!(
                        "group {group:?}: partition {tp} would be held by two members"
                    )));
                }
                self.groups.insert(group.clone(), g);
                Ok(())
            }
            Command::Commit {
                group,
                member_id,
                member_epoch,
                offsets,
                now_ms,
            } => {
                check_group_name(group)?;
                let g = self.groups.entry(group.clone()).or_default();
                let check = check_commit(group, g, member_id, *member_epoch, offsets);
                if check.is_err() && g.members.is_empty() && g.offsets.is_empty() {
                    // Do not leave an empty group behind a refused commit.
                    self.groups.remove(group);
                }
                check?;
                let Some(g) = self.groups.get_mut(group) else {
                    return Err(GroupError::Invariant("group vanished".into()));
                };
                for e in offsets {
                    g.offsets.insert(
                        e.tp.clone(),
                        Committed {
                            offset: e.offset,
                            metadata: e.metadata.clone(),
                            commit_ms: *now_ms,
                        },
                    );
                }
                Ok(())
            }
            Command::Reset {
                group,
                offsets,
                now_ms,
            } => {
                let g = self
                    .groups
                    .get_mut(group)
                    .ok_or_else(|| GroupError::UnknownGroup(group.clone()))?;
                if !g.members.is_empty() {
                    return Err(GroupError::GroupNotEmpty {
                        group: group.clone(),
                        members: g.members.len(),
                    });
                }
                if let Some((tp, o)) = offsets.iter().find(|(_, o)| *o < 0) {
                    return Err(GroupError::InvalidOffset {
                        tp: tp.clone(),
                        offset: *o,
                        reason: "offsets are not negative".into(),
                    });
                }
                for (tp, offset) in offsets {
                    g.offsets.insert(
                        tp.clone(),
                        Committed {
                            offset: *offset,
                            metadata: String::new(),
                            commit_ms: *now_ms,
                        },
                    );
                }
                Ok(())
            }
            Command::Delete { group } => {
                let g = self
                    .groups
                    .get(group)
                    .ok_or_else(|| GroupError::UnknownGroup(group.clone()))?;
                if !g.members.is_empty() {
                    return Err(GroupError::GroupNotEmpty {
                        group: group.clone(),
                        members: g.members.len(),
                    });
                }
                self.groups.remove(group);
                Ok(())
            }
            Command::DropTopic { topic_id } => {
                for g in self.groups.values_mut() {
                    g.offsets.retain(|tp, _| tp.topic_id != *topic_id);
                    for m in g.members.values_mut() {
                        m.owned.retain(|tp| tp.topic_id != *topic_id);
                        m.target.retain(|tp| tp.topic_id != *topic_id);
                    }
                }
                self.groups
                    .retain(|_, g| !(g.members.is_empty() && g.offsets.is_empty()));
                Ok(())
            }
        }
    }
}

/// Whether `member_id` may commit `offsets` in `g` now.
pub fn check_commit(
    group: &str,
    g: &Group,
    member_id: &str,
    member_epoch: u64,
    offsets: &[CommitEntry],
) -> Result<(), GroupError> {
    if member_id.is_empty() {
        if !g.members.is_empty() {
            return Err(GroupError::GroupNotEmpty {
                group: group.to_string(),
                members: g.members.len(),
            });
        }
    } else {
        let m = g
            .members
            .get(member_id)
            .ok_or_else(|| GroupError::UnknownMember(member_id.to_string()))?;
        if member_epoch != m.epoch && member_epoch != m.previous_epoch {
            return Err(GroupError::FencedMemberEpoch {
                member: member_id.to_string(),
                current: m.epoch,
                got: member_epoch,
            });
        }
        // A classic member's partitions are the client leader's business (Kafka fences its
        // commits by generation only).
        if m.classic.is_none()
            && let Some(e) = offsets.iter().find(|e| !m.owned.contains(&e.tp))
        {
            return Err(GroupError::NotOwned {
                member: member_id.to_string(),
                tp: e.tp.clone(),
            });
        }
    }
    for e in offsets {
        if e.offset < 0 {
            return Err(GroupError::InvalidOffset {
                tp: e.tp.clone(),
                offset: e.offset,
                reason: "offsets are not negative".into(),
            });
        }
        if e.metadata.len() > COMMIT_METADATA_BYTES_MAX {
            return Err(GroupError::InvalidRequest(format!(
                "commit metadata for {} is {} bytes; the limit is {COMMIT_METADATA_BYTES_MAX}",
                e.tp,
                e.metadata.len()
            )));
        }
        if let Some(c) = g.offsets.get(&e.tp)
            && e.offset < c.offset
        {
            return Err(GroupError::OffsetBehind {
                tp: e.tp.clone(),
                committed: c.offset,
                got: e.offset,
            });
        }
    }
    Ok(())
}
