//! [`Error`]: every failure the client reports.
//!
//! The server answers a failure with a gRPC status whose details hold a `google.rpc.ErrorInfo`
//! with domain [`ERROR_DOMAIN`], a reason (`NOT_LEADER`, `OFFSET_OUT_OF_RANGE`, ...) and
//! metadata naming the limit, range or leader (see the header of `proto/strata/v1/strata.proto`).
//! [`Error::from`] turns such a status into the matching variant; a status without that detail
//! falls back on its code. Errors raised inside this process (a failed connection, a request
//! that got no answer in time) have their own variants.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use tonic::{Code, Status};
use tonic_types::StatusExt;

/// The `ErrorInfo.domain` of every Strata error.
pub const ERROR_DOMAIN: &str = "strata.io";

/// A failure: each variant is something a caller can act on (retry elsewhere, fix the request,
/// report), with the numbers the server sent (the limit, the valid range, the leader).
///
/// Errors are `Clone` because one failed batch fails every record in it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The node does not lead the partition (`NOT_LEADER`). Retriable: the producer and the
    /// consumer follow the hint themselves.
    #[error("not the partition's leader{}", LeaderHint(*.leader_id, .leader_addr.as_deref()))]
    NotLeader {
        /// The leader's node id, if the node knows it.
        leader_id: Option<u64>,
        /// The leader's client address (host:port), if the node knows it.
        leader_addr: Option<String>,
    },
    /// The node cannot reach the controller's leader for an admin change (`NOT_CONTROLLER`).
    /// Retriable.
    #[error("not the controller{}", LeaderHint(*.leader_id, .leader_addr.as_deref()))]
    NotController {
        /// The controller leader's node id, if known.
        leader_id: Option<u64>,
        /// The controller leader's client address, if known.
        leader_addr: Option<String>,
    },
    /// No such topic (`UNKNOWN_TOPIC`), even after a metadata refresh.
    #[error("unknown topic {topic:?}")]
    UnknownTopic {
        /// The topic asked for.
        topic: String,
    },
    /// The topic has no such partition (`UNKNOWN_PARTITION`).
    #[error("topic {topic:?} has no partition {partition} (it has {partitions} partitions)")]
    UnknownPartition {
        /// The topic.
        topic: String,
        /// The partition asked for.
        partition: u32,
        /// How many partitions the topic has (numbered from 0).
        partitions: u32,
    },
    /// A record or batch is larger than a configured limit (`MESSAGE_TOO_LARGE`: the topic's
    /// `max.message.bytes` or the node's batch limit; or, raised by the client, its
    /// `buffer_bytes` or `message_bytes_max`).
    #[error("message too large: {size} bytes, over the limit of {limit} bytes")]
    MessageTooLarge {
        /// Size of the record or batch, in bytes.
        size: u64,
        /// The limit, in bytes.
        limit: u64,
    },
    /// The offset asked for is not stored (`OFFSET_OUT_OF_RANGE`): valid offsets are
    /// `start..=end` (`end` is the high watermark; fetching there waits for new records).
    #[error("offset {offset} is out of range: valid offsets are {start}..={end}")]
    OffsetOutOfRange {
        /// The offset asked for.
        offset: i64,
        /// The log start offset (the first offset still stored).
        start: i64,
        /// The high watermark.
        end: i64,
    },
    /// A request field is invalid (`INVALID_ARGUMENT`), or a client setting is.
    #[error("invalid argument {field}: {reason}")]
    InvalidArgument {
        /// The field or setting.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The node refused a record batch as malformed (`INVALID_BATCH`).
    #[error("invalid record batch: {reason}")]
    InvalidBatch {
        /// What is wrong with it.
        reason: String,
    },
    /// A newer epoch of this producer id exists (`PRODUCER_FENCED`): this producer is a zombie
    /// and stops producing.
    #[error(
        "producer {producer_id} is fenced: its epoch {epoch} is older than the current {current}"
    )]
    ProducerFenced {
        /// The producer id.
        producer_id: i64,
        /// The epoch the batch carried.
        epoch: i32,
        /// The partition's current epoch for that id.
        current: i32,
    },
    /// The batch's sequence number is not the one the partition expects
    /// (`OUT_OF_ORDER_SEQUENCE`): a batch before it was lost. The batch is failed, and the
    /// partition continues under a fresh producer id.
    #[error("out-of-order sequence from producer {producer_id}: expected {expected}, got {got}")]
    OutOfOrderSequence {
        /// The producer id.
        producer_id: i64,
        /// The sequence the partition expected.
        expected: i32,
        /// The batch's base sequence.
        got: i32,
    },
    /// The outcome of a write is unknown: it may have been committed (`INDETERMINATE`, or a
    /// delivery timeout after such an answer). Retriable: an idempotent producer's retry is
    /// answered with the original offset, a non-idempotent one may duplicate.
    #[error("outcome unknown, the write may have been committed: {reason}")]
    Indeterminate {
        /// Why.
        reason: String,
    },
    /// The leader's free disk space is below its threshold (`DISK_FULL`): it refuses produce.
    #[error("disk full: {free_bytes} bytes free, below the threshold of {threshold_bytes} bytes")]
    DiskFull {
        /// Free bytes on the leader's data disk.
        free_bytes: u64,
        /// The configured threshold.
        threshold_bytes: u64,
    },
    /// A configured limit was exceeded (`LIMIT_EXCEEDED`), e.g. partitions per topic.
    #[error("limit {limit} exceeded (value {value})")]
    LimitExceeded {
        /// The limit's name and value, as the node names it.
        limit: String,
        /// The value that broke it.
        value: String,
    },
    /// The topic exists already (`TOPIC_EXISTS`).
    #[error("topic {topic:?} already exists")]
    TopicExists {
        /// The topic.
        topic: String,
    },
    /// A consumer-group request refused by the group's coordinator: `reason` is the
    /// ErrorInfo reason (`UNKNOWN_MEMBER`, `FENCED_MEMBER_EPOCH`, `NOT_OWNED`, `OFFSET_BEHIND`,
    /// `INVALID_OFFSET`, `GROUP_NOT_EMPTY`, `UNKNOWN_GROUP`, `INVALID_GROUP`; see
    /// `proto/strata/v1/groups.proto`), `message` the coordinator's explanation.
    #[error("group request refused ({reason}): {message}")]
    Group {
        /// The reason.
        reason: String,
        /// The explanation, naming the member, partition or offsets involved.
        message: String,
    },
    /// A queue-group request or settle item refused by the partition's leader: `reason` is
    /// `UNKNOWN_QUEUE_GROUP`, `QUEUE_GROUP_BUSY`, `ALREADY_SETTLED`, `LOCK_EXPIRED` or
    /// `NOT_HELD` (see `proto/strata/v1/queues.proto`), `message` the explanation.
    #[error("queue request refused ({reason}): {message}")]
    Queue {
        /// The reason.
        reason: String,
        /// The explanation, naming the record or group involved.
        message: String,
    },
    /// A request/reply server's handler failed; the text is its error.
    #[error("the server's handler failed: {0}")]
    Remote(String),
    /// The node cannot serve the request now (UNAVAILABLE without a more specific reason).
    /// Retriable.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// No answer in time: a request deadline, or a producer's delivery timeout. Retriable.
    #[error("timed out: {0}")]
    Timeout(String),
    /// The connection failed (connect refused, reset, keepalive lost, bad address). Retriable.
    #[error("transport error: {0}")]
    Transport(String),
    /// A batch fetched from the server failed its checks (CRC, lengths).
    #[error("corrupt batch in {topic}/{partition} near offset {offset}: {reason}")]
    Corrupt {
        /// The topic.
        topic: String,
        /// The partition.
        partition: u32,
        /// The offset the fetch started at.
        offset: i64,
        /// What is wrong.
        reason: String,
    },
    /// The producer (or what the call needs) was closed.
    #[error("closed: {0}")]
    Closed(&'static str),
    /// Any other failure, with its gRPC code name and message.
    #[error("{code}: {message}")]
    Other {
        /// The gRPC code's name (e.g. `Internal`).
        code: String,
        /// The message.
        message: String,
    },
}

