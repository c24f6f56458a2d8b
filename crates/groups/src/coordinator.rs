//! [`Coordinator`]: drives the groups of one `__consumer_offsets` partition from its leader.
//!
//! The replicated part of a group (members, their partitions, epochs, committed offsets) is
//! in the partition's [`GroupsHook`]; every change is a command proposed through Raft and
//! answered only once applied. What is not replicated is when each member was last heard
//! from and since when it has been asked to give partitions up: a new leader starts those
//! clocks afresh for every member (as Kafka's coordinator does after a failover), so a
//! failover never expires a live member, and a dead one is removed one session later.
//!
//! Heartbeats of one partition are planned one at a time (a plan reads the state it changes);
//! commits are not serialized: the state machine checks them when it applies them.

use crate::error::GroupError;
use crate::hook::GroupsHook;
use crate::model::{Group, TopicPartition};
use crate::plan::{self, Assignment, Heartbeat, Topics};
use crate::state::{Command, CommitEntry, check_commit, check_group_name};
use bytes::Bytes;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use strata_raft::GroupId;
use strata_raft::error::PartitionError;
use strata_raft::partition::Partition;
use strata_raft::state_machine::StateHook;
use strata_record::sync::now_ms;

/// The internal topic that holds group state.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Partitions of [`OFFSETS_TOPIC`] when the cluster does not say otherwise.
pub const OFFSETS_PARTITIONS_DEFAULT: u32 = 16;

/// The partition of [`OFFSETS_TOPIC`] that holds `group`: CRC-32 (IEEE) of its name, modulo
/// the partition count. Stable across versions: changing it would lose every group.
pub fn partition_for(group: &str, partitions: u32) -> u32 {
    crc32fast::hash(group.as_bytes()) % partitions.max(1)
}

/// Why a coordinator call failed.
#[derive(Debug, thiserror::Error)]
pub enum CoordinatorError {
    /// Refused by the group logic or the state machine.
    #[error(transparent)]
    Group(#[from] GroupError),
    /// The partition cannot serve (not its leader, not ready, stopped).
    #[error(transparent)]
    Partition(#[from] PartitionError),
}

/// A group as `describe` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    /// Its name.
    pub name: String,
    /// `stable` (every member holds its target), `reconciling`, or `empty`.
    pub state: &'static str,
    /// The replicated group.
    pub group: Group,
}

/// Leader-local clocks of one group member.
#[derive(Debug, Clone, Copy)]
struct Clocks {
    last_seen: Instant,
    /// Since when it holds partitions outside its target.
    revoking_since: Option<Instant>,
}

#[derive(Debug, Default)]
struct Soft {
    /// The term these clocks belong to (a new term restarts them).
    term: u64,
    clocks: HashMap<(String, String), Clocks>,
}

/// The coordinator of the groups of one `__consumer_offsets` partition.
#[derive(Debug)]
pub struct Coordinator {
    pub(crate) hook: Arc<GroupsHook>,
    /// Serializes heartbeat plans; holds the leader-local clocks.
    soft: tokio::sync::Mutex<Soft>,
    heartbeat_interval_ms: u32,
    /// The Kafka classic groups' barriers and clocks (see [`crate::classic`]).
    pub(crate) classic: tokio::sync::Mutex<crate::classic::ClassicGroups>,
}

/// Proposes `cmd` and returns the outcome of applying it.
pub(crate) async fn propose(
    hook: &GroupsHook,
    partition: &Partition,
    cmd: &Command,
) -> Result<(), CoordinatorError> {
    let payload = serde_json::to_vec(cmd)
        .map_err(|e| GroupError::InvalidRequest(format!("cannot encode command: {e}")))?;
    let index = partition.propose_control(Bytes::from(payload)).await?;
    match hook.take_outcome(index) {
        Some(r) => Ok(r?),
        None => Err(PartitionError::Indeterminate {
            reason: format!("group command {index} applied but its outcome is gone"),
        }
        .into()),
    }
}

impl Coordinator {
    /// A coordinator over `hook` that hands out `heartbeat_interval_ms`.
    pub fn new(hook: Arc<GroupsHook>, heartbeat_interval_ms: u32) -> Coordinator {
        Coordinator {
            hook,
            soft: tokio::sync::Mutex::default(),
            heartbeat_interval_ms,
            classic: tokio::sync::Mutex::default(),
        }
    }

    fn sync_term(soft: &mut Soft, partition: &Partition) {
        let term = partition.status().term;
        if soft.term != term {
            soft.term = term;
            soft.clocks.clear();
        }
    }

