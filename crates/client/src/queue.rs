//! [`QueueConsumer`]: one consumer of a queue group. Many consumers (in one process or many)
//! share a topic's records: each record is handed to one of them under a lock, and the
//! consumer acknowledges it, releases it (to be delivered again, perhaps after a delay),
//! rejects it (to the dead-letter topic) or extends its lock. A record whose lock runs out
//! is delivered again; one delivered `max_deliveries` times without an acknowledgement goes
//! to the dead-letter topic.
//!
//! - One task per partition of the topic holds an `Acquire` stream to the partition's
//!   leader. The leader sends records while this consumer holds fewer than `max_in_flight`
//!   of the partition's records: settling them is what lets more come (credit-based flow
//!   control). A broken stream is reopened at the leader; records it had sent stay locked
//!   until they are settled or their locks run out.
//! - The partitions are listed again every [`QueueConsumerConfig::refresh`]: a partition
//!   added to the topic is read too.
//! - Settles go to the partition's leader in one request per partition; an acknowledgement
//!   is replicated before it is confirmed, and then the record is never delivered to the
//!   group again.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use strata_proto::v1 as pb;
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};
use tracing::debug;

use crate::backoff::Backoff;
use crate::client::{Client, RetryPolicy};
use crate::error::Error;

/// Where a queue group starts on a partition when its first consumer arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QueueStart {
    /// Every record still in the log (the default: a work queue delivers what was sent
    /// before its consumers started).
    #[default]
    Earliest,
    /// Only records produced from then on.
    Latest,
}

/// Where records go when they are rejected or delivered too often.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum DeadLetter {
    /// `<topic>.dlq` (the default), created with the topic's partition count.
    #[default]
    Default,
    /// This topic.
    Topic(String),
    /// Nowhere: such records are dropped.
    Drop,
}

/// How a [`QueueConsumer`] reads. The group settings (`max_deliveries`, `dead_letter`,
/// `start`) apply when this consumer is the first of its group on a partition; later they
/// are the group's, whatever a consumer asks.
#[derive(Debug, Clone)]
pub struct QueueConsumerConfig {
    /// The queue group.
    pub group: String,
    /// The topic.
    pub topic: String,
    /// This consumer's id; default a random UUID. Locks are held by it: two consumers must
    /// not share one.
    pub consumer_id: Option<String>,
    /// Most records this consumer holds per partition (handed out and not settled). Default
    /// 100; the node caps it (`queue_in_flight_max`, default 1000).
    pub max_in_flight: u32,
    /// How long a record stays locked to this consumer. Default 30 s.
    pub lock: Duration,
    /// Deliveries before a record is dead-lettered. Default 5.
    pub max_deliveries: u32,
    /// Where dead letters go.
    pub dead_letter: DeadLetter,
    /// Where the group starts.
    pub start: QueueStart,
    /// How often the topic's partitions are listed again. Default 5 s.
    pub refresh: Duration,
}

impl QueueConsumerConfig {
    /// A consumer of `group` on `topic` with the defaults.
    pub fn new(group: impl Into<String>, topic: impl Into<String>) -> QueueConsumerConfig {
        QueueConsumerConfig {
            group: group.into(),
            topic: topic.into(),
            consumer_id: None,
            max_in_flight: 100,
            lock: Duration::from_secs(30),
            max_deliveries: 5,
            dead_letter: DeadLetter::Default,
            start: QueueStart::Earliest,
            refresh: Duration::from_secs(5),
        }
    }
}

/// A record handed to a queue consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueMessage {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: u32,
    /// The offset.
    pub offset: i64,
    /// Create time in ms since the Unix epoch.
    pub timestamp_ms: i64,
    /// The key.
    pub key: Option<Bytes>,
    /// The value.
    pub value: Option<Bytes>,
    /// Headers, in order.
    pub headers: Vec<(String, Option<Bytes>)>,
    /// Deliveries of this record to the group, this one included (1 the first time).
    pub delivery_count: u32,
    /// When the lock runs out (ms since the Unix epoch, by the leader's clock).
    pub lock_until_ms: i64,
}

