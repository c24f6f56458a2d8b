//! The queue-group calls of [`Broker`]: acquire (once, or as a stream with credit), settle,
//! describe and delete, and the `queues_tick` duty that dead-letters and expires records.
//!
//! A queue group's state on a partition lives in that partition's Raft log
//! ([`strata_groups::queue`]), so every call goes to the partition's leader, like a fetch.

use super::Broker;
use crate::error::BrokerError;
use crate::types::ProducePayload;
use futures_util::future::BoxFuture;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use strata_groups::queue::engine::dead_letter_record;
use strata_groups::queue::state::{CONSUMER_ID_BYTES_MAX, QUEUE_NAME_BYTES_MAX, check_name};
use strata_groups::queue::{
    AcquireSpec, Delivery, EngineError, QueueEngine, QueueError, RecState, Settle,
};
use strata_raft::partition::{Acks, Partition};
use strata_record::NewRecord;
use tokio::sync::mpsc;

/// Sends records to a partition led by another node (dead letters go to the leader of the
/// dead-letter topic's partition). The node implements it over the client API.
pub trait ProduceLink: Send + Sync + 'static {
    /// Produces `records` to `topic`/`partition` at the node whose client address is
    /// `addr`, with `acks=all`; resolves to the base offset.
    fn produce(
        &self,
        addr: String,
        topic: String,
        partition: u32,
        records: Vec<NewRecord>,
    ) -> BoxFuture<'static, Result<i64, BrokerError>>;
}

/// The most records one settle request may carry.
pub const SETTLE_ITEMS_MAX: usize = 10_000;

/// The longest lock a consumer may ask for (1 hour).
pub const LOCK_MS_MAX: u64 = 3_600_000;

/// The longest delay of a release (7 days).
pub const RELEASE_DELAY_MS_MAX: u64 = 7 * 24 * 3_600_000;

/// Dead letters moved per group and partition per tick.
const DEAD_LETTERS_PER_TICK: usize = 500;

/// What a dead-letter topic created on demand allows beyond its source's
/// `max.message.bytes`, for the `strata-dlq-*` headers.
const DEAD_LETTER_HEADROOM: u32 = 64 << 10;

/// The longest reason a consumer may give for a reject, in bytes (longer ones are cut).
pub const REJECT_REASON_BYTES_MAX: usize = 1024;

/// One queue group on one partition, as `describe` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuePartitionView {
    /// The group.
    pub group: String,
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: u32,
    /// Every offset below this is settled.
    pub settled_below: i64,
    /// The partition's high watermark.
    pub high_watermark: i64,
    /// Records waiting to be handed out (new, released or with an expired lock).
    pub available: u64,
    /// Records locked by consumers now.
    pub acquired: u64,
    /// Records held back by a delay (a deliver-at header or a release with a delay).
    pub delayed: u64,
    /// Records acknowledged since the group began here.
    pub acked_total: u64,
    /// Records dead-lettered since the group began here.
    pub dead_lettered_total: u64,
    /// Records waiting to go to the dead-letter topic.
    pub dead_letter_pending: u64,
    /// Age in ms of the oldest unsettled record (0 when none).
    pub oldest_unacked_age_ms: u64,
    /// Max deliveries of the group.
    pub max_deliveries: u32,
    /// Its dead-letter topic, if any.
    pub dead_letter_topic: Option<String>,
    /// Consumers holding records, with how many each holds.
    pub consumers: BTreeMap<String, u64>,
}

fn now_ms() -> u64 {
    u64::try_from(super::now_ms()).unwrap_or(0)
}

impl Broker {
    fn engine_error(&self, topic: &str, partition: u32, e: EngineError) -> BrokerError {
        match e {
            EngineError::Queue(q) => BrokerError::Queue(q),
            EngineError::Partition(p) => self.perr(topic, partition, p),
        }
    }

    /// The local leader replica of `topic`/`partition` and its queue engine.
    fn queue_route(
        &self,
        topic: &str,
        partition: u32,
    ) -> Result<(Arc<Partition>, Arc<QueueEngine>), BrokerError> {
        if super::is_internal(topic) {
            return Err(BrokerError::invalid(
                "topic",
                format!("{topic:?} is an internal topic; it has no queue groups"),
            ));
        }
        let p = self.partition(topic, partition)?;
        let group_id = self
            .controller
            .read_meta(|m| {
                m.topics
                    .get(topic)
                    .and_then(|t| t.partitions.get(partition as usize))
                    .map(|pm| pm.group_id)
            })
            .ok_or_else(|| BrokerError::UnknownTopic {
                topic: topic.to_string(),
            })?;
        let engine = self.queues.get(group_id).ok_or_else(|| {
            BrokerError::Internal(format!(
                "the replica of {topic}/{partition} has no queue state"
            ))
        })?;
        if !p.leads() {
            return Err(BrokerError::NotLeader {
                what: format!("{topic}/{partition}"),
                leader: self.leader_hint(p.leader().map(|(id, _)| id)),
            });
        }
        Ok((p, engine))
    }

