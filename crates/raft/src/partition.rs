//! [`Partition`]: one replica of one partition — its openraft group over its log. The rest of
//! the workspace sees only this: append with acks, read, high watermark, offsets by time,
//! leadership and membership, and [`PartitionError`].

use crate::error::PartitionError;
use crate::producers::{last_sequence, next_sequence_after};
use crate::quarantine::{self, PeerHandle, Quarantine};
use crate::state_machine::{PartitionState, StateHook, StateMachine};
use crate::store::LogStore;
use crate::types::{Applied, BatchCommand, Command, NodeId, TypeConfig};
use bytes::Bytes;
use openraft::error::{ClientWriteError, RaftError};
use openraft::impls::ProgressResponder;
use openraft::network::RaftNetworkFactory;
use openraft::type_config::async_runtime::WatchReceiver;
use openraft::{
    BasicNode, ChangeMembers, Config, Instant as _, RaftMetrics, ServerState, SnapshotPolicy,
};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use strata_log::{FlusherHandle, Log, LogConfig, LogReader};
use strata_record::Batch;
use tokio::sync::{oneshot, watch};

/// The openraft handle of a partition group.
pub type Raft = openraft::Raft<TypeConfig, StateMachine>;

/// How long to wait until an entry acknowledged `acks=all` is committed and applied.
pub const WRITE_TIMEOUT_DEFAULT_MS: u64 = 10_000;

/// How a write is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acks {
    /// Committed by a majority, each replica having fsynced it. Never lost.
    All,
    /// Appended to the leader's log (not yet durable nor replicated): lost if the leader fails
    /// before it replicates, and its offset then reused (as Kafka's acks=1).
    Leader,
    /// Handed to the leader; no offset is returned.
    None,
}

/// Timing of the Raft group (milliseconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaftTiming {
    /// Leader heartbeat interval.
    pub heartbeat_ms: u64,
    /// Lower bound of the randomized election timeout.
    pub election_timeout_min_ms: u64,
    /// Upper bound of the randomized election timeout.
    pub election_timeout_max_ms: u64,
}

impl Default for RaftTiming {
    fn default() -> RaftTiming {
        RaftTiming {
            heartbeat_ms: 300,
            election_timeout_min_ms: 1500,
            election_timeout_max_ms: 3000,
        }
    }
}

/// Configuration of one partition replica.
#[derive(Debug, Clone)]
pub struct PartitionConfig {
    /// The Raft group id (also names the partition in peer messages).
    pub group_id: u64,
    /// This node.
    pub node_id: NodeId,
    /// The partition directory.
    pub dir: PathBuf,
    /// The log's configuration.
    pub log: LogConfig,
    /// Raft timing.
    pub timing: RaftTiming,
    /// Bytes of entries one replication request carries at most (bounds peer messages).
    pub append_bytes_max: usize,
    /// Idempotent producers idle this long (by batch timestamps) are forgotten.
    pub producer_expiry_ms: i64,
    /// Longest a write waits for its acknowledgement before it is reported indeterminate.
    pub write_timeout_ms: u64,
    /// The disk seam the log writes through (tests pass a `SimDisk`).
    pub disk: Arc<dyn strata_log::Disk>,
    /// Drop every log entry past this log index when opening. The supervisor sets it when it
    /// reopens a replica after a storage failure: entries no successful sync covered may be
    /// only in the page cache (Linux keeps a failed sync's pages readable but never writes
    /// them again), and recovery, which reads through the page cache, would take them as
    /// durable and let this replica acknowledge them.
    pub durable_cut: Option<u64>,
    /// Open the log with a full check of every frame (`Log::open_verified`) and quarantine
    /// the replica if recorded data was lost (see [`crate::quarantine`]). The supervisor sets
    /// it when it reopens a replica after a failure.
    pub verify_on_open: bool,
}

impl PartitionConfig {
    /// A configuration with defaults for everything but identity and place.
    pub fn new(group_id: u64, node_id: NodeId, dir: impl Into<PathBuf>) -> PartitionConfig {
        PartitionConfig {
            group_id,
            node_id,
            dir: dir.into(),
            log: LogConfig::default(),
            timing: RaftTiming::default(),
            append_bytes_max: 4 << 20,
            producer_expiry_ms: 7 * 24 * 3600 * 1000,
            write_timeout_ms: WRITE_TIMEOUT_DEFAULT_MS,
            disk: Arc::new(strata_log::RealDisk),
            durable_cut: None,
            verify_on_open: false,
        }
    }

    fn raft_config(&self) -> Result<Config, PartitionError> {
        let config = Config {
            cluster_name: format!("partition-{}", self.group_id),
            heartbeat_interval: self.timing.heartbeat_ms,
            election_timeout_min: self.timing.election_timeout_min_ms,
            election_timeout_max: self.timing.election_timeout_max_ms,
            enable_pre_vote: Some(true),
            // A restarted leader must win a new election: restoring its committed vote would
            // let it lead again in the same term with a log that lost entries its followers
            // hold (its own fsync may have been behind theirs when the entry committed), and
            // then hand out the offsets of acknowledged records again.
            enable_leader_restore: Some(false),
            // Snapshots hold no record data; openraft must never purge records on its own.
            // Retention purges through the log explicitly.
            snapshot_policy: SnapshotPolicy::Never,
            max_in_snapshot_log_to_keep: u64::MAX,
            ..Config::default()
        };
        config.validate().map_err(|e| PartitionError::Fatal {
            reason: format!("invalid raft config: {e}"),
        })
    }
}

/// What a read returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// Record batches (stamped with base offset and leader epoch), views of the log.
    pub batches: Vec<Bytes>,
    /// The high watermark when the read was served.
    pub high_watermark: i64,
    /// The first readable offset.
    pub log_start_offset: i64,
}

/// A plain snapshot of a replica's Raft state, for the layers above (no openraft types).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PartitionStatus {
    /// The leader this replica knows, if any.
    pub leader: Option<NodeId>,
    /// Its current term.
    pub term: u64,
    /// Voters of the group's current membership.
    pub voters: Vec<NodeId>,
    /// Every member (voters and learners) with its peer address.
    pub members: BTreeMap<NodeId, String>,
    /// Index of the last entry in this replica's log (`None`: an empty, never-written log).
    pub last_log_index: Option<u64>,
    /// On the leader: the last index each other member is known to hold.
    pub matched: BTreeMap<NodeId, u64>,
}

