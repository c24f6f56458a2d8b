//! Node-level scenarios on the in-process node harness ([`strata_tests::nodes`]): whole nodes
//! (controller, replicas, broker, gRPC) with simulated disks and controllable links, driven
//! through the Rust client over real gRPC.

use bytes::Bytes;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use strata_client::{
    Acks, Client, ConsumedRecord, ConsumerConfig, Offset, ProducerConfig, ProducerRecord,
};
use strata_log::sim::CrashMode;
use strata_tests::nodes::NodeCluster;

fn producer_config() -> ProducerConfig {
    ProducerConfig {
        acks: Acks::All,
        idempotence: true,
        linger: Duration::from_millis(1),
        ..ProducerConfig::default()
    }
}

/// Produces `values` (spread over the topic's partitions by key) and returns each value's
/// acknowledged (partition, offset).
async fn produce(
    brokers: &[String],
    topic: &str,
    values: &[String],
) -> BTreeMap<String, (u32, i64)> {
    let client = Client::connect(brokers.to_vec()).await.expect("connect");
    let producer = client.producer(producer_config()).expect("producer");
    let mut acks = Vec::new();
    for v in values {
        let r = ProducerRecord::new(topic, Bytes::from(v.clone())).with_key(v.clone());
        acks.push((v.clone(), producer.send(r).await.expect("send")));
    }
    let mut out = BTreeMap::new();
    for (v, ack) in acks {
        let m = ack
            .await
            .unwrap_or_else(|e| panic!("{v} not acknowledged: {e}"));
        out.insert(v, (m.partition, m.offset));
    }
    producer.close().await;
    out
}

/// Reads every partition of `topic` from the earliest offset to the end.
async fn read_all(brokers: &[String], topic: &str) -> Vec<ConsumedRecord> {
    let client = Client::connect(brokers.to_vec()).await.expect("connect");
    let mut consumer = client
        .consumer(ConsumerConfig {
            fetch_wait: Duration::from_millis(50),
            ..ConsumerConfig::default()
        })
        .expect("consumer");
    consumer
        .assign_all(topic, Offset::Earliest)
        .await
        .expect("assign");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut out = Vec::new();
    while !consumer.caught_up() {
        assert!(
            Instant::now() < deadline,
            "could not read {topic} to its end"
        );
        out.extend(consumer.poll().await.expect("poll"));
    }
    out
}

/// Checks that every acknowledged value is at its acknowledged place, that each partition's
/// offsets run without gaps from 0, and that no value appears twice.
fn check_acknowledged(acked: &BTreeMap<String, (u32, i64)>, read: &[ConsumedRecord]) {
    let mut at: BTreeMap<(u32, i64), String> = BTreeMap::new();
    let mut seen = BTreeMap::new();
    for r in read {
        let v = String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).to_string();
        assert!(
            at.insert((r.partition, r.offset), v.clone()).is_none(),
            "offset {}/{} read twice",
            r.partition,
            r.offset
        );
        if let Some(prev) = seen.insert(v.clone(), (r.partition, r.offset)) {
            panic!(
                "{v} written twice: at {prev:?} and {}/{}",
                r.partition, r.offset
            );
        }
    }
    let mut next: BTreeMap<u32, i64> = BTreeMap::new();
    for (p, o) in at.keys() {
        let n = next.entry(*p).or_insert(0);
        assert_eq!(*o, *n, "partition {p}: offset {o} follows {}", *n - 1);
        *n += 1;
    }
    for (v, place) in acked {
        assert_eq!(
            at.get(place),
            Some(v),
            "acknowledged {v} at {}/{} is gone",
            place.0,
            place.1
        );
    }
}

