//! Tests of strata-raft's storage against openraft's own log-storage suite.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod suite;
