//! Producer: redirects, retries of the same bytes, order, batching, backpressure, errors.

use std::time::Duration;

use bytes::Bytes;
use futures_util::FutureExt;
use strata_client::partitioner::partition_for_key;
use strata_client::{Acks, Error, ProducerConfig, ProducerRecord, RecordMetadata};
use strata_record::Batch;
use tonic::Code;

use crate::client;
use crate::mock::{Fault, MockCluster, MockStatus};

fn record(topic: &str, value: &str) -> ProducerRecord {
    ProducerRecord::new(topic, value.to_string()).with_partition(0)
}

/// Producer, batching only when told (linger far away).
fn lingering() -> ProducerConfig {
    ProducerConfig {
        linger: Duration::from_secs(3600),
        ..ProducerConfig::default()
    }
}

async fn send_all(
    producer: &strata_client::Producer,
    records: impl IntoIterator<Item = ProducerRecord>,
) -> Vec<strata_client::SendFuture> {
    let mut futures = Vec::new();
    for r in records {
        futures.push(producer.send(r).await.unwrap());
    }
    futures
}

async fn offsets(futures: Vec<strata_client::SendFuture>) -> Vec<i64> {
    let mut offsets = Vec::new();
    for f in futures {
        let RecordMetadata { offset, .. } = f.await.unwrap();
        offsets.push(offset);
    }
    offsets
}

#[tokio::test]
async fn follows_the_leader_hint_and_updates_its_cache() {
    let cluster = MockCluster::start(2).await;
    cluster.add_topic("t", &[1]);
    let client = client(&cluster).await;
    // Leadership moves to node 2; metadata still says node 1.
    cluster.move_leader("t", 0, 2);
    let producer = client.producer(lingering()).unwrap();
    let futures = send_all(&producer, (0..3).map(|i| record("t", &format!("v{i}")))).await;
    producer.flush().await;
    assert_eq!(offsets(futures).await, vec![0, 1, 2]);
    {
        let state = cluster.state();
        let calls: Vec<u64> = state.produce_calls.iter().map(|c| c.node).collect();
        assert_eq!(calls, vec![1, 2], "one redirect, then the leader");
        assert_eq!(state.produce_calls[0].batch, state.produce_calls[1].batch);
        // The redirect did not need a metadata refresh.
        assert_eq!(state.metadata_calls, 1);
    }
    // The cache learned the hint: the next batch goes straight to node 2.
    let futures = send_all(&producer, [record("t", "v3")]).await;
    producer.flush().await;
    assert_eq!(offsets(futures).await, vec![3]);
    let calls: Vec<u64> = cluster
        .state()
        .produce_calls
        .iter()
        .map(|c| c.node)
        .collect();
    assert_eq!(calls, vec![1, 2, 2]);
    producer.close().await;
}

#[tokio::test]
async fn not_leader_without_a_hint_refreshes_metadata() {
    let cluster = MockCluster::start(2).await;
    cluster.add_topic("t", &[1]);
    let client = client(&cluster).await;
    cluster.state().leader_hints = false;
    cluster.move_leader("t", 0, 2);
    cluster.advertise_leader("t", 0, 2);
    let producer = client.producer(lingering()).unwrap();
    let futures = send_all(&producer, [record("t", "a")]).await;
    producer.flush().await;
    assert_eq!(offsets(futures).await, vec![0]);
    let state = cluster.state();
    assert!(state.metadata_calls >= 2, "refreshed after NOT_LEADER");
    assert_eq!(state.produce_calls.last().unwrap().node, 2);
}

