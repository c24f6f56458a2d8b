//! [`Groups`]: consumer-group calls (`strata.v1.Groups`): membership heartbeats for
//! [`crate::GroupConsumer`], committed offsets, and group administration.
//!
//! A group's requests go to its coordinator (the leader of its `__consumer_offsets`
//! partition). The first request goes to any node, which answers `NOT_LEADER` naming the
//! coordinator; the address is remembered per group, and a moved coordinator is followed the
//! same way. Unavailable nodes are retried with backoff within the request timeout.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use strata_proto::v1 as pb;
use strata_proto::v1::groups_client::GroupsClient;
use strata_record::sync::lock;
use tonic::transport::Channel;

use crate::client::{self, Client, RetryPolicy};
use crate::error::Error;
use crate::records::TopicPartition;

/// First wait before retrying a group request.
const BACKOFF: Duration = Duration::from_millis(20);
/// Longest wait between retries of a group request.
const BACKOFF_MAX: Duration = Duration::from_millis(500);

/// A committed offset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CommittedOffset {
    /// The partition.
    pub partition: TopicPartition,
    /// The next offset to read.
    pub offset: i64,
    /// The committer's metadata.
    pub metadata: String,
    /// When the coordinator accepted it (ms since the Unix epoch).
    pub commit_time_ms: i64,
}

/// A group member as [`Groups::describe`] shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemberDescription {
    /// Its id.
    pub member_id: String,
    /// The client's id.
    pub client_id: String,
    /// The client's address.
    pub host: String,
    /// Its epoch.
    pub member_epoch: i64,
    /// What it holds.
    pub owned: Vec<TopicPartition>,
    /// What the assignor gives it (differs from `owned` while partitions move).
    pub target: Vec<TopicPartition>,
    /// Its subscription's topics.
    pub topics: Vec<String>,
    /// Its subscription's pattern, if any.
    pub pattern: Option<String>,
}

/// A group: state, members, committed offsets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupDescription {
    /// The group.
    pub group: String,
    /// `stable`, `reconciling` (partitions moving) or `empty`.
    pub state: String,
    /// The group epoch.
    pub epoch: u64,
    /// The coordinator's node id.
    pub coordinator_id: u64,
    /// Its members.
    pub members: Vec<MemberDescription>,
    /// Its committed offsets.
    pub offsets: Vec<CommittedOffset>,
}

/// A group's lag on one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PartitionLag {
    /// The committed offset, if any.
    pub committed: Option<i64>,
    /// The log end offset (the high watermark).
    pub log_end: i64,
    /// Records left to read: `log_end - committed` (all of them without a commit: the log
    /// end minus the log start).
    pub lag: i64,
}

/// A group in a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupSummary {
    /// The group.
    pub group: String,
    /// `stable`, `reconciling` or `empty`.
    pub state: String,
    /// How many members.
    pub members: u32,
    /// The coordinator's node id.
    pub coordinator_id: u64,
}

/// What a heartbeat sends (see `GroupHeartbeatRequest` in `proto/strata/v1/groups.proto`).
#[derive(Debug, Clone, Default)]
pub(crate) struct HeartbeatRequest {
    pub(crate) group: String,
    pub(crate) member_id: String,
    pub(crate) member_epoch: i64,
    pub(crate) client_id: String,
    pub(crate) topics: Vec<String>,
    pub(crate) pattern: Option<String>,
    /// Held partitions: (topic, topic id, partition).
    pub(crate) owned: Vec<(String, String, u32)>,
    pub(crate) assignor: Option<String>,
    pub(crate) session_timeout: Duration,
    pub(crate) rebalance_timeout: Duration,
    /// `None`: the node's.
    pub(crate) heartbeat_interval: Option<Duration>,
}

/// What a heartbeat answers.
#[derive(Debug, Clone)]
pub(crate) struct HeartbeatAnswer {
    pub(crate) member_id: String,
    pub(crate) member_epoch: i64,
    pub(crate) interval: Duration,
    /// (topic, topic id, partition) the member may read.
    pub(crate) assignment: Vec<(String, String, u32)>,
}

