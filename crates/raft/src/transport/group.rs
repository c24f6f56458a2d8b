//! The server's view of the groups it hosts: [`GroupHandle`] (what a group answers) and
//! [`GroupRegistry`] (group id to handle).
//!
//! The transport does not know the state machine type: any `openraft::Raft<TypeConfig, SM>`
//! with `SnapshotData = Bytes` is a [`GroupHandle`], and tests register fakes.

use crate::numbers::GroupId;
use crate::types::{SnapshotData, TypeConfig, Vote};
use futures_util::future::BoxFuture;
use futures_util::stream::{self, BoxStream, StreamExt};
use openraft::error::{Fatal, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, StreamAppendResult,
    TransferLeaderRequest, TransferLeaderResponse, VoteRequest, VoteResponse,
};
use openraft::storage::RaftStateMachine;
use openraft::type_config::alias::SnapshotOf;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// A complete snapshot of a group: metadata and its (small) bytes.
pub type Snapshot = SnapshotOf<TypeConfig, SnapshotData>;
/// The metadata of a [`Snapshot`].
pub type SnapshotMeta = openraft::SnapshotMeta<
    <crate::types::LeaderId as openraft::vote::RaftLeaderId>::Committed,
    crate::types::NodeId,
    openraft::BasicNode,
>;

/// What one hosted group answers to peer messages: the receiving half of openraft's network.
///
/// Each method hands a request to the group and resolves when the group has answered; an
/// `Err` means the group's Raft has stopped (`Fatal`), which the server reports as
/// `UNAVAILABLE`.
pub trait GroupHandle: Send + Sync + 'static {
    /// AppendEntries (also a heartbeat when `rpc.entries` is empty).
    fn append_entries(
        &self,
        rpc: AppendEntriesRequest<TypeConfig>,
    ) -> BoxFuture<'_, Result<AppendEntriesResponse<TypeConfig>, RaftError<TypeConfig>>>;

    /// Pipelined AppendEntries: answers every request of `input`, in order. The output ends
    /// after `input` ends and every answer is out, or after the first error or conflict.
    ///
    /// The default handles one request at a time through [`GroupHandle::append_entries`];
    /// `openraft::Raft` pipelines instead.
    fn stream_append(
        self: Arc<Self>,
        input: BoxStream<'static, AppendEntriesRequest<TypeConfig>>,
    ) -> BoxStream<'static, Result<StreamAppendResult<TypeConfig>, Fatal<TypeConfig>>> {
        sequential_stream_append(self, input)
    }

    /// RequestVote.
    fn vote(
        &self,
        rpc: VoteRequest<TypeConfig>,
    ) -> BoxFuture<'_, Result<VoteResponse<TypeConfig>, RaftError<TypeConfig>>>;

    /// Pre-vote: would the vote be granted? Changes no state.
    fn pre_vote(
        &self,
        rpc: VoteRequest<TypeConfig>,
    ) -> BoxFuture<'_, Result<VoteResponse<TypeConfig>, RaftError<TypeConfig>>>;

    /// Installs a complete snapshot sent by the leader whose vote is `vote`.
    fn install_full_snapshot(
        &self,
        vote: Vote,
        snapshot: Snapshot,
    ) -> BoxFuture<'_, Result<SnapshotResponse<TypeConfig>, Fatal<TypeConfig>>>;

    /// The leader asks this node to take over.
    fn transfer_leader(
        &self,
        req: TransferLeaderRequest<TypeConfig>,
    ) -> BoxFuture<'_, Result<TransferLeaderResponse<TypeConfig>, Fatal<TypeConfig>>>;
}

/// The default [`GroupHandle::stream_append`]: one request at a time, stopping after the first
/// error, conflict or higher vote (as openraft's own sequential adapter does).
fn sequential_stream_append<G: GroupHandle + ?Sized>(
    group: Arc<G>,
    input: BoxStream<'static, AppendEntriesRequest<TypeConfig>>,
) -> BoxStream<'static, Result<StreamAppendResult<TypeConfig>, Fatal<TypeConfig>>> {
    stream::unfold(Some((group, input)), |state| async move {
        let (group, mut input) = state?;
        let rpc = input.next().await?;
        let prev = rpc.prev_log_id;
        let last = rpc.entries.last().map(|e| e.log_id).or(prev);
        let result = match group.append_entries(rpc).await {
            // A conflict without `prev_log_id` is impossible; end the stream on it.
            Ok(resp) => Ok(stream_result(resp, prev, last)?),
            Err(RaftError::Fatal(f)) => Err(f),
            Err(RaftError::APIError(never)) => match never {},
        };
        let go_on = matches!(result, Ok(Ok(_)));
        Some((result, go_on.then_some((group, input))))
    })
    .boxed()
}

