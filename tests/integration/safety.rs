//! Regression tests for the safety review (issue 8): each failed on the code before its fix.

use bytes::Bytes;
use std::time::Duration;
use strata_log::sim::{CrashMode, Op};
use strata_raft::error::PartitionError;
use strata_raft::partition::Acks;
use strata_record::sync::now_ms;
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

fn is_segment(p: &std::path::Path) -> bool {
    p.extension().is_some_and(|e| e == "log")
}

/// Damages node `id`'s disk while it is down: zeroes a page in the middle of its first
/// segment, which must be sealed (the log has at least two segments).
fn zero_a_page_of_the_first_sealed_segment(c: &Cluster, id: u64) {
    use std::os::unix::fs::FileExt;
    let mut segments: Vec<std::path::PathBuf> = std::fs::read_dir(c.node_dir(id))
        .expect("list")
        .map(|e| e.expect("entry").path())
        .filter(|p| is_segment(p))
        .collect();
    segments.sort();
    assert!(segments.len() >= 2, "no sealed segment: {segments:?}");
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&segments[0])
        .expect("open segment");
    let len = f.metadata().expect("stat").len();
    f.write_all_at(&[0u8; 4096], len / 2).expect("zero a page");
}

/// Item 2: openraft counts a leader's own copy only after its own flush, so two followers can
/// commit an entry the leader has not synced. With leader restore on (openraft's default), a
/// leader that lost that entry in a power loss of the whole cluster came back as leader of the
/// same term with a shorter log, and wrote a new batch at the acknowledged one's offset. With
/// it off, the restarted leader must win an election, which the followers' longer logs deny.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_lost_its_unsynced_tail_does_not_resume_its_term() {
    let c = Cluster::start(3, strata_tests::test_seed()).await;
    let mut acked = std::collections::BTreeMap::new();
    for i in 0..3 {
        let b = test_batch(1, 40, i, -1, 0);
        let o = c.append(b.clone(), Acks::All, T).await.expect("append");
        acked.insert(o.expect("offset"), b);
    }
    let leader = c.leader(T).await;
    // The leader's segment syncs stall; its followers' do not.
    c.disk(leader).hold_syncs(is_segment);
    let lost_here = test_batch(1, 40, 100, -1, 0);
    let o = c
        .partition(leader)
        .append(lost_here.clone(), Acks::All)
        .await
        .expect("committed by the two followers")
        .expect("offset");
    acked.insert(o, lost_here);
    assert!(
        c.disk(leader).held_syncs() > 0,
        "the leader's sync was not held"
    );
    // Power loss of the whole cluster, the leader first; then all restart together.
    let mut order = vec![leader];
    order.extend(c.ids().into_iter().filter(|id| *id != leader));
    for id in &order {
        c.crash(*id, CrashMode::DropAll).await;
    }
    for id in &order {
        c.open_node(*id).await;
    }
    let next = test_batch(1, 40, 200, -1, 0);
    let o = c
        .append(next.clone(), Acks::All, T)
        .await
        .expect("append after restart")
        .expect("offset");
    assert!(
        !acked.contains_key(&o),
        "offset {o} was acknowledged twice, for two different batches"
    );
    acked.insert(o, next);
    c.check_acknowledged(&acked, T).await;
    c.check_replicas_agree(T).await;
    c.leaders.check();
    c.shutdown().await;
}

/// Item 3: a failed fsync loses the writes it covered, although they stay readable in the
/// page cache (and a sync on a new descriptor succeeds). The replica that reopened after the
/// failure scanned them from the cache and took them as durable: a single voter then
/// committed them, an idempotent retry was answered from them, and a power loss took them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_a_failed_fsync_is_acknowledged_only_once_durable() {
    let c = Cluster::start(1, strata_tests::test_seed()).await;
    let leader = c.leader(T).await;
    let mut acked = std::collections::BTreeMap::new();
    let first = batch_at(5, 0, now_ms());
    let o = c.append(first.clone(), Acks::All, T).await.expect("first");
    acked.insert(o.expect("offset"), first);
    c.disk(leader).inject(Op::Sync, libc::EIO, Some(1));
    let second = batch_at(5, 1, now_ms());
    let r = c.partition(leader).append(second.clone(), Acks::All).await;
    assert!(
        r.is_err(),
        "a batch whose only sync failed was acknowledged: {r:?}"
    );
    // The replica fails and reopens from disk; the producer retries the same bytes.
    let deadline = std::time::Instant::now() + T;
    let o = loop {
        match c.append(second.clone(), Acks::All, T).await {
            Ok(o) => break o.expect("offset"),
            // The failed instance answers until the supervisor takes it down.
            Err(
                PartitionError::Storage { .. } | PartitionError::Stopped | PartitionError::Closed,
            ) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("retry: {e}"),
        }
    };
    assert_eq!(o, 1);
    acked.insert(o, second);
    c.crash(leader, CrashMode::DropAll).await;
    c.open_node(leader).await;
    c.check_acknowledged(&acked, T).await;
    c.shutdown().await;
}