fn flatten(list: Vec<pb::TopicPartitions>) -> Vec<(String, String, u32)> {
    list.into_iter()
        .flat_map(|t| {
            t.partitions
                .into_iter()
                .map(move |p| (t.topic.clone(), t.topic_id.clone(), p))
        })
        .collect()
}

fn partitions(list: Vec<pb::TopicPartitions>) -> Vec<TopicPartition> {
    flatten(list)
        .into_iter()
        .map(|(topic, _, p)| TopicPartition::new(topic, p))
        .collect()
}

fn committed(c: pb::CommittedOffset) -> CommittedOffset {
    CommittedOffset {
        partition: TopicPartition::new(c.topic, c.partition),
        offset: c.offset,
        metadata: c.metadata,
        commit_time_ms: c.commit_time_ms,
    }
}

fn millis(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}

/// Consumer-group calls; made by [`Client::groups`]. Cheap to clone (clones share the
/// coordinator addresses they learned).
#[derive(Debug, Clone)]
pub struct Groups {
    client: Client,
    /// The last known coordinator address of each group.
    coordinators: Arc<Mutex<HashMap<String, String>>>,
}

impl Groups {
    pub(crate) fn new(client: Client) -> Groups {
        Groups {
            client,
            coordinators: Arc::default(),
        }
    }

