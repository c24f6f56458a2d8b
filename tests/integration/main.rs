//! Strata's integration tests: one binary, one module per area.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod groups;
mod many_groups;
mod nodes;
mod pipelining;
mod queues;
mod replication;
mod safety;
mod schedules;
mod storage_kill;