    /// Checks an acquisition's names and limits.
    fn check_acquire(&self, topic: &str, spec: &AcquireSpec) -> Result<(), BrokerError> {
        check_name("queue group", &spec.group, QUEUE_NAME_BYTES_MAX).map_err(BrokerError::Queue)?;
        check_name("consumer id", &spec.consumer, CONSUMER_ID_BYTES_MAX)
            .map_err(BrokerError::Queue)?;
        spec.config.check().map_err(BrokerError::Queue)?;
        if let Some(dlq) = spec.config.dead_letter.as_deref() {
            let field = "config.dead_letter_topic";
            if dlq == topic {
                return Err(BrokerError::invalid(
                    field,
                    format!("{topic:?} cannot be its own dead-letter topic"),
                ));
            }
            strata_cluster::meta::check_topic_name(dlq)
                .map_err(|e| BrokerError::invalid(field, e))?;
            if super::is_internal(dlq) {
                return Err(BrokerError::invalid(
                    field,
                    format!("{dlq:?} is an internal topic"),
                ));
            }
        }
        let cap = self.config.queue_in_flight_max;
        if spec.max_in_flight == 0 || spec.max_in_flight > cap as usize {
            return Err(BrokerError::LimitExceeded {
                limit: "queue_in_flight_max",
                max: cap,
                value: spec.max_in_flight.min(u32::MAX as usize) as u32,
            });
        }
        if spec.lock_ms == 0 || spec.lock_ms > LOCK_MS_MAX {
            return Err(BrokerError::invalid(
                "lock_ms",
                format!("{} is outside 1 to {LOCK_MS_MAX} ms", spec.lock_ms),
            ));
        }
        Ok(())
    }

    /// Hands records of `topic`/`partition` to a consumer of a queue group, at once (none
    /// when nothing is available or the consumer holds its in-flight limit).
    pub async fn queue_acquire(
        &self,
        topic: &str,
        partition: u32,
        mut spec: AcquireSpec,
    ) -> Result<Vec<Delivery>, BrokerError> {
        self.check_acquire(topic, &spec)?;
        spec.window = i64::from(self.config.queue_window);
        let (p, engine) = self.queue_route(topic, partition)?;
        engine
            .acquire(&p, &spec)
            .await
            .map_err(|e| self.engine_error(topic, partition, e))
    }

    /// Streams records of `topic`/`partition` to a consumer for as long as the receiver is
    /// kept: a chunk whenever records are available and the consumer holds fewer than
    /// `max_in_flight` (its credit, given back as it settles). An error ends the stream.
    pub async fn queue_stream(
        &self,
        topic: &str,
        partition: u32,
        mut spec: AcquireSpec,
    ) -> Result<mpsc::Receiver<Result<Vec<Delivery>, BrokerError>>, BrokerError> {
        self.check_acquire(topic, &spec)?;
        spec.window = i64::from(self.config.queue_window);
        let (p, engine) = self.queue_route(topic, partition)?;
        let (tx, rx) = mpsc::channel(2);
        let what = (topic.to_string(), partition);
        let resolve = {
            let controller = self.controller.clone();
            move |e: EngineError| -> BrokerError {
                match e {
                    EngineError::Queue(q) => BrokerError::Queue(q),
                    EngineError::Partition(pe) => {
                        super::partition_error(format!("{}/{}", what.0, what.1), pe, |id| {
                            id.and_then(|id| {
                                controller
                                    .meta()
                                    .borrow()
                                    .nodes
                                    .get(&id)
                                    .map(|n| (id, n.client_addr.clone()))
                            })
                        })
                    }
                }
            }
        };
        let opened = std::time::Instant::now();
        tokio::spawn(async move {
            loop {
                if tx.is_closed() {
                    return;
                }
                let changed = engine.hook().changed();
                let msg = match engine.acquire_streaming(&p, &spec, opened).await {
                    // The consumer closed (it gave back what it held): acquire nothing more.
                    Ok(None) => return,
                    Ok(Some(d)) if d.is_empty() => None,
                    Ok(Some(d)) => Some(Ok(d)),
                    Err(e) => Some(Err(resolve(e))),
                };
                match msg {
                    Some(msg) => {
                        let end = msg.is_err();
                        if tx.send(msg).await.is_err() || end {
                            return;
                        }
                    }
                    None => {
                        // Wait for a change (a settle, a new batch), the next lock or delay
                        // to run out, or the reader to go.
                        let wait = engine
                            .next_deadline_in(now_ms())
                            .map_or(Duration::from_millis(500), |ms| {
                                Duration::from_millis(ms.clamp(1, 500))
                            });
                        tokio::select! {
                            _ = changed => {}
                            _ = tokio::time::sleep(wait) => {}
                            _ = tx.closed() => return,
                        }
                    }
                }
            }
        });
        Ok(rx)
    }