    /// Sends a request built by `op` to `group`'s coordinator, with retries.
    async fn call<T, F, Fut>(&self, group: &str, op: F) -> Result<T, Error>
    where
        F: Fn(GroupsClient<Channel>, Duration) -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        let timeout = self.client.config().request_timeout;
        let policy = RetryPolicy::within(timeout, BACKOFF, BACKOFF_MAX);
        let first = lock(&self.coordinators).get(group).cloned();
        let (client, op, known) = (&self.client, &op, &self.coordinators);
        client
            .any_node_call_from(policy, first, |addr| async move {
                let r = op(client.groups_stub(&addr)?, timeout).await;
                if r.is_ok() {
                    lock(known).insert(group.to_string(), addr);
                }
                r
            })
            .await
    }

    /// One heartbeat (a join with epoch 0, a leave with epoch -1).
    pub(crate) async fn heartbeat(&self, req: &HeartbeatRequest) -> Result<HeartbeatAnswer, Error> {
        let mut owned: BTreeMap<(&str, &str), Vec<u32>> = BTreeMap::new();
        for (topic, id, p) in &req.owned {
            owned.entry((topic, id)).or_default().push(*p);
        }
        let message = pb::GroupHeartbeatRequest {
            group: req.group.clone(),
            member_id: req.member_id.clone(),
            member_epoch: req.member_epoch,
            client_id: req.client_id.clone(),
            topics: req.topics.clone(),
            pattern: req.pattern.clone().unwrap_or_default(),
            owned: owned
                .into_iter()
                .map(|((topic, id), partitions)| pb::TopicPartitions {
                    topic: topic.to_string(),
                    topic_id: id.to_string(),
                    partitions,
                })
                .collect(),
            assignor: req.assignor.clone().unwrap_or_default(),
            session_timeout_ms: millis(req.session_timeout),
            rebalance_timeout_ms: millis(req.rebalance_timeout),
            heartbeat_interval_ms: req.heartbeat_interval.map_or(0, millis),
        };
        let r = self
            .call(&req.group, |mut stub, timeout| {
                let request = client::request(message.clone(), timeout);
                async move { Client::call(timeout, "Heartbeat", stub.heartbeat(request)).await }
            })
            .await?;
        Ok(HeartbeatAnswer {
            member_id: r.member_id,
            member_epoch: r.member_epoch,
            interval: Duration::from_millis(u64::from(r.heartbeat_interval_ms.max(10))),
            assignment: flatten(r.assignment),
        })
    }

    /// Commits `offsets` (the next offset to read, per partition) for a member, or, with an
    /// empty `member_id`, for a group without members. All or none; answered once replicated.
    pub(crate) async fn commit_as(
        &self,
        group: &str,
        member_id: &str,
        member_epoch: i64,
        offsets: &BTreeMap<TopicPartition, i64>,
    ) -> Result<(), Error> {
        let with: BTreeMap<TopicPartition, (i64, String)> = offsets
            .iter()
            .map(|(tp, o)| (tp.clone(), (*o, String::new())))
            .collect();
        self.commit_as_with(group, member_id, member_epoch, &with)
            .await
    }

    /// [`Groups::commit_as`] with a metadata string per partition (at most 4096 bytes).
    pub(crate) async fn commit_as_with(
        &self,
        group: &str,
        member_id: &str,
        member_epoch: i64,
        offsets: &BTreeMap<TopicPartition, (i64, String)>,
    ) -> Result<(), Error> {
        if offsets.is_empty() {
            return Ok(());
        }
        let message = pb::CommitOffsetsRequest {
            group: group.to_string(),
            member_id: member_id.to_string(),
            member_epoch: member_epoch.max(0),
            offsets: offsets
                .iter()
                .map(|(tp, (o, metadata))| pb::OffsetCommit {
                    topic: tp.topic.clone(),
                    partition: tp.partition,
                    offset: *o,
                    metadata: metadata.clone(),
                })
                .collect(),
        };
        self.call(group, |mut stub, timeout| {
            let request = client::request(message.clone(), timeout);
            async move { Client::call(timeout, "CommitOffsets", stub.commit_offsets(request)).await }
        })
        .await?;
        Ok(())
    }

    /// Commits `offsets` for `group` from outside its membership (a consumer that assigns
    /// partitions itself); refused (`GROUP_NOT_EMPTY`) while the group has members.
    pub async fn commit(
        &self,
        group: &str,
        offsets: &BTreeMap<TopicPartition, i64>,
    ) -> Result<(), Error> {
        self.commit_as(group, "", 0, offsets).await
    }

    /// [`Groups::commit`] with a metadata string per partition (at most 4096 bytes), kept
    /// with the offset and returned by [`Groups::committed`].
    pub async fn commit_with_metadata(
        &self,
        group: &str,
        offsets: &BTreeMap<TopicPartition, (i64, String)>,
    ) -> Result<(), Error> {
        self.commit_as_with(group, "", 0, offsets).await
    }

    /// `group`'s committed offsets for `topics` (all when empty).
    pub async fn committed(
        &self,
        group: &str,
        topics: &[String],
    ) -> Result<BTreeMap<TopicPartition, CommittedOffset>, Error> {
        let message = pb::FetchOffsetsRequest {
            group: group.to_string(),
            topics: topics.to_vec(),
        };
        let r = self
            .call(group, |mut stub, timeout| {
                let request = client::request(message.clone(), timeout);
                async move {
                    Client::call(timeout, "FetchOffsets", stub.fetch_offsets(request)).await
                }
            })
            .await?;
        Ok(r.offsets
            .into_iter()
            .map(committed)
            .map(|c| (c.partition.clone(), c))
            .collect())
    }

    /// One group: its state, members, what each holds and committed offsets
    /// (`UNKNOWN_GROUP` if it does not exist).
    pub async fn describe(&self, group: &str) -> Result<GroupDescription, Error> {
        let message = pb::DescribeGroupRequest {
            group: group.to_string(),
        };
        let g = self
            .call(group, |mut stub, timeout| {
                let request = client::request(message.clone(), timeout);
                async move {
                    Client::call(timeout, "DescribeGroup", stub.describe_group(request)).await
                }
            })
            .await?;
        Ok(GroupDescription {
            group: g.group,
            state: g.state,
            epoch: g.epoch,
            coordinator_id: g.coordinator_id,
            members: g
                .members
                .into_iter()
                .map(|m| MemberDescription {
                    member_id: m.member_id,
                    client_id: m.client_id,
                    host: m.host,
                    member_epoch: m.member_epoch,
                    owned: partitions(m.owned),
                    target: partitions(m.target),
                    topics: m.topics,
                    pattern: (!m.pattern.is_empty()).then_some(m.pattern),
                })
                .collect(),
            offsets: g.offsets.into_iter().map(committed).collect(),
        })
    }

    /// `group`'s lag on every partition of the topics it committed for or its members hold:
    /// the committed offset against the partition's log end (from its leader).
    pub async fn lag(&self, group: &str) -> Result<BTreeMap<TopicPartition, PartitionLag>, Error> {
        let d = self.describe(group).await?;
        let mut topics: Vec<String> = d
            .offsets
            .iter()
            .map(|c| c.partition.topic.clone())
            .chain(
                d.members
                    .iter()
                    .flat_map(|m| m.owned.iter().map(|tp| tp.topic.clone())),
            )
            .collect();
        topics.sort();
        topics.dedup();
        let committed: BTreeMap<&TopicPartition, i64> =
            d.offsets.iter().map(|c| (&c.partition, c.offset)).collect();
        let config = crate::config::ConsumerConfig::default();
        let mut out = BTreeMap::new();
        for topic in topics {
            let partitions = self.client.partition_count(&topic).await?;
            for p in 0..partitions {
                let tp = TopicPartition::new(topic.clone(), p);
                let end = crate::consumer::resolve(
                    &self.client,
                    &config,
                    &topic,
                    p,
                    crate::Offset::Latest,
                )
                .await?;
                let c = committed.get(&tp).copied();
                let from = match c {
                    Some(c) => c,
                    None => {
                        crate::consumer::resolve(
                            &self.client,
                            &config,
                            &topic,
                            p,
                            crate::Offset::Earliest,
                        )
                        .await?
                    }
                };
                out.insert(
                    tp,
                    PartitionLag {
                        committed: c,
                        log_end: end,
                        lag: (end - from).max(0),
                    },
                );
            }
        }
        Ok(out)
    }

    /// Every group: each node lists the groups it coordinates; the answers are merged. A node
    /// that does not answer leaves its groups out (a warning names it).
    pub async fn list(&self) -> Result<Vec<GroupSummary>, Error> {
        let metadata = self.client.metadata(Vec::<String>::new()).await?;
        let timeout = self.client.config().request_timeout;
        let mut by_name = BTreeMap::new();
        let mut answered = 0;
        let mut last = None;
        for n in metadata.nodes.iter().filter(|n| n.state == "ACTIVE") {
            let mut stub = self.client.groups_stub(&n.client_addr)?;
            let request = client::request(pb::ListGroupsRequest {}, timeout);
            match Client::call(timeout, "ListGroups", stub.list_groups(request)).await {
                Ok(r) => {
                    answered += 1;
                    for g in r.groups {
                        by_name.insert(
                            g.group.clone(),
                            GroupSummary {
                                group: g.group,
                                state: g.state,
                                members: g.members,
                                coordinator_id: g.coordinator_id,
                            },
                        );
                    }
                }
                Err(e) => {
                    tracing::warn!(node = n.node_id, error = %e, "node did not list its groups");
                    last = Some(e);
                }
            }
        }
        match (answered, last) {
            (0, Some(e)) => Err(e),
            _ => Ok(by_name.into_values().collect()),
        }
    }

    /// Sets `group`'s offsets (they may go back); refused (`GROUP_NOT_EMPTY`) while it has
    /// members.
    pub async fn reset(
        &self,
        group: &str,
        offsets: &BTreeMap<TopicPartition, i64>,
    ) -> Result<(), Error> {
        let message = pb::ResetOffsetsRequest {
            group: group.to_string(),
            offsets: offsets
                .iter()
                .map(|(tp, o)| pb::OffsetCommit {
                    topic: tp.topic.clone(),
                    partition: tp.partition,
                    offset: *o,
                    metadata: String::new(),
                })
                .collect(),
        };
        self.call(group, |mut stub, timeout| {
            let request = client::request(message.clone(), timeout);
            async move { Client::call(timeout, "ResetOffsets", stub.reset_offsets(request)).await }
        })
        .await?;
        Ok(())
    }

    /// Deletes `group` and its offsets; refused (`GROUP_NOT_EMPTY`) while it has members.
    pub async fn delete(&self, group: &str) -> Result<(), Error> {
        let message = pb::DeleteGroupRequest {
            group: group.to_string(),
        };
        self.call(group, |mut stub, timeout| {
            let request = client::request(message.clone(), timeout);
            async move { Client::call(timeout, "DeleteGroup", stub.delete_group(request)).await }
        })
        .await?;
        Ok(())
    }
}
