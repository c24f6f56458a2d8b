//! Kafka's classic group protocol (JoinGroup, SyncGroup, Heartbeat, LeaveGroup), run by the
//! same [`Coordinator`] and replicated state as native groups.
//!
//! In the classic protocol the client-side group leader computes the assignment; the
//! coordinator runs a barrier:
//! - **PreparingRebalance**: every member must (re)join; the barrier closes when all known
//!   members have joined, or when the longest rebalance timeout of its members has passed
//!   (members that did not rejoin are removed). A first join to an empty group waits
//!   [`INITIAL_REBALANCE_DELAY`] for others, as Kafka's `group.initial.rebalance.delay.ms`.
//! - **CompletingRebalance**: the generation is bumped and replicated (members, their
//!   protocols, the new generation as the group epoch); the leader gets every member's
//!   metadata, and its SyncGroup brings the assignments.
//! - **Stable**: the assignments are replicated; SyncGroup answers each member its own.
//!
//! What is replicated: members with their protocol data and assignment, and the generation
//! as the group's epoch (so commits are fenced by generation on every replica, and a new
//! coordinator after a failover rebuilds the group as Stable at that generation). What is
//! not: the barrier's waiters and the session clocks, as in the native protocol; a failover
//! mid-rebalance answers the waiting members NOT_COORDINATOR and they join again.
//!
//! A group is either classic or native: a classic join to a group with native members is
//! refused (INCONSISTENT_GROUP_PROTOCOL), and the native heartbeat refuses classic groups.

use crate::coordinator::{Coordinator, CoordinatorError, propose};
use crate::error::GroupError;
use crate::model::{ClassicMember, Group, Member, Subscription, TopicPartition};
use crate::plan::{SESSION_TIMEOUT_MS_MIN, TIMEOUT_MS_MAX, Topics};
use crate::state::{Command, check_group_name};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};
use strata_raft::partition::Partition;
use tokio::sync::oneshot;

/// How long a first join to an empty group waits for other members before the generation
/// is formed (Kafka's `group.initial.rebalance.delay.ms` is 3 s; shorter here, so a single
/// consumer starts quickly).
pub const INITIAL_REBALANCE_DELAY: Duration = Duration::from_millis(500);

/// Most members of one classic group.
pub const CLASSIC_MEMBERS_MAX: usize = 1_000;

/// Why a classic request was refused, with the Kafka error each maps to.
#[derive(Debug, thiserror::Error)]
pub enum ClassicError {
    /// The member is not in the group (left, expired, or never joined).
    #[error("unknown member {0:?}")]
    UnknownMember(String),
    /// The request's generation is not the group's.
    #[error("generation {got} is not the group's generation {current}")]
    IllegalGeneration {
        /// The group's generation.
        current: i32,
        /// The request's.
        got: i32,
    },
    /// A rebalance is under way: join again.
    #[error("the group is rebalancing")]
    RebalanceInProgress,
    /// A new member must join again with the id it was given (JoinGroup v4+).
    #[error("member id required")]
    MemberIdRequired(String),
    /// No protocol in common with the group, or a native group.
    #[error("{0}")]
    InconsistentProtocol(String),
    /// A session timeout out of bounds.
    #[error("session timeout {0} ms is outside {SESSION_TIMEOUT_MS_MIN}..={TIMEOUT_MS_MAX}")]
    InvalidSessionTimeout(i32),
    /// The group has [`CLASSIC_MEMBERS_MAX`] members.
    #[error("the group has {CLASSIC_MEMBERS_MAX} members, its limit")]
    GroupFull,
    /// The coordinator moved or failed mid-request.
    #[error(transparent)]
    Coordinator(#[from] CoordinatorError),
}

impl From<GroupError> for ClassicError {
    fn from(e: GroupError) -> ClassicError {
        ClassicError::Coordinator(CoordinatorError::Group(e))
    }
}

/// The barrier's phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// No members.
    Empty,
    /// Waiting for members to (re)join.
    PreparingRebalance,
    /// Waiting for the leader's assignments.
    CompletingRebalance,
    /// Every member has its assignment.
    Stable,
}

impl Phase {
    /// Kafka's name for the state (DescribeGroups, ListGroups).
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Empty => "Empty",
            Phase::PreparingRebalance => "PreparingRebalance",
            Phase::CompletingRebalance => "CompletingRebalance",
            Phase::Stable => "Stable",
        }
    }
}

