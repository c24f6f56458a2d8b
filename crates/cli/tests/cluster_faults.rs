//! Faults on real node processes under load, checked end to end with the Rust client:
//! SIGKILL of partition leaders, a rolling restart, a leader paused with SIGSTOP, and adding,
//! rebalancing and decommissioning nodes. After each: every acknowledged record is read back
//! exactly once, in order per partition and producer, and replicas hold identical logs up to
//! the high watermark.

mod common;

use bytes::Bytes;
use common::*;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use strata_client::{
    Client, ConsumerConfig, Offset, ProducerConfig, ProducerRecord, RecordMetadata,
};

/// What the load acknowledged: value -> where it was written.
type Acked = Arc<std::sync::Mutex<HashMap<String, RecordMetadata>>>;

struct Load {
    acked: Acked,
    errors: Arc<std::sync::Mutex<Vec<String>>>,
    sent: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// `producers` tasks, each sending `per_producer` records (or until stopped) to partitions
/// round-robin, values `p{task}-{seq}`.
async fn start_load(
    brokers: Vec<String>,
    topic: &str,
    partitions: u32,
    producers: usize,
    per_producer: u64,
) -> Load {
    let acked: Acked = Arc::default();
    let errors = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sent = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for t in 0..producers {
        let (brokers, topic) = (brokers.clone(), topic.to_string());
        let (acked, errors, sent, stop) =
            (acked.clone(), errors.clone(), sent.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let client = Client::connect(brokers).await.expect("connect");
            let producer = client
                .producer(ProducerConfig {
                    linger: Duration::from_millis(2),
                    // A request to a leader cut off by the network hangs until this deadline.
                    request_timeout: Duration::from_secs(5),
                    ..ProducerConfig::default()
                })
                .expect("producer");
            let mut pending = std::collections::VecDeque::new();
            for seq in 0..per_producer {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let value = format!("p{t}-{seq}");
                let rec = ProducerRecord::new(topic.clone(), Bytes::from(value.clone()))
                    .with_partition((seq % partitions as u64) as u32);
                let fut = producer.send(rec).await.expect("send");
                sent.fetch_add(1, Ordering::Relaxed);
                pending.push_back((value, fut));
                while pending.len() > 2000 {
                    let (v, f) = pending.pop_front().expect("pending");
                    settle(&acked, &errors, v, f.await);
                }
            }
            while let Some((v, f)) = pending.pop_front() {
                settle(&acked, &errors, v, f.await);
            }
            producer.close().await;
        }));
    }
    Load {
        acked,
        errors,
        sent,
        stop,
        tasks,
    }
}

fn settle(
    acked: &Acked,
    errors: &std::sync::Mutex<Vec<String>>,
    value: String,
    r: Result<RecordMetadata, strata_client::Error>,
) {
    match r {
        Ok(m) => {
            acked.lock().expect("acked").insert(value, m);
        }
        Err(e) => errors.lock().expect("errors").push(format!("{value}: {e}")),
    }
}

