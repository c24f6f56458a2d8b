//! Unit tests of the listener's tables and helpers (the protocol end to end is tested in
//! `tests/integration/kafka.rs` and with real clients in `tests/kafka_clients/`).

use super::*;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::Message;

/// Every served range lies within what the codecs implement, and matches Kafka 4.0's
/// lowest versions (clients infer the release from the table).
#[test]
fn served_versions_are_within_the_codecs() {
    fn within<M: Message>(lo: i16, hi: i16) -> bool {
        M::VERSIONS.min <= lo && hi <= M::VERSIONS.max && lo <= hi
    }
    for (k, lo, hi) in versions::SUPPORTED {
        let ok = match k {
            ApiKey::Produce => within::<ProduceRequest>(*lo, *hi),
            ApiKey::Fetch => within::<FetchRequest>(*lo, *hi),
            ApiKey::ListOffsets => within::<ListOffsetsRequest>(*lo, *hi),
            ApiKey::Metadata => within::<MetadataRequest>(*lo, *hi),
            ApiKey::OffsetCommit => within::<OffsetCommitRequest>(*lo, *hi),
            ApiKey::OffsetFetch => within::<OffsetFetchRequest>(*lo, *hi),
            ApiKey::FindCoordinator => within::<FindCoordinatorRequest>(*lo, *hi),
            ApiKey::JoinGroup => within::<JoinGroupRequest>(*lo, *hi),
            ApiKey::Heartbeat => within::<HeartbeatRequest>(*lo, *hi),
            ApiKey::LeaveGroup => within::<LeaveGroupRequest>(*lo, *hi),
            ApiKey::SyncGroup => within::<SyncGroupRequest>(*lo, *hi),
            ApiKey::DescribeGroups => within::<DescribeGroupsRequest>(*lo, *hi),
            ApiKey::ListGroups => within::<ListGroupsRequest>(*lo, *hi),
            ApiKey::ApiVersions => within::<ApiVersionsRequest>(*lo, *hi),
            ApiKey::CreateTopics => within::<CreateTopicsRequest>(*lo, *hi),
            ApiKey::DeleteTopics => within::<DeleteTopicsRequest>(*lo, *hi),
            ApiKey::DeleteRecords => within::<DeleteRecordsRequest>(*lo, *hi),
            ApiKey::InitProducerId => within::<InitProducerIdRequest>(*lo, *hi),
            ApiKey::OffsetForLeaderEpoch => within::<OffsetForLeaderEpochRequest>(*lo, *hi),
            ApiKey::DescribeConfigs => within::<DescribeConfigsRequest>(*lo, *hi),
            ApiKey::AlterConfigs => within::<AlterConfigsRequest>(*lo, *hi),
            ApiKey::CreatePartitions => within::<CreatePartitionsRequest>(*lo, *hi),
            ApiKey::DeleteGroups => within::<DeleteGroupsRequest>(*lo, *hi),
            ApiKey::IncrementalAlterConfigs => within::<IncrementalAlterConfigsRequest>(*lo, *hi),
            ApiKey::DescribeCluster => within::<DescribeClusterRequest>(*lo, *hi),
            other => panic!("{other:?} is served but not checked here"),
        };
        assert!(ok, "{k:?} {lo}..={hi} is outside the codec's range");
    }
    assert_eq!(versions::range(ApiKey::Produce), Some((3, 12)));
    assert!(!versions::supported(ApiKey::Produce, 2));
    assert!(!versions::supported(ApiKey::EndTxn, 0));
}

#[test]
fn addresses_split_into_host_and_port() {
    assert_eq!(
        host_port("127.0.0.1:9092"),
        Some(("127.0.0.1".into(), 9092))
    );
    assert_eq!(host_port("[::1]:9093"), Some(("::1".into(), 9093)));
    assert_eq!(
        host_port("kafka-0.strata:9092"),
        Some(("kafka-0.strata".into(), 9092))
    );
    assert_eq!(host_port(""), None);
    assert_eq!(host_port("host"), None);
    assert_eq!(host_port("host:99999"), None);
    assert_eq!(broker_id(3), 3);
    assert_eq!(broker_id(u64::MAX), -1);
}
