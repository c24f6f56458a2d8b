//! What the coordinator decides on a heartbeat or an expiry: a pure function from the group's
//! state, the request and the topics to the [`Command`] to propose and the answer.
//!
//! The protocol is the model of Kafka's KIP-848 consumer protocol, run by the server:
//! - A member joins with epoch 0, heartbeats with its epoch and the partitions it holds, and
//!   leaves with epoch -1.
//! - On each heartbeat the coordinator recomputes every member's target with the group's
//!   assignor. A member keeps holding a partition that left its target until it reports it
//!   released (or is removed), and is given a partition of its target only once no other
//!   member holds it. So a partition never has two holders.
//! - The answer lists what the member may read now: what it holds of its target.

use crate::assign::{self, Candidate, DEFAULT_ASSIGNOR};
use crate::error::GroupError;
use crate::model::{Group, Member, Subscription, TopicPartition, check_pattern, subject_matches};
use crate::state::{Command, GroupsState, check_group_name};
use std::collections::{BTreeMap, BTreeSet};

/// Kafka's default session timeout (`session.timeout.ms`, 45 s).
pub const SESSION_TIMEOUT_MS_DEFAULT: u32 = 45_000;
/// Kafka's default rebalance timeout (`max.poll.interval.ms`, 5 min).
pub const REBALANCE_TIMEOUT_MS_DEFAULT: u32 = 300_000;
/// Kafka's default heartbeat interval (`heartbeat.interval.ms`, 3 s).
pub const HEARTBEAT_INTERVAL_MS_DEFAULT: u32 = 3_000;
/// The shortest heartbeat interval a member may ask for.
pub const HEARTBEAT_INTERVAL_MS_MIN: u32 = 10;
/// The shortest session timeout a member may ask for.
pub const SESSION_TIMEOUT_MS_MIN: u32 = 1_000;
/// The longest session or rebalance timeout a member may ask for (30 min).
pub const TIMEOUT_MS_MAX: u32 = 1_800_000;

/// Epoch of a join request.
pub const JOIN_EPOCH: i64 = 0;
/// Epoch of a leave request.
pub const LEAVE_EPOCH: i64 = -1;

/// The topics that exist, as the metadata lists them (internal topics excluded).
#[derive(Debug, Clone, Default)]
pub struct Topics {
    /// Name to (id, partition count).
    pub by_name: BTreeMap<String, (String, u32)>,
}

impl Topics {
    /// The partitions `sub` covers now.
    pub fn resolve(&self, sub: &Subscription) -> BTreeSet<TopicPartition> {
        let mut out = BTreeSet::new();
        for (name, (id, n)) in &self.by_name {
            let named = sub.topics.contains(name);
            let matched = sub
                .pattern
                .as_deref()
                .is_some_and(|p| subject_matches(p, name));
            if named || matched {
                out.extend((0..*n).map(|p| TopicPartition::new(id.clone(), p)));
            }
        }
        out
    }

    /// Whether a partition exists.
    pub fn exists(&self, tp: &TopicPartition) -> bool {
        self.by_name
            .values()
            .any(|(id, n)| *id == tp.topic_id && tp.partition < *n)
    }
}

/// A member's heartbeat (also its join and its leave).
#[derive(Debug, Clone, Default)]
pub struct Heartbeat {
    /// The group.
    pub group: String,
    /// The member's id (empty on a first join: the coordinator picks one).
    pub member_id: String,
    /// [`JOIN_EPOCH`], [`LEAVE_EPOCH`] or the member's epoch.
    pub member_epoch: i64,
    /// The client's id.
    pub client_id: String,
    /// The client's address.
    pub host: String,
    /// Its subscription (`None`: unchanged; required on a join).
    pub subscription: Option<Subscription>,
    /// The partitions it holds now (`None`: unchanged).
    pub owned: Option<Vec<TopicPartition>>,
    /// The assignor it asks for (`None`: the default).
    pub assignor: Option<String>,
    /// Its session timeout (`None`: the default).
    pub session_timeout_ms: Option<u32>,
    /// Its rebalance timeout (`None`: the default).
    pub rebalance_timeout_ms: Option<u32>,
    /// Its heartbeat interval (`None`: the coordinator's node's); below the session timeout.
    pub heartbeat_interval_ms: Option<u32>,
}

/// What a heartbeat answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// The member's id.
    pub member_id: String,
    /// Its epoch (-1 after a leave).
    pub member_epoch: i64,
    /// What it may read now.
    pub partitions: BTreeSet<TopicPartition>,
    /// When to heartbeat next (sooner while partitions are moving).
    pub heartbeat_interval_ms: u32,
}

/// What to propose, and the answer once it is applied.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The change, if any.
    pub command: Option<Command>,
    /// The answer.
    pub answer: Assignment,
}

