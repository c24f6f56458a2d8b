//! [`Partition`]: one replica of one partition — its openraft group over its log. The rest of
//! the workspace sees only this: append with acks, read, high watermark, offsets by time,
//! leadership and membership, and [`PartitionError`].
//!
//! The replica is split by concern:
//! - `config`: [`PartitionConfig`] and [`RaftTiming`];
//! - this module: the core — [`Partition`] itself, opening, status and closing;
//! - `leadership`: who leads and whether this replica may serve as leader (the lease);
//! - `write` and `read`: the write path ([`Acks`]) and the read path ([`Fetched`]);
//! - `idempotence`: idempotent producers' in-flight batches and the sequence check;
//! - `hibernation`: idle groups' sleep and wake ([`SleepState`]);
//! - `membership`: learners, voters and their changes;
//! - `retention`: the retention cut and the purge after it.
//!
//! Numbers at this API: record offsets are Kafka's `i64`, as the broker, the node and the
//! client API carry them (inside this crate they are [`strata_log::Offset`]s: `read`, `write`
//! and `retention` convert, and [`PartitionError::OffsetOutOfRange`] is built in one place);
//! Raft indexes ([`PartitionStatus`], [`Partition::quarantined_until`],
//! [`Partition::propose_control`]) are [`RaftIndex`]es; the log's own index, where it shows
//! ([`Partition::durable_log_index`], [`PartitionConfig::durable_cut`]), is a
//! [`strata_log::LogIndex`]; the group is a [`GroupId`].

mod config;
mod elections;
mod hibernation;
mod idempotence;
mod leadership;
mod membership;
mod read;
mod retention;
mod write;

pub use config::{PartitionConfig, RaftTiming, WRITE_TIMEOUT_DEFAULT_MS};
pub use elections::ElectionCauses;
pub use hibernation::SleepState;
pub use idempotence::CLOCK_INTERVAL;
pub use read::Fetched;
pub use write::Acks;

use crate::error::PartitionError;
use crate::numbers::{GroupId, RaftIndex};
use crate::quarantine::{self, PeerHandle, Quarantine};
use crate::state_machine::{PartitionState, StateHook, StateMachine};
use crate::store::LogStore;
use crate::types::{NodeId, TypeConfig};
use bytes::Bytes;
use hibernation::Sleep;
use idempotence::Inflight;
use leadership::LeadStart;
use openraft::network::RaftNetworkFactory;
use openraft::type_config::async_runtime::WatchReceiver;
use openraft::{BasicNode, RaftMetrics};
use retention::retention_task;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use strata_log::{FlusherHandle, Log, LogReader, Offset};
use tokio::sync::watch;

/// The openraft handle of a partition group.
pub type Raft = openraft::Raft<TypeConfig, StateMachine>;

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
    /// Raft index of the last entry in this replica's log (`None`: an empty, never-written
    /// log).
    pub last_log_index: Option<RaftIndex>,
    /// On the leader: the last Raft index each other member is known to hold.
    pub matched: BTreeMap<NodeId, RaftIndex>,
}

/// One replica of one partition.
pub struct Partition {
    raft: Raft,
    /// Purges the log after each applied retention entry (see [`retention::retention_task`]).
    retention: tokio::task::JoinHandle<()>,
    /// Counts the elections this replica wins (see [`elections`]).
    elections: tokio::task::JoinHandle<()>,
    /// What explains this replica's next election.
    causes: Arc<ElectionCauses>,
    /// `strata_propose_to_applied_seconds`, looked up once (not per write).
    propose_to_applied: metrics::Histogram,
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
    /// When this replica's current leadership started (see [`leadership::ready_leader`]).
    lead: Arc<LeadStart>,
    inflight: Mutex<HashMap<i64, Inflight>>,
    /// Bumped whenever an idempotent batch is admitted or leaves the in-flight map: a batch
    /// that arrived ahead of its predecessor waits on it (see `idempotence::SEQUENCE_WAIT`).
    sequence_progress: watch::Sender<u64>,
    /// Per producer id: held from an idempotent batch's sequence check to its hand-off to
    /// Raft, so that the batches of a producer enter the log in the order they were checked
    /// (producers do not wait on each other).
    sequence_order: Mutex<HashMap<i64, Arc<tokio::sync::Mutex<()>>>>,
    /// When this replica last proposed its clock, and in which term (see [`CLOCK_INTERVAL`]).
    clock_proposed: Mutex<Option<(u64, std::time::Instant)>>,
    /// Set once the group is stopped under other holders (see [`Partition::close`]): waits end
    /// and every later call fails with [`PartitionError::Closed`].
    closed: watch::Sender<bool>,
    /// Set while the replica may not vote or campaign (see [`crate::quarantine`]).
    quarantine: Arc<Quarantine>,
    /// Set when a read found damaged data: the supervisor reopens the replica verified.
    damaged: watch::Sender<Option<String>>,
    /// Held across a membership change's check and its proposal (see
    /// [`Partition::membership_leader`]).
    membership: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Partition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Partition")
            .field("node_id", &self.node_id)
            .finish_non_exhaustive()
    }
}