    /// A member's heartbeat, join or leave; see [`plan::heartbeat`].
    pub async fn heartbeat(
        &self,
        partition: &Partition,
        req: &Heartbeat,
        topics: &Topics,
    ) -> Result<Assignment, CoordinatorError> {
        partition.ensure_serving().await?;
        let mut soft = self.soft.lock().await;
        Self::sync_term(&mut soft, partition);
        let new_id = uuid::Uuid::new_v4().to_string();
        let plan = self
            .hook
            .read(|s| plan::heartbeat(s, req, topics, &new_id, self.heartbeat_interval_ms))?;
        if let Some(cmd) = &plan.command {
            propose(&self.hook, partition, cmd).await?;
        }
        let key = (req.group.clone(), plan.answer.member_id.clone());
        if plan.answer.member_epoch == plan::LEAVE_EPOCH {
            soft.clocks.remove(&key);
        } else {
            let now = Instant::now();
            let revoking = self.hook.read(|s| {
                s.groups
                    .get(&req.group)
                    .and_then(|g| g.members.get(&plan.answer.member_id))
                    .is_some_and(|m| !m.owned.is_subset(&m.target))
            });
            let c = soft.clocks.entry(key).or_insert(Clocks {
                last_seen: now,
                revoking_since: None,
            });
            c.last_seen = now;
            c.revoking_since = match (revoking, c.revoking_since) {
                (false, _) => None,
                (true, Some(t)) => Some(t),
                (true, None) => Some(now),
            };
        }
        Ok(plan.answer)
    }

    /// Commits offsets for a member (or, with an empty member id, for a group without
    /// members). Every partition must exist; see [`check_commit`] for the rest.
    pub async fn commit(
        &self,
        partition: &Partition,
        group: &str,
        member_id: &str,
        member_epoch: u64,
        offsets: Vec<CommitEntry>,
        topics: &Topics,
    ) -> Result<(), CoordinatorError> {
        check_group_name(group)?;
        if offsets.is_empty() {
            return Ok(());
        }
        if let Some(e) = offsets.iter().find(|e| !topics.exists(&e.tp)) {
            return Err(
                GroupError::InvalidRequest(format!("partition {} does not exist", e.tp)).into(),
            );
        }
        partition.ensure_serving().await?;
        let empty = Group::default();
        self.hook.read(|s| {
            let g = s.groups.get(group).unwrap_or(&empty);
            check_commit(group, g, member_id, member_epoch, &offsets)
        })?;
        let cmd = Command::Commit {
            group: group.to_string(),
            member_id: member_id.to_string(),
            member_epoch,
            offsets,
            now_ms: now_ms().max(0) as u64,
        };
        propose(&self.hook, partition, &cmd).await
    }

    /// The committed offsets of `group` (all of them when `tps` is empty), from the leader.
    pub async fn committed(
        &self,
        partition: &Partition,
        group: &str,
        tps: &[TopicPartition],
    ) -> Result<BTreeMap<TopicPartition, crate::model::Committed>, CoordinatorError> {
        check_group_name(group)?;
        partition.ensure_serving().await?;
        Ok(self.hook.read(|s| {
            let Some(g) = s.groups.get(group) else {
                return BTreeMap::new();
            };
            g.offsets
                .iter()
                .filter(|(tp, _)| tps.is_empty() || tps.contains(tp))
                .map(|(tp, c)| (tp.clone(), c.clone()))
                .collect()
        }))
    }

    /// One group, from the leader.
    pub async fn describe(
        &self,
        partition: &Partition,
        group: &str,
    ) -> Result<GroupDescription, CoordinatorError> {
        check_group_name(group)?;
        partition.ensure_serving().await?;
        let g = self
            .hook
            .read(|s| s.groups.get(group).cloned())
            .ok_or_else(|| GroupError::UnknownGroup(group.to_string()))?;
        Ok(describe(group, g))
    }

    /// Every group of this partition, as this replica applied them (a follower may lag).
    pub fn list(&self) -> Vec<GroupDescription> {
        self.hook.read(|s| {
            s.groups
                .iter()
                .map(|(name, g)| describe(name, g.clone()))
                .collect()
        })
    }

    /// Sets `group`'s offsets (an operator's reset); refused while it has members.
    pub async fn reset(
        &self,
        partition: &Partition,
        group: &str,
        offsets: Vec<(TopicPartition, i64)>,
    ) -> Result<(), CoordinatorError> {
        partition.ensure_serving().await?;
        let cmd = Command::Reset {
            group: group.to_string(),
            offsets,
            now_ms: now_ms().max(0) as u64,
        };
        propose(&self.hook, partition, &cmd).await
    }

    /// Deletes `group`; refused while it has members.
    pub async fn delete(&self, partition: &Partition, group: &str) -> Result<(), CoordinatorError> {
        partition.ensure_serving().await?;
        let cmd = Command::Delete {
            group: group.to_string(),
        };
        propose(&self.hook, partition, &cmd).await
    }

