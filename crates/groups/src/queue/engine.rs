//! [`QueueEngine`]: drives the queue groups of one data partition from its leader, and
//! [`Queues`]: the engines of the partitions hosted on a node.
//!
//! Acquisitions (and the leader's own dead-lettering and expiry) of a partition are planned
//! one at a time, each from the state it changes; settles are not serialized, as the state
//! machine checks each item when it applies it. Every change is replicated through the
//! partition's Raft log before it is answered.

use super::error::QueueError;
use super::hook::QueueHook;
use super::state::{
    DELAY_MS_MAX, QueueCommand, QueueConfig, QueueOutcome, QueuePartition, RecState, Settle,
};
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use strata_raft::GroupId;
use strata_raft::error::PartitionError;
use strata_raft::partition::Partition;
use strata_raft::state_machine::StateHook;
use strata_record::{Batch, Header, Record};

/// The header that holds a record back from queue consumers until a time: epoch
/// milliseconds, or an RFC 3339 time (`2026-12-03T12:00:00Z`).
pub const DELIVER_AT_HEADER: &str = "strata-deliver-at";

/// The wall clock in epoch milliseconds (0 before 1970).
fn now_ms() -> u64 {
    u64::try_from(strata_record::sync::now_ms()).unwrap_or(0)
}

/// Record bytes (keys and values) handed out by one acquisition at most (at least one
/// record goes whatever its size).
const ACQUIRE_BYTES_MAX: usize = 4 << 20;

/// Bytes of the log read per step while collecting records to hand out.
const READ_STEP_BYTES: usize = 256 << 10;

/// Why an engine call failed.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Refused by the queue logic or the state machine.
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// The partition cannot serve (not its leader, not ready, stopped).
    #[error(transparent)]
    Partition(#[from] PartitionError),
}

/// Where a queue group created by an acquisition starts on a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueStart {
    /// The log start: every record still in the log is delivered (the default).
    Earliest,
    /// The high watermark: only records produced from then on.
    Latest,
}

/// What an acquisition asks for.
#[derive(Debug, Clone)]
pub struct AcquireSpec {
    /// The queue group.
    pub group: String,
    /// The consumer.
    pub consumer: String,
    /// Most records to hand out now.
    pub max_records: usize,
    /// Most records this consumer may hold on the partition (flow control).
    pub max_in_flight: usize,
    /// Lock length in milliseconds.
    pub lock_ms: u64,
    /// Most records between the settled prefix and the newest one handed out.
    pub window: i64,
    /// The group's configuration, if this acquisition creates it.
    pub config: QueueConfig,
    /// Where the group starts, if this acquisition creates it.
    pub start: QueueStart,
}

/// A record handed to a consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The record (offset, timestamp, key, value, headers).
    pub record: Record,
    /// How many times it has been handed out, this time included.
    pub deliveries: u32,
    /// When the lock runs out (epoch ms).
    pub lock_until_ms: u64,
}

/// A record due for the dead-letter topic.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    /// The record, if still in the log (retention may have removed it).
    pub record: Option<Record>,
    /// Its offset.
    pub offset: i64,
    /// How many times it was handed out.
    pub deliveries: u32,
    /// Why: `max_deliveries` or `rejected: <reason>`.
    pub reason: String,
}

/// The dead letters of one group, where they go.
#[derive(Debug, Clone)]
pub struct DeadLetters {
    /// The group.
    pub group: String,
    /// The dead-letter topic, or `None` to archive them.
    pub topic: Option<String>,
    /// The records.
    pub records: Vec<DeadLetter>,
}

/// Parses a deliver-at header value: epoch milliseconds or RFC 3339.
pub fn parse_deliver_at(value: &[u8]) -> Option<u64> {
    let s = std::str::from_utf8(value).ok()?.trim();
    if let Ok(ms) = s.parse::<u64>() {
        return Some(ms);
    }
    let t = humantime::parse_rfc3339_weak(s).ok()?;
    let d = t.duration_since(std::time::UNIX_EPOCH).ok()?;
    u64::try_from(d.as_millis()).ok()
}