#[tokio::test]
async fn an_indeterminate_write_is_retried_with_the_same_bytes_and_not_duplicated() {
    let cluster = MockCluster::start(1).await;
    cluster.add_topic("t", &[1]);
    let client = client(&cluster).await;
    // The first Produce is written, but answered INDETERMINATE.
    cluster.push_fault(Fault::Produce {
        status: MockStatus::strata(
            Code::Unavailable,
            "INDETERMINATE",
            &[("reason", "leadership lost during commit".into())],
        ),
        after_write: true,
    });
    // The retry then fails plainly once more (nothing written).
    cluster.push_fault(Fault::Produce {
        status: MockStatus::plain(Code::Unavailable),
        after_write: false,
    });
    let producer = client.producer(lingering()).unwrap();
    let futures = send_all(&producer, (0..4).map(|i| record("t", &format!("v{i}")))).await;
    producer.flush().await;
    assert_eq!(offsets(futures).await, vec![0, 1, 2, 3]);

    let state = cluster.state();
    assert_eq!(state.produce_calls.len(), 3);
    let first = &state.produce_calls[0].batch;
    for call in &state.produce_calls {
        assert_eq!(&call.batch, first, "every attempt sends the same bytes");
    }
    let batch = Batch::parse(first.clone()).unwrap();
    assert!(batch.producer_id() > 0);
    assert_eq!(batch.producer_epoch(), 0);
    assert_eq!(batch.base_sequence(), 0);
    assert_eq!(state.init_producer_calls, 1);
    // Written once.
    let log = &state.topics["t"][0];
    assert_eq!(log.next_offset, 4);
    let values: Vec<Option<Bytes>> = log.values().into_iter().map(|(_, v)| v).collect();
    assert_eq!(
        values,
        ["v0", "v1", "v2", "v3"]
            .map(|v| Some(Bytes::from(v)))
            .to_vec()
    );
}

#[tokio::test]
async fn a_request_to_a_frozen_leader_is_resent_to_the_leader_the_others_name() {
    let cluster = MockCluster::start(3).await;
    cluster.add_topic("t", &[1]);
    let client = client(&cluster).await;
    let producer = client.producer(lingering()).unwrap();
    let futures = send_all(&producer, [record("t", "a")]).await;
    producer.flush().await;
    assert_eq!(offsets(futures).await, vec![0]);
    // Node 1 freezes with its connection up (so keepalive does not notice); the others elect
    // node 2 and say so.
    cluster.freeze(1, true);
    cluster.move_leader("t", 0, 2);
    cluster.advertise_leader("t", 0, 2);
    let started = tokio::time::Instant::now();
    let futures = send_all(&producer, [record("t", "b")]).await;
    producer.flush().await;
    assert_eq!(offsets(futures).await, vec![1]);
    // Probes every 500 ms; the frozen node's request timeout is 30 s.
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(5), "took {elapsed:?}");
    {
        let state = cluster.state();
        // Node 1 never handled its copy (frozen); node 2 got the second batch, sequence 1.
        let calls: Vec<u64> = state.produce_calls.iter().map(|c| c.node).collect();
        assert_eq!(calls, vec![1, 2]);
        let batch = Batch::parse(state.produce_calls[1].batch.clone()).unwrap();
        assert_eq!(batch.base_sequence(), 1);
        assert_eq!(state.init_producer_calls, 1, "the same producer id goes on");
    }
    producer.close().await;
}

#[tokio::test]
async fn a_slow_leader_that_still_claims_the_partition_keeps_its_request() {
    let cluster = MockCluster::start(3).await;
    cluster.add_topic("t", &[1]);
    let client = client(&cluster).await;
    let producer = client.producer(lingering()).unwrap();
    cluster.set_gate(false);
    let metadata_calls = cluster.state().metadata_calls;
    let futures = send_all(&producer, [record("t", "a")]).await;
    let flushing = {
        let producer = producer.clone();
        tokio::spawn(async move { producer.flush().await })
    };
    // Two probes (every node asked twice) while the leader holds the request.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while cluster.state().metadata_calls < metadata_calls + 6 {
        assert!(tokio::time::Instant::now() < deadline, "no probes");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    cluster.set_gate(true);
    flushing.await.unwrap();
    assert_eq!(offsets(futures).await, vec![0]);
    let calls: Vec<u64> = cluster
        .state()
        .produce_calls
        .iter()
        .map(|c| c.node)
        .collect();
    assert_eq!(calls, vec![1], "the request was not abandoned");
    producer.close().await;
}