    /// Acknowledges, releases, rejects, extends or returns records a consumer holds; each
    /// item's result, in order (a refused item changes nothing). With `return_held`, every
    /// record the consumer still holds afterwards becomes available again (it is closing).
    pub async fn queue_settle(
        &self,
        topic: &str,
        partition: u32,
        group: &str,
        consumer: &str,
        items: Vec<(i64, Settle)>,
        return_held: bool,
    ) -> Result<Vec<Result<(), QueueError>>, BrokerError> {
        check_name("queue group", group, QUEUE_NAME_BYTES_MAX).map_err(BrokerError::Queue)?;
        check_name("consumer id", consumer, CONSUMER_ID_BYTES_MAX).map_err(BrokerError::Queue)?;
        if items.len() > SETTLE_ITEMS_MAX {
            return Err(BrokerError::LimitExceeded {
                limit: "settle items per request",
                max: SETTLE_ITEMS_MAX as u32,
                value: items.len().min(u32::MAX as usize) as u32,
            });
        }
        let mut items = items;
        for (_, s) in &mut items {
            if let Settle::Reject { reason } = s
                && reason.len() > REJECT_REASON_BYTES_MAX
            {
                let mut cut = REJECT_REASON_BYTES_MAX;
                while !reason.is_char_boundary(cut) {
                    cut -= 1;
                }
                reason.truncate(cut);
            }
        }
        for (o, s) in &items {
            match s {
                Settle::Release { delay_ms } if *delay_ms > RELEASE_DELAY_MS_MAX => {
                    return Err(BrokerError::invalid(
                        format!("items[offset {o}].delay_ms"),
                        format!("{delay_ms} is over the limit of {RELEASE_DELAY_MS_MAX} ms"),
                    ));
                }
                Settle::Extend { lock_ms } if *lock_ms == 0 || *lock_ms > LOCK_MS_MAX => {
                    return Err(BrokerError::invalid(
                        format!("items[offset {o}].lock_ms"),
                        format!("{lock_ms} is outside 1 to {LOCK_MS_MAX} ms"),
                    ));
                }
                _ => {}
            }
        }
        let (p, engine) = self.queue_route(topic, partition)?;
        engine
            .settle(&p, group, consumer, items, return_held)
            .await
            .map_err(|e| self.engine_error(topic, partition, e))
    }

    /// Deletes queue group `group` on every partition of `topic` this node leads; returns
    /// how many held it.
    pub async fn queue_delete(&self, topic: &str, group: &str) -> Result<u32, BrokerError> {
        let partitions = self
            .controller
            .read_meta(|m| m.topics.get(topic).map(|t| t.partitions.len()))
            .ok_or_else(|| BrokerError::UnknownTopic {
                topic: topic.to_string(),
            })?;
        let mut deleted = 0;
        for i in 0..partitions as u32 {
            let Ok((p, engine)) = self.queue_route(topic, i) else {
                continue;
            };
            if !engine.hook().read(|s| s.groups.contains_key(group)) {
                continue;
            }
            engine
                .delete(&p, group)
                .await
                .map_err(|e| self.engine_error(topic, i, e))?;
            deleted += 1;
        }
        Ok(deleted)
    }

