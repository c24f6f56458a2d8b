//! What `strata bench` prints: latency percentiles and the report (table or JSON, and the
//! `--json-out` file).

use crate::Format;
use crate::output::{self, Out};
use hdrhistogram::Histogram;
use serde::Serialize;

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub(super) struct Percentiles {
    pub(super) p50: f64,
    pub(super) p99: f64,
    pub(super) p999: f64,
    pub(super) max: f64,
    /// Records measured.
    pub(super) count: u64,
}

impl Percentiles {
    pub(super) fn of(h: &Histogram<u64>) -> Percentiles {
        let ms = |micros: u64| micros as f64 / 1000.0;
        Percentiles {
            p50: ms(h.value_at_quantile(0.50)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
            count: h.len(),
        }
    }

    pub(super) fn text(&self) -> String {
        format!(
            "p50 {:.3}  p99 {:.3}  p999 {:.3}  max {:.3}",
            self.p50, self.p99, self.p999, self.max
        )
    }
}

/// The result of one bench, as printed and as written by `--json-out`.
#[derive(Debug, Clone, Serialize)]
pub(super) struct Report {
    pub(super) bench: &'static str,
    pub(super) topic: String,
    pub(super) partitions: u32,
    /// Producer tasks (consume: those that filled the topic, 0 if it was full enough).
    pub(super) producers: usize,
    pub(super) acks: &'static str,
    /// Producer linger (ms) and records each producer task kept unacknowledged at most (0: no
    /// bound); produce and e2e.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) linger_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) in_flight: Option<usize>,
    /// Records acknowledged (produce, e2e) or consumed (consume).
    pub(super) records: u64,
    /// Records that failed.
    pub(super) errors: u64,
    pub(super) record_size: usize,
    pub(super) elapsed_s: f64,
    pub(super) records_per_s: f64,
    /// Megabytes (10^6 bytes) of values per second.
    pub(super) mb_per_s: f64,
    /// Send to acknowledgement (produce, e2e).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) latency_ms: Option<Percentiles>,
    /// Send to consumed (e2e).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) e2e_latency_ms: Option<Percentiles>,
    /// Records per second asked for (e2e; 0 = as fast as possible).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) target_rate: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) first_error: Option<String>,
}

impl Report {
    pub(super) fn rows(&self) -> Vec<(&'static str, String)> {
        let mut rows = vec![
            ("bench", self.bench.to_string()),
            ("topic", self.topic.clone()),
            ("partitions", self.partitions.to_string()),
            ("producers", self.producers.to_string()),
            ("acks", self.acks.to_string()),
            ("records", self.records.to_string()),
            ("errors", self.errors.to_string()),
            ("record size", format!("{} B", self.record_size)),
            ("elapsed", format!("{:.3} s", self.elapsed_s)),
            (
                "throughput",
                format!(
                    "{:.1} records/s, {:.2} MB/s",
                    self.records_per_s, self.mb_per_s
                ),
            ),
        ];
        if let (Some(linger), Some(in_flight)) = (self.linger_ms, self.in_flight) {
            let bound = if in_flight == 0 {
                "unbounded".to_string()
            } else {
                in_flight.to_string()
            };
            rows.push((
                "linger / in flight",
                format!("{linger} ms / {bound} per producer"),
            ));
        }
        if let Some(rate) = self.target_rate {
            rows.push(("target rate", format!("{rate} records/s")));
        }
        if let Some(l) = &self.latency_ms {
            rows.push(("produce latency ms", l.text()));
        }
        if let Some(l) = &self.e2e_latency_ms {
            rows.push(("end-to-end latency ms", l.text()));
        }
        if let Some(e) = &self.first_error {
            rows.push(("first error", e.clone()));
        }
        rows
    }

    pub(super) fn print(&self, format: Format) -> anyhow::Result<()> {
        let mut out = Out::new();
        match format {
            Format::Json => out.line(&serde_json::to_string_pretty(self)?)?,
            Format::Table => {
                let mut t = output::table(&["METRIC", "VALUE"]);
                for (k, v) in self.rows() {
                    t.add_row(vec![k.to_string(), v]);
                }
                out.line(&t.to_string())?;
            }
            Format::Text => {
                for (k, v) in self.rows() {
                    out.line(&format!("{k}: {v}"))?;
                }
            }
        }
        out.flush()
    }
}