fn timeout(v: Option<u32>, default: u32, what: &str) -> Result<u32, GroupError> {
    let v = v.unwrap_or(default);
    if !(SESSION_TIMEOUT_MS_MIN..=TIMEOUT_MS_MAX).contains(&v) {
        return Err(GroupError::InvalidRequest(format!(
            "{what} is {v} ms; it must be within {SESSION_TIMEOUT_MS_MIN}..={TIMEOUT_MS_MAX}"
        )));
    }
    Ok(v)
}

fn check_subscription(sub: &Subscription) -> Result<(), GroupError> {
    if sub.topics.is_empty() && sub.pattern.is_none() {
        return Err(GroupError::InvalidRequest(
            "a subscription names at least one topic or a pattern".into(),
        ));
    }
    if let Some(p) = &sub.pattern {
        check_pattern(p).map_err(GroupError::InvalidRequest)?;
    }
    Ok(())
}

/// The assignor most members ask for (ties: the first by name).
fn group_assignor(g: &Group) -> String {
    let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
    for m in g.members.values() {
        *votes.entry(m.assignor.as_str()).or_default() += 1;
    }
    votes
        .into_iter()
        .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(a.0)))
        .map(|(name, _)| name.to_string())
        .unwrap_or_else(|| DEFAULT_ASSIGNOR.to_string())
}

/// Recomputes every member's target; drops held partitions that no longer exist.
fn retarget(g: &mut Group, topics: &Topics) {
    for m in g.members.values_mut() {
        m.owned.retain(|tp| topics.exists(tp));
    }
    let candidates: BTreeMap<String, Candidate> = g
        .members
        .iter()
        .map(|(id, m)| {
            (
                id.clone(),
                Candidate {
                    eligible: topics.resolve(&m.subscription),
                    previous: m.target.clone(),
                },
            )
        })
        .collect();
    let targets = assign::assign(&group_assignor(g), &candidates);
    for (id, target) in targets {
        if let Some(m) = g.members.get_mut(&id) {
            m.target = target;
        }
    }
}

/// Gives `member` the partitions of its target that nobody holds.
fn grant(g: &mut Group, member: &str) {
    let Some(m) = g.members.get(member) else {
        return;
    };
    let free: Vec<TopicPartition> = m
        .target
        .iter()
        .filter(|tp| !m.owned.contains(*tp))
        .filter(|tp| g.owner(tp).is_none())
        .cloned()
        .collect();
    if let Some(m) = g.members.get_mut(member) {
        m.owned.extend(free);
    }
}

/// The update that turns `before` into `after` (`None` if nothing changed); members whose
/// partitions changed take the new group epoch.
fn diff(group: &str, before: Option<&Group>, after: &mut Group, reason: &str) -> Option<Command> {
    let empty = Group::default();
    let before = before.unwrap_or(&empty);
    let remove: Vec<(String, String)> = before
        .members
        .keys()
        .filter(|id| !after.members.contains_key(*id))
        .map(|id| (id.clone(), reason.to_string()))
        .collect();
    let changed: Vec<String> = after
        .members
        .iter()
        .filter(|(id, m)| before.members.get(*id) != Some(*m))
        .map(|(id, _)| id.clone())
        .collect();
    if remove.is_empty() && changed.is_empty() {
        return None;
    }
    let epoch = before.epoch + 1;
    after.epoch = epoch;
    let mut put = Vec::new();
    for id in changed {
        if let Some(m) = after.members.get_mut(&id) {
            let old = before.members.get(&id);
            let moved = old.is_none_or(|o| o.owned != m.owned || o.epoch != m.epoch);
            if moved {
                m.previous_epoch = old.map_or(0, |o| o.epoch);
                m.epoch = epoch;
            }
            put.push(m.clone());
        }
    }
    Some(Command::Update {
        group: group.to_string(),
        epoch,
        put,
        remove,
        classic: None,
    })
}

fn answer(g: &Group, member: &str, interval_ms: u32) -> Assignment {
    match g.members.get(member) {
        Some(m) => {
            let interval_ms = match m.heartbeat_interval_ms {
                0 => interval_ms,
                own => own,
            };
            let settled = m.owned == m.target;
            Assignment {
                member_id: member.to_string(),
                member_epoch: m.epoch as i64,
                partitions: m.owned.intersection(&m.target).cloned().collect(),
                heartbeat_interval_ms: if settled {
                    interval_ms
                } else {
                    (interval_ms / 10).max(50)
                },
            }
        }
        None => Assignment {
            member_id: member.to_string(),
            member_epoch: LEAVE_EPOCH,
            partitions: BTreeSet::new(),
            heartbeat_interval_ms: interval_ms,
        },
    }
}