    /// The queue groups of the partitions this node leads (`group` empty: all of them).
    pub async fn queue_describe(&self, group: &str) -> Vec<QueuePartitionView> {
        let now = now_ms();
        let mut out = Vec::new();
        for (topic, partition, p, engine) in self.led_queue_partitions() {
            let hw = p.high_watermark();
            let rows: Vec<(QueuePartitionView, i64)> = engine.hook().read(|s| {
                s.groups
                    .iter()
                    .filter(|(name, _)| group.is_empty() || name.as_str() == group)
                    .map(|(name, g)| {
                        let mut v = QueuePartitionView {
                            group: name.clone(),
                            topic: topic.clone(),
                            partition,
                            settled_below: g.settled_below,
                            high_watermark: hw,
                            available: (hw - g.window_end()).max(0) as u64,
                            acquired: 0,
                            delayed: 0,
                            acked_total: g.acked_total,
                            dead_lettered_total: g.dead_total,
                            dead_letter_pending: 0,
                            oldest_unacked_age_ms: 0,
                            max_deliveries: g.config.max_deliveries,
                            dead_letter_topic: g.config.dead_letter.clone(),
                            consumers: BTreeMap::new(),
                        };
                        for r in g.records.values() {
                            if r.dead_letter_reason(now, g.config.max_deliveries).is_some() {
                                v.dead_letter_pending += 1;
                            } else if let Some(c) = r.holder(now) {
                                v.acquired += 1;
                                *v.consumers.entry(c.to_string()).or_default() += 1;
                            } else if let RecState::Available { not_before } = &r.state
                                && *not_before > now
                            {
                                v.delayed += 1;
                            } else if r.acquirable(now, g.config.max_deliveries) {
                                v.available += 1;
                            }
                        }
                        (v, g.settled_below)
                    })
                    .collect()
            });
            for (mut v, oldest) in rows {
                if oldest < hw
                    && let Ok(f) = p.read(oldest, 1, Duration::ZERO).await
                    && let Some(b) = f.batches.first()
                    && let Ok(batch) = strata_record::Batch::parse(b.clone())
                    && let Some(r) = batch.records().find(|r| r.offset == oldest)
                {
                    v.oldest_unacked_age_ms = now.saturating_sub(r.timestamp.max(0) as u64);
                }
                out.push(v);
            }
        }
        out
    }

    /// The data partitions this node leads that have queue groups.
    fn led_queue_partitions(&self) -> Vec<(String, u32, Arc<Partition>, Arc<QueueEngine>)> {
        let located: Vec<(String, u32, strata_raft::GroupId)> = self.controller.read_meta(|m| {
            m.topics
                .iter()
                .filter(|(name, _)| !super::is_internal(name))
                .flat_map(|(name, t)| {
                    t.partitions
                        .iter()
                        .enumerate()
                        .map(move |(i, pm)| (name.clone(), i as u32, pm.group_id))
                })
                .collect()
        });
        located
            .into_iter()
            .filter_map(|(topic, i, gid)| {
                let engine = self.queues.get(gid)?;
                if !engine.hook().has_groups() {
                    return None;
                }
                let p = self.replicas.get(gid).and_then(|h| h.partition())?;
                p.leads().then_some((topic, i, p, engine))
            })
            .collect()
    }

    /// The lowest offset every queue group of `topic`/`partition` (led here) has settled
    /// below: what `retention.policy = acked` may delete up to.
    pub fn queue_settled_floor(&self, topic: &str, partition: u32) -> Option<i64> {
        let (_, engine) = self.queue_route(topic, partition).ok()?;
        engine.settled_floor()
    }

    /// The leader's queue duty, run every few hundred milliseconds: moves records due for
    /// the dead-letter topic there (creating it with the source's partition count), then
    /// marks them dead; settles records retention removed unsettled. Failures are logged and
    /// retried on the next tick.
    pub async fn queues_tick(&self) {
        self.queues.forget_closed();
        for (topic, partition, p, engine) in self.led_queue_partitions() {
            if let Err(e) = engine.expire_all(&p).await {
                tracing::debug!(%topic, partition, error = %e, "queue expiry");
                continue;
            }
            let due = match engine.dead_letters(&p, DEAD_LETTERS_PER_TICK).await {
                Ok(d) => d,
                Err(e) => {
                    tracing::debug!(%topic, partition, error = %e, "queue dead letters");
                    continue;
                }
            };
            for d in due {
                let offsets: Vec<i64> = d.records.iter().map(|r| r.offset).collect();
                if let Some(dlq) = &d.topic {
                    let records: Vec<NewRecord> = d
                        .records
                        .iter()
                        .filter_map(|r| dead_letter_record(r, &topic, partition, &d.group))
                        .collect();
                    if !records.is_empty()
                        && let Err(e) = self
                            .produce_dead_letters(dlq, &topic, partition, records)
                            .await
                    {
                        tracing::warn!(%topic, partition, group = %d.group, dead_letter_topic = %dlq, error = %e, "cannot write dead letters; retrying");
                        continue;
                    }
                }
                match engine.dead_lettered(&p, &d.group, offsets.clone()).await {
                    Ok(()) => {
                        tracing::info!(%topic, partition, group = %d.group, records = offsets.len(), dead_letter_topic = ?d.topic, "records dead-lettered")
                    }
                    Err(e) => {
                        tracing::warn!(%topic, partition, group = %d.group, error = %e, "dead letters written but not marked; they may be written again")
                    }
                }
            }
        }
    }

