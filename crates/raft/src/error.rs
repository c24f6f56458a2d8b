//! [`PartitionError`]: each variant is a decision for the caller.

use crate::types::{NodeId, TypeConfig};
use openraft::error::{ClientWriteError, Fatal, ForwardToLeader, InitializeError, RaftError};
use std::io;
use strata_log::{LogError, Offset};

/// Why a partition operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PartitionError {
    /// This replica is not the leader (or not yet ready to serve as one). Nothing was written:
    /// retry at `leader` when known.
    #[error("not the leader of this partition{}", leader_hint(.leader_id, .leader_addr))]
    NotLeader {
        /// The leader's node id, when known.
        leader_id: Option<NodeId>,
        /// The leader's peer address, when known.
        leader_addr: Option<String>,
    },
    /// The write may or may not have been committed (leadership was lost after the entry was
    /// appended). An idempotent producer retries safely; others may see a duplicate.
    #[error("outcome unknown: {reason}")]
    Indeterminate {
        /// What happened.
        reason: String,
    },
    /// The batch is malformed or not acceptable (checked before anything is written).
    #[error("invalid batch: {reason}")]
    InvalidBatch {
        /// What is wrong.
        reason: String,
    },
    /// An idempotent producer's batch does not continue its sequence.
    #[error("out of order sequence for producer {producer_id}: expected {expected}, got {got}")]
    OutOfOrderSequence {
        /// The producer.
        producer_id: i64,
        /// The sequence the next batch must start at.
        expected: i32,
        /// The batch's first sequence.
        got: i32,
    },
    /// A newer epoch of this producer id exists.
    #[error("producer {producer_id} epoch {epoch} is fenced by epoch {current}")]
    ProducerFenced {
        /// The producer.
        producer_id: i64,
        /// The batch's epoch.
        epoch: i16,
        /// The current epoch.
        current: i16,
    },
    /// A requested offset is outside the partition's readable range.
    #[error("offset {requested} is out of range: valid offsets are {start}..{end}")]
    OffsetOutOfRange {
        /// Requested offset.
        requested: i64,
        /// Log start offset.
        start: i64,
        /// High watermark (exclusive end of what a consumer may read).
        end: i64,
    },
    /// The group already has a log: `initialize` ran before, here or on another replica whose
    /// membership reached this one. Nothing was written; the group needs nothing more.
    #[error("the group is already initialized")]
    AlreadyInitialized,
    /// Data read from this replica's log or snapshot file is damaged or unreadable; nothing
    /// damaged was served. A fetch that finds it has the replica reopened with a full check of
    /// its log (it then repairs from the other replicas); a failed open is retried that way
    /// too. Retry, at the leader (which may by then be another replica).
    #[error("corrupt data in the replica's log: {reason}")]
    Corrupt {
        /// What was found.
        reason: String,
    },
    /// This replica's storage failed (a disk IO error, or a log that refuses writes after a
    /// failed sync). The replica stops and its supervisor reopens it from disk; retry.
    #[error("replica storage failed: {reason}")]
    Storage {
        /// The IO or log error.
        reason: String,
    },
    /// This handle's replica was closed: its topic was deleted, it moved off this node, or the
    /// node is stopping. Look the partition up again (it may now be elsewhere).
    #[error(
        "the replica was closed (its topic was deleted, or it moved off this node, or the node is stopping)"
    )]
    Closed,
    /// The replica's Raft group has stopped and takes no more requests: it was shut down, or
    /// an earlier failure stopped it (its supervisor then reopens it). Retry.
    #[error("the replica's raft group has stopped")]
    Stopped,
    /// A membership change was refused and nothing changed: another change is in progress, a
    /// learner to promote is not a member, or the change is not allowed from the current
    /// membership. Retry once the current change is done, or fix the request.
    #[error("membership change refused: {reason}")]
    MembershipRefused {
        /// Why.
        reason: String,
    },
    /// The partition's configuration is invalid (its Raft timing): fix the configuration.
    #[error("invalid partition configuration: {reason}")]
    InvalidConfig {
        /// What is wrong.
        reason: String,
    },
    /// A bug: an impossible state or a task that panicked. Reported, never hidden.
    #[error("internal error in the partition replica: {reason}")]
    Internal {
        /// What happened.
        reason: String,
    },
}

/// A write that reached a replica that does not lead: [`PartitionError::NotLeader`] with the
/// leader openraft knows (the one place openraft's forward hint becomes ours).
impl From<ForwardToLeader<TypeConfig>> for PartitionError {
    fn from(f: ForwardToLeader<TypeConfig>) -> PartitionError {
        PartitionError::NotLeader {
            leader_id: f.leader_id,
            leader_addr: f.leader_node.map(|n| n.addr),
        }
    }
}

