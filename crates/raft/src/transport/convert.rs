//! Conversions between openraft's messages and the peer API's prost messages.
//!
//! Both sides are foreign to this crate (openraft and strata-proto), so Rust's orphan rule
//! forbids `From`/`TryFrom` between them; [`ToWire`] and [`FromWire`] play those roles, one
//! small impl per type. Everything read from the wire is checked ([`FromWire`] returns a
//! [`WireError`], which the server answers as `INVALID_ARGUMENT`): a required field that is
//! absent, an unknown entry kind or a malformed membership never panics.
//!
//! Entries travel exactly like log frames: the kind and payload bytes of
//! [`codec::encode_payload`], read back with [`codec::decode_entry`]; data payloads are the same
//! `Bytes` (no copy). Requests leave `header` and `group_id` unset: the sender fills them.

use crate::codec::{self, DecodeError};
use crate::types::{Entry, LogId, Membership, StoredMembership, TypeConfig, Vote};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, StreamAppendError,
    StreamAppendResult, TransferLeaderError, TransferLeaderRequest, TransferLeaderResponse,
    VoteRequest, VoteResponse,
};
use openraft::vote::leader_id_std::CommittedLeaderId;
use strata_log::EntryKind;
use strata_proto::internal::v1 as pb;
use tonic::Status;

use super::group::{Snapshot, SnapshotMeta};

/// A wire message that is not a valid openraft value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed peer message: {0}")]
pub(crate) struct WireError(pub String);

impl WireError {
    fn missing(field: &str) -> WireError {
        WireError(format!("{field} is required"))
    }
}

impl From<DecodeError> for WireError {
    fn from(e: DecodeError) -> Self {
        WireError(e.to_string())
    }
}

impl From<WireError> for Status {
    fn from(e: WireError) -> Self {
        Status::invalid_argument(e.to_string())
    }
}

/// An openraft value that has a wire form `W` (the role of `Into`).
pub(crate) trait ToWire<W> {
    /// The wire form.
    fn to_wire(self) -> W;
}

/// An openraft value checked out of its wire form `W` (the role of `TryFrom`).
pub(crate) trait FromWire<W>: Sized {
    /// Reads and checks `wire`.
    fn from_wire(wire: W) -> Result<Self, WireError>;
}

fn required<T>(value: Option<T>, field: &str) -> Result<T, WireError> {
    value.ok_or_else(|| WireError::missing(field))
}

impl ToWire<pb::LogId> for LogId {
    fn to_wire(self) -> pb::LogId {
        pb::LogId {
            term: self.committed_leader_id().term,
            index: self.index,
        }
    }
}

impl FromWire<pb::LogId> for LogId {
    fn from_wire(w: pb::LogId) -> Result<Self, WireError> {
        Ok(LogId::new(CommittedLeaderId::new(w.term), w.index))
    }
}

impl ToWire<Option<pb::LogId>> for Option<LogId> {
    fn to_wire(self) -> Option<pb::LogId> {
        self.map(ToWire::to_wire)
    }
}

impl FromWire<Option<pb::LogId>> for Option<LogId> {
    fn from_wire(w: Option<pb::LogId>) -> Result<Self, WireError> {
        w.map(LogId::from_wire).transpose()
    }
}

impl ToWire<pb::Vote> for Vote {
    fn to_wire(self) -> pb::Vote {
        let leader = self.leader_id();
        pb::Vote {
            term: leader.term,
            node_id: leader.voted_for,
            committed: self.is_committed(),
        }
    }
}

impl FromWire<pb::Vote> for Vote {
    fn from_wire(w: pb::Vote) -> Result<Self, WireError> {
        Ok(if w.committed {
            Vote::new_committed(w.term, w.node_id)
        } else {
            Vote::new(w.term, w.node_id)
        })
    }
}

fn kind_to_wire(kind: EntryKind) -> pb::EntryKind {
    match kind {
        EntryKind::Data => pb::EntryKind::Data,
        EntryKind::Blank => pb::EntryKind::Blank,
        EntryKind::Membership => pb::EntryKind::Membership,
        EntryKind::Control => pb::EntryKind::Control,
    }
}