    /// Writes dead letters of `source`/`partition` to `dlq` (the same partition index,
    /// modulo its count), creating `dlq` when missing with `source`'s partition count and
    /// room for a source record plus the dead-letter headers. Records go in batches within
    /// the dead-letter topic's `max.message.bytes`; a record too large for it alone goes
    /// without its value, with `strata-dlq-value-dropped` giving the value's size.
    async fn produce_dead_letters(
        &self,
        dlq: &str,
        source: &str,
        partition: u32,
        records: Vec<NewRecord>,
    ) -> Result<(), BrokerError> {
        let (exists, source_partitions, source_limit) = self.controller.read_meta(|m| {
            let src = m.topics.get(source);
            (
                m.topics
                    .get(dlq)
                    .map(|t| (t.partitions.len() as u32, t.config.max_message_bytes)),
                src.map_or(1, |t| t.partitions.len() as u32),
                src.map_or(1 << 20, |t| t.config.max_message_bytes),
            )
        });
        let (partitions, limit) = match exists {
            Some(found) => found,
            None => {
                let room = source_limit
                    .saturating_add(DEAD_LETTER_HEADROOM)
                    .min(strata_cluster::meta::MESSAGE_BYTES_LIMIT);
                let configs = BTreeMap::from([("max.message.bytes".to_string(), room.to_string())]);
                match self.create_topic(dlq, source_partitions, 0, &configs).await {
                    Ok(_) | Err(BrokerError::Refused(_)) => {}
                    Err(e) => return Err(e),
                }
                self.controller
                    .read_meta(|m| {
                        m.topics
                            .get(dlq)
                            .map(|t| (t.partitions.len() as u32, t.config.max_message_bytes))
                    })
                    .unwrap_or((source_partitions, room))
            }
        };
        let target = partition % partitions.max(1);
        // Batches of at most half the limit (record framing and headers on top).
        let budget = (limit as usize / 2).max(1);
        let mut batch: Vec<NewRecord> = Vec::new();
        let mut bytes = 0usize;
        let mut batches = Vec::new();
        for mut r in records {
            let mut size = record_bytes(&r);
            if size > budget {
                let dropped = r.value.take().map_or(0, |v| v.len());
                r.headers.push(strata_record::Header::new(
                    "strata-dlq-value-dropped",
                    Some(bytes::Bytes::from(dropped.to_string())),
                ));
                size = record_bytes(&r);
            }
            if !batch.is_empty() && bytes + size > budget {
                batches.push(std::mem::take(&mut batch));
                bytes = 0;
            }
            bytes += size;
            batch.push(r);
        }
        if !batch.is_empty() {
            batches.push(batch);
        }
        for records in batches {
            match self
                .produce(
                    dlq,
                    target,
                    ProducePayload::Records(records.clone()),
                    Acks::All,
                )
                .await
            {
                Ok(_) => {}
                Err(BrokerError::NotLeader {
                    leader: Some((_, addr)),
                    ..
                }) => match &self.produce_link {
                    Some(link) => {
                        link.produce(addr, dlq.to_string(), target, records).await?;
                    }
                    None => {
                        return Err(BrokerError::Internal(
                            "no link to forward dead letters to another node".into(),
                        ));
                    }
                },
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// Bytes a record takes in a batch, roughly: key, value, headers and their framing.
fn record_bytes(r: &NewRecord) -> usize {
    let headers: usize = r
        .headers
        .iter()
        .map(|h| h.key.len() + h.value.as_ref().map_or(0, |v| v.len()) + 10)
        .sum();
    r.key.as_ref().map_or(0, |k| k.len()) + r.value.as_ref().map_or(0, |v| v.len()) + headers + 32
}