/// A JoinGroup request.
#[derive(Debug, Clone)]
pub struct JoinRequest {
    /// The group.
    pub group: String,
    /// The member's id, empty on a first join.
    pub member_id: String,
    /// Whether the client takes MEMBER_ID_REQUIRED (JoinGroup v4+).
    pub id_required: bool,
    /// The client's id.
    pub client_id: String,
    /// The client's address.
    pub host: String,
    /// Session timeout.
    pub session_timeout_ms: i32,
    /// Rebalance timeout (v0: the session timeout).
    pub rebalance_timeout_ms: i32,
    /// `consumer` for consumers; other protocol types are kept opaque.
    pub protocol_type: String,
    /// Protocol names with the member's metadata for each, in its order of preference.
    pub protocols: Vec<(String, Vec<u8>)>,
}

/// What a JoinGroup answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinResponse {
    /// The new generation.
    pub generation: i32,
    /// The protocol type.
    pub protocol_type: String,
    /// The protocol chosen.
    pub protocol: String,
    /// The leader's member id.
    pub leader: String,
    /// The member's id.
    pub member_id: String,
    /// For the leader: every member with its metadata for the chosen protocol.
    pub members: Vec<(String, Vec<u8>)>,
}

/// What a SyncGroup answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncResponse {
    /// The protocol type.
    pub protocol_type: String,
    /// The protocol chosen.
    pub protocol: String,
    /// The member's assignment.
    pub assignment: Vec<u8>,
}

/// A classic group as DescribeGroups shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassicDescription {
    /// The phase.
    pub phase: Phase,
    /// The protocol type.
    pub protocol_type: String,
    /// The chosen protocol.
    pub protocol: String,
    /// Its members.
    pub members: Vec<ClassicMemberView>,
}

/// A classic member as DescribeGroups shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassicMemberView {
    /// Its member id.
    pub member_id: String,
    /// The client's id.
    pub client_id: String,
    /// The client's address.
    pub host: String,
    /// Its metadata for the chosen protocol (a `consumer` subscription).
    pub metadata: Vec<u8>,
    /// Its assignment from the last sync.
    pub assignment: Vec<u8>,
}

#[derive(Debug)]
struct CMember {
    client_id: String,
    host: String,
    session_timeout: Duration,
    rebalance_timeout: Duration,
    protocols: Vec<(String, Vec<u8>)>,
    assignment: Vec<u8>,
    last_seen: Instant,
    join: Option<oneshot::Sender<Result<JoinResponse, ClassicError>>>,
    sync: Option<oneshot::Sender<Result<SyncResponse, ClassicError>>>,
}

impl CMember {
    /// Its metadata for `protocol` (empty if it does not support it).
    fn metadata(&self, protocol: &str) -> Vec<u8> {
        self.protocols
            .iter()
            .find(|(n, _)| n == protocol)
            .map(|(_, b)| b.clone())
            .unwrap_or_default()
    }
}

#[derive(Debug)]
struct CGroup {
    phase: Phase,
    generation: i32,
    protocol_type: String,
    protocol: String,
    leader: String,
    members: BTreeMap<String, CMember>,
    /// Ids handed out with MEMBER_ID_REQUIRED, not yet joined.
    pending_ids: BTreeSet<String>,
    /// When the barrier closes at the latest.
    deadline: Option<Instant>,
    /// Before this, the barrier stays open even when everyone joined (initial delay).
    not_before: Option<Instant>,
}

impl CGroup {
    fn new(generation: i32) -> CGroup {
        CGroup {
            phase: Phase::Empty,
            generation,
            protocol_type: String::new(),
            protocol: String::new(),
            leader: String::new(),
            members: BTreeMap::new(),
            pending_ids: BTreeSet::new(),
            deadline: None,
            not_before: None,
        }
    }
}

/// The classic groups of one coordinator (leader-local; see the module docs).
#[derive(Debug, Default)]
pub(crate) struct ClassicGroups {
    term: u64,
    groups: HashMap<String, CGroup>,
}

/// The topics of a `consumer` protocol subscription (ConsumerProtocolSubscription: version,
/// topics, user data...), or `None` when the bytes are not one.
pub fn consumer_subscription_topics(metadata: &[u8]) -> Option<Vec<String>> {
    let mut r = Reader(metadata);
    let _version = r.i16()?;
    let n = r.i32()?;
    let mut out = Vec::new();
    for _ in 0..n.max(0) {
        out.push(r.string()?);
    }
    Some(out)
}