impl QueueMessage {
    /// The value of the last header named `key`.
    pub fn header(&self, key: &str) -> Option<&Bytes> {
        self.headers
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| v.as_ref())
    }
}

/// What a consumer does with a record it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settlement {
    /// Done: never delivered to the group again.
    Ack,
    /// Deliver it again, not before this delay.
    Release(Duration),
    /// Send it to the dead-letter topic now, with a reason.
    Reject(String),
    /// Keep the lock this much longer from now.
    Extend(Duration),
    /// Give back a record the application never saw: available at once, and the delivery
    /// does not count toward `max_deliveries` ([`QueueConsumer::close`] does this).
    Return,
}

struct Shared {
    client: Client,
    config: QueueConsumerConfig,
    consumer_id: String,
}

/// One consumer of a queue group; see the [module docs](self). Dropping it stops its
/// streams; the records it held come back when their locks run out ([`QueueConsumer::close`]
/// gives back those not yet handed to the application at once).
pub struct QueueConsumer {
    shared: Arc<Shared>,
    rx: mpsc::Receiver<Result<QueueMessage, Error>>,
    supervisor: JoinHandle<()>,
}

impl std::fmt::Debug for QueueConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueConsumer")
            .field("group", &self.shared.config.group)
            .field("topic", &self.shared.config.topic)
            .field("consumer_id", &self.shared.consumer_id)
            .finish_non_exhaustive()
    }
}

