//! Cluster descriptions returned by [`crate::Client::metadata`] and [`crate::Admin`]: plain
//! structs (serializable, for the CLI's JSON output), converted from the prost messages here
//! and nowhere else.

use std::collections::BTreeMap;

use serde::Serialize;
use strata_proto::v1 as pb;

/// A node of the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeDescription {
    /// Node id.
    pub node_id: u64,
    /// Client API address (host:port): where producers and consumers connect.
    pub client_addr: String,
    /// Peer (Raft) address.
    pub peer_addr: String,
    /// HTTP address (metrics, health).
    pub http_addr: String,
    /// `ACTIVE`, `DECOMMISSIONING` or `REMOVED`.
    pub state: String,
    /// Whether the answering node heard from this node recently.
    pub alive: bool,
}

/// One partition's placement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartitionDescription {
    /// Partition number.
    pub partition: u32,
    /// The leader's node id, if the answering node knows it.
    pub leader_id: Option<u64>,
    /// Replica node ids; the first is the preferred leader.
    pub replicas: Vec<u64>,
    /// Replicas in the partition's current voter set.
    pub voters: Vec<u64>,
    /// The leader's term, if known.
    pub leader_term: Option<u64>,
    /// High watermark, if the answering node hosts a replica.
    pub high_watermark: Option<i64>,
    /// Raft group id (internal).
    pub group_id: u64,
}

/// A topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TopicDescription {
    /// Name.
    pub name: String,
    /// Unique id (UUID text), never reused: a topic recreated under the same name has another.
    pub topic_id: String,
    /// Partitions, by number.
    pub partitions: Vec<PartitionDescription>,
    /// Replicas per partition.
    pub replication_factor: u32,
    /// Topic configs set on it (`retention.ms`, `retention.bytes`, `segment.bytes`,
    /// `max.message.bytes`).
    pub configs: BTreeMap<String, String>,
}

/// The answer to [`crate::Client::metadata`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClusterMetadata {
    /// The cluster id.
    pub cluster_id: String,
    /// The controller's leader, if known.
    pub controller_id: Option<u64>,
    /// Nodes.
    pub nodes: Vec<NodeDescription>,
    /// The topics asked for (all when none were named).
    pub topics: Vec<TopicDescription>,
    /// Names asked for that do not exist.
    pub unknown_topics: Vec<String>,
}

/// Cluster health, from [`crate::Admin::cluster_status`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClusterStatus {
    /// The cluster id.
    pub cluster_id: String,
    /// The controller's leader, if there is one.
    pub controller_id: Option<u64>,
    /// Nodes.
    pub nodes: Vec<NodeDescription>,
    /// Partitions in all.
    pub partitions: u32,
    /// Partitions whose leader is unknown to the answering node.
    pub leaderless: u32,
    /// Partitions whose voters are not all alive, or that are moving.
    pub under_replicated: u32,
    /// A controller leader, every node alive, no leaderless or under-replicated partition.
    pub healthy: bool,
    /// Replica moves in progress.
    pub moves_in_progress: u32,
}

/// `Some(v)` unless `v` is the proto's "unknown" value.
fn known<T: PartialEq>(value: T, unknown: T) -> Option<T> {
    (value != unknown).then_some(value)
}

impl From<pb::NodeInfo> for NodeDescription {
    fn from(n: pb::NodeInfo) -> Self {
        NodeDescription {
            node_id: n.node_id,
            client_addr: n.client_addr,
            peer_addr: n.peer_addr,
            http_addr: n.http_addr,
            state: n.state,
            alive: n.alive,
        }
    }
}

impl From<pb::PartitionInfo> for PartitionDescription {
    fn from(p: pb::PartitionInfo) -> Self {
        PartitionDescription {
            partition: p.partition,
            leader_id: known(p.leader_id, 0),
            replicas: p.replicas,
            voters: p.voters,
            leader_term: known(p.leader_term, 0),
            high_watermark: (p.high_watermark >= 0).then_some(p.high_watermark),
            group_id: p.group_id,
        }
    }
}

impl From<pb::TopicInfo> for TopicDescription {
    fn from(t: pb::TopicInfo) -> Self {
        let mut partitions: Vec<PartitionDescription> =
            t.partitions.into_iter().map(Into::into).collect();
        partitions.sort_by_key(|p| p.partition);
        TopicDescription {
            name: t.name,
            topic_id: t.topic_id,
            partitions,
            replication_factor: t.replication_factor,
            configs: t.configs.into_iter().collect(),
        }
    }
}

impl From<pb::MetadataResponse> for ClusterMetadata {
    fn from(m: pb::MetadataResponse) -> Self {
        ClusterMetadata {
            cluster_id: m.cluster_id,
            controller_id: known(m.controller_id, 0),
            nodes: m.nodes.into_iter().map(Into::into).collect(),
            topics: m.topics.into_iter().map(Into::into).collect(),
            unknown_topics: m.unknown_topics,
        }
    }
}

impl From<pb::ClusterStatusResponse> for ClusterStatus {
    fn from(s: pb::ClusterStatusResponse) -> Self {
        ClusterStatus {
            cluster_id: s.cluster_id,
            controller_id: known(s.controller_id, 0),
            nodes: s.nodes.into_iter().map(Into::into).collect(),
            partitions: s.partitions,
            leaderless: s.leaderless,
            under_replicated: s.under_replicated,
            healthy: s.healthy,
            moves_in_progress: s.moves_in_progress,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_values_become_none() {
        let p = PartitionDescription::from(pb::PartitionInfo {
            partition: 1,
            leader_id: 0,
            replicas: vec![1, 2],
            voters: vec![1, 2],
            leader_term: 0,
            high_watermark: -1,
            group_id: 9,
        });
        assert_eq!(p.leader_id, None);
        assert_eq!(p.leader_term, None);
        assert_eq!(p.high_watermark, None);
        let t = TopicDescription::from(pb::TopicInfo {
            name: "t".into(),
            topic_id: "id".into(),
            partitions: vec![
                pb::PartitionInfo {
                    partition: 1,
                    ..Default::default()
                },
                pb::PartitionInfo {
                    partition: 0,
                    leader_id: 3,
                    ..Default::default()
                },
            ],
            replication_factor: 3,
            configs: [("retention.ms".to_string(), "1000".to_string())].into(),
        });
        assert_eq!(t.partitions[0].partition, 0);
        assert_eq!(t.partitions[0].leader_id, Some(3));
        assert_eq!(t.configs["retention.ms"], "1000");
    }
}
