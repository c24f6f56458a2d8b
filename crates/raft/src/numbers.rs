//! The numbers of strata-raft that are easy to mix up with others, as distinct types:
//! [`RaftIndex`] (openraft's log index, one less than strata-log's [`LogIndex`]) and
//! [`GroupId`] (which Raft group).
//!
//! Where they become plain integers:
//! - [`RaftIndex`] <-> [`LogIndex`]: only [`crate::codec::log_index`] and
//!   [`crate::codec::raft_index`] (and the log-id conversions beside them).
//! - openraft's own types (`LogId`, metrics) carry the index as a `u64`; it becomes a
//!   [`RaftIndex`] with [`RaftIndex::new`] where it leaves them.
//! - On the wire and on disk (peer messages, `NodeControl` hints, the cluster metadata's JSON,
//!   the controller's snapshots) both are the bare `u64`: `new` / `get` at the edge, and serde
//!   (de)serializes them as the number itself (`#[serde(transparent)]`), so no format changed.
//!
//! [`LogIndex`]: strata_log::LogIndex

use std::fmt;

/// An index of openraft's log: 0 is the first entry (the initial membership), so an entry's
/// [`strata_log::LogIndex`] is its Raft index + 1. What openraft's ids, metrics and the Raft
/// messages count in; convert with [`crate::codec`] only.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(transparent)]
pub struct RaftIndex(u64);

impl RaftIndex {
    /// The Raft index `index` (as openraft or a peer gives it).
    pub const fn new(index: u64) -> RaftIndex {
        RaftIndex(index)
    }

    /// The number, for openraft's API, the wire and logs.
    pub const fn get(self) -> u64 {
        self.0
    }

    /// How many entries lie after `earlier` up to this index (0 when `earlier` is not before
    /// it): how far a replica that holds `earlier` lags one that holds this index.
    pub const fn entries_after(self, earlier: RaftIndex) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

impl fmt::Display for RaftIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// A Raft group's id: 0 is the controller, each partition has its own, given out once by the
/// cluster metadata and never reused. Names the group in every peer message and in the
/// registry a node's server routes by.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(transparent)]
pub struct GroupId(u64);

impl GroupId {
    /// The group id `id` (as carried on the wire and in the metadata).
    pub const fn new(id: u64) -> GroupId {
        GroupId(id)
    }

    /// The number, for the wire (peer messages, hints) and logs.
    pub const fn get(self) -> u64 {
        self.0
    }

    /// The id given out after this one.
    pub const fn next(self) -> GroupId {
        GroupId(self.0 + 1)
    }
}

impl fmt::Display for GroupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_print_and_serialize_as_the_plain_numbers() {
        assert_eq!(RaftIndex::new(41).to_string(), "41");
        assert_eq!(RaftIndex::new(41).entries_after(RaftIndex::new(40)), 1);
        assert_eq!(RaftIndex::new(41).entries_after(RaftIndex::new(45)), 0);
        assert_eq!(GroupId::new(7).to_string(), "7");
        assert_eq!(GroupId::new(7).next(), GroupId::new(8));
    }
}
