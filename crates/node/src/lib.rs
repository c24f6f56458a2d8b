//! strata-node: the Strata broker.
//!
//! - [`node`]: [`node::Node`], one running node: identity, listeners, controller, replicas,
//!   services, background tasks, graceful shutdown.
//! - [`config`]: [`config::NodeConfig`] (defaults, TOML file, `STRATA_*`, flags).
//! - [`meta`], [`controller`], [`replicas`]: re-exported from `strata-cluster` (the metadata,
//!   the controller, the hosted replicas).
//! - [`grpc`]: gRPC adapters; [`grpc::control`] is the peer-port `NodeControl` service.
//! - [`service`]: the client API (`strata.v1.Strata`, `strata.v1.Admin`).
//! - [`serve`]: the client-port server with its connection limits.
//! - [`errors`]: statuses with structured details.
//! - [`retention`]: retention from topic configs.
//! - [`observe`]: `/livez`, `/readyz`, `/metrics`.

pub mod config;
pub mod errors;
pub mod grpc;
pub mod node;
pub mod observe;
pub mod retention;
pub mod serve;
pub mod service;

pub use config::{NodeConfig, NodeFlags};
pub use node::{Addresses, Node, NodeError};
pub use strata_cluster::{controller, meta, replicas};
