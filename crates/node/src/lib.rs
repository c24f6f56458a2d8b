//! strata-node: the Strata broker.
//!
//! - [`node`]: [`node::Node`], one running node: identity, listeners, controller, replicas,
//!   services, background tasks, graceful shutdown.
//! - [`identity`]: the node's identity and address files, bootstrap and join.
//! - [`shared`]: [`shared::Shared`], what the services and tasks of a node share; readiness.
//! - [`duties`]: background duties (metadata following, controller voters, hints).
//! - [`error`]: [`error::NodeError`], why a node could not start.
//! - [`world`]: [`world::World`], what a node takes from its surroundings (listeners, disk,
//!   link faults, transport settings): the seam of the in-process node harness.
//! - [`config`]: [`config::NodeConfig`] (defaults, TOML file, `STRATA_*`, flags).
//! - [`meta`], [`controller`], [`replicas`]: re-exported from `strata-cluster` (the metadata,
//!   the controller, the hosted replicas).
//! - [`grpc`]: the gRPC adapters: the client API over `strata-broker`, the peer-port
//!   `NodeControl` service.
//! - [`serve`]: the client-port server with its connection limits.
//! - [`retention`]: retention from topic configs.
//! - [`observe`]: `/livez`, `/readyz`, `/metrics`.

pub mod config;
pub mod duties;
pub mod error;
pub mod grpc;
pub mod identity;
pub mod node;
pub mod observe;
pub mod retention;
pub mod serve;
pub mod shared;
pub mod world;

pub use config::{NodeConfig, NodeFlags};
pub use node::{Addresses, Node, NodeError};
pub use strata_cluster::{controller, meta, replicas};
pub use world::{Listeners, World};