fn kind_from_wire(kind: i32) -> Result<EntryKind, WireError> {
    match pb::EntryKind::try_from(kind) {
        Ok(pb::EntryKind::Data) => Ok(EntryKind::Data),
        Ok(pb::EntryKind::Blank) => Ok(EntryKind::Blank),
        Ok(pb::EntryKind::Membership) => Ok(EntryKind::Membership),
        Ok(pb::EntryKind::Control) => Ok(EntryKind::Control),
        Ok(pb::EntryKind::Unspecified) | Err(_) => {
            Err(WireError(format!("unknown entry kind {kind}")))
        }
    }
}

impl ToWire<pb::Entry> for Entry {
    fn to_wire(self) -> pb::Entry {
        let (kind, payload) = codec::encode_payload(&self.payload);
        pb::Entry {
            term: self.log_id.committed_leader_id().term,
            index: self.log_id.index,
            kind: kind_to_wire(kind).into(),
            payload,
        }
    }
}

impl FromWire<pb::Entry> for Entry {
    fn from_wire(w: pb::Entry) -> Result<Self, WireError> {
        let kind = kind_from_wire(w.kind)?;
        Ok(codec::decode_entry(
            w.term,
            crate::RaftIndex::new(w.index),
            kind,
            w.payload,
        )?)
    }
}

impl ToWire<pb::VoteRequest> for VoteRequest<TypeConfig> {
    fn to_wire(self) -> pb::VoteRequest {
        pb::VoteRequest {
            header: None,
            group_id: 0,
            pre_vote: false,
            vote: Some(self.vote.to_wire()),
            last_log_id: self.last_log_id.to_wire(),
            leadership_transfer: self.leadership_transfer,
        }
    }
}

impl FromWire<pb::VoteRequest> for VoteRequest<TypeConfig> {
    fn from_wire(w: pb::VoteRequest) -> Result<Self, WireError> {
        Ok(VoteRequest {
            vote: Vote::from_wire(required(w.vote, "VoteRequest.vote")?)?,
            last_log_id: FromWire::from_wire(w.last_log_id)?,
            leadership_transfer: w.leadership_transfer,
        })
    }
}

impl ToWire<pb::VoteResponse> for VoteResponse<TypeConfig> {
    fn to_wire(self) -> pb::VoteResponse {
        pb::VoteResponse {
            vote: Some(self.vote.to_wire()),
            vote_granted: self.vote_granted,
            last_log_id: self.last_log_id.to_wire(),
        }
    }
}

impl FromWire<pb::VoteResponse> for VoteResponse<TypeConfig> {
    fn from_wire(w: pb::VoteResponse) -> Result<Self, WireError> {
        Ok(VoteResponse {
            vote: Vote::from_wire(required(w.vote, "VoteResponse.vote")?)?,
            vote_granted: w.vote_granted,
            last_log_id: FromWire::from_wire(w.last_log_id)?,
        })
    }
}

impl ToWire<pb::AppendRequest> for AppendEntriesRequest<TypeConfig> {
    fn to_wire(self) -> pb::AppendRequest {
        pb::AppendRequest {
            header: None,
            group_id: 0,
            vote: Some(self.vote.to_wire()),
            prev_log_id: self.prev_log_id.to_wire(),
            leader_commit: self.leader_commit.to_wire(),
            entries: self.entries.into_iter().map(ToWire::to_wire).collect(),
        }
    }
}

impl FromWire<pb::AppendRequest> for AppendEntriesRequest<TypeConfig> {
    fn from_wire(w: pb::AppendRequest) -> Result<Self, WireError> {
        Ok(AppendEntriesRequest {
            vote: Vote::from_wire(required(w.vote, "AppendRequest.vote")?)?,
            prev_log_id: FromWire::from_wire(w.prev_log_id)?,
            leader_commit: FromWire::from_wire(w.leader_commit)?,
            entries: w
                .entries
                .into_iter()
                .map(Entry::from_wire)
                .collect::<Result<_, _>>()?,
        })
    }
}

/// A heartbeat is an AppendEntries without entries; the sender only batches those.
impl ToWire<pb::GroupHeartbeat> for AppendEntriesRequest<TypeConfig> {
    fn to_wire(self) -> pb::GroupHeartbeat {
        debug_assert!(self.entries.is_empty(), "a heartbeat carries no entries");
        pb::GroupHeartbeat {
            group_id: 0,
            vote: Some(self.vote.to_wire()),
            prev_log_id: self.prev_log_id.to_wire(),
            leader_commit: self.leader_commit.to_wire(),
        }
    }
}

