//! The partition replicas this node hosts, kept in line with the controller's metadata.
//!
//! [`Replicas::reconcile`] runs on every metadata change: it opens the replicas assigned to
//! this node (initializing a new group with its first replica set), closes and removes the
//! ones no longer assigned (topic deleted, replica moved away), and removes leftover
//! directories of deleted topics found on disk. Leaders also carry out replica moves
//! ([`Replicas::drive_moves`]) and hand leadership back to preferred leaders.

use crate::meta::{ClusterMeta, Command, NodeId, PartitionMeta, TopicConfig};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use strata_log::{Disk, FlusherHandle, LogConfig};
use strata_raft::GroupId;
use strata_raft::error::PartitionError;
use strata_raft::liveness::Liveness;
use strata_raft::partition::{Partition, PartitionConfig, RaftTiming};
use strata_raft::replica::{Replica, ReplicaStatus};
use strata_raft::state_machine::StateHook;
use strata_raft::transport::{GroupRegistry, PeerNetwork, Peers};

/// How long a new group's other first replicas wait for its preferred leader before they
/// start the group themselves.
const INIT_GRACE: Duration = Duration::from_secs(5);

/// A replica this node hosts.
pub struct Hosted {
    /// Topic name.
    pub topic: String,
    /// Topic id.
    pub topic_id: String,
    /// Partition number.
    pub partition: u32,
    /// Raft group.
    pub group_id: GroupId,
    /// The supervised replica.
    pub replica: Replica,
    /// Its directory.
    pub dir: PathBuf,
}

impl Hosted {
    /// The running partition, if up.
    pub fn partition(&self) -> Option<Arc<Partition>> {
        self.replica.partition()
    }
}

/// How many replicas hand leadership away or stop at once during a shutdown (each waits on
/// other nodes or on its log's last sync; one after another, 300 replicas took 20 s).
const PARALLEL_STOPS: usize = 64;

/// What replicas need from the node.
#[derive(Clone)]
pub struct ReplicaEnv {
    /// This node.
    pub node_id: NodeId,
    /// `<data dir>/partitions`.
    pub dir: PathBuf,
    /// Peer channels.
    pub peers: Arc<Peers>,
    /// Groups the peer server routes to.
    pub registry: Arc<GroupRegistry>,
    /// Liveness ticker.
    pub liveness: Arc<Liveness>,
    /// The data dir's flusher.
    pub flusher: FlusherHandle,
    /// The disk the replicas' logs write through.
    pub disk: Arc<dyn Disk>,
    /// Raft timing.
    pub timing: RaftTiming,
    /// The replicated-state hook of a replica being opened, by topic name and Raft group
    /// (the group coordinators of `__consumer_offsets`); `None` for plain topics.
    pub hooks: Option<HookFactory>,
}

/// Gives the replica of a topic's Raft group its [`StateHook`], if the topic has one.
pub type HookFactory = Arc<dyn Fn(&str, GroupId) -> Option<Arc<dyn StateHook>> + Send + Sync>;

/// The hosted replicas.
pub struct Replicas {
    env: ReplicaEnv,
    hosted: RwLock<HashMap<GroupId, Arc<Hosted>>>,
    /// Moves being driven by this node (group ids).
    moving: Mutex<HashSet<GroupId>>,
    /// Serializes reconciles.
    reconciling: tokio::sync::Mutex<()>,
}

/// The directory name of a partition replica: `<topic id>-<partition>`.
pub fn partition_dir_name(topic_id: &str, partition: u32) -> String {
    format!("{topic_id}-{partition}")
}

fn parse_dir_name(name: &str) -> Option<(String, u32)> {
    let (id, p) = name.rsplit_once('-')?;
    Some((id.to_string(), p.parse().ok()?))
}

struct Desired<'a> {
    topic: &'a str,
    topic_id: &'a str,
    partition: u32,
    meta: &'a PartitionMeta,
    config: &'a TopicConfig,
}

impl Replicas {
    /// No replicas yet.
    pub fn new(env: ReplicaEnv) -> Arc<Replicas> {
        Arc::new(Replicas {
            env,
            hosted: RwLock::default(),
            moving: Mutex::default(),
            reconciling: tokio::sync::Mutex::new(()),
        })
    }

    /// The replica of group `group_id`, if hosted.
    pub fn get(&self, group_id: GroupId) -> Option<Arc<Hosted>> {
        strata_record::sync::read(&self.hosted)
            .get(&group_id)
            .cloned()
    }

    /// Every hosted replica.
    pub fn all(&self) -> Vec<Arc<Hosted>> {
        strata_record::sync::read(&self.hosted)
            .values()
            .cloned()
            .collect()
    }