/// Item 8: a replica whose disk lost recorded data (here a zeroed page in a sealed segment,
/// found when it re-applies its log after a restart) cuts its log before the damage and is
/// quarantined until the leader has repaired it: it neither votes nor campaigns. Without the
/// quarantine, its vote and the two lagging voters' votes made a majority of five that
/// elected a leader lacking entries acknowledged with acks=all, and offsets were reused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_lost_acknowledged_entries_cannot_help_elect_a_leader_without_them() {
    let c = Cluster::start(5, strata_tests::test_seed()).await;
    let mut acked = std::collections::BTreeMap::new();
    for i in 0..5 {
        let b = test_batch(1, 40, i, -1, 0);
        let o = c.append(b.clone(), Acks::All, T).await.expect("append");
        acked.insert(o.expect("offset"), b);
    }
    let leader = c.leader(T).await;
    let others: Vec<u64> = c.ids().into_iter().filter(|id| *id != leader).collect();
    let (damaged, holder, lagging) = (others[0], others[1], [others[2], others[3]]);
    for l in lagging {
        c.router.isolate(l, true);
    }
    // Committed on the leader, the holder and the soon-damaged replica only; enough to roll
    // segments (64 KiB), so the first segment is sealed.
    for i in 0..40 {
        let b = test_batch(4, 1000, 100 + i, -1, 0);
        let o = c.append(b.clone(), Acks::All, T).await.expect("append");
        acked.insert(o.expect("offset"), b);
    }
    c.crash(damaged, CrashMode::DropAll).await;
    zero_a_page_of_the_first_sealed_segment(&c, damaged);
    // The leader and the holder go away; the damaged replica comes back beside the two
    // lagging ones: three of five, a majority if it votes.
    c.router.isolate(leader, true);
    c.router.isolate(holder, true);
    for l in lagging {
        c.router.isolate(l, false);
    }
    c.open_node(damaged).await;
    let deadline = std::time::Instant::now() + T;
    loop {
        if c.try_partition(damaged)
            .is_some_and(|p| p.quarantined_until().is_some())
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the damaged replica was never quarantined"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Writes may only land on a leader that has every acknowledged entry: none can be
    // elected among these three (a short try; an acknowledgement is checked like the rest).
    let during = test_batch(1, 40, 500, -1, 0);
    if let Ok(Some(o)) = c
        .append(during.clone(), Acks::All, Duration::from_secs(2))
        .await
    {
        assert!(
            !acked.contains_key(&o),
            "offset {o} was acknowledged twice: a leader without the lost entries was elected"
        );
        acked.insert(o, during);
    }
    // Heal: the leader repairs the damaged replica, whose quarantine then ends.
    c.router.isolate(leader, false);
    c.router.isolate(holder, false);
    let after = test_batch(1, 40, 600, -1, 0);
    let o = c
        .append(after.clone(), Acks::All, T)
        .await
        .expect("append after heal")
        .expect("offset");
    assert!(!acked.contains_key(&o), "offset {o} acknowledged twice");
    acked.insert(o, after);
    let deadline = std::time::Instant::now() + T;
    while c
        .try_partition(damaged)
        .is_none_or(|p| p.quarantined_until().is_some())
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the damaged replica was never repaired"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    c.check_acknowledged(&acked, T).await;
    c.check_replicas_agree(T).await;
    c.leaders.check();
    c.shutdown().await;
}