/// Plans a heartbeat. `new_member_id` names a member joining without an id;
/// `interval_ms` is the heartbeat interval to hand out.
pub fn heartbeat(
    state: &GroupsState,
    req: &Heartbeat,
    topics: &Topics,
    new_member_id: &str,
    interval_ms: u32,
) -> Result<Plan, GroupError> {
    check_group_name(&req.group)?;
    let before = state.groups.get(&req.group);
    if let Some(b) = before
        && b.members.values().any(|m| m.classic.is_some())
    {
        return Err(GroupError::InvalidRequest(format!(
            "group {:?} is a Kafka classic group (its members use JoinGroup and SyncGroup); \
             a native member cannot join it",
            req.group
        )));
    }
    let mut g = before.cloned().unwrap_or_default();
    let id = match req.member_epoch {
        LEAVE_EPOCH => {
            if g.members.remove(&req.member_id).is_none() {
                // Already gone: leaving again is fine.
                return Ok(Plan {
                    command: None,
                    answer: answer(&g, &req.member_id, interval_ms),
                });
            }
            retarget(&mut g, topics);
            let command = diff(&req.group, before, &mut g, "left the group");
            return Ok(Plan {
                command,
                answer: answer(&g, &req.member_id, interval_ms),
            });
        }
        JOIN_EPOCH => {
            let sub = req.subscription.clone().ok_or_else(|| {
                GroupError::InvalidRequest("a join carries a subscription".into())
            })?;
            check_subscription(&sub)?;
            let assignor = req
                .assignor
                .clone()
                .unwrap_or_else(|| DEFAULT_ASSIGNOR.to_string());
            if !assign::ASSIGNORS.contains(&assignor.as_str()) {
                return Err(GroupError::InvalidRequest(format!(
                    "unknown assignor {assignor:?}; known: {}",
                    assign::ASSIGNORS.join(", ")
                )));
            }
            let id = if req.member_id.is_empty() {
                new_member_id.to_string()
            } else {
                req.member_id.clone()
            };
            let session_timeout_ms = timeout(
                req.session_timeout_ms,
                SESSION_TIMEOUT_MS_DEFAULT,
                "session timeout",
            )?;
            let heartbeat_interval_ms = req.heartbeat_interval_ms.unwrap_or(0);
            if heartbeat_interval_ms != 0
                && !(HEARTBEAT_INTERVAL_MS_MIN..session_timeout_ms).contains(&heartbeat_interval_ms)
            {
                return Err(GroupError::InvalidRequest(format!(
                    "heartbeat interval is {heartbeat_interval_ms} ms; it must be at least {HEARTBEAT_INTERVAL_MS_MIN} and below the session timeout ({session_timeout_ms} ms)"
                )));
            }
            // A member that joins again (a restart) holds nothing any more.
            g.members.insert(
                id.clone(),
                Member {
                    id: id.clone(),
                    epoch: 0,
                    previous_epoch: 0,
                    client_id: req.client_id.clone(),
                    host: req.host.clone(),
                    subscription: sub,
                    assignor,
                    session_timeout_ms,
                    rebalance_timeout_ms: timeout(
                        req.rebalance_timeout_ms,
                        REBALANCE_TIMEOUT_MS_DEFAULT,
                        "rebalance timeout",
                    )?,
                    heartbeat_interval_ms,
                    owned: BTreeSet::new(),
                    target: g
                        .members
                        .get(&id)
                        .map(|m| m.target.clone())
                        .unwrap_or_default(),
                    classic: None,
                },
            );
            id
        }
        epoch if epoch > 0 => {
            let m = g
                .members
                .get_mut(&req.member_id)
                .ok_or_else(|| GroupError::UnknownMember(req.member_id.clone()))?;
            let epoch = epoch as u64;
            if epoch != m.epoch && epoch != m.previous_epoch {
                return Err(GroupError::FencedMemberEpoch {
                    member: req.member_id.clone(),
                    current: m.epoch,
                    got: epoch,
                });
            }
            if let Some(sub) = &req.subscription {
                check_subscription(sub)?;
                m.subscription = sub.clone();
            }
            if let Some(owned) = &req.owned {
                // A partition leaves the member's hands only when it reports a partition of
                // its old target gone. One of its target that it does not report yet was
                // given in an answer it has not acted on: it stays the member's.
                let reported: BTreeSet<&TopicPartition> = owned.iter().collect();
                let target = m.target.clone();
                m.owned
                    .retain(|tp| reported.contains(tp) || target.contains(tp));
            }
            req.member_id.clone()
        }
        other => {
            return Err(GroupError::InvalidRequest(format!(
                "member epoch {other} is neither a join (0), a leave (-1) nor an epoch"
            )));
        }
    };
    retarget(&mut g, topics);
    grant(&mut g, &id);
    let command = diff(&req.group, before, &mut g, "");
    Ok(Plan {
        command,
        answer: answer(&g, &id, interval_ms),
    })
}

/// Plans the removal of `members` (session or rebalance timeout): their partitions are
/// released and the others retargeted.
pub fn remove(
    state: &GroupsState,
    group: &str,
    members: &[String],
    reason: &str,
    topics: &Topics,
) -> Option<Command> {
    let before = state.groups.get(group)?;
    let mut g = before.clone();
    for id in members {
        g.members.remove(id);
    }
    retarget(&mut g, topics);
    diff(group, Some(before), &mut g, reason)
}
