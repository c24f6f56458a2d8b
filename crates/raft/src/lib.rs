//! strata-raft: each partition is its own openraft group whose Raft log IS the partition log.
//!
//! - [`types`]: the openraft type configuration ([`types::TypeConfig`]) and [`types::Command`].
//! - [`codec`]: entries to and from log frames; membership and vote encodings.

pub mod codec;
pub mod types;
