//! Consumer groups on the in-process node harness, through the Rust client over gRPC:
//! sharing partitions, handing them over when a member dies or joins, commits that survive a
//! coordinator crash, zombies fenced, and bad requests refused.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};
use strata_client::{
    Client, ConsumerConfig, Error, GroupConsumer, GroupConsumerConfig, Offset, TopicPartition,
};
use strata_log::sim::CrashMode;
use strata_tests::nodes::NodeCluster;
use strata_tests::workload::{produce, values};

fn member_config(group: &str, topic: &str) -> GroupConsumerConfig {
    GroupConsumerConfig {
        session_timeout: Duration::from_secs(2),
        auto_commit_interval: Some(Duration::from_millis(200)),
        start: Offset::Earliest,
        ..GroupConsumerConfig::new(group, [topic])
    }
}

fn consumer_config() -> ConsumerConfig {
    ConsumerConfig {
        fetch_wait: Duration::from_millis(50),
        ..ConsumerConfig::default()
    }
}

/// Checks, from the coordinator's view, that no partition has two holders, and returns what
/// each member holds.
async fn holders(client: &Client, group: &str) -> BTreeMap<String, BTreeSet<TopicPartition>> {
    let d = client.groups().describe(group).await.expect("describe");
    let mut seen = BTreeSet::new();
    let mut out = BTreeMap::new();
    for m in &d.members {
        for tp in &m.owned {
            assert!(seen.insert(tp.clone()), "{tp} held by two members: {d:?}");
        }
        out.insert(m.member_id.clone(), m.owned.iter().cloned().collect());
    }
    out
}

/// Polls every consumer once, recording (partition, offset) of each record read.
async fn poll_all(consumers: &mut [GroupConsumer], seen: &mut Vec<(TopicPartition, i64)>) {
    for c in consumers.iter_mut() {
        let polled = c.poll().await.expect("poll");
        for r in polled.records {
            seen.push((TopicPartition::new(r.topic, r.partition), r.offset));
        }
    }
}

/// Polls until `done` holds (the coordinator's view checked on the way), or panics.
async fn poll_until(
    client: &Client,
    group: &str,
    consumers: &mut [GroupConsumer],
    seen: &mut Vec<(TopicPartition, i64)>,
    what: &str,
    mut done: impl FnMut(&BTreeMap<String, BTreeSet<TopicPartition>>) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        poll_all(consumers, seen).await;
        let h = holders(client, group).await;
        if done(&h) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not reached; holders {h:?}"
        );
    }
}

/// Three consumers share 12 partitions (4 each); one dies without leaving and its partitions
/// move once its session expires; a fourth joins and the sticky assignor moves only its
/// share. No partition ever has two holders, and every record is read at least once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_shares_partitions_and_hands_them_over() {
    let c = NodeCluster::start(3, strata_tests::test_seed()).await;
    let client = Client::connect(c.brokers()).await.expect("connect");
    client
        .admin()
        .create_topic("t", 12, 3, Default::default())
        .await
        .expect("create");
    let produced = produce(&c.brokers(), "t", &values("a", 600)).await;
    let mut consumers: Vec<GroupConsumer> = (0..3)
        .map(|_| {
            client
                .group_consumer(consumer_config(), member_config("g", "t"))
                .expect("consumer")
        })
        .collect();
    let mut seen = Vec::new();
    poll_until(&client, "g", &mut consumers, &mut seen, "3 x 4", |h| {
        h.len() == 3 && h.values().all(|s| s.len() == 4)
    })
    .await;
    // One member dies (no leave: its heartbeats stop, as with SIGKILL).
    let dead = consumers.remove(0);
    let dead_id = dead.member_id();
    drop(dead);
    // What it held, and where it had committed them when it died: the only records read
    // twice may be these partitions' records from those offsets on.
    let dead_held = holders(&client, "g").await[&dead_id].clone();
    let committed_at_death = client
        .groups()
        .committed("g", &[])
        .await
        .expect("committed");
    let died = Instant::now();
    poll_until(&client, "g", &mut consumers, &mut seen, "2 x 6", |h| {
        h.len() == 2 && h.values().all(|s| s.len() == 6)
    })
    .await;
    let took = died.elapsed();
    assert!(!holders(&client, "g").await.contains_key(&dead_id));
    assert!(
        took < Duration::from_secs(10),
        "the dead member's partitions moved after {took:?}"
    );
    // A newcomer: sticky moves exactly its 4.
    let before = holders(&client, "g").await;
    consumers.push(
        client
            .group_consumer(consumer_config(), member_config("g", "t"))
            .expect("consumer"),
    );
    poll_until(
        &client,
        "g",
        &mut consumers,
        &mut seen,
        "3 x 4 again",
        |h| h.len() == 3 && h.values().all(|s| s.len() == 4),
    )
    .await;
    let after = holders(&client, "g").await;
    let moved: usize = before
        .iter()
        .map(|(id, s)| s.difference(&after[id]).count())
        .sum();
    assert_eq!(
        moved, 4,
        "only the newcomer's share moved: {before:?} -> {after:?}"
    );
    // Everything produced is read at least once.
    let deadline = Instant::now() + Duration::from_secs(30);
    let want: BTreeSet<(TopicPartition, i64)> = produced
        .values()
        .map(|(p, o)| (TopicPartition::new("t", *p), *o))
        .collect();
    loop {
        let got: BTreeSet<(TopicPartition, i64)> = seen.iter().cloned().collect();
        if want.is_subset(&got) {
            break;
        }
        assert!(Instant::now() < deadline, "records never read");
        poll_all(&mut consumers, &mut seen).await;
    }
    let mut times: BTreeMap<&(TopicPartition, i64), usize> = BTreeMap::new();
    for r in &seen {
        *times.entry(r).or_default() += 1;
    }
    for ((tp, offset), n) in times.into_iter().filter(|(_, n)| *n > 1) {
        let from = committed_at_death.get(tp).map_or(0, |c| c.offset);
        assert!(
            dead_held.contains(tp) && *offset >= from,
            "{tp}@{offset} read {n} times: not a partition of the dead member ({dead_held:?}) at or after its commit ({from})"
        );
    }
    for consumer in consumers {
        consumer.close().await.expect("close");
    }
    let d = client.groups().describe("g").await.expect("describe");
    assert_eq!(d.state, "empty");
    c.shutdown().await;
}