/// Panics: the entry this replica proposed at Raft index `index` as a `proposed` entry was
/// answered as `applied`. The state machine answers each entry by its own kind and openraft
/// hands an answer only to its entry's proposer, so this is a bug (here or in openraft), not a
/// condition to report to a client: serving on could hand out wrong offsets.
fn applied_as_another_kind(index: RaftIndex, proposed: &str, applied: &crate::types::Applied) -> ! {
    panic!(
        "invariant broken: the {proposed} entry at Raft index {index} was applied as {applied:?}"
    )
}

use strata_record::sync::lock;

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
                && cut < log.next_index().prev()
            {
                let keep = cut.max(log.reader().bounds().first_index.prev());
                tracing::warn!(
                    dir = %log.dir().display(),
                    durable = cut.get(),
                    last = log.next_index().prev().get(),
                    "dropping log entries no successful sync covered before the failure"
                );
                log.truncate_after(keep)?;
            }
            Ok::<_, strata_log::LogError>(log)
        })
        .await
        .map_err(PartitionError::task)?
        .map_err(PartitionError::log)?;
        let damage = log.damage();
        let state = PartitionState::new(Offset::new(0), config.producer_expiry_ms);
        let store = LogStore::new(log, config.append_bytes_max, Some(state.clone()))
            .map_err(PartitionError::io)?;
        let reader = store.log_reader();
        state
            .attach(reader.clone(), config.dir.clone(), config.disk.clone())
            .map_err(PartitionError::io)?;
        let sm = StateMachine::new(state.clone(), hook);
        let raft = Raft::new(config.node_id, raft_config, network, store.clone(), sm).await?;
        let retention = tokio::spawn(retention_task(raft.clone(), state.watch_retained()));
        // A transfer is followed by the election at once; allow two election timeouts.
        let causes = Arc::new(ElectionCauses::new(Duration::from_millis(
            2 * config.timing.election_timeout_max_ms,
        )));
        let elections = tokio::spawn(elections::count(
            raft.clone(),
            config.node_id,
            config.group_id,
            causes.clone(),
        ));
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
                    group = config.group_id.get(),
                    lost_from = d.first_lost_index.get(),
                    recorded_to = d.recorded_last_index.get(),
                    "the log lost recorded entries: quarantined (no votes, no elections) until the leader has repaired them"
                );
                // The log counts from 1 where Raft counts from 0.
                let until = crate::codec::raft_index(d.recorded_last_index);
                quarantine::start(&raft, &quarantine, until, config.group_id);
            } else {
                tracing::error!(
                    group = config.group_id.get(),
                    lost_from = d.first_lost_index.get(),
                    recorded_to = d.recorded_last_index.get(),
                    "the log lost recorded entries and this replica is the group's only voter: they are gone"
                );
            }
        }
        Ok(Partition {
            quarantine,
            retention,
            elections,
            causes,
            propose_to_applied: metrics::histogram!("strata_propose_to_applied_seconds"),
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
            sequence_progress: watch::channel(0).0,
            sequence_order: Mutex::new(HashMap::new()),
            clock_proposed: Mutex::new(None),
            closed: watch::channel(false).0,
            damaged: watch::channel(None).0,
            lead: Arc::default(),
            membership: tokio::sync::Mutex::new(()),
        })
    }

    /// Initializes a new group with these voters (on one replica only). Fails with
    /// [`PartitionError::AlreadyInitialized`], changing nothing, if the group already has a log.
    pub async fn initialize(&self, voters: BTreeMap<NodeId, String>) -> Result<(), PartitionError> {
        let nodes: BTreeMap<NodeId, BasicNode> = voters
            .into_iter()
            .map(|(id, addr)| (id, BasicNode { addr }))
            .collect();
        Ok(self.raft.initialize(nodes).await?)
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
                last_log_index: m.last_log_index.map(RaftIndex::new),
                matched: m
                    .replication
                    .as_ref()
                    .map(|r| {
                        r.iter()
                            .filter_map(|(id, l)| {
                                l.as_ref().map(|l| (*id, RaftIndex::new(l.index)))
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
            }
        })
    }

    /// Registers this replica with a peer server's group registry, under its group id.
    pub fn register_with(&self, registry: &crate::transport::GroupRegistry, group_id: GroupId) {
        registry.insert(group_id, self.peer_handle());
    }

    /// What this replica answers to its peers (its Raft group, gated by its quarantine):
    /// what a transport dispatches incoming messages to.
    pub fn peer_handle(&self) -> Arc<PeerHandle> {
        Arc::new(PeerHandle::new(
            self.raft.clone(),
            self.quarantine.clone(),
            self.causes.clone(),
        ))
    }

    /// The Raft index this replica must hold again before it may vote, while it is
    /// quarantined after losing recorded data (see [`crate::quarantine`]).
    pub fn quarantined_until(&self) -> Option<RaftIndex> {
        self.quarantine.until()
    }

    /// A receiver that turns `Some(reason)` when a read found damaged data in this replica's
    /// log (the supervisor then reopens it with a full check).
    pub fn watch_damage(&self) -> watch::Receiver<Option<String>> {
        self.damaged.subscribe()
    }

    pub(super) fn check_open(&self) -> Result<(), PartitionError> {
        if *self.closed.borrow() {
            return Err(PartitionError::Closed);
        }
        Ok(())
    }

    /// Closes the group whoever else still holds a handle: cleanly (flush, indexes, manifest)
    /// when this is the last one; otherwise the Raft group stops and the log's IO is halted
    /// at once, as a crash would stop it (nothing unsynced was acknowledged by this replica),
    /// so no task keeps a deleted directory alive, and the holders' waits end with
    /// [`PartitionError::Closed`] (or [`PartitionError::Stopped`] from the stopped group).
    /// Their handles keep only memory until they drop them.
    pub async fn close(self: Arc<Self>) -> Result<(), PartitionError> {
        self.closed.send_replace(true);
        match Arc::try_unwrap(self) {
            Ok(p) => p.shutdown().await,
            Err(p) => {
                p.retention.abort();
                p.elections.abort();
                let r = p.raft.shutdown().await.map_err(PartitionError::task);
                p.store.halt().await.map_err(PartitionError::io)?;
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
        self.elections.abort();
        self.store.halt().await.map_err(PartitionError::io)?;
        let _ = self.raft.shutdown().await;
        Ok(())
    }

    /// Stops the Raft group and drops the log without a clean close, as a crash would (tests
    /// then simulate the lost writes with the disk seam).
    pub async fn stop_abruptly(self) -> Result<(), PartitionError> {
        self.retention.abort();
        self.elections.abort();
        // No write of this instance may land after this returns, even from openraft tasks
        // that are still winding down: the directory may be reopened at once.
        self.store.halt().await.map_err(PartitionError::io)?;
        let _ = self.raft.shutdown().await;
        drop(self.raft);
        drop(self.store);
        Ok(())
    }

    /// Stops the Raft group and closes the log cleanly.
    pub async fn shutdown(self) -> Result<(), PartitionError> {
        self.retention.abort();
        self.elections.abort();
        self.raft.shutdown().await.map_err(PartitionError::task)?;
        drop(self.raft);
        self.store.close().await.map_err(PartitionError::io)
    }
}

#[cfg(test)]
mod tests {
    use crate::types::Applied;

    #[test]
    #[should_panic(expected = "the batch entry at Raft index 7 was applied as Control")]
    fn an_entry_answered_as_another_kind_panics_naming_index_and_kinds() {
        super::applied_as_another_kind(crate::RaftIndex::new(7), "batch", &Applied::Control);
    }
}