/// Whether this replica's timers are off because its group is idle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SleepState {
    /// Timers on (normal Raft).
    Awake,
    /// Leader of an idle, fully replicated group: heartbeats and ticks off, in this term.
    LeaderAsleep {
        /// The term it leads.
        term: u64,
    },
    /// Follower of a leader that said it sleeps: ticks (so elections) off.
    FollowerAsleep {
        /// The sleeping leader.
        leader: NodeId,
        /// Its term.
        term: u64,
    },
}

#[derive(Debug)]
struct Sleep {
    state: SleepState,
    last_activity: std::time::Instant,
}

/// An idempotent producer's batches proposed by this leader and not yet applied.
#[derive(Debug)]
struct Inflight {
    /// The term this replica led when the batches were proposed: entries of an earlier
    /// leadership are either in the log (and applied before this leader serves) or gone, so
    /// an entry of another term is stale and dropped.
    term: u64,
    epoch: i16,
    next_sequence: i32,
    pending: HashMap<i32, watch::Receiver<Option<Result<i64, PartitionError>>>>,
}

/// One replica of one partition.
pub struct Partition {
    raft: Raft,
    /// Purges the log after each applied retention entry (see [`retention_task`]).
    retention: tokio::task::JoinHandle<()>,
    store: LogStore,
    state: Arc<PartitionState>,
    reader: LogReader,
    node_id: NodeId,
    write_timeout: Duration,
    /// A leader serves only while a quorum acknowledged it this recently (the election timeout's
    /// lower bound: no other leader can have been elected sooner).
    lease_ms: u64,
    /// Hibernation state (see [`Partition::hibernate_if_idle`]).
    sleep: Mutex<Sleep>,
    /// When this replica's current leadership started (see [`ready_leader`]).
    lead: Arc<LeadStart>,
    inflight: Mutex<HashMap<i64, Inflight>>,
    /// When this replica last proposed its clock, and in which term (see [`CLOCK_INTERVAL`]).
    clock_proposed: Mutex<Option<(u64, std::time::Instant)>>,
    /// Set once the group is stopped under other holders (see [`Partition::close`]): waits end
    /// and every later call fails with [`PartitionError::Fatal`].
    closed: watch::Sender<bool>,
    /// Set while the replica may not vote or campaign (see [`crate::quarantine`]).
    quarantine: Arc<Quarantine>,
    /// Set when a read found damaged data: the supervisor reopens the replica verified.
    damaged: watch::Sender<Option<String>>,
    /// Held across a membership change's check and its proposal (see
    /// [`Partition::membership_leader`]).
    membership: tokio::sync::Mutex<()>,
}

/// How often a leader serving idempotent producers proposes its wall clock (a `Clock` entry),
/// the replicated clock producer expiry runs on. Expiry is days; a minute's staleness is
/// nothing, and one 57-byte entry a minute per busy partition costs nothing either.
pub const CLOCK_INTERVAL: Duration = Duration::from_secs(60);

impl std::fmt::Debug for Partition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Partition")
            .field("node_id", &self.node_id)
            .finish_non_exhaustive()
    }
}

/// After a retention entry is applied on this replica (or found persisted at open): make
/// openraft take the retention snapshot, then purge the log up to it. openraft purges only
/// what a snapshot covers, and never on its own (`max_in_snapshot_log_to_keep` is unbounded).
async fn retention_task(raft: Raft, mut retained: watch::Receiver<Option<crate::types::LogId>>) {
    let mut upto = *retained.borrow_and_update();
    loop {
        if let Some(upto) = upto {
            if raft.trigger().snapshot().await.is_err() {
                return;
            }
            let covered = raft
                .wait(Some(Duration::from_secs(30)))
                .metrics(
                    |m| m.snapshot.is_some_and(|s| s.index >= upto.index),
                    "retention snapshot",
                )
                .await;
            if covered.is_ok() && raft.trigger().purge_log(upto.index).await.is_err() {
                return;
            }
        }
        if retained.changed().await.is_err() {
            return;
        }
        upto = *retained.borrow_and_update();
    }
}

/// The leadership this replica observed: its term and the last log index when it was first
/// seen leading in that term.
type LeadStart = Mutex<Option<(u64, u64)>>;

/// Whether `m` shows a leader that may serve: it leads, has applied everything its log held
/// when its leadership was first observed (every committed entry is in a leader's log, so its
/// high watermark and producer state are then current; an entry of its own term is not
/// enough, because openraft restores a leader's committed vote after a restart, with the
/// same term and a stale commit index), and a quorum acknowledged it within the lease.
fn ready_leader(m: &RaftMetrics<TypeConfig>, me: NodeId, lease_ms: u64, lead: &LeadStart) -> bool {
    if m.current_leader != Some(me) || m.state != ServerState::Leader {
        return false;
    }
    let start = {
        let mut l = lock(lead);
        match *l {
            Some((term, start)) if term == m.current_term => start,
            _ => {
                let start = m.last_log_index.unwrap_or(0);
                *l = Some((m.current_term, start));
                start
            }
        }
    };
    m.last_applied
        .is_some_and(|l| l.committed_leader_id().term == m.current_term && l.index >= start)
        && quorum_acked_within(m, me, lease_ms)
}

/// Whether a quorum acknowledged this leader within `lease_ms`. A leader that is the only
/// voter is its own quorum: openraft never refreshes `last_quorum_acked` for it (nobody
/// answers), and no other leader can be elected without a membership change it commits itself.
fn quorum_acked_within(m: &RaftMetrics<TypeConfig>, me: NodeId, lease_ms: u64) -> bool {
    let mut voters = m.membership_config.membership().voter_ids();
    let sole_voter = voters.next() == Some(me) && voters.next().is_none();
    sole_voter
        || m.last_quorum_acked
            .as_ref()
            .is_some_and(|t| t.elapsed() <= Duration::from_millis(lease_ms))
}

