//! The node's gRPC adapters: what turns protobuf messages into calls on the layers below and
//! back. [`control`]: the peer-port `NodeControl` service and the [`ControlLink`] the
//! controller forwards through.
//!
//! [`ControlLink`]: strata_cluster::controller::ControlLink

pub mod control;
