//! Consumer groups on the log.
//!
//! A group's state (members, the partitions each holds, epochs, committed offsets) lives in
//! one partition of the internal topic `__consumer_offsets`, chosen by a stable hash of the
//! group's name ([`coordinator::partition_for`]); that partition's leader is the group's
//! coordinator. Every change is a command replicated through Raft and applied by
//! [`hook::GroupsHook`] on every replica, so a new coordinator after a failover serves exactly
//! what was acknowledged.
//!
//! - [`model`]: the replicated types; [`state`]: the commands and the deterministic apply,
//!   which enforces the invariants;
//! - [`assign`]: the server-side assignors; [`plan`]: what a heartbeat or an expiry changes;
//! - [`coordinator`]: the leader-side driver (proposing, session clocks, expiry);
//! - [`classic`]: Kafka's classic protocol (JoinGroup/SyncGroup barrier) on the same
//!   coordinator and state, for the Kafka listener.
//!
//! - [`queue`]: queue groups (share groups): per-record locks, acknowledgements, redelivery,
//!   dead letters, delays, in the data partition's own Raft log.
//!
//! Nothing here knows gRPC or Kafka's wire format: the broker drives it.

pub mod assign;
pub mod classic;
pub mod coordinator;
pub mod error;
pub mod hook;
pub mod model;
pub mod plan;
pub mod queue;
pub mod state;

#[cfg(test)]
mod tests;

pub use coordinator::{Coordinator, CoordinatorError, Coordinators, OFFSETS_TOPIC};
pub use error::GroupError;
pub use model::{Group, Member, Subscription, TopicPartition};
