//! The consumer-group calls of [`Broker`]: they find the group's coordinator (the leader of
//! its `__consumer_offsets` partition, created on first use), translate topic names to ids
//! and back, and hand the work to [`strata_groups::Coordinator`].

use super::Broker;
use crate::error::BrokerError;
use crate::types::{CommittedView, GroupAssignment, GroupSummary, GroupView, MemberView};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use strata_cluster::controller::ControllerError;
use strata_cluster::meta::{ClusterMeta, Command, Refusal, TopicConfig};
use strata_groups::classic::{
    ClassicDescription, ClassicError, JoinRequest as ClassicJoin, JoinResponse, SyncResponse,
};
use strata_groups::coordinator::{Coordinator, CoordinatorError, OFFSETS_TOPIC, partition_for};
use strata_groups::plan::{Heartbeat, Topics};
use strata_groups::state::CommitEntry;
use strata_groups::{GroupError, TopicPartition};
use strata_raft::GroupId;
use strata_raft::partition::Partition;

/// Whether `name` is an internal topic (`__` prefix): clients neither create, delete nor
/// produce to those.
pub fn is_internal(name: &str) -> bool {
    name.starts_with("__")
}

/// How long a commit waits for this node's replica of a partition to catch up to the
/// committed offset before calling it beyond the log end.
const COMMIT_CATCH_UP: Duration = Duration::from_secs(2);

/// The topics a group can read: every topic but the internal ones.
pub(super) fn group_topics(meta: &ClusterMeta) -> Topics {
    Topics {
        by_name: meta
            .topics
            .iter()
            .filter(|(name, _)| !is_internal(name))
            .map(|(name, t)| (name.clone(), (t.id.clone(), t.partitions.len() as u32)))
            .collect(),
    }
}

/// The topic and partition a group names by topic name: its `TopicMeta` and the partition's
/// Raft group, or unknown topic (internal topics included) or partition.
fn group_partition<'a>(
    m: &'a ClusterMeta,
    topic: &str,
    partition: u32,
) -> Result<(&'a strata_cluster::meta::TopicMeta, GroupId), BrokerError> {
    let t = m
        .topics
        .get(topic)
        .filter(|_| !is_internal(topic))
        .ok_or_else(|| BrokerError::UnknownTopic {
            topic: topic.to_string(),
        })?;
    let pm = t
        .partitions
        .get(partition as usize)
        .ok_or_else(|| BrokerError::UnknownPartition {
            topic: topic.to_string(),
            partition,
            partitions: t.partitions.len(),
        })?;
    Ok((t, pm.group_id))
}

/// Topic id to name.
fn names(meta: &ClusterMeta) -> BTreeMap<String, String> {
    meta.topics
        .iter()
        .map(|(name, t)| (t.id.clone(), name.clone()))
        .collect()
}

impl Broker {
    fn coordinator_error(&self, what: &str, e: CoordinatorError) -> BrokerError {
        match e {
            CoordinatorError::Group(g) => BrokerError::Group(g),
            CoordinatorError::Partition(p) => {
                super::partition_error(what.to_string(), p, |id| self.leader_hint(id))
            }
        }
    }

    /// Creates `__consumer_offsets` if it does not exist (its replication factor is the
    /// smaller of 3 and the active nodes).
    async fn ensure_offsets_topic(&self) -> Result<(), BrokerError> {
        let (exists, active) = self.controller.read_meta(|m| {
            (
                m.topics.contains_key(OFFSETS_TOPIC),
                m.active_nodes().len() as u32,
            )
        });
        if exists {
            return Ok(());
        }
        let cmd = Command::CreateTopic {
            name: OFFSETS_TOPIC.to_string(),
            id: uuid::Uuid::new_v4().to_string(),
            partitions: self.config.group_offsets_partitions.max(1),
            replication_factor: active.clamp(1, 3),
            config: TopicConfig {
                retention_ms: -1,
                segment_bytes: self.config.group_offsets_segment_bytes,
                ..TopicConfig::default()
            },
        };
        match self
            .controller
            .propose(&cmd, self.config.admin_patience)
            .await
        {
            Ok(_) | Err(ControllerError::Refused(Refusal::TopicExists(_))) => Ok(()),
            Err(e) => Err(self.controller_error(e)),
        }
    }