fn fatal(e: impl std::fmt::Display) -> PartitionError {
    PartitionError::Fatal {
        reason: e.to_string(),
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Where the outcome of an in-flight idempotent batch is published (for its retries).
type OutcomeSender = watch::Sender<Option<Result<i64, PartitionError>>>;

enum SequenceCheck {
    /// Propose it; the sender reports its outcome to retried duplicates.
    Propose(Option<(i64, i32, OutcomeSender)>),
    /// Already committed at this offset.
    Duplicate(i64),
    /// The same batch is in flight: wait for its outcome.
    Wait(watch::Receiver<Option<Result<i64, PartitionError>>>),
}

impl Partition {
    /// Opens (recovering) the replica's log and starts its Raft group. A new group is not
    /// initialized: call [`Partition::initialize`] on one replica with the first voters.
    pub async fn open<N>(
        config: PartitionConfig,
        flusher: &FlusherHandle,
        network: N,
        hook: Option<Arc<dyn StateHook>>,
    ) -> Result<Partition, PartitionError>
    where
        N: RaftNetworkFactory<TypeConfig>,
        N::Network: openraft::network::NetSnapshot<TypeConfig, SnapshotData = Bytes>,
    {
        let raft_config = Arc::new(config.raft_config()?);
        let dir = config.dir.clone();
        let log_config = config.log.clone();
        let flusher = flusher.clone();
        let disk = config.disk.clone();
        let cut = config.durable_cut;
        let verify = config.verify_on_open;
        let log = tokio::task::spawn_blocking(move || {
            let mut log = if verify {
                Log::open_verified(dir, log_config, disk, &flusher)?
            } else {
                Log::open(dir, log_config, disk, &flusher)?
            };
            if let Some(cut) = cut
                && cut < log.next_index().saturating_sub(1)
            {
                let keep = cut.max(log.reader().bounds().first_index.saturating_sub(1));
                tracing::warn!(
                    dir = %log.dir().display(),
                    durable = cut,
                    last = log.next_index().saturating_sub(1),
                    "dropping log entries no successful sync covered before the failure"
                );
                log.truncate_after(keep)?;
            }
            Ok::<_, strata_log::LogError>(log)
        })
        .await
        .map_err(fatal)?
        .map_err(fatal)?;
        let damage = log.damage();
        let state = PartitionState::new(0, config.producer_expiry_ms);
        let store =
            LogStore::new(log, config.append_bytes_max, Some(state.clone())).map_err(fatal)?;
        let reader = store.log_reader();
        state
            .attach(reader.clone(), config.dir.clone(), config.disk.clone())
            .map_err(fatal)?;
        let sm = StateMachine::new(state.clone(), hook);
        let raft = Raft::new(config.node_id, raft_config, network, store.clone(), sm)
            .await
            .map_err(fatal)?;
        let retention = tokio::spawn(retention_task(raft.clone(), state.watch_retained()));
        let quarantine = Arc::new(Quarantine::default());
        if let Some(d) = damage {
            // The membership is loaded from the log as the group starts; only a replica known
            // to be its group's sole voter skips the quarantine (a membership lost with the
            // damage is not known).
            let me = config.node_id;
            let sole = |m: &RaftMetrics<TypeConfig>| {
                let mut v = m.membership_config.membership().voter_ids();
                v.next() == Some(me) && v.next().is_none()
            };
            let loaded = raft
                .wait(Some(Duration::from_secs(2)))
                .metrics(
                    |m| {
                        m.membership_config
                            .membership()
                            .voter_ids()
                            .next()
                            .is_some()
                    },
                    "membership loaded",
                )
                .await;
            let sole_voter = loaded.is_ok_and(|m| sole(&m));
            if !sole_voter {
                tracing::error!(
                    group = config.group_id,
                    lost_from = d.first_lost_index,
                    recorded_to = d.recorded_last_index,
                    "the log lost recorded entries: quarantined (no votes, no elections) until the leader has repaired them"
                );
                // The log counts from 1 where Raft counts from 0.
                let until = crate::codec::raft_index(d.recorded_last_index);
                quarantine::start(&raft, &quarantine, until, config.group_id);
            } else {
                tracing::error!(
                    group = config.group_id,
                    lost_from = d.first_lost_index,
                    recorded_to = d.recorded_last_index,
                    "the log lost recorded entries and this replica is the group's only voter: they are gone"
                );
            }
        }
        Ok(Partition {
            quarantine,
            retention,
            raft,
            store,
            state,
            reader,
            node_id: config.node_id,
            write_timeout: Duration::from_millis(config.write_timeout_ms),
            lease_ms: config.timing.election_timeout_min_ms,
            sleep: Mutex::new(Sleep {
                state: SleepState::Awake,
                last_activity: std::time::Instant::now(),
            }),
            inflight: Mutex::new(HashMap::new()),
            clock_proposed: Mutex::new(None),
            closed: watch::channel(false).0,
            damaged: watch::channel(None).0,
            lead: Arc::default(),
            membership: tokio::sync::Mutex::new(()),
        })
    }

    /// Initializes a new group with these voters (on one replica only; a no-op error if the
    /// group already has a log).
    pub async fn initialize(&self, voters: BTreeMap<NodeId, String>) -> Result<(), PartitionError> {
        let nodes: BTreeMap<NodeId, BasicNode> = voters
            .into_iter()
            .map(|(id, addr)| (id, BasicNode { addr }))
            .collect();
        self.raft.initialize(nodes).await.map_err(fatal)
    }

    /// The openraft handle, for this crate's transport and for tests and benchmarks; the node
    /// layer uses [`Partition::status`] and the methods above instead.
    pub fn raft(&self) -> &Raft {
        &self.raft
    }

    /// The latest Raft metrics of this replica.
    pub fn metrics(&self) -> RaftMetrics<TypeConfig> {
        self.raft.metrics().borrow_watched().clone()
    }

    /// Runs `f` on the latest metrics without copying them (for per-tick checks of many
    /// groups).
    pub fn with_metrics<T>(&self, f: impl FnOnce(&RaftMetrics<TypeConfig>) -> T) -> T {
        let rx = self.raft.metrics();
        let m = rx.borrow_watched();
        f(&m)
    }

    /// This replica's Raft state in plain numbers.
    pub fn status(&self) -> PartitionStatus {
        self.with_metrics(|m| {
            let membership = m.membership_config.membership();
            PartitionStatus {
                leader: m.current_leader,
                term: m.current_term,
                voters: membership.voter_ids().collect(),
                members: membership
                    .nodes()
                    .map(|(id, n)| (*id, n.addr.clone()))
                    .collect(),
                last_log_index: m.last_log_index,
                matched: m
                    .replication
                    .as_ref()
                    .map(|r| {
                        r.iter()
                            .filter_map(|(id, l)| l.as_ref().map(|l| (*id, l.index)))
                            .collect()
                    })
                    .unwrap_or_default(),
            }
        })
    }

    /// Stands for election at once (after a pre-vote round, so a healthy leader is not
    /// disturbed). Used by a new group's preferred leader, and by the liveness ticker for the
    /// followers of a leader whose node fell silent.
    pub async fn elect(&self) -> Result<(), PartitionError> {
        if self.quarantine.until().is_some() {
            return Ok(());
        }
        self.raft.trigger().elect(true).await.map_err(fatal)
    }

    /// Registers this replica with a peer server's group registry, under its group id.
    pub fn register_with(&self, registry: &crate::transport::GroupRegistry, group_id: u64) {
        registry.insert(group_id, self.peer_handle());
    }

    /// What this replica answers to its peers (its Raft group, gated by its quarantine):
    /// what a transport dispatches incoming messages to.
    pub fn peer_handle(&self) -> Arc<PeerHandle> {
        Arc::new(PeerHandle::new(self.raft.clone(), self.quarantine.clone()))
    }

    /// The log index this replica must hold again before it may vote, while it is
    /// quarantined after losing recorded data (see [`crate::quarantine`]).
    pub fn quarantined_until(&self) -> Option<u64> {
        self.quarantine.until()
    }

    /// A receiver that turns `Some(reason)` when a read found damaged data in this replica's
    /// log (the supervisor then reopens it with a full check).
    pub fn watch_damage(&self) -> watch::Receiver<Option<String>> {
        self.damaged.subscribe()
    }

    /// Waits up to `timeout` until this replica no longer counts `node` as its leader.
    pub async fn wait_leader_is_not(&self, node: NodeId, timeout: Duration) -> bool {
        self.raft
            .wait(Some(timeout))
            .metrics(|m| m.current_leader != Some(node), "leader changed")
            .await
            .is_ok()
    }

    /// The leader as this replica knows it: (node id, peer address).
    pub fn leader(&self) -> Option<(NodeId, String)> {
        let m = self.metrics();
        let id = m.current_leader?;
        let addr = m
            .membership_config
            .membership()
            .get_node(&id)
            .map(|n| n.addr.clone())
            .unwrap_or_default();
        Some((id, addr))
    }

    fn not_leader(&self, m: &RaftMetrics<TypeConfig>) -> PartitionError {
        let leader_id = m.current_leader.filter(|l| *l != self.node_id);
        let leader_addr = leader_id.and_then(|id| {
            m.membership_config
                .membership()
                .get_node(&id)
                .map(|n| n.addr.clone())
        });
        PartitionError::NotLeader {
            leader_id,
            leader_addr,
        }
    }

    /// Whether this replica may serve as leader now: it leads, has applied everything its log
    /// held when its leadership was first observed (so its high watermark and producer state
    /// are current; see [`ready_leader`]), and a quorum acknowledged it within the leader lease
    /// (a leader cut off from its quorum stops serving before a new one can be elected).
    pub fn is_ready_leader(&self) -> bool {
        self.with_metrics(|m| ready_leader(m, self.node_id, self.lease_ms, &self.lead))
    }

    /// Whether this replica serves the partition now: a ready leader (see
    /// [`Partition::is_ready_leader`]), or the leader of an idle group that sleeps (no
    /// heartbeats, so no lease) while a majority of its voters, itself included, is `alive`
    /// (the node's liveness view): it wakes on the next request. What `/readyz` and the
    /// `is_leader` gauge report.
    pub fn can_serve(&self, alive: impl Fn(NodeId) -> bool) -> bool {
        if *self.closed.borrow() {
            return false;
        }
        if self.is_ready_leader() {
            return true;
        }
        if !matches!(self.sleep_state(), SleepState::LeaderAsleep { .. }) {
            return false;
        }
        self.with_metrics(|m| {
            let voters: Vec<NodeId> = m.membership_config.membership().voter_ids().collect();
            let up = voters
                .iter()
                .filter(|v| **v == self.node_id || alive(**v))
                .count();
            m.current_leader == Some(self.node_id) && up * 2 > voters.len()
        })
    }

    /// Waits (bounded) until this replica is a ready leader (see [`Partition::is_ready_leader`]).
    /// Wakes the group first if it sleeps.
    async fn ready_leader(&self) -> Result<(), PartitionError> {
        self.check_open()?;
        self.wake().await;
        let me = self.node_id;
        let lease = self.lease_ms;
        let lead = self.lead.clone();
        let ready = move |m: &RaftMetrics<TypeConfig>| ready_leader(m, me, lease, &lead);
        let m = self.metrics();
        if ready(&m) {
            return Ok(());
        }
        if m.current_leader != Some(me) {
            return Err(self.not_leader(&m));
        }
        self.raft
            .wait(Some(self.write_timeout))
            .metrics(|m| ready(m) || m.current_leader != Some(me), "leader ready")
            .await
            .map_err(|_| self.not_leader(&self.metrics()))?;
        let m = self.metrics();
        if ready(&m) {
            Ok(())
        } else {
            Err(self.not_leader(&m))
        }
    }

    /// Appends one producer batch. Returns its base offset (`None` with [`Acks::None`]).
    ///
    /// The batch is fully checked first (CRC, lengths, records, no transactional or control
    /// bits, supported codec). An idempotent producer's batch (producer id >= 0) is checked
    /// against the applied producer state and this leader's in-flight batches: a duplicate is
    /// answered with its original offset without writing, a gap is `OutOfOrderSequence`.
    pub async fn append(&self, batch: Bytes, acks: Acks) -> Result<Option<i64>, PartitionError> {
        let parsed = Batch::parse(batch.clone()).map_err(|e| PartitionError::InvalidBatch {
            reason: e.to_string(),
        })?;
        let h = *parsed.header();
        if h.producer_id >= 0 && acks != Acks::All {
            // Kafka refuses the same: with acks=leader the entry's fate is unknown when the
            // answer leaves (a retry could be written twice), and with acks=none nobody would
            // ever learn it.
            return Err(PartitionError::InvalidBatch {
                reason: format!(
                    "an idempotent producer's batch (producer id {}) requires acks=all",
                    h.producer_id
                ),
            });
        }
        self.ready_leader().await?;
        let mut report = None;
        let term = self.with_metrics(|m| m.current_term);
        if h.producer_id >= 0 {
            self.propose_clock_if_due(term).await;
            match self.check_sequence(
                term,
                h.producer_id,
                h.producer_epoch,
                h.base_sequence,
                h.record_count as u32,
            )? {
                SequenceCheck::Duplicate(offset) => return Ok(Some(offset)),
                SequenceCheck::Wait(mut rx) => {
                    let r = rx
                        .wait_for(|v| v.is_some())
                        .await
                        .map_err(|_| PartitionError::Indeterminate {
                            reason: "the original write was abandoned".into(),
                        })?
                        .clone();
                    return r.unwrap_or_else(|| Err(fatal("no outcome"))).map(Some);
                }
                SequenceCheck::Propose(r) => report = r,
            }
        }
        let (result, live) = self.propose(batch, acks).await;
        if let Some((pid, first_seq, tx)) = report {
            let outcome = match &result {
                Ok(Some(o)) => Ok(*o),
                Ok(None) => Err(PartitionError::Indeterminate {
                    reason: "written without acknowledgement".into(),
                }),
                Err(e) => Err(e.clone()),
            };
            let _ = tx.send(Some(outcome.clone()));
            // An entry whose fate is still open (not awaited, or timed out waiting for its
            // commit) may still commit in this term, so it stays in flight: a retry waits on
            // it or finds it applied, and a new leadership drops it.
            let mut inflight = lock(&self.inflight);
            if !live && let Some(f) = inflight.get_mut(&pid).filter(|f| f.term == term) {
                f.pending.remove(&first_seq);
                if outcome.is_err() {
                    // Later batches of this producer will fail too; retries are checked
                    // against the applied state again.
                    inflight.remove(&pid);
                } else if f.pending.is_empty() {
                    inflight.remove(&pid);
                }
            }
        }
        result
    }

    fn check_sequence(
        &self,
        term: u64,
        pid: i64,
        epoch: i16,
        first: i32,
        count: u32,
    ) -> Result<SequenceCheck, PartitionError> {
        // The applied state is read under the in-flight lock: the original of a retried batch
        // leaves the in-flight map (under this lock) only after it was applied, so a retry
        // sees it either in flight or applied, never neither.
        let mut inflight = lock(&self.inflight);
        let applied = self.state.producer(pid);
        if inflight.get(&pid).is_some_and(|f| f.term != term) {
            inflight.remove(&pid);
        }
        let (known_epoch, mut expected) = match (inflight.get(&pid), &applied) {
            (Some(f), _) => (Some(f.epoch), f.next_sequence),
            (None, Some(p)) => (Some(p.epoch), p.next_sequence()),
            (None, None) => (None, 0),
        };
        if let Some(current) = known_epoch {
            if epoch < current {
                return Err(PartitionError::ProducerFenced {
                    producer_id: pid,
                    epoch,
                    current,
                });
            }
            if epoch > current {
                expected = 0;
            }
        }
        if first != expected {
            // A retry of a committed batch gets its original offset.
            if let Some(p) = &applied
                && p.epoch == epoch
                && let Some(b) = p.recent.iter().find(|b| b.first_sequence == first)
            {
                return Ok(SequenceCheck::Duplicate(b.base_offset));
            }
            if let Some(f) = inflight.get(&pid)
                && let Some(rx) = f.pending.get(&first)
            {
                return Ok(SequenceCheck::Wait(rx.clone()));
            }
            tracing::warn!(
                node = self.node_id,
                term,
                producer_id = pid,
                expected,
                got = first,
                applied = ?applied.as_ref().map(|p| p.recent.iter().map(|b| (b.first_sequence, b.last_sequence, b.base_offset)).collect::<Vec<_>>()),
                inflight = ?inflight.get(&pid).map(|f| (f.term, f.next_sequence, f.pending.keys().copied().collect::<Vec<_>>())),
                hw = self.high_watermark(),
                "out of order sequence"
            );
            return Err(PartitionError::OutOfOrderSequence {
                producer_id: pid,
                expected,
                got: first,
            });
        }
        let (tx, rx) = watch::channel(None);
        let f = inflight.entry(pid).or_insert(Inflight {
            term,
            epoch,
            next_sequence: expected,
            pending: HashMap::new(),
        });
        if epoch > f.epoch {
            f.epoch = epoch;
            f.pending.clear();
        }
        f.next_sequence = next_sequence_after(last_sequence(first, count));
        f.pending.insert(first, rx);
        Ok(SequenceCheck::Propose(Some((pid, first, tx))))
    }

    /// Proposes this leader's wall clock (see [`CLOCK_INTERVAL`]) if it has not in this term
    /// or not for an interval. Fire and forget: it commits with the batches behind it, and a
    /// lost one is proposed again next time.
    async fn propose_clock_if_due(&self, term: u64) {
        {
            let mut last = lock(&self.clock_proposed);
            if last.is_some_and(|(t, at)| t == term && at.elapsed() < CLOCK_INTERVAL) {
                return;
            }
            *last = Some((term, std::time::Instant::now()));
        }
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let _ = self
            .raft
            .client_write_ff(Command::Clock(now_ms), None)
            .await;
    }

    /// Proposes one batch and waits as `acks` says. Also returns whether the entry may still
    /// commit although no outcome is known (acks=none, or with acks=all the commit wait timed
    /// out or this replica lost the leadership first).
    async fn propose(
        &self,
        batch: Bytes,
        acks: Acks,
    ) -> (Result<Option<i64>, PartitionError>, bool) {
        let (local_tx, local_rx) = oneshot::channel::<i64>();
        let appended = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = appended.clone();
        let cmd = BatchCommand::with_local_ack(
            batch,
            Box::new(move |offset| {
                flag.store(true, std::sync::atomic::Ordering::SeqCst);
                let _ = local_tx.send(offset);
            }),
        );
        let (responder, _commit_rx, complete_rx) = ProgressResponder::new();
        if let Err(e) = self
            .raft
            .client_write_ff(Command::Batch(cmd), Some(responder))
            .await
        {
            return (Err(fatal(e)), false);
        }
        match acks {
            Acks::None => (Ok(None), true),
            Acks::Leader => {
                let r = tokio::select! {
                    r = local_rx => r.map(Some).map_err(|_| PartitionError::Indeterminate {
                        reason: "the leader stopped before appending".into(),
                    }),
                    r = complete_rx => self.write_outcome(r.ok(), &appended),
                };
                (r, false)
            }
            // Until committed, deposed (the entry's fate is then decided by the new leader: the
            // client retries, learns the leader from this node and resends there) or timed out.
            Acks::All => {
                let reason = tokio::select! {
                    biased;
                    r = complete_rx => return (self.write_outcome(r.ok(), &appended), false),
                    leader = self.deposed() => format!(
                        "leadership lost before the entry committed (leader now {leader:?})"
                    ),
                    () = tokio::time::sleep(self.write_timeout) => {
                        format!("not committed within {:?}", self.write_timeout)
                    }
                };
                (Err(PartitionError::Indeterminate { reason }), true)
            }
        }
    }

    /// Resolves with the new leader (if known) once this replica no longer leads (or stops).
    /// Watches the server metrics, which change only with the vote, state or leader.
    async fn deposed(&self) -> Option<NodeId> {
        let mut server = self.raft.server_metrics();
        loop {
            let leader = server.borrow_watched().current_leader;
            if leader != Some(self.node_id) {
                return leader;
            }
            if server.changed().await.is_err() {
                return None;
            }
        }
    }

    fn write_outcome(
        &self,
        r: Option<openraft::raft::ClientWriteResult<TypeConfig>>,
        appended: &std::sync::atomic::AtomicBool,
    ) -> Result<Option<i64>, PartitionError> {
        match r {
            Some(Ok(resp)) => match resp.data {
                Applied::Batch { base_offset, .. } => Ok(Some(base_offset)),
                Applied::Control | Applied::Retained { .. } => {
                    Err(fatal("a batch was applied as another kind of entry"))
                }
            },
            Some(Err(ClientWriteError::ForwardToLeader(f))) => Err(PartitionError::NotLeader {
                leader_id: f.leader_id,
                leader_addr: f.leader_node.map(|n| n.addr),
            }),
            Some(Err(ClientWriteError::LogEntryDiscarded(f))) => {
                Err(PartitionError::Indeterminate {
                    reason: format!(
                        "entry discarded on leader change (leader now {:?})",
                        f.leader_id
                    ),
                })
            }
            Some(Err(e)) => Err(fatal(e)),
            None if appended.load(std::sync::atomic::Ordering::SeqCst) => {
                Err(PartitionError::Indeterminate {
                    reason: "the replica stopped after appending".into(),
                })
            }
            None => Err(PartitionError::NotLeader {
                leader_id: None,
                leader_addr: None,
            }),
        }
    }

    /// Proposes a control entry (opaque to the partition; a [`StateHook`] applies it on every
    /// replica) and waits until it is applied on this leader. Returns its Raft log index, by
    /// which the hook can find what applying it produced.
    pub async fn propose_control(&self, payload: Bytes) -> Result<u64, PartitionError> {
        self.ready_leader().await?;
        let write = self.raft.client_write(Command::Control(payload));
        let r = match tokio::time::timeout(self.write_timeout, write).await {
            Ok(r) => r,
            Err(_) => {
                return Err(PartitionError::Indeterminate {
                    reason: format!("not committed within {:?}", self.write_timeout),
                });
            }
        };
        match r {
            Ok(resp) => Ok(resp.log_id.index),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                Err(PartitionError::NotLeader {
                    leader_id: f.leader_id,
                    leader_addr: f.leader_node.map(|n| n.addr),
                })
            }
            Err(e) => Err(PartitionError::Indeterminate {
                reason: e.to_string(),
            }),
        }
    }

    /// The high watermark as applied on this replica (authoritative only on a ready leader).
    pub fn high_watermark(&self) -> i64 {
        self.state.high_watermark()
    }

    /// The highest log index a successful sync of this replica's log covered.
    pub fn durable_log_index(&self) -> u64 {
        self.store.durable_index()
    }

    /// A reader of this replica's log (tests compare replicas byte for byte with it).
    pub fn log_reader(&self) -> LogReader {
        self.reader.clone()
    }

    /// The first readable offset.
    pub fn log_start_offset(&self) -> i64 {
        self.reader.bounds().log_start_offset
    }

    /// Record batches from `from` on, up to about `max_bytes` (at least one batch when one is
    /// available), only below the high watermark. When `from` is at the high watermark it waits
    /// up to `max_wait` for new records. Served by the leader only.
    pub async fn read(
        &self,
        from: i64,
        max_bytes: usize,
        max_wait: Duration,
    ) -> Result<Fetched, PartitionError> {
        self.ready_leader().await?;
        let start = self.log_start_offset();
        let hw = self.high_watermark();
        if from < start || from > hw {
            return Err(PartitionError::OffsetOutOfRange {
                requested: from,
                start,
                end: hw,
            });
        }
        let mut hw = hw;
        if from == hw && !max_wait.is_zero() {
            let mut rx = self.state.watch_high_watermark();
            let mut closed = self.closed.subscribe();
            tokio::select! {
                _ = tokio::time::timeout(max_wait, rx.wait_for(|h| *h > from)) => {}
                _ = closed.wait_for(|c| *c) => {}
            }
            self.check_open()?;
            hw = self.high_watermark();
        }
        let reader = self.reader.clone();
        let entries = tokio::task::spawn_blocking(move || reader.read(from, max_bytes, hw))
            .await
            .map_err(fatal)?
            .map_err(|e| match e {
                strata_log::LogError::OffsetOutOfRange {
                    requested, start, ..
                } => PartitionError::OffsetOutOfRange {
                    requested,
                    start,
                    end: hw,
                },
                e @ strata_log::LogError::Corrupt { .. } => {
                    // Damaged data is never served; the replica is reopened with a full check
                    // (it then repairs from the other replicas).
                    self.damaged.send_replace(Some(e.to_string()));
                    fatal(e)
                }
                other => fatal(other),
            })?;
        Ok(Fetched {
            batches: entries.into_iter().map(|e| e.payload).collect(),
            high_watermark: hw,
            log_start_offset: self.log_start_offset(),
        })
    }

    /// Fails unless this replica can serve as the partition's leader now (leader, caught up,
    /// within its lease): what a caller checks before answering from this replica's state
    /// (a follower's or a deposed leader's high watermark may be behind).
    pub async fn ensure_serving(&self) -> Result<(), PartitionError> {
        self.ready_leader().await
    }

    /// The offset of the first committed record whose timestamp is at least `timestamp`, or
    /// `None` if there is none (Kafka's ListOffsets by time).
    pub async fn offset_for_timestamp(
        &self,
        timestamp: i64,
    ) -> Result<Option<i64>, PartitionError> {
        self.ready_leader().await?;
        let hw = self.high_watermark();
        let reader = self.reader.clone();
        let entry = tokio::task::spawn_blocking(move || reader.entry_for_timestamp(timestamp))
            .await
            .map_err(fatal)?
            .map_err(fatal)?;
        let Some(entry) = entry else {
            return Ok(None);
        };
        if entry.base_offset >= hw {
            return Ok(None);
        }
        let batch = Batch::parse(entry.payload).map_err(fatal)?;
        Ok(batch
            .first_offset_at_or_after_timestamp(timestamp)
            .filter(|o| *o < hw))
    }

    /// Whether this replica is the leader (ready or not, awake or asleep).
    pub fn leads(&self) -> bool {
        self.with_metrics(|m| {
            m.state == ServerState::Leader && m.current_leader == Some(self.node_id)
        })
    }

    /// The hibernation state.
    pub fn sleep_state(&self) -> SleepState {
        lock(&self.sleep).state
    }

    /// Turns this leader's timers off if its group is idle: no client activity for `idle`,
    /// and every follower has the whole log. A sleeping group costs no timer, heartbeat or
    /// message; the node's liveness ticker tells its followers' nodes that it sleeps, so they
    /// turn their election timers off too. Returns the term it sleeps in.
    pub fn hibernate_if_idle(&self, idle: Duration) -> Option<u64> {
        {
            let sleep = lock(&self.sleep);
            if sleep.state == SleepState::Awake && sleep.last_activity.elapsed() < idle {
                return None;
            }
            if let SleepState::FollowerAsleep { .. } = sleep.state {
                return None;
            }
        }
        self.with_metrics(|m| self.hibernate_with(m, idle))
    }

    fn hibernate_with(&self, m: &RaftMetrics<TypeConfig>, idle: Duration) -> Option<u64> {
        let mut sleep = lock(&self.sleep);
        if let SleepState::LeaderAsleep { term } = sleep.state {
            if m.state == ServerState::Leader && m.current_term == term {
                return Some(term);
            }
            // Lost leadership while asleep (another node won an election): wake up.
            sleep.state = SleepState::Awake;
            self.set_timers(true);
            return None;
        }
        if sleep.state != SleepState::Awake
            || m.state != ServerState::Leader
            || sleep.last_activity.elapsed() < idle
        {
            return None;
        }
        let last = m.last_log_index;
        let caught_up = m
            .replication
            .as_ref()
            .is_some_and(|r| r.values().all(|matched| matched.map(|l| l.index) == last));
        let applied = m.last_applied.map(|l| l.index) == last;
        // Only a leader a quorum answered recently may sleep: one cut off from its followers
        // stays awake (and not ready), so it never looks like a sleeping, healthy leader.
        let acked = quorum_acked_within(m, self.node_id, self.lease_ms);
        if !caught_up || !applied || !acked {
            return None;
        }
        sleep.state = SleepState::LeaderAsleep {
            term: m.current_term,
        };
        self.set_timers(false);
        Some(m.current_term)
    }

    /// A follower's node heard that `leader` sleeps in `term`: if that is this replica's leader
    /// and term, turn its election timer off too.
    pub fn follow_asleep(&self, leader: NodeId, term: u64) {
        let follows = self.with_metrics(|m| {
            m.state != ServerState::Leader
                && m.current_leader == Some(leader)
                && m.current_term == term
        });
        let mut sleep = lock(&self.sleep);
        if sleep.state == SleepState::Awake && follows {
            sleep.state = SleepState::FollowerAsleep { leader, term };
            self.raft.runtime_config().tick(false);
        }
    }

    /// Turns a follower's timers back on if its leader no longer says it sleeps (or its node
    /// went silent): the group is active again, or needs an election.
    pub fn wake_follower(&self) {
        let mut sleep = lock(&self.sleep);
        if let SleepState::FollowerAsleep { .. } = sleep.state {
            sleep.state = SleepState::Awake;
            self.raft.runtime_config().tick(true);
        }
    }

    /// Wakes the group if this leader sleeps: timers on and a heartbeat at once, so the lease
    /// renews (a sleeping leader's lease has expired: it serves again once a quorum answers).
    pub async fn wake(&self) {
        let was_asleep = {
            let mut sleep = lock(&self.sleep);
            sleep.last_activity = std::time::Instant::now();
            let asleep = matches!(sleep.state, SleepState::LeaderAsleep { .. });
            if asleep {
                sleep.state = SleepState::Awake;
                self.set_timers(true);
            }
            asleep
        };
        if was_asleep {
            let _ = self.raft.trigger().heartbeat().await;
        }
    }

    fn set_timers(&self, on: bool) {
        let rc = self.raft.runtime_config();
        rc.heartbeat(on);
        rc.tick(on);
    }

    /// Drops whole segments of records below `offset` (retention; leader only). The cut is at
    /// the latest segment boundary at or below `offset` whose state this leader checkpointed
    /// when it applied it: every replica persists that state as its snapshot, then purges the
    /// log up to it; a replica that falls behind it catches up by installing the snapshot.
    /// Returns the new log start offset, or `None` if no boundary lies in range.
    pub async fn retain_before(&self, offset: i64) -> Result<Option<i64>, PartitionError> {
        self.ready_leader().await?;
        let hw = self.high_watermark();
        let Some(cp) = self.state.checkpoint_at_or_before(offset.min(hw)) else {
            return Ok(None);
        };
        if cp.state.next_offset <= self.log_start_offset() {
            return Ok(None);
        }
        let cmd = Command::Retain(crate::types::RetainCommand {
            upto: cp.upto,
            membership: cp.membership,
            state: crate::state_machine::encode_snapshot(&cp.state),
        });
        // Bounded: a leader cut off from its followers must not hold the caller (the node's
        // retention loop serves every partition) for as long as the fault lasts.
        let write = tokio::time::timeout(self.write_timeout, self.raft.client_write(cmd));
        let Ok(r) = write.await else {
            return Err(PartitionError::Indeterminate {
                reason: format!(
                    "retention entry not committed within {:?}",
                    self.write_timeout
                ),
            });
        };
        match r {
            Ok(resp) => match resp.data {
                Applied::Retained { start_offset } => Ok(Some(start_offset)),
                _ => Err(fatal(
                    "a retention entry was applied as another kind of entry",
                )),
            },
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                Err(PartitionError::NotLeader {
                    leader_id: f.leader_id,
                    leader_addr: f.leader_node.map(|n| n.addr),
                })
            }
            Err(e) => Err(PartitionError::Indeterminate {
                reason: e.to_string(),
            }),
        }
    }

    /// Refuses a membership change on a leader that is not a voter of its own membership: a
    /// leader that removed itself keeps leading until that change commits and it steps down,
    /// and openraft asserts (killing its Raft core in debug builds) when such a leader appends
    /// another membership entry. Checked inside the Raft core (not on metrics, which lag it),
    /// under the partition's membership lock: the check runs after every change proposed
    /// before it (the core takes requests in order), and no other change through this
    /// partition can come between the check and its own proposal. The caller retries on the
    /// next leader.
    async fn membership_leader(&self) -> Result<(), PartitionError> {
        let me = self.node_id;
        let leads_as_voter = self
            .raft
            .with_raft_state(move |st| {
                st.server_state == ServerState::Leader
                    && st
                        .membership_state
                        .effective()
                        .membership()
                        .voter_ids()
                        .any(|v| v == me)
            })
            .await
            .map_err(fatal)?;
        if !leads_as_voter {
            return Err(PartitionError::NotLeader {
                leader_id: None,
                leader_addr: None,
            });
        }
        Ok(())
    }

    /// Adds a learner (a replica that receives the log but does not vote) and waits until it
    /// has caught up when `blocking`.
    pub async fn add_learner(
        &self,
        id: NodeId,
        addr: String,
        blocking: bool,
    ) -> Result<(), PartitionError> {
        self.wake().await;
        let _serial = self.membership.lock().await;
        self.membership_leader().await?;
        self.raft
            .add_learner(id, BasicNode { addr }, blocking)
            .await
            .map(|_| ())
            .map_err(|e| self.membership_error(e))
    }

    /// Makes these learners voters.
    pub async fn promote(&self, ids: BTreeSet<NodeId>) -> Result<(), PartitionError> {
        self.wake().await;
        let _serial = self.membership.lock().await;
        self.membership_leader().await?;
        self.raft
            .change_membership(ChangeMembers::AddVoterIds(ids), false)
            .await
            .map(|_| ())
            .map_err(|e| self.membership_error(e))
    }

    /// Removes these voters (and their nodes) from the group.
    pub async fn remove_voters(&self, ids: BTreeSet<NodeId>) -> Result<(), PartitionError> {
        self.wake().await;
        let _serial = self.membership.lock().await;
        self.membership_leader().await?;
        self.raft
            .change_membership(ChangeMembers::RemoveVoters(ids), false)
            .await
            .map(|_| ())
            .map_err(|e| self.membership_error(e))
    }

    fn membership_error(
        &self,
        e: RaftError<TypeConfig, ClientWriteError<TypeConfig>>,
    ) -> PartitionError {
        match e {
            RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => {
                PartitionError::NotLeader {
                    leader_id: f.leader_id,
                    leader_addr: f.leader_node.map(|n| n.addr),
                }
            }
            other => fatal(other),
        }
    }

    /// Asks the current leader (this replica) to hand leadership to `to`.
    pub async fn transfer_leader(&self, to: NodeId) -> Result<(), PartitionError> {
        self.wake().await;
        self.raft.trigger().transfer_leader(to).await.map_err(fatal)
    }

    fn check_open(&self) -> Result<(), PartitionError> {
        if *self.closed.borrow() {
            return Err(PartitionError::Fatal {
                reason:
                    "the replica was closed (its topic was deleted, or it moved off this node, \
                         or the node is stopping)"
                        .to_string(),
            });
        }
        Ok(())
    }

    /// Closes the group whoever else still holds a handle: cleanly (flush, indexes, manifest)
    /// when this is the last one; otherwise the Raft group stops and the log's IO is halted
    /// at once, as a crash would stop it (nothing unsynced was acknowledged by this replica),
    /// so no task keeps a deleted directory alive, and the holders' waits end with
    /// [`PartitionError::Fatal`]. Their handles keep only memory until they drop them.
    pub async fn close(self: Arc<Self>) -> Result<(), PartitionError> {
        self.closed.send_replace(true);
        match Arc::try_unwrap(self) {
            Ok(p) => p.shutdown().await,
            Err(p) => {
                p.retention.abort();
                let r = p.raft.shutdown().await.map_err(fatal);
                p.store.halt().await.map_err(fatal)?;
                r
            }
        }
    }

    /// Stops the group as a power loss would, whoever else holds a handle: the Raft group
    /// stops and the log's IO is halted at once, with no flush and no index or manifest
    /// write (tests then simulate the lost writes with the disk seam). Holders' waits end as
    /// with [`Partition::close`].
    pub async fn halt(self: Arc<Self>) -> Result<(), PartitionError> {
        self.closed.send_replace(true);
        self.retention.abort();
        self.store.halt().await.map_err(fatal)?;
        let _ = self.raft.shutdown().await;
        Ok(())
    }

    /// Stops the Raft group and drops the log without a clean close, as a crash would (tests
    /// then simulate the lost writes with the disk seam).
    pub async fn stop_abruptly(self) -> Result<(), PartitionError> {
        self.retention.abort();
        // No write of this instance may land after this returns, even from openraft tasks
        // that are still winding down: the directory may be reopened at once.
        self.store.halt().await.map_err(fatal)?;
        let _ = self.raft.shutdown().await;
        drop(self.raft);
        drop(self.store);
        Ok(())
    }

    /// Stops the Raft group and closes the log cleanly.
    pub async fn shutdown(self) -> Result<(), PartitionError> {
        self.retention.abort();
        self.raft.shutdown().await.map_err(fatal)?;
        drop(self.raft);
        self.store.close().await.map_err(fatal)
    }
}
