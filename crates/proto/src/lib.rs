//! strata-proto: Strata's gRPC APIs, generated from `proto/` by tonic-prost-build over protox
//! (no `protoc` needed).
//!
//! - [`internal::v1`]: the peer API between nodes (`strata.internal.v1.RaftPeer`): votes, appends,
//!   coalesced heartbeats, snapshots, leader transfer. Only strata-raft's transport uses it.
//!   Also `strata.internal.v1.NodeControl`: controller proposals forwarded between nodes.
//! - [`v1`]: the client API (`proto/strata/v1/`, package `strata.v1`): the `Strata` data plane
//!   (produce, fetch, subscribe, offsets, metadata) and `Admin`.
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

/// The client API, version 1 (package `strata.v1`).
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod v1 {
    tonic::include_proto!("strata.v1");
}

/// The encoded file descriptor set of every proto here (for gRPC server reflection).
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("strata_descriptor");