    /// The coordinator of `group` on this node (which must lead its partition), or NotLeader
    /// naming the node that does.
    async fn coordinator(
        &self,
        group: &str,
    ) -> Result<(Arc<Coordinator>, Arc<Partition>, String), BrokerError> {
        strata_groups::state::check_group_name(group).map_err(BrokerError::Group)?;
        self.ensure_offsets_topic().await?;
        let (n, group_id, preferred) = self
            .controller
            .read_meta(|m| {
                let t = m.topics.get(OFFSETS_TOPIC)?;
                let n = partition_for(group, t.partitions.len() as u32);
                let pm = t.partitions.get(n as usize)?;
                Some((n, pm.group_id, pm.replicas.first().copied()))
            })
            .ok_or_else(|| BrokerError::Internal(format!("{OFFSETS_TOPIC} vanished")))?;
        let what = format!("{OFFSETS_TOPIC}/{n} (coordinator of group {group:?})");
        let local = self.replicas.get(group_id).and_then(|h| h.partition());
        let coordinator = self.coordinators.get(group_id);
        match (local, coordinator) {
            (Some(p), Some(c)) if p.leads() => Ok((c, p, what)),
            (Some(p), _) => Err(BrokerError::NotLeader {
                leader: self.leader_hint(p.leader().map(|(id, _)| id)),
                what,
            }),
            (None, _) => {
                let id = self.hints.get(group_id).map(|(id, _)| id).or(preferred);
                Err(BrokerError::NotLeader {
                    leader: self.leader_hint(id),
                    what,
                })
            }
        }
    }

    /// A member's join (epoch 0), heartbeat or leave (epoch -1); see [`strata_groups::plan`].
    pub async fn group_heartbeat(&self, req: Heartbeat) -> Result<GroupAssignment, BrokerError> {
        let (c, p, what) = self.coordinator(&req.group).await?;
        let meta = self.meta();
        let a = c
            .heartbeat(&p, &req, &group_topics(&meta))
            .await
            .map_err(|e| self.coordinator_error(&what, e))?;
        let names = names(&meta);
        Ok(GroupAssignment {
            member_id: a.member_id,
            member_epoch: a.member_epoch,
            heartbeat_interval_ms: a.heartbeat_interval_ms,
            partitions: a
                .partitions
                .into_iter()
                .filter_map(|tp| names.get(&tp.topic_id).map(|n| (n.clone(), tp)))
                .collect(),
        })
    }

