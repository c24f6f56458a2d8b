//! Tests of strata-raft: its storage against openraft's own log-storage suite, the partition's
//! errors, and a follower's check of its leader's offsets.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod errors;
mod stamp;
mod suite;
