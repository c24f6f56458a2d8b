//! Health and metrics: the HTTP listener (`/livez`, `/readyz`, `/metrics`) and the
//! Prometheus recorder.
//!
//! Metrics (all prefixed `strata_`):
//! - `produce_records_total{topic}`, `produce_requests_total{topic}`,
//!   `produce_latency_seconds{topic}` (histogram, leader side, request to acknowledgement);
//! - `fetch_records_total{topic}`, `fetch_bytes_total{topic}`, `fetch_latency_seconds{topic}`;
//! - per hosted partition: `partition_leader{topic,partition}` (leader node id),
//!   `partition_term`, `partition_high_watermark`, `partition_is_leader`, and on the leader
//!   `partition_replica_lag_entries{topic,partition,replica}`;
//! - `partitions_leaderless`, `partitions_under_replicated`, `replicas_down`,
//!   `disk_free_bytes`, `node_up`;
//! - from strata-raft, per node: `append_to_durable_seconds` (histogram: a log append,
//!   leader or follower, until its fdatasync completed), `propose_to_applied_seconds`
//!   (histogram: an `acks=all` batch from its proposal until the leader applied it, i.e.
//!   committed), `elections_won_total{cause}` (`startup`, `transfer`, `leader_lost`: the
//!   last is an election nobody asked for).

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::net::TcpListener;

/// Produce and fetch counters of one node.
#[derive(Debug, Default, Clone, Copy)]
pub struct NodeMetrics;

impl NodeMetrics {
    /// A produce request was acknowledged.
    pub fn produced(&self, topic: &str, records: u64, latency: Duration) {
        let t = topic.to_string();
        metrics::counter!("strata_produce_records_total", "topic" => t.clone()).increment(records);
        metrics::counter!("strata_produce_requests_total", "topic" => t.clone()).increment(1);
        metrics::histogram!("strata_produce_latency_seconds", "topic" => t)
            .record(latency.as_secs_f64());
    }

    /// A fetch was answered.
    pub fn fetched(&self, topic: &str, records: u64, bytes: u64, latency: Duration) {
        let t = topic.to_string();
        metrics::counter!("strata_fetch_records_total", "topic" => t.clone()).increment(records);
        metrics::counter!("strata_fetch_bytes_total", "topic" => t.clone()).increment(bytes);
        metrics::histogram!("strata_fetch_latency_seconds", "topic" => t)
            .record(latency.as_secs_f64());
    }
}

/// The process-wide Prometheus recorder (installed once; several nodes in one process share
/// it).
pub fn prometheus() -> Option<PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            PrometheusBuilder::new()
                .set_buckets(&[
                    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                ])
                .ok()?
                .install_recorder()
                .ok()
        })
        .clone()
}

/// What the HTTP handlers ask of the node.
pub trait Probe: Send + Sync + 'static {
    /// Whether the node can serve: registered, controller leader known, replicas up.
    fn ready(&self) -> Result<(), String>;
    /// Refreshes gauges before a scrape.
    fn refresh_gauges(&self);
}

/// Serves `/livez`, `/readyz` and `/metrics` on `listener` until `shutdown`.
pub async fn serve_http(
    listener: TcpListener,
    probe: Arc<dyn Probe>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/livez", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .with_state(probe);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

async fn readyz(State(probe): State<Arc<dyn Probe>>) -> (StatusCode, String) {
    match probe.ready() {
        Ok(()) => (StatusCode::OK, "ready\n".into()),
        Err(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        ),
    }
}

async fn metrics_text(State(probe): State<Arc<dyn Probe>>) -> (StatusCode, String) {
    probe.refresh_gauges();
    match prometheus() {
        Some(h) => (StatusCode::OK, h.render()),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            "metrics recorder unavailable (another recorder is installed)\n".into(),
        ),
    }
}
