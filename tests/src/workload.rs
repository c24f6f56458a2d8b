//! Client-side workloads and checks for the node-level tests (over the real gRPC API with
//! `strata_client`): producing and recording acknowledgements, a continuous producer, reading
//! a topic back, and the check that every acknowledged record is where it was acknowledged.

use bytes::Bytes;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use strata_client::{
    Acks, Client, ConsumedRecord, ConsumerConfig, Offset, ProducerConfig, ProducerRecord,
};

/// An idempotent `acks=all` producer with a 1 ms linger.
pub fn producer_config() -> ProducerConfig {
    ProducerConfig {
        acks: Acks::All,
        idempotence: true,
        linger: Duration::from_millis(1),
        ..ProducerConfig::default()
    }
}

/// Produces `values` (spread over the topic's partitions by key) and returns each value's
/// acknowledged (partition, offset).
pub async fn produce(
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
pub async fn read_all(brokers: &[String], topic: &str) -> Vec<ConsumedRecord> {
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
pub fn check_acknowledged(acked: &BTreeMap<String, (u32, i64)>, read: &[ConsumedRecord]) {
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

/// `n` distinct values `prefix-0`, `prefix-1`, ...
pub fn values(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

/// A producer sending without pause; every acknowledgement it gets is recorded.
pub struct Load {
    acked: Arc<Mutex<BTreeMap<String, (u32, i64)>>>,
    failed: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Load {
    /// Starts producing to `topic` (keys spread over its partitions) until [`Load::finish`].
    pub fn start(brokers: Vec<String>, topic: &'static str) -> Load {
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

    /// Records acknowledged so far.
    pub fn acked(&self) -> usize {
        strata_record::sync::lock(&self.acked).len()
    }

    /// Waits until at least `n` records are acknowledged (30 s at most).
    pub async fn wait_acked(&self, n: usize) {
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
    pub async fn finish(self) -> (BTreeMap<String, (u32, i64)>, usize) {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.expect("load task");
        let acked = strata_record::sync::lock(&self.acked);
        (acked.clone(), self.failed.load(Ordering::Relaxed))
    }
}
