//! The cluster metadata the controller group replicates, and the commands that change it.
//!
//! [`ClusterMeta::apply`] is deterministic: every node applies the same commands in the same
//! order and ends with the same state. Checks that depend on the state (a topic exists, enough
//! nodes) are made here, at apply time, so two racing proposals cannot both succeed.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use strata_raft::GroupId;

mod config;
pub use config::{MESSAGE_BYTES_LIMIT, TOPIC_CONFIG_KEYS, TopicConfig, check_topic_name};

/// A node's id: the one definition, strata-raft's (see [`strata_raft::types::NodeId`] for why
/// it is a plain `u64`).
pub use strata_raft::types::NodeId;

/// Where a node is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum NodeState {
    /// Takes replicas.
    Active,
    /// Its replicas are being moved away; takes no new ones.
    Decommissioning,
}

impl NodeState {
    /// The name shown in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeState::Active => "ACTIVE",
            NodeState::Decommissioning => "DECOMMISSIONING",
        }
    }
}

/// A registered node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeMeta {
    /// Its incarnation: a node restarted from a wiped data directory has another one and is
    /// refused under this id.
    pub incarnation: u64,
    /// Client API address.
    pub client_addr: String,
    /// Peer (Raft) address.
    pub peer_addr: String,
    /// HTTP address.
    pub http_addr: String,
    /// Kafka listener address (empty: the node runs none).
    #[serde(default)]
    pub kafka_addr: String,
    /// Life state.
    pub state: NodeState,
    /// Random per process start: a node knows its metadata caught up with its registration
    /// once it sees its own `boot`.
    #[serde(default)]
    pub boot: u64,
}

/// One partition's placement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionMeta {
    /// Its Raft group id (unique in the cluster, never reused).
    pub group_id: GroupId,
    /// Replica nodes; the first is the preferred leader.
    pub replicas: Vec<NodeId>,
    /// The replica set the group was created with (its first membership; these replicas
    /// initialize the group).
    pub initial: Vec<NodeId>,
    /// While a move is in progress: the replica set being moved to (learners catch up, then
    /// the voters change, then `replicas` becomes this).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<Vec<NodeId>>,
}

/// A topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicMeta {
    /// Its id (a UUID, never reused: directories and groups are keyed by it).
    pub id: String,
    /// Replication factor.
    pub replication_factor: u32,
    /// Configs.
    pub config: TopicConfig,
    /// Partitions, by number.
    pub partitions: Vec<PartitionMeta>,
}

/// Everything the controller holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterMeta {
    /// Registered nodes.
    pub nodes: BTreeMap<NodeId, NodeMeta>,
    /// Topics by name.
    pub topics: BTreeMap<String, TopicMeta>,
    /// Ids of deleted topics (their directories are removed wherever found).
    pub deleted_topics: BTreeSet<String>,
    /// The next Raft group id to give out (0 is the controller).
    pub next_group_id: GroupId,
    /// The next producer id to give out.
    pub next_producer_id: i64,
    /// Node ids given out so far (a removed node's id is never reused).
    pub max_node_id: NodeId,
}

/// A change to the metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// A node announces its addresses and incarnation (every start).
    RegisterNode {
        /// The node.
        node_id: NodeId,
        /// Its registration.
        meta: NodeMeta,
    },
    /// A new node asks for an id (`--join`).
    JoinNode {
        /// Its registration (state is ignored: a new node is active).
        meta: NodeMeta,
    },
    /// Creates a topic.
    CreateTopic {
        /// Name (checked by the proposer).
        name: String,
        /// A fresh UUID.
        id: String,
        /// Partitions.
        partitions: u32,
        /// Replication factor.
        replication_factor: u32,
        /// Configs.
        config: TopicConfig,
    },
    /// Deletes a topic.
    DeleteTopic {
        /// Name.
        name: String,
        /// The id of the topic meant. A proposal whose outcome was uncertain is retried, and
        /// the retry must not delete a topic recreated under the same name in between: with an
        /// id, a topic of that name but another id is refused as unknown. (Absent in entries
        /// written before ids were carried: those delete by name.)
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
    },
    /// Grows a topic's partition count.
    AddPartitions {
        /// Name.
        name: String,
        /// The new total.
        partitions: u32,
    },
    /// Replaces a topic's configs.
    SetTopicConfig {
        /// Name.
        name: String,
        /// The whole new config.
        config: TopicConfig,
    },
    /// Gives out a producer id.
    AllocateProducerId,
    /// Starts moving a partition to another replica set.
    StartMove {
        /// Topic.
        topic: String,
        /// Partition.
        partition: u32,
        /// The replica set to reach.
        target: Vec<NodeId>,
    },
    /// A move finished: the group's voters are `target`.
    FinishMove {
        /// Topic.
        topic: String,
        /// Partition.
        partition: u32,
        /// Group (guards against a recreated topic of the same name).
        group_id: GroupId,
    },
    /// Marks a node as being emptied.
    Decommission {
        /// The node.
        node_id: NodeId,
    },
}

