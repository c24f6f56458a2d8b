//! An in-process cluster of partition replicas for one Raft group, over [`crate::memnet`]
//! (links the test can cut, delay, drop and reorder) and per-node [`SimDisk`]s (a crash
//! discards everything not synced), with one checker per invariant.

use crate::memnet::{MemNetwork, Router};
use bytes::Bytes;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use strata_log::sim::{CrashMode, SimDisk};
use strata_log::{Flusher, LogConfig};
use strata_raft::error::PartitionError;
use strata_raft::liveness::{Liveness, LivenessConfig, LivenessMessage, LivenessSender};
use strata_raft::partition::{Acks, Partition, PartitionConfig, RaftTiming};
use strata_raft::replica::{Replica, ReplicaStatus};
use strata_raft::types::NodeId;
use strata_raft::{GroupId, RaftIndex};
use strata_record::sync::lock;

/// Raft timing for tests: fast elections, so faults resolve in well under a second.
pub fn fast_timing() -> RaftTiming {
    RaftTiming {
        heartbeat_ms: 50,
        election_timeout_min_ms: 200,
        election_timeout_max_ms: 400,
    }
}

struct Node {
    sim: Arc<SimDisk>,
    flusher: Flusher,
    replica: Option<Replica>,
    liveness: Arc<Liveness>,
}

/// Liveness timing for tests: groups sleep after 300 ms idle.
pub fn fast_liveness() -> LivenessConfig {
    LivenessConfig {
        interval_ms: 50,
        idle_ms: 300,
        silence_ms: 300,
        lease_ms: 400,
    }
}

/// Delivers liveness messages in process, through the router's cuts and isolation.
struct MemLiveness {
    router: Arc<Router>,
    nodes: Arc<Mutex<HashMap<NodeId, Arc<Liveness>>>>,
}

impl LivenessSender for MemLiveness {
    fn send(
        &self,
        to: NodeId,
        _addr: &str,
        msg: LivenessMessage,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + 'static>>
    {
        let target = lock(&self.nodes).get(&to).cloned();
        let allowed = self.router.allows(msg.from, to);
        Box::pin(async move {
            match target {
                Some(l) if allowed => {
                    l.on_message(&msg);
                    Ok(())
                }
                _ => Err(format!("node {to} unreachable")),
            }
        })
    }
}

/// Observed leaders per term, from every node's metrics (checker: one leader per term).
#[derive(Debug, Default)]
pub struct LeaderLog {
    by_term: Mutex<HashMap<u64, BTreeSet<NodeId>>>,
}

impl LeaderLog {
    /// Asserts no term had two leaders.
    pub fn check(&self) {
        let m = strata_record::sync::lock(&self.by_term);
        for (term, leaders) in m.iter() {
            assert!(leaders.len() <= 1, "term {term} had leaders {leaders:?}");
        }
    }
}

/// A cluster of `n` replicas of group `group`.
pub struct Cluster {
    /// The links between nodes.
    pub router: Arc<Router>,
    root: tempfile::TempDir,
    nodes: Mutex<BTreeMap<NodeId, Node>>,
    group: GroupId,
    timing: RaftTiming,
    log_config: LogConfig,
    /// Leaders seen per term.
    pub leaders: Arc<LeaderLog>,
    /// Opens that found recorded data lost (the replica came up quarantined), by node and the
    /// Raft index it must hold again. Without injected damage this must stay empty.
    pub lost_on_open: Arc<Mutex<Vec<(NodeId, RaftIndex)>>>,
    livenesses: Arc<Mutex<HashMap<NodeId, Arc<Liveness>>>>,
    watchers: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

/// An error from the harness's retrying client.
pub type ClientResult<T> = Result<T, PartitionError>;

impl Cluster {
    /// Starts `n` nodes (ids 1..=n) and initializes the group with all of them as voters.
    pub async fn start(n: u64, seed: u64) -> Cluster {
        let root = tempfile::tempdir().expect("tempdir");
        let c = Cluster {
            router: Router::new(seed),
            root,
            nodes: Mutex::new(BTreeMap::new()),
            group: GroupId::new(1),
            timing: fast_timing(),
            log_config: LogConfig {
                segment_bytes_max: 64 * 1024,
                preallocate_bytes_step: 16 * 1024,
                preallocate_bytes_min: 16 * 1024,
                ..LogConfig::default()
            },
            leaders: Arc::new(LeaderLog::default()),
            lost_on_open: Arc::default(),
            livenesses: Arc::new(Mutex::new(HashMap::new())),
            watchers: Mutex::new(Vec::new()),
        };
        for id in 1..=n {
            c.insert_node(id);
            c.open_node(id).await;
        }
        let voters: BTreeMap<NodeId, String> =
            (1..=n).map(|id| (id, format!("node-{id}"))).collect();
        c.partition(1).initialize(voters).await.expect("initialize");
        c
    }