/// The partitions of a `consumer` protocol assignment (ConsumerProtocolAssignment: version,
/// `[topic, [partition]]`, user data), or `None` when the bytes are not one.
pub fn consumer_assignment(assignment: &[u8]) -> Option<Vec<(String, Vec<i32>)>> {
    if assignment.is_empty() {
        return Some(Vec::new());
    }
    let mut r = Reader(assignment);
    let _version = r.i16()?;
    let n = r.i32()?;
    let mut out = Vec::new();
    for _ in 0..n.max(0) {
        let topic = r.string()?;
        let k = r.i32()?;
        let mut parts = Vec::new();
        for _ in 0..k.max(0) {
            parts.push(r.i32()?);
        }
        out.push((topic, parts));
    }
    Some(out)
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn i16(&mut self) -> Option<i16> {
        self.take(2).map(|b| i16::from_be_bytes([b[0], b[1]]))
    }
    fn i32(&mut self) -> Option<i32> {
        self.take(4)
            .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn string(&mut self) -> Option<String> {
        let n = self.i16()?;
        let b = self.take(usize::try_from(n).ok()?)?;
        String::from_utf8(b.to_vec()).ok()
    }
}

/// Forgets every classic group when this replica's term changed: a new leadership (even
/// this node's again) starts from the replicated state, never from what an older term left
/// in memory. Waiters of the old term get their answer channel dropped (NOT_COORDINATOR).
fn sync_term(cg: &mut ClassicGroups, partition: &Partition) {
    let term = partition.status().term;
    if cg.term != term {
        cg.term = term;
        cg.groups.clear();
    }
}

/// Marks `member_id` of `g` heard from, if it is a member at `generation`.
fn member_at(g: &mut CGroup, member_id: &str, generation: i32) -> Result<(), ClassicError> {
    let Some(m) = g.members.get_mut(member_id) else {
        return Err(ClassicError::UnknownMember(member_id.to_string()));
    };
    m.last_seen = Instant::now();
    if generation != g.generation {
        return Err(ClassicError::IllegalGeneration {
            current: g.generation,
            got: generation,
        });
    }
    Ok(())
}

fn timeout_of(ms: i32) -> Result<Duration, ClassicError> {
    let ok = u32::try_from(ms)
        .ok()
        .filter(|v| (SESSION_TIMEOUT_MS_MIN..=TIMEOUT_MS_MAX).contains(v));
    ok.map(|v| Duration::from_millis(u64::from(v)))
        .ok_or(ClassicError::InvalidSessionTimeout(ms))
}

/// The protocol every member supports that most members prefer (ties: the first member's
/// order).
fn choose_protocol(g: &CGroup) -> Option<String> {
    let mut common: Option<BTreeSet<&str>> = None;
    for m in g.members.values() {
        let names: BTreeSet<&str> = m.protocols.iter().map(|(n, _)| n.as_str()).collect();
        common = Some(match common {
            None => names,
            Some(c) => c.intersection(&names).copied().collect(),
        });
    }
    let common = common?;
    let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
    for m in g.members.values() {
        if let Some((n, _)) = m
            .protocols
            .iter()
            .find(|(n, _)| common.contains(n.as_str()))
        {
            *votes.entry(n.as_str()).or_default() += 1;
        }
    }
    votes
        .into_iter()
        .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(a.0)))
        .map(|(n, _)| n.to_string())
}

/// The replicated member for a classic member: its protocols and assignment, the
/// partitions of a `consumer` assignment as its target.
fn replicated(
    id: &str,
    m: &CMember,
    generation: u64,
    previous: u64,
    protocol: &str,
    topics: &Topics,
) -> Member {
    let mut target = BTreeSet::new();
    let mut subscription = Subscription::default();
    if let Some(t) = consumer_subscription_topics(&m.metadata(protocol)) {
        subscription.topics = t.into_iter().collect();
    }
    if let Some(a) = consumer_assignment(&m.assignment) {
        for (topic, parts) in a {
            if let Some((id, n)) = topics.by_name.get(&topic) {
                for p in parts {
                    if let Ok(p) = u32::try_from(p)
                        && p < *n
                    {
                        target.insert(TopicPartition::new(id.clone(), p));
                    }
                }
            }
        }
    }
    Member {
        id: id.to_string(),
        epoch: generation,
        previous_epoch: previous,
        client_id: m.client_id.clone(),
        host: m.host.clone(),
        subscription,
        assignor: protocol.to_string(),
        session_timeout_ms: m.session_timeout.as_millis() as u32,
        rebalance_timeout_ms: m.rebalance_timeout.as_millis() as u32,
        heartbeat_interval_ms: 0,
        owned: BTreeSet::new(),
        target,
        classic: Some(ClassicMember {
            protocols: m.protocols.clone(),
            assignment: m.assignment.clone(),
        }),
    }
}