/// What applying a command produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// Done.
    Ok,
    /// A node id was given out.
    NodeId(NodeId),
    /// A producer id was given out.
    ProducerId(i64),
    /// The command was refused; nothing changed.
    Refused(Refusal),
}

/// Why a command was refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum Refusal {
    /// The topic exists.
    #[error("topic {0:?} already exists")]
    TopicExists(String),
    /// No such topic.
    #[error("unknown topic {0:?}")]
    UnknownTopic(String),
    /// No such node.
    #[error("unknown node {0}")]
    UnknownNode(NodeId),
    /// Not enough active nodes for the replication factor.
    #[error("replication factor {wanted} is larger than the {active} active nodes")]
    NotEnoughNodes {
        /// Replication factor asked for.
        wanted: u32,
        /// Active nodes.
        active: u32,
    },
    /// Another node with this id is registered with another incarnation (its data directory
    /// was wiped): it must join as a new node.
    #[error(
        "node {node_id} is registered with incarnation {registered}, not {offered}: a node whose \
         data directory was wiped cannot rejoin under its old id; start it with an empty data \
         directory and --join to add it as a new node"
    )]
    IncarnationMismatch {
        /// The node id.
        node_id: NodeId,
        /// Registered incarnation.
        registered: u64,
        /// Offered incarnation.
        offered: u64,
    },
    /// The request is not valid in this state.
    #[error("{0}")]
    Invalid(String),
}

impl ClusterMeta {
    /// Active nodes, by id.
    pub fn active_nodes(&self) -> Vec<NodeId> {
        self.nodes
            .iter()
            .filter(|(_, n)| n.state == NodeState::Active)
            .map(|(id, _)| *id)
            .collect()
    }

    /// How many replicas each node holds (counting move targets).
    fn replica_counts(&self) -> BTreeMap<NodeId, (usize, usize)> {
        let mut counts: BTreeMap<NodeId, (usize, usize)> =
            self.nodes.keys().map(|id| (*id, (0, 0))).collect();
        for t in self.topics.values() {
            for p in &t.partitions {
                let set = p.target.as_ref().unwrap_or(&p.replicas);
                for (i, n) in set.iter().enumerate() {
                    let c = counts.entry(*n).or_default();
                    c.0 += 1;
                    if i == 0 {
                        c.1 += 1;
                    }
                }
            }
        }
        counts
    }

    /// Places `count` new partitions of `rf` replicas on the active nodes: each partition on
    /// the least loaded nodes, its preferred leader the node leading fewest partitions.
    fn place(&self, count: u32, rf: u32) -> Result<Vec<Vec<NodeId>>, Refusal> {
        let active = self.active_nodes();
        if rf == 0 || rf as usize > active.len() {
            return Err(Refusal::NotEnoughNodes {
                wanted: rf,
                active: active.len() as u32,
            });
        }
        let mut counts = self.replica_counts();
        let mut out = Vec::with_capacity(count as usize);
        for _ in 0..count {
            let mut nodes = active.clone();
            nodes.sort_by_key(|n| (counts.get(n).map_or(0, |c| c.0), *n));
            let mut chosen: Vec<NodeId> = nodes[..rf as usize].to_vec();
            chosen.sort_by_key(|n| (counts.get(n).map_or(0, |c| c.1), *n));
            for (i, n) in chosen.iter().enumerate() {
                let c = counts.entry(*n).or_default();
                c.0 += 1;
                if i == 0 {
                    c.1 += 1;
                }
            }
            out.push(chosen);
        }
        Ok(out)
    }

