//! Pipelined idempotent producers (issue 13): batches of one producer in flight together may
//! reach the leader out of order; a batch ahead of its predecessor waits for it (bounded) and
//! is written after it, and one whose predecessor never comes is refused as out of order.

use bytes::Bytes;
use std::time::{Duration, Instant};
use strata_raft::error::PartitionError;
use strata_raft::partition::Acks;
use strata_record::sync::now_ms;
use strata_tests::cluster::Cluster;

const T: Duration = Duration::from_secs(20);

/// One record for producer `pid` at sequence `seq`.
fn batch(pid: i64, seq: i32) -> Bytes {
    let mut b = strata_record::BatchBuilder::new().with_producer(pid, 0, seq);
    let _ = b.append(&strata_record::NewRecord::new(
        now_ms(),
        Some(Bytes::from(format!("k{seq}"))),
        Some(Bytes::from(format!("v{seq}"))),
    ));
    b.build()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_ahead_of_its_predecessor_waits_for_it_and_follows_it() {
    let c = Cluster::start(3, strata_tests::test_seed()).await;
    let leader = c.leader(T).await;
    let p = c.partition(leader);
    let second = {
        let p = p.clone();
        tokio::spawn(async move { p.append(batch(9, 1), Acks::All).await })
    };
    // The second batch is at the leader first.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!second.is_finished(), "the batch ahead did not wait");
    let first = p.append(batch(9, 0), Acks::All).await.expect("first");
    let second = second.await.expect("join").expect("second");
    assert_eq!(
        (first, second),
        (Some(0), Some(1)),
        "written in sequence order"
    );
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_whose_predecessor_never_comes_is_refused_after_the_wait() {
    let c = Cluster::start(1, strata_tests::test_seed()).await;
    let leader = c.leader(T).await;
    let p = c.partition(leader);
    let started = Instant::now();
    let r = p.append(batch(4, 3), Acks::All).await;
    let took = started.elapsed();
    assert!(
        matches!(
            r,
            Err(PartitionError::OutOfOrderSequence {
                expected: 0,
                got: 3,
                ..
            })
        ),
        "{r:?}"
    );
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "answered after {took:?}"
    );
    assert_eq!(p.high_watermark(), 0, "nothing written");
    c.shutdown().await;
}