/// Formats an optional leader hint as a suffix of an error message.
struct LeaderHint<'a>(Option<u64>, Option<&'a str>);

impl fmt::Display for LeaderHint<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.0, self.1) {
            (Some(id), Some(addr)) => write!(f, "; the leader is node {id} at {addr}"),
            (Some(id), None) => write!(f, "; the leader is node {id}"),
            (None, Some(addr)) => write!(f, "; the leader is at {addr}"),
            (None, None) => write!(f, "; the leader is unknown"),
        }
    }
}

impl Error {
    /// Whether the same request may succeed if retried later (possibly at another node):
    /// [`Error::NotLeader`], [`Error::NotController`], [`Error::Unavailable`],
    /// [`Error::Indeterminate`], [`Error::Timeout`] and [`Error::Transport`].
    pub fn is_retriable(&self) -> bool {
        matches!(
            self,
            Error::NotLeader { .. }
                | Error::NotController { .. }
                | Error::Unavailable(_)
                | Error::Indeterminate { .. }
                | Error::Timeout(_)
                | Error::Transport(_)
        )
    }

    /// Whether a group member must join again: the coordinator no longer knows it
    /// (`UNKNOWN_MEMBER`: it left, or its session expired) or fenced its epoch.
    pub fn is_fenced_member(&self) -> bool {
        matches!(self, Error::Group { reason, .. }
            if reason == "UNKNOWN_MEMBER" || reason == "FENCED_MEMBER_EPOCH")
    }

