//! [`BrokerError`]: why a broker call failed, with what a caller needs to act on it.

use strata_cluster::meta::Refusal;

/// Why a broker call failed. Every variant names the limit, the range or the leader
/// involved; adapters map each to their protocol's codes without losing them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BrokerError {
    /// The topic does not exist.
    #[error("unknown topic {topic:?}")]
    UnknownTopic {
        /// The name asked for.
        topic: String,
    },
    /// The topic has fewer partitions.
    #[error("topic {topic:?} has {partitions} partitions; there is no partition {partition}")]
    UnknownPartition {
        /// The topic.
        topic: String,
        /// The partition asked for.
        partition: u32,
        /// How many the topic has.
        partitions: usize,
    },
    /// This node does not lead the partition (nothing was written): retry at the leader.
    #[error("this node does not lead {what}{}", match .leader {
        Some((id, addr)) => format!("; the leader is node {id} at {addr}"),
        None => "; the leader is not known yet, retry".to_string(),
    })]
    NotLeader {
        /// `topic/partition`.
        what: String,
        /// The leader's id and client address, when known.
        leader: Option<(u64, String)>,
    },
    /// The write may or may not have been committed.
    #[error("outcome unknown (the write may have been committed): {reason}")]
    Indeterminate {
        /// What happened.
        reason: String,
    },
    /// A request field is not acceptable.
    #[error("{field}: {reason}")]
    InvalidArgument {
        /// The field.
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// A batch (or the records encoded) is over the topic's `max.message.bytes`.
    #[error("batch of {size} bytes exceeds {limit_name} ({limit} bytes)")]
    MessageTooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
        /// The limit's name.
        limit_name: &'static str,
    },
    /// A count is over a configured limit.
    #[error("{value} is over {limit} ({max})")]
    LimitExceeded {
        /// The limit's name.
        limit: &'static str,
        /// Its value.
        max: u32,
        /// What was asked.
        value: u32,
    },
    /// The batch is malformed (checked before anything is written).
    #[error("invalid batch: {reason}")]
    InvalidBatch {
        /// What is wrong.
        reason: String,
    },
    /// An idempotent producer's batch does not continue its sequence.
    #[error("producer {producer_id}: expected sequence {expected}, got {got} (a batch is missing)")]
    OutOfOrderSequence {
        /// The producer.
        producer_id: i64,
        /// The next sequence expected.
        expected: i32,
        /// The batch's first sequence.
        got: i32,
    },
    /// A newer epoch of the producer exists.
    #[error("producer {producer_id} epoch {epoch} is fenced by epoch {current}")]
    ProducerFenced {
        /// The producer.
        producer_id: i64,
        /// The batch's epoch.
        epoch: i16,
        /// The current epoch.
        current: i16,
    },
    /// The offset is outside what the partition holds.
    #[error("offset {requested} of {what} is out of range: valid offsets are {start} to {end}")]
    OffsetOutOfRange {
        /// `topic/partition`.
        what: String,
        /// The offset asked for.
        requested: i64,
        /// The log start offset.
        start: i64,
        /// The high watermark.
        end: i64,
    },
    /// The local replica is down (storage failure; it is being reopened).
    #[error("the replica of {what} on this node is down: {reason}")]
    ReplicaDown {
        /// `topic/partition`.
        what: String,
        /// Why.
        reason: String,
    },
    /// The data disk is below the free-space floor: produce is refused.
    #[error(
        "the data disk of node {node} has {free} bytes free, below disk_free_bytes_min ({threshold}); produce is refused until space is freed"
    )]
    DiskFull {
        /// This node.
        node: u64,
        /// Bytes free.
        free: u64,
        /// The floor.
        threshold: u64,
    },
    /// The controller cannot take a change now (no leader, or it is unreachable).
    #[error("the controller cannot take the change now: {reason}")]
    NotController {
        /// Why.
        reason: String,
        /// The controller leader's id and client address, when known.
        leader: Option<(u64, String)>,
    },
    /// The controller applied the change and refused it.
    #[error(transparent)]
    Refused(Refusal),
    /// A consumer-group request refused by the group's coordinator.
    #[error(transparent)]
    Group(strata_groups::GroupError),
    /// A queue-group request refused by the partition's leader.
    #[error(transparent)]
    Queue(strata_groups::queue::QueueError),
    /// A bug or an impossible state, reported rather than hidden.
    #[error("internal error: {0}")]
    Internal(String),
}

impl BrokerError {
    /// An [`BrokerError::InvalidArgument`].
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> BrokerError {
        BrokerError::InvalidArgument {
            field: field.into(),
            reason: reason.into(),
        }
    }
}