/// A refused client write: not the leader ([`PartitionError::NotLeader`]), discarded on a
/// leader change with its fate unknown ([`PartitionError::Indeterminate`]), a refused
/// membership change ([`PartitionError::MembershipRefused`]), or a failed precondition (none is
/// ever attached here: [`PartitionError::Internal`]).
impl From<ClientWriteError<TypeConfig>> for PartitionError {
    fn from(e: ClientWriteError<TypeConfig>) -> PartitionError {
        match e {
            ClientWriteError::ForwardToLeader(f) => f.into(),
            ClientWriteError::LogEntryDiscarded(f) => PartitionError::Indeterminate {
                reason: format!(
                    "entry discarded on leader change (leader now {:?})",
                    f.leader_id
                ),
            },
            ClientWriteError::ChangeMembershipError(e) => PartitionError::MembershipRefused {
                reason: e.to_string(),
            },
            // No write of this crate carries a precondition.
            e @ ClientWriteError::PreconditionFailed(_) => PartitionError::Internal {
                reason: e.to_string(),
            },
        }
    }
}

/// The Raft group stopped: on a storage failure ([`PartitionError::Storage`]), a panic of its
/// core ([`PartitionError::Internal`]) or a shutdown ([`PartitionError::Stopped`]).
impl From<Fatal<TypeConfig>> for PartitionError {
    fn from(f: Fatal<TypeConfig>) -> PartitionError {
        match f {
            Fatal::StorageError(e) => PartitionError::Storage {
                reason: e.to_string(),
            },
            Fatal::Panicked => PartitionError::Internal {
                reason: "the raft core panicked".to_string(),
            },
            Fatal::Stopped => PartitionError::Stopped,
        }
    }
}

/// `initialize` refused: the group has a log already ([`PartitionError::AlreadyInitialized`]),
/// or this node is not among the voters given (a caller's bug: [`PartitionError::Internal`]).
impl From<InitializeError<TypeConfig>> for PartitionError {
    fn from(e: InitializeError<TypeConfig>) -> PartitionError {
        match e {
            InitializeError::NotAllowed(_) => PartitionError::AlreadyInitialized,
            e @ InitializeError::NotInMembers(_) => PartitionError::Internal {
                reason: e.to_string(),
            },
        }
    }
}

/// An openraft API error: its own error through the conversions above, or the group stopped.
impl<E> From<RaftError<TypeConfig, E>> for PartitionError
where
    E: std::error::Error + Into<PartitionError>,
{
    fn from(e: RaftError<TypeConfig, E>) -> PartitionError {
        match e {
            RaftError::APIError(e) => e.into(),
            RaftError::Fatal(f) => f.into(),
        }
    }
}

impl PartitionError {
    /// [`PartitionError::OffsetOutOfRange`] from the partition's own offsets (the error, like
    /// the rest of [`crate::partition::Partition`]'s API, carries Kafka's `i64`).
    pub(crate) fn offset_out_of_range(
        requested: Offset,
        start: Offset,
        end: Offset,
    ) -> PartitionError {
        PartitionError::OffsetOutOfRange {
            requested: requested.get(),
            start: start.get(),
            end: end.get(),
        }
    }

    /// A log error: damaged or unreadable data ([`PartitionError::Corrupt`]), a failed disk or
    /// log ([`PartitionError::Storage`]), or a request this crate should never make
    /// ([`PartitionError::Internal`]).
    pub(crate) fn log(e: LogError) -> PartitionError {
        let reason = e.to_string();
        match e {
            LogError::Corrupt { .. } | LogError::Unrecoverable { .. } => {
                PartitionError::Corrupt { reason }
            }
            LogError::Io { .. } | LogError::Failed { .. } | LogError::FlusherStopped => {
                PartitionError::Storage { reason }
            }
            LogError::OffsetOutOfRange { .. }
            | LogError::IndexOutOfRange { .. }
            | LogError::InvalidEntry { .. } => PartitionError::Internal { reason },
        }
    }

    /// An IO error of the log store or the state machine: a [`LogError`] it carries maps as in
    /// [`PartitionError::log`]; otherwise data that does not decode is
    /// [`PartitionError::Corrupt`] and the rest is [`PartitionError::Storage`].
    pub(crate) fn io(e: io::Error) -> PartitionError {
        let reason = e.to_string();
        let kind = e.kind();
        if let Some(inner) = e.into_inner()
            && let Ok(log) = inner.downcast::<LogError>()
        {
            return PartitionError::log(*log);
        }
        if kind == io::ErrorKind::InvalidData {
            PartitionError::Corrupt { reason }
        } else {
            PartitionError::Storage { reason }
        }
    }

    /// A blocking task that did not finish (it panicked, or the runtime is shutting down): a
    /// bug or a stop, not a storage failure.
    pub(crate) fn task(e: tokio::task::JoinError) -> PartitionError {
        PartitionError::Internal {
            reason: format!("a partition task did not finish: {e}"),
        }
    }
}

fn leader_hint(id: &Option<NodeId>, addr: &Option<String>) -> String {
    match (id, addr) {
        (Some(id), Some(addr)) => format!(" (leader: node {id} at {addr})"),
        (Some(id), None) => format!(" (leader: node {id})"),
        _ => " (leader unknown)".to_string(),
    }
}
