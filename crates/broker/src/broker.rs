//! [`Broker`]: the calls every protocol adapter makes.

use crate::error::BrokerError;
use crate::types::{
    Chunk, ClusterStatus, Health, JoinRequest, Joined, Metadata, NodeView, Offsets, PartitionView,
    Position, ProducePayload, Produced, TopicView,
};
use bytes::Bytes;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use strata_cluster::controller::{Controller, ControllerError, LeaderHints};
use strata_cluster::meta::{
    ClusterMeta, Command, NodeMeta, NodeState, Outcome, Refusal, TopicConfig,
};
use strata_cluster::replicas::Replicas;
use strata_raft::error::PartitionError;
use strata_raft::liveness::Liveness;
use strata_raft::partition::{Acks, Fetched, Partition};
use strata_record::{BatchBuilder, BatchHeader, NewRecord};
use tokio::sync::mpsc;

/// How long a subscription waits for new records before it checks that its reader is still
/// there.
const SUBSCRIBE_POLL: Duration = Duration::from_secs(5);

/// The limits and defaults a broker enforces.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// Largest fetch answer in bytes (a request asking for 0 gets the smaller of this and
    /// 4 MiB).
    pub fetch_bytes_max: u32,
    /// Longest a fetch waits for records, in milliseconds.
    pub fetch_wait_max_ms: u32,
    /// Most partitions a topic may have.
    pub partitions_per_topic_max: u32,
    /// Replication factor of a topic created without one (capped at the active nodes).
    pub default_replication_factor: u32,
    /// Below this many free bytes on the data disk, produce is refused.
    pub disk_free_bytes_min: u64,
    /// A node not heard from for this long is not alive.
    pub election_timeout_max_ms: u64,
    /// Configs of a topic created without them.
    pub topic_defaults: TopicConfig,
    /// How long admin calls wait for the controller.
    pub admin_patience: Duration,
}

/// What a broker stands on: this node's identity and the cluster layer.
pub struct BrokerParts {
    /// This node.
    pub node_id: u64,
    /// The cluster's id, as text.
    pub cluster_id: String,
    /// The controller (metadata, proposals).
    pub controller: Arc<Controller>,
    /// The replicas hosted here.
    pub replicas: Arc<Replicas>,
    /// Leaders of partitions not hosted here, as other nodes said.
    pub hints: Arc<LeaderHints>,
    /// Which nodes this node hears from.
    pub liveness: Arc<Liveness>,
}