    /// Removes members not heard from within their session timeout and members that kept
    /// partitions outside their target past their rebalance timeout, and forgets topics that
    /// no longer exist. Run periodically on the leader; does nothing elsewhere.
    pub async fn tick(&self, partition: &Partition, topics: &Topics) {
        if !partition.is_ready_leader() {
            return;
        }
        self.classic_expire(partition, topics).await;
        self.classic_deadlines(partition, topics).await;
        let mut soft = self.soft.lock().await;
        Self::sync_term(&mut soft, partition);
        let now = Instant::now();
        let mut removals: Vec<(String, Vec<String>, &'static str)> = Vec::new();
        let mut gone_topics = Vec::new();
        self.hook.read(|s| {
            for (name, g) in &s.groups {
                let mut expired = Vec::new();
                // Classic members are heard from by the classic protocol (its own clocks,
                // see `classic_expire`), never by native heartbeats.
                for (id, m) in g.members.iter().filter(|(_, m)| m.classic.is_none()) {
                    let key = (name.clone(), id.clone());
                    let c = *soft.clocks.entry(key).or_insert(Clocks {
                        last_seen: now,
                        revoking_since: None,
                    });
                    let session = Duration::from_millis(u64::from(m.session_timeout_ms));
                    let rebalance = Duration::from_millis(u64::from(m.rebalance_timeout_ms));
                    if now.duration_since(c.last_seen) > session {
                        expired.push((id.clone(), "session timeout"));
                    } else if c
                        .revoking_since
                        .is_some_and(|t| now.duration_since(t) > rebalance)
                    {
                        expired.push((id.clone(), "rebalance timeout"));
                    }
                }
                for (id, why) in expired {
                    removals.push((name.clone(), vec![id], why));
                }
                for tp in g.offsets.keys() {
                    if !topics.by_name.values().any(|(id, _)| *id == tp.topic_id)
                        && !gone_topics.contains(&tp.topic_id)
                    {
                        gone_topics.push(tp.topic_id.clone());
                    }
                }
            }
        });
        for (group, ids, why) in removals {
            let cmd = self
                .hook
                .read(|s| plan::remove(s, &group, &ids, why, topics));
            if let Some(cmd) = cmd {
                match propose(&self.hook, partition, &cmd).await {
                    Ok(()) => {
                        tracing::info!(group, members = ?ids, reason = why, "members removed");
                        for id in ids {
                            soft.clocks.remove(&(group.clone(), id));
                        }
                    }
                    Err(e) => tracing::debug!(group, error = %e, "cannot remove members"),
                }
            }
        }
        for topic_id in gone_topics {
            let cmd = Command::DropTopic { topic_id };
            if let Err(e) = propose(&self.hook, partition, &cmd).await {
                tracing::debug!(error = %e, "cannot drop a deleted topic's offsets");
            }
        }
    }
}

fn describe(name: &str, group: Group) -> GroupDescription {
    let state = if group.members.is_empty() {
        "empty"
    } else if group.members.values().all(|m| m.owned == m.target) {
        "stable"
    } else {
        "reconciling"
    };
    GroupDescription {
        name: name.to_string(),
        state,
        group,
    }
}

/// The coordinators of the `__consumer_offsets` partitions this node hosts, by Raft group.
#[derive(Debug)]
pub struct Coordinators {
    by_group: Mutex<HashMap<GroupId, Arc<Coordinator>>>,
    heartbeat_interval_ms: u32,
}

impl Coordinators {
    /// No coordinators yet; members are told to heartbeat every `heartbeat_interval_ms`.
    pub fn new(heartbeat_interval_ms: u32) -> Coordinators {
        Coordinators {
            by_group: Mutex::default(),
            heartbeat_interval_ms,
        }
    }

    /// The hook for a replica of Raft group `group_id` being opened (a new coordinator; a
    /// reopened replica gets a fresh one, rebuilt from its snapshot and log).
    pub fn open(&self, group_id: GroupId) -> Arc<GroupsHook> {
        let hook = Arc::new(GroupsHook::default());
        let c = Arc::new(Coordinator::new(hook.clone(), self.heartbeat_interval_ms));
        strata_record::sync::lock(&self.by_group).insert(group_id, c);
        hook
    }

    /// What gives a replica being opened its hook: a new coordinator's for `__consumer_offsets`,
    /// none for other topics.
    #[allow(clippy::type_complexity)]
    pub fn hook_factory(
        self: &Arc<Self>,
    ) -> Arc<dyn Fn(&str, GroupId) -> Option<Arc<dyn StateHook>> + Send + Sync> {
        let me = self.clone();
        Arc::new(move |topic: &str, group_id: GroupId| {
            (topic == OFFSETS_TOPIC).then(|| me.open(group_id) as Arc<dyn StateHook>)
        })
    }

    /// The coordinator of Raft group `group_id`, if its replica is hosted here.
    pub fn get(&self, group_id: GroupId) -> Option<Arc<Coordinator>> {
        strata_record::sync::lock(&self.by_group)
            .get(&group_id)
            .cloned()
    }

    /// Forgets the coordinators whose replica was closed (moved away, topic or node gone),
    /// with the group state they held in memory. A replica holds its hook for as long as it
    /// lives (reopens included), so a hook nobody else holds belongs to no replica; one being
    /// opened is held already.
    pub fn forget_closed(&self) {
        strata_record::sync::lock(&self.by_group).retain(|_, c| Arc::strong_count(&c.hook) > 1);
    }
}
