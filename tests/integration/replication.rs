//! Replicated partitions in one process (strata-raft over strata-log, in-memory transport with
//! per-link faults, simulated disks): scenarios with one checker per invariant.

use bytes::Bytes;
use std::collections::BTreeMap;
use std::time::Duration;
use strata_log::sim::CrashMode;
use strata_raft::error::PartitionError;
use strata_raft::partition::Acks;
use strata_tests::cluster::{Cluster, test_batch};

const T: Duration = Duration::from_secs(20);

fn seed() -> u64 {
    strata_tests::test_seed()
}

async fn produce(c: &Cluster, acked: &mut BTreeMap<i64, Bytes>, from: u64, n: u64) {
    for i in from..from + n {
        let b = test_batch(1 + (i % 4) as usize, 100, i, -1, 0);
        let off = c
            .append(b.clone(), Acks::All, T)
            .await
            .expect("append")
            .expect("offset");
        assert!(
            acked.insert(off, b).is_none(),
            "offset {off} acknowledged twice"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_commit_and_agree() {
    let c = Cluster::start(3, seed()).await;
    let mut acked = BTreeMap::new();
    produce(&c, &mut acked, 0, 50).await;
    let offsets: Vec<i64> = acked.keys().copied().collect();
    assert_eq!(offsets[0], 0);
    c.check_acknowledged(&acked, T).await;
    c.check_replicas_agree(T).await;
    let leader = c.leader(T).await;
    let p = c.partition(leader);
    let hw = p.high_watermark();
    let last = acked
        .iter()
        .next_back()
        .map(|(o, b)| o + strata_record::BatchHeader::parse(b).unwrap().record_count as i64);
    assert_eq!(Some(hw), last);
    // Reading at the high watermark waits, then returns nothing new.
    let f = p
        .read(hw, 1 << 20, Duration::from_millis(50))
        .await
        .unwrap();
    assert!(f.batches.is_empty());
    assert!(matches!(
        p.read(hw + 1, 1, Duration::ZERO).await,
        Err(PartitionError::OffsetOutOfRange { .. })
    ));
    // A follower refuses with a hint.
    let follower = c.ids().into_iter().find(|id| *id != leader).unwrap();
    match c
        .partition(follower)
        .append(test_batch(1, 1, 1, -1, 0), Acks::All)
        .await
    {
        Err(PartitionError::NotLeader { leader_id, .. }) => assert_eq!(leader_id, Some(leader)),
        other => panic!("expected NotLeader, got {other:?}"),
    }
    c.leaders.check();
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_crash_loses_nothing_acknowledged() {
    let c = Cluster::start(3, seed()).await;
    let mut acked = BTreeMap::new();
    for round in 0..3u64 {
        produce(&c, &mut acked, round * 100, 30).await;
        let leader = c.leader(T).await;
        c.crash(leader, CrashMode::DropAll).await;
        produce(&c, &mut acked, round * 100 + 50, 10).await;
        c.open_node(leader).await;
    }
    c.check_acknowledged(&acked, T).await;
    c.check_replicas_agree(T).await;
    c.leaders.check();
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitioned_leader_steps_aside_and_its_tail_is_truncated() {
    let c = Cluster::start(3, seed()).await;
    let mut acked = BTreeMap::new();
    produce(&c, &mut acked, 0, 10).await;
    let old = c.leader(T).await;
    let old_term = c.partition(old).metrics().current_term;
    c.router.isolate(old, true);
    // Within its lease the cut-off leader still takes a write into its log (acks=leader) but
    // commits none of it.
    let stray = test_batch(3, 10, 999, -1, 0);
    let stray_offset = c.partition(old).append(stray.clone(), Acks::Leader).await;
    let hw_before = c.partition(old).high_watermark();
    // Past its lease it stops serving.
    let deadline = std::time::Instant::now() + T;
    while c.partition(old).is_ready_leader() {
        assert!(
            std::time::Instant::now() < deadline,
            "a cut-off leader kept serving"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(matches!(
        c.partition(old).read(0, 1, Duration::ZERO).await,
        Err(PartitionError::NotLeader { .. })
    ));
    // The majority elects a new leader and continues.
    let deadline = std::time::Instant::now() + T;
    let new = loop {
        let l = c.leader(T).await;
        if l != old {
            break l;
        }
        assert!(std::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(c.partition(new).metrics().current_term > old_term);
    for i in 0..10u64 {
        let b = test_batch(2, 50, 100 + i, -1, 0);
        let off = c
            .partition(new)
            .append(b.clone(), Acks::All)
            .await
            .unwrap()
            .unwrap();
        acked.insert(off, b);
    }
    assert_eq!(
        c.partition(old).high_watermark(),
        hw_before,
        "minority made progress"
    );
    c.router.isolate(old, false);
    c.check_replicas_agree(T).await;
    c.check_acknowledged(&acked, T).await;
    // The stray (acks=leader) batch was never committed: its offset now holds another batch.
    if let Ok(Some(off)) = stray_offset {
        let leader = c.leader(T).await;
        let f = c
            .partition(leader)
            .read(off, 1, Duration::ZERO)
            .await
            .unwrap();
        assert_ne!(
            &f.batches[0][16..],
            &stray[16..],
            "uncommitted tail survived"
        );
    }
    c.leaders.check();
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolated_follower_term_stays_flat() {
    let c = Cluster::start(3, seed()).await;
    let leader = c.leader(T).await;
    let follower = c.ids().into_iter().find(|id| *id != leader).unwrap();
    let term = c.partition(follower).metrics().current_term;
    c.router.isolate(follower, true);
    // Well past several election timeouts (pre-vote keeps the term flat).
    tokio::time::sleep(Duration::from_millis(2_000)).await;
    assert_eq!(
        c.partition(follower).metrics().current_term,
        term,
        "pre-vote should keep the term"
    );
    c.router.isolate(follower, false);
    let mut acked = BTreeMap::new();
    produce(&c, &mut acked, 0, 5).await;
    assert_eq!(
        c.leader(T).await,
        leader,
        "the healed follower disrupted the leader"
    );
    c.check_replicas_agree(T).await;
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retried_duplicate_after_leader_change_gets_its_original_offset() {
    let c = Cluster::start(3, seed()).await;
    let pid = 42;
    let mut offsets = Vec::new();
    for seq in 0..5 {
        let b = test_batch(2, 10, seq as u64, pid, seq * 2);
        offsets.push(c.append(b, Acks::All, T).await.unwrap().unwrap());
    }
    let leader = c.leader(T).await;
    c.crash(leader, CrashMode::DropAll).await;
    // The new leader answers retries of committed batches with their offsets, writing nothing.
    for seq in 0..5 {
        let b = test_batch(2, 10, seq as u64, pid, seq * 2);
        let got = c.append(b, Acks::All, T).await.unwrap().unwrap();
        assert_eq!(got, offsets[seq as usize]);
    }
    let hw = c.partition(c.leader(T).await).high_watermark();
    assert_eq!(hw, 10);
    // A gap is refused; the next batch in sequence is accepted.
    let gap = test_batch(1, 10, 77, pid, 12);
    assert!(matches!(
        c.append(gap, Acks::All, T).await,
        Err(PartitionError::OutOfOrderSequence {
            expected: 10,
            got: 12,
            ..
        })
    ));
    let next = test_batch(1, 10, 78, pid, 10);
    assert_eq!(c.append(next, Acks::All, T).await.unwrap(), Some(10));
    c.open_node(leader).await;
    c.check_replicas_agree(T).await;
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follower_crash_and_restart_catches_up() {
    let c = Cluster::start(3, seed()).await;
    let mut acked = BTreeMap::new();
    produce(&c, &mut acked, 0, 10).await;
    let leader = c.leader(T).await;
    let follower = c.ids().into_iter().find(|id| *id != leader).unwrap();
    c.crash(follower, CrashMode::TornPrefix(7)).await;
    produce(&c, &mut acked, 100, 20).await;
    c.open_node(follower).await;
    produce(&c, &mut acked, 200, 5).await;
    c.check_replicas_agree(T).await;
    c.check_acknowledged(&acked, T).await;
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_learner_promote_and_remove_a_voter() {
    let c = Cluster::start(3, seed()).await;
    let mut acked = BTreeMap::new();
    produce(&c, &mut acked, 0, 10).await;
    // A fourth replica joins as a learner, catches up, becomes a voter.
    c.add_node(4).await;
    let leader = c.leader(T).await;
    c.partition(leader)
        .add_learner(4, "node-4".into(), true)
        .await
        .unwrap();
    c.partition(leader)
        .promote([4].into_iter().collect())
        .await
        .unwrap();
    produce(&c, &mut acked, 100, 10).await;
    // Remove a voter that is not the leader.
    let leader = c.leader(T).await;
    let victim = c
        .ids()
        .into_iter()
        .find(|id| *id != leader && *id != 4)
        .unwrap();
    c.partition(leader)
        .remove_voters([victim].into_iter().collect())
        .await
        .unwrap();
    let voters: Vec<u64> = c
        .partition(leader)
        .metrics()
        .membership_config
        .membership()
        .voter_ids()
        .collect();
    assert!(
        !voters.contains(&victim) && voters.contains(&4),
        "voters {voters:?}"
    );
    c.crash(victim, CrashMode::DropAll).await;
    produce(&c, &mut acked, 200, 10).await;
    c.check_acknowledged(&acked, T).await;
    c.check_replicas_agree(T).await;
    c.leaders.check();
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_transfer_hands_over_without_loss() {
    let c = Cluster::start(3, seed()).await;
    let mut acked = BTreeMap::new();
    produce(&c, &mut acked, 0, 10).await;
    let old = c.leader(T).await;
    let to = c.ids().into_iter().find(|id| *id != old).unwrap();
    c.partition(old).transfer_leader(to).await.unwrap();
    let deadline = std::time::Instant::now() + T;
    while c.leader(T).await != to {
        assert!(
            std::time::Instant::now() < deadline,
            "leadership did not move to {to}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    produce(&c, &mut acked, 100, 10).await;
    c.check_acknowledged(&acked, T).await;
    c.check_replicas_agree(T).await;
    c.leaders.check();
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_crashes_under_load_lose_nothing_acknowledged() {
    let seed = seed();
    let c = std::sync::Arc::new(Cluster::start(3, seed).await);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Three writers run for the whole test; every acknowledged batch is recorded.
    let mut writers = Vec::new();
    for w in 0..3u64 {
        let c = c.clone();
        let stop = stop.clone();
        writers.push(tokio::spawn(async move {
            let mut acked = BTreeMap::new();
            let mut i = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let b = test_batch(1 + (i % 3) as usize, 64, w * 1_000_000 + i, -1, 0);
                // Not acknowledged: it may or may not be in the log; nothing to check.
                if let Ok(Some(off)) = c.append(b.clone(), Acks::All, Duration::from_secs(3)).await
                {
                    assert!(acked.insert(off, b).is_none());
                }
                i += 1;
            }
            acked
        }));
    }
    let mut rng = seed | 1;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(50 + next() % 150)).await;
        let victim = 1 + next() % 3;
        let mode = if next() % 2 == 0 {
            CrashMode::DropAll
        } else {
            CrashMode::TornPrefix(next())
        };
        c.crash(victim, mode).await;
        tokio::time::sleep(Duration::from_millis(next() % 200)).await;
        c.open_node(victim).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut acked = BTreeMap::new();
    for w in writers {
        for (off, b) in w.await.unwrap() {
            assert!(
                acked.insert(off, b).is_none(),
                "offset {off} acknowledged to two writers"
            );
        }
    }
    assert!(
        acked.len() > 20,
        "too little was acknowledged: {}",
        acked.len()
    );
    c.check_acknowledged(&acked, T).await;
    c.check_replicas_agree(T).await;
    c.leaders.check();
    match std::sync::Arc::try_unwrap(c) {
        Ok(c) => c.shutdown().await,
        Err(_) => panic!("cluster still shared"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lagging_replica_behind_the_retention_point_catches_up_by_snapshot() {
    let c = Cluster::start(3, seed()).await;
    let mut acked = BTreeMap::new();
    // Enough to fill several 64 KiB segments.
    for i in 0..150u64 {
        let b = test_batch(4, 250, i, 7, (i * 4) as i32);
        let off = c.append(b.clone(), Acks::All, T).await.unwrap().unwrap();
        acked.insert(off, b);
    }
    let leader = c.leader(T).await;
    let lagging = c.ids().into_iter().find(|id| *id != leader).unwrap();
    c.crash(lagging, CrashMode::DropAll).await;
    for i in 150..300u64 {
        let b = test_batch(4, 250, i, 7, (i * 4) as i32);
        let off = c.append(b.clone(), Acks::All, T).await.unwrap().unwrap();
        acked.insert(off, b);
    }
    let leader = c.leader(T).await;
    let p = c.partition(leader);
    let start = p
        .retain_before(900)
        .await
        .unwrap()
        .expect("a segment boundary below 900");
    assert!(start > 0 && start <= 900, "start {start}");
    // Every live replica purges up to the retention point.
    let deadline = std::time::Instant::now() + T;
    for id in c.ids().into_iter().filter(|id| c.is_up(*id)) {
        while c.partition(id).log_start_offset() != start {
            assert!(
                std::time::Instant::now() < deadline,
                "node {id} did not purge"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    assert!(matches!(
        p.read(0, 1, Duration::ZERO).await,
        Err(PartitionError::OffsetOutOfRange { .. })
    ));
    drop(p);
    // The lagging replica comes back behind the retention point: snapshot, then log.
    c.open_node(lagging).await;
    for i in 300..320u64 {
        let b = test_batch(4, 250, i, 7, (i * 4) as i32);
        let off = c.append(b.clone(), Acks::All, T).await.unwrap().unwrap();
        acked.insert(off, b);
    }
    while c.partition(lagging).log_start_offset() != start {
        assert!(
            std::time::Instant::now() < deadline,
            "lagging node did not install the snapshot"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    c.check_replicas_agree(T).await;
    let kept: BTreeMap<i64, Bytes> = acked.range(start..).map(|(o, b)| (*o, b.clone())).collect();
    c.check_acknowledged(&kept, T).await;
    // The once-lagging replica can lead: it has the producer state from the snapshot, so a
    // retried batch is still answered with its original offset.
    let current = c.leader(T).await;
    c.partition(current).transfer_leader(lagging).await.unwrap();
    while c.leader(T).await != lagging {
        assert!(
            std::time::Instant::now() < deadline,
            "leadership did not move"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (last_off, last_batch) = acked
        .iter()
        .next_back()
        .map(|(o, b)| (*o, b.clone()))
        .unwrap();
    assert_eq!(
        c.append(last_batch, Acks::All, T).await.unwrap(),
        Some(last_off)
    );
    // Every node restarts from its persisted retention snapshot plus its log.
    for id in c.ids() {
        c.crash(id, CrashMode::DropAll).await;
        c.open_node(id).await;
    }
    c.check_acknowledged(&kept, T).await;
    c.check_replicas_agree(T).await;
    let leader = c.leader(T).await;
    assert_eq!(c.partition(leader).log_start_offset(), start);
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follower_disk_failure_stops_the_replica_which_reopens_when_it_clears() {
    let c = Cluster::start(3, seed()).await;
    let mut acked = BTreeMap::new();
    produce(&c, &mut acked, 0, 10).await;
    let leader = c.leader(T).await;
    let follower = c.ids().into_iter().find(|id| *id != leader).unwrap();
    // Every fsync on the follower's disk now fails.
    c.disk(follower)
        .inject(strata_log::sim::Op::Sync, libc::EIO, None);
    let deadline = std::time::Instant::now() + T;
    let mut i = 100;
    while !matches!(
        c.status(follower),
        Some(strata_raft::replica::ReplicaStatus::Down { .. })
    ) {
        assert!(
            std::time::Instant::now() < deadline,
            "the failed replica did not stop"
        );
        produce(&c, &mut acked, i, 1).await;
        i += 1;
    }
    // The partition stays available on the other two.
    produce(&c, &mut acked, 1000, 10).await;
    c.disk(follower).clear_faults();
    while c.status(follower) != Some(strata_raft::replica::ReplicaStatus::Running) {
        assert!(
            std::time::Instant::now() < deadline,
            "the replica did not reopen"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    produce(&c, &mut acked, 2000, 5).await;
    c.check_replicas_agree(T).await;
    c.check_acknowledged(&acked, T).await;
    c.shutdown().await;
}

fn asleep(c: &Cluster) -> bool {
    use strata_raft::partition::SleepState;
    let states: Vec<SleepState> = c
        .ids()
        .into_iter()
        .filter(|id| c.is_up(*id))
        .map(|id| c.partition(id).sleep_state())
        .collect();
    states
        .iter()
        .filter(|s| matches!(s, SleepState::LeaderAsleep { .. }))
        .count()
        == 1
        && states
            .iter()
            .filter(|s| matches!(s, SleepState::FollowerAsleep { .. }))
            .count()
            == states.len() - 1
}

async fn wait_asleep(c: &Cluster) {
    let deadline = std::time::Instant::now() + T;
    while !asleep(c) {
        assert!(
            std::time::Instant::now() < deadline,
            "the idle group did not go to sleep"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_group_sleeps_wakes_on_write_and_fails_over_while_asleep() {
    use std::sync::atomic::Ordering;
    let c = Cluster::start(3, seed()).await;
    let mut acked = BTreeMap::new();
    produce(&c, &mut acked, 0, 5).await;
    wait_asleep(&c).await;
    // Asleep, the group exchanges no Raft messages (heartbeats included).
    let before = c.router.messages.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let during = c.router.messages.load(Ordering::Relaxed) - before;
    assert!(during <= 2, "{during} Raft messages while asleep");
    // A write wakes it.
    produce(&c, &mut acked, 100, 5).await;
    assert!(!asleep(&c));
    c.check_acknowledged(&acked, T).await;
    // Asleep again, the leader crashes: its node goes silent, the followers wake and elect.
    wait_asleep(&c).await;
    let old = c.leader(T).await;
    let old_term = c.partition(old).metrics().current_term;
    c.crash(old, CrashMode::DropAll).await;
    produce(&c, &mut acked, 200, 5).await;
    let new = c.leader(T).await;
    assert_ne!(new, old);
    assert!(c.partition(new).metrics().current_term > old_term);
    c.open_node(old).await;
    // Asleep again, the leader's node is cut off: the same, and the old leader steps down.
    wait_asleep(&c).await;
    let old = c.leader(T).await;
    c.router.isolate(old, true);
    let deadline = std::time::Instant::now() + T;
    let new = loop {
        // (The cut-off leader still believes it leads, asleep: look among the others.)
        let others: Vec<u64> = c.ids().into_iter().filter(|id| *id != old).collect();
        if let Some(l) = others
            .into_iter()
            .find(|id| c.partition(*id).is_ready_leader())
        {
            break l;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no failover from a sleeping, cut-off leader"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    produce(&c, &mut acked, 300, 5).await;
    c.router.isolate(old, false);
    let deadline = std::time::Instant::now() + T;
    while c.partition(old).leads() {
        assert!(
            std::time::Instant::now() < deadline,
            "the old leader did not step down"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_ne!(new, old);
    c.check_acknowledged(&acked, T).await;
    c.check_replicas_agree(T).await;
    c.leaders.check();
    c.shutdown().await;
}