#[tokio::test]
async fn sequences_advance_per_partition_and_order_is_kept() {
    let cluster = MockCluster::start(1).await;
    cluster.add_topic("t", &[1, 1]);
    let client = client(&cluster).await;
    let producer = client
        .producer(ProducerConfig {
            linger: Duration::ZERO,
            batch_bytes: 200,
            ..ProducerConfig::default()
        })
        .unwrap();
    let mut futures = Vec::new();
    for i in 0..200 {
        let r = ProducerRecord::new("t", format!("value-{i:04}")).with_partition(i % 2);
        futures.push((i % 2, producer.send(r).await.unwrap()));
    }
    let mut next = [0i64; 2];
    for (partition, f) in futures {
        let metadata = f.await.unwrap();
        assert_eq!(metadata.partition, partition);
        assert_eq!(
            metadata.offset, next[partition as usize],
            "offsets in send order"
        );
        next[partition as usize] += 1;
    }
    assert_eq!(next, [100, 100]);
    let state = cluster.state();
    assert!(
        state.produce_in_flight_max <= 5,
        "at most 5 requests in flight per partition"
    );
    for partition in 0..2u32 {
        let values: Vec<i64> = state.topics["t"][partition as usize]
            .values()
            .into_iter()
            .map(|(_, v)| {
                let v = v.unwrap();
                std::str::from_utf8(&v["value-".len()..])
                    .unwrap()
                    .parse()
                    .unwrap()
            })
            .collect();
        let expected: Vec<i64> = (0..200).filter(|i| i % 2 == partition as i64).collect();
        assert_eq!(values, expected);
        // Sequences are contiguous from 0 within the partition.
        let mut sequence = 0;
        for call in state
            .produce_calls
            .iter()
            .filter(|c| c.partition == partition)
        {
            let batch = Batch::parse(call.batch.clone()).unwrap();
            assert_eq!(batch.base_sequence(), sequence);
            sequence += batch.record_count();
        }
        assert_eq!(sequence, 100);
    }
    assert!(
        state.produce_calls.len() > 2 && state.produce_calls.len() < 200,
        "records were batched: {} requests",
        state.produce_calls.len()
    );
}

#[tokio::test]
async fn batches_by_size_without_waiting_for_linger_then_flush_sends_the_rest() {
    let cluster = MockCluster::start(1).await;
    cluster.add_topic("t", &[1]);
    let client = client(&cluster).await;
    let producer = client
        .producer(ProducerConfig {
            batch_bytes: 1024,
            ..lingering()
        })
        .unwrap();
    let value = "x".repeat(300);
    let futures = send_all(&producer, (0..8).map(|_| record("t", &value))).await;
    let mut futures = futures.into_iter();
    // Records 0..6 fill two batches (three ~320-byte records each); both are sealed, so they
    // go without waiting for the hour-long linger.
    let first_six: Vec<_> = futures.by_ref().take(6).collect();
    assert_eq!(offsets(first_six).await, vec![0, 1, 2, 3, 4, 5]);
    // The open batch (records 6 and 7) waits for linger or a flush.
    assert_eq!(cluster.state().produce_calls.len(), 2);
    producer.flush().await;
    assert_eq!(offsets(futures.collect()).await, vec![6, 7]);
    let counts: Vec<i32> = cluster
        .state()
        .produce_calls
        .iter()
        .map(|c| Batch::parse(c.batch.clone()).unwrap().record_count())
        .collect();
    assert_eq!(counts, vec![3, 3, 2]);
}

