//! Quarantine of a replica whose disk lost data it had recorded as written.
//!
//! A verified reopen (see `strata_log::Log::open_verified`) can find that frames the log had
//! recorded (sealed segments, the checkpointed prefix) are damaged: bit flips, a zeroed page, a
//! truncated file. The log is cut before the first bad frame, but entries up to the recorded
//! end may have been acknowledged to a leader and counted toward a commit. A replica missing
//! them must not take part in elections until it holds them again: its vote could elect a
//! candidate that lacks a committed entry (with five voters, the entry on three of them, and
//! this one among the three, two lagging voters and this one form a majority), and it must not
//! campaign on a log it no longer has.
//!
//! So, while quarantined, the replica does not start elections (openraft's `elect` switch
//! off, and [`crate::partition::Partition::elect`] does nothing), answers every vote and
//! pre-vote request with a refusal that changes no state, and refuses leadership transfers.
//! It still follows the leader, which repairs its log through ordinary replication. The
//! quarantine ends once its log reaches the recorded end again. A sole voter has nobody to
//! repair from: it is not quarantined, and the loss is logged.

use crate::numbers::{GroupId, RaftIndex};
use crate::transport::{GroupHandle, Snapshot};
use crate::types::{TypeConfig, Vote};
use futures_util::future::BoxFuture;
use futures_util::stream::{BoxStream, StreamExt};
use openraft::error::{Fatal, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, StreamAppendResult,
    TransferLeaderRequest, TransferLeaderResponse, VoteRequest, VoteResponse,
};
use openraft::type_config::async_runtime::WatchReceiver;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Whether a replica is quarantined, and until which Raft index.
#[derive(Debug, Default)]
pub struct Quarantine {
    /// One more than the Raft index the replica must hold again; 0 when not quarantined.
    until_plus_one: AtomicU64,
}

impl Quarantine {
    /// The Raft index the replica must reach to leave quarantine, if quarantined.
    pub fn until(&self) -> Option<RaftIndex> {
        match self.until_plus_one.load(Ordering::Acquire) {
            0 => None,
            n => Some(RaftIndex::new(n - 1)),
        }
    }

    fn set(&self, until: Option<RaftIndex>) {
        let v = until.map_or(0, |u| u.get().saturating_add(1));
        self.until_plus_one.store(v, Ordering::Release);
    }
}

/// Puts `raft` in quarantine until its log reaches Raft index `until`, and lifts it then (a
/// task that ends with the Raft group).
pub(crate) fn start(
    raft: &crate::partition::Raft,
    q: &Arc<Quarantine>,
    until: RaftIndex,
    group: GroupId,
) {
    q.set(Some(until));
    raft.runtime_config().elect(false);
    let raft = raft.clone();
    let q = q.clone();
    tokio::spawn(async move {
        let mut rx = raft.metrics();
        loop {
            let reached = rx
                .borrow_watched()
                .last_log_index
                .is_some_and(|i| RaftIndex::new(i) >= until);
            if reached {
                q.set(None);
                raft.runtime_config().elect(true);
                tracing::info!(
                    group = group.get(),
                    until = until.get(),
                    "quarantine lifted: the log holds the damaged range again"
                );
                return;
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
    });
}

/// What a replica answers to its peers: its Raft group, with votes, pre-votes and leadership
/// transfers refused while it is quarantined.
pub struct PeerHandle {
    raft: crate::partition::Raft,
    quarantine: Arc<Quarantine>,
    causes: Arc<crate::partition::ElectionCauses>,
}

impl PeerHandle {
    /// The handle of `raft`, gated by `quarantine`; an accepted leadership transfer is noted
    /// in `causes` (it explains the election that follows).
    pub fn new(
        raft: crate::partition::Raft,
        quarantine: Arc<Quarantine>,
        causes: Arc<crate::partition::ElectionCauses>,
    ) -> PeerHandle {
        PeerHandle {
            raft,
            quarantine,
            causes,
        }
    }

    /// A refusal that changes nothing here: this replica's current vote, not granted, and no
    /// log id (which would only make the candidate wait).
    fn refusal(&self) -> VoteResponse<TypeConfig> {
        let vote = self.raft.metrics().borrow_watched().vote;
        VoteResponse::new(vote, None, false)
    }

    /// The answer to a vote or pre-vote while quarantined ([`PeerHandle::refusal`]); `None`
    /// when not quarantined.
    #[allow(clippy::type_complexity)]
    fn refused(
        &self,
    ) -> Option<BoxFuture<'static, Result<VoteResponse<TypeConfig>, RaftError<TypeConfig>>>> {
        self.quarantine.until().map(|_| {
            let r = self.refusal();
            Box::pin(async move { Ok(r) }) as BoxFuture<'static, _>
        })
    }
}

impl GroupHandle for PeerHandle {
    fn append_entries(
        &self,
        rpc: AppendEntriesRequest<TypeConfig>,
    ) -> BoxFuture<'_, Result<AppendEntriesResponse<TypeConfig>, RaftError<TypeConfig>>> {
        GroupHandle::append_entries(&self.raft, rpc)
    }

    fn stream_append(
        self: Arc<Self>,
        input: BoxStream<'static, AppendEntriesRequest<TypeConfig>>,
    ) -> BoxStream<'static, Result<StreamAppendResult<TypeConfig>, Fatal<TypeConfig>>> {
        openraft::Raft::stream_append(&self.raft, input).boxed()
    }

    fn vote(
        &self,
        rpc: VoteRequest<TypeConfig>,
    ) -> BoxFuture<'_, Result<VoteResponse<TypeConfig>, RaftError<TypeConfig>>> {
        self.refused()
            .unwrap_or_else(|| GroupHandle::vote(&self.raft, rpc))
    }

    fn pre_vote(
        &self,
        rpc: VoteRequest<TypeConfig>,
    ) -> BoxFuture<'_, Result<VoteResponse<TypeConfig>, RaftError<TypeConfig>>> {
        self.refused()
            .unwrap_or_else(|| GroupHandle::pre_vote(&self.raft, rpc))
    }

    fn install_full_snapshot(
        &self,
        vote: Vote,
        snapshot: Snapshot,
    ) -> BoxFuture<'_, Result<SnapshotResponse<TypeConfig>, Fatal<TypeConfig>>> {
        GroupHandle::install_full_snapshot(&self.raft, vote, snapshot)
    }

    fn transfer_leader(
        &self,
        req: TransferLeaderRequest<TypeConfig>,
    ) -> BoxFuture<'_, Result<TransferLeaderResponse<TypeConfig>, Fatal<TypeConfig>>> {
        if self.quarantine.until().is_some() {
            let refused = openraft::raft::TransferLeaderError::LogNotFlushed {
                expected: req.last_log_id().cloned(),
                actual: None,
            };
            return Box::pin(async move { Ok(Err(refused)) });
        }
        self.causes.transfer_received();
        GroupHandle::transfer_leader(&self.raft, req)
    }
}
