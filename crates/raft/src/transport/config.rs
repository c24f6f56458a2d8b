//! [`TransportConfig`]: the limits and timings of the peer transport, with their defaults and
//! [`TransportConfig::validate`].

use super::error::TransportError;
use std::time::Duration;

/// Limits and timings of the peer transport, the same on every node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportConfig {
    /// Largest encoded gRPC message sent or accepted, on both the server and the client, and
    /// for both directions (tonic's own defaults are 4 MiB to decode and no limit to encode).
    /// It bounds the memory one message can take; the bytes per append request are capped
    /// below it by the log reader (`limited_get_log_entries`), so a legal append always fits.
    pub message_bytes_max: usize,
    /// How long to wait for a TCP connection to a peer.
    pub connect_timeout_ms: u64,
    /// Upper bound on one request (vote, append, heartbeat batch, snapshot, transfer), and on
    /// how long an append stream may wait for the answer to a request it sent. openraft's own
    /// per-call deadline (`RPCOption`) applies too; the smaller one wins.
    pub request_timeout_ms: u64,
    /// How long the per-peer heartbeat batcher waits for more groups after the first pending
    /// heartbeat before it sends the batch: a few ms, far below the heartbeat interval.
    pub heartbeat_batch_ms: u64,
    /// Most heartbeats in one batch; a full batch is sent at once. Bounds the batch message.
    pub heartbeat_batch_groups_max: usize,
    /// Most heartbeat batches in flight to one peer; beyond it the batcher waits, so a slow
    /// peer cannot pile up requests.
    pub heartbeat_batches_inflight_max: usize,
    /// Most concurrent HTTP/2 streams a peer may open on one connection (the server's limit):
    /// each group replicating to this node holds one append stream while it has entries to send.
    pub streams_per_connection_max: u32,
    /// Interval of HTTP/2 keepalive pings on idle and busy connections (both sides), so a dead
    /// peer is noticed without waiting for TCP.
    pub keepalive_interval_ms: u64,
    /// How long a keepalive ping may go unanswered before the connection is closed.
    pub keepalive_timeout_ms: u64,
}

impl Default for TransportConfig {
    fn default() -> Self {
        TransportConfig {
            message_bytes_max: 16 * 1024 * 1024,
            connect_timeout_ms: 1_000,
            request_timeout_ms: 2_000,
            heartbeat_batch_ms: 5,
            heartbeat_batch_groups_max: 1_024,
            heartbeat_batches_inflight_max: 4,
            streams_per_connection_max: 4_096,
            keepalive_interval_ms: 10_000,
            keepalive_timeout_ms: 5_000,
        }
    }
}

fn invalid(field: &'static str, reason: impl Into<String>) -> TransportError {
    TransportError::InvalidConfig {
        field,
        reason: reason.into(),
    }
}

impl TransportConfig {
    /// The smallest allowed [`TransportConfig::message_bytes_max`]: room for a batch of 1 MiB
    /// and its framing.
    pub const MESSAGE_BYTES_MIN: usize = 1024 * 1024 + 64 * 1024;
    /// The largest allowed [`TransportConfig::heartbeat_batch_ms`]: a batch window must stay
    /// far below openraft's heartbeat interval (about 300 ms).
    pub const HEARTBEAT_BATCH_MS_MAX: u64 = 100;

    /// Checks every field; the error names the field and the rule it breaks.
    pub fn validate(&self) -> Result<(), TransportError> {
        if self.message_bytes_max < Self::MESSAGE_BYTES_MIN {
            return Err(invalid(
                "message_bytes_max",
                format!(
                    "{} is below {}",
                    self.message_bytes_max,
                    Self::MESSAGE_BYTES_MIN
                ),
            ));
        }
        if self.message_bytes_max > u32::MAX as usize {
            return Err(invalid(
                "message_bytes_max",
                "must fit in 32 bits (gRPC framing)",
            ));
        }
        for (field, value) in [
            ("connect_timeout_ms", self.connect_timeout_ms),
            ("request_timeout_ms", self.request_timeout_ms),
            ("keepalive_interval_ms", self.keepalive_interval_ms),
            ("keepalive_timeout_ms", self.keepalive_timeout_ms),
        ] {
            if value == 0 {
                return Err(invalid(field, "must be above 0"));
            }
        }
        if self.heartbeat_batch_ms > Self::HEARTBEAT_BATCH_MS_MAX {
            return Err(invalid(
                "heartbeat_batch_ms",
                format!(
                    "{} is above {}",
                    self.heartbeat_batch_ms,
                    Self::HEARTBEAT_BATCH_MS_MAX
                ),
            ));
        }
        if self.heartbeat_batch_groups_max == 0 {
            return Err(invalid("heartbeat_batch_groups_max", "must be above 0"));
        }
        if self.heartbeat_batches_inflight_max == 0 {
            return Err(invalid("heartbeat_batches_inflight_max", "must be above 0"));
        }
        if self.streams_per_connection_max == 0 {
            return Err(invalid("streams_per_connection_max", "must be above 0"));
        }
        Ok(())
    }

    /// [`TransportConfig::connect_timeout_ms`] as a duration.
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }

    /// [`TransportConfig::request_timeout_ms`] as a duration.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    /// [`TransportConfig::heartbeat_batch_ms`] as a duration.
    pub fn heartbeat_batch(&self) -> Duration {
        Duration::from_millis(self.heartbeat_batch_ms)
    }

    /// [`TransportConfig::keepalive_interval_ms`] as a duration.
    pub fn keepalive_interval(&self) -> Duration {
        Duration::from_millis(self.keepalive_interval_ms)
    }

    /// [`TransportConfig::keepalive_timeout_ms`] as a duration.
    pub fn keepalive_timeout(&self) -> Duration {
        Duration::from_millis(self.keepalive_timeout_ms)
    }
}
