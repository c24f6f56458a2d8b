//! Tests of strata-raft: its storage against openraft's own log-storage suite, and the partition's
//! errors.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod errors;
mod suite;
