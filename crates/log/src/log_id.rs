//! [`LogId`]: the (term, index) pair that names a Raft log entry.

use crate::numbers::LogIndex;

/// A Raft log id: the term of the leader that created the entry and its index in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct LogId {
    /// Raft term (also the Kafka leader epoch stamped into batches).
    pub term: u64,
    /// Log index, starting at 1 (openraft's index plus one).
    pub index: LogIndex,
}