    fn desired<'a>(&self, meta: &'a ClusterMeta) -> BTreeMap<GroupId, Desired<'a>> {
        let me = self.env.node_id;
        let mut out = BTreeMap::new();
        for (name, t) in &meta.topics {
            for (i, p) in t.partitions.iter().enumerate() {
                let mine =
                    p.replicas.contains(&me) || p.target.as_ref().is_some_and(|t| t.contains(&me));
                if mine {
                    out.insert(
                        p.group_id,
                        Desired {
                            topic: name,
                            topic_id: &t.id,
                            partition: i as u32,
                            meta: p,
                            config: &t.config,
                        },
                    );
                }
            }
        }
        out
    }

    /// Brings the hosted replicas in line with `meta`.
    pub async fn reconcile(&self, meta: &ClusterMeta) {
        let _one = self.reconciling.lock().await;
        for (id, n) in &meta.nodes {
            if *id != self.env.node_id {
                self.env.peers.set_incarnation(*id, n.incarnation);
            }
        }
        let desired = self.desired(meta);
        // Close what is no longer ours.
        let gone: Vec<Arc<Hosted>> = self
            .all()
            .into_iter()
            .filter(|h| !desired.contains_key(&h.group_id))
            .collect();
        for h in gone {
            tracing::info!(topic = %h.topic, partition = h.partition, group = h.group_id.get(),
                "replica no longer assigned here: closing and removing it");
            self.close(h.group_id, true).await;
        }
        // Open what is ours.
        for (group, d) in &desired {
            if self.get(*group).is_some() {
                continue;
            }
            if let Err(e) = self.open(d, meta).await {
                tracing::error!(topic = d.topic, partition = d.partition, error = %e,
                    "cannot open replica");
            }
        }
        self.collect_garbage(meta).await;
    }

    async fn open(&self, d: &Desired<'_>, meta: &ClusterMeta) -> Result<(), PartitionError> {
        let env = &self.env;
        let dir = env.dir.join(partition_dir_name(d.topic_id, d.partition));
        let group = d.meta.group_id;
        let mut config = PartitionConfig::new(group, env.node_id, &dir);
        config.timing = env.timing.clone();
        config.log = LogConfig {
            segment_bytes_max: d.config.segment_bytes,
            ..LogConfig::default()
        };
        config.disk = env.disk.clone();
        let peers = env.peers.clone();
        let registry = env.registry.clone();
        let liveness = env.liveness.clone();
        let hook = env.hooks.as_ref().and_then(|f| f(d.topic, group));
        let replica = Replica::start(
            config,
            env.flusher.clone(),
            move || PeerNetwork::new(group, peers.clone()),
            hook,
            move |p: &Arc<Partition>| {
                p.register_with(&registry, group);
                liveness.register(group, p);
            },
            Duration::from_millis(200),
        )
        .await?;
        let hosted = Arc::new(Hosted {
            topic: d.topic.to_string(),
            topic_id: d.topic_id.to_string(),
            partition: d.partition,
            group_id: group,
            replica,
            dir,
        });
        // A new group: the preferred leader writes the first membership and stands for
        // election at once; the other first replicas wait to hear from it, and start the group
        // themselves (with the same membership) only if it is still empty after a grace period
        // (the preferred leader may be down). Several replicas starting at once would split
        // the first votes and leave leaders off their preferred nodes.
        let initial = &d.meta.initial;
        if let Some(p) = hosted.partition()
            && initial.contains(&env.node_id)
            && p.status().last_log_index.is_none()
        {
            let voters: BTreeMap<NodeId, String> = initial
                .iter()
                .filter_map(|n| meta.nodes.get(n).map(|m| (*n, m.peer_addr.clone())))
                .collect();
            if voters.len() == initial.len() {
                let preferred = initial.first() == Some(&env.node_id);
                tokio::spawn(async move {
                    if !preferred {
                        tokio::time::sleep(INIT_GRACE).await;
                        if p.status().last_log_index.is_some() {
                            return;
                        }
                    }
                    match p.initialize(voters).await {
                        Ok(()) => {
                            let _ = p.elect().await;
                        }
                        Err(e) => tracing::debug!(group = group.get(), error = %e, "initialize"),
                    }
                });
            }
        }
        strata_record::sync::write(&self.hosted).insert(group, hosted);
        tracing::info!(
            topic = d.topic,
            partition = d.partition,
            group = group.get(),
            "replica open"
        );
        Ok(())
    }

    /// Closes a hosted replica (handing leadership away first if it leads), and removes its
    /// directory when `remove`.
    pub async fn close(&self, group_id: GroupId, remove: bool) {
        let Some(h) = strata_record::sync::write(&self.hosted).remove(&group_id) else {
            return;
        };
        self.env.registry.remove(group_id);
        self.env.liveness.unregister(group_id);
        let dir = h.dir.clone();
        // Others may hold the replica (a long-poll fetch, a subscription, the retention
        // loop): the group stops regardless, and they get an error (`Partition::close`).
        if let Some(p) = h.replica.stop().await
            && let Err(e) = p.close().await
        {
            tracing::debug!(group_id = group_id.get(), error = %e, "replica close");
        }
        drop(h);
        if remove {
            let d = dir.clone();
            let r = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(&d)).await;
            if let Ok(Err(e)) = r
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(dir = %dir.display(), error = %e, "cannot remove replica directory");
            }
        }
    }

    /// Removes directories of deleted topics, and of partitions moved off this node.
    async fn collect_garbage(&self, meta: &ClusterMeta) {
        let dir = self.env.dir.clone();
        let hosted: BTreeSet<PathBuf> = self.all().iter().map(|h| h.dir.clone()).collect();
        let me = self.env.node_id;
        let mut doomed = Vec::new();
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return;
        };
        for e in entries.flatten() {
            let path = e.path();
            if hosted.contains(&path) {
                continue;
            }
            let Some((topic_id, p)) = e.file_name().to_str().and_then(parse_dir_name) else {
                continue;
            };
            let deleted = meta.deleted_topics.contains(&topic_id);
            let moved_away = meta.topics.values().any(|t| {
                t.id == topic_id
                    && t.partitions.get(p as usize).is_some_and(|pm| {
                        !pm.replicas.contains(&me)
                            && !pm.target.as_ref().is_some_and(|t| t.contains(&me))
                    })
            });
            if deleted || moved_away {
                doomed.push(path);
            }
        }
        for path in doomed {
            tracing::info!(dir = %path.display(), "removing leftover replica directory");
            let p = path.clone();
            let _ = tokio::task::spawn_blocking(move || remove_dir(&p)).await;
        }
    }

    /// Carries out replica moves of partitions this node leads: learners catch up, then the
    /// voters change, then the metadata records the move finished. A leader that is itself
    /// moved away hands leadership to a new replica first, which finishes the move.
    pub fn drive_moves(
        self: &Arc<Self>,
        meta: &ClusterMeta,
        controller: &Arc<crate::controller::Controller>,
    ) {
        for (name, t) in &meta.topics {
            for (i, pm) in t.partitions.iter().enumerate() {
                let Some(target) = pm.target.clone() else {
                    continue;
                };
                let Some(h) = self.get(pm.group_id) else {
                    continue;
                };
                let Some(p) = h.partition() else { continue };
                if !p.is_ready_leader() {
                    continue;
                }
                {
                    let mut moving = strata_record::sync::lock(&self.moving);
                    if !moving.insert(pm.group_id) {
                        continue;
                    }
                }
                let addrs: BTreeMap<NodeId, String> = target
                    .iter()
                    .filter_map(|n| meta.nodes.get(n).map(|m| (*n, m.peer_addr.clone())))
                    .collect();
                let this = self.clone();
                let controller = controller.clone();
                let topic = name.clone();
                let partition = i as u32;
                let group = pm.group_id;
                tokio::spawn(async move {
                    let r = move_partition(&p, this.env.node_id, &target, &addrs).await;
                    match r {
                        Ok(true) => {
                            let cmd = Command::FinishMove {
                                topic: topic.clone(),
                                partition,
                                group_id: group,
                            };
                            if let Err(e) = controller.propose(&cmd, Duration::from_secs(10)).await
                            {
                                tracing::warn!(%topic, partition, error = %e, "finish move");
                            }
                        }
                        Ok(false) => {}
                        Err(e) => tracing::warn!(%topic, partition, error = %e, "replica move"),
                    }
                    strata_record::sync::lock(&this.moving).remove(&group);
                });
            }
        }
    }

    /// Hands leadership to the preferred leader (the first replica) where it is a caught-up
    /// voter, so leaders stay spread after restarts.
    pub async fn prefer_leaders(&self, meta: &ClusterMeta) {
        for h in self.all() {
            let Some(p) = h.partition() else { continue };
            if !p.is_ready_leader() {
                continue;
            }
            let Some(pm) = meta
                .topics
                .get(&h.topic)
                .and_then(|t| t.partitions.get(h.partition as usize))
                .filter(|pm| pm.group_id == h.group_id && pm.target.is_none())
            else {
                continue;
            };
            let Some(&preferred) = pm.replicas.first() else {
                continue;
            };
            if preferred == self.env.node_id {
                continue;
            }
            let alive = self
                .env
                .liveness
                .heard_from(preferred)
                .is_some_and(|d| d < Duration::from_secs(1));
            let st = p.status();
            let caught_up = st.matched.get(&preferred).copied() == st.last_log_index
                && st.voters.contains(&preferred);
            if alive && caught_up {
                tracing::info!(topic = %h.topic, partition = h.partition, to = preferred,
                    "handing leadership to the preferred leader");
                let _ = p.transfer_leader(preferred).await;
            }
        }
    }

    /// Hands leadership of every partition this node leads to another voter (graceful
    /// shutdown), waiting up to `patience` in all.
    pub async fn hand_off_leadership(&self, patience: Duration) {
        use futures_util::StreamExt;
        let deadline = tokio::time::Instant::now() + patience;
        let me = self.env.node_id;
        let led: Vec<Arc<Partition>> = self
            .all()
            .iter()
            .filter_map(|h| h.partition())
            .filter(|p| p.leads())
            .collect();
        futures_util::stream::iter(led)
            .for_each_concurrent(PARALLEL_STOPS, |p| async move {
                handoff(&p, me, deadline).await;
            })
            .await;
    }

    /// Stops every replica (without removing data), many at once.
    pub async fn close_all(&self) {
        use futures_util::StreamExt;
        let groups: Vec<GroupId> = self.all().iter().map(|h| h.group_id).collect();
        futures_util::stream::iter(groups)
            .for_each_concurrent(PARALLEL_STOPS, |g| self.close(g, false))
            .await;
    }

    /// Stops every replica as a power loss would ([`Partition::halt`]: no flush, no clean
    /// close), for the in-process harness's node crashes.
    pub async fn crash_all(&self) {
        use futures_util::StreamExt;
        let hosted: Vec<Arc<Hosted>> = strata_record::sync::write(&self.hosted)
            .drain()
            .map(|(_, h)| h)
            .collect();
        futures_util::stream::iter(hosted)
            .for_each_concurrent(PARALLEL_STOPS, |h| async move {
                self.env.registry.remove(h.group_id);
                self.env.liveness.unregister(h.group_id);
                if let Some(p) = h.replica.stop().await {
                    let _ = p.halt().await;
                }
            })
            .await;
    }

    /// Replicas that are down (storage failure, reopening).
    pub fn down(&self) -> usize {
        self.all()
            .iter()
            .filter(|h| matches!(h.replica.status(), ReplicaStatus::Down { .. }))
            .count()
    }
}