impl Drop for QueueConsumer {
    fn drop(&mut self) {
        self.supervisor.abort();
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl QueueConsumer {
    pub(crate) fn start(
        client: Client,
        config: QueueConsumerConfig,
    ) -> Result<QueueConsumer, Error> {
        let invalid = |field: &str, reason: &str| Error::InvalidArgument {
            field: field.into(),
            reason: reason.into(),
        };
        if config.group.is_empty() {
            return Err(invalid("group", "a queue consumer names its group"));
        }
        if config.topic.is_empty() {
            return Err(invalid("topic", "a queue consumer names its topic"));
        }
        if config.max_in_flight == 0 {
            return Err(invalid("max_in_flight", "must be at least 1"));
        }
        if config.lock.is_zero() || config.lock > Duration::from_secs(3600) {
            return Err(invalid("lock", "must be between 1 ms and 1 hour"));
        }
        let consumer_id = config
            .consumer_id
            .clone()
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let shared = Arc::new(Shared {
            client,
            config,
            consumer_id,
        });
        let buffer = (shared.config.max_in_flight as usize).max(16);
        let (tx, rx) = mpsc::channel(buffer);
        let supervisor = tokio::spawn(supervise(shared.clone(), tx));
        Ok(QueueConsumer {
            shared,
            rx,
            supervisor,
        })
    }

    /// This consumer's id (the holder of its locks).
    pub fn consumer_id(&self) -> &str {
        &self.shared.consumer_id
    }

    /// The next record, or an error that ended a partition's stream (an unknown topic, a
    /// refused config); `None` once every stream ended. A record whose lock ran out while it
    /// waited in this consumer's buffer is skipped: it is no longer this consumer's (it is
    /// delivered again, perhaps to another) and settling it would be refused.
    pub async fn next(&mut self) -> Option<Result<QueueMessage, Error>> {
        loop {
            let m = self.rx.recv().await?;
            if let Ok(msg) = &m
                && msg.lock_until_ms <= strata_record::sync::now_ms()
            {
                debug!(
                    offset = msg.offset,
                    partition = msg.partition,
                    "queue consumer: lock ran out in the buffer; skipped"
                );
                continue;
            }
            return Some(m);
        }
    }

    /// Acknowledges `m`: once this returns, it is never delivered to the group again.
    pub async fn ack(&self, m: &QueueMessage) -> Result<(), Error> {
        self.settle_one(m, Settlement::Ack).await
    }

    /// Gives `m` back, to be delivered again (to any consumer) after `delay`.
    pub async fn release(&self, m: &QueueMessage, delay: Duration) -> Result<(), Error> {
        self.settle_one(m, Settlement::Release(delay)).await
    }

    /// Sends `m` to the dead-letter topic with `reason`.
    pub async fn reject(&self, m: &QueueMessage, reason: &str) -> Result<(), Error> {
        self.settle_one(m, Settlement::Reject(reason.to_string()))
            .await
    }

    /// Keeps `m` locked for `lock` from now (work that takes longer than the lock).
    pub async fn extend(&self, m: &QueueMessage, lock: Duration) -> Result<(), Error> {
        self.settle_one(m, Settlement::Extend(lock)).await
    }

    async fn settle_one(&self, m: &QueueMessage, s: Settlement) -> Result<(), Error> {
        self.settle(&[(m, s)])
            .await?
            .pop()
            .unwrap_or_else(|| Err(Error::Unavailable("no settle result".into())))
    }

    /// Settles many records at once (one request per partition, sent together); each
    /// item's result in order. The outer error is a failure of a whole request.
    pub async fn settle(
        &self,
        items: &[(&QueueMessage, Settlement)],
    ) -> Result<Vec<Result<(), Error>>, Error> {
        settle(&self.shared, items, None).await
    }

    /// A handle that settles this consumer's records from other tasks.
    pub fn settler(&self) -> QueueSettler {
        QueueSettler {
            shared: self.shared.clone(),
        }
    }

    /// Stops reading and gives back, at once, every record this consumer holds: those
    /// received but not yet returned by [`QueueConsumer::next`], those on their way, and
    /// those the application holds unsettled. None of these deliveries counts toward
    /// `max_deliveries` (a crash, a release or a lock running out does count). Settle what
    /// was processed before closing.
    pub async fn close(mut self) -> Result<(), Error> {
        self.supervisor.abort();
        self.rx.close();
        let mut pending = Vec::new();
        while let Some(m) = self.rx.recv().await {
            if let Ok(m) = m {
                pending.push(m);
            }
        }
        let items: Vec<(&QueueMessage, Settlement)> =
            pending.iter().map(|m| (m, Settlement::Return)).collect();
        let partitions = self
            .shared
            .client
            .partition_count(&self.shared.config.topic)
            .await?;
        settle(&self.shared, &items, Some(partitions))
            .await
            .map(|_| ())
    }
}

/// Settles the records of a [`QueueConsumer`] from any task (it holds no stream).
#[derive(Clone)]
pub struct QueueSettler {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for QueueSettler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueSettler")
            .field("consumer_id", &self.shared.consumer_id)
            .finish_non_exhaustive()
    }
}

impl QueueSettler {
    /// As [`QueueConsumer::settle`].
    pub async fn settle(
        &self,
        items: &[(&QueueMessage, Settlement)],
    ) -> Result<Vec<Result<(), Error>>, Error> {
        settle(&self.shared, items, None).await
    }
}

/// Settles `items`, one request per partition. With `return_held` (the topic's partition
/// count), every partition of the topic also gets back every record the consumer still holds.
async fn settle(
    shared: &Arc<Shared>,
    items: &[(&QueueMessage, Settlement)],
    return_held: Option<u32>,
) -> Result<Vec<Result<(), Error>>, Error> {
    let mut by_partition: BTreeMap<(String, u32), Vec<usize>> = BTreeMap::new();
    for p in 0..return_held.unwrap_or(0) {
        by_partition.insert((shared.config.topic.clone(), p), Vec::new());
    }
    for (i, (m, _)) in items.iter().enumerate() {
        by_partition
            .entry((m.topic.clone(), m.partition))
            .or_default()
            .push(i);
    }
    let mut calls = JoinSet::new();
    for ((topic, partition), idx) in by_partition {
        let request = pb::SettleRequest {
            group: shared.config.group.clone(),
            topic: topic.clone(),
            partition,
            consumer_id: shared.consumer_id.clone(),
            items: idx
                .iter()
                .map(|&i| {
                    let (m, s) = &items[i];
                    let mut item = pb::SettleItem {
                        offset: m.offset,
                        ..Default::default()
                    };
                    match s {
                        Settlement::Ack => item.action = pb::SettleAction::Ack as i32,
                        Settlement::Release(d) => {
                            item.action = pb::SettleAction::Release as i32;
                            item.delay_ms = ms(*d);
                        }
                        Settlement::Reject(reason) => {
                            item.action = pb::SettleAction::Reject as i32;
                            item.reason = reason.clone();
                        }
                        Settlement::Extend(d) => {
                            item.action = pb::SettleAction::Extend as i32;
                            item.lock_ms = u32::try_from(ms(*d)).unwrap_or(u32::MAX);
                        }
                        Settlement::Return => item.action = pb::SettleAction::Return as i32,
                    }
                    item
                })
                .collect(),
            return_held: return_held.is_some(),
        };
        let shared = shared.clone();
        calls.spawn(async move {
            let client = &shared.client;
            let timeout = client.config().request_timeout;
            let policy = RetryPolicy::within(
                timeout,
                Duration::from_millis(10),
                Duration::from_millis(500),
            );
            let r = client
                .leader_call_with(
                    &topic,
                    partition,
                    policy,
                    Client::queues_stub,
                    |mut stub| {
                        let request = crate::client::request(request.clone(), timeout);
                        async move { Client::call(timeout, "Settle", stub.settle(request)).await }
                    },
                    |_| {},
                )
                .await;
            // An item retried after an attempt whose answer was lost may find the record
            // settled (by that attempt, or by another consumer after the lock ran out):
            // ALREADY_SETTLED says only that it will not be delivered again.
            let results = r.map(|resp| {
                resp.results
                    .into_iter()
                    .map(|res| {
                        if res.ok {
                            Ok(())
                        } else {
                            Err(Error::Queue {
                                reason: res.error_reason,
                                message: res.message,
                            })
                        }
                    })
                    .collect::<Vec<_>>()
            });
            (idx, results)
        });
    }
    let mut out: Vec<Option<Result<(), Error>>> = (0..items.len()).map(|_| None).collect();
    while let Some(joined) = calls.join_next().await {
        let (idx, results) =
            joined.map_err(|e| Error::Unavailable(format!("settle task failed: {e}")))?;
        let results = results?;
        if results.len() != idx.len() {
            return Err(Error::Unavailable(format!(
                "the node answered {} settle results for {} items",
                results.len(),
                idx.len()
            )));
        }
        for (i, r) in idx.into_iter().zip(results) {
            out[i] = Some(r);
        }
    }
    Ok(out
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(Error::Unavailable("no settle result".into()))))
        .collect())
}

