//! Strata's Kafka wire-protocol listener: a second adapter over the protocol-free
//! [`strata_broker::Broker`], beside the gRPC one, so that Kafka clients and tools (librdkafka
//! and everything built on it, the Java client, kafka-python, kafkajs...) work unchanged.
//!
//! - [`serve`] accepts connections under `kafka_connections_max` and runs each in its own
//!   task ([`conn`]): frames are read in order, each request is decoded and handed to a task
//!   of its own, and the answers are written back in request order, with at most
//!   `kafka_in_flight_max` requests of one connection in progress.
//! - [`versions`] is the API version table, Kafka 4.0's for the APIs served.
//! - The handlers translate each request to broker calls and back: [`meta`] (ApiVersions,
//!   Metadata, DescribeCluster), [`data`] (Produce, Fetch, ListOffsets, InitProducerId,
//!   OffsetForLeaderEpoch, DeleteRecords), [`groups`] (the coordinator APIs), [`admin`]
//!   (topics and configs).
//! - [`codes`] maps [`strata_broker::BrokerError`] to Kafka's error codes.
//!
//! Record batches pass through untouched: Strata's log stores Kafka's RecordBatch v2 layout,
//! so a produced batch is validated and appended as it came, and a fetch returns the stored
//! bytes.

pub mod admin;
pub mod codes;
pub mod conn;
pub mod data;
pub mod groups;
pub mod meta;
pub mod versions;

use std::sync::Arc;
use strata_broker::Broker;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

/// The listener's limits and defaults (from the node's `kafka_*` settings).
#[derive(Debug, Clone)]
pub struct KafkaConfig {
    /// Most connections open at once (`kafka_connections_max`).
    pub connections_max: u32,
    /// Most requests of one connection in progress (`kafka_in_flight_max`).
    pub in_flight_max: u32,
    /// Largest request frame (`kafka_frame_bytes_max`).
    pub frame_bytes_max: u32,
    /// Whether Metadata creates unknown topics when the client allows it
    /// (`kafka_auto_create_topics`).
    pub auto_create_topics: bool,
    /// Partitions of a topic created without a count (`kafka_num_partitions`).
    pub num_partitions: u32,
}

impl Default for KafkaConfig {
    fn default() -> KafkaConfig {
        KafkaConfig {
            connections_max: 1024,
            in_flight_max: 64,
            frame_bytes_max: 100 << 20,
            auto_create_topics: false,
            num_partitions: 1,
        }
    }
}

/// What every handler sees: the broker and the listener's settings.
#[derive(Debug)]
pub struct Ctx {
    /// The broker of this node.
    pub broker: Arc<Broker>,
    /// The listener's settings.
    pub config: KafkaConfig,
}

/// Serves the Kafka protocol on `listener` until `stop` turns true.
pub async fn serve(
    listener: TcpListener,
    broker: Arc<Broker>,
    config: KafkaConfig,
    mut stop: watch::Receiver<bool>,
) {
    let limit = Arc::new(Semaphore::new(config.connections_max as usize));
    let ctx = Arc::new(Ctx { broker, config });
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.wait_for(|s| *s) => return,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "kafka accept");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            tracing::warn!(
                %peer,
                limit = ctx.config.connections_max,
                "kafka connection refused: kafka_connections_max reached"
            );
            metrics::counter!("strata_kafka_connections_refused_total").increment(1);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let ctx = ctx.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            conn::run(stream, peer, ctx, stop).await;
            drop(permit);
        });
    }
}

/// Counts an acknowledged produce in the node's metrics, as the gRPC listener does
/// (`strata_produce_*`, leader side, request to acknowledgement).
pub(crate) fn produced(topic: &str, records: u32, latency: std::time::Duration) {
    let t = topic.to_string();
    metrics::counter!("strata_produce_records_total", "topic" => t.clone())
        .increment(u64::from(records));
    metrics::counter!("strata_produce_requests_total", "topic" => t.clone()).increment(1);
    metrics::histogram!("strata_produce_latency_seconds", "topic" => t)
        .record(latency.as_secs_f64());
}

/// Counts a partition's fetched batches in the node's metrics, as the gRPC listener does
/// (`strata_fetch_*`).
pub(crate) fn fetched(topic: &str, batches: &bytes::Bytes, latency: std::time::Duration) {
    let mut records = 0u64;
    let mut rest = &batches[..];
    while let Ok(h) = strata_record::BatchHeader::parse(rest) {
        records += u64::try_from(h.record_count).unwrap_or(0);
        let Some(next) = rest.get(h.total_len()..) else {
            break;
        };
        rest = next;
    }
    let t = topic.to_string();
    metrics::counter!("strata_fetch_records_total", "topic" => t.clone()).increment(records);
    metrics::counter!("strata_fetch_bytes_total", "topic" => t.clone())
        .increment(batches.len() as u64);
    metrics::histogram!("strata_fetch_latency_seconds", "topic" => t).record(latency.as_secs_f64());
}

/// Host and port of `addr` (`HOST:PORT`, IPv6 hosts in brackets), or `None`.
pub fn host_port(addr: &str) -> Option<(String, i32)> {
    let (host, port) = addr.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (!host.is_empty()).then(|| (host.to_string(), i32::from(port)))
}

/// A node id as Kafka's broker id (-1 when it does not fit, which Strata never assigns).
pub fn broker_id(id: u64) -> i32 {
    i32::try_from(id).unwrap_or(-1)
}

#[cfg(test)]
mod tests;