impl Coordinator {
    /// Resets the classic groups when this replica's term changed (a new leadership starts
    /// from the replicated state), and rebuilds `group` from it if unknown here.
    fn classic_group<'a>(
        &self,
        cg: &'a mut ClassicGroups,
        partition: &Partition,
        group: &str,
    ) -> Result<&'a mut CGroup, ClassicError> {
        sync_term(cg, partition);
        if !cg.groups.contains_key(group) {
            let replicated: Option<Group> = self.hook.read(|s| s.groups.get(group).cloned());
            let mut g = CGroup::new(replicated.as_ref().map_or(0, |g| g.epoch as i32));
            if let Some(r) = replicated {
                if r.members.values().any(|m| m.classic.is_none()) {
                    return Err(ClassicError::InconsistentProtocol(format!(
                        "group {group:?} is a native Strata group with {} members; a Kafka \
                         classic member cannot join it",
                        r.members.len()
                    )));
                }
                if let Some((pt, p)) = r.classic_protocol.clone() {
                    g.protocol_type = pt;
                    g.protocol = p;
                }
                let now = Instant::now();
                for (id, m) in &r.members {
                    let c = m.classic.clone().unwrap_or_default();
                    g.members.insert(
                        id.clone(),
                        CMember {
                            client_id: m.client_id.clone(),
                            host: m.host.clone(),
                            session_timeout: Duration::from_millis(u64::from(m.session_timeout_ms)),
                            rebalance_timeout: Duration::from_millis(u64::from(
                                m.rebalance_timeout_ms,
                            )),
                            protocols: c.protocols,
                            assignment: c.assignment,
                            last_seen: now,
                            join: None,
                            sync: None,
                        },
                    );
                }
                if !g.members.is_empty() {
                    g.leader = g.members.keys().next().cloned().unwrap_or_default();
                    if g.members.values().all(|m| m.assignment.is_empty()) {
                        // The last coordinator replicated a join and died before the sync:
                        // the members rejoin (their heartbeats and syncs say so), and the
                        // coordinator's tick closes the barrier.
                        self.prepare_rebalance(&mut g, false, now);
                    } else {
                        g.phase = Phase::Stable;
                    }
                }
            }
            cg.groups.insert(group.to_string(), g);
        }
        cg.groups
            .get_mut(group)
            .ok_or_else(|| ClassicError::UnknownMember(String::new()))
    }

    /// A JoinGroup: answers once the barrier closes (see the module docs).
    pub async fn classic_join(
        self: &Arc<Self>,
        partition: &Arc<Partition>,
        req: JoinRequest,
        topics: &Topics,
    ) -> Result<JoinResponse, ClassicError> {
        check_group_name(&req.group)?;
        let session = timeout_of(req.session_timeout_ms)?;
        // A rebalance timeout is Java's max.poll.interval.ms: often larger than the longest
        // session; it is capped, not refused.
        let rebalance = if req.rebalance_timeout_ms <= 0 {
            session
        } else {
            Duration::from_millis(
                (req.rebalance_timeout_ms as u64)
                    .clamp(u64::from(SESSION_TIMEOUT_MS_MIN), u64::from(TIMEOUT_MS_MAX)),
            )
        };
        if req.protocols.is_empty() || req.protocol_type.is_empty() {
            return Err(ClassicError::InconsistentProtocol(
                "a JoinGroup names a protocol type and at least one protocol".into(),
            ));
        }
        partition
            .ensure_serving()
            .await
            .map_err(CoordinatorError::from)?;
        let native = self.hook.read(|s| {
            s.groups.get(&req.group).map_or(0, |g| {
                g.members.values().filter(|m| m.classic.is_none()).count()
            })
        });
        if native > 0 {
            return Err(ClassicError::InconsistentProtocol(format!(
                "group {:?} is a native Strata group with {native} members; a Kafka classic \
                 member cannot join it",
                req.group
            )));
        }
        let rx = {
            let mut cg = self.classic.lock().await;
            let g = self.classic_group(&mut cg, partition, &req.group)?;
            if !g.members.is_empty() && g.protocol_type != req.protocol_type {
                return Err(ClassicError::InconsistentProtocol(format!(
                    "the group's protocol type is {:?}, the member's {:?}",
                    g.protocol_type, req.protocol_type
                )));
            }
            // The protocols every other member supports (the member rejoining excepted).
            let mut common: Option<BTreeSet<&str>> = None;
            for (_, m) in g.members.iter().filter(|(id, _)| **id != req.member_id) {
                let names: BTreeSet<&str> = m.protocols.iter().map(|(n, _)| n.as_str()).collect();
                common = Some(match common {
                    None => names,
                    Some(c) => c.intersection(&names).copied().collect(),
                });
            }
            if let Some(common) = common
                && !req
                    .protocols
                    .iter()
                    .any(|(n, _)| common.contains(n.as_str()))
            {
                return Err(ClassicError::InconsistentProtocol(format!(
                    "none of the member's protocols {:?} is supported by every member of the \
                     group ({common:?})",
                    req.protocols.iter().map(|(n, _)| n).collect::<Vec<_>>()
                )));
            }
            let member_id = if req.member_id.is_empty() {
                if g.members.len() >= CLASSIC_MEMBERS_MAX {
                    return Err(ClassicError::GroupFull);
                }
                let id = format!(
                    "{}-{}",
                    if req.client_id.is_empty() {
                        "member"
                    } else {
                        &req.client_id
                    },
                    uuid::Uuid::new_v4()
                );
                if req.id_required {
                    g.pending_ids.insert(id.clone());
                    return Err(ClassicError::MemberIdRequired(id));
                }
                id
            } else {
                if !g.members.contains_key(&req.member_id) && !g.pending_ids.remove(&req.member_id)
                {
                    return Err(ClassicError::UnknownMember(req.member_id));
                }
                req.member_id.clone()
            };
            let now = Instant::now();
            let (tx, rx) = oneshot::channel();
            let was_empty = g.members.is_empty();
            let m = g.members.entry(member_id.clone()).or_insert(CMember {
                client_id: req.client_id.clone(),
                host: req.host.clone(),
                session_timeout: session,
                rebalance_timeout: rebalance,
                protocols: Vec::new(),
                assignment: Vec::new(),
                last_seen: now,
                join: None,
                sync: None,
            });
            m.protocols = req.protocols.clone();
            m.session_timeout = session;
            m.rebalance_timeout = rebalance;
            m.last_seen = now;
            if let Some(old) = m.join.replace(tx) {
                let _ = old.send(Err(ClassicError::UnknownMember(member_id.clone())));
            }
            if let Some(old) = m.sync.take() {
                let _ = old.send(Err(ClassicError::RebalanceInProgress));
            }
            if was_empty {
                g.protocol_type = req.protocol_type.clone();
            }
            if g.phase != Phase::PreparingRebalance {
                self.prepare_rebalance(g, was_empty, now);
                self.arm_barrier(partition, &req.group, topics);
            } else if g.not_before.is_some() {
                // New members keep the initial window open, within the rebalance timeout.
                let limit = g.deadline.unwrap_or(now);
                g.not_before = Some((now + INITIAL_REBALANCE_DELAY).min(limit));
            }
            drop(cg);
            self.classic_try_complete(partition, &req.group, topics, false)
                .await;
            rx
        };
        // A dropped channel: the group was forgotten (a failed replication, a new term).
        rx.await
            .unwrap_or(Err(ClassicError::Coordinator(CoordinatorError::Partition(
                strata_raft::error::PartitionError::Stopped,
            ))))
    }

    fn prepare_rebalance(&self, g: &mut CGroup, initial: bool, now: Instant) {
        g.phase = Phase::PreparingRebalance;
        let longest = g
            .members
            .values()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or(Duration::from_secs(1));
        g.deadline = Some(now + longest);
        g.not_before = initial.then(|| (now + INITIAL_REBALANCE_DELAY).min(now + longest));
        for m in g.members.values_mut() {
            if let Some(s) = m.sync.take() {
                let _ = s.send(Err(ClassicError::RebalanceInProgress));
            }
        }
    }

    /// Wakes the barrier of `group` at its deadlines (the initial delay, the rebalance
    /// timeout), so it closes even when no request arrives.
    fn arm_barrier(self: &Arc<Self>, partition: &Arc<Partition>, group: &str, topics: &Topics) {
        let me = self.clone();
        let p = partition.clone();
        let group = group.to_string();
        let topics = topics.clone();
        tokio::spawn(async move {
            loop {
                let next = {
                    let cg = me.classic.lock().await;
                    match cg.groups.get(&group) {
                        Some(g) if g.phase == Phase::PreparingRebalance => {
                            match (g.not_before, g.deadline) {
                                (Some(nb), _) if nb > Instant::now() => Some(nb),
                                (_, Some(d)) => Some(d),
                                _ => None,
                            }
                        }
                        _ => None,
                    }
                };
                let Some(at) = next else { return };
                tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await;
                me.classic_try_complete(&p, &group, &topics, true).await;
            }
        });
    }

    /// Closes the barrier of `group` if every member joined (after the initial delay), or
    /// if `timer` and its deadline passed (members that did not rejoin are removed).
    async fn classic_try_complete(
        &self,
        partition: &Partition,
        group: &str,
        topics: &Topics,
        timer: bool,
    ) {
        let mut cg = self.classic.lock().await;
        sync_term(&mut cg, partition);
        let Some(g) = cg.groups.get_mut(group) else {
            return;
        };
        if g.phase != Phase::PreparingRebalance {
            return;
        }
        let now = Instant::now();
        let all_joined = g.members.values().all(|m| m.join.is_some());
        let waiting = g.not_before.is_some_and(|nb| nb > now);
        let past_deadline = timer && g.deadline.is_some_and(|d| d <= now);
        let ready = all_joined && !waiting;
        if !ready && !past_deadline {
            return;
        }
        let before = g.generation;
        let gone: Vec<String> = g
            .members
            .iter()
            .filter(|(_, m)| m.join.is_none())
            .map(|(id, _)| id.clone())
            .collect();
        for id in &gone {
            g.members.remove(id);
        }
        g.generation = before.saturating_add(1);
        debug_assert!(g.generation > before, "a classic generation only grows");
        g.deadline = None;
        g.not_before = None;
        if g.members.is_empty() {
            g.phase = Phase::Empty;
            g.leader.clear();
        } else {
            g.phase = Phase::CompletingRebalance;
            if !g.members.contains_key(&g.leader) {
                g.leader = g.members.keys().next().cloned().unwrap_or_default();
            }
            g.protocol = choose_protocol(g).unwrap_or_default();
            for m in g.members.values_mut() {
                m.assignment.clear();
            }
        }
        let cmd = self.classic_update(group, g, before, &gone, topics);
        let result = propose(&self.hook, partition, &cmd).await;
        let Some(g) = cg.groups.get_mut(group) else {
            return;
        };
        if let Err(e) = result {
            tracing::info!(group, error = %e, "classic rebalance not replicated");
            // Dropping the group drops its waiters' channels: they answer NOT_COORDINATOR.
            cg.groups.remove(group);
            return;
        }
        if !gone.is_empty() {
            tracing::info!(group, members = ?gone, "members removed: they did not rejoin in time");
        }
        let members: Vec<(String, Vec<u8>)> = g
            .members
            .iter()
            .map(|(id, m)| {
                let meta = m.metadata(&g.protocol);
                (id.clone(), meta)
            })
            .collect();
        for (id, m) in g.members.iter_mut() {
            if let Some(tx) = m.join.take() {
                let _ = tx.send(Ok(JoinResponse {
                    generation: g.generation,
                    protocol_type: g.protocol_type.clone(),
                    protocol: g.protocol.clone(),
                    leader: g.leader.clone(),
                    member_id: id.clone(),
                    members: if *id == g.leader {
                        members.clone()
                    } else {
                        Vec::new()
                    },
                }));
            }
        }
    }

    /// The command replicating `g` (members, generation, protocol) after generation `before`.
    fn classic_update(
        &self,
        group: &str,
        g: &CGroup,
        before: i32,
        gone: &[String],
        topics: &Topics,
    ) -> Command {
        Command::Update {
            group: group.to_string(),
            epoch: g.generation.max(0) as u64,
            put: g
                .members
                .iter()
                .map(|(id, m)| {
                    replicated(
                        id,
                        m,
                        g.generation.max(0) as u64,
                        before.max(0) as u64,
                        &g.protocol,
                        topics,
                    )
                })
                .collect(),
            remove: gone
                .iter()
                .map(|id| (id.clone(), "left the classic group".to_string()))
                .collect(),
            classic: Some((g.protocol_type.clone(), g.protocol.clone())),
        }
    }

    /// A SyncGroup: the leader's brings the assignments; every member gets its own once
    /// they are replicated.
    pub async fn classic_sync(
        &self,
        partition: &Partition,
        group: &str,
        member_id: &str,
        generation: i32,
        assignments: Vec<(String, Vec<u8>)>,
        topics: &Topics,
    ) -> Result<SyncResponse, ClassicError> {
        check_group_name(group)?;
        partition
            .ensure_serving()
            .await
            .map_err(CoordinatorError::from)?;
        let (rx, wait) = {
            let mut cg = self.classic.lock().await;
            let g = self.classic_group(&mut cg, partition, group)?;
            member_at(g, member_id, generation)?;
            match g.phase {
                Phase::Empty | Phase::PreparingRebalance => {
                    return Err(ClassicError::RebalanceInProgress);
                }
                Phase::Stable => {
                    return Ok(SyncResponse {
                        protocol_type: g.protocol_type.clone(),
                        protocol: g.protocol.clone(),
                        assignment: g
                            .members
                            .get(member_id)
                            .map(|m| m.assignment.clone())
                            .unwrap_or_default(),
                    });
                }
                Phase::CompletingRebalance => {}
            }
            let (tx, rx) = oneshot::channel();
            let mut wait = Duration::from_secs(60);
            if let Some(m) = g.members.get_mut(member_id) {
                m.sync = Some(tx);
                wait = m.rebalance_timeout;
            }
            if member_id == g.leader {
                let mut given: HashMap<String, Vec<u8>> = assignments.into_iter().collect();
                for (id, m) in g.members.iter_mut() {
                    m.assignment = given.remove(id).unwrap_or_default();
                }
                let cmd = self.classic_update(group, g, g.generation - 1, &[], topics);
                let result = propose(&self.hook, partition, &cmd).await;
                let g = cg
                    .groups
                    .get_mut(group)
                    .ok_or_else(|| ClassicError::UnknownMember(member_id.to_string()))?;
                match result {
                    Ok(()) => {
                        g.phase = Phase::Stable;
                        for m in g.members.values_mut() {
                            if let Some(tx) = m.sync.take() {
                                let _ = tx.send(Ok(SyncResponse {
                                    protocol_type: g.protocol_type.clone(),
                                    protocol: g.protocol.clone(),
                                    assignment: m.assignment.clone(),
                                }));
                            }
                        }
                    }
                    Err(e) => {
                        // The other members' syncs see their channel dropped and rejoin.
                        cg.groups.remove(group);
                        return Err(e.into());
                    }
                }
            }
            (rx, wait)
        };
        // Without the leader's sync within the rebalance timeout (or with this coordinator
        // deposed), the member joins again.
        match tokio::time::timeout(wait, rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) | Err(_) => Err(ClassicError::RebalanceInProgress),
        }
    }

    /// A Heartbeat: REBALANCE_IN_PROGRESS while members must rejoin.
    pub async fn classic_heartbeat(
        &self,
        partition: &Partition,
        group: &str,
        member_id: &str,
        generation: i32,
    ) -> Result<(), ClassicError> {
        check_group_name(group)?;
        partition
            .ensure_serving()
            .await
            .map_err(CoordinatorError::from)?;
        let mut cg = self.classic.lock().await;
        let g = self.classic_group(&mut cg, partition, group)?;
        let Some(m) = g.members.get_mut(member_id) else {
            return Err(ClassicError::UnknownMember(member_id.to_string()));
        };
        m.last_seen = Instant::now();
        match g.phase {
            Phase::PreparingRebalance => Err(ClassicError::RebalanceInProgress),
            _ if generation != g.generation => Err(ClassicError::IllegalGeneration {
                current: g.generation,
                got: generation,
            }),
            _ => Ok(()),
        }
    }

    /// A LeaveGroup of `members`: each is removed (unknown ones are reported); the others
    /// rebalance.
    pub async fn classic_leave(
        self: &Arc<Self>,
        partition: &Arc<Partition>,
        group: &str,
        members: &[String],
        topics: &Topics,
    ) -> Result<Vec<(String, Option<ClassicError>)>, ClassicError> {
        check_group_name(group)?;
        partition
            .ensure_serving()
            .await
            .map_err(CoordinatorError::from)?;
        let mut out = Vec::new();
        {
            let mut cg = self.classic.lock().await;
            let g = self.classic_group(&mut cg, partition, group)?;
            let mut removed = Vec::new();
            for id in members {
                match g.members.remove(id) {
                    Some(m) => {
                        if let Some(j) = m.join {
                            let _ = j.send(Err(ClassicError::UnknownMember(id.clone())));
                        }
                        if let Some(s) = m.sync {
                            let _ = s.send(Err(ClassicError::UnknownMember(id.clone())));
                        }
                        removed.push(id.clone());
                        out.push((id.clone(), None));
                    }
                    None => out.push((id.clone(), Some(ClassicError::UnknownMember(id.clone())))),
                }
            }
            if removed.is_empty() {
                return Ok(out);
            }
            self.classic_changed(&mut cg, partition, group, removed, topics)
                .await?;
        }
        self.arm_barrier(partition, group, topics);
        self.classic_try_complete(partition, group, topics, false)
            .await;
        Ok(out)
    }

    /// After members were removed from `group`: replicate the removal and rebalance the
    /// rest (or leave the group empty at a new generation).
    async fn classic_changed(
        &self,
        cg: &mut ClassicGroups,
        partition: &Partition,
        group: &str,
        removed: Vec<String>,
        topics: &Topics,
    ) -> Result<(), ClassicError> {
        let Some(g) = cg.groups.get_mut(group) else {
            return Ok(());
        };
        let before = g.generation;
        if g.members.is_empty() {
            g.phase = Phase::Empty;
            g.generation = before.saturating_add(1);
            g.leader.clear();
            g.deadline = None;
            g.not_before = None;
        } else if g.phase != Phase::PreparingRebalance {
            self.prepare_rebalance(g, false, Instant::now());
        }
        let mut cmd = self.classic_update(group, g, before, &removed, topics);
        if let Command::Update { epoch, put, .. } = &mut cmd {
            // Members that stay keep their generation until the rebalance completes.
            *epoch = g.generation.max(0) as u64;
            put.clear();
        }
        if let Err(e) = propose(&self.hook, partition, &cmd).await {
            cg.groups.remove(group);
            return Err(e.into());
        }
        Ok(())
    }

    /// Whether a commit by `member_id` at `generation` may go ahead now: the member is in
    /// the group at that generation and no assignment is being computed (Kafka accepts
    /// commits while members rejoin, and refuses them between the join and the sync).
    pub async fn classic_check_commit(
        &self,
        partition: &Partition,
        group: &str,
        member_id: &str,
        generation: i32,
    ) -> Result<(), ClassicError> {
        let mut cg = self.classic.lock().await;
        let g = self.classic_group(&mut cg, partition, group)?;
        member_at(g, member_id, generation)?;
        if g.phase == Phase::CompletingRebalance {
            return Err(ClassicError::RebalanceInProgress);
        }
        Ok(())
    }

    /// The classic view of `group` (phase, protocol, members), if this coordinator runs it
    /// as a classic group.
    pub async fn classic_describe(
        &self,
        partition: &Partition,
        group: &str,
    ) -> Option<ClassicDescription> {
        let mut cg = self.classic.lock().await;
        let g = self.classic_group(&mut cg, partition, group).ok()?;
        if g.protocol_type.is_empty() && g.members.is_empty() {
            return None;
        }
        Some(ClassicDescription {
            phase: g.phase,
            protocol_type: g.protocol_type.clone(),
            protocol: g.protocol.clone(),
            members: g
                .members
                .iter()
                .map(|(id, m)| {
                    let meta = m.metadata(&g.protocol);
                    ClassicMemberView {
                        member_id: id.clone(),
                        client_id: m.client_id.clone(),
                        host: m.host.clone(),
                        metadata: meta,
                        assignment: m.assignment.clone(),
                    }
                })
                .collect(),
        })
    }

    /// Removes classic members not heard from within their session timeout (members
    /// waiting in a join are heard from). Run by the coordinator's tick.
    pub(crate) async fn classic_expire(&self, partition: &Partition, topics: &Topics) {
        let mut cg = self.classic.lock().await;
        sync_term(&mut cg, partition);
        let now = Instant::now();
        let expired: Vec<(String, Vec<String>)> = cg
            .groups
            .iter()
            .map(|(name, g)| {
                let ids = g
                    .members
                    .iter()
                    .filter(|(_, m)| {
                        m.join.is_none() && now.duration_since(m.last_seen) > m.session_timeout
                    })
                    .map(|(id, _)| id.clone())
                    .collect::<Vec<_>>();
                (name.clone(), ids)
            })
            .filter(|(_, ids)| !ids.is_empty())
            .collect();
        for (group, ids) in expired {
            if let Some(g) = cg.groups.get_mut(&group) {
                for id in &ids {
                    if let Some(m) = g.members.remove(id)
                        && let Some(s) = m.sync
                    {
                        let _ = s.send(Err(ClassicError::UnknownMember(id.clone())));
                    }
                }
            }
            tracing::info!(group, members = ?ids, "classic members removed: session timeout");
            if let Err(e) = self
                .classic_changed(&mut cg, partition, &group, ids, topics)
                .await
            {
                tracing::debug!(group, error = %e, "cannot replicate an expiry");
            }
        }
    }

    /// Closes the barriers that can close: their deadline passed (the timers do it too;
    /// this catches a timer lost with a cancelled task), or every member left has joined
    /// (after the one missing expired or left).
    pub(crate) async fn classic_deadlines(&self, partition: &Partition, topics: &Topics) {
        let due: Vec<String> = {
            let mut cg = self.classic.lock().await;
            sync_term(&mut cg, partition);
            cg.groups
                .iter()
                .filter(|(_, g)| g.phase == Phase::PreparingRebalance)
                .map(|(n, _)| n.clone())
                .collect()
        };
        for group in due {
            self.classic_try_complete(partition, &group, topics, true)
                .await;
        }
    }
}
