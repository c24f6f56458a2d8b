//! Queue groups (share groups) on the log: many consumers share a partition's records, each
//! record acquired by one consumer under a lock, then acknowledged, released (perhaps with a
//! delay) or rejected; records delivered too often, or rejected, go to a dead-letter topic.
//!
//! The state of a partition's queue groups lives in that partition's own Raft log, as
//! control entries applied by [`hook::QueueHook`] on every replica, so the leader that
//! serves the records is the one that hands them out, and a new leader continues from
//! exactly what the old one confirmed (the design is in `docs/queues.md`).
//!
//! - [`state`]: the replicated state and the deterministic apply, which enforces the
//!   invariants (acknowledged records are never handed out again; only a lock's holder
//!   settles; deliveries are capped);
//! - [`engine`]: the leader-side driver (acquisitions, settles, dead letters, expiry) and
//!   the per-node registry.

pub mod engine;
pub mod error;
pub mod hook;
pub mod state;

#[cfg(test)]
mod tests;

pub use engine::{
    AcquireSpec, DELIVER_AT_HEADER, DeadLetter, DeadLetters, Delivery, EngineError, QueueEngine,
    QueueStart, Queues,
};
pub use error::QueueError;
pub use hook::QueueHook;
pub use state::{QueueCommand, QueueConfig, QueuePartition, QueuesState, RecState, Settle};