#[tokio::test]
async fn linger_groups_records_sent_together() {
    let cluster = MockCluster::start(1).await;
    cluster.add_topic("t", &[1]);
    let client = client(&cluster).await;
    let producer = client
        .producer(ProducerConfig {
            // Long enough that ten sends fit in it even on a loaded machine.
            linger: Duration::from_millis(300),
            ..ProducerConfig::default()
        })
        .unwrap();
    let futures = send_all(&producer, (0..10).map(|i| record("t", &format!("{i}")))).await;
    // No flush: the linger timer sends the batch.
    assert_eq!(offsets(futures).await, (0..10).collect::<Vec<_>>());
    assert_eq!(cluster.state().produce_calls.len(), 1, "one batch of 10");
}

#[tokio::test]
async fn send_waits_while_the_buffer_is_full() {
    let cluster = MockCluster::start(1).await;
    cluster.add_topic("t", &[1]);
    let client = client(&cluster).await;
    let producer = client
        .producer(ProducerConfig {
            linger: Duration::ZERO,
            batch_bytes: 1024,
            buffer_bytes: 2048,
            ..ProducerConfig::default()
        })
        .unwrap();
    cluster.set_gate(false);
    // Each record counts 24 + 476 = 500 bytes: four fit in 2048.
    let value = "y".repeat(476);
    let mut acks = Vec::new();
    for _ in 0..4 {
        let send = producer.send(record("t", &value)).now_or_never();
        acks.push(send.expect("room in the buffer").unwrap());
    }
    let mut fifth = Box::pin(producer.send(record("t", &value)));
    assert!(
        (&mut fifth).now_or_never().is_none(),
        "the fifth record waits for buffer space"
    );
    cluster.set_gate(true);
    acks.push(fifth.await.unwrap());
    producer.flush().await;
    assert_eq!(offsets(acks).await, vec![0, 1, 2, 3, 4]);
}

#[tokio::test]
async fn a_batch_over_the_node_limit_fails_with_the_limit_and_later_batches_go_on() {
    let cluster = MockCluster::start(1).await;
    cluster.add_topic("t", &[1]);
    cluster.state().max_message_bytes = 1000;
    let client = client(&cluster).await;
    let producer = client.producer(lingering()).unwrap();
    let big = producer.send(record("t", &"z".repeat(2000))).await.unwrap();
    producer.flush().await;
    let error = big.await.unwrap_err();
    match &error {
        Error::MessageTooLarge { size, limit } => {
            assert_eq!(*limit, 1000);
            assert!(*size > 2000);
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(error.to_string().contains("1000"), "{error}");
    assert!(!error.is_retriable());
    // The refused batch used no sequence number: the next one starts at 0 and is accepted.
    let small = send_all(&producer, [record("t", "ok")]).await;
    producer.flush().await;
    assert_eq!(offsets(small).await, vec![0]);
    let state = cluster.state();
    let sequences: Vec<i32> = state
        .produce_calls
        .iter()
        .map(|c| Batch::parse(c.batch.clone()).unwrap().base_sequence())
        .collect();
    assert_eq!(sequences, vec![0, 0]);
}

#[tokio::test]
async fn unknown_topics_and_partitions_and_oversized_records_fail_send() {
    let cluster = MockCluster::start(1).await;
    cluster.add_topic("t", &[1, 1]);
    let client = client(&cluster).await;
    let producer = client
        .producer(ProducerConfig {
            batch_bytes: 1024,
            buffer_bytes: 4096,
            ..ProducerConfig::default()
        })
        .unwrap();
    let error = producer
        .send(ProducerRecord::new("nope", "v"))
        .await
        .unwrap_err();
    assert_eq!(
        error,
        Error::UnknownTopic {
            topic: "nope".into()
        }
    );
    let error = producer
        .send(ProducerRecord::new("t", "v").with_partition(5))
        .await
        .unwrap_err();
    assert_eq!(
        error,
        Error::UnknownPartition {
            topic: "t".into(),
            partition: 5,
            partitions: 2
        }
    );
    let error = producer
        .send(ProducerRecord::new("t", "v".repeat(5000)))
        .await
        .unwrap_err();
    assert!(
        matches!(error, Error::MessageTooLarge { limit: 4096, .. }),
        "{error:?}"
    );
    producer.close().await;
    let error = producer
        .send(ProducerRecord::new("t", "v"))
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Closed(_)));
}