    /// Waits (bounded) until this node's replica of `tp` (Raft group `data`) holds `offset`
    /// records: a committed offset may not lie beyond the log end. Partitions not hosted here
    /// are not checked.
    async fn check_commit_offset(
        &self,
        topic: &str,
        tp: &TopicPartition,
        data: GroupId,
        offset: i64,
    ) -> Result<(), BrokerError> {
        let Some(p) = self.replicas.get(data).and_then(|h| h.partition()) else {
            return Ok(());
        };
        let deadline = tokio::time::Instant::now() + COMMIT_CATCH_UP;
        loop {
            let end = p.high_watermark();
            if offset <= end {
                return Ok(());
            }
            if p.leads() || tokio::time::Instant::now() >= deadline {
                return Err(BrokerError::Group(GroupError::InvalidOffset {
                    tp: tp.clone(),
                    offset,
                    reason: format!("it is beyond the log end offset {end} of {topic}"),
                }));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Commits `offsets` (topic name, partition, offset, metadata) for `member_id` of
    /// `group` (empty: a client outside a group without members). All or none.
    pub async fn commit_offsets(
        &self,
        group: &str,
        member_id: &str,
        member_epoch: u64,
        offsets: Vec<(String, u32, i64, String)>,
    ) -> Result<(), BrokerError> {
        let (c, p, what) = self.coordinator(group).await?;
        // Names to ids (and the data partitions' groups), in one look at the metadata; the
        // topics named make the coordinator's view of what exists.
        let resolved = self.controller.read_meta(|m| {
            let mut topics = Topics::default();
            let mut out = Vec::with_capacity(offsets.len());
            for (i, (topic, partition, offset, metadata)) in offsets.into_iter().enumerate() {
                let (t, data) = group_partition(m, &topic, partition)?;
                if offset < 0 {
                    return Err(BrokerError::invalid(
                        format!("offsets[{i}].offset"),
                        format!("offsets are not negative, got {offset}"),
                    ));
                }
                topics
                    .by_name
                    .insert(topic.clone(), (t.id.clone(), t.partitions.len() as u32));
                let tp = TopicPartition::new(t.id.clone(), partition);
                out.push((
                    topic,
                    data,
                    CommitEntry {
                        tp,
                        offset,
                        metadata,
                    },
                ));
            }
            Ok((topics, out))
        });
        let (topics, resolved) = resolved?;
        let mut entries = Vec::with_capacity(resolved.len());
        for (topic, data, entry) in resolved {
            self.check_commit_offset(&topic, &entry.tp, data, entry.offset)
                .await?;
            entries.push(entry);
        }
        c.commit(&p, group, member_id, member_epoch, entries, &topics)
            .await
            .map_err(|e| self.coordinator_error(&what, e))
    }

    /// The committed offsets of `group` for `topics` (all when empty).
    pub async fn fetch_offsets(
        &self,
        group: &str,
        topics: &[String],
    ) -> Result<Vec<CommittedView>, BrokerError> {
        let (c, p, what) = self.coordinator(group).await?;
        let meta = self.meta();
        let names = names(&meta);
        let committed = c
            .committed(&p, group, &[])
            .await
            .map_err(|e| self.coordinator_error(&what, e))?;
        Ok(committed
            .into_iter()
            .filter_map(|(tp, c)| {
                let topic = names.get(&tp.topic_id)?.clone();
                (topics.is_empty() || topics.contains(&topic)).then_some(CommittedView {
                    topic,
                    topic_id: tp.topic_id,
                    partition: tp.partition,
                    offset: c.offset,
                    metadata: c.metadata,
                    commit_ms: c.commit_ms,
                })
            })
            .collect())
    }

    /// One group: state, members and what they hold, committed offsets.
    pub async fn describe_group(&self, group: &str) -> Result<GroupView, BrokerError> {
        let (c, p, what) = self.coordinator(group).await?;
        let d = c
            .describe(&p, group)
            .await
            .map_err(|e| self.coordinator_error(&what, e))?;
        let names = names(&self.meta());
        let named =
            |set: &std::collections::BTreeSet<TopicPartition>| -> Vec<(String, TopicPartition)> {
                set.iter()
                    .filter_map(|tp| names.get(&tp.topic_id).map(|n| (n.clone(), tp.clone())))
                    .collect()
            };
        Ok(GroupView {
            name: d.name,
            state: d.state,
            epoch: d.group.epoch,
            coordinator_id: self.node_id,
            members: d
                .group
                .members
                .values()
                .map(|m| MemberView {
                    member_id: m.id.clone(),
                    client_id: m.client_id.clone(),
                    host: m.host.clone(),
                    member_epoch: m.epoch,
                    owned: named(&m.owned),
                    target: named(&m.target),
                    topics: m.subscription.topics.iter().cloned().collect(),
                    pattern: m.subscription.pattern.clone(),
                })
                .collect(),
            offsets: d
                .group
                .offsets
                .iter()
                .filter_map(|(tp, c)| {
                    Some(CommittedView {
                        topic: names.get(&tp.topic_id)?.clone(),
                        topic_id: tp.topic_id.clone(),
                        partition: tp.partition,
                        offset: c.offset,
                        metadata: c.metadata.clone(),
                        commit_ms: c.commit_ms,
                    })
                })
                .collect(),
        })
    }

    /// The groups whose coordinator runs on this node (ask every node for all of them).
    pub fn list_groups(&self) -> Vec<GroupSummary> {
        let meta = self.meta();
        let Some(t) = meta.topics.get(OFFSETS_TOPIC) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for pm in &t.partitions {
            let led = self
                .replicas
                .get(pm.group_id)
                .and_then(|h| h.partition())
                .is_some_and(|p| p.leads());
            let Some(c) = self.coordinators.get(pm.group_id).filter(|_| led) else {
                continue;
            };
            out.extend(c.list().into_iter().map(|d| {
                GroupSummary {
                    name: d.name,
                    state: d.state,
                    members: d.group.members.len() as u32,
                    coordinator_id: self.node_id,
                    protocol_type: d
                        .group
                        .classic_protocol
                        .as_ref()
                        .map(|(t, _)| t.clone())
                        .unwrap_or_default(),
                }
            }));
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// Sets `group`'s offsets (topic name, partition, offset), which may go back; refused
    /// while the group has members.
    pub async fn reset_offsets(
        &self,
        group: &str,
        offsets: Vec<(String, u32, i64)>,
    ) -> Result<(), BrokerError> {
        let (c, p, what) = self.coordinator(group).await?;
        let out = self.controller.read_meta(|m| {
            offsets
                .into_iter()
                .map(|(topic, partition, offset)| {
                    let (t, _) = group_partition(m, &topic, partition)?;
                    Ok((TopicPartition::new(t.id.clone(), partition), offset))
                })
                .collect::<Result<Vec<_>, BrokerError>>()
        })?;
        c.reset(&p, group, out)
            .await
            .map_err(|e| self.coordinator_error(&what, e))
    }

    /// Deletes `group`; refused while it has members.
    pub async fn delete_group(&self, group: &str) -> Result<(), BrokerError> {
        let (c, p, what) = self.coordinator(group).await?;
        c.delete(&p, group)
            .await
            .map_err(|e| self.coordinator_error(&what, e))
    }

    /// Expires members, forgets deleted topics and compacts the `__consumer_offsets`
    /// partitions this node leads; the node runs it periodically. Returns each led group's lag per partition hosted here
    /// (group, topic, partition, lag), for `/metrics`.
    pub async fn groups_tick(&self) -> Vec<(String, String, u32, i64)> {
        let meta = self.meta();
        let Some(t) = meta.topics.get(OFFSETS_TOPIC) else {
            return Vec::new();
        };
        self.coordinators.forget_closed();
        let topics = group_topics(&meta);
        let names = names(&meta);
        let mut lag = Vec::new();
        for pm in &t.partitions {
            let Some(p) = self.replicas.get(pm.group_id).and_then(|h| h.partition()) else {
                continue;
            };
            let Some(c) = self.coordinators.get(pm.group_id) else {
                continue;
            };
            c.tick(&p, &topics).await;
            if !p.leads() {
                continue;
            }
            // The state is in the hook (and its snapshots): older segments are not needed.
            if p.log_reader().segment_sizes().len() > 1 {
                match p.compact().await {
                    Ok(Some(upto)) => tracing::debug!(%upto, "compacted a group partition"),
                    Ok(None) => {}
                    Err(e) => tracing::debug!(error = %e, "cannot compact a group partition"),
                }
            }
            for d in c.list() {
                for (tp, committed) in &d.group.offsets {
                    let Some(name) = names.get(&tp.topic_id) else {
                        continue;
                    };
                    let Some(data) = meta
                        .topics
                        .get(name)
                        .and_then(|t| t.partitions.get(tp.partition as usize))
                        .and_then(|pm| self.replicas.get(pm.group_id))
                        .and_then(|h| h.partition())
                    else {
                        continue;
                    };
                    let l = (data.high_watermark() - committed.offset).max(0);
                    lag.push((d.name.clone(), name.clone(), tp.partition, l));
                }
            }
        }
        lag
    }
}

/// Why a Kafka classic group call failed: a broker-level error (not the coordinator, the
/// group name, the topics), or the classic protocol's own answer.
#[derive(Debug)]
pub enum ClassicFailure {
    /// Routing, metadata or replication.
    Broker(BrokerError),
    /// The protocol's refusal (unknown member, illegal generation, rebalance in progress...).
    Classic(ClassicError),
}

impl From<BrokerError> for ClassicFailure {
    fn from(e: BrokerError) -> ClassicFailure {
        ClassicFailure::Broker(e)
    }
}

/// The Kafka classic group calls: the same coordinators and replicated state as the native
/// calls above, with the barrier of [`strata_groups::classic`].
impl Broker {
    fn classic_error(&self, what: &str, e: ClassicError) -> ClassicFailure {
        match e {
            ClassicError::Coordinator(c) => ClassicFailure::Broker(self.coordinator_error(what, c)),
            other => ClassicFailure::Classic(other),
        }
    }

    /// The node that coordinates `group` (the leader of its `__consumer_offsets`
    /// partition, creating the topic on first use), or `None` while it has no leader.
    pub async fn group_coordinator_node(&self, group: &str) -> Result<Option<u64>, BrokerError> {
        match self.coordinator(group).await {
            Ok(_) => Ok(Some(self.node_id)),
            Err(BrokerError::NotLeader { leader, .. }) => Ok(leader.map(|(id, _)| id)),
            Err(e) => Err(e),
        }
    }

    /// A JoinGroup, answered when the group's barrier closes.
    pub async fn classic_join(&self, req: ClassicJoin) -> Result<JoinResponse, ClassicFailure> {
        let (c, p, what) = self.coordinator(&req.group).await?;
        let topics = group_topics(&self.meta());
        c.classic_join(&p, req, &topics)
            .await
            .map_err(|e| self.classic_error(&what, e))
    }

    /// A SyncGroup.
    pub async fn classic_sync(
        &self,
        group: &str,
        member_id: &str,
        generation: i32,
        assignments: Vec<(String, Vec<u8>)>,
    ) -> Result<SyncResponse, ClassicFailure> {
        let (c, p, what) = self.coordinator(group).await?;
        let topics = group_topics(&self.meta());
        c.classic_sync(&p, group, member_id, generation, assignments, &topics)
            .await
            .map_err(|e| self.classic_error(&what, e))
    }

    /// A classic Heartbeat.
    pub async fn classic_heartbeat(
        &self,
        group: &str,
        member_id: &str,
        generation: i32,
    ) -> Result<(), ClassicFailure> {
        let (c, p, what) = self.coordinator(group).await?;
        c.classic_heartbeat(&p, group, member_id, generation)
            .await
            .map_err(|e| self.classic_error(&what, e))
    }

    /// A LeaveGroup: each member named with its outcome.
    pub async fn classic_leave(
        &self,
        group: &str,
        members: &[String],
    ) -> Result<Vec<(String, Option<ClassicError>)>, ClassicFailure> {
        let (c, p, what) = self.coordinator(group).await?;
        let topics = group_topics(&self.meta());
        c.classic_leave(&p, group, members, &topics)
            .await
            .map_err(|e| self.classic_error(&what, e))
    }

    /// An OffsetCommit of a classic member (`member_id` empty and generation -1: a client
    /// outside the membership, accepted only while the group has no members).
    pub async fn classic_commit(
        &self,
        group: &str,
        member_id: &str,
        generation: i32,
        offsets: Vec<(String, u32, i64, String)>,
    ) -> Result<(), ClassicFailure> {
        if !member_id.is_empty() || generation >= 0 {
            let (c, p, what) = self.coordinator(group).await?;
            c.classic_check_commit(&p, group, member_id, generation)
                .await
                .map_err(|e| self.classic_error(&what, e))?;
        }
        let epoch = u64::try_from(generation).unwrap_or(0);
        Ok(self
            .commit_offsets(group, member_id, epoch, offsets)
            .await?)
    }

    /// The classic view of `group` (phase, protocol, members' metadata and assignments),
    /// `None` for a native group or no group.
    pub async fn classic_describe(
        &self,
        group: &str,
    ) -> Result<Option<ClassicDescription>, BrokerError> {
        let (c, p, _) = self.coordinator(group).await?;
        Ok(c.classic_describe(&p, group).await)
    }
}
