//! The peer transport: one gRPC server per node and shared channels per peer, for every group.
//!
//! Wire format: `proto/strata/internal/v1/raft.proto` (service `RaftPeer`); design notes in
//! `docs/transport.md`.
//!
//! - `identity.rs`: [`PeerIdentity`] (cluster id, node id, incarnation) and the check every
//!   received message passes.
//! - `config.rs`: [`TransportConfig`], the size limits and timings, with `validate()`.
//! - `error.rs`: [`TransportError`], and how failed calls become openraft's `RPCError`.
//! - `convert.rs`: openraft messages to and from prost messages (`ToWire`, `FromWire`).
//! - `group.rs`: [`GroupHandle`] (what a hosted group answers; implemented for `openraft::Raft`)
//!   and [`GroupRegistry`].
//! - `server.rs`: [`PeerService`] (routes by group id) and [`serve`] (listener + shutdown).
//! - `peers.rs`: [`Peers`], two lazily connected channels per peer (control and data).
//! - `heartbeat.rs`: the per-peer batcher that coalesces heartbeats of all groups.
//! - `client.rs`: [`PeerNetwork`] (openraft's network factory for one group) and [`PeerClient`].
//! - `append_stream.rs`: pipelined AppendEntries over one bidirectional stream.
//! - `link.rs`: [`LinkControl`], the seam through which tests cut, drop and delay messages.

mod append_stream;
mod client;
mod config;
mod convert;
mod error;
mod group;
mod heartbeat;
mod identity;
mod link;
mod peers;
mod server;

#[cfg(test)]
mod tests;

pub use client::{PeerClient, PeerNetwork};
pub use config::TransportConfig;
pub use error::TransportError;
pub use group::{GroupHandle, GroupRegistry, Snapshot, SnapshotMeta};
pub use identity::PeerIdentity;
pub use link::{LinkControl, LinkFault};
pub use peers::Peers;
pub use server::{PeerService, ServerCounts, ServerStats, serve, serve_with};