/// Hands leadership of `p` to another voter if this node leads it, waiting until it moved or
/// `deadline` passed.
pub async fn handoff(p: &Arc<Partition>, me: NodeId, deadline: tokio::time::Instant) {
    if !p.leads() {
        return;
    }
    let st = p.status();
    let Some(to) = st
        .voters
        .iter()
        .copied()
        .filter(|v| *v != me)
        .max_by_key(|v| st.matched.get(v).copied())
    else {
        return;
    };
    if p.transfer_leader(to).await.is_err() {
        return;
    }
    let wait = deadline.saturating_duration_since(tokio::time::Instant::now());
    let _ = p
        .wait_leader_is_not(me, wait.min(Duration::from_secs(3)))
        .await;
}

/// Why a step of a replica move failed (it is retried on the next pass).
#[derive(Debug, thiserror::Error)]
pub enum MoveError {
    /// The metadata has no address for a target node.
    #[error("node {0} has no address")]
    NoAddress(NodeId),
    /// The partition refused a membership change or a leader transfer.
    #[error(transparent)]
    Partition(#[from] PartitionError),
}

/// One step of a move; `Ok(true)` when the voters equal `target`.
async fn move_partition(
    p: &Arc<Partition>,
    me: NodeId,
    target: &[NodeId],
    addrs: &BTreeMap<NodeId, String>,
) -> Result<bool, MoveError> {
    let voters: BTreeSet<NodeId> = p.status().voters.into_iter().collect();
    let target_set: BTreeSet<NodeId> = target.iter().copied().collect();
    if voters == target_set {
        return Ok(true);
    }
    for n in target_set.difference(&voters) {
        let addr = addrs.get(n).cloned().ok_or(MoveError::NoAddress(*n))?;
        p.add_learner(*n, addr, true).await?;
    }
    let new: BTreeSet<NodeId> = target_set.difference(&voters).copied().collect();
    if !new.is_empty() {
        p.promote(new).await?;
    }
    if !target_set.contains(&me) {
        // Let a replica that stays finish the move.
        let to = target[0];
        p.transfer_leader(to).await?;
        return Ok(false);
    }
    let old: BTreeSet<NodeId> = voters.difference(&target_set).copied().collect();
    if !old.is_empty() {
        p.remove_voters(old).await?;
    }
    let voters: BTreeSet<NodeId> = p.status().voters.into_iter().collect();
    Ok(voters == target_set)
}

fn remove_dir(path: &Path) {
    if let Err(e) = std::fs::remove_dir_all(path)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(dir = %path.display(), error = %e, "cannot remove directory");
    }
}
