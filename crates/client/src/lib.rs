//! strata-client: the async Rust client of a Strata cluster.
//!
//! - [`client`]: [`Client`], the entry point: one lazily connected channel per node, the
//!   metadata cache (nodes, topics, partition leaders), refreshes and leader hints, and the
//!   retry loop every partition request goes through.
//! - [`producer`]: [`Producer`]: partitioning, batching by size and linger, one request in
//!   flight per partition, idempotence (producer id + sequence numbers), retries of the same
//!   batch bytes, backpressure.
//! - [`consumer`]: [`Consumer`]: assigned partitions, starts by offset, time, earliest or
//!   latest, long-polling fetches of raw batches decoded with `strata_record`.
//! - [`admin`]: [`Admin`]: topics and cluster operations.
//! - [`subscription`]: [`Subscription`], an ephemeral subscription (no group, no state) to
//!   topics or a subject pattern, streamed with `Subscribe`.
//! - [`groups`]: [`Groups`]: committed offsets and group administration;
//!   [`group_consumer`]: [`GroupConsumer`], a consumer whose partitions a consumer group
//!   assigns (joins, heartbeats, commits, reports assignment changes).
//! - [`partitioner`]: Kafka-compatible key hashing (murmur2).
//! - [`error`]: [`Error`], parsed from the server's gRPC status and `ErrorInfo`.
//! - [`config`], [`records`], [`model`]: settings with their defaults, record types, and the
//!   cluster descriptions returned by metadata and admin calls (serializable).
//!
//! No generated (prost) type appears in this API.
//!
//! ```no_run
//! use strata_client::{Client, ConsumerConfig, Offset, ProducerConfig, ProducerRecord};
//!
//! # async fn example() -> Result<(), strata_client::Error> {
//! let client = Client::connect(["127.0.0.1:9092", "127.0.0.1:9093"]).await?;
//! client.admin().create_topic("orders", 3, 3, Default::default()).await?;
//!
//! let producer = client.producer(ProducerConfig::default())?;
//! // `send` waits for buffer space; the returned future waits for the acknowledgement.
//! let ack = producer
//!     .send(ProducerRecord::new("orders", "order 1").with_key("customer-7"))
//!     .await?;
//! let written = ack.await?;
//! println!("written at {}/{}", written.partition, written.offset);
//! producer.close().await;
//!
//! let mut consumer = client.consumer(ConsumerConfig::default())?;
//! consumer.assign_all("orders", Offset::Earliest).await?;
//! while !consumer.caught_up() {
//!     for record in consumer.poll().await? {
//!         let (partition, offset) = (record.partition, record.offset);
//!         println!("{partition} @ {offset}: {:?}", record.value);
//!     }
//! }
//! # Ok(())
//! # }
//! ```

pub mod admin;
mod backoff;
mod cache;
pub mod client;
pub mod config;
pub mod consumer;
pub mod error;
pub mod group_consumer;
pub mod groups;
pub mod model;
pub mod partitioner;
pub mod producer;
pub mod queue;
pub mod records;
pub mod request;
pub mod subscription;

pub use admin::Admin;
pub use client::Client;
pub use config::{Acks, ClientConfig, ConsumerConfig, ProducerConfig};
pub use consumer::Consumer;
pub use error::Error;
pub use group_consumer::{GroupConsumer, GroupConsumerConfig, GroupEvent, Polled};
pub use groups::{
    CommittedOffset, GroupDescription, GroupSummary, Groups, MemberDescription, PartitionLag,
};
pub use model::{
    ClusterMetadata, ClusterStatus, NodeDescription, PartitionDescription, TopicDescription,
};
pub use producer::{Producer, SendFuture};
pub use queue::{
    DeadLetter, QueueConsumer, QueueConsumerConfig, QueueMessage, QueuePartitionInfo, QueueSettler,
    QueueStart, Queues, Settlement,
};
pub use records::{ConsumedRecord, Offset, ProducerRecord, RecordMetadata, TopicPartition};
pub use request::{Requester, serve};
pub use subscription::{Subscription, SubscriptionConfig};