/// The node coordinating a group crashes (losing what it did not sync) during commit
/// traffic: every acknowledged commit survives on the new coordinator, committed offsets
/// never go back, and a restarted consumer resumes at its group's committed offset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_commits_survive_a_coordinator_crash() {
    let seed = strata_tests::test_seed();
    let mut c = NodeCluster::start(3, seed).await;
    let client = Client::connect(c.brokers()).await.expect("connect");
    client
        .admin()
        .create_topic("t", 2, 3, Default::default())
        .await
        .expect("create");
    let produced = produce(&c.brokers(), "t", &values("a", 400)).await;
    let end = produced
        .values()
        .filter(|(p, _)| *p == 0)
        .map(|(_, o)| o + 1)
        .max()
        .expect("records in t/0");
    let groups = client.groups();
    let tp = TopicPartition::new("t", 0);
    let mut acked = 0;
    for o in 1..=20 {
        groups
            .commit("g", &BTreeMap::from([(tp.clone(), o)]))
            .await
            .expect("commit");
        acked = o;
    }
    let coordinator = client
        .groups()
        .describe("g")
        .await
        .expect("describe")
        .coordinator_id;
    // Commits keep going while the coordinator's node loses power.
    let committer = {
        let groups = groups.clone();
        let tp = tp.clone();
        tokio::spawn(async move {
            let mut acked = acked;
            for o in acked + 1..end - 50 {
                match groups.commit("g", &BTreeMap::from([(tp.clone(), o)])).await {
                    Ok(()) => acked = o,
                    Err(e) => {
                        assert!(e.is_retriable(), "commit {o}: {e}");
                    }
                }
            }
            acked
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    c.crash(coordinator, CrashMode::TornPrefix(seed)).await;
    let acked = committer.await.expect("committer");
    let committed = groups.committed("g", &[]).await.expect("fetch")[&tp].offset;
    assert!(
        committed >= acked,
        "committed {committed} < acknowledged {acked}"
    );
    c.restart(coordinator).await;
    c.wait_healthy(Duration::from_secs(30)).await;
    let again = groups.committed("g", &[]).await.expect("fetch")[&tp].offset;
    assert!(again >= committed, "went back from {committed} to {again}");
    // Backwards is refused, with the committed offset named.
    let back = groups.commit("g", &BTreeMap::from([(tp.clone(), 1)])).await;
    assert!(
        matches!(&back, Err(Error::Group { reason, .. }) if reason == "OFFSET_BEHIND"),
        "{back:?}"
    );
    // A consumer resumes at the committed offset.
    let mut consumer = client
        .group_consumer(consumer_config(), member_config("g", "t"))
        .expect("consumer");
    let deadline = Instant::now() + Duration::from_secs(20);
    let first = loop {
        let polled = consumer.poll().await.expect("poll");
        if let Some(r) = polled.records.iter().find(|r| r.partition == 0) {
            break r.offset;
        }
        assert!(Instant::now() < deadline, "nothing read from t/0");
    };
    assert_eq!(first, again, "resumed at the committed offset");
    consumer.close().await.expect("close");
    c.shutdown().await;
}

/// A member whose session expired (its process paused) is removed; its commits and
/// heartbeats are refused, and bad group requests are refused with a reason, writing nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zombies_and_bad_requests_are_refused() {
    let c = NodeCluster::start(1, strata_tests::test_seed()).await;
    let client = Client::connect(c.brokers()).await.expect("connect");
    client
        .admin()
        .create_topic("t", 2, 1, Default::default())
        .await
        .expect("create");
    produce(&c.brokers(), "t", &values("a", 20)).await;
    let mut consumer = client
        .group_consumer(consumer_config(), member_config("g", "t"))
        .expect("consumer");
    let deadline = Instant::now() + Duration::from_secs(20);
    while consumer.assignment().len() < 2 {
        consumer.poll().await.expect("poll");
        assert!(Instant::now() < deadline, "never assigned");
    }
    // The member's heartbeats stop: the coordinator removes it after its session, and a
    // commit for its partitions is then refused.
    let zombie_id = consumer.member_id();
    let broker = c.broker(1);
    // Its heartbeats stop (dropping it stands in for a paused process).
    drop(consumer);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !broker
        .describe_group("g")
        .await
        .expect("describe")
        .members
        .is_empty()
    {
        assert!(Instant::now() < deadline, "the zombie was never removed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let refused = broker
        .commit_offsets("g", &zombie_id, 1, vec![("t".into(), 0, 5, String::new())])
        .await;
    assert!(
        matches!(
            &refused,
            Err(strata_broker::BrokerError::Group(
                strata_groups::GroupError::UnknownMember(_)
            ))
        ),
        "{refused:?}"
    );
    // Two live members (joined on the broker directly, to hold their epochs): each holds one
    // partition. A commit for the other's partition, or with an epoch from the past, is
    // refused and writes nothing.
    let join = |id: &str| strata_groups::plan::Heartbeat {
        group: "h".into(),
        member_id: id.into(),
        member_epoch: 0,
        subscription: Some(strata_groups::Subscription {
            topics: ["t".to_string()].into(),
            pattern: None,
        }),
        ..Default::default()
    };
    let a = broker.group_heartbeat(join("a")).await.expect("join a");
    let b = broker.group_heartbeat(join("b")).await.expect("join b");
    let beat = |id: &str, epoch: i64, owned: Vec<strata_groups::TopicPartition>| {
        strata_groups::plan::Heartbeat {
            group: "h".into(),
            member_id: id.into(),
            member_epoch: epoch,
            owned: Some(owned),
            ..Default::default()
        }
    };
    let (mut a, mut b) = (a, b);
    for _ in 0..5 {
        let owned = |x: &strata_broker::types::GroupAssignment| {
            x.partitions
                .iter()
                .map(|(_, tp)| tp.clone())
                .collect::<Vec<_>>()
        };
        a = broker
            .group_heartbeat(beat("a", a.member_epoch, owned(&a)))
            .await
            .expect("a");
        b = broker
            .group_heartbeat(beat("b", b.member_epoch, owned(&b)))
            .await
            .expect("b");
    }
    assert_eq!(
        (a.partitions.len(), b.partitions.len()),
        (1, 1),
        "{a:?} {b:?}"
    );
    let b_partition = b.partitions[0].1.partition;
    let not_owned = broker
        .commit_offsets(
            "h",
            "a",
            a.member_epoch as u64,
            vec![("t".into(), b_partition, 1, String::new())],
        )
        .await;
    assert!(
        matches!(
            &not_owned,
            Err(strata_broker::BrokerError::Group(
                strata_groups::GroupError::NotOwned { .. }
            ))
        ),
        "{not_owned:?}"
    );
    let a_partition = a.partitions[0].1.partition;
    let stale = broker
        .commit_offsets(
            "h",
            "a",
            a.member_epoch as u64 + 7,
            vec![("t".into(), a_partition, 1, String::new())],
        )
        .await;
    assert!(
        matches!(
            &stale,
            Err(strata_broker::BrokerError::Group(
                strata_groups::GroupError::FencedMemberEpoch { .. }
            ))
        ),
        "{stale:?}"
    );
    assert!(
        broker
            .fetch_offsets("h", &[])
            .await
            .expect("fetch")
            .is_empty(),
        "nothing written"
    );

    let groups = client.groups();
    let tp = TopicPartition::new("t", 0);
    for (group, offset, reason) in [
        ("", 1, "INVALID_GROUP"),
        (&"x".repeat(300)[..], 1, "INVALID_GROUP"),
        ("g", 1_000_000, "INVALID_OFFSET"),
    ] {
        let r = groups
            .commit(group, &BTreeMap::from([(tp.clone(), offset)]))
            .await;
        assert!(
            matches!(&r, Err(Error::Group { reason: got, .. }) if got == reason),
            "{group:?} {offset}: {r:?}"
        );
    }
    let r = groups
        .commit("g", &BTreeMap::from([(TopicPartition::new("nope", 0), 1)]))
        .await;
    assert!(matches!(r, Err(Error::UnknownTopic { .. })), "{r:?}");
    let r = groups.describe("never-was").await;
    assert!(
        matches!(&r, Err(Error::Group { reason, .. }) if reason == "UNKNOWN_GROUP"),
        "{r:?}"
    );
    assert!(
        groups.committed("g", &[]).await.expect("fetch").is_empty(),
        "nothing written"
    );
    c.shutdown().await;
}

/// Reads `stream` until it holds every record of `want` (partition, offset per topic), in
/// offset order per partition.
fn check_in_order(
    what: &str,
    got: &[(TopicPartition, i64)],
    want: &BTreeSet<(TopicPartition, i64)>,
) {
    let mut last: BTreeMap<&TopicPartition, i64> = BTreeMap::new();
    for (tp, o) in got {
        if let Some(prev) = last.insert(tp, *o) {
            assert!(*o > prev, "{what}: {tp} went from {prev} to {o}");
        }
    }
    let got: BTreeSet<(TopicPartition, i64)> = got.iter().cloned().collect();
    let missing: Vec<_> = want.difference(&got).take(5).collect();
    assert!(missing.is_empty(), "{what}: missing {missing:?}");
}

/// Fan-out and patterns: three groups and two ephemeral subscriptions (one by name, one by
/// pattern) on one topic each see every record, in order per partition; a topic created later
/// that matches the pattern reaches the pattern subscription and a pattern group member, and
/// once deleted it leaves the member's assignment. On one node: every feature works there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_and_subscriptions_fan_out_and_patterns_pick_up_new_topics() {
    let c = NodeCluster::start(1, strata_tests::test_seed()).await;
    let client = Client::connect(c.brokers()).await.expect("connect");
    client
        .admin()
        .create_topic("orders.eu", 2, 1, Default::default())
        .await
        .expect("create");
    // The topic is empty: from its earliest offset, a subscription sees every record
    // without waiting for its streams to open before the first is produced.
    let from_start = |mut c: strata_client::SubscriptionConfig| {
        c.start = Offset::Earliest;
        c
    };
    let mut named = client
        .subscribe(from_start(strata_client::SubscriptionConfig::new([
            "orders.eu",
        ])))
        .expect("subscribe");
    let mut by_pattern = client
        .subscribe(from_start(strata_client::SubscriptionConfig::pattern(
            "orders.*",
        )))
        .expect("subscribe");
    let mut members: Vec<GroupConsumer> = ["g1", "g2", "g3"]
        .iter()
        .map(|g| {
            client
                .group_consumer(consumer_config(), member_config(g, "orders.eu"))
                .expect("consumer")
        })
        .collect();
    let mut pattern_member = client
        .group_consumer(
            consumer_config(),
            GroupConsumerConfig {
                pattern: Some("orders.*".into()),
                ..member_config("gp", "orders.eu")
            },
        )
        .expect("consumer");
    let produced = produce(&c.brokers(), "orders.eu", &values("a", 200)).await;
    let want: BTreeSet<(TopicPartition, i64)> = produced
        .values()
        .map(|(p, o)| (TopicPartition::new("orders.eu", *p), *o))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut read: Vec<Vec<(TopicPartition, i64)>> = vec![Vec::new(); 3];
    while read.iter().any(|r| r.len() < want.len()) {
        assert!(Instant::now() < deadline, "groups did not read everything");
        for (i, m) in members.iter_mut().enumerate() {
            for r in m.poll().await.expect("poll").records {
                read[i].push((TopicPartition::new(r.topic, r.partition), r.offset));
            }
        }
    }
    for (i, r) in read.iter().enumerate() {
        check_in_order(&format!("group {i}"), r, &want);
    }
    for (what, sub) in [("named", &mut named), ("pattern", &mut by_pattern)] {
        let mut got = Vec::new();
        while got.len() < want.len() {
            let batch = tokio::time::timeout(Duration::from_secs(20), sub.next())
                .await
                .unwrap_or_else(|_| panic!("{what}: stalled at {}", got.len()))
                .expect("open")
                .expect("records");
            got.extend(
                batch
                    .into_iter()
                    .map(|r| (TopicPartition::new(r.topic, r.partition), r.offset)),
            );
        }
        check_in_order(what, &got, &want);
    }
    // A matching topic created now reaches the pattern subscription and the pattern member.
    client
        .admin()
        .create_topic("orders.us", 1, 1, Default::default())
        .await
        .expect("create");
    let us = produce(&c.brokers(), "orders.us", &values("u", 10)).await;
    let mut got = 0;
    while got < us.len() {
        let batch = tokio::time::timeout(Duration::from_secs(20), by_pattern.next())
            .await
            .expect("the new topic never reached the pattern subscription")
            .expect("open")
            .expect("records");
        assert!(batch.iter().all(|r| r.topic == "orders.us"), "{batch:?}");
        got += batch.len();
    }
    let us_tp = TopicPartition::new("orders.us", 0);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !pattern_member.assignment().contains(&us_tp) {
        assert!(
            Instant::now() < deadline,
            "the new topic never reached the pattern member"
        );
        pattern_member.poll().await.expect("poll");
    }
    client
        .admin()
        .delete_topic("orders.us")
        .await
        .expect("delete");
    let deadline = Instant::now() + Duration::from_secs(20);
    while pattern_member.assignment().contains(&us_tp) {
        assert!(
            Instant::now() < deadline,
            "a deleted topic stayed in the assignment"
        );
        pattern_member.poll().await.expect("poll");
    }
    for m in members {
        m.close().await.expect("close");
    }
    pattern_member.close().await.expect("close");
    c.shutdown().await;
}

/// The `.log` segment files of every `__consumer_offsets` replica on node `id`.
fn offsets_segments(c: &NodeCluster, id: u64, topic_id: &str) -> usize {
    let dir = c.data_dir(id).join("partitions");
    std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with(topic_id))
                .map(|e| {
                    std::fs::read_dir(e.path())
                        .map(|files| {
                            files
                                .flatten()
                                .filter(|f| f.file_name().to_string_lossy().ends_with(".log"))
                                .count()
                        })
                        .unwrap_or(0)
                })
                .sum()
        })
        .unwrap_or(0)
}

