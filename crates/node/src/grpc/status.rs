//! Errors of the client API as gRPC statuses with a `google.rpc.ErrorInfo` (domain
//! `strata.io`): the reasons and metadata keys are listed in `proto/strata/v1/strata.proto`.
//! [`broker_status`] maps every [`BrokerError`] to its status.

use std::collections::HashMap;
use strata_broker::BrokerError;
use strata_cluster::meta::Refusal;
use strata_groups::GroupError;
use strata_groups::queue::QueueError;
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

/// The status of a broker error: the code, the ErrorInfo reason and its metadata keys are the
/// API's contract (`proto/strata/v1/strata.proto`).
pub fn broker_status(e: BrokerError) -> Status {
    let message = e.to_string();
    match e {
        BrokerError::UnknownTopic { topic } => unknown_topic(&topic),
        BrokerError::UnknownPartition {
            topic,
            partition,
            partitions,
        } => unknown_partition(&topic, partition, partitions),
        BrokerError::NotLeader { what, leader } => not_leader(&what, leader),
        BrokerError::Indeterminate { reason } => status(
            Code::Unavailable,
            "INDETERMINATE",
            message,
            &[("reason", reason)],
        ),
        BrokerError::InvalidArgument { field, reason } => invalid(&field, reason),
        BrokerError::MessageTooLarge {
            size,
            limit,
            limit_name,
        } => too_large(size, limit, limit_name),
        BrokerError::LimitExceeded { max, value, .. } => status(
            Code::ResourceExhausted,
            "LIMIT_EXCEEDED",
            message,
            &[("limit", max.to_string()), ("value", value.to_string())],
        ),
        BrokerError::InvalidBatch { reason } => status(
            Code::InvalidArgument,
            "INVALID_BATCH",
            message,
            &[("reason", reason)],
        ),
        BrokerError::OutOfOrderSequence {
            producer_id,
            expected,
            got,
        } => status(
            Code::FailedPrecondition,
            "OUT_OF_ORDER_SEQUENCE",
            message,
            &[
                ("producer_id", producer_id.to_string()),
                ("expected", expected.to_string()),
                ("got", got.to_string()),
            ],
        ),
        BrokerError::ProducerFenced {
            producer_id,
            epoch,
            current,
        } => status(
            Code::FailedPrecondition,
            "PRODUCER_FENCED",
            message,
            &[
                ("producer_id", producer_id.to_string()),
                ("epoch", epoch.to_string()),
                ("current", current.to_string()),
            ],
        ),
        BrokerError::OffsetOutOfRange {
            requested,
            start,
            end,
            ..
        } => status(
            Code::OutOfRange,
            "OFFSET_OUT_OF_RANGE",
            message,
            &[
                ("offset", requested.to_string()),
                ("start", start.to_string()),
                ("end", end.to_string()),
            ],
        ),
        BrokerError::ReplicaDown { reason, .. } => status(
            Code::Unavailable,
            "REPLICA_DOWN",
            message,
            &[("reason", reason)],
        ),
        BrokerError::DiskFull {
            free, threshold, ..
        } => status(
            Code::ResourceExhausted,
            "DISK_FULL",
            message,
            &[
                ("free_bytes", free.to_string()),
                ("threshold_bytes", threshold.to_string()),
            ],
        ),
        BrokerError::NotController { leader, .. } => {
            let mut meta = vec![];
            if let Some((id, a)) = leader {
                meta.push(("leader_id", id.to_string()));
                meta.push(("leader_addr", a));
            }
            status(Code::Unavailable, "NOT_CONTROLLER", message, &meta)
        }
        BrokerError::Refused(r) => refusal(r),
        BrokerError::Group(g) => group_status(g),
        BrokerError::Queue(q) => queue_status(q),
        BrokerError::Internal(m) => Status::internal(m),
    }
}