/// openraft's `into_stream_result`, without its panic: a conflict for a request that had no
/// `prev_log_id` cannot happen (an empty prefix always matches), so it gives `None`.
pub(crate) fn stream_result(
    resp: AppendEntriesResponse<TypeConfig>,
    prev: Option<crate::types::LogId>,
    last: Option<crate::types::LogId>,
) -> Option<StreamAppendResult<TypeConfig>> {
    use openraft::raft::StreamAppendError;
    Some(match resp {
        AppendEntriesResponse::Success => Ok(last),
        AppendEntriesResponse::PartialSuccess(matching) => Ok(matching),
        AppendEntriesResponse::Conflict => Err(StreamAppendError::Conflict(prev?)),
        AppendEntriesResponse::HigherVote(vote) => Err(StreamAppendError::HigherVote(vote)),
    })
}

impl<SM> GroupHandle for openraft::Raft<TypeConfig, SM>
where
    SM: RaftStateMachine<TypeConfig, SnapshotData = SnapshotData>,
{
    fn append_entries(
        &self,
        rpc: AppendEntriesRequest<TypeConfig>,
    ) -> BoxFuture<'_, Result<AppendEntriesResponse<TypeConfig>, RaftError<TypeConfig>>> {
        Box::pin(openraft::Raft::append_entries(self, rpc))
    }

    fn stream_append(
        self: Arc<Self>,
        input: BoxStream<'static, AppendEntriesRequest<TypeConfig>>,
    ) -> BoxStream<'static, Result<StreamAppendResult<TypeConfig>, Fatal<TypeConfig>>> {
        openraft::Raft::stream_append(&*self, input).boxed()
    }

    fn vote(
        &self,
        rpc: VoteRequest<TypeConfig>,
    ) -> BoxFuture<'_, Result<VoteResponse<TypeConfig>, RaftError<TypeConfig>>> {
        Box::pin(openraft::Raft::vote(self, rpc))
    }

    fn pre_vote(
        &self,
        rpc: VoteRequest<TypeConfig>,
    ) -> BoxFuture<'_, Result<VoteResponse<TypeConfig>, RaftError<TypeConfig>>> {
        Box::pin(openraft::Raft::pre_vote(self, rpc))
    }

    fn install_full_snapshot(
        &self,
        vote: Vote,
        snapshot: Snapshot,
    ) -> BoxFuture<'_, Result<SnapshotResponse<TypeConfig>, Fatal<TypeConfig>>> {
        Box::pin(openraft::Raft::install_full_snapshot(self, vote, snapshot))
    }

    fn transfer_leader(
        &self,
        req: TransferLeaderRequest<TypeConfig>,
    ) -> BoxFuture<'_, Result<TransferLeaderResponse<TypeConfig>, Fatal<TypeConfig>>> {
        Box::pin(openraft::Raft::handle_transfer_leader(self, req))
    }
}

/// The groups this node hosts, by group id; shared by the server and whoever opens and closes
/// replicas. Lookups take a read lock held for a hash lookup only.
#[derive(Default)]
pub struct GroupRegistry {
    groups: RwLock<HashMap<GroupId, Arc<dyn GroupHandle>>>,
}

impl GroupRegistry {
    /// An empty registry.
    pub fn new() -> GroupRegistry {
        GroupRegistry::default()
    }

    /// Registers `group` under `group_id`; returns the handle it replaces, if any.
    pub fn insert(
        &self,
        group_id: GroupId,
        group: Arc<dyn GroupHandle>,
    ) -> Option<Arc<dyn GroupHandle>> {
        self.write().insert(group_id, group)
    }

    /// Unregisters a group; later messages for it are answered `NOT_FOUND`.
    pub fn remove(&self, group_id: GroupId) -> Option<Arc<dyn GroupHandle>> {
        self.write().remove(&group_id)
    }

    /// The handle of a group, if hosted.
    pub fn get(&self, group_id: GroupId) -> Option<Arc<dyn GroupHandle>> {
        self.read().get(&group_id).cloned()
    }

    /// How many groups are registered.
    pub fn len(&self) -> usize {
        self.read().len()
    }

    /// Whether no group is registered.
    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    // A panic while holding the lock cannot leave the map half-updated (every operation is
    // one HashMap call), so a poisoned lock is still consistent.
    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<GroupId, Arc<dyn GroupHandle>>> {
        strata_record::sync::read(&self.groups)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<GroupId, Arc<dyn GroupHandle>>> {
        strata_record::sync::write(&self.groups)
    }
}

impl std::fmt::Debug for GroupRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupRegistry")
            .field("groups", &self.len())
            .finish()
    }
}