#[tokio::test]
async fn out_of_order_sequence_fails_the_batch_and_takes_a_fresh_producer_id() {
    let cluster = MockCluster::start(1).await;
    cluster.add_topic("t", &[1]);
    let client = client(&cluster).await;
    cluster.push_fault(Fault::Produce {
        status: MockStatus::strata(
            Code::FailedPrecondition,
            "OUT_OF_ORDER_SEQUENCE",
            &[
                ("producer_id", "1001".into()),
                ("expected", "5".into()),
                ("got", "0".into()),
            ],
        ),
        after_write: false,
    });
    let producer = client.producer(lingering()).unwrap();
    let failed = send_all(&producer, [record("t", "a")]).await;
    producer.flush().await;
    for f in failed {
        assert_eq!(
            f.await.unwrap_err(),
            Error::OutOfOrderSequence {
                producer_id: 1001,
                expected: 5,
                got: 0
            }
        );
    }
    let ok = send_all(&producer, [record("t", "b")]).await;
    producer.flush().await;
    assert_eq!(offsets(ok).await, vec![0]);
    let state = cluster.state();
    assert_eq!(state.init_producer_calls, 2, "a fresh producer id");
    let ids: Vec<i64> = state
        .produce_calls
        .iter()
        .map(|c| Batch::parse(c.batch.clone()).unwrap().producer_id())
        .collect();
    assert_ne!(ids[0], ids[1]);
}

#[tokio::test]
async fn delivery_timeout_after_unknown_outcomes_reports_indeterminate() {
    let cluster = MockCluster::start(1).await;
    cluster.add_topic("t", &[1]);
    let client = client(&cluster).await;
    for _ in 0..1000 {
        cluster.push_fault(Fault::Produce {
            status: MockStatus::strata(Code::Unavailable, "INDETERMINATE", &[]),
            after_write: false,
        });
    }
    let producer = client
        .producer(ProducerConfig {
            delivery_timeout: Duration::from_millis(150),
            ..lingering()
        })
        .unwrap();
    let f = send_all(&producer, [record("t", "a")]).await;
    producer.flush().await;
    for f in f {
        let error = f.await.unwrap_err();
        assert!(matches!(error, Error::Indeterminate { .. }), "{error:?}");
        assert!(error.to_string().contains("delivery timeout"), "{error}");
    }
    assert!(cluster.state().produce_calls.len() >= 2, "retried");
}

#[tokio::test]
async fn non_idempotent_acks_none_sends_plain_batches_without_offsets() {
    let cluster = MockCluster::start(1).await;
    cluster.add_topic("t", &[1]);
    let client = client(&cluster).await;
    let producer = client
        .producer(ProducerConfig {
            acks: Acks::None,
            idempotence: false,
            ..lingering()
        })
        .unwrap();
    let f = send_all(&producer, [record("t", "a")]).await;
    producer.close().await;
    assert_eq!(offsets(f).await, vec![-1], "acks=none returns no offset");
    let state = cluster.state();
    assert_eq!(state.init_producer_calls, 0);
    let batch = Batch::parse(state.produce_calls[0].batch.clone()).unwrap();
    assert_eq!(batch.producer_id(), -1);
    assert_eq!(state.produce_calls[0].acks, 3);
}