impl FromWire<pb::GroupHeartbeat> for AppendEntriesRequest<TypeConfig> {
    fn from_wire(w: pb::GroupHeartbeat) -> Result<Self, WireError> {
        Ok(AppendEntriesRequest {
            vote: Vote::from_wire(required(w.vote, "GroupHeartbeat.vote")?)?,
            prev_log_id: FromWire::from_wire(w.prev_log_id)?,
            leader_commit: FromWire::from_wire(w.leader_commit)?,
            entries: Vec::new(),
        })
    }
}

impl ToWire<pb::AppendResponse> for AppendEntriesResponse<TypeConfig> {
    fn to_wire(self) -> pb::AppendResponse {
        use pb::append_response::Result as R;
        let result = match self {
            AppendEntriesResponse::Success => R::Success(pb::AppendSuccess {}),
            AppendEntriesResponse::PartialSuccess(matching) => {
                R::PartialSuccess(pb::AppendPartialSuccess {
                    matching: matching.to_wire(),
                })
            }
            AppendEntriesResponse::Conflict => R::Conflict(pb::AppendConflict {}),
            AppendEntriesResponse::HigherVote(vote) => R::HigherVote(vote.to_wire()),
        };
        pb::AppendResponse {
            result: Some(result),
        }
    }
}

impl FromWire<pb::AppendResponse> for AppendEntriesResponse<TypeConfig> {
    fn from_wire(w: pb::AppendResponse) -> Result<Self, WireError> {
        use pb::append_response::Result as R;
        Ok(match required(w.result, "AppendResponse.result")? {
            R::Success(_) => AppendEntriesResponse::Success,
            R::PartialSuccess(p) => {
                AppendEntriesResponse::PartialSuccess(FromWire::from_wire(p.matching)?)
            }
            R::Conflict(_) => AppendEntriesResponse::Conflict,
            R::HigherVote(v) => AppendEntriesResponse::HigherVote(Vote::from_wire(v)?),
        })
    }
}

impl ToWire<pb::AppendStreamResponse> for StreamAppendResult<TypeConfig> {
    fn to_wire(self) -> pb::AppendStreamResponse {
        use pb::append_stream_response::Result as R;
        let result = match self {
            Ok(matching) => R::Matching(pb::AppendMatching {
                log_id: matching.to_wire(),
            }),
            Err(StreamAppendError::Conflict(log_id)) => R::Conflict(log_id.to_wire()),
            Err(StreamAppendError::HigherVote(vote)) => R::HigherVote(vote.to_wire()),
        };
        pb::AppendStreamResponse {
            result: Some(result),
        }
    }
}

impl FromWire<pb::AppendStreamResponse> for StreamAppendResult<TypeConfig> {
    fn from_wire(w: pb::AppendStreamResponse) -> Result<Self, WireError> {
        use pb::append_stream_response::Result as R;
        Ok(match required(w.result, "AppendStreamResponse.result")? {
            R::Matching(m) => Ok(FromWire::from_wire(m.log_id)?),
            R::Conflict(id) => Err(StreamAppendError::Conflict(LogId::from_wire(id)?)),
            R::HigherVote(v) => Err(StreamAppendError::HigherVote(Vote::from_wire(v)?)),
        })
    }
}

impl ToWire<pb::SnapshotMeta> for SnapshotMeta {
    fn to_wire(self) -> pb::SnapshotMeta {
        pb::SnapshotMeta {
            last_log_id: self.last_log_id.to_wire(),
            last_membership_log_id: (*self.last_membership.log_id()).to_wire(),
            last_membership: codec::encode_membership(self.last_membership.membership()),
        }
    }
}

impl FromWire<pb::SnapshotMeta> for SnapshotMeta {
    fn from_wire(w: pb::SnapshotMeta) -> Result<Self, WireError> {
        let membership: Membership = codec::decode_membership(w.last_membership)?;
        Ok(SnapshotMeta {
            last_log_id: FromWire::from_wire(w.last_log_id)?,
            last_membership: StoredMembership::new(
                FromWire::from_wire(w.last_membership_log_id)?,
                membership,
            ),
        })
    }
}