    /// Whether a write that failed with this error may nevertheless have been applied: the
    /// node said so ([`Error::Indeterminate`]) or the answer was lost ([`Error::Timeout`],
    /// [`Error::Transport`], [`Error::Unavailable`] without a reason).
    pub(crate) fn may_have_written(&self) -> bool {
        matches!(
            self,
            Error::Indeterminate { .. }
                | Error::Timeout(_)
                | Error::Transport(_)
                | Error::Unavailable(_)
        )
    }

    /// Whether this error suggests the cached metadata is stale (a leader moved or a node went
    /// away), so that a refresh should precede the retry.
    pub(crate) fn wants_metadata_refresh(&self) -> bool {
        matches!(
            self,
            Error::NotLeader {
                leader_addr: None,
                ..
            } | Error::Unavailable(_)
                | Error::Timeout(_)
                | Error::Transport(_)
        )
    }

    /// Parses a status: by its Strata `ErrorInfo` reason when it has one, else by its code.
    fn from_status(status: &Status) -> Error {
        if let Some(info) = status.get_details_error_info()
            && info.domain == ERROR_DOMAIN
            && let Some(error) = from_error_info(&info.reason, &info.metadata, status)
        {
            return error;
        }
        from_code(status)
    }
}

impl From<Status> for Error {
    fn from(status: Status) -> Error {
        Error::from_status(&status)
    }
}

/// A metadata value parsed as `T`, if present and well-formed.
fn get<T: FromStr>(metadata: &HashMap<String, String>, key: &str) -> Option<T> {
    metadata.get(key).and_then(|v| v.trim().parse().ok())
}

/// A metadata string, empty if absent.
fn text(metadata: &HashMap<String, String>, key: &str) -> String {
    metadata.get(key).cloned().unwrap_or_default()
}

/// `leader_id` (0 means unknown) and `leader_addr` (empty means unknown).
fn leader_hint(metadata: &HashMap<String, String>) -> (Option<u64>, Option<String>) {
    let id = get::<u64>(metadata, "leader_id").filter(|id| *id != 0);
    let addr = metadata
        .get("leader_addr")
        .map(|a| a.trim().to_string())
        .filter(|a| !a.is_empty());
    (id, addr)
}

