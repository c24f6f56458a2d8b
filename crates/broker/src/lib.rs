//! The broker of a Strata node, free of any wire protocol: [`Broker`] takes domain values
//! (topics, partitions, record batches, positions) and answers with domain values or a typed
//! [`BrokerError`]. It routes each call to the local replica, enforces every limit (message
//! size, fetch bytes and wait, partitions per topic, the free-disk floor), proposes metadata
//! changes to the controller, and resolves leader hints to client addresses. The gRPC adapter
//! in `strata-node` and the Kafka listener in `strata-kafka` translate to and from their wire
//! types and nothing more.

mod broker;
pub mod error;
pub mod types;

pub use broker::{
    Broker, BrokerConfig, BrokerParts, ClassicFailure, LOCK_MS_MAX, ProduceLink,
    QueuePartitionView, RELEASE_DELAY_MS_MAX, SETTLE_ITEMS_MAX, is_internal,
};
pub use error::BrokerError;