/// One node's broker.
pub struct Broker {
    node_id: u64,
    cluster_id: String,
    controller: Arc<Controller>,
    replicas: Arc<Replicas>,
    hints: Arc<LeaderHints>,
    liveness: Arc<Liveness>,
    config: BrokerConfig,
    disk_free: AtomicU64,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("node_id", &self.node_id)
            .finish_non_exhaustive()
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The offset after the last record of `batches` (`from` when there are none).
fn next_after(batches: &[Bytes], from: i64) -> i64 {
    batches
        .last()
        .and_then(|b| BatchHeader::parse(b).ok())
        .map_or(from, |h| h.base_offset + i64::from(h.last_offset_delta) + 1)
}

/// Builds `records` into one batch, each record's size checked against `limit` on the way.
/// A timestamp of 0 means "now".
fn encode_records(records: &[NewRecord], limit: usize) -> Result<Bytes, BrokerError> {
    if records.is_empty() {
        return Err(BrokerError::invalid(
            "records",
            "at least one record is required",
        ));
    }
    let now = now_ms();
    let mut b = BatchBuilder::new();
    for (i, r) in records.iter().enumerate() {
        let mut rec = r.clone();
        if rec.timestamp == 0 {
            rec.timestamp = now;
        }
        let size = b.estimated_size_with(&rec);
        if size > limit {
            return Err(too_large(size, limit));
        }
        b.append(&rec)
            .map_err(|e| BrokerError::invalid(format!("records[{i}]"), e.to_string()))?;
    }
    Ok(b.build())
}

fn too_large(size: usize, limit: usize) -> BrokerError {
    BrokerError::MessageTooLarge {
        size,
        limit,
        limit_name: "max.message.bytes",
    }
}

fn parse_configs(
    base: TopicConfig,
    kv: &BTreeMap<String, String>,
) -> Result<TopicConfig, BrokerError> {
    let mut c = base;
    for (k, v) in kv {
        c.set(k, v)
            .map_err(|e| BrokerError::invalid(format!("configs[{k}]"), e))?;
    }
    Ok(c)
}

/// A replica's error as the broker reports it about `what` (`topic/partition`); `leader`
/// resolves a leader id to its client address.
fn partition_error(
    what: String,
    e: PartitionError,
    leader: impl Fn(Option<u64>) -> Option<(u64, String)>,
) -> BrokerError {
    match e {
        PartitionError::NotLeader { leader_id, .. } => BrokerError::NotLeader {
            what,
            leader: leader(leader_id),
        },
        PartitionError::Indeterminate { reason } => BrokerError::Indeterminate { reason },
        PartitionError::InvalidBatch { reason } => BrokerError::InvalidBatch { reason },
        PartitionError::OutOfOrderSequence {
            producer_id,
            expected,
            got,
        } => BrokerError::OutOfOrderSequence {
            producer_id,
            expected,
            got,
        },
        PartitionError::ProducerFenced {
            producer_id,
            epoch,
            current,
        } => BrokerError::ProducerFenced {
            producer_id,
            epoch,
            current,
        },
        PartitionError::OffsetOutOfRange {
            requested,
            start,
            end,
        } => BrokerError::OffsetOutOfRange {
            what,
            requested,
            start,
            end,
        },
        PartitionError::Fatal { reason } => BrokerError::ReplicaDown { what, reason },
    }
}

impl Broker {
    /// A broker over `parts`, enforcing `config`. The free disk space starts unknown
    /// (unlimited) until [`Broker::set_disk_free`].
    pub fn new(parts: BrokerParts, config: BrokerConfig) -> Broker {
        Broker {
            node_id: parts.node_id,
            cluster_id: parts.cluster_id,
            controller: parts.controller,
            replicas: parts.replicas,
            hints: parts.hints,
            liveness: parts.liveness,
            config,
            disk_free: AtomicU64::new(u64::MAX),
        }
    }

    /// The limits this broker enforces.
    pub fn config(&self) -> &BrokerConfig {
        &self.config
    }

    /// The cluster's id.
    pub fn cluster_id(&self) -> &str {
        &self.cluster_id
    }

    /// Records the free bytes of the data disk (the node measures it periodically).
    pub fn set_disk_free(&self, free: u64) {
        self.disk_free.store(free, Ordering::Relaxed);
    }

    /// Whether this node heard from node `id` within the election timeout (itself: always).
    pub fn alive(&self, id: u64) -> bool {
        id == self.node_id
            || self
                .liveness
                .heard_from(id)
                .is_some_and(|d| d < Duration::from_millis(self.config.election_timeout_max_ms))
    }

    /// [`BrokerError::DiskFull`] while the data disk is below the floor.
    pub fn check_disk(&self) -> Result<(), BrokerError> {
        let free = self.disk_free.load(Ordering::Relaxed);
        let threshold = self.config.disk_free_bytes_min;
        if free < threshold {
            return Err(BrokerError::DiskFull {
                node: self.node_id,
                free,
                threshold,
            });
        }
        Ok(())
    }

    fn meta(&self) -> ClusterMeta {
        self.controller.snapshot()
    }

    fn client_addr(&self, node: u64) -> Option<String> {
        self.controller
            .meta()
            .borrow()
            .nodes
            .get(&node)
            .map(|n| n.client_addr.clone())
    }

    fn leader_hint(&self, id: Option<u64>) -> Option<(u64, String)> {
        id.and_then(|id| self.client_addr(id).map(|a| (id, a)))
    }

