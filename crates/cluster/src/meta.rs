//! The cluster metadata the controller group replicates, and the commands that change it.
//!
//! [`ClusterMeta::apply`] is deterministic: every node applies the same commands in the same
//! order and ends with the same state. Checks that depend on the state (a topic exists, enough
//! nodes) are made here, at apply time, so two racing proposals cannot both succeed.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// A node's id.
pub type NodeId = u64;

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
    pub group_id: u64,
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

/// Topic configs (Kafka's names in the API).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicConfig {
    /// `retention.ms`: records older than this may be deleted; -1 keeps them forever.
    pub retention_ms: i64,
    /// `retention.bytes`: a partition larger than this drops its oldest segments; -1: no limit.
    pub retention_bytes: i64,
    /// `segment.bytes`: a segment rolls at this size.
    pub segment_bytes: u64,
    /// `max.message.bytes`: the largest batch a producer may send.
    pub max_message_bytes: u32,
}

impl Default for TopicConfig {
    fn default() -> TopicConfig {
        TopicConfig {
            retention_ms: 7 * 24 * 3600 * 1000,
            retention_bytes: -1,
            segment_bytes: 1 << 30,
            max_message_bytes: 1 << 20,
        }
    }
}

/// The largest `max.message.bytes` (8 MiB): a log entry and a peer message hold at most 16
/// MiB, and a batch must fit with room to spare.
pub const MESSAGE_BYTES_LIMIT: u32 = 8 << 20;

/// The config keys a topic accepts.
pub const TOPIC_CONFIG_KEYS: &[&str] = &[
    "retention.ms",
    "retention.bytes",
    "segment.bytes",
    "max.message.bytes",
];

