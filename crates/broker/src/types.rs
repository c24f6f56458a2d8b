//! The values the broker takes and returns.

use bytes::Bytes;
use std::collections::BTreeMap;
pub use strata_cluster::meta::{NodeState, Refusal, TopicConfig, check_topic_name};
pub use strata_raft::GroupId;
pub use strata_raft::partition::{Acks, Fetched};
pub use strata_record::NewRecord;

/// A node as the metadata lists it, and whether this node hears from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeView {
    /// Its id.
    pub node_id: u64,
    /// Where clients reach it.
    pub client_addr: String,
    /// Where peers reach it.
    pub peer_addr: String,
    /// Its health and metrics listener.
    pub http_addr: String,
    /// Its Kafka listener (empty: it runs none).
    pub kafka_addr: String,
    /// Active, decommissioning or removed.
    pub state: NodeState,
    /// Heard from within an election timeout (this node is always alive to itself).
    pub alive: bool,
}

/// One partition as this node sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionView {
    /// Its number.
    pub partition: u32,
    /// Its leader (0 when unknown); from the local replica, else another node's hint, else
    /// the preferred replica.
    pub leader_id: u64,
    /// The nodes assigned to hold it.
    pub replicas: Vec<u64>,
    /// The Raft voters (the replicas when not hosted here).
    pub voters: Vec<u64>,
    /// The leader's term (0 when unknown).
    pub leader_term: u64,
    /// The high watermark, or -1 when no replica is hosted here.
    pub high_watermark: i64,
    /// Its Raft group (`grpc::convert` in strata-node puts the plain number on the wire).
    pub group_id: GroupId,
}

/// One topic as this node sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicView {
    /// Its name.
    pub name: String,
    /// Its id (never reused).
    pub topic_id: String,
    /// Its partitions, in order.
    pub partitions: Vec<PartitionView>,
    /// Replicas per partition.
    pub replication_factor: u32,
    /// Its configuration, every key.
    pub configs: BTreeMap<String, String>,
}

/// What a metadata request answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata {
    /// The cluster's id.
    pub cluster_id: String,
    /// The controller's leader (0 when unknown).
    pub controller_id: u64,
    /// Every node.
    pub nodes: Vec<NodeView>,
    /// The topics asked for that exist (all of them when none were named).
    pub topics: Vec<TopicView>,
    /// The topics asked for that do not exist.
    pub unknown_topics: Vec<String>,
}

/// The cluster's health as this node sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Health {
    /// The controller's leader (0 when unknown).
    pub controller_id: u64,
    /// Partitions of all topics.
    pub partitions: u32,
    /// Partitions without a known leader.
    pub leaderless: u32,
    /// Partitions with a replica missing, silent or moving.
    pub under_replicated: u32,
    /// Replica moves in progress.
    pub moves: u32,
    /// A controller leader, every active node alive, nothing leaderless or under-replicated,
    /// no replica of this node down.
    pub healthy: bool,
}

/// `cluster status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterStatus {
    /// The cluster's id.
    pub cluster_id: String,
    /// Every node.
    pub nodes: Vec<NodeView>,
    /// The health summary.
    pub health: Health,
}

/// Where a read starts, or which offset a lookup names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    /// The first offset still stored.
    Earliest,
    /// The high watermark.
    Latest,
    /// This offset.
    Offset(i64),
    /// The first record at or after this time (ms since the Unix epoch); the high watermark
    /// when there is none.
    Timestamp(i64),
}

/// What a producer sends.
#[derive(Debug, Clone)]
pub enum ProducePayload {
    /// A record batch built by the client (Kafka's RecordBatch v2).
    Batch(Bytes),
    /// Records the broker builds into one batch.
    Records(Vec<NewRecord>),
}

/// A produce acknowledgement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Produced {
    /// The batch's first offset (`None` with [`Acks::None`]).
    pub base_offset: Option<i64>,
    /// Records in the batch.
    pub record_count: u32,
}

/// The bounds of a partition with the offset a lookup resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Offsets {
    /// The offset the position resolved to.
    pub offset: i64,
    /// The first offset stored.
    pub log_start_offset: i64,
    /// The high watermark.
    pub high_watermark: i64,
}

/// One chunk of a subscription: the batches read from `from`, and where the next read
/// starts.
#[derive(Debug, Clone)]
pub struct Chunk {
    /// What was read.
    pub fetched: Fetched,
    /// The offset the read asked for.
    pub from: i64,
    /// The offset after the last record of the chunk.
    pub next_offset: i64,
}

/// A node asking to join.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinRequest {
    /// The joining process's random incarnation (not 0).
    pub incarnation: u64,
    /// Its client address (HOST:PORT).
    pub client_addr: String,
    /// Its peer address (HOST:PORT).
    pub peer_addr: String,
    /// Its HTTP address.
    pub http_addr: String,
}

/// The answer to a join.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined {
    /// The cluster's id.
    pub cluster_id: String,
    /// The id given to the node.
    pub node_id: u64,
    /// The controller's members (id to peer address), to follow it.
    pub controller_voters: BTreeMap<u64, String>,
}

/// What a group heartbeat answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupAssignment {
    /// The member's id.
    pub member_id: String,
    /// Its epoch (-1 after a leave).
    pub member_epoch: i64,
    /// When to heartbeat next.
    pub heartbeat_interval_ms: u32,
    /// What it may read now: topic name and partition (by topic id).
    pub partitions: Vec<(String, strata_groups::TopicPartition)>,
}

/// A committed offset, with its topic's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedView {
    /// The topic's name.
    pub topic: String,
    /// The topic's id.
    pub topic_id: String,
    /// The partition.
    pub partition: u32,
    /// The next offset to read.
    pub offset: i64,
    /// The committer's metadata.
    pub metadata: String,
    /// When the coordinator accepted it (ms since the Unix epoch).
    pub commit_ms: u64,
}

/// A group member as `describe` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberView {
    /// Its id.
    pub member_id: String,
    /// The client's id.
    pub client_id: String,
    /// The client's address.
    pub host: String,
    /// Its epoch.
    pub member_epoch: u64,
    /// What it holds (topic name, partition).
    pub owned: Vec<(String, strata_groups::TopicPartition)>,
    /// What the assignor gives it.
    pub target: Vec<(String, strata_groups::TopicPartition)>,
    /// Its subscription's topics.
    pub topics: Vec<String>,
    /// Its subscription's pattern.
    pub pattern: Option<String>,
}

/// A group as `describe` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupView {
    /// The group.
    pub name: String,
    /// `stable`, `reconciling` or `empty`.
    pub state: &'static str,
    /// The group epoch.
    pub epoch: u64,
    /// The coordinator's node.
    pub coordinator_id: u64,
    /// Its members.
    pub members: Vec<MemberView>,
    /// Its committed offsets.
    pub offsets: Vec<CommittedView>,
}

/// A group in a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSummary {
    /// The group.
    pub name: String,
    /// `stable`, `reconciling` or `empty`.
    pub state: &'static str,
    /// How many members.
    pub members: u32,
    /// The coordinator's node.
    pub coordinator_id: u64,
    /// A Kafka classic group's protocol type (`consumer`); empty for a native group.
    pub protocol_type: String,
}