    /// Adds node `id` (not a member: make it a learner through the leader).
    pub async fn add_node(&self, id: NodeId) {
        self.insert_node(id);
        self.open_node(id).await;
    }

    /// Creates node `id`'s disk, flusher and liveness ticker (its replica is opened apart).
    fn insert_node(&self, id: NodeId) {
        let sim =
            Arc::new(SimDisk::new(self.root.path().join(format!("trash-{id}"))).expect("sim"));
        let flusher = Flusher::start(&format!("n{id}")).expect("flusher");
        let liveness = Liveness::new(id, fast_liveness());
        lock(&self.livenesses).insert(id, liveness.clone());
        let sender = Arc::new(MemLiveness {
            router: self.router.clone(),
            nodes: self.livenesses.clone(),
        });
        lock(&self.watchers).push(tokio::spawn(
            liveness.clone().run(sender, std::future::pending()),
        ));
        lock(&self.nodes).insert(
            id,
            Node {
                sim,
                flusher,
                replica: None,
                liveness,
            },
        );
    }

    /// Node `id`'s partition directory (its log files), to damage them between a crash and a
    /// restart.
    pub fn node_dir(&self, id: NodeId) -> std::path::PathBuf {
        self.root.path().join(format!("node-{id}"))
    }

    fn config(&self, id: NodeId) -> PartitionConfig {
        let mut cfg = PartitionConfig::new(self.group, id, self.node_dir(id));
        cfg.timing = self.timing.clone();
        cfg.log = self.log_config.clone();
        cfg.write_timeout_ms = 5_000;
        cfg.disk = lock(&self.nodes)[&id].sim.clone();
        cfg
    }

    /// Opens node `id`'s replica (after a crash it recovers from its disk), supervised: a
    /// storage failure makes it reopen from disk after a short backoff.
    pub async fn open_node(&self, id: NodeId) {
        let cfg = self.config(id);
        let group = self.group;
        let router = self.router.clone();
        let net_router = self.router.clone();
        let network = move || MemNetwork {
            group,
            from: id,
            router: net_router.clone(),
        };
        let flusher = lock(&self.nodes)[&id].flusher.handle();
        let leaders = self.leaders.clone();
        let liveness = lock(&self.nodes)[&id].liveness.clone();
        let lost = self.lost_on_open.clone();
        let on_open = move |p: &Arc<Partition>| {
            if let Some(until) = p.quarantined_until() {
                lock(&lost).push((id, until));
            }
            liveness.register(group, p);
            router.register(group, id, p.peer_handle());
            let mut rx = p.raft().metrics();
            let leaders = leaders.clone();
            tokio::spawn(async move {
                use openraft::type_config::async_runtime::WatchReceiver;
                loop {
                    {
                        let m = rx.borrow_watched();
                        if m.state == openraft::ServerState::Leader {
                            strata_record::sync::lock(&leaders.by_term)
                                .entry(m.current_term)
                                .or_default()
                                .insert(m.id);
                        }
                    }
                    if rx.changed().await.is_err() {
                        return;
                    }
                }
            });
        };
        let replica = Replica::start(
            cfg,
            flusher,
            network,
            None,
            on_open,
            Duration::from_millis(100),
        )
        .await
        .expect("open partition");
        lock(&self.nodes).get_mut(&id).expect("node").replica = Some(replica);
    }

    /// Node `id`'s replica, if it is up.
    pub fn try_partition(&self, id: NodeId) -> Option<Arc<Partition>> {
        lock(&self.nodes)[&id]
            .replica
            .as_ref()
            .and_then(|r| r.partition())
    }