impl TopicConfig {
    /// Sets one config from its Kafka name; the error names the key and the rule.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        let int = |v: &str| {
            v.trim()
                .parse::<i64>()
                .map_err(|_| format!("{key} must be an integer, got {value:?}"))
        };
        match key {
            "retention.ms" => {
                let v = int(value)?;
                if v < -1 || v == 0 {
                    return Err(format!("retention.ms must be -1 or positive, got {v}"));
                }
                self.retention_ms = v;
            }
            "retention.bytes" => {
                let v = int(value)?;
                if v < -1 || v == 0 {
                    return Err(format!("retention.bytes must be -1 or positive, got {v}"));
                }
                self.retention_bytes = v;
            }
            "segment.bytes" => {
                let v = int(value)?;
                if !(1 << 20..=1 << 32).contains(&v) {
                    return Err(format!(
                        "segment.bytes must be between 1048576 and 4294967296, got {v}"
                    ));
                }
                self.segment_bytes = v as u64;
            }
            "max.message.bytes" => {
                let v = int(value)?;
                if !(1024..=i64::from(MESSAGE_BYTES_LIMIT)).contains(&v) {
                    return Err(format!(
                        "max.message.bytes must be between 1024 and {MESSAGE_BYTES_LIMIT}, got {v}"
                    ));
                }
                self.max_message_bytes = v as u32;
            }
            _ => {
                return Err(format!(
                    "unknown topic config {key:?} (known: {})",
                    TOPIC_CONFIG_KEYS.join(", ")
                ));
            }
        }
        Ok(())
    }

    /// The configs as Kafka names and values.
    pub fn to_map(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("retention.ms".into(), self.retention_ms.to_string()),
            ("retention.bytes".into(), self.retention_bytes.to_string()),
            ("segment.bytes".into(), self.segment_bytes.to_string()),
            (
                "max.message.bytes".into(),
                self.max_message_bytes.to_string(),
            ),
        ])
    }
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
    pub next_group_id: u64,
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
        group_id: u64,
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
    pub fn find_group(&self, group_id: u64) -> Option<(&str, u32, &TopicMeta, &PartitionMeta)> {
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
        if self.next_group_id == 0 {
            // Group 0 is the controller.
            self.next_group_id = 1;
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
                        self.next_group_id += 1;
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
                    self.next_group_id += 1;
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

/// Checks a topic name against Kafka's rules: 1 to 249 characters of ASCII letters, digits,
/// '.', '_' and '-', and not "." or "..". The error says which rule failed.
pub fn check_topic_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("topic name is empty".into());
    }
    if name.len() > 249 {
        return Err(format!(
            "topic name is {} characters long; the limit is 249",
            name.len()
        ));
    }
    if name == "." || name == ".." {
        return Err(format!("topic name cannot be {name:?}"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "topic name {name:?} contains {c:?}; allowed are ASCII letters, digits, '.', '_' and '-'"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(inc: u64) -> NodeMeta {
        NodeMeta {
            incarnation: inc,
            client_addr: format!("c{inc}"),
            peer_addr: format!("p{inc}"),
            http_addr: format!("h{inc}"),
            state: NodeState::Active,
            boot: 0,
        }
    }

    fn three() -> ClusterMeta {
        let mut m = ClusterMeta::default();
        for id in 1..=3 {
            assert_eq!(
                m.apply(&Command::RegisterNode {
                    node_id: id,
                    meta: node(id * 10)
                }),
                Outcome::Ok
            );
        }
        m
    }

    fn create(m: &mut ClusterMeta, name: &str, p: u32, rf: u32) -> Outcome {
        m.apply(&Command::CreateTopic {
            name: name.into(),
            id: format!("id-{name}-{}", m.next_group_id),
            partitions: p,
            replication_factor: rf,
            config: TopicConfig::default(),
        })
    }

    #[test]
    fn placement_spreads_replicas_and_leaders() {
        let mut m = three();
        assert_eq!(create(&mut m, "t", 6, 3), Outcome::Ok);
        let t = &m.topics["t"];
        let mut leaders = BTreeMap::new();
        for p in &t.partitions {
            assert_eq!(p.replicas.len(), 3);
            *leaders.entry(p.replicas[0]).or_insert(0) += 1;
        }
        assert_eq!(leaders.values().copied().collect::<Vec<_>>(), vec![2, 2, 2]);
        let groups: BTreeSet<_> = t.partitions.iter().map(|p| p.group_id).collect();
        assert_eq!(groups.len(), 6);
        assert!(!groups.contains(&0));
    }

    #[test]
    fn delete_and_recreate_gets_new_id_and_groups() {
        let mut m = three();
        create(&mut m, "t", 2, 3);
        let old = m.topics["t"].clone();
        assert_eq!(
            create(&mut m, "t", 2, 3),
            Outcome::Refused(Refusal::TopicExists("t".into()))
        );
        assert_eq!(
            m.apply(&Command::DeleteTopic {
                name: "t".into(),
                id: None
            }),
            Outcome::Ok
        );
        assert!(m.deleted_topics.contains(&old.id));
        create(&mut m, "t", 2, 3);
        let new = &m.topics["t"];
        assert_ne!(new.id, old.id);
        for p in &new.partitions {
            assert!(old.partitions.iter().all(|o| o.group_id != p.group_id));
        }
    }

    /// Issue 8, item 6: the controller retries a proposal whose outcome was uncertain; by name
    /// alone, the retry deleted a topic recreated under the same name in between.
    #[test]
    fn a_retried_delete_does_not_delete_the_recreated_topic() {
        let mut m = three();
        create(&mut m, "t", 1, 3);
        let delete = Command::DeleteTopic {
            name: "t".into(),
            id: Some(m.topics["t"].id.clone()),
        };
        assert_eq!(m.apply(&delete), Outcome::Ok);
        create(&mut m, "t", 1, 3);
        let new_id = m.topics["t"].id.clone();
        assert!(matches!(
            m.apply(&delete),
            Outcome::Refused(Refusal::UnknownTopic(_))
        ));
        assert_eq!(m.topics["t"].id, new_id, "the recreated topic was deleted");
        // An entry written before ids were carried still deletes by name.
        let old: Command = serde_json::from_str(r#"{"DeleteTopic":{"name":"t"}}"#)
            .expect("an old delete entry decodes");
        assert_eq!(m.apply(&old), Outcome::Ok);
        assert!(!m.topics.contains_key("t"));
    }

    #[test]
    fn wiped_node_cannot_reregister() {
        let mut m = three();
        let r = m.apply(&Command::RegisterNode {
            node_id: 2,
            meta: node(99),
        });
        assert!(matches!(
            r,
            Outcome::Refused(Refusal::IncarnationMismatch { node_id: 2, .. })
        ));
        assert_eq!(
            m.apply(&Command::JoinNode { meta: node(99) }),
            Outcome::NodeId(4)
        );
        // A retried join answers the same id.
        assert_eq!(
            m.apply(&Command::JoinNode { meta: node(99) }),
            Outcome::NodeId(4)
        );
    }

    #[test]
    fn rf_above_active_nodes_is_refused() {
        let mut m = three();
        assert_eq!(
            create(&mut m, "t", 1, 4),
            Outcome::Refused(Refusal::NotEnoughNodes {
                wanted: 4,
                active: 3
            })
        );
        assert!(m.topics.is_empty());
    }

    #[test]
    fn rebalance_moves_onto_a_new_node_and_off_a_decommissioned_one() {
        let mut m = three();
        create(&mut m, "t", 8, 2);
        m.apply(&Command::JoinNode { meta: node(40) });
        let moves = m.plan_rebalance();
        assert!(!moves.is_empty());
        for (t, p, target) in &moves {
            m.apply(&Command::StartMove {
                topic: t.clone(),
                partition: *p,
                target: target.clone(),
            });
            let g = m.topics[t].partitions[*p as usize].group_id;
            m.apply(&Command::FinishMove {
                topic: t.clone(),
                partition: *p,
                group_id: g,
            });
        }
        let counts = m.replica_counts();
        assert!(counts[&4].0 >= 3, "{counts:?}");
        m.apply(&Command::Decommission { node_id: 1 });
        for (t, p, target) in m.plan_rebalance() {
            assert!(!target.contains(&1));
            m.apply(&Command::StartMove {
                topic: t.clone(),
                partition: p,
                target,
            });
            let g = m.topics[&t].partitions[p as usize].group_id;
            m.apply(&Command::FinishMove {
                topic: t,
                partition: p,
                group_id: g,
            });
        }
        for p in &m.topics["t"].partitions {
            assert!(!p.replicas.contains(&1), "{:?}", p.replicas);
        }
    }

    #[test]
    fn topic_names_follow_kafka_rules() {
        assert!(check_topic_name("orders.v1_a-b").is_ok());
        for bad in ["", ".", "..", "a/b", "../x", "a b", "é"] {
            assert!(check_topic_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_topic_name(&"a".repeat(250)).is_err());
    }

    #[test]
    fn topic_config_errors_name_the_key() {
        let mut c = TopicConfig::default();
        assert!(c.set("retention.ms", "1000").is_ok());
        let e = c.set("segment.bytes", "10").err().unwrap_or_default();
        assert!(e.contains("segment.bytes"), "{e}");
        let e = c.set("nope", "1").err().unwrap_or_default();
        assert!(e.contains("nope"), "{e}");
    }
}