fn values(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

/// A producer sending without pause; every acknowledgement it gets is recorded.
struct Load {
    acked: Arc<Mutex<BTreeMap<String, (u32, i64)>>>,
    failed: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Load {
    fn start(brokers: Vec<String>, topic: &'static str) -> Load {
        let acked = Arc::new(Mutex::new(BTreeMap::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let failed = Arc::new(AtomicUsize::new(0));
        let (a, s, f) = (acked.clone(), stop.clone(), failed.clone());
        let task = tokio::spawn(async move {
            let client = Client::connect(brokers).await.expect("connect");
            let producer = client
                .producer(ProducerConfig {
                    delivery_timeout: Duration::from_secs(30),
                    ..producer_config()
                })
                .expect("producer");
            let mut pending = tokio::task::JoinSet::new();
            let mut i = 0u64;
            while !s.load(Ordering::Relaxed) {
                let v = format!("load-{i}");
                i += 1;
                let r = ProducerRecord::new(topic, Bytes::from(v.clone())).with_key(v.clone());
                let Ok(ack) = producer.send(r).await else {
                    f.fetch_add(1, Ordering::Relaxed);
                    break;
                };
                let (a, f) = (a.clone(), f.clone());
                pending.spawn(async move {
                    match ack.await {
                        Ok(m) => {
                            strata_record::sync::lock(&a).insert(v, (m.partition, m.offset));
                        }
                        Err(_) => {
                            f.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                });
                // Keep the pipeline short enough that sends go on while the test waits.
                while pending.len() > 64 {
                    pending.join_next().await;
                }
            }
            // Retries of what was in flight at the crash finish (or fail) here.
            while pending.join_next().await.is_some() {}
            producer.close().await;
        });
        Load {
            acked,
            failed,
            stop,
            task,
        }
    }

    fn acked(&self) -> usize {
        strata_record::sync::lock(&self.acked).len()
    }

    async fn wait_acked(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.acked() < n {
            assert!(
                Instant::now() < deadline,
                "only {} acknowledged",
                self.acked()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Stops sending, waits for the last acknowledgements; returns what was acknowledged
    /// and how many sends failed.
    async fn finish(self) -> (BTreeMap<String, (u32, i64)>, usize) {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.expect("load task");
        let acked = strata_record::sync::lock(&self.acked);
        (acked.clone(), self.failed.load(Ordering::Relaxed))
    }
}

/// Issue 8's headline at node level: every node of the cluster loses power at once while a
/// producer is writing, each disk keeping only what was synced (and a torn prefix of the
/// rest); one node's disk had stalled before, so the others acknowledged records it never
/// made durable. Every record acknowledged with `acks=all` (before the crash, or by a retry after
/// the restart) is still there at its offset, no offset holds two records, no record is
/// written twice, and the topic itself (controller metadata) survives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_power_loss_of_every_node_keeps_every_acknowledged_record() {
    let seed = strata_tests::test_seed();
    let mut c = NodeCluster::start(3, seed).await;
    let client = Client::connect(c.brokers()).await.expect("connect");
    client
        .admin()
        .create_topic("t", 4, 3, Default::default())
        .await
        .expect("create");
    let load = Load::start(c.brokers(), "t");
    load.wait_acked(150).await;
    // Node 1's disk stalls: the other two keep committing (so records are acknowledged that
    // node 1, a leader of some partitions, never made durable), then the power goes out.
    c.disk(1).hold_syncs(|_| true);
    let held = load.acked();
    load.wait_acked(held + 150).await;
    let unsynced = c.ids().iter().any(|id| c.disk(*id).has_unsynced());
    c.crash_all(CrashMode::TornPrefix(seed)).await;
    let before = load.acked();
    c.restart_all().await;
    c.wait_healthy(Duration::from_secs(30)).await;
    let (acked, _) = load.finish().await;
    println!(
        "{before} acknowledged at the crash, {} in all; writes unsynced at the crash: {unsynced}",
        acked.len()
    );
    let read = read_all(&c.brokers(), "t").await;
    check_acknowledged(&acked, &read);
    c.shutdown().await;
}

/// A single node is a deployment too: it loses power under a producer (its disk keeps only
/// what was synced, with a torn tail) and everything it acknowledged is there after the
/// restart, with the topic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_node_loses_power_and_keeps_every_acknowledged_record() {
    let seed = strata_tests::test_seed();
    let mut c = NodeCluster::start(1, seed).await;
    let client = Client::connect(c.brokers()).await.expect("connect");
    client
        .admin()
        .create_topic("t", 2, 1, Default::default())
        .await
        .expect("create");
    let load = Load::start(c.brokers(), "t");
    load.wait_acked(300).await;
    c.crash_all(CrashMode::TornPrefix(seed)).await;
    c.restart_all().await;
    c.wait_healthy(Duration::from_secs(30)).await;
    let (acked, _) = load.finish().await;
    let read = read_all(&c.brokers(), "t").await;
    check_acknowledged(&acked, &read);
    c.shutdown().await;
}

/// The leader of one partition after another crashes under a continuous idempotent load
/// (its disk dropping what was not synced, with a torn tail) and restarts: clients move to
/// the new leaders without an error, nothing acknowledged is lost, nothing is written twice.
/// The in-process successor of the multi-process SIGKILL test: a SIGKILL keeps the page
/// cache, this crash does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashing_leaders_under_load_loses_nothing() {
    let seed = strata_tests::test_seed();
    let mut c = NodeCluster::start(3, seed).await;
    let client = Client::connect(c.brokers()).await.expect("connect");
    client
        .admin()
        .create_topic("load", 6, 3, Default::default())
        .await
        .expect("create");
    let load = Load::start(c.brokers(), "load");
    for round in 0..3u32 {
        load.wait_acked(load.acked() + 300).await;
        let leader = client
            .admin()
            .describe_topic("load")
            .await
            .expect("describe")
            .partitions[(round * 2) as usize]
            .leader_id
            .expect("leader");
        c.crash(leader, CrashMode::TornPrefix(seed + u64::from(round)))
            .await;
        load.wait_acked(load.acked() + 300).await;
        c.restart(leader).await;
    }
    c.wait_healthy(Duration::from_secs(30)).await;
    let (acked, failed) = load.finish().await;
    assert_eq!(failed, 0, "sends failed");
    let read = read_all(&c.brokers(), "load").await;
    check_acknowledged(&acked, &read);
    assert_eq!(read.len(), acked.len());
    c.shutdown().await;
}

/// A replica's node is down while its topic is deleted and a topic of the same name is
/// created: when it comes back, it removes the old replica's directory and serves only the
/// new topic (topic ids, not names, identify replicas). Moved here from the multi-process
/// tests: the node crashes with the simulated disk instead of being killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_and_recreate_while_a_replica_is_down() {
    let mut c = NodeCluster::start(3, strata_tests::test_seed()).await;
    let client = Client::connect(c.brokers()).await.expect("connect");
    let old = client
        .admin()
        .create_topic("t", 1, 3, Default::default())
        .await
        .expect("create");
    produce(&c.brokers(), "t", &values("old", 3)).await;
    let old_dir = c
        .data_dir(3)
        .join("partitions")
        .join(format!("{}-0", old.topic_id));
    assert!(old_dir.exists());

    c.crash(3, CrashMode::DropAll).await;
    let client = Client::connect(c.brokers()).await.expect("connect");
    client.admin().delete_topic("t").await.expect("delete");
    // Three replicas need node 3: recreate with two while it is down.
    let new = client
        .admin()
        .create_topic("t", 1, 2, Default::default())
        .await
        .expect("recreate");
    assert_ne!(new.topic_id, old.topic_id);
    let acked = produce(&c.brokers(), "t", &values("new", 1)).await;

    c.restart(3).await;
    c.wait_healthy(Duration::from_secs(30)).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while old_dir.exists() {
        assert!(
            Instant::now() < deadline,
            "old replica not removed on node 3"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let read = read_all(&c.brokers(), "t").await;
    check_acknowledged(&acked, &read);
    assert_eq!(read.len(), 1);
    c.shutdown().await;
}

/// The leader of a partition is cut off from both other nodes (every Raft, liveness and
/// controller message it sends or would receive fails): the other two elect a new leader,
/// producers follow it, and after the links heal the old leader catches up; nothing
/// acknowledged is lost and nothing is written twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_cut_off_from_its_peers_is_replaced_and_nothing_is_lost() {
    let c = NodeCluster::start(3, strata_tests::test_seed()).await;
    let client = Client::connect(c.brokers()).await.expect("connect");
    client
        .admin()
        .create_topic("t", 1, 3, Default::default())
        .await
        .expect("create");
    let mut acked = produce(&c.brokers(), "t", &values("before", 50)).await;
    let leader = client
        .admin()
        .describe_topic("t")
        .await
        .expect("describe")
        .partitions[0]
        .leader_id
        .expect("leader");
    let others: Vec<u64> = c.ids().into_iter().filter(|i| *i != leader).collect();
    for o in &others {
        c.links().partition(leader, *o);
    }
    // Produce through the other nodes only: the client finds the new leader.
    let reachable: Vec<String> = others.iter().map(|o| c.client_addr(*o)).collect();
    acked.extend(produce(&reachable, "t", &values("during", 50)).await);
    c.links().heal_all();
    c.wait_healthy(Duration::from_secs(30)).await;
    acked.extend(produce(&c.brokers(), "t", &values("after", 50)).await);
    let read = read_all(&c.brokers(), "t").await;
    check_acknowledged(&acked, &read);
    assert_eq!(read.len(), 150);
    c.shutdown().await;
}

/// `GET path` on `addr` over HTTP/1.0; the body.
async fn http_get(addr: &str, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await
        .expect("send");
    let mut out = String::new();
    s.read_to_string(&mut out).await.expect("read");
    out.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default()
}

/// The value of the first sample of `metric` whose line contains `labels`.
fn sample(body: &str, metric: &str, labels: &str) -> Option<f64> {
    body.lines()
        .filter(|l| l.starts_with(metric) && l.contains(labels))
        .find_map(|l| l.rsplit(' ').next()?.parse().ok())
}

/// Elections are counted by cause (a new group's first leader: `startup`; a leader handing
/// over at shutdown: `transfer`; a leader that crashed: `leader_lost`), and the commit-path
/// histograms are exported. The nodes of one process share one metrics recorder, so the
/// counts are the cluster's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elections_are_counted_by_cause_and_commit_latency_is_exported() {
    let mut c = NodeCluster::start(3, strata_tests::test_seed()).await;
    let client = Client::connect(c.brokers()).await.expect("connect");
    client
        .admin()
        .create_topic("t", 2, 3, Default::default())
        .await
        .expect("create");
    produce(&c.brokers(), "t", &values("a", 20)).await;
    let metrics = |c: &NodeCluster, id: u64| {
        let addr = c.http_addr(id);
        async move { http_get(&addr, "/metrics").await }
    };
    let leader_of = |p: usize| {
        let client = client.clone();
        async move {
            client
                .admin()
                .describe_topic("t")
                .await
                .expect("describe")
                .partitions[p]
                .leader_id
                .expect("leader")
        }
    };
    let before = metrics(&c, 1).await;
    let count = |body: &str, cause: &str| {
        sample(
            body,
            "strata_elections_won_total",
            &format!("cause=\"{cause}\""),
        )
        .unwrap_or(0.0)
    };
    assert!(count(&before, "startup") >= 1.0, "{before}");
    assert!(
        sample(&before, "strata_append_to_durable_seconds_count", "").is_some_and(|n| n > 0.0),
        "{before}"
    );
    assert!(
        sample(&before, "strata_propose_to_applied_seconds_count", "").is_some_and(|n| n > 0.0),
        "{before}"
    );
    // A graceful stop hands leadership over.
    let leader = leader_of(0).await;
    c.stop(leader).await;
    c.restart(leader).await;
    c.wait_healthy(Duration::from_secs(30)).await;
    let up = c.ids()[0];
    let after_stop = metrics(&c, up).await;
    assert!(
        count(&after_stop, "transfer") > count(&before, "transfer"),
        "{after_stop}"
    );
    // A crash leaves the others to notice the silence.
    let leader = leader_of(1).await;
    c.crash(leader, CrashMode::DropAll).await;
    produce(
        &c.ids()
            .iter()
            .filter(|i| **i != leader)
            .map(|i| c.client_addr(*i))
            .collect::<Vec<_>>(),
        "t",
        &values("b", 5),
    )
    .await;
    let other = c.ids().into_iter().find(|i| *i != leader).expect("a node");
    let after_crash = metrics(&c, other).await;
    assert!(
        count(&after_crash, "leader_lost") > count(&after_stop, "leader_lost"),
        "{after_crash}"
    );
    c.restart(leader).await;
    c.shutdown().await;
}