    /// Node `id`'s replica, waiting while its supervisor reopens it after a failure (the
    /// slot is empty meanwhile); panics at `deadline`.
    pub async fn wait_partition(&self, id: NodeId, deadline: Instant) -> Arc<Partition> {
        loop {
            if let Some(p) = self.try_partition(id) {
                return p;
            }
            assert!(
                Instant::now() < deadline,
                "node {id}'s replica did not come back up"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Node `id`'s replica.
    pub fn partition(&self, id: NodeId) -> Arc<Partition> {
        lock(&self.nodes)[&id]
            .replica
            .as_ref()
            .and_then(|r| r.partition())
            .expect("node is up")
    }

    /// Whether node `id` is up.
    pub fn is_up(&self, id: NodeId) -> bool {
        lock(&self.nodes)[&id]
            .replica
            .as_ref()
            .is_some_and(|r| r.partition().is_some())
    }

    /// The status of node `id`'s replica (`None` when it is not running at all).
    pub fn status(&self, id: NodeId) -> Option<ReplicaStatus> {
        lock(&self.nodes)[&id].replica.as_ref().map(|r| r.status())
    }

    /// Ids of the nodes.
    pub fn ids(&self) -> Vec<NodeId> {
        lock(&self.nodes).keys().copied().collect()
    }

    /// The disk of node `id`.
    pub fn disk(&self, id: NodeId) -> Arc<SimDisk> {
        lock(&self.nodes)[&id].sim.clone()
    }

    /// Crashes node `id`: stops it without a clean close, then its disk loses every write not
    /// covered by a completed sync. A node whose replica is down (being reopened by its
    /// supervisor after a storage failure) or already crashed only has its disk crashed.
    pub async fn crash(&self, id: NodeId, mode: CrashMode) {
        self.router.unregister(self.group, id);
        let replica = lock(&self.nodes).get_mut(&id).expect("node").replica.take();
        let running = match replica {
            Some(r) => r.into_partition().await,
            None => None,
        };
        let sim = lock(&self.nodes)[&id].sim.clone();
        // The power goes out during a held sync: it fails, and what it covered is lost. (The
        // supervisor is stopped above, so the failure cannot start a reopen.)
        if sim.held_syncs() > 0 {
            sim.release_syncs(true);
        }
        if let Some(mut p) = running {
            let deadline = Instant::now() + Duration::from_secs(10);
            let p = loop {
                match Arc::try_unwrap(p) {
                    Ok(p) => break p,
                    Err(back) => {
                        assert!(Instant::now() < deadline, "partition {id} still in use");
                        p = back;
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
            };
            p.stop_abruptly().await.expect("stop");
        }
        tokio::task::spawn_blocking(move || sim.crash(mode))
            .await
            .expect("join")
            .expect("crash");
    }

    /// Waits until some up node is a leader ready to serve; returns it.
    pub async fn leader(&self, timeout: Duration) -> NodeId {
        let deadline = Instant::now() + timeout;
        loop {
            let up: Vec<(NodeId, Arc<Partition>)> = lock(&self.nodes)
                .iter()
                .filter_map(|(id, n)| {
                    n.replica
                        .as_ref()
                        .and_then(|r| r.partition())
                        .map(|p| (*id, p))
                })
                .collect();
            if let Some((id, _)) = up.iter().find(|(_, p)| p.is_ready_leader()) {
                return *id;
            }
            // A sleeping leader's lease has lapsed; a request wakes it.
            if let Some((id, _)) = up.iter().find(|(_, p)| {
                p.leads()
                    && matches!(
                        p.sleep_state(),
                        strata_raft::partition::SleepState::LeaderAsleep { .. }
                    )
            }) {
                return *id;
            }
            assert!(Instant::now() < deadline, "no leader within {timeout:?}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Appends through whichever node leads, following not-leader hints and retrying
    /// indeterminate outcomes (safe only for idempotent batches) until `timeout`.
    pub async fn append(
        &self,
        batch: Bytes,
        acks: Acks,
        timeout: Duration,
    ) -> ClientResult<Option<i64>> {
        let deadline = Instant::now() + timeout;
        let mut target = None;
        loop {
            let id = match target.take() {
                Some(id) if self.is_up(id) => id,
                _ => {
                    self.leader(
                        deadline
                            .saturating_duration_since(Instant::now())
                            .max(Duration::from_millis(1)),
                    )
                    .await
                }
            };
            // The node may go down between finding it and using it (tests crash nodes).
            let Some(p) = self.try_partition(id) else {
                continue;
            };
            match p.append(batch.clone(), acks).await {
                Ok(o) => return Ok(o),
                Err(
                    e @ (PartitionError::NotLeader { .. } | PartitionError::Indeterminate { .. }),
                ) if Instant::now() < deadline => {
                    if let PartitionError::NotLeader { leader_id, .. } = &e {
                        target = *leader_id;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Checker: every up replica holds byte-identical entries up to the lowest committed index
    /// among them, and no offset holds two different batches.
    pub async fn check_replicas_agree(&self, timeout: Duration) {
        // Let followers catch up to the leader's commit point first.
        let leader = self.leader(timeout).await;
        let deadline = Instant::now() + timeout;
        let target = self
            .wait_partition(leader, deadline)
            .await
            .metrics()
            .local_committed
            .map(|c| c.index);
        for id in self.ids().into_iter().filter(|id| self.is_up(*id)) {
            loop {
                // A replica that failed is reopened by its supervisor: wait for it.
                let m = self.wait_partition(id, deadline).await.metrics();
                if m.local_committed.map(|c| c.index) >= target {
                    break;
                }
                assert!(Instant::now() < deadline, "node {id} did not catch up");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        let Some(target) = target else { return };
        let mut reference: Option<(NodeId, Vec<strata_log::Entry>)> = None;
        for id in self.ids().into_iter().filter(|id| self.is_up(*id)) {
            let reader = self.wait_partition(id, deadline).await.log_reader();
            let first = reader.bounds().first_index;
            // Up to the log index after the target's (log index = Raft index + 1).
            let end = strata_raft::codec::log_index(RaftIndex::new(target)).next();
            let entries = reader
                .entries(first, end, usize::MAX)
                .expect("read replica");
            match &reference {
                None => reference = Some((id, entries)),
                Some((rid, r)) => {
                    assert_eq!(
                        r.len(),
                        entries.len(),
                        "nodes {rid} and {id} hold different counts"
                    );
                    for (a, b) in r.iter().zip(&entries) {
                        assert_eq!(a, b, "nodes {rid} and {id} differ at log index {}", a.index);
                    }
                }
            }
        }
    }

    /// Checker: every acknowledged batch is readable at its offset with its bytes.
    pub async fn check_acknowledged(&self, acked: &BTreeMap<i64, Bytes>, timeout: Duration) {
        let leader = self.leader(timeout).await;
        let p = self.partition(leader);
        let mut next_offset: Option<i64> = None;
        for (offset, batch) in acked {
            let f = p
                .read(*offset, 1, Duration::ZERO)
                .await
                .expect("read acknowledged");
            let Some(got) = f.batches.first() else {
                panic!(
                    "acknowledged batch at {offset} is gone: the high watermark is {}",
                    f.high_watermark
                );
            };
            let h = strata_record::BatchHeader::parse(got).expect("batch");
            assert_eq!(h.base_offset, *offset, "acknowledged batch moved");
            assert_eq!(
                &got[16..],
                &batch[16..],
                "acknowledged batch at {offset} altered"
            );
            if let Some(n) = next_offset {
                assert!(*offset >= n, "offsets overlap");
            }
            next_offset = Some(offset + h.record_count as i64);
        }
    }

    /// Stops every node cleanly.
    pub async fn shutdown(self) {
        for w in lock(&self.watchers).drain(..) {
            w.abort();
        }
        for id in self.ids() {
            let taken = lock(&self.nodes)
                .get_mut(&id)
                .and_then(|n| n.replica.take());
            let p = match taken {
                Some(r) => r.into_partition().await,
                None => None,
            };
            if let Some(p) = p {
                self.router.unregister(self.group, id);
                if let Ok(p) = Arc::try_unwrap(p) {
                    let _ = p.shutdown().await;
                }
            }
        }
    }
}

/// A batch of `records` records for producer `pid` (or -1) starting at sequence `seq`.
pub fn test_batch(records: usize, value_len: usize, tag: u64, pid: i64, seq: i32) -> Bytes {
    let mut b = strata_record::BatchBuilder::new();
    if pid >= 0 {
        b = b.with_producer(pid, 0, seq);
    }
    for i in 0..records {
        let v: Vec<u8> = (0..value_len)
            .map(|j| (tag as usize + i + j) as u8)
            .collect();
        let _ = b.append(&strata_record::NewRecord::new(
            1_700_000_000_000 + tag as i64,
            Some(Bytes::from(format!("k{tag}-{i}"))),
            Some(Bytes::from(v)),
        ));
    }
    b.build()
}