#[tokio::test]
async fn keys_land_where_kafka_puts_them() {
    let cluster = MockCluster::start(1).await;
    cluster.add_topic("t", &[1, 1, 1, 1, 1]);
    let client = client(&cluster).await;
    let producer = client.producer(lingering()).unwrap();
    let keys = ["alice", "bob", "carol", "dave", "foobar"];
    let mut futures = Vec::new();
    for key in keys {
        let r = ProducerRecord::new("t", "v").with_key(key);
        futures.push((key, producer.send(r).await.unwrap()));
    }
    producer.flush().await;
    for (key, f) in futures {
        let metadata = f.await.unwrap();
        assert_eq!(
            metadata.partition,
            partition_for_key(key.as_bytes(), 5),
            "{key}"
        );
    }
    // Records without a key stick to one partition within a batch.
    let futures = send_all(&producer, (0..5).map(|_| ProducerRecord::new("t", "v"))).await;
    producer.flush().await;
    let mut partitions = Vec::new();
    for f in futures {
        partitions.push(f.await.unwrap().partition);
    }
    partitions.dedup();
    assert_eq!(partitions.len(), 1, "sticky: {partitions:?}");
}

/// Waits until `n` Produce requests of `t`/0 are at the mock.
async fn wait_in_flight(cluster: &MockCluster, n: usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while cluster
        .state()
        .produce_in_flight
        .get(&("t".to_string(), 0))
        .copied()
        .unwrap_or(0)
        < n
    {
        assert!(std::time::Instant::now() < deadline, "never {n} in flight");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn five_batches_travel_at_once_and_resolve_in_order() {
    let cluster = MockCluster::start(1).await;
    cluster.add_topic("t", &[1]);
    let client = client(&cluster).await;
    let producer = client
        .producer(ProducerConfig {
            linger: Duration::ZERO,
            batch_bytes: 100,
            ..ProducerConfig::default()
        })
        .unwrap();
    cluster.set_gate(false);
    let futures = send_all(
        &producer,
        (0..20).map(|i| record("t", &format!("value-{i:03}"))),
    )
    .await;
    wait_in_flight(&cluster, 5).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        cluster.state().produce_in_flight[&("t".to_string(), 0)],
        5,
        "the window holds 5 batches, no more"
    );
    cluster.set_gate(true);
    let offsets = offsets(futures).await;
    assert_eq!(offsets, (0..20).collect::<Vec<i64>>(), "in send order");
    producer.close().await;
}

#[tokio::test]
async fn batches_behind_a_failed_one_are_sent_again_in_order_under_a_fresh_id() {
    let cluster = MockCluster::start(1).await;
    cluster.add_topic("t", &[1]);
    let client = client(&cluster).await;
    let producer = client
        .producer(ProducerConfig {
            linger: Duration::ZERO,
            batch_bytes: 100,
            ..ProducerConfig::default()
        })
        .unwrap();
    cluster.set_gate(false);
    // The first batch is refused outright; the ones in flight behind it come back out of
    // order (their predecessor is missing).
    cluster.push_fault(Fault::ProduceAt {
        sequence: 0,
        status: MockStatus::strata(
            Code::InvalidArgument,
            "INVALID_BATCH",
            &[("reason", "refused by the test".into())],
        ),
    });
    let first = send_all(&producer, [record("t", "first")]).await;
    wait_in_flight(&cluster, 1).await;
    let rest = send_all(
        &producer,
        (0..3).map(|i| record("t", &format!("after-{i}"))),
    )
    .await;
    wait_in_flight(&cluster, 2).await;
    cluster.set_gate(true);
    for f in first {
        assert!(matches!(f.await, Err(Error::InvalidBatch { .. })));
    }
    assert_eq!(
        offsets(rest).await,
        vec![0, 1, 2],
        "written once each, in order"
    );
    let (init_calls, values) = {
        let state = cluster.state();
        let values: Vec<String> = state.topics["t"][0]
            .values()
            .into_iter()
            .map(|(_, v)| String::from_utf8(v.unwrap().to_vec()).unwrap())
            .collect();
        (state.init_producer_calls, values)
    };
    assert_eq!(init_calls, 2, "a fresh producer id");
    assert_eq!(values, vec!["after-0", "after-1", "after-2"]);
    producer.close().await;
}