    /// The topic and partition of a group, if it exists.
    pub fn find_group(&self, group_id: GroupId) -> Option<(&str, u32, &TopicMeta, &PartitionMeta)> {
        self.topics.iter().find_map(|(name, t)| {
            t.partitions
                .iter()
                .enumerate()
                .find(|(_, p)| p.group_id == group_id)
                .map(|(i, p)| (name.as_str(), i as u32, t, p))
        })
    }

    /// Applies a command (deterministically).
    pub fn apply(&mut self, cmd: &Command) -> Outcome {
        match self.try_apply(cmd) {
            Ok(o) => o,
            Err(r) => Outcome::Refused(r),
        }
    }

    fn try_apply(&mut self, cmd: &Command) -> Result<Outcome, Refusal> {
        if self.next_group_id == GroupId::new(0) {
            // Group 0 is the controller.
            self.next_group_id = GroupId::new(1);
        }
        match cmd {
            Command::RegisterNode { node_id, meta } => {
                let mut meta = meta.clone();
                if let Some(old) = self.nodes.get(node_id) {
                    if old.incarnation != meta.incarnation {
                        return Err(Refusal::IncarnationMismatch {
                            node_id: *node_id,
                            registered: old.incarnation,
                            offered: meta.incarnation,
                        });
                    }
                    meta.state = old.state;
                } else {
                    meta.state = NodeState::Active;
                }
                self.max_node_id = self.max_node_id.max(*node_id);
                self.nodes.insert(*node_id, meta);
                Ok(Outcome::Ok)
            }
            Command::JoinNode { meta } => {
                if let Some((id, _)) = self
                    .nodes
                    .iter()
                    .find(|(_, n)| n.incarnation == meta.incarnation)
                {
                    // A retried join of the same node.
                    return Ok(Outcome::NodeId(*id));
                }
                let id = self.max_node_id + 1;
                self.max_node_id = id;
                let mut meta = meta.clone();
                meta.state = NodeState::Active;
                self.nodes.insert(id, meta);
                Ok(Outcome::NodeId(id))
            }
            Command::CreateTopic {
                name,
                id,
                partitions,
                replication_factor,
                config,
            } => {
                if self.topics.contains_key(name) {
                    return Err(Refusal::TopicExists(name.clone()));
                }
                let placed = self.place(*partitions, *replication_factor)?;
                let partitions = placed
                    .into_iter()
                    .map(|replicas| {
                        let group_id = self.next_group_id;
                        self.next_group_id = group_id.next();
                        PartitionMeta {
                            group_id,
                            initial: replicas.clone(),
                            replicas,
                            target: None,
                        }
                    })
                    .collect();
                self.topics.insert(
                    name.clone(),
                    TopicMeta {
                        id: id.clone(),
                        replication_factor: *replication_factor,
                        config: config.clone(),
                        partitions,
                    },
                );
                Ok(Outcome::Ok)
            }
            Command::DeleteTopic { name, id } => {
                match (self.topics.get(name), id) {
                    (None, _) => return Err(Refusal::UnknownTopic(name.clone())),
                    (Some(t), Some(id)) if t.id != *id => {
                        return Err(Refusal::UnknownTopic(format!("{name} (id {id})")));
                    }
                    _ => {}
                }
                let t = self
                    .topics
                    .remove(name)
                    .ok_or_else(|| Refusal::UnknownTopic(name.clone()))?;
                self.deleted_topics.insert(t.id);
                Ok(Outcome::Ok)
            }
            Command::AddPartitions { name, partitions } => {
                let t = self
                    .topics
                    .get(name)
                    .ok_or_else(|| Refusal::UnknownTopic(name.clone()))?;
                let have = t.partitions.len() as u32;
                if *partitions <= have {
                    return Err(Refusal::Invalid(format!(
                        "topic {name:?} has {have} partitions; the new count must be larger, got {partitions}"
                    )));
                }
                let placed = self.place(partitions - have, t.replication_factor)?;
                let mut added = Vec::new();
                for replicas in placed {
                    let group_id = self.next_group_id;
                    self.next_group_id = group_id.next();
                    added.push(PartitionMeta {
                        group_id,
                        initial: replicas.clone(),
                        replicas,
                        target: None,
                    });
                }
                if let Some(t) = self.topics.get_mut(name) {
                    t.partitions.extend(added);
                }
                Ok(Outcome::Ok)
            }
            Command::SetTopicConfig { name, config } => {
                let t = self
                    .topics
                    .get_mut(name)
                    .ok_or_else(|| Refusal::UnknownTopic(name.clone()))?;
                t.config = config.clone();
                Ok(Outcome::Ok)
            }
            Command::AllocateProducerId => {
                let id = self.next_producer_id;
                self.next_producer_id += 1;
                Ok(Outcome::ProducerId(id))
            }
            Command::StartMove {
                topic,
                partition,
                target,
            } => {
                for n in target {
                    if self.nodes.get(n).map(|m| m.state) != Some(NodeState::Active) {
                        return Err(Refusal::Invalid(format!("node {n} is not an active node")));
                    }
                }
                let distinct: BTreeSet<_> = target.iter().collect();
                if target.is_empty() || distinct.len() != target.len() {
                    return Err(Refusal::Invalid(format!("invalid replica set {target:?}")));
                }
                let p = self
                    .topics
                    .get_mut(topic)
                    .ok_or_else(|| Refusal::UnknownTopic(topic.clone()))?
                    .partitions
                    .get_mut(*partition as usize)
                    .ok_or_else(|| {
                        Refusal::Invalid(format!("topic {topic:?} has no partition {partition}"))
                    })?;
                if p.target.is_some() {
                    return Err(Refusal::Invalid(format!(
                        "partition {topic}/{partition} is already moving"
                    )));
                }
                if p.replicas != *target {
                    p.target = Some(target.clone());
                }
                Ok(Outcome::Ok)
            }
            Command::FinishMove {
                topic,
                partition,
                group_id,
            } => {
                let p = self
                    .topics
                    .get_mut(topic)
                    .and_then(|t| t.partitions.get_mut(*partition as usize))
                    .filter(|p| p.group_id == *group_id)
                    .ok_or_else(|| Refusal::UnknownTopic(topic.clone()))?;
                if let Some(t) = p.target.take() {
                    p.replicas = t;
                }
                Ok(Outcome::Ok)
            }
            Command::Decommission { node_id } => {
                let n = self
                    .nodes
                    .get_mut(node_id)
                    .ok_or(Refusal::UnknownNode(*node_id))?;
                n.state = NodeState::Decommissioning;
                Ok(Outcome::Ok)
            }
        }
    }