/// The variant for a Strata reason; `None` for a reason this client does not know.
fn from_error_info(
    reason: &str,
    metadata: &HashMap<String, String>,
    status: &Status,
) -> Option<Error> {
    let message = || status.message().to_string();
    Some(match reason {
        "NOT_LEADER" => {
            let (leader_id, leader_addr) = leader_hint(metadata);
            Error::NotLeader {
                leader_id,
                leader_addr,
            }
        }
        "NOT_CONTROLLER" => {
            let (leader_id, leader_addr) = leader_hint(metadata);
            Error::NotController {
                leader_id,
                leader_addr,
            }
        }
        "UNKNOWN_TOPIC" => Error::UnknownTopic {
            topic: text(metadata, "topic"),
        },
        "UNKNOWN_PARTITION" => Error::UnknownPartition {
            topic: text(metadata, "topic"),
            partition: get(metadata, "partition").unwrap_or_default(),
            partitions: get(metadata, "partitions").unwrap_or_default(),
        },
        "MESSAGE_TOO_LARGE" => Error::MessageTooLarge {
            size: get(metadata, "size").unwrap_or_default(),
            limit: get(metadata, "limit").unwrap_or_default(),
        },
        "OFFSET_OUT_OF_RANGE" => Error::OffsetOutOfRange {
            offset: get(metadata, "offset").unwrap_or(-1),
            start: get(metadata, "start").unwrap_or(-1),
            end: get(metadata, "end").unwrap_or(-1),
        },
        "INVALID_ARGUMENT" => Error::InvalidArgument {
            field: text(metadata, "field"),
            reason: metadata.get("reason").cloned().unwrap_or_else(message),
        },
        "INVALID_BATCH" => Error::InvalidBatch {
            reason: metadata.get("reason").cloned().unwrap_or_else(message),
        },
        "OUT_OF_ORDER_SEQUENCE" => Error::OutOfOrderSequence {
            producer_id: get(metadata, "producer_id").unwrap_or(-1),
            expected: get(metadata, "expected").unwrap_or(-1),
            got: get(metadata, "got").unwrap_or(-1),
        },
        "PRODUCER_FENCED" => Error::ProducerFenced {
            producer_id: get(metadata, "producer_id").unwrap_or(-1),
            epoch: get(metadata, "epoch").unwrap_or(-1),
            current: get(metadata, "current").unwrap_or(-1),
        },
        "INDETERMINATE" => Error::Indeterminate {
            reason: metadata.get("reason").cloned().unwrap_or_else(message),
        },
        "DISK_FULL" => Error::DiskFull {
            free_bytes: get(metadata, "free_bytes").unwrap_or_default(),
            threshold_bytes: get(metadata, "threshold_bytes").unwrap_or_default(),
        },
        "LIMIT_EXCEEDED" => Error::LimitExceeded {
            limit: text(metadata, "limit"),
            value: text(metadata, "value"),
        },
        "TOPIC_EXISTS" => Error::TopicExists {
            topic: text(metadata, "topic"),
        },
        "UNKNOWN_MEMBER"
        | "FENCED_MEMBER_EPOCH"
        | "NOT_OWNED"
        | "OFFSET_BEHIND"
        | "INVALID_OFFSET"
        | "GROUP_NOT_EMPTY"
        | "UNKNOWN_GROUP"
        | "INVALID_GROUP" => Error::Group {
            reason: reason.to_string(),
            message: message(),
        },
        "UNKNOWN_QUEUE_GROUP"
        | "QUEUE_GROUP_BUSY"
        | "ALREADY_SETTLED"
        | "LOCK_EXPIRED"
        | "NOT_HELD" => Error::Queue {
            reason: reason.to_string(),
            message: message(),
        },
        _ => return None,
    })
}

/// The variant for a status without a Strata `ErrorInfo`.
fn from_code(status: &Status) -> Error {
    let message = status.message().to_string();
    // tonic builds statuses for client-side failures (connect refused, reset stream, request
    // timeout) from an error it keeps as the source; a status sent by a server has none.
    let local = std::error::Error::source(status).is_some();
    match status.code() {
        Code::Cancelled if local && message.to_lowercase().contains("timeout") => {
            Error::Timeout(message)
        }
        _ if local => Error::Transport(message),
        Code::Unavailable => Error::Unavailable(message),
        Code::DeadlineExceeded => Error::Timeout(message),
        Code::InvalidArgument => Error::InvalidArgument {
            field: String::new(),
            reason: message,
        },
        code => Error::Other {
            code: format!("{code:?}"),
            message,
        },
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
#[path = "error_tests.rs"]
mod tests;