/// Starts a stream per partition of the topic, for partitions added later, and again for a
/// partition whose stream ended on an error (reported to the reader first), at the next
/// refresh.
async fn supervise(shared: Arc<Shared>, tx: mpsc::Sender<Result<QueueMessage, Error>>) {
    let mut streams: JoinSet<u32> = JoinSet::new();
    let mut running: BTreeSet<u32> = BTreeSet::new();
    let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(2));
    loop {
        while let Some(ended) = streams.try_join_next() {
            if let Ok(p) = ended {
                running.remove(&p);
            }
        }
        match shared.client.partition_count(&shared.config.topic).await {
            Ok(n) => {
                backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(2));
                for p in 0..n {
                    if running.insert(p) {
                        let (shared, tx) = (shared.clone(), tx.clone());
                        streams.spawn(async move {
                            stream(shared, p, tx).await;
                            p
                        });
                    }
                }
            }
            Err(e) if e.is_retriable() => {
                debug!(error = %e, "queue consumer: cannot list partitions")
            }
            Err(e) => {
                let _ = tx.send(Err(e)).await;
                return;
            }
        }
        let wait = if running.is_empty() {
            backoff.next_delay()
        } else {
            shared.config.refresh
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = tx.closed() => return,
        }
    }
}

/// Holds the `Acquire` stream of one partition, reopening it after failures.
async fn stream(
    shared: Arc<Shared>,
    partition: u32,
    tx: mpsc::Sender<Result<QueueMessage, Error>>,
) {
    let c = &shared.config;
    let topic = c.topic.clone();
    let request = pb::AcquireRequest {
        group: c.group.clone(),
        topic: topic.clone(),
        partition,
        consumer_id: shared.consumer_id.clone(),
        max_in_flight: c.max_in_flight,
        lock_ms: u32::try_from(ms(c.lock)).unwrap_or(u32::MAX),
        max_records: c.max_in_flight.min(500),
        config: Some(pb::QueueGroupConfig {
            max_deliveries: c.max_deliveries,
            dead_letter_topic: match &c.dead_letter {
                DeadLetter::Topic(t) => t.clone(),
                DeadLetter::Default | DeadLetter::Drop => String::new(),
            },
            no_dead_letter: c.dead_letter == DeadLetter::Drop,
        }),
        start: match c.start {
            QueueStart::Earliest => pb::QueueStart::Earliest as i32,
            QueueStart::Latest => pb::QueueStart::Latest as i32,
        },
    };
    let mut backoff = Backoff::new(Duration::from_millis(20), Duration::from_secs(1));
    loop {
        let client = &shared.client;
        let timeout = client.config().request_timeout;
        let policy =
            RetryPolicy::within(timeout, Duration::from_millis(20), Duration::from_secs(1));
        let opened = client
            .leader_call_with(
                &topic,
                partition,
                policy,
                Client::queues_stub,
                |mut stub| {
                    let request = tonic::Request::new(request.clone());
                    async move { Client::call(timeout, "Acquire", stub.acquire(request)).await }
                },
                |_| {},
            )
            .await;
        let mut messages = match opened {
            Ok(s) => s,
            Err(e) if e.is_retriable() => {
                tokio::time::sleep(backoff.next_delay()).await;
                continue;
            }
            Err(e) => {
                let _ = tx.send(Err(e)).await;
                return;
            }
        };
        loop {
            match messages.message().await {
                Ok(Some(m)) => {
                    backoff = Backoff::new(Duration::from_millis(20), Duration::from_secs(1));
                    for q in m.messages {
                        let msg = QueueMessage {
                            topic: topic.clone(),
                            partition,
                            offset: q.offset,
                            timestamp_ms: q.timestamp_ms,
                            key: q.key,
                            value: q.value,
                            headers: q.headers.into_iter().map(|h| (h.key, h.value)).collect(),
                            delivery_count: q.delivery_count,
                            lock_until_ms: q.lock_until_ms,
                        };
                        if tx.send(Ok(msg)).await.is_err() {
                            return;
                        }
                    }
                }
                Ok(None) => break,
                Err(status) => {
                    let e = Error::from(status);
                    if !e.is_retriable() {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                    debug!(%topic, partition, error = %e, "queue stream broke; reopening");
                    break;
                }
            }
        }
        if tx.is_closed() {
            return;
        }
        tokio::time::sleep(backoff.next_delay()).await;
    }
}

/// One queue group on one partition, as [`Queues::describe`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuePartitionInfo {
    /// The group.
    pub group: String,
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: u32,
    /// Every offset below this is settled (acknowledged or dead-lettered).
    pub settled_below: i64,
    /// The partition's high watermark.
    pub high_watermark: i64,
    /// Records waiting to be handed out.
    pub available: u64,
    /// Records locked by consumers.
    pub acquired: u64,
    /// Records held back by a delay.
    pub delayed: u64,
    /// Records acknowledged since the group began on this partition.
    pub acked_total: u64,
    /// Records dead-lettered since then.
    pub dead_lettered_total: u64,
    /// Records waiting to go to the dead-letter topic.
    pub dead_letter_pending: u64,
    /// Age of the oldest unsettled record (zero when none).
    pub oldest_unacked_age: Duration,
    /// Deliveries before dead-lettering.
    pub max_deliveries: u32,
    /// The dead-letter topic (`None`: dropped).
    pub dead_letter_topic: Option<String>,
    /// Consumers holding records, and how many each holds.
    pub consumers: BTreeMap<String, u64>,
}

