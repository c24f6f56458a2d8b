//! Unit tests of [`super::Error`]: statuses with ErrorInfo details, fallbacks by code.

use tonic_types::ErrorDetails;

use super::*;

fn status(code: Code, reason: &str, metadata: &[(&str, &str)]) -> Status {
    let metadata: HashMap<String, String> = metadata
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Status::with_error_details(
        code,
        "server message",
        ErrorDetails::with_error_info(reason, ERROR_DOMAIN, metadata),
    )
}

#[test]
fn not_leader_with_and_without_hint() {
    let e = Error::from(status(
        Code::Unavailable,
        "NOT_LEADER",
        &[("leader_id", "2"), ("leader_addr", "10.0.0.2:7000")],
    ));
    assert_eq!(
        e,
        Error::NotLeader {
            leader_id: Some(2),
            leader_addr: Some("10.0.0.2:7000".into())
        }
    );
    assert!(e.is_retriable());
    assert!(!e.wants_metadata_refresh());
    assert!(e.to_string().contains("node 2 at 10.0.0.2:7000"));

    let e = Error::from(status(Code::Unavailable, "NOT_LEADER", &[]));
    assert_eq!(
        e,
        Error::NotLeader {
            leader_id: None,
            leader_addr: None
        }
    );
    assert!(e.wants_metadata_refresh());
    assert!(e.to_string().contains("unknown"));
}

#[test]
fn limits_and_ranges_are_named() {
    let e = Error::from(status(
        Code::InvalidArgument,
        "MESSAGE_TOO_LARGE",
        &[("size", "2000000"), ("limit", "1048576")],
    ));
    assert_eq!(
        e,
        Error::MessageTooLarge {
            size: 2_000_000,
            limit: 1_048_576
        }
    );
    assert!(e.to_string().contains("1048576"));
    assert!(!e.is_retriable());

    let e = Error::from(status(
        Code::OutOfRange,
        "OFFSET_OUT_OF_RANGE",
        &[("offset", "500"), ("start", "100"), ("end", "400")],
    ));
    assert_eq!(
        e,
        Error::OffsetOutOfRange {
            offset: 500,
            start: 100,
            end: 400
        }
    );
    assert!(e.to_string().contains("100..=400"));

    let e = Error::from(status(
        Code::ResourceExhausted,
        "DISK_FULL",
        &[("free_bytes", "10"), ("threshold_bytes", "1000")],
    ));
    assert_eq!(
        e,
        Error::DiskFull {
            free_bytes: 10,
            threshold_bytes: 1000
        }
    );
    let e = Error::from(status(
        Code::NotFound,
        "UNKNOWN_PARTITION",
        &[("topic", "t"), ("partition", "9"), ("partitions", "3")],
    ));
    assert_eq!(
        e,
        Error::UnknownPartition {
            topic: "t".into(),
            partition: 9,
            partitions: 3
        }
    );
    assert!(e.to_string().contains("3 partitions"));
}

/// A status code, reason and metadata, and the error they make.
type Case = (Code, &'static str, Vec<(&'static str, &'static str)>, Error);

#[test]
fn every_reason_maps() {
    let cases: Vec<Case> = vec![
        (
            Code::NotFound,
            "UNKNOWN_TOPIC",
            vec![("topic", "x")],
            Error::UnknownTopic { topic: "x".into() },
        ),
        (
            Code::InvalidArgument,
            "INVALID_ARGUMENT",
            vec![("field", "partitions"), ("reason", "must be > 0")],
            Error::InvalidArgument {
                field: "partitions".into(),
                reason: "must be > 0".into(),
            },
        ),
        (
            Code::InvalidArgument,
            "INVALID_BATCH",
            vec![("reason", "bad crc")],
            Error::InvalidBatch {
                reason: "bad crc".into(),
            },
        ),
        (
            Code::FailedPrecondition,
            "OUT_OF_ORDER_SEQUENCE",
            vec![("producer_id", "7"), ("expected", "10"), ("got", "12")],
            Error::OutOfOrderSequence {
                producer_id: 7,
                expected: 10,
                got: 12,
            },
        ),
        (
            Code::FailedPrecondition,
            "PRODUCER_FENCED",
            vec![("producer_id", "7"), ("epoch", "1"), ("current", "2")],
            Error::ProducerFenced {
                producer_id: 7,
                epoch: 1,
                current: 2,
            },
        ),
        (
            Code::Unavailable,
            "INDETERMINATE",
            vec![("reason", "leader lost")],
            Error::Indeterminate {
                reason: "leader lost".into(),
            },
        ),
        (
            Code::ResourceExhausted,
            "LIMIT_EXCEEDED",
            vec![("limit", "partitions per topic (1000)"), ("value", "2000")],
            Error::LimitExceeded {
                limit: "partitions per topic (1000)".into(),
                value: "2000".into(),
            },
        ),
        (
            Code::AlreadyExists,
            "TOPIC_EXISTS",
            vec![("topic", "x")],
            Error::TopicExists { topic: "x".into() },
        ),
        (
            Code::Unavailable,
            "NOT_CONTROLLER",
            vec![("leader_id", "0")],
            Error::NotController {
                leader_id: None,
                leader_addr: None,
            },
        ),
    ];
    for (code, reason, metadata, expected) in cases {
        assert_eq!(Error::from(status(code, reason, &metadata)), expected);
    }
}

#[test]
fn falls_back_on_the_code() {
    assert_eq!(
        Error::from(Status::unavailable("going away")),
        Error::Unavailable("going away".into())
    );
    assert_eq!(
        Error::from(Status::deadline_exceeded("slow")),
        Error::Timeout("slow".into())
    );
    assert_eq!(
        Error::from(Status::internal("boom")),
        Error::Other {
            code: "Internal".into(),
            message: "boom".into()
        }
    );
    // An unknown reason, or another domain, falls back too.
    assert_eq!(
        Error::from(status(Code::Unavailable, "SOMETHING_NEW", &[])),
        Error::Unavailable("server message".into())
    );
    let foreign = Status::with_error_details(
        Code::NotFound,
        "nope",
        ErrorDetails::with_error_info("UNKNOWN_TOPIC", "example.com", HashMap::new()),
    );
    assert_eq!(
        Error::from(foreign),
        Error::Other {
            code: "NotFound".into(),
            message: "nope".into()
        }
    );
}

#[test]
fn malformed_metadata_does_not_panic() {
    let e = Error::from(status(
        Code::OutOfRange,
        "OFFSET_OUT_OF_RANGE",
        &[("offset", "x"), ("start", "")],
    ));
    assert_eq!(
        e,
        Error::OffsetOutOfRange {
            offset: -1,
            start: -1,
            end: -1
        }
    );
}
