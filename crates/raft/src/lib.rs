//! strata-raft: each partition is its own openraft group whose Raft log IS the partition log.
//!
//! - [`types`]: the openraft type configuration ([`types::TypeConfig`]) and [`types::Command`].
//! - [`transport`]: the peer transport (tonic server and client) shared by all groups.
//! - [`partition`]: [`partition::Partition`], what the rest of the workspace uses: append with
//!   acks, read, high watermark, offsets by time, leadership and membership.
//! - [`replica`]: [`replica::Replica`], a supervised replica that reopens from disk after a
//!   storage failure.
//! - [`liveness`]: [`liveness::Liveness`], the per-node ticker that lets idle groups sleep.
//! - [`error`]: the partition error, [`error::PartitionError`].
//! - [`store`]: [`store::LogStore`], openraft's log storage over strata-log.
//! - [`state_machine`]: [`state_machine::StateMachine`], high watermark, producer state, hook.
//! - [`producers`]: idempotent producer state.
//! - [`codec`]: entries to and from log frames; membership and vote encodings; the one place
//!   that converts between [`RaftIndex`] and strata-log's `LogIndex`.
//! - [`numbers`]: [`RaftIndex`] and [`GroupId`] (re-exported here).

pub mod codec;
pub mod error;
pub mod liveness;
pub mod numbers;
pub mod outcomes;
pub mod partition;
pub mod producers;
pub mod quarantine;
pub mod replica;
pub mod state_machine;
pub mod store;
pub mod transport;
pub mod types;

pub use numbers::{GroupId, RaftIndex};

#[cfg(test)]
mod tests;