    /// The local replica of `topic`/`partition` and the topic's `max.message.bytes`, from one
    /// look at the metadata; or unknown topic or partition, or NotLeader naming the leader
    /// when no replica is hosted here.
    fn route(&self, topic: &str, partition: u32) -> Result<(Arc<Partition>, usize), BrokerError> {
        let (group, preferred, limit) = {
            let meta = self.controller.meta();
            let meta = meta.borrow();
            let t = meta
                .topics
                .get(topic)
                .ok_or_else(|| BrokerError::UnknownTopic {
                    topic: topic.to_string(),
                })?;
            let p = t.partitions.get(partition as usize).ok_or_else(|| {
                BrokerError::UnknownPartition {
                    topic: topic.to_string(),
                    partition,
                    partitions: t.partitions.len(),
                }
            })?;
            let limit = t.config.max_message_bytes as usize;
            (p.group_id, p.replicas.first().copied(), limit)
        };
        match self.replicas.get(group).and_then(|h| h.partition()) {
            Some(p) => Ok((p, limit)),
            None => {
                // Not hosted here: the leader another node announced, else the preferred one.
                let id = self.hints.get(group).map(|(id, _)| id).or(preferred);
                Err(BrokerError::NotLeader {
                    what: format!("{topic}/{partition}"),
                    leader: self.leader_hint(id),
                })
            }
        }
    }

    fn partition(&self, topic: &str, partition: u32) -> Result<Arc<Partition>, BrokerError> {
        self.route(topic, partition).map(|(p, _)| p)
    }

    /// A replica's error as the broker reports it, leader ids resolved to client addresses.
    fn perr(&self, topic: &str, partition: u32, e: PartitionError) -> BrokerError {
        partition_error(format!("{topic}/{partition}"), e, |id| self.leader_hint(id))
    }

    fn controller_error(&self, e: ControllerError) -> BrokerError {
        match e {
            ControllerError::Unavailable(reason) => BrokerError::NotController {
                reason,
                leader: self.leader_hint(self.controller.leader().map(|(id, _)| id)),
            },
            ControllerError::Refused(r) => BrokerError::Refused(r),
        }
    }