impl Load {
    async fn wait_acked(&self, n: usize, timeout: Duration) {
        let deadline = std::time::Instant::now() + timeout;
        while self.acked.lock().expect("acked").len() < n {
            if std::time::Instant::now() > deadline {
                let errors = self.errors.lock().expect("errors").clone();
                panic!(
                    "timed out waiting for {n} acknowledgements: {} acked, {} sent, errors {:?}",
                    self.acked.lock().expect("acked").len(),
                    self.sent.load(Ordering::Relaxed),
                    &errors[..errors.len().min(5)]
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits for the producers (stopping them first if `stop`).
    async fn finish(self, stop: bool) -> (HashMap<String, RecordMetadata>, Vec<String>) {
        self.stop.store(stop, Ordering::Relaxed);
        for t in self.tasks {
            t.await.expect("producer task");
        }
        let acked = self.acked.lock().expect("acked").clone();
        let errors = self.errors.lock().expect("errors").clone();
        (acked, errors)
    }
}

/// Reads every partition from earliest to its end and checks the acknowledged records: each
/// exactly once at its acknowledged offset, and per producer in send order within a partition.
async fn verify(brokers: Vec<String>, topic: &str, acked: &HashMap<String, RecordMetadata>) {
    let client = Client::connect(brokers).await.expect("connect");
    let mut consumer = client
        .consumer(ConsumerConfig::default())
        .expect("consumer");
    consumer
        .assign_all(topic, Offset::Earliest)
        .await
        .expect("assign");
    let ends = consumer.end_offsets().await.expect("ends");
    let mut seen: HashMap<String, (u32, i64)> = HashMap::new();
    let mut last_offset: BTreeMap<u32, i64> = BTreeMap::new();
    let mut last_seq: HashMap<(u32, String), u64> = HashMap::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let done = ends
            .iter()
            .all(|(tp, end)| consumer.position(&tp.topic, tp.partition).unwrap_or(0) >= *end);
        if done {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "replay did not finish"
        );
        for r in consumer.poll().await.expect("poll") {
            let v = String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned();
            let prev = last_offset.insert(r.partition, r.offset);
            assert!(
                prev.is_none_or(|p| p < r.offset),
                "offsets go back in partition {}: {prev:?} then {}",
                r.partition,
                r.offset
            );
            if let Some((p, o)) = seen.insert(v.clone(), (r.partition, r.offset)) {
                panic!(
                    "{v} read twice: at {p}/{o} and {}/{}",
                    r.partition, r.offset
                );
            }
            let (producer, seq) = v.split_once('-').expect("value format");
            let seq: u64 = seq.parse().expect("seq");
            let key = (r.partition, producer.to_string());
            if let Some(prev) = last_seq.insert(key, seq) {
                assert!(
                    prev < seq,
                    "{producer} out of order in partition {}",
                    r.partition
                );
            }
        }
    }
    for (v, m) in acked {
        let Some((p, o)) = seen.get(v) else {
            panic!("acknowledged record {v} ({m:?}) was lost");
        };
        assert_eq!((*p, *o), (m.partition, m.offset), "{v} moved");
    }
}

/// Stops the cluster and compares every replica's log, byte for byte, up to the smallest
/// high watermark... of the committed prefix: entries present on all replicas must match, and
/// every replica holds at least every acknowledged offset.
async fn compare_replicas(
    c: &mut ProcCluster,
    topic: &str,
    topic_id: &str,
    partitions: u32,
    hw: &BTreeMap<u32, i64>,
) {
    let ids: Vec<u64> = c.nodes.keys().copied().collect();
    // Followers apply asynchronously: wait until every replica applied up to the end.
    for id in &ids {
        let addr = c.node(*id).client_addr();
        let (topic, hw) = (topic.to_string(), hw.clone());
        wait_until("replicas caught up", Duration::from_secs(60), move || {
            let (addr, topic, hw) = (addr.clone(), topic.clone(), hw.clone());
            async move {
                topic_at(&addr, &topic).await.is_some_and(|t| {
                    t.partitions.iter().all(|p| {
                        p.high_watermark < 0
                            || p.high_watermark >= hw.get(&p.partition).copied().unwrap_or(0)
                    })
                })
            }
        })
        .await;
    }
    for id in &ids {
        c.node(*id).stop();
    }
    let flusher = strata_log::Flusher::start("compare").expect("flusher");
    for p in 0..partitions {
        let end = hw.get(&p).copied().unwrap_or(0);
        let mut reference: Option<Vec<Bytes>> = None;
        for id in &ids {
            let dir = c
                .node(*id)
                .dir
                .join("partitions")
                .join(format!("{topic_id}-{p}"));
            if !dir.exists() {
                continue;
            }
            let log = strata_log::Log::open(
                &dir,
                strata_log::LogConfig::default(),
                Arc::new(strata_log::RealDisk),
                &flusher.handle(),
            )
            .expect("open replica log");
            // A read may stop at a segment's end: read on until the high watermark.
            let reader = log.reader();
            let mut batches: Vec<Bytes> = Vec::new();
            let end = strata_log::Offset::new(end);
            let mut from = strata_log::Offset::new(0);
            while from < end {
                let entries = reader.read(from, 64 << 20, end).expect("read replica log");
                let Some(last) = entries.last() else { break };
                from = last.base_offset.plus_records(last.record_count.max(1));
                batches.extend(
                    entries
                        .into_iter()
                        .filter(|e| e.base_offset < end && e.record_count > 0)
                        .map(|e| e.payload),
                );
            }
            match &reference {
                None => reference = Some(batches),
                Some(r) => {
                    if r != &batches {
                        let at = r.iter().zip(&batches).position(|(a, b)| a != b);
                        let show = |v: &Vec<Bytes>, i: Option<usize>| {
                            i.and_then(|i| v.get(i))
                                .and_then(|b| strata_record::BatchHeader::parse(b).ok())
                                .map(|h| {
                                    (
                                        h.base_offset,
                                        h.partition_leader_epoch,
                                        h.record_count,
                                        h.base_sequence,
                                    )
                                })
                        };
                        panic!(
                            "replica on node {id} of partition {p} differs below the high watermark {end}: \
                             {} vs {} batches, first difference at {at:?}: {:?} vs {:?}",
                            r.len(),
                            batches.len(),
                            show(r, at),
                            show(&batches, at)
                        );
                    }
                }
            }
        }
    }
}

async fn create_topic(c: &mut ProcCluster, name: &str, partitions: u32) -> String {
    let client = Client::connect(c.brokers()).await.expect("connect");
    let t = client
        .admin()
        .create_topic(name, partitions, 3, BTreeMap::new())
        .await
        .expect("create");
    c.wait_healthy(Duration::from_secs(30)).await;
    t.topic_id
}

fn high_watermarks(acked: &HashMap<String, RecordMetadata>) -> BTreeMap<u32, i64> {
    let mut hw = BTreeMap::new();
    for m in acked.values() {
        let e = hw.entry(m.partition).or_insert(0);
        *e = (*e).max(m.offset + 1);
    }
    hw
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_restart_under_load_is_invisible_to_clients() {
    let mut c = ProcCluster::start(3).await;
    let topic_id = create_topic(&mut c, "roll", 3).await;
    let load = start_load(c.brokers(), "roll", 3, 2, u64::MAX).await;
    load.wait_acked(2_000, Duration::from_secs(60)).await;
    let ids: Vec<u64> = c.nodes.keys().copied().collect();
    for id in ids {
        let status = c.node(id).stop();
        assert!(
            status.is_some_and(|s| s.success()),
            "node {id} did not stop cleanly"
        );
        c.restart(id).await;
        c.wait_healthy(Duration::from_secs(60)).await;
        let before = load.acked.lock().expect("acked").len();
        load.wait_acked(before + 1_000, Duration::from_secs(60))
            .await;
    }
    let (acked, errors) = load.finish(true).await;
    assert!(
        errors.is_empty(),
        "clients saw errors: {:?}",
        &errors[..errors.len().min(5)]
    );
    verify(c.brokers(), "roll", &acked).await;
    compare_replicas(&mut c, "roll", &topic_id, 3, &high_watermarks(&acked)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_leader_steps_down_and_nothing_is_lost() {
    let mut c = ProcCluster::start(3).await;
    let topic_id = create_topic(&mut c, "pause", 1).await;
    let load = start_load(c.brokers(), "pause", 1, 2, u64::MAX).await;
    load.wait_acked(2_000, Duration::from_secs(60)).await;
    let old = c.leader_of("pause", 0).await.expect("leader");
    c.node(old).pause();
    // A new leader is elected by the others (election timeout 0.5-1 s in tests).
    let others: Vec<u64> = c.nodes.keys().copied().filter(|id| *id != old).collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let new = loop {
        let mut found = None;
        for id in &others {
            let addr = c.node(*id).client_addr();
            if let Some(l) = partition_at(&addr, "pause", 0).await.map(|p| p.leader_id)
                && l != 0
                && l != old
            {
                found = Some(l);
            }
        }
        if let Some(l) = found {
            break l;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no new leader while {old} is paused"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let before = load.acked.lock().expect("acked").len();
    load.wait_acked(before + 1_000, Duration::from_secs(60))
        .await;
    c.node(old).resume();
    // The old leader learns of the new term and follows.
    let old_addr = c.node(old).client_addr();
    wait_until("old leader steps down", Duration::from_secs(30), || {
        let old_addr = old_addr.clone();
        async move {
            partition_at(&old_addr, "pause", 0)
                .await
                .is_some_and(|p| p.leader_id != old && p.leader_id != 0)
        }
    })
    .await;
    let _ = new;
    let (acked, errors) = load.finish(true).await;
    assert!(
        errors.is_empty(),
        "clients saw errors: {:?}",
        &errors[..errors.len().min(5)]
    );
    c.wait_healthy(Duration::from_secs(60)).await;
    verify(c.brokers(), "pause", &acked).await;
    compare_replicas(&mut c, "pause", &topic_id, 1, &high_watermarks(&acked)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_rebalance_and_decommission_under_load() {
    let mut c = ProcCluster::start(3).await;
    create_topic(&mut c, "grow", 6).await;
    let load = start_load(c.brokers(), "grow", 6, 2, u64::MAX).await;
    load.wait_acked(2_000, Duration::from_secs(60)).await;
    let new = c.add_node(None).await;
    assert_eq!(new, 4);
    let client = Client::connect(c.brokers()).await.expect("connect");
    let admin = client.admin();
    let moves = admin.rebalance().await.expect("rebalance");
    assert!(moves > 0, "a new node should take replicas");
    let wait_settled = |what: &'static str| {
        let admin = admin.clone();
        async move {
            wait_until(what, Duration::from_secs(120), || {
                let admin = admin.clone();
                async move {
                    admin
                        .cluster_status()
                        .await
                        .is_ok_and(|s| s.moves_in_progress == 0 && s.healthy)
                }
            })
            .await;
        }
    };
    wait_settled("rebalance onto node 4").await;
    wait_until("node 4 holds replicas", Duration::from_secs(60), || {
        let admin = admin.clone();
        async move {
            admin
                .describe_topic("grow")
                .await
                .is_ok_and(|t| t.partitions.iter().any(|p| p.voters.contains(&4)))
        }
    })
    .await;
    admin.decommission(1).await.expect("decommission");
    wait_settled("decommission of node 1").await;
    // Metadata reaches every node asynchronously: ask until the answering node has it.
    wait_until("node 1 emptied", Duration::from_secs(60), || {
        let admin = admin.clone();
        async move {
            admin.describe_topic("grow").await.is_ok_and(|t| {
                t.partitions
                    .iter()
                    .all(|p| !p.replicas.contains(&1) && !p.voters.contains(&1))
            })
        }
    })
    .await;
    let before = load.acked.lock().expect("acked").len();
    load.wait_acked(before + 1_000, Duration::from_secs(60))
        .await;
    let (acked, errors) = load.finish(true).await;
    assert!(
        errors.is_empty(),
        "clients saw errors: {:?}",
        &errors[..errors.len().min(5)]
    );
    verify(c.brokers(), "grow", &acked).await;
}

/// The (leader, term) node `addr` reports for `topic`/`partition`.
async fn leader_and_term(addr: &str, topic: &str, partition: u32) -> Option<(u64, u64)> {
    partition_at(addr, topic, partition)
        .await
        .map(|p| (p.leader_id, p.leader_term))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_cut_off_by_the_network_steps_down_and_nothing_is_lost() {
    let Some(mut c) = ProcCluster::start_netns(3).await else {
        eprintln!("SKIPPED: cannot create network namespaces here (needs root and `ip`)");
        return;
    };
    let topic_id = create_topic(&mut c, "cut", 3).await;
    let load = start_load(c.brokers(), "cut", 3, 2, u64::MAX).await;
    load.wait_acked(2_000, Duration::from_secs(60)).await;
    // The leader of partition 0, as it says itself (with its term).
    let (old, old_addr, old_term) = loop {
        let l = c.leader_of("cut", 0).await.expect("leader");
        let addr = c.node(l).client_addr();
        if let Some((me, term)) = leader_and_term(&addr, "cut", 0).await
            && me == l
        {
            break (l, addr, term);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let net = c.net.take().expect("net");
    net.cut(old);
    // The majority side elects a new leader and keeps taking writes.
    let before = load.acked.lock().expect("acked").len();
    load.wait_acked(before + 2_000, Duration::from_secs(60))
        .await;
    // The majority elected a leader in a newer term.
    let others: Vec<String> = c
        .nodes
        .values()
        .filter(|p| p.id != old)
        .map(|p| p.client_addr())
        .collect();
    wait_until(
        "a new leader on the majority side",
        Duration::from_secs(30),
        || {
            let others = others.clone();
            async move {
                for a in &others {
                    if leader_and_term(a, "cut", 0)
                        .await
                        .is_some_and(|(l, t)| l != 0 && l != old && t > old_term)
                    {
                        return true;
                    }
                }
                false
            }
        },
    )
    .await;
    net.heal(old);
    // The old leader learns of the newer term and follows (its uncommitted tail, if any, is
    // truncated by the new leader). Dead TCP connections from the cut are replaced within the
    // peer keepalive (10 s + 5 s).
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let seen = leader_and_term(&old_addr, "cut", 0).await;
        if seen.is_some_and(|(l, t)| l != 0 && l != old && t > old_term) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "node {old} still reports {seen:?} (it led in term {old_term})"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    c.net = Some(net);
    let before = load.acked.lock().expect("acked").len();
    load.wait_acked(before + 1_000, Duration::from_secs(60))
        .await;
    let (acked, errors) = load.finish(true).await;
    c.wait_healthy(Duration::from_secs(60)).await;
    verify(c.brokers(), "cut", &acked).await;
    assert!(
        errors.is_empty(),
        "clients saw errors: {:?}",
        &errors[..errors.len().min(5)]
    );
    compare_replicas(&mut c, "cut", &topic_id, 3, &high_watermarks(&acked)).await;
}

/// One acknowledged record of [`TimedLoad`]: its partition, when it was sent and when its
/// acknowledgement arrived.
#[derive(Debug, Clone, Copy)]
struct TimedAck {
    partition: u32,
    sent: std::time::Instant,
    acked: std::time::Instant,
}

/// Producers writing at a steady rate, each record's outcome awaited on its own (a partition
/// whose leader hangs never holds the others back), recording when each was acknowledged.
struct TimedLoad {
    acks: Arc<std::sync::Mutex<Vec<TimedAck>>>,
    acked: Acked,
    errors: Arc<std::sync::Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// `producers` tasks, each with its own client and producer (default settings), each sending
/// one record every `every` to the partitions in turn, values `p{task}-{seq}`.
async fn start_timed_load(
    brokers: Vec<String>,
    topic: &str,
    partitions: u32,
    producers: usize,
    every: Duration,
) -> TimedLoad {
    let acks = Arc::new(std::sync::Mutex::new(Vec::new()));
    let acked: Acked = Arc::default();
    let errors = Arc::new(std::sync::Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for t in 0..producers {
        let (brokers, topic) = (brokers.clone(), topic.to_string());
        let (acks, acked, errors, stop) =
            (acks.clone(), acked.clone(), errors.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let client = Client::connect(brokers).await.expect("connect");
            let producer = client
                .producer(ProducerConfig::default())
                .expect("producer");
            let mut outcomes = tokio::task::JoinSet::new();
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut seq = 0u64;
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                let value = format!("p{t}-{seq}");
                let partition = (seq % u64::from(partitions)) as u32;
                seq += 1;
                let rec = ProducerRecord::new(topic.clone(), Bytes::from(value.clone()))
                    .with_partition(partition);
                let sent = std::time::Instant::now();
                let fut = producer.send(rec).await.expect("send");
                let (acks, acked, errors) = (acks.clone(), acked.clone(), errors.clone());
                outcomes.spawn(async move {
                    let r = fut.await;
                    if r.is_ok() {
                        acks.lock().expect("acks").push(TimedAck {
                            partition,
                            sent,
                            acked: std::time::Instant::now(),
                        });
                    }
                    settle(&acked, &errors, value, r);
                });
                while let Some(done) = outcomes.try_join_next() {
                    done.expect("outcome task");
                }
            }
            while let Some(done) = outcomes.join_next().await {
                done.expect("outcome task");
            }
            producer.close().await;
        }));
    }
    TimedLoad {
        acks,
        acked,
        errors,
        stop,
        tasks,
    }
}

impl TimedLoad {
    fn acks(&self) -> Vec<TimedAck> {
        self.acks.lock().expect("acks").clone()
    }

    /// Whether every partition acknowledged a record sent at or after `since`.
    fn all_acked_since(&self, partitions: u32, since: std::time::Instant) -> bool {
        let acks = self.acks.lock().expect("acks");
        (0..partitions).all(|p| acks.iter().any(|a| a.partition == p && a.sent >= since))
    }

    /// Waits until every partition acknowledged a record sent at or after `since`.
    async fn wait_all_acked_since(
        &self,
        partitions: u32,
        since: std::time::Instant,
        timeout: Duration,
    ) {
        let deadline = std::time::Instant::now() + timeout;
        while !self.all_acked_since(partitions, since) {
            if std::time::Instant::now() > deadline {
                let errors = self.errors.lock().expect("errors").clone();
                panic!(
                    "not every partition acknowledged a record within {timeout:?}: errors {:?}",
                    &errors[..errors.len().min(5)]
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn finish(self) -> (HashMap<String, RecordMetadata>, Vec<String>, Vec<TimedAck>) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            t.await.expect("producer task");
        }
        let acked = self.acked.lock().expect("acked").clone();
        let errors = self.errors.lock().expect("errors").clone();
        let acks = self.acks.lock().expect("acks").clone();
        (acked, errors, acks)
    }
}

/// How each partition fared in one fault.
struct FaultTimes {
    name: String,
    /// Per partition: from the fault's start to the first acknowledgement of a record sent
    /// after it (`None`: none before `end`).
    first_ack: BTreeMap<u32, Option<Duration>>,
    /// Per partition: the longest time without an acknowledgement between the last one
    /// before the fault and `end`.
    longest_gap: BTreeMap<u32, Duration>,
    /// How long the fault lasted.
    length: Duration,
    /// Per partition: when the other nodes first named a leader other than the faulty node.
    elected: BTreeMap<u32, Duration>,
}

/// How each partition fared in the fault that started at `start` and ended at `healed`, by
/// the acknowledgements up to `end` (after the fault).
fn fault_times(
    name: &str,
    acks: &[TimedAck],
    partitions: u32,
    start: std::time::Instant,
    healed: std::time::Instant,
    end: std::time::Instant,
    elected: BTreeMap<u32, Duration>,
) -> FaultTimes {
    let mut first_ack = BTreeMap::new();
    let mut longest_gap = BTreeMap::new();
    for p in 0..partitions {
        let first = acks
            .iter()
            .filter(|a| a.partition == p && a.sent >= start && a.acked <= end)
            .map(|a| a.acked - start)
            .min();
        first_ack.insert(p, first);
        let mut times: Vec<std::time::Instant> = acks
            .iter()
            .filter(|a| a.partition == p)
            .map(|a| a.acked)
            .collect();
        times.sort();
        let before = times.iter().rev().find(|t| **t < start).copied();
        let mut last = before.unwrap_or(start);
        let mut gap = Duration::ZERO;
        for t in times.iter().filter(|t| **t >= start && **t <= end) {
            gap = gap.max(*t - last);
            last = *t;
        }
        gap = gap.max(end - last);
        longest_gap.insert(p, gap);
    }
    FaultTimes {
        name: name.to_string(),
        first_ack,
        longest_gap,
        length: healed - start,
        elected,
    }
}

impl std::fmt::Display for FaultTimes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{} (healed after {:.2} s):",
            self.name,
            self.length.as_secs_f64()
        )?;
        for (p, first) in &self.first_ack {
            let gap = self.longest_gap.get(p).copied().unwrap_or_default();
            let secs = |d: Option<Duration>| {
                d.map_or("none".to_string(), |d| format!("{:.2} s", d.as_secs_f64()))
            };
            writeln!(
                f,
                "  partition {p}: other leader named at {}, first ack of a record sent after \
                 the start at {}, longest gap {:.2} s",
                secs(self.elected.get(p).copied()),
                secs(*first),
                gap.as_secs_f64()
            )?;
        }
        Ok(())
    }
}

/// Watches, from `start` until `stop`, the metadata of the nodes at `addrs` (not the faulty
/// one): for each partition of `topic`, when one of them first named a leader other than
/// `faulty` (the election, as the cluster saw it). Returned when stopped.
fn watch_new_leaders(
    addrs: Vec<String>,
    topic: &str,
    faulty: u64,
    start: std::time::Instant,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<BTreeMap<u32, Duration>> {
    let topic = topic.to_string();
    tokio::spawn(async move {
        let mut seen = BTreeMap::new();
        while !stop.load(Ordering::Relaxed) {
            for addr in &addrs {
                let Some(t) = topic_at(addr, &topic).await else {
                    continue;
                };
                for p in t.partitions {
                    if p.leader_id != 0 && p.leader_id != faulty {
                        seen.entry(p.partition).or_insert_with(|| start.elapsed());
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        seen
    })
}

/// The node leading the most partitions of `topic` among `candidates` (by the metadata).
async fn busiest_leader(
    c: &mut ProcCluster,
    topic: &str,
    partitions: u32,
    candidates: &[u64],
) -> u64 {
    let mut led: BTreeMap<u64, usize> = candidates.iter().map(|id| (*id, 0)).collect();
    for p in 0..partitions {
        if let Some(l) = c.leader_of(topic, p).await
            && let Some(n) = led.get_mut(&l)
        {
            *n += 1;
        }
    }
    let (id, n) = led
        .into_iter()
        .max_by_key(|(id, n)| (*n, std::cmp::Reverse(*id)))
        .expect("a candidate");
    assert!(n > 0, "none of {candidates:?} leads a partition of {topic}");
    id
}

/// Liveness under the faults of a failure drill, with the default Raft timing (heartbeat
/// 300 ms, elections 1.5-3 s) and default client settings: the node leading the most
/// partitions is paused (SIGSTOP) for 15 s, then another leader is cut off from the network
/// for 15 s. Every partition must acknowledge a record sent after each fault's start within 5 s
/// of it (the others elect a new leader within the election timeout, and the client must
/// notice and go there), and nothing acknowledged may be lost, duplicated or reordered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_resume_within_seconds_when_a_leader_is_paused_or_cut_off() {
    const PARTITIONS: u32 = 6;
    const FAULT: Duration = Duration::from_secs(15);
    const BOUND: Duration = Duration::from_secs(5);
    if let Ok(filter) = std::env::var("STRATA_TEST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .try_init();
    }
    let Some(mut c) = ProcCluster::start_netns_with(3, false).await else {
        eprintln!("SKIPPED: cannot create network namespaces here (needs root and `ip`)");
        return;
    };
    let topic_id = create_topic(&mut c, "live", PARTITIONS).await;
    let load = start_timed_load(c.brokers(), "live", PARTITIONS, 4, Duration::from_millis(5)).await;
    let warm = std::time::Instant::now();
    load.wait_all_acked_since(PARTITIONS, warm, Duration::from_secs(60))
        .await;
    let ids: Vec<u64> = c.nodes.keys().copied().collect();
    let mut faults = Vec::new();

    // Fault 1: the busiest leader is frozen.
    let paused = busiest_leader(&mut c, "live", PARTITIONS, &ids).await;
    let addrs: Vec<String> = ids
        .iter()
        .filter(|id| **id != paused)
        .map(|id| c.node(*id).client_addr())
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let start = std::time::Instant::now();
    c.node(paused).pause();
    let elections = watch_new_leaders(addrs, "live", paused, start, stop.clone());
    // The fault lasts FAULT whatever happens: that is the drill.
    while start.elapsed() < FAULT {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    c.node(paused).resume();
    let healed = std::time::Instant::now();
    stop.store(true, Ordering::Relaxed);
    let elected = elections.await.expect("leader watch");
    c.wait_healthy(Duration::from_secs(90)).await;
    load.wait_all_acked_since(PARTITIONS, healed, Duration::from_secs(60))
        .await;
    faults.push(fault_times(
        &format!("node {paused} paused (SIGSTOP)"),
        &load.acks(),
        PARTITIONS,
        start,
        healed,
        std::time::Instant::now(),
        elected,
    ));
    eprintln!("{}", faults[0]);

    // Fault 2: another leader is cut off from the network (peers and clients).
    let others: Vec<u64> = ids.iter().copied().filter(|id| *id != paused).collect();
    let cut = busiest_leader(&mut c, "live", PARTITIONS, &others).await;
    let addrs: Vec<String> = ids
        .iter()
        .filter(|id| **id != cut)
        .map(|id| c.node(*id).client_addr())
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let net = c.net.take().expect("net");
    let start = std::time::Instant::now();
    net.cut(cut);
    let elections = watch_new_leaders(addrs, "live", cut, start, stop.clone());
    while start.elapsed() < FAULT {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    net.heal(cut);
    c.net = Some(net);
    let healed = std::time::Instant::now();
    stop.store(true, Ordering::Relaxed);
    let elected = elections.await.expect("leader watch");
    c.wait_healthy(Duration::from_secs(90)).await;
    load.wait_all_acked_since(PARTITIONS, healed, Duration::from_secs(60))
        .await;
    faults.push(fault_times(
        &format!("node {cut} cut off from the network"),
        &load.acks(),
        PARTITIONS,
        start,
        healed,
        std::time::Instant::now(),
        elected,
    ));
    eprintln!("{}", faults[1]);

    let (acked, errors, acks) = load.finish().await;
    eprintln!("{} records acknowledged", acks.len());
    assert!(
        errors.is_empty(),
        "clients saw errors: {:?}",
        &errors[..errors.len().min(5)]
    );
    verify(c.brokers(), "live", &acked).await;
    compare_replicas(
        &mut c,
        "live",
        &topic_id,
        PARTITIONS,
        &high_watermarks(&acked),
    )
    .await;
    for fault in &faults {
        for (p, first) in &fault.first_ack {
            assert!(
                first.is_some_and(|d| d <= BOUND),
                "{}: partition {p} acknowledged nothing within {BOUND:?} of the fault's start\n{fault}",
                fault.name
            );
        }
    }
}
