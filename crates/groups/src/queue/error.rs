//! [`QueueError`]: why a queue request, command or settle item was refused.

use serde::{Deserialize, Serialize};

/// Why a queue request, command or settle item was refused; each names what it is about.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum QueueError {
    /// The group has never acquired a record of this partition (or was deleted).
    #[error("unknown queue group {0:?} on this partition")]
    UnknownGroup(String),
    /// The record is acknowledged or dead-lettered already.
    #[error("offset {offset} is already settled (acknowledged or dead-lettered)")]
    AlreadySettled {
        /// The record.
        offset: i64,
    },
    /// The consumer's lock on the record ran out; it may have been handed to another.
    #[error("the lock on offset {offset} expired; the record will be (or was) delivered again")]
    LockExpired {
        /// The record.
        offset: i64,
    },
    /// The consumer does not hold the record.
    #[error("offset {offset} is not held by this consumer{}", match holder {
        Some(h) => format!(" (consumer {h:?} holds it)"),
        None => String::new(),
    })]
    NotHeld {
        /// The record.
        offset: i64,
        /// Who holds it, if anyone.
        holder: Option<String>,
    },
    /// A delete while consumers hold records.
    #[error("queue group {group:?} has {held} records locked by consumers; stop them first")]
    GroupBusy {
        /// The group.
        group: String,
        /// Records locked.
        held: usize,
    },
    /// A malformed request, or one past a limit (named).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// A command that would break an invariant; refused on every replica.
    #[error("refused, it would break an invariant: {0}")]
    Invariant(String),
}

impl QueueError {
    /// The stable reason code clients match on.
    pub fn reason(&self) -> &'static str {
        match self {
            QueueError::UnknownGroup(_) => "UNKNOWN_QUEUE_GROUP",
            QueueError::AlreadySettled { .. } => "ALREADY_SETTLED",
            QueueError::LockExpired { .. } => "LOCK_EXPIRED",
            QueueError::NotHeld { .. } => "NOT_HELD",
            QueueError::GroupBusy { .. } => "QUEUE_GROUP_BUSY",
            QueueError::InvalidRequest(_) => "INVALID_REQUEST",
            QueueError::Invariant(_) => "INVARIANT",
        }
    }
}
