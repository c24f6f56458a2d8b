//! Consumer: decoding, skipping below the start, redirects, offset lookups, out of range.

use std::time::Duration;

use bytes::Bytes;
use strata_client::{ConsumedRecord, Consumer, ConsumerConfig, Error, Offset};
use tonic::Code;

use crate::client;
use crate::mock::{Fault, MockCluster, MockStatus};

fn config() -> ConsumerConfig {
    ConsumerConfig {
        fetch_wait: Duration::from_millis(50),
        ..ConsumerConfig::default()
    }
}

/// Ten records in two batches of five, timestamps 1000, 2000, ..., 10000.
fn ten_records(cluster: &MockCluster, topic: &str, partition: u32) {
    let values: Vec<String> = (0..10).map(|i| format!("r{i}")).collect();
    let batch = |range: std::ops::Range<usize>| -> Vec<(i64, &str)> {
        range
            .map(|i| ((i as i64 + 1) * 1000, values[i].as_str()))
            .collect()
    };
    cluster.append(topic, partition, &[batch(0..5), batch(5..10)]);
}

/// Polls until caught up, returning everything read.
async fn read_to_end(consumer: &mut Consumer) -> Vec<ConsumedRecord> {
    let mut records = Vec::new();
    while !consumer.caught_up() {
        records.extend(consumer.poll().await.unwrap());
    }
    records
}

fn values(records: &[ConsumedRecord]) -> Vec<String> {
    records
        .iter()
        .map(|r| String::from_utf8(r.value.clone().unwrap().to_vec()).unwrap())
        .collect()
}

#[tokio::test]
async fn decodes_batches_and_skips_records_below_the_start() {
    let cluster = MockCluster::start(1).await;
    cluster.add_topic("t", &[1]);
    ten_records(&cluster, "t", 0);
    let client = client(&cluster).await;
    let mut consumer = client.consumer(config()).unwrap();
    consumer.assign("t", [0], Offset::At(3)).await.unwrap();
    assert_eq!(consumer.position("t", 0), Some(3));
    assert!(!consumer.caught_up(), "not fetched yet");
    let records = read_to_end(&mut consumer).await;
    let offsets: Vec<i64> = records.iter().map(|r| r.offset).collect();
    assert_eq!(offsets, (3..10).collect::<Vec<_>>());
    assert_eq!(values(&records)[0], "r3");
    let first = &records[0];
    assert_eq!(first.topic, "t");
    assert_eq!(first.partition, 0);
    assert_eq!(first.timestamp_ms, 4000);
    assert_eq!(first.key, Some(Bytes::from("key-r3")));
    assert_eq!(
        first.headers,
        vec![("h".to_string(), Some(Bytes::from_static(b"v")))]
    );
    assert_eq!(consumer.position("t", 0), Some(10));
    assert_eq!(consumer.high_watermark("t", 0), Some(10));
    // The first fetch started at 3 and got the whole first batch back.
    assert_eq!(cluster.state().fetch_calls[0].1, 3);

    // New records arrive while the consumer long-polls.
    cluster.append("t", 0, &[vec![(11_000, "r10")]]);
    let mut more = Vec::new();
    while more.is_empty() {
        more = consumer.poll().await.unwrap();
    }
    assert_eq!(more[0].offset, 10);
    assert_eq!(
        consumer
            .end_offsets()
            .await
            .unwrap()
            .into_values()
            .collect::<Vec<_>>(),
        vec![11]
    );
}

#[tokio::test]
async fn reads_many_partitions_concurrently() {
    let cluster = MockCluster::start(2).await;
    cluster.add_topic("t", &[1, 2, 1]);
    for p in 0..3 {
        ten_records(&cluster, "t", p);
    }
    let client = client(&cluster).await;
    let mut consumer = client.consumer(config()).unwrap();
    consumer.assign_all("t", Offset::Earliest).await.unwrap();
    let records = read_to_end(&mut consumer).await;
    assert_eq!(records.len(), 30);
    for p in 0..3 {
        let offsets: Vec<i64> = records
            .iter()
            .filter(|r| r.partition == p)
            .map(|r| r.offset)
            .collect();
        assert_eq!(
            offsets,
            (0..10).collect::<Vec<_>>(),
            "partition {p} in order"
        );
    }
}

#[tokio::test]
async fn follows_not_leader_and_survives_unavailable() {
    let cluster = MockCluster::start(2).await;
    cluster.add_topic("t", &[1]);
    ten_records(&cluster, "t", 0);
    let client = client(&cluster).await;
    cluster.move_leader("t", 0, 2);
    cluster.push_fault(Fault::Fetch(MockStatus::plain(Code::Unavailable)));
    let mut consumer = client.consumer(config()).unwrap();
    // ListOffsets is redirected too.
    consumer.assign("t", [0], Offset::Earliest).await.unwrap();
    let records = read_to_end(&mut consumer).await;
    assert_eq!(records.len(), 10);
    let state = cluster.state();
    let nodes: Vec<u64> = state.fetch_calls.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        nodes.first(),
        Some(&2),
        "the ListOffsets redirect taught the cache"
    );
    // The UNAVAILABLE answer made the consumer refresh its metadata, which still names node 1:
    // it is redirected again, and ends at node 2.
    assert_eq!(nodes.last(), Some(&2));
}