/// Queue-group administration: describe and delete. Each node answers for the partitions
/// it leads; these calls ask every node and merge.
#[derive(Debug, Clone)]
pub struct Queues {
    client: Client,
}

impl Queues {
    pub(crate) fn new(client: Client) -> Queues {
        Queues { client }
    }

    async fn node_addrs(&self) -> Result<Vec<String>, Error> {
        let meta = self.client.metadata(Vec::<String>::new()).await?;
        Ok(meta.nodes.into_iter().map(|n| n.client_addr).collect())
    }

    /// Every partition of queue group `group` (`""`: of every queue group), ordered by
    /// group, topic and partition. A node that does not answer is skipped (its partitions
    /// show up once their leadership moved to a node that does).
    pub async fn describe(&self, group: &str) -> Result<Vec<QueuePartitionInfo>, Error> {
        let timeout = self.client.config().request_timeout;
        let mut found: BTreeMap<(String, String, u32), QueuePartitionInfo> = BTreeMap::new();
        let mut last_error = None;
        let mut answered = 0;
        for addr in self.node_addrs().await? {
            let request = crate::client::request(
                pb::DescribeQueuesRequest {
                    group: group.to_string(),
                },
                timeout,
            );
            let r = match self.client.queues_stub(&addr) {
                Ok(mut stub) => {
                    Client::call(timeout, "DescribeQueues", stub.describe_queues(request)).await
                }
                Err(e) => Err(e),
            };
            match r {
                Ok(resp) => {
                    answered += 1;
                    for p in resp.partitions {
                        let key = (p.group.clone(), p.topic.clone(), p.partition);
                        let info = QueuePartitionInfo {
                            group: p.group,
                            topic: p.topic,
                            partition: p.partition,
                            settled_below: p.settled_below,
                            high_watermark: p.high_watermark,
                            available: p.available,
                            acquired: p.acquired,
                            delayed: p.delayed,
                            acked_total: p.acked_total,
                            dead_lettered_total: p.dead_lettered_total,
                            dead_letter_pending: p.dead_letter_pending,
                            oldest_unacked_age: Duration::from_millis(p.oldest_unacked_age_ms),
                            max_deliveries: p.max_deliveries,
                            dead_letter_topic: (!p.dead_letter_topic.is_empty())
                                .then_some(p.dead_letter_topic),
                            consumers: p.consumers.into_iter().collect(),
                        };
                        // Two nodes may both answer for a partition around a leadership
                        // change: the one further along is the newer.
                        match found.get(&key) {
                            Some(old) if old.settled_below > info.settled_below => {}
                            _ => {
                                found.insert(key, info);
                            }
                        }
                    }
                }
                Err(e) => last_error = Some(e),
            }
        }
        match (answered, last_error) {
            (0, Some(e)) => Err(e),
            _ => Ok(found.into_values().collect()),
        }
    }

