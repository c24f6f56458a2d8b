//! Configuration of one partition replica: [`PartitionConfig`] (identity, place, log, limits),
//! [`RaftTiming`], and the openraft [`Config`] a partition group runs with.

use crate::error::PartitionError;
use crate::numbers::GroupId;
use crate::types::NodeId;
use openraft::{Config, SnapshotPolicy};
use std::path::PathBuf;
use std::sync::Arc;
use strata_log::{LogConfig, LogIndex};

/// How long to wait until an entry acknowledged `acks=all` is committed and applied.
pub const WRITE_TIMEOUT_DEFAULT_MS: u64 = 10_000;

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
    pub group_id: GroupId,
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
    pub durable_cut: Option<LogIndex>,
    /// Open the log with a full check of every frame (`Log::open_verified`) and quarantine
    /// the replica if recorded data was lost (see [`crate::quarantine`]). The supervisor sets
    /// it when it reopens a replica after a failure.
    pub verify_on_open: bool,
}

impl PartitionConfig {
    /// A configuration with defaults for everything but identity and place.
    pub fn new(group_id: GroupId, node_id: NodeId, dir: impl Into<PathBuf>) -> PartitionConfig {
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

    pub(super) fn raft_config(&self) -> Result<Config, PartitionError> {
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
            // A follower whose disk lost entries it had acknowledged (damage a verified open
            // cut away) comes back with a shorter log, possibly in the same term: its leader
            // must restart the search for the follower's end and repair it. openraft's default
            // treats that as a bug (a debug assertion; in release the follower's replication
            // state goes inconsistent and it is never repaired). The election safety that the
            // reversion would otherwise threaten is kept by the quarantine: such a replica
            // neither votes nor campaigns until it holds its recorded end again.
            allow_log_reversion: Some(true),
            // Snapshots hold no record data; openraft must never purge records on its own.
            // Retention purges through the log explicitly.
            snapshot_policy: SnapshotPolicy::Never,
            max_in_snapshot_log_to_keep: u64::MAX,
            ..Config::default()
        };
        config
            .validate()
            .map_err(|e| PartitionError::InvalidConfig {
                reason: format!("invalid raft config: {e}"),
            })
    }
}