    /// Moves that bring every active node to an even share of replicas and preferred
    /// leaders, and take every replica off decommissioning nodes: `(topic, partition, target)`.
    /// Partitions already moving are left alone.
    pub fn plan_rebalance(&self) -> Vec<(String, u32, Vec<NodeId>)> {
        let active = self.active_nodes();
        if active.is_empty() {
            return Vec::new();
        }
        let mut counts = self.replica_counts();
        for n in self.nodes.keys() {
            if !active.contains(n) {
                counts.remove(n);
            }
        }
        let total: usize = self
            .topics
            .values()
            .flat_map(|t| t.partitions.iter())
            .map(|p| p.target.as_ref().unwrap_or(&p.replicas).len())
            .sum();
        let ceil = total.div_ceil(active.len());
        let mut moves = Vec::new();
        for (name, t) in &self.topics {
            for (i, p) in t.partitions.iter().enumerate() {
                if p.target.is_some() {
                    continue;
                }
                let mut target = p.replicas.clone();
                let mut changed = false;
                for slot in 0..target.len() {
                    let n = target[slot];
                    let overloaded = counts.get(&n).is_none_or(|c| c.0 > ceil);
                    if !overloaded {
                        continue;
                    }
                    let candidate = active
                        .iter()
                        .filter(|c| !target.contains(c))
                        .min_by_key(|c| (counts.get(c).map_or(0, |x| x.0), **c))
                        .copied();
                    let Some(c) = candidate else { continue };
                    let c_count = counts.get(&c).map_or(0, |x| x.0);
                    let from_gone = !counts.contains_key(&n);
                    if !from_gone && c_count + 1 >= counts.get(&n).map_or(0, |x| x.0) {
                        continue;
                    }
                    if let Some(x) = counts.get_mut(&n) {
                        x.0 -= 1;
                    }
                    counts.entry(c).or_default().0 += 1;
                    target[slot] = c;
                    changed = true;
                }
                if changed {
                    moves.push((name.clone(), i as u32, target));
                }
            }
        }
        moves
    }
}

#[cfg(test)]
mod tests;