    fn topic_view(&self, meta: &ClusterMeta, name: &str) -> Option<TopicView> {
        let t = meta.topics.get(name)?;
        let partitions = t
            .partitions
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let local = self.replicas.get(p.group_id).and_then(|h| h.partition());
                let (leader_id, leader_term, voters, high_watermark) = match &local {
                    Some(part) => {
                        let st = part.status();
                        (
                            st.leader.unwrap_or(0),
                            st.term,
                            st.voters,
                            part.high_watermark(),
                        )
                    }
                    None => {
                        let (leader, term) = self
                            .hints
                            .get(p.group_id)
                            .unwrap_or((p.replicas.first().copied().unwrap_or(0), 0));
                        (leader, term, p.replicas.clone(), -1)
                    }
                };
                PartitionView {
                    partition: i as u32,
                    leader_id,
                    replicas: p.replicas.clone(),
                    voters,
                    leader_term,
                    high_watermark,
                    group_id: p.group_id,
                }
            })
            .collect();
        Some(TopicView {
            name: name.to_string(),
            topic_id: t.id.clone(),
            partitions,
            replication_factor: t.replication_factor,
            configs: t.config.to_map().into_iter().collect(),
        })
    }

    fn nodes(&self, meta: &ClusterMeta) -> Vec<NodeView> {
        meta.nodes
            .iter()
            .map(|(id, n)| NodeView {
                node_id: *id,
                client_addr: n.client_addr.clone(),
                peer_addr: n.peer_addr.clone(),
                http_addr: n.http_addr.clone(),
                state: n.state,
                alive: self.alive(*id),
            })
            .collect()
    }

    fn max_bytes(&self, asked: u32) -> usize {
        let cap = self.config.fetch_bytes_max;
        (if asked == 0 {
            cap.min(4 << 20)
        } else {
            asked.min(cap)
        }) as usize
    }

    fn max_wait(&self, asked_ms: u32) -> Duration {
        Duration::from_millis(asked_ms.min(self.config.fetch_wait_max_ms) as u64)
    }

    /// Appends a batch (or records built into one) to `topic`/`partition` on this node, which
    /// must lead it, after the size limit and the disk floor are checked. Answers once `acks`
    /// is satisfied.
    pub async fn produce(
        &self,
        topic: &str,
        partition: u32,
        payload: ProducePayload,
        acks: Acks,
    ) -> Result<Produced, BrokerError> {
        let (p, limit) = self.route(topic, partition)?;
        let batch = match payload {
            ProducePayload::Batch(b) => b,
            ProducePayload::Records(records) => encode_records(&records, limit)?,
        };
        if batch.len() > limit {
            return Err(too_large(batch.len(), limit));
        }
        if !p.leads() {
            return Err(BrokerError::NotLeader {
                what: format!("{topic}/{partition}"),
                leader: self.leader_hint(p.leader().map(|(id, _)| id)),
            });
        }
        self.check_disk()?;
        // The header alone gives the count; `append` checks the whole batch (CRC, records)
        // once, before anything is written.
        let record_count = BatchHeader::parse(&batch)
            .map(|h| h.record_count.max(0) as u32)
            .map_err(|e| BrokerError::InvalidBatch {
                reason: e.to_string(),
            })?;
        let base_offset = p
            .append(batch, acks)
            .await
            .map_err(|e| self.perr(topic, partition, e))?;
        Ok(Produced {
            base_offset,
            record_count,
        })
    }

    /// Reads batches of `topic`/`partition` from `offset` (the leader serves), up to about
    /// `max_bytes` (capped; 0: the default) and waiting up to `max_wait_ms` (capped) when
    /// `offset` is the high watermark.
    pub async fn fetch(
        &self,
        topic: &str,
        partition: u32,
        offset: i64,
        max_bytes: u32,
        max_wait_ms: u32,
    ) -> Result<Fetched, BrokerError> {
        let p = self.partition(topic, partition)?;
        p.read(
            offset,
            self.max_bytes(max_bytes),
            self.max_wait(max_wait_ms),
        )
        .await
        .map_err(|e| self.perr(topic, partition, e))
    }

    /// Resolves `pos` on the serving leader (a follower or a deposed leader answers
    /// NotLeader whatever the position).
    async fn resolve(&self, p: &Partition, pos: Position) -> Result<i64, PartitionError> {
        p.ensure_serving().await?;
        match pos {
            Position::Earliest => Ok(p.log_start_offset()),
            Position::Latest => Ok(p.high_watermark()),
            Position::Offset(o) => Ok(o),
            Position::Timestamp(t) => match p.offset_for_timestamp(t).await? {
                Some(o) => Ok(o),
                None => Ok(p.high_watermark()),
            },
        }
    }

    /// Streams `topic`/`partition` from `start` for as long as the receiver is kept: each
    /// chunk holds what one read returned (never empty). An error ends the stream after it
    /// is delivered.
    pub async fn subscribe(
        &self,
        topic: &str,
        partition: u32,
        start: Position,
        max_bytes: u32,
    ) -> Result<mpsc::Receiver<Result<Chunk, BrokerError>>, BrokerError> {
        let p = self.partition(topic, partition)?;
        let start = self
            .resolve(&p, start)
            .await
            .map_err(|e| self.perr(topic, partition, e))?;
        let (tx, rx) = mpsc::channel(4);
        let max_bytes = self.max_bytes(max_bytes);
        // The task resolves leader hints through the controller's metadata.
        let what = format!("{topic}/{partition}");
        let controller = self.controller.clone();
        let resolve_error = move |e: PartitionError| -> BrokerError {
            partition_error(what.clone(), e, |id| {
                id.and_then(|id| {
                    controller
                        .meta()
                        .borrow()
                        .nodes
                        .get(&id)
                        .map(|n| (id, n.client_addr.clone()))
                })
            })
        };
        tokio::spawn(async move {
            let mut offset = start;
            loop {
                let msg = match p.read(offset, max_bytes, SUBSCRIBE_POLL).await {
                    Ok(fetched) => {
                        if fetched.batches.is_empty() {
                            if tx.is_closed() {
                                return;
                            }
                            continue;
                        }
                        let next_offset = next_after(&fetched.batches, offset);
                        let chunk = Chunk {
                            fetched,
                            from: offset,
                            next_offset,
                        };
                        offset = next_offset;
                        Ok(chunk)
                    }
                    Err(e) => Err(resolve_error(e)),
                };
                let end = msg.is_err();
                if tx.send(msg).await.is_err() || end {
                    return;
                }
            }
        });
        Ok(rx)
    }

    /// The offset `pos` names in `topic`/`partition`, with the partition's bounds.
    pub async fn list_offsets(
        &self,
        topic: &str,
        partition: u32,
        pos: Position,
    ) -> Result<Offsets, BrokerError> {
        let p = self.partition(topic, partition)?;
        let offset = self
            .resolve(&p, pos)
            .await
            .map_err(|e| self.perr(topic, partition, e))?;
        Ok(Offsets {
            offset,
            log_start_offset: p.log_start_offset(),
            high_watermark: p.high_watermark(),
        })
    }

    /// The cluster's nodes and the topics named (every topic when `topics` is empty).
    pub fn metadata(&self, topics: &[String]) -> Metadata {
        let meta = self.meta();
        let names: Vec<String> = if topics.is_empty() {
            meta.topics.keys().cloned().collect()
        } else {
            topics.to_vec()
        };
        let mut found = Vec::new();
        let mut unknown_topics = Vec::new();
        for n in names {
            match self.topic_view(&meta, &n) {
                Some(t) => found.push(t),
                None => unknown_topics.push(n),
            }
        }
        Metadata {
            cluster_id: self.cluster_id.clone(),
            controller_id: self.controller.leader().map_or(0, |(id, _)| id),
            nodes: self.nodes(&meta),
            topics: found,
            unknown_topics,
        }
    }

    async fn propose(&self, cmd: &Command) -> Result<Outcome, BrokerError> {
        self.controller
            .propose(cmd, self.config.admin_patience)
            .await
            .map_err(|e| self.controller_error(e))
    }

    /// A new producer id (epoch 0) for an idempotent producer.
    pub async fn init_producer(&self) -> Result<(i64, i16), BrokerError> {
        match self.propose(&Command::AllocateProducerId).await? {
            Outcome::ProducerId(id) => Ok((id, 0)),
            other => Err(BrokerError::Internal(format!(
                "unexpected outcome {other:?}"
            ))),
        }
    }

    /// Creates a topic (`replication_factor` 0: the default, capped at the active nodes;
    /// `configs` over the defaults) and describes it as this node then sees it.
    pub async fn create_topic(
        &self,
        name: &str,
        partitions: u32,
        replication_factor: u32,
        configs: &BTreeMap<String, String>,
    ) -> Result<Option<TopicView>, BrokerError> {
        strata_cluster::meta::check_topic_name(name)
            .map_err(|e| BrokerError::invalid("name", e))?;
        let max = self.config.partitions_per_topic_max;
        if partitions == 0 {
            return Err(BrokerError::invalid(
                "partitions",
                "a topic needs at least 1 partition",
            ));
        }
        if partitions > max {
            return Err(BrokerError::LimitExceeded {
                limit: "partitions_per_topic_max",
                max,
                value: partitions,
            });
        }
        let active = self.meta().active_nodes().len() as u32;
        let rf = if replication_factor == 0 {
            self.config.default_replication_factor.min(active.max(1))
        } else {
            replication_factor
        };
        let config = parse_configs(self.config.topic_defaults.clone(), configs)?;
        let id = uuid::Uuid::new_v4().to_string();
        let cmd = Command::CreateTopic {
            name: name.to_string(),
            id: id.clone(),
            partitions,
            replication_factor: rf,
            config,
        };
        match self
            .controller
            .propose(&cmd, self.config.admin_patience)
            .await
        {
            Ok(_) => {}
            // A retry of our own creation after an indeterminate outcome.
            Err(ControllerError::Refused(Refusal::TopicExists(_)))
                if self.meta().topics.get(name).is_some_and(|t| t.id == id) => {}
            Err(e) => return Err(self.controller_error(e)),
        }
        Ok(self.topic_view(&self.meta(), name))
    }

    /// Deletes a topic (by the id it has now, so a retry never deletes a topic recreated
    /// under the same name); returns that id.
    pub async fn delete_topic(&self, name: &str) -> Result<String, BrokerError> {
        let id = self
            .meta()
            .topics
            .get(name)
            .map(|t| t.id.clone())
            .ok_or_else(|| BrokerError::UnknownTopic {
                topic: name.to_string(),
            })?;
        let cmd = Command::DeleteTopic {
            name: name.to_string(),
            id: Some(id.clone()),
        };
        match self
            .controller
            .propose(&cmd, self.config.admin_patience)
            .await
        {
            Ok(_) => {}
            Err(ControllerError::Refused(Refusal::UnknownTopic(_)))
                if self.meta().deleted_topics.contains(&id) => {}
            Err(e) => return Err(self.controller_error(e)),
        }
        Ok(id)
    }

    /// Every topic.
    pub fn list_topics(&self) -> Vec<TopicView> {
        let meta = self.meta();
        meta.topics
            .keys()
            .filter_map(|n| self.topic_view(&meta, n))
            .collect()
    }

    /// One topic.
    pub fn describe_topic(&self, name: &str) -> Result<TopicView, BrokerError> {
        self.topic_view(&self.meta(), name)
            .ok_or_else(|| BrokerError::UnknownTopic {
                topic: name.to_string(),
            })
    }

    /// Grows a topic to `partitions` partitions.
    pub async fn add_partitions(
        &self,
        name: &str,
        partitions: u32,
    ) -> Result<TopicView, BrokerError> {
        let max = self.config.partitions_per_topic_max;
        if partitions > max {
            return Err(BrokerError::LimitExceeded {
                limit: "partitions_per_topic_max",
                max,
                value: partitions,
            });
        }
        let cmd = Command::AddPartitions {
            name: name.to_string(),
            partitions,
        };
        self.change_then_describe(&cmd, name).await
    }

    /// Sets topic configs, and returns those in `remove` to their defaults.
    pub async fn alter_topic_config(
        &self,
        name: &str,
        set: &BTreeMap<String, String>,
        remove: &[String],
    ) -> Result<TopicView, BrokerError> {
        let current = self
            .meta()
            .topics
            .get(name)
            .map(|t| t.config.clone())
            .ok_or_else(|| BrokerError::UnknownTopic {
                topic: name.to_string(),
            })?;
        let defaults = self.config.topic_defaults.to_map();
        let mut config = current;
        for k in remove {
            let v = defaults.get(k).ok_or_else(|| {
                BrokerError::invalid(format!("remove[{k}]"), "unknown topic config")
            })?;
            config
                .set(k, v)
                .map_err(|e| BrokerError::invalid(format!("remove[{k}]"), e))?;
        }
        let config = parse_configs(config, set)?;
        let cmd = Command::SetTopicConfig {
            name: name.to_string(),
            config,
        };
        self.change_then_describe(&cmd, name).await
    }

    /// Applies a topic change through the controller and describes the topic as this node
    /// then sees it (the controller answers once this node applied the change).
    async fn change_then_describe(
        &self,
        cmd: &Command,
        name: &str,
    ) -> Result<TopicView, BrokerError> {
        self.propose(cmd).await?;
        self.describe_topic(name)
    }

    /// The cluster's health as this node sees it.
    pub fn health(&self, meta: &ClusterMeta) -> Health {
        let mut h = Health {
            controller_id: self.controller.leader().map_or(0, |(id, _)| id),
            ..Health::default()
        };
        for t in meta.topics.values() {
            for p in &t.partitions {
                h.partitions += 1;
                if p.target.is_some() {
                    h.moves += 1;
                    h.under_replicated += 1;
                    continue;
                }
                let Some(part) = self.replicas.get(p.group_id).and_then(|r| r.partition()) else {
                    if p.replicas.contains(&self.node_id) {
                        // Ours but not open (yet, or reopening).
                        h.leaderless += 1;
                    }
                    if p.replicas.iter().any(|n| !self.alive(*n)) {
                        h.under_replicated += 1;
                    }
                    continue;
                };
                let st = part.status();
                if st.leader.is_none() {
                    h.leaderless += 1;
                }
                if st.voters.iter().any(|n| !self.alive(*n)) || st.voters.len() < p.replicas.len() {
                    h.under_replicated += 1;
                }
            }
        }
        let nodes_alive = meta
            .nodes
            .iter()
            .filter(|(_, n)| n.state == NodeState::Active)
            .all(|(id, _)| self.alive(*id));
        h.healthy = h.controller_id != 0
            && nodes_alive
            && h.leaderless == 0
            && h.under_replicated == 0
            && self.replicas.down() == 0;
        h
    }

    /// `cluster status`: nodes and health.
    pub fn cluster_status(&self) -> ClusterStatus {
        let meta = self.meta();
        ClusterStatus {
            cluster_id: self.cluster_id.clone(),
            nodes: self.nodes(&meta),
            health: self.health(&meta),
        }
    }

    /// Admits a new node: gives it an id and the controller's members to follow.
    pub async fn join_node(&self, req: JoinRequest) -> Result<Joined, BrokerError> {
        if req.incarnation == 0 {
            return Err(BrokerError::invalid("incarnation", "must not be 0"));
        }
        for (field, v) in [
            ("client_addr", &req.client_addr),
            ("peer_addr", &req.peer_addr),
        ] {
            if v.parse::<std::net::SocketAddr>().is_err() && !v.contains(':') {
                return Err(BrokerError::invalid(
                    field,
                    format!("{v:?} is not HOST:PORT"),
                ));
            }
        }
        let cmd = Command::JoinNode {
            meta: NodeMeta {
                incarnation: req.incarnation,
                client_addr: req.client_addr,
                peer_addr: req.peer_addr,
                http_addr: req.http_addr,
                state: NodeState::Active,
                boot: 0,
            },
        };
        let o = self.propose(&cmd).await?;
        let Outcome::NodeId(node_id) = o else {
            return Err(BrokerError::Internal(format!("unexpected outcome {o:?}")));
        };
        let controller_voters = self
            .controller
            .partition()
            .map(|p| p.status().members.into_iter().collect())
            .unwrap_or_default();
        Ok(Joined {
            cluster_id: self.cluster_id.clone(),
            node_id,
            controller_voters,
        })
    }

    /// Starts the replica moves that even out the load; returns how many started.
    pub async fn rebalance(&self) -> Result<u32, BrokerError> {
        let plan = self.meta().plan_rebalance();
        let mut started = 0;
        for (topic, partition, target) in plan {
            let cmd = Command::StartMove {
                topic,
                partition,
                target,
            };
            match self
                .controller
                .propose(&cmd, self.config.admin_patience)
                .await
            {
                Ok(_) => started += 1,
                Err(ControllerError::Refused(r)) => {
                    tracing::info!(reason = %r, "move not started");
                }
                Err(e) => return Err(self.controller_error(e)),
            }
        }
        Ok(started)
    }

    /// Marks a node for removal and starts moving its replicas away; returns how many moves
    /// started.
    pub async fn decommission(&self, node_id: u64) -> Result<u32, BrokerError> {
        self.propose(&Command::Decommission { node_id }).await?;
        self.rebalance().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(value_len: usize, timestamp: i64) -> NewRecord {
        NewRecord::new(timestamp, None, Some(Bytes::from(vec![7u8; value_len])))
    }

    /// Records are built into one batch whose offsets follow them; a timestamp of 0 becomes
    /// the broker's clock; an empty set and a record over the limit are refused, naming the
    /// field or the limit.
    #[test]
    fn records_are_encoded_within_the_topic_limit() {
        let before = now_ms();
        let b = encode_records(&[record(10, 0), record(10, 42)], 1 << 20).expect("encode");
        let batch = strata_record::Batch::parse(b.clone()).expect("a valid batch");
        let stamps: Vec<i64> = batch.records().map(|r| r.timestamp).collect();
        assert!(stamps[0] >= before, "{stamps:?}");
        assert_eq!(stamps[1], 42);
        assert_eq!(next_after(&[b], 0), 2);
        assert_eq!(next_after(&[], 9), 9);
        assert!(matches!(
            encode_records(&[], 1 << 20),
            Err(BrokerError::InvalidArgument { field, .. }) if field == "records"
        ));
        match encode_records(&[record(2000, 1)], 1024) {
            Err(BrokerError::MessageTooLarge {
                limit, limit_name, ..
            }) => {
                assert_eq!(limit, 1024);
                assert_eq!(limit_name, "max.message.bytes");
            }
            other => panic!("expected MessageTooLarge, got {other:?}"),
        }
    }

    /// Topic configs are applied over the defaults; an unknown key or a bad value names the
    /// config.
    #[test]
    fn configs_apply_over_defaults_and_name_bad_keys() {
        let base = TopicConfig::default();
        let set = BTreeMap::from([("retention.ms".to_string(), "1000".to_string())]);
        let c = parse_configs(base.clone(), &set).expect("valid");
        assert_eq!(c.retention_ms, 1000);
        let bad = BTreeMap::from([("no.such".to_string(), "1".to_string())]);
        assert!(matches!(
            parse_configs(base, &bad),
            Err(BrokerError::InvalidArgument { field, .. }) if field == "configs[no.such]"
        ));
    }
}
