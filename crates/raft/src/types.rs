//! The openraft type configuration of a partition group, and the application data it carries.
//!
//! Every group (the controller later, each partition now) uses [`TypeConfig`]: node ids are
//! `u64`, nodes are [`openraft::BasicNode`] (the peer address), and the leader id is
//! `leader_id_std` (one leader per term), so a log id is (term, index) and the term doubles as
//! Kafka's leader epoch.

use bytes::Bytes;
use std::fmt;
use strata_log::Offset;

openraft::declare_raft_types!(
    /// Strata's openraft type configuration.
    pub TypeConfig:
        D = Command,
        R = Applied,
        NodeId = u64,
        Node = openraft::BasicNode,
        Term = u64,
        LeaderId = openraft::impls::leader_id_std::LeaderId<u64, u64>,
);

/// A node id: the workspace's one definition (strata-cluster re-exports it), also openraft's
/// `NodeId` in [`TypeConfig`].
///
/// A plain `u64`, not a newtype like `GroupId` or `RaftIndex`, on purpose: openraft would accept
/// one (its `NodeId` bound is `Ord + Hash + Display + Debug + Clone + Send + Sync`), but the id
/// is carried by openraft's own types ([`Vote`], [`Membership`], metrics, `LeaderId`) and crosses
/// every wire: the peer header and the Raft messages' proto conversions, the membership and
/// vote codecs (on disk), the client API's node and leader fields, the cluster metadata's JSON
/// (map keys), the addresses file. A newtype would add a conversion at each of those for little
/// safety: signatures name node ids `NodeId` rather than `u64`, which is what this alias is for.
pub type NodeId = u64;
/// A log id of [`TypeConfig`].
pub type LogId = openraft::LogId<<LeaderId as openraft::vote::RaftLeaderId>::Committed>;
/// The leader id of [`TypeConfig`].
pub type LeaderId = openraft::impls::leader_id_std::LeaderId<u64, u64>;
/// A vote of [`TypeConfig`].
pub type Vote = openraft::impls::Vote<LeaderId>;
/// An entry of [`TypeConfig`].
pub type Entry = openraft::Entry<<LeaderId as openraft::vote::RaftLeaderId>::Committed, Payload>;
/// An entry payload of [`TypeConfig`].
pub type Payload = openraft::EntryPayload<Command, NodeId, openraft::BasicNode>;
/// A membership of [`TypeConfig`].
pub type Membership = openraft::Membership<NodeId, openraft::BasicNode>;
/// A stored membership of [`TypeConfig`].
pub type StoredMembership = openraft::StoredMembership<
    <LeaderId as openraft::vote::RaftLeaderId>::Committed,
    NodeId,
    openraft::BasicNode,
>;

/// What a normal Raft entry of a partition carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// One producer batch, stored as a data frame (the log stamps its base offset and leader
    /// epoch).
    Batch(BatchCommand),
    /// A control payload of a higher layer, opaque here (stored as a control frame).
    Control(Bytes),
    /// Retention: every replica makes the state at `upto` its snapshot, then drops the log up
    /// to it (stored as a control frame).
    Retain(RetainCommand),
    /// The leader's wall clock (milliseconds since the epoch) when it proposed the entry: the
    /// replicated clock that idempotent producer expiry runs on, so every replica expires the
    /// same producers at the same entry and no client timestamp can move it (stored as a
    /// control frame).
    Clock(i64),
}

/// The retention entry: the log up to `upto` (the last entry before a segment boundary) may go;
/// `state` is the partition's state right after `upto` was applied (taken by the leader's
/// state machine then), so a replica that installs it continues exactly there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetainCommand {
    /// The last entry retention removes.
    pub upto: LogId,
    /// The membership as of `upto`.
    pub membership: StoredMembership,
    /// The encoded state at `upto` (see `state_machine::encode_snapshot`).
    pub state: Bytes,
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::Batch(b) => write!(f, "Batch({} bytes)", b.bytes.len()),
            Command::Control(b) => write!(f, "Control({} bytes)", b.len()),
            Command::Retain(r) => write!(f, "Retain(upto {})", r.upto),
            Command::Clock(ms) => write!(f, "Clock({ms})"),
        }
    }
}

/// Called once with the base offset the leader's log gave a batch (for `acks=leader`).
pub type LocalAck = Box<dyn FnOnce(Offset) + Send>;

/// A producer batch (Kafka RecordBatch v2 bytes) and, on the leader that proposed it, the
/// writer waiting to learn its offset at local append. The waiter never leaves the process: it
/// is not stored nor sent, and two commands with the same bytes are equal.
#[derive(Clone)]
pub struct BatchCommand {
    /// The batch bytes.
    pub bytes: Bytes,
    local_ack: Option<std::sync::Arc<std::sync::Mutex<Option<LocalAck>>>>,
}

impl BatchCommand {
    /// A batch with no local waiter (as read from the log or received from a leader).
    pub fn new(bytes: Bytes) -> BatchCommand {
        BatchCommand {
            bytes,
            local_ack: None,
        }
    }

    /// A batch proposed on this leader, whose local append is reported to `ack`. The bytes
    /// must have passed `strata_record::Batch::parse` (the log does not compute their CRC
    /// again).
    pub fn with_local_ack(bytes: Bytes, ack: LocalAck) -> BatchCommand {
        BatchCommand {
            bytes,
            local_ack: Some(std::sync::Arc::new(std::sync::Mutex::new(Some(ack)))),
        }
    }

    /// Whether the bytes carry a log's stamp (base offset and leader epoch): a batch read from
    /// a log or received from a leader does; a batch proposed on this leader (the one with a
    /// local waiter) carries its producer's header until this leader's log stamps it.
    pub fn is_stamped(&self) -> bool {
        self.local_ack.is_none()
    }

    /// Takes the local waiter, if any (it runs at most once).
    pub fn take_local_ack(&self) -> Option<LocalAck> {
        let slot = self.local_ack.as_ref()?;
        strata_record::sync::lock(slot).take()
    }
}

impl fmt::Debug for BatchCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BatchCommand({} bytes)", self.bytes.len())
    }
}

impl PartialEq for BatchCommand {
    fn eq(&self, other: &BatchCommand) -> bool {
        self.bytes == other.bytes
    }
}

impl Eq for BatchCommand {}

/// What applying a normal entry answers its writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// A batch was committed; its first record has this offset.
    Batch {
        /// Offset of the first record.
        base_offset: Offset,
        /// Records in the batch.
        record_count: u32,
    },
    /// A control entry was applied.
    Control,
    /// A retention entry was applied; records before `start_offset` are gone.
    Retained {
        /// The new log start offset.
        start_offset: Offset,
    },
}

/// The snapshot data of a partition: the small encoded state at the retention point (no record
/// data: records stay in the log).
pub type SnapshotData = Bytes;
