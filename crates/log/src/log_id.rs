//! [`LogId`]: the (term, index) pair that names a Raft log entry.

/// A Raft log id: the term of the leader that created the entry and its index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct LogId {
    /// Raft term (also the Kafka leader epoch stamped into batches).
    pub term: u64,
    /// Raft index, starting at 1.
    pub index: u64,
}
