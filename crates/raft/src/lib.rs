//! strata-raft: each partition is its own openraft group whose Raft log IS the partition log.
//!
//! - [`types`]: the openraft type configuration ([`types::TypeConfig`]) and [`types::Command`].
//! - [`transport`]: the peer transport (tonic server and client) shared by all groups.
//! - [`codec`]: entries to and from log frames; membership and vote encodings.

pub mod codec;
pub mod transport;
pub mod types;