/// `__consumer_offsets` is compacted: once a partition's log holds more than one segment, its
/// coordinator drops the older ones (the group state rides in the retention snapshot), and
/// after every node loses power the groups and their offsets are all still there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_offsets_log_is_compacted_and_the_state_survives_a_power_loss() {
    let seed = strata_tests::test_seed();
    let mut c = NodeCluster::start(3, seed).await;
    let client = Client::connect(c.brokers()).await.expect("connect");
    client
        .admin()
        .create_topic("t", 1, 3, Default::default())
        .await
        .expect("create");
    produce(&c.brokers(), "t", &values("a", 50)).await;
    // 4 KiB of metadata per commit: 1 MiB segments roll every ~250 commits. Several groups,
    // spread over the 4 partitions of __consumer_offsets.
    let metadata = "m".repeat(4000);
    let groups: Vec<String> = (0..8).map(|i| format!("g{i}")).collect();
    let mut last = BTreeMap::new();
    for round in 0..480i64 {
        for g in &groups {
            let offset = 1 + round % 50;
            let offset = offset.max(*last.get(g).unwrap_or(&0));
            // The first commits wait for the new __consumer_offsets partitions' leaders.
            let deadline = Instant::now() + Duration::from_secs(20);
            'commit: loop {
                for id in c.ids() {
                    match c
                        .broker(id)
                        .commit_offsets(g, "", 0, vec![("t".into(), 0, offset, metadata.clone())])
                        .await
                    {
                        Ok(()) => break 'commit,
                        Err(
                            strata_broker::BrokerError::NotLeader { .. }
                            | strata_broker::BrokerError::Indeterminate { .. },
                        ) => continue,
                        Err(e) => panic!("commit {g} {offset}: {e}"),
                    }
                }
                assert!(Instant::now() < deadline, "no coordinator for {g}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            last.insert(g.clone(), offset);
        }
    }
    let topic_id = client
        .admin()
        .describe_topic("__consumer_offsets")
        .await
        .expect("describe")
        .topic_id;
    // 3,840 commits of 4 KiB over 4 partitions: ~16 MiB, 16 or more segments per node
    // without compaction.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let segments: Vec<usize> = c
            .ids()
            .iter()
            .map(|id| offsets_segments(&c, *id, &topic_id))
            .collect();
        // Each replica of each of the 4 partitions keeps its active segment (and at most
        // the one that just rolled).
        if segments.iter().all(|n| *n <= 8) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never compacted: {segments:?} segments"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    c.crash_all(CrashMode::TornPrefix(seed)).await;
    c.restart_all().await;
    c.wait_healthy(Duration::from_secs(30)).await;
    let client = Client::connect(c.brokers()).await.expect("connect");
    for g in &groups {
        let committed = client.groups().committed(g, &[]).await.expect("fetch");
        let got = committed
            .get(&TopicPartition::new("t", 0))
            .unwrap_or_else(|| panic!("{g} lost its offset"));
        assert_eq!(got.offset, last[g], "{g}");
        assert_eq!(got.metadata.len(), 4000);
    }
    c.shutdown().await;
}