    /// Deletes queue group `group` of `topic` (its state on every partition); refused
    /// (`QUEUE_GROUP_BUSY`) while consumers hold records. Every node is asked (each deletes
    /// on the partitions it leads); returns on how many partitions it existed. A refusal is
    /// returned once every node was asked; a node that cannot be reached is an error only
    /// when none answered.
    pub async fn delete(&self, topic: &str, group: &str) -> Result<u32, Error> {
        let timeout = self.client.config().request_timeout;
        let mut deleted = 0;
        let mut answered = 0;
        let mut refused = None;
        let mut unreachable = None;
        for addr in self.node_addrs().await? {
            let request = crate::client::request(
                pb::DeleteQueueRequest {
                    group: group.to_string(),
                    topic: topic.to_string(),
                },
                timeout,
            );
            let r = match self.client.queues_stub(&addr) {
                Ok(mut stub) => {
                    Client::call(timeout, "DeleteQueue", stub.delete_queue(request)).await
                }
                Err(e) => Err(e),
            };
            match r {
                Ok(resp) => {
                    answered += 1;
                    deleted += resp.partitions;
                }
                Err(e) if e.is_retriable() => unreachable = Some(e),
                Err(e) => {
                    answered += 1;
                    refused = Some(e);
                }
            }
        }
        if let Some(e) = refused {
            return Err(e);
        }
        match (answered, unreachable) {
            (0, Some(e)) => Err(e),
            _ => Ok(deleted),
        }
    }
}
