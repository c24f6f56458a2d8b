//! Strata's integration tests: one binary, one module per area.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod many_groups;
mod nodes;
mod replication;
mod safety;
mod schedules;
mod storage_kill;