/// A member's own controls: pause keeps a partition held but unread, seek moves it, resume
/// reads from there; a commit carries a metadata string back; a heartbeat interval the
/// coordinator cannot accept is reported by `poll`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_pauses_seeks_resumes_and_commits_with_metadata() {
    let c = NodeCluster::start(1, strata_tests::test_seed()).await;
    let client = Client::connect(c.brokers()).await.expect("connect");
    client
        .admin()
        .create_topic("t", 1, 1, Default::default())
        .await
        .expect("create");
    produce(&c.brokers(), "t", &values("a", 20)).await;
    let tp = TopicPartition::new("t", 0);
    let mut m = client
        .group_consumer(
            consumer_config(),
            GroupConsumerConfig {
                heartbeat_interval: Some(Duration::from_millis(100)),
                auto_commit_interval: None,
                ..member_config("g", "t")
            },
        )
        .expect("consumer");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut read = Vec::new();
    while read.len() < 20 {
        read.extend(
            m.poll()
                .await
                .expect("poll")
                .records
                .into_iter()
                .map(|r| r.offset),
        );
        assert!(Instant::now() < deadline, "read {read:?}");
    }
    m.pause(&tp);
    produce(&c.brokers(), "t", &values("b", 5)).await;
    for _ in 0..5 {
        let polled = m.poll().await.expect("poll");
        assert!(polled.records.is_empty(), "a paused partition was read");
    }
    assert_eq!(
        m.assignment(),
        vec![tp.clone()],
        "a paused partition stays held"
    );
    m.seek(&tp, Offset::At(3)).await.expect("seek");
    m.resume(&tp).await.expect("resume");
    let deadline = Instant::now() + Duration::from_secs(20);
    let first = loop {
        if let Some(r) = m.poll().await.expect("poll").records.first() {
            break r.offset;
        }
        assert!(Instant::now() < deadline, "nothing after resume");
    };
    assert_eq!(first, 3, "resumed from the sought offset");
    m.commit_with_metadata(BTreeMap::from([(
        tp.clone(),
        (7, "checkpoint-7".to_string()),
    )]))
    .await
    .expect("commit");
    let committed = client.groups().committed("g", &[]).await.expect("fetch");
    assert_eq!(committed[&tp].offset, 7);
    assert_eq!(committed[&tp].metadata, "checkpoint-7");
    m.close().await.expect("close");

    let mut bad = client
        .group_consumer(
            consumer_config(),
            GroupConsumerConfig {
                heartbeat_interval: Some(Duration::from_secs(5)),
                ..member_config("g2", "t")
            },
        )
        .expect("consumer");
    let deadline = Instant::now() + Duration::from_secs(10);
    let refused = loop {
        match bad.poll().await {
            Err(e) => break e,
            Ok(_) => assert!(Instant::now() < deadline, "never refused"),
        }
    };
    assert!(
        matches!(&refused, Error::InvalidArgument { reason, .. } if reason.contains("heartbeat interval")),
        "{refused:?}"
    );
    c.shutdown().await;
}
