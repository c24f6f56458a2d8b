//! The node's gRPC adapters: what turns protobuf messages into calls on the layers below and
//! back, and nothing more.
//!
//! - [`strata`] and [`admin`]: the client API (`strata.v1.Strata`, `strata.v1.Admin`) over
//!   the [`Broker`].
//! - [`groups`]: consumer groups (`strata.v1.Groups`) over the [`Broker`].
//! - [`queues`]: queue groups (`strata.v1.Queues`) over the [`Broker`].
//! - [`convert`]: protobuf messages to and from the broker's values.
//! - [`status`]: every [`strata_broker::BrokerError`] as a status with its ErrorInfo.
//! - [`control`]: the peer-port `NodeControl` service and the
//!   [`ControlLink`](strata_cluster::controller::ControlLink) the controller forwards through.

pub mod admin;
pub mod control;
pub mod convert;
pub mod groups;
pub mod queues;
pub mod status;
pub mod strata;

use crate::observe::NodeMetrics;
use std::sync::Arc;
use strata_broker::Broker;

/// The `Strata`, `Admin`, `Groups` and `Queues` services of one node.
#[derive(Clone)]
pub struct ClientService {
    broker: Arc<Broker>,
    metrics: NodeMetrics,
}

impl ClientService {
    /// Services answering through `broker`.
    pub fn new(broker: Arc<Broker>) -> ClientService {
        ClientService {
            broker,
            metrics: NodeMetrics,
        }
    }
}
