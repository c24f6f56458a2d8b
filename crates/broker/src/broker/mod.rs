//! [`Broker`]: the calls every protocol adapter makes. This module holds the broker, its
//! routing (which replica serves a partition, where its leader is), error mapping, metadata
//! and health; [`data`] the produce and fetch calls, [`admin`] the admin calls, [`groups`] the
//! consumer-group calls, [`queues`] the queue-group calls.

mod admin;
mod data;
mod groups;
mod queues;

pub use groups::{ClassicFailure, is_internal};
pub use queues::{
    LOCK_MS_MAX, ProduceLink, QueuePartitionView, RELEASE_DELAY_MS_MAX, SETTLE_ITEMS_MAX,
};

use crate::error::BrokerError;
use crate::types::{Health, Metadata, NodeView, PartitionView, TopicView};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use strata_cluster::controller::{Controller, ControllerError, LeaderHints};
use strata_cluster::meta::{ClusterMeta, NodeState, TopicConfig};
use strata_cluster::replicas::Replicas;
use strata_groups::Coordinators;
use strata_groups::queue::Queues;
use strata_raft::error::PartitionError;
use strata_raft::liveness::Liveness;
use strata_raft::partition::Partition;
use strata_record::sync::now_ms;

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
    /// Partitions of `__consumer_offsets` when a first group request creates it.
    pub group_offsets_partitions: u32,
    /// Segment size of `__consumer_offsets` (its coordinators compact it to its latest
    /// segment).
    pub group_offsets_segment_bytes: u64,
    /// Most records one consumer of a queue group may hold locked on one partition.
    pub queue_in_flight_max: u32,
    /// Most records of a partition between a queue group's settled prefix and the newest
    /// record it handed out (its replicated state is bounded by this).
    pub queue_window: u32,
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
    /// The group coordinators of the `__consumer_offsets` replicas hosted here.
    pub coordinators: Arc<Coordinators>,
    /// The queue engines of the data replicas hosted here.
    pub queues: Arc<Queues>,
    /// How dead letters reach a partition led by another node.
    pub produce_link: Option<Arc<dyn ProduceLink>>,
}

/// One node's broker.
pub struct Broker {
    node_id: u64,
    cluster_id: String,
    controller: Arc<Controller>,
    replicas: Arc<Replicas>,
    hints: Arc<LeaderHints>,
    liveness: Arc<Liveness>,
    coordinators: Arc<Coordinators>,
    queues: Arc<Queues>,
    produce_link: Option<Arc<dyn ProduceLink>>,
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
        // The replica cannot serve now (or a bug in it): reported as down, as before the
        // partition's errors were told apart.
        e @ (PartitionError::AlreadyInitialized
        | PartitionError::Corrupt { .. }
        | PartitionError::Storage { .. }
        | PartitionError::Closed
        | PartitionError::Stopped
        | PartitionError::MembershipRefused { .. }
        | PartitionError::InvalidConfig { .. }
        | PartitionError::Internal { .. }) => BrokerError::ReplicaDown {
            what,
            reason: e.to_string(),
        },
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
            coordinators: parts.coordinators,
            queues: parts.queues,
            produce_link: parts.produce_link,
            config,
            disk_free: AtomicU64::new(u64::MAX),
        }
    }

    /// The limits this broker enforces.
    pub fn config(&self) -> &BrokerConfig {
        &self.config
    }

    /// This node's id.
    pub fn node_id(&self) -> u64 {
        self.node_id
    }

    /// The name of the topic whose id is `topic_id`, if it exists.
    pub fn topic_name(&self, topic_id: &str) -> Option<String> {
        self.meta()
            .topics
            .iter()
            .find(|(_, t)| t.id == topic_id)
            .map(|(name, _)| name.clone())
    }

    /// The term of this node's replica of `topic`/`partition` (Kafka's leader epoch), if it
    /// hosts one.
    pub fn leader_epoch(&self, topic: &str, partition: u32) -> Option<u64> {
        self.partition(topic, partition)
            .ok()
            .map(|p| p.status().term)
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
                kafka_addr: n.kafka_addr.clone(),
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
}