/// The leader's vote and the snapshot it sends.
impl ToWire<pb::InstallSnapshotRequest> for (Vote, Snapshot) {
    fn to_wire(self) -> pb::InstallSnapshotRequest {
        let (vote, snapshot) = self;
        pb::InstallSnapshotRequest {
            header: None,
            group_id: 0,
            vote: Some(vote.to_wire()),
            meta: Some(snapshot.meta.to_wire()),
            data: snapshot.snapshot,
        }
    }
}

impl FromWire<pb::InstallSnapshotRequest> for (Vote, Snapshot) {
    fn from_wire(w: pb::InstallSnapshotRequest) -> Result<Self, WireError> {
        let vote = Vote::from_wire(required(w.vote, "InstallSnapshotRequest.vote")?)?;
        let meta = SnapshotMeta::from_wire(required(w.meta, "InstallSnapshotRequest.meta")?)?;
        Ok((
            vote,
            Snapshot {
                meta,
                snapshot: w.data,
            },
        ))
    }
}

impl ToWire<pb::InstallSnapshotResponse> for SnapshotResponse<TypeConfig> {
    fn to_wire(self) -> pb::InstallSnapshotResponse {
        pb::InstallSnapshotResponse {
            vote: Some(self.vote.to_wire()),
        }
    }
}

impl FromWire<pb::InstallSnapshotResponse> for SnapshotResponse<TypeConfig> {
    fn from_wire(w: pb::InstallSnapshotResponse) -> Result<Self, WireError> {
        let vote = required(w.vote, "InstallSnapshotResponse.vote")?;
        Ok(SnapshotResponse::new(Vote::from_wire(vote)?))
    }
}

impl ToWire<pb::TransferLeaderRequest> for TransferLeaderRequest<TypeConfig> {
    fn to_wire(self) -> pb::TransferLeaderRequest {
        pb::TransferLeaderRequest {
            header: None,
            group_id: 0,
            from_leader: Some(self.from_leader().to_wire()),
            to_node_id: *self.to_node_id(),
            last_log_id: self.last_log_id().copied().to_wire(),
        }
    }
}

impl FromWire<pb::TransferLeaderRequest> for TransferLeaderRequest<TypeConfig> {
    fn from_wire(w: pb::TransferLeaderRequest) -> Result<Self, WireError> {
        let from = required(w.from_leader, "TransferLeaderRequest.from_leader")?;
        Ok(TransferLeaderRequest::new(
            Vote::from_wire(from)?,
            w.to_node_id,
            FromWire::from_wire(w.last_log_id)?,
        ))
    }
}

impl ToWire<pb::TransferLeaderResponse> for TransferLeaderResponse<TypeConfig> {
    fn to_wire(self) -> pb::TransferLeaderResponse {
        use pb::transfer_leader_response::Result as R;
        let result = match self {
            Ok(()) => R::Accepted(pb::TransferLeaderAccepted {}),
            Err(TransferLeaderError::VoteChanged { expected, actual }) => {
                R::VoteChanged(pb::TransferLeaderVoteChanged {
                    expected: Some(expected.to_wire()),
                    actual: Some(actual.to_wire()),
                })
            }
            Err(TransferLeaderError::LogNotFlushed { expected, actual }) => {
                R::LogNotFlushed(pb::TransferLeaderLogNotFlushed {
                    expected: expected.to_wire(),
                    actual: actual.to_wire(),
                })
            }
        };
        pb::TransferLeaderResponse {
            result: Some(result),
        }
    }
}

impl FromWire<pb::TransferLeaderResponse> for TransferLeaderResponse<TypeConfig> {
    fn from_wire(w: pb::TransferLeaderResponse) -> Result<Self, WireError> {
        use pb::transfer_leader_response::Result as R;
        Ok(match required(w.result, "TransferLeaderResponse.result")? {
            R::Accepted(_) => Ok(()),
            R::VoteChanged(v) => Err(TransferLeaderError::VoteChanged {
                expected: Vote::from_wire(required(v.expected, "VoteChanged.expected")?)?,
                actual: Vote::from_wire(required(v.actual, "VoteChanged.actual")?)?,
            }),
            R::LogNotFlushed(l) => Err(TransferLeaderError::LogNotFlushed {
                expected: FromWire::from_wire(l.expected)?,
                actual: FromWire::from_wire(l.actual)?,
            }),
        })
    }
}