/// A queue refusal of a whole request as a status (reasons listed in
/// `proto/strata/v1/queues.proto`).
fn queue_status(e: QueueError) -> Status {
    let message = e.to_string();
    let reason = e.reason();
    match e {
        QueueError::UnknownGroup(group) => {
            status(Code::NotFound, reason, message, &[("group", group)])
        }
        QueueError::GroupBusy { group, held } => status(
            Code::FailedPrecondition,
            reason,
            message,
            &[("group", group), ("held", held.to_string())],
        ),
        QueueError::InvalidRequest(r) => invalid("request", r),
        QueueError::AlreadySettled { offset }
        | QueueError::LockExpired { offset }
        | QueueError::NotHeld { offset, .. } => status(
            Code::FailedPrecondition,
            reason,
            message,
            &[("offset", offset.to_string())],
        ),
        QueueError::Invariant(m) => Status::internal(m),
    }
}

/// A controller refusal as a status.
fn refusal(r: Refusal) -> Status {
    match &r {
        Refusal::TopicExists(t) => status(
            Code::AlreadyExists,
            "TOPIC_EXISTS",
            r.to_string(),
            &[("topic", t.clone())],
        ),
        Refusal::UnknownTopic(t) => unknown_topic(t),
        Refusal::UnknownNode(n) => status(
            Code::NotFound,
            "UNKNOWN_NODE",
            r.to_string(),
            &[("node_id", n.to_string())],
        ),
        Refusal::NotEnoughNodes { .. } => invalid("replication_factor", r.to_string()),
        Refusal::IncarnationMismatch { node_id, .. } => status(
            Code::FailedPrecondition,
            "INCARNATION_MISMATCH",
            r.to_string(),
            &[("node_id", node_id.to_string())],
        ),
        Refusal::Invalid(m) => status(
            Code::FailedPrecondition,
            "INVALID_STATE",
            m.clone(),
            &[("reason", m.clone())],
        ),
    }
}

/// A group coordinator's refusal as a status (reasons listed in `proto/strata/v1/groups.proto`).
fn group_status(e: GroupError) -> Status {
    let message = e.to_string();
    let tp_meta = |tp: &strata_groups::TopicPartition| {
        [
            ("topic_id", tp.topic_id.clone()),
            ("partition", tp.partition.to_string()),
        ]
    };
    match e {
        GroupError::InvalidName(reason) => status(
            Code::InvalidArgument,
            "INVALID_GROUP",
            message,
            &[("reason", reason)],
        ),
        GroupError::UnknownGroup(group) => status(
            Code::NotFound,
            "UNKNOWN_GROUP",
            message,
            &[("group", group)],
        ),
        GroupError::UnknownMember(member) => status(
            Code::FailedPrecondition,
            "UNKNOWN_MEMBER",
            message,
            &[("member_id", member)],
        ),
        GroupError::FencedMemberEpoch {
            member,
            current,
            got,
        } => status(
            Code::FailedPrecondition,
            "FENCED_MEMBER_EPOCH",
            message,
            &[
                ("member_id", member),
                ("current", current.to_string()),
                ("got", got.to_string()),
            ],
        ),
        GroupError::NotOwned { member, tp } => {
            let [a, b] = tp_meta(&tp);
            status(
                Code::FailedPrecondition,
                "NOT_OWNED",
                message,
                &[("member_id", member), a, b],
            )
        }
        GroupError::OffsetBehind { tp, committed, got } => {
            let [a, b] = tp_meta(&tp);
            status(
                Code::FailedPrecondition,
                "OFFSET_BEHIND",
                message,
                &[
                    a,
                    b,
                    ("committed", committed.to_string()),
                    ("got", got.to_string()),
                ],
            )
        }
        GroupError::InvalidOffset { tp, offset, reason } => {
            let [a, b] = tp_meta(&tp);
            status(
                Code::InvalidArgument,
                "INVALID_OFFSET",
                message,
                &[a, b, ("offset", offset.to_string()), ("reason", reason)],
            )
        }
        GroupError::GroupNotEmpty { group, members } => status(
            Code::FailedPrecondition,
            "GROUP_NOT_EMPTY",
            message,
            &[("group", group), ("members", members.to_string())],
        ),
        GroupError::InvalidRequest(reason) => invalid("request", reason),
        GroupError::StaleGroupEpoch { .. } | GroupError::Invariant(_) => Status::internal(message),
    }
}
