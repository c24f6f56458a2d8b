//! strata-proto: Strata's gRPC APIs, generated from `proto/` by tonic-prost-build over protox
//! (no `protoc` needed).
//!
//! - [`internal::v1`]: the peer API between nodes (`strata.internal.v1.RaftPeer`): votes, appends,
//!   coalesced heartbeats, snapshots, leader transfer. Only strata-raft's transport uses it.
//! - The client API (`proto/strata/v1/`, package `strata.v1`) will live in a `v1` module here.
//!
//! Every `bytes` field is [`bytes::Bytes`], so record payloads move without copies.

/// Internal APIs: spoken only between the nodes of one cluster.
pub mod internal {
    /// Version 1 of the internal APIs.
    #[allow(missing_docs, clippy::all, clippy::pedantic)]
    pub mod v1 {
        tonic::include_proto!("strata.internal.v1");
    }
}
