//! The cluster layer of a Strata node, between replication (`strata-raft`) and the broker:
//!
//! - [`meta`]: the cluster metadata ([`meta::ClusterMeta`]: nodes, topics, partitions and
//!   their replicas) and the commands that change it, applied deterministically.
//! - [`controller`]: Raft group 0, whose replicated state is the metadata; proposals from
//!   nodes that do not lead it travel over a [`controller::ControlLink`] (the node implements
//!   it with gRPC), and the leadership hints nodes exchange.
//! - [`replicas`]: the partition replicas this node hosts, reconciled with the metadata
//!   (open, close, move, prefer leaders).
//!
//! Nothing here knows gRPC or protobuf.

pub mod controller;
pub mod meta;
pub mod replicas;
