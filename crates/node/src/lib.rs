//! strata-node: the Strata broker.
//!
//! - [`node`]: [`node::Node`], one running node: identity, listeners, controller, replicas,
//!   services, background tasks, graceful shutdown.
//! - [`config`]: [`config::NodeConfig`] (defaults, TOML file, `STRATA_*`, flags).
//! - [`meta`]: the cluster metadata the controller replicates and its commands.
//! - [`controller`]: Raft group 0 and proposal forwarding.
//! - [`replicas`]: the partition replicas this node hosts, kept in line with the metadata;
//!   replica moves.
//! - [`service`]: the client API (`strata.v1.Strata`, `strata.v1.Admin`).
//! - [`serve`]: the client-port server with its connection limits.
//! - [`errors`]: statuses with structured details.
//! - [`retention`]: retention from topic configs.
//! - [`observe`]: `/livez`, `/readyz`, `/metrics`.

pub mod config;
pub mod controller;
pub mod errors;
pub mod meta;
pub mod node;
pub mod observe;
pub mod replicas;
pub mod retention;
pub mod serve;
pub mod service;

pub use config::{NodeConfig, NodeFlags};
pub use node::{Addresses, Node, NodeError};
