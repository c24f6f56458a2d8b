//! Errors of the client API as gRPC statuses with a `google.rpc.ErrorInfo` (domain
//! `strata.io`): the reasons and metadata keys are listed in `proto/strata/v1/strata.proto`.

use std::collections::HashMap;
use strata_raft::error::PartitionError;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// The ErrorInfo domain.
pub const DOMAIN: &str = "strata.io";

/// A status with an ErrorInfo of `reason` and `meta`.
pub fn status(code: Code, reason: &str, message: String, meta: &[(&str, String)]) -> Status {
    let meta: HashMap<String, String> = meta
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    Status::with_error_details(
        code,
        message,
        ErrorDetails::with_error_info(reason, DOMAIN, meta),
    )
}

/// NOT_LEADER with the leader's client address when known.
pub fn not_leader(what: &str, leader: Option<(u64, String)>) -> Status {
    match leader {
        Some((id, addr)) => status(
            Code::Unavailable,
            "NOT_LEADER",
            format!("this node does not lead {what}; the leader is node {id} at {addr}"),
            &[("leader_id", id.to_string()), ("leader_addr", addr)],
        ),
        None => status(
            Code::Unavailable,
            "NOT_LEADER",
            format!("this node does not lead {what}; the leader is not known yet, retry"),
            &[],
        ),
    }
}

/// UNKNOWN_TOPIC.
pub fn unknown_topic(topic: &str) -> Status {
    status(
        Code::NotFound,
        "UNKNOWN_TOPIC",
        format!("unknown topic {topic:?}"),
        &[("topic", topic.to_string())],
    )
}

/// UNKNOWN_PARTITION.
pub fn unknown_partition(topic: &str, partition: u32, partitions: usize) -> Status {
    status(
        Code::NotFound,
        "UNKNOWN_PARTITION",
        format!("topic {topic:?} has {partitions} partitions; there is no partition {partition}"),
        &[
            ("topic", topic.to_string()),
            ("partition", partition.to_string()),
            ("partitions", partitions.to_string()),
        ],
    )
}

/// INVALID_ARGUMENT naming the field (also as a BadRequest field violation).
pub fn invalid(field: &str, reason: String) -> Status {
    let mut details = ErrorDetails::with_error_info(
        "INVALID_ARGUMENT",
        DOMAIN,
        HashMap::from([
            ("field".to_string(), field.to_string()),
            ("reason".to_string(), reason.clone()),
        ]),
    );
    details.add_bad_request_violation(field, reason.clone());
    Status::with_error_details(Code::InvalidArgument, format!("{field}: {reason}"), details)
}

/// MESSAGE_TOO_LARGE naming the limit.
pub fn too_large(size: usize, limit: usize, what: &str) -> Status {
    status(
        Code::InvalidArgument,
        "MESSAGE_TOO_LARGE",
        format!("batch of {size} bytes exceeds {what} ({limit} bytes)"),
        &[("size", size.to_string()), ("limit", limit.to_string())],
    )
}

/// A partition error as a status; `leader` resolves a leader id to its client address.
pub fn partition_error(
    what: &str,
    e: PartitionError,
    leader: impl Fn(u64) -> Option<String>,
) -> Status {
    match e {
        PartitionError::NotLeader { leader_id, .. } => {
            not_leader(what, leader_id.and_then(|id| leader(id).map(|a| (id, a))))
        }
        PartitionError::Indeterminate { reason } => status(
            Code::Unavailable,
            "INDETERMINATE",
            format!("outcome unknown (the write may have been committed): {reason}"),
            &[("reason", reason.clone())],
        ),
        PartitionError::InvalidBatch { reason } => status(
            Code::InvalidArgument,
            "INVALID_BATCH",
            format!("invalid batch: {reason}"),
            &[("reason", reason.clone())],
        ),
        PartitionError::OutOfOrderSequence {
            producer_id,
            expected,
            got,
        } => status(
            Code::FailedPrecondition,
            "OUT_OF_ORDER_SEQUENCE",
            format!(
                "producer {producer_id}: expected sequence {expected}, got {got} (a batch is missing)"
            ),
            &[
                ("producer_id", producer_id.to_string()),
                ("expected", expected.to_string()),
                ("got", got.to_string()),
            ],
        ),
        PartitionError::ProducerFenced {
            producer_id,
            epoch,
            current,
        } => status(
            Code::FailedPrecondition,
            "PRODUCER_FENCED",
            format!("producer {producer_id} epoch {epoch} is fenced by epoch {current}"),
            &[
                ("producer_id", producer_id.to_string()),
                ("epoch", epoch.to_string()),
                ("current", current.to_string()),
            ],
        ),
        PartitionError::OffsetOutOfRange {
            requested,
            start,
            end,
        } => status(
            Code::OutOfRange,
            "OFFSET_OUT_OF_RANGE",
            format!(
                "offset {requested} of {what} is out of range: valid offsets are {start} to {end}"
            ),
            &[
                ("offset", requested.to_string()),
                ("start", start.to_string()),
                ("end", end.to_string()),
            ],
        ),
        PartitionError::Fatal { reason } => status(
            Code::Unavailable,
            "REPLICA_DOWN",
            format!("the replica of {what} on this node is down: {reason}"),
            &[("reason", reason.clone())],
        ),
    }
}
