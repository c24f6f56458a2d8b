//! [`GroupError`]: why a group request or command was refused.

use crate::model::TopicPartition;
use serde::{Deserialize, Serialize};

/// Why a group request or command was refused. Each names what it refers to, so a client
/// or an operator can act on it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum GroupError {
    /// The group name is empty, too long or has control characters.
    #[error("invalid group name: {0}")]
    InvalidName(String),
    /// No such group.
    #[error("unknown group {0:?}")]
    UnknownGroup(String),
    /// No such member (never joined, left, or removed when its session expired).
    #[error("unknown member {0:?}: it left or its session expired; join again")]
    UnknownMember(String),
    /// The member's epoch is not its current one: it missed a change and must join again.
    #[error("member {member:?} is fenced: its epoch is {current}, the request carried {got}")]
    FencedMemberEpoch {
        /// The member.
        member: String,
        /// Its epoch at the coordinator.
        current: u64,
        /// The epoch in the request.
        got: u64,
    },
    /// A commit for a partition the member does not hold.
    #[error("member {member:?} does not hold partition {tp}; only its holder commits for it")]
    NotOwned {
        /// The member.
        member: String,
        /// The partition.
        tp: TopicPartition,
    },
    /// A commit below the committed offset (only a reset moves an offset back).
    #[error(
        "offset {got} for {tp} is below the committed offset {committed}; committed offsets never go back (reset the group to move them)"
    )]
    OffsetBehind {
        /// The partition.
        tp: TopicPartition,
        /// The committed offset.
        committed: i64,
        /// The offset in the request.
        got: i64,
    },
    /// An offset that cannot be committed.
    #[error("offset {offset} for {tp} cannot be committed: {reason}")]
    InvalidOffset {
        /// The partition.
        tp: TopicPartition,
        /// The offset.
        offset: i64,
        /// Why.
        reason: String,
    },
    /// The operation needs a group without members.
    #[error("group {group:?} has {members} active members; stop them first")]
    GroupNotEmpty {
        /// The group.
        group: String,
        /// How many members it has.
        members: usize,
    },
    /// An update computed against an older group epoch (a bug in the coordinator, or a race
    /// it must retry).
    #[error("stale group epoch {got}; the group is at {current}")]
    StaleGroupEpoch {
        /// The group's epoch.
        current: u64,
        /// The epoch in the command.
        got: u64,
    },
    /// A malformed request.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// A command that would break an invariant; refused on every replica.
    #[error("refused, it would break an invariant: {0}")]
    Invariant(String),
}