#[tokio::test]
async fn moves_to_the_new_leader_when_a_node_goes_away() {
    let mut cluster = MockCluster::start(2).await;
    cluster.add_topic("t", &[1]);
    ten_records(&cluster, "t", 0);
    let client = client(&cluster).await;
    let mut consumer = client.consumer(config()).unwrap();
    consumer.assign("t", [0], Offset::At(0)).await.unwrap();
    let first = read_to_end(&mut consumer).await;
    assert_eq!(first.len(), 10);
    // Node 1 stops; node 2 takes over and metadata says so.
    cluster.stop_node(1);
    cluster.move_leader("t", 0, 2);
    cluster.advertise_leader("t", 0, 2);
    cluster.append("t", 0, &[vec![(1, "after")]]);
    let mut more = Vec::new();
    while more.is_empty() {
        more = consumer.poll().await.unwrap();
    }
    assert_eq!(values(&more), vec!["after".to_string()]);
    assert_eq!(more[0].offset, 10);
}

#[tokio::test]
async fn resolves_earliest_latest_and_timestamps_through_list_offsets() {
    let cluster = MockCluster::start(1).await;
    cluster.add_topic("t", &[1]);
    ten_records(&cluster, "t", 0);
    cluster.state().topics.get_mut("t").unwrap()[0].log_start = 2;
    let client = client(&cluster).await;
    let mut consumer = client.consumer(config()).unwrap();
    consumer
        .assign("t", [0], Offset::Timestamp(4500))
        .await
        .unwrap();
    assert_eq!(
        consumer.position("t", 0),
        Some(4),
        "first record at or after 4500 ms"
    );
    consumer.seek("t", 0, Offset::Earliest).await.unwrap();
    assert_eq!(consumer.position("t", 0), Some(2));
    consumer.seek("t", 0, Offset::Latest).await.unwrap();
    assert_eq!(consumer.position("t", 0), Some(10));
    consumer
        .seek("t", 0, Offset::Timestamp(99_999))
        .await
        .unwrap();
    assert_eq!(
        consumer.position("t", 0),
        Some(10),
        "past the end: the high watermark"
    );
    assert_eq!(cluster.state().list_offsets_calls, 4);
    consumer
        .seek("t", 0, Offset::Timestamp(6000))
        .await
        .unwrap();
    let records = read_to_end(&mut consumer).await;
    assert_eq!(values(&records), ["r5", "r6", "r7", "r8", "r9"]);

    let error = consumer.seek("t", 1, Offset::Earliest).await.unwrap_err();
    assert!(matches!(error, Error::InvalidArgument { .. }), "{error:?}");
    let error = consumer
        .assign("t", [7], Offset::Earliest)
        .await
        .unwrap_err();
    assert!(matches!(
        error,
        Error::UnknownPartition { partitions: 1, .. }
    ));
    let error = consumer
        .assign("nope", [0], Offset::Earliest)
        .await
        .unwrap_err();
    assert!(matches!(error, Error::UnknownTopic { .. }));
}

#[tokio::test]
async fn out_of_range_is_reported_with_the_range_then_seek_recovers() {
    let cluster = MockCluster::start(1).await;
    cluster.add_topic("t", &[1]);
    ten_records(&cluster, "t", 0);
    let client = client(&cluster).await;
    let mut consumer = client.consumer(config()).unwrap();
    consumer.assign("t", [0], Offset::At(50)).await.unwrap();
    let error = consumer.poll().await.unwrap_err();
    assert_eq!(
        error,
        Error::OffsetOutOfRange {
            offset: 50,
            start: 0,
            end: 10
        }
    );
    assert!(error.to_string().contains("0..=10"), "{error}");
    consumer.seek("t", 0, Offset::At(8)).await.unwrap();
    let records = read_to_end(&mut consumer).await;
    assert_eq!(values(&records), ["r8", "r9"]);
}

#[tokio::test]
async fn auto_reset_restarts_from_the_configured_offset() {
    let cluster = MockCluster::start(1).await;
    cluster.add_topic("t", &[1]);
    ten_records(&cluster, "t", 0);
    let client = client(&cluster).await;
    let mut consumer = client
        .consumer(ConsumerConfig {
            auto_reset: Some(Offset::Earliest),
            ..config()
        })
        .unwrap();
    consumer.assign("t", [0], Offset::At(50)).await.unwrap();
    let records = read_to_end(&mut consumer).await;
    assert_eq!(records.len(), 10);
    assert_eq!(records[0].offset, 0);
}

#[tokio::test]
async fn produced_records_read_back() {
    let cluster = MockCluster::start(2).await;
    cluster.add_topic("t", &[1, 2]);
    let client = client(&cluster).await;
    let producer = client
        .producer(strata_client::ProducerConfig::default())
        .unwrap();
    let mut acks = Vec::new();
    for i in 0..50 {
        let r = strata_client::ProducerRecord::new("t", format!("m{i}"))
            .with_key(format!("k{}", i % 7))
            .with_header("n", Some(Bytes::from(i.to_string())))
            .with_timestamp_ms(1_000 + i);
        acks.push(producer.send(r).await.unwrap());
    }
    producer.close().await;
    for ack in acks {
        ack.await.unwrap();
    }
    let mut consumer = client.consumer(config()).unwrap();
    consumer.assign_all("t", Offset::Earliest).await.unwrap();
    let mut records = read_to_end(&mut consumer).await;
    records.sort_by_key(|r| r.timestamp_ms);
    assert_eq!(records.len(), 50);
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r.value, Some(Bytes::from(format!("m{i}"))));
        assert_eq!(r.key, Some(Bytes::from(format!("k{}", i % 7))));
        assert_eq!(r.headers[0].1, Some(Bytes::from(i.to_string())));
    }
}
