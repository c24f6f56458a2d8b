//! [`PartitionError`]: each variant is a decision for the caller.

use crate::types::{NodeId, TypeConfig};
use openraft::error::ForwardToLeader;

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
    /// The replica stopped (storage failure or shutdown); it must be reopened.
    #[error("partition replica failed: {reason}")]
    Fatal {
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

fn leader_hint(id: &Option<NodeId>, addr: &Option<String>) -> String {
    match (id, addr) {
        (Some(id), Some(addr)) => format!(" (leader: node {id} at {addr})"),
        (Some(id), None) => format!(" (leader: node {id})"),
        _ => " (leader unknown)".to_string(),
    }
}
