//! Regression tests for the safety review (issue 8): each failed on the code before its fix.

use bytes::Bytes;
use std::time::Duration;
use strata_raft::error::PartitionError;
use strata_raft::partition::Acks;
use strata_tests::cluster::{Cluster, test_batch};

const T: Duration = Duration::from_secs(20);

/// A batch of one record for producer `pid` at `seq`, stamped `timestamp`.
fn batch_at(pid: i64, seq: i32, timestamp: i64) -> Bytes {
    let mut b = strata_record::BatchBuilder::new().with_producer(pid, 0, seq);
    let _ = b.append(&strata_record::NewRecord::new(
        timestamp,
        Some(Bytes::from(format!("k{pid}-{seq}"))),
        Some(Bytes::from_static(b"v")),
    ));
    b.build()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Item 1: a group whose only voter is its leader kept serving only until the leader lease
/// (the election timeout's lower bound, 200 ms here) ran out after its election, because
/// openraft never refreshes `last_quorum_acked` for a leader that is its own quorum.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_voter_leader_keeps_serving_past_its_lease() {
    let c = Cluster::start(1, strata_tests::test_seed()).await;
    let leader = c.leader(T).await;
    let p = c.partition(leader);
    let start = std::time::Instant::now();
    let mut i = 0u64;
    // A workload spread over several leases (not a wait for a condition).
    while start.elapsed() < Duration::from_millis(1500) {
        let off = p
            .append(test_batch(1, 10, i, -1, 0), Acks::All)
            .await
            .unwrap_or_else(|e| panic!("append {i} after {:?}: {e}", start.elapsed()));
        assert_eq!(off, Some(i as i64));
        assert!(
            p.is_ready_leader(),
            "a serving single voter reports not ready"
        );
        i += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let f = p.read(0, 1 << 20, Duration::ZERO).await.expect("read");
    assert_eq!(f.high_watermark, i as i64);
    c.shutdown().await;
}

/// Item 5: producer expiry ran on batch timestamps, so a producer writing now expired one whose
/// batches carry old timestamps (a backfill), and that producer's retry was written twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_timestamp_producer_is_not_expired_by_a_current_one() {
    let c = Cluster::start(3, strata_tests::test_seed()).await;
    let eight_days_ago = now_ms() - 8 * 24 * 3600 * 1000;
    let a = batch_at(7, 0, eight_days_ago);
    let first = c.append(a.clone(), Acks::All, T).await.expect("A");
    c.append(batch_at(8, 0, now_ms()), Acks::All, T)
        .await
        .expect("B");
    let retry = c.append(a, Acks::All, T).await.expect("A again");
    assert_eq!(retry, first, "A's retry was written again");
    let leader = c.leader(T).await;
    assert_eq!(c.partition(leader).high_watermark(), 2);
    c.shutdown().await;
}

/// Item 5: an idempotent batch with acks=leader or acks=none is refused (its in-flight state
/// could not be kept honest), as Kafka refuses idempotence without acks=all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_produce_requires_acks_all() {
    let c = Cluster::start(1, strata_tests::test_seed()).await;
    let leader = c.leader(T).await;
    let p = c.partition(leader);
    for acks in [Acks::Leader, Acks::None] {
        match p.append(batch_at(3, 0, now_ms()), acks).await {
            Err(PartitionError::InvalidBatch { reason }) => {
                assert!(reason.contains("acks=all"), "{reason}")
            }
            other => panic!("{acks:?}: expected InvalidBatch, got {other:?}"),
        }
    }
    assert_eq!(
        p.append(batch_at(3, 0, now_ms()), Acks::All)
            .await
            .expect("acks=all"),
        Some(0)
    );
    c.shutdown().await;
}

/// Found by the fault schedules (seed 92): a leader that removed itself from the voters keeps
/// leading until it steps down, and a second membership change through it tripped an openraft
/// assertion ("Only leader is allowed to call update_effective_membership()") that killed its
/// Raft core (the replica died and had to be reopened). It is now refused as `NotLeader`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_removed_itself_refuses_further_membership_changes() {
    let c = Cluster::start(3, strata_tests::test_seed()).await;
    let leader = c.leader(T).await;
    let p = c.partition(leader);
    p.remove_voters([leader].into_iter().collect())
        .await
        .expect("remove the leader itself");
    match p.add_learner(leader, format!("node-{leader}"), true).await {
        Ok(()) | Err(PartitionError::NotLeader { .. }) => {}
        Err(e) => panic!("membership change through a removed leader: {e}"),
    }
    drop(p);
    // The group goes on under a new leader, and the old one can be added back.
    let deadline = std::time::Instant::now() + T;
    let new = loop {
        let l = c.leader(T).await;
        if l != leader {
            break l;
        }
        assert!(std::time::Instant::now() < deadline, "no new leader");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let p = c.partition(new);
    p.add_learner(leader, format!("node-{leader}"), true)
        .await
        .expect("add back");
    p.promote([leader].into_iter().collect())
        .await
        .expect("promote");
    assert!(c.is_up(leader), "the removed leader's replica died");
    assert_eq!(
        c.status(leader),
        Some(strata_raft::replica::ReplicaStatus::Running)
    );
    c.append(test_batch(1, 10, 1, -1, 0), Acks::All, T)
        .await
        .expect("append");
    c.check_replicas_agree(T).await;
    c.shutdown().await;
}