/// Found by a helper's runs of the test above (an openraft debug assertion, "follower log
/// reversion is not allowed", on the leader): a follower whose disk lost entries it had
/// acknowledged comes back in the same term, and the leader, which remembers it holding them,
/// finds its log shorter. openraft's default treats that as a bug (a debug assertion; in a
/// release build the follower's replication state goes inconsistent and it is never
/// repaired). Strata expects it (damage that a verified open cut away, with the replica
/// quarantined), so the leader must restart its search for the follower's end and repair it
/// without losing its leadership.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_repairs_a_follower_that_lost_acknowledged_entries_in_its_term() {
    let c = Cluster::start(3, strata_tests::test_seed()).await;
    let mut acked = std::collections::BTreeMap::new();
    // Enough to roll segments (64 KiB), so the first segment is sealed.
    for i in 0..40 {
        let b = test_batch(4, 1000, i, -1, 0);
        let o = c.append(b.clone(), Acks::All, T).await.expect("append");
        acked.insert(o.expect("offset"), b);
    }
    let leader = c.leader(T).await;
    let term = c.partition(leader).status().term;
    let damaged = c
        .ids()
        .into_iter()
        .find(|id| *id != leader)
        .expect("a follower");
    // The follower holds (and acknowledged) everything before it goes down.
    let last = c.partition(leader).status().last_log_index;
    let deadline = std::time::Instant::now() + T;
    while c.partition(damaged).status().last_log_index != last {
        assert!(
            std::time::Instant::now() < deadline,
            "follower never caught up"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    c.crash(damaged, CrashMode::DropAll).await;
    zero_a_page_of_the_first_sealed_segment(&c, damaged);
    c.open_node(damaged).await;
    let after = test_batch(1, 40, 600, -1, 0);
    let o = c
        .append(after.clone(), Acks::All, T)
        .await
        .expect("append after the restart")
        .expect("offset");
    acked.insert(o, after);
    let deadline = std::time::Instant::now() + T;
    loop {
        let repaired = c.try_partition(damaged).is_some_and(|p| {
            p.quarantined_until().is_none()
                && p.status().last_log_index == c.partition(leader).status().last_log_index
        });
        if repaired {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the damaged follower was never repaired"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let st = c.partition(leader).status();
    assert_eq!(
        (st.leader, st.term),
        (Some(leader), term),
        "the leader lost its leadership while repairing the follower"
    );
    c.check_acknowledged(&acked, T).await;
    c.check_replicas_agree(T).await;
    c.leaders.check();
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

/// Item 6: `retain_before` proposed its retention entry with no bound, so a leader whose
/// followers could not commit held the caller (the node's retention loop, which serves every
/// partition of the node) for as long as the fault lasted. It now gives up after the write
/// timeout (5 s here) with an indeterminate outcome.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_on_a_leader_that_cannot_commit_gives_up_in_time() {
    let c = Cluster::start(3, strata_tests::test_seed()).await;
    // Enough data to roll segments (64 KiB), so there is a point retention can cut at.
    for i in 0..40 {
        c.append(test_batch(4, 1000, i, -1, 0), Acks::All, T)
            .await
            .expect("append");
    }
    let leader = c.leader(T).await;
    let p = c.partition(leader);
    let hw = p.high_watermark();
    // The followers still answer heartbeats (the lease holds) but cannot make anything
    // durable: nothing can commit.
    for id in c.ids().into_iter().filter(|id| *id != leader) {
        c.disk(id).hold_syncs(is_segment);
    }
    c.append(test_batch(1, 10, 999, -1, 0), Acks::Leader, T)
        .await
        .expect("a write the followers cannot sync");
    let started = std::time::Instant::now();
    let r = tokio::time::timeout(Duration::from_secs(20), p.retain_before(hw)).await;
    let waited = started.elapsed();
    for id in c.ids() {
        c.disk(id).release_syncs(false);
    }
    match r {
        Err(_) => panic!("retain_before still waiting after {waited:?}"),
        Ok(Err(PartitionError::Indeterminate { .. } | PartitionError::NotLeader { .. })) => {}
        Ok(other) => panic!("retain_before answered {other:?} after {waited:?}"),
    }
    assert!(waited < Duration::from_secs(10), "took {waited:?}");
    c.shutdown().await;
}