/// When `record` may first be handed out (0: at once).
fn deliver_at(record: &Record) -> u64 {
    record
        .headers
        .iter()
        .rev()
        .find(|h| h.key == DELIVER_AT_HEADER)
        .and_then(|h| h.value.as_deref())
        .and_then(parse_deliver_at)
        .unwrap_or(0)
}

/// Reads records of a partition forward from an offset, a step of batches at a time.
struct Cursor<'a> {
    partition: &'a Partition,
    records: std::collections::VecDeque<Record>,
    /// The offset after the last record read.
    next: i64,
}

impl<'a> Cursor<'a> {
    fn new(partition: &'a Partition) -> Cursor<'a> {
        Cursor {
            partition,
            records: std::collections::VecDeque::new(),
            next: i64::MIN,
        }
    }

    /// The record at `offset` (ascending calls), `None` if the log no longer holds it.
    async fn get(&mut self, offset: i64) -> Result<Option<Record>, EngineError> {
        while self.records.front().is_some_and(|r| r.offset < offset) {
            self.records.pop_front();
        }
        if self.records.front().is_none_or(|r| r.offset > offset) {
            self.records.clear();
            let start = self.partition.log_start_offset();
            if offset < start || offset >= self.partition.high_watermark() {
                return Ok(None);
            }
            let fetched = self
                .partition
                .read(offset, READ_STEP_BYTES, std::time::Duration::ZERO)
                .await?;
            for bytes in fetched.batches {
                let batch = Batch::parse(bytes).map_err(|e| PartitionError::Internal {
                    reason: format!("a committed batch does not parse: {e}"),
                })?;
                for r in batch.records() {
                    if r.offset >= offset {
                        self.next = r.offset + 1;
                        self.records.push_back(r);
                    }
                }
            }
        }
        Ok(self.records.front().filter(|r| r.offset == offset).cloned())
    }
}

/// Proposes `cmd` and returns the outcome of applying it.
async fn propose(
    hook: &QueueHook,
    partition: &Partition,
    cmd: &QueueCommand,
) -> Result<QueueOutcome, EngineError> {
    let payload = serde_json::to_vec(cmd)
        .map_err(|e| QueueError::InvalidRequest(format!("cannot encode command: {e}")))?;
    let index = partition.propose_control(Bytes::from(payload)).await?;
    match hook.take_outcome(index) {
        Some(r) => Ok(r?),
        None => Err(PartitionError::Indeterminate {
            reason: format!("queue command {index} applied but its outcome is gone"),
        }
        .into()),
    }
}

/// The queue groups of one data partition, driven from its leader.
#[derive(Debug)]
pub struct QueueEngine {
    hook: Arc<QueueHook>,
    /// Serializes acquisitions and the leader's own commands.
    plan: tokio::sync::Mutex<()>,
    /// Consumers that closed here (a settle with `return_held`), by group and consumer id,
    /// with when: an acquisition stream opened before that acquires nothing more for them.
    /// Kept for [`CLOSED_KEPT`].
    closed: std::sync::Mutex<HashMap<(String, String), Instant>>,
}

/// How long the engine remembers that a consumer closed: longer than a stream of the closed
/// consumer can go on acquiring before the leader notices that its reader is gone.
const CLOSED_KEPT: Duration = Duration::from_secs(600);

impl QueueEngine {
    /// An engine over `hook`.
    pub fn new(hook: Arc<QueueHook>) -> QueueEngine {
        QueueEngine {
            hook,
            plan: tokio::sync::Mutex::new(()),
            closed: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// The replicated state.
    pub fn hook(&self) -> &QueueHook {
        &self.hook
    }

    /// Settles the records of `group` that retention removed from the log unsettled (those
    /// below `log_start`).
    async fn expire(
        &self,
        partition: &Partition,
        group: &str,
        log_start: i64,
    ) -> Result<(), EngineError> {
        let behind = self.hook.read(|s| {
            s.groups
                .get(group)
                .is_some_and(|g| g.settled_below < log_start)
        });
        if behind {
            tracing::warn!(
                group,
                log_start,
                "queue records removed by retention before they were settled"
            );
            propose(
                &self.hook,
                partition,
                &QueueCommand::Expired {
                    group: group.to_string(),
                    below: log_start,
                },
            )
            .await?;
        }
        Ok(())
    }

    /// Hands up to `spec.max_records` records to `spec.consumer` (fewer, or none, when the
    /// consumer holds its `max_in_flight`, the window is full or nothing is available).
    /// Records redelivered (released, or their lock expired) come first, then new ones in
    /// offset order; records with a deliver-at time in the future are held back.
    pub async fn acquire(
        &self,
        partition: &Partition,
        spec: &AcquireSpec,
    ) -> Result<Vec<Delivery>, EngineError> {
        Ok(self
            .acquire_for(partition, spec, None)
            .await?
            .unwrap_or_default())
    }

    /// [`QueueEngine::acquire`] for a stream opened at `opened`: `None` once the consumer
    /// closed after that (the stream should end). A consumer's close (a settle with
    /// `return_held`) waits for any acquisition in progress and is then final for the
    /// streams opened before it, so no record is locked to a consumer that is gone: one
    /// acquired while it closed would otherwise wait out its whole lock.
    pub async fn acquire_streaming(
        &self,
        partition: &Partition,
        spec: &AcquireSpec,
        opened: Instant,
    ) -> Result<Option<Vec<Delivery>>, EngineError> {
        self.acquire_for(partition, spec, Some(opened)).await
    }

    async fn acquire_for(
        &self,
        partition: &Partition,
        spec: &AcquireSpec,
        opened: Option<Instant>,
    ) -> Result<Option<Vec<Delivery>>, EngineError> {
        spec.config.check()?;
        let _plan = self.plan.lock().await;
        if let Some(opened) = opened {
            let closed = strata_record::sync::lock(&self.closed);
            let key = (spec.group.clone(), spec.consumer.clone());
            if closed.get(&key).is_some_and(|at| *at >= opened) {
                return Ok(None);
            }
        }
        partition.ensure_serving().await?;
        // One look at the log's bounds for the whole plan: retention moving the start later
        // only makes some records unreadable (skipped), never a hole in the window.
        let log_start = partition.log_start_offset();
        self.expire(partition, &spec.group, log_start).await?;
        let now = now_ms();
        let hw = partition.high_watermark();
        let start = match spec.start {
            QueueStart::Earliest => log_start,
            QueueStart::Latest => hw,
        };
        // The plan, read from the state without copying it.
        let (create, redeliver, window_end, settled_below, credit) = self.hook.read(|s| {
            let fresh;
            let (create, g) = match s.groups.get(&spec.group) {
                Some(g) => (None, g),
                None => {
                    fresh = QueuePartition::new(spec.config.clone(), start);
                    (Some((spec.config.clone(), start)), &fresh)
                }
            };
            let held = g.held_by(&spec.consumer, now);
            let credit = spec
                .max_records
                .min(spec.max_in_flight.saturating_sub(held));
            let max = g.config.max_deliveries;
            let redeliver: Vec<(i64, u32)> = g
                .records
                .iter()
                .filter(|(o, r)| **o >= log_start && r.acquirable(now, max))
                .map(|(o, r)| (*o, r.deliveries + 1))
                .take(credit)
                .collect();
            (create, redeliver, g.window_end(), g.settled_below, credit)
        });
        if credit == 0 && create.is_none() {
            return Ok(Some(Vec::new()));
        }
        let size = |r: &Record| {
            r.key.as_ref().map_or(0, Bytes::len) + r.value.as_ref().map_or(0, Bytes::len)
        };
        let mut bytes = 0usize;
        let mut deliveries: Vec<(Record, u32)> = Vec::new();
        let mut cursor = Cursor::new(partition);
        for (o, count) in redeliver {
            if bytes >= ACQUIRE_BYTES_MAX {
                break;
            }
            if let Some(record) = cursor.get(o).await? {
                bytes += size(&record);
                deliveries.push((record, count));
            }
        }
        let mut delayed = Vec::new();
        let limit = hw.min(settled_below.saturating_add(spec.window.max(1)));
        let mut next = window_end.max(log_start);
        let mut cursor = Cursor::new(partition);
        while deliveries.len() < credit && next < limit && bytes < ACQUIRE_BYTES_MAX {
            let Some(record) = cursor.get(next).await? else {
                break;
            };
            // A time further than the longest delay counts as that delay.
            let at = deliver_at(&record).min(now.saturating_add(DELAY_MS_MAX));
            if at > now {
                delayed.push((next, at));
            } else {
                bytes += size(&record);
                deliveries.push((record, 1));
            }
            next += 1;
        }
        if deliveries.is_empty() && delayed.is_empty() && create.is_none() {
            return Ok(Some(Vec::new()));
        }
        deliveries.sort_by_key(|(r, _)| r.offset);
        let offsets: Vec<i64> = deliveries.iter().map(|(r, _)| r.offset).collect();
        let until_ms = now.saturating_add(spec.lock_ms);
        let outcome = propose(
            &self.hook,
            partition,
            &QueueCommand::Acquire {
                group: spec.group.clone(),
                consumer: spec.consumer.clone(),
                offsets,
                now_ms: now,
                until_ms,
                delayed,
                create,
            },
        )
        .await?;
        let taken: std::collections::BTreeSet<i64> = match outcome {
            QueueOutcome::Acquired(taken) => taken.into_iter().collect(),
            other => {
                return Err(
                    QueueError::Invariant(format!("an acquisition applied as {other:?}")).into(),
                );
            }
        };
        Ok(Some(
            deliveries
                .into_iter()
                .filter(|(r, _)| taken.contains(&r.offset))
                .map(|(record, deliveries)| Delivery {
                    record,
                    deliveries,
                    lock_until_ms: until_ms,
                })
                .collect(),
        ))
    }

    /// Acknowledges, releases, rejects, extends or returns records `consumer` holds; each
    /// item's result in order. With `return_held`, every record the consumer still holds
    /// afterwards becomes available again (a consumer closing).
    pub async fn settle(
        &self,
        partition: &Partition,
        group: &str,
        consumer: &str,
        items: Vec<(i64, Settle)>,
        return_held: bool,
    ) -> Result<Vec<Result<(), QueueError>>, EngineError> {
        if items.is_empty() && !return_held {
            return Ok(Vec::new());
        }
        // A consumer closing: wait for any acquisition in progress (it is then applied before
        // this settle, which gives it back), and stop the consumer's open streams from
        // acquiring for it again (see `QueueEngine::acquire_streaming`).
        let _plan = if return_held {
            let plan = self.plan.lock().await;
            let now = Instant::now();
            let mut closed = strata_record::sync::lock(&self.closed);
            closed.retain(|_, at| now.duration_since(*at) < CLOSED_KEPT);
            closed.insert((group.to_string(), consumer.to_string()), now);
            Some(plan)
        } else {
            None
        };
        let n = items.len();
        let cmd = QueueCommand::Settle {
            group: group.to_string(),
            consumer: consumer.to_string(),
            items,
            now_ms: now_ms(),
            return_held,
        };
        match propose(&self.hook, partition, &cmd).await? {
            QueueOutcome::Settled(refused) => {
                let mut results: Vec<Result<(), QueueError>> = (0..n).map(|_| Ok(())).collect();
                for (i, e) in refused {
                    if let Some(slot) = results.get_mut(i as usize) {
                        *slot = Err(e);
                    }
                }
                Ok(results)
            }
            other => {
                Err(QueueError::Invariant(format!("a settle command applied as {other:?}")).into())
            }
        }
    }

    /// The records of every group bound for the dead-letter topic, at most `max` per group:
    /// first those delivered `max_deliveries` times and neither locked nor settled are
    /// marked so (replicated: from then no settle applies to them), then every such record
    /// still in the log is read. Records retention removed are left to expiry.
    pub async fn dead_letters(
        &self,
        partition: &Partition,
        max: usize,
    ) -> Result<Vec<DeadLetters>, EngineError> {
        let _plan = self.plan.lock().await;
        let now = now_ms();
        let exhausted: Vec<(String, Vec<i64>)> = self.hook.read(|s| {
            s.groups
                .iter()
                .filter_map(|(name, g)| {
                    let offsets: Vec<i64> = g
                        .records
                        .iter()
                        .filter(|(_, r)| {
                            !matches!(r.state, RecState::Rejected { .. })
                                && r.dead_letter_reason(now, g.config.max_deliveries).is_some()
                        })
                        .map(|(o, _)| *o)
                        .take(max)
                        .collect();
                    (!offsets.is_empty()).then(|| (name.clone(), offsets))
                })
                .collect()
        });
        for (group, offsets) in exhausted {
            propose(
                &self.hook,
                partition,
                &QueueCommand::Condemn {
                    group,
                    offsets,
                    now_ms: now,
                },
            )
            .await?;
        }
        /// (group, dead-letter topic, [(offset, deliveries, reason)]).
        type Due = (String, Option<String>, Vec<(i64, u32, String)>);
        let log_start = partition.log_start_offset();
        let due: Vec<Due> = self.hook.read(|s| {
            s.groups
                .iter()
                .filter_map(|(name, g)| {
                    let recs: Vec<(i64, u32, String)> = g
                        .records
                        .range(log_start..)
                        .filter_map(|(o, r)| match &r.state {
                            RecState::Rejected { reason } => {
                                Some((*o, r.deliveries, reason.clone()))
                            }
                            _ => None,
                        })
                        .take(max)
                        .collect();
                    (!recs.is_empty()).then(|| (name.clone(), g.config.dead_letter.clone(), recs))
                })
                .collect()
        });
        let mut out = Vec::new();
        for (group, topic, recs) in due {
            let mut cursor = Cursor::new(partition);
            let mut records = Vec::new();
            for (offset, deliveries, reason) in recs {
                // Gone meanwhile: expiry settles it.
                let Some(record) = cursor.get(offset).await? else {
                    continue;
                };
                records.push(DeadLetter {
                    record: Some(record),
                    offset,
                    deliveries,
                    reason,
                });
            }
            out.push(DeadLetters {
                group,
                topic,
                records,
            });
        }
        Ok(out)
    }

    /// Marks `offsets` of `group` dead, once they are in the dead-letter topic (or dropped).
    pub async fn dead_lettered(
        &self,
        partition: &Partition,
        group: &str,
        offsets: Vec<i64>,
    ) -> Result<(), EngineError> {
        let _plan = self.plan.lock().await;
        propose(
            &self.hook,
            partition,
            &QueueCommand::DeadLettered {
                group: group.to_string(),
                offsets,
                now_ms: now_ms(),
            },
        )
        .await?;
        Ok(())
    }

    /// Settles what retention removed, for every group.
    pub async fn expire_all(&self, partition: &Partition) -> Result<(), EngineError> {
        let groups: Vec<String> = self.hook.read(|s| s.groups.keys().cloned().collect());
        let _plan = self.plan.lock().await;
        let log_start = partition.log_start_offset();
        for g in groups {
            self.expire(partition, &g, log_start).await?;
        }
        Ok(())
    }

    /// Deletes `group` on this partition (refused while a consumer holds a lock).
    pub async fn delete(&self, partition: &Partition, group: &str) -> Result<(), EngineError> {
        let _plan = self.plan.lock().await;
        propose(
            &self.hook,
            partition,
            &QueueCommand::Delete {
                group: group.to_string(),
                now_ms: now_ms(),
            },
        )
        .await?;
        Ok(())
    }

    /// The lowest offset every queue group of this partition has settled below (`None`
    /// without groups): what `retention.policy = acked` may delete up to.
    pub fn settled_floor(&self) -> Option<i64> {
        self.hook
            .read(|s| s.groups.values().map(|g| g.settled_below).min())
    }

    /// When the next lock or delay of this partition runs out, in ms from now (for waiters).
    pub fn next_deadline_in(&self, now: u64) -> Option<u64> {
        self.hook.read(|s| {
            s.groups
                .values()
                .flat_map(|g| g.records.values())
                .filter_map(|r| match &r.state {
                    RecState::Acquired { until, .. } if *until >= now => Some(*until + 1),
                    RecState::Available { not_before } if *not_before > now => Some(*not_before),
                    _ => None,
                })
                .min()
                .map(|t| t.saturating_sub(now))
        })
    }
}

/// Builds the dead letter of `d` from `topic`/`partition`, read by `group`: the original
/// key, value, timestamp and headers, and headers naming where it came from and why.
pub fn dead_letter_record(
    d: &DeadLetter,
    topic: &str,
    partition: u32,
    group: &str,
) -> Option<strata_record::NewRecord> {
    let r = d.record.as_ref()?;
    let mut headers = r.headers.clone();
    let h = |k: &str, v: String| Header::new(k, Some(Bytes::from(v)));
    headers.push(h("strata-dlq-topic", topic.to_string()));
    headers.push(h("strata-dlq-partition", partition.to_string()));
    headers.push(h("strata-dlq-offset", d.offset.to_string()));
    headers.push(h("strata-dlq-deliveries", d.deliveries.to_string()));
    headers.push(h("strata-dlq-group", group.to_string()));
    headers.push(h("strata-dlq-reason", d.reason.clone()));
    Some(strata_record::NewRecord {
        timestamp: r.timestamp,
        key: r.key.clone(),
        value: r.value.clone(),
        headers,
    })
}

/// The queue engines of the data partitions hosted on a node, by Raft group.
#[derive(Debug, Default)]
pub struct Queues {
    by_group: Mutex<HashMap<GroupId, Arc<QueueEngine>>>,
}

impl Queues {
    /// The hook for a data partition's replica being opened (a new engine; a reopened
    /// replica gets a fresh one, rebuilt from its snapshot and log).
    pub fn open(&self, group_id: GroupId) -> Arc<dyn StateHook> {
        let hook = Arc::new(QueueHook::default());
        let engine = Arc::new(QueueEngine::new(hook.clone()));
        strata_record::sync::lock(&self.by_group).insert(group_id, engine);
        hook
    }

    /// The engine of Raft group `group_id`, if its replica is hosted here.
    pub fn get(&self, group_id: GroupId) -> Option<Arc<QueueEngine>> {
        strata_record::sync::lock(&self.by_group)
            .get(&group_id)
            .cloned()
    }

    /// Every engine hosted here.
    pub fn all(&self) -> Vec<(GroupId, Arc<QueueEngine>)> {
        strata_record::sync::lock(&self.by_group)
            .iter()
            .map(|(g, e)| (*g, e.clone()))
            .collect()
    }

    /// Forgets the engines whose replica was closed (a replica holds its hook for as long
    /// as it lives).
    pub fn forget_closed(&self) {
        strata_record::sync::lock(&self.by_group).retain(|_, e| Arc::strong_count(&e.hook) > 1);
    }
}
