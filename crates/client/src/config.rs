//! Configuration of the client, the producer and the consumer. Every default lives here, in the
//! `Default` impls; each config has a `validate()` that [`crate::Client`] calls before use.

use std::time::Duration;

use crate::error::Error;
use crate::records::Offset;

/// Connections and metadata of a [`crate::Client`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// Longest wait for a TCP connection to a node. Default 5 s.
    pub connect_timeout: Duration,
    /// Deadline of one request (Metadata, ListOffsets, admin calls; a fetch gets this plus its
    /// wait). Default 30 s.
    pub request_timeout: Duration,
    /// A connection from which nothing was received for this long is sent an HTTP/2 ping,
    /// whether or not requests are in flight on it. With [`ClientConfig::keepalive_timeout`]
    /// this is how a frozen node (SIGSTOP, a stalled VM) or one cut off by the network is
    /// noticed: the connection is closed and every request on it fails with
    /// [`Error::Transport`], which the producer and the consumer retry (the producer resends
    /// the same batch). Default 1 s.
    pub keepalive_interval: Duration,
    /// How long a keepalive ping may go unanswered before the connection is closed. A dead
    /// connection is noticed at most `keepalive_interval + keepalive_timeout` after the node
    /// last sent anything. Default 2 s.
    pub keepalive_timeout: Duration,
    /// While a partition request (a produce, a fetch past its long-poll wait, a list-offsets)
    /// has had no answer for this long, the client asks every node which node leads the
    /// partition, and again every interval until the answer comes. If the nodes that answer
    /// name another leader and the node the request went to does not claim the partition (in
    /// a term at least as new), the request is abandoned and sent to the new leader: a leader
    /// that froze or was cut off stalls its partitions for about an election timeout, not for
    /// the request timeout. An idempotent producer resends the same batch, so the new leader
    /// writes it once; without idempotence an abandoned batch may be written twice (as after
    /// any retry whose outcome is unknown). The same interval spaces the metadata requests
    /// that go to several nodes while the first ones asked do not answer. Default 500 ms.
    pub leader_probe_interval: Duration,
    /// Shortest interval between two metadata refreshes: when many partitions lose their
    /// leader at once, they share one refresh per interval instead of each sending one.
    /// Default 50 ms.
    pub metadata_refresh_backoff: Duration,
    /// Largest gRPC message sent or received, in bytes. Bounds the memory one answer can take;
    /// must exceed the consumer's `fetch_bytes` and the producer's `batch_bytes`.
    /// Default 64 MiB.
    pub message_bytes_max: usize,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            keepalive_interval: Duration::from_secs(1),
            keepalive_timeout: Duration::from_secs(2),
            leader_probe_interval: Duration::from_millis(500),
            metadata_refresh_backoff: Duration::from_millis(50),
            message_bytes_max: 64 << 20,
        }
    }
}

impl ClientConfig {
    /// Checks the settings.
    pub fn validate(&self) -> Result<(), Error> {
        positive("connect_timeout", self.connect_timeout)?;
        positive("request_timeout", self.request_timeout)?;
        positive("keepalive_interval", self.keepalive_interval)?;
        positive("keepalive_timeout", self.keepalive_timeout)?;
        positive("leader_probe_interval", self.leader_probe_interval)?;
        if self.message_bytes_max < 64 << 10 {
            return Err(invalid("message_bytes_max", "must be at least 64 KiB"));
        }
        Ok(())
    }
}

/// How a produced batch is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Acks {
    /// Committed by a majority of replicas, each having fsynced it: never lost once
    /// acknowledged. The default, and required by idempotence.
    #[default]
    All,
    /// Appended to the leader's log: lost if the leader fails before replicating it.
    Leader,
    /// Handed to the leader; no offset is returned (records resolve with offset -1).
    None,
}

/// Settings of a [`crate::Producer`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerConfig {
    /// Acknowledgement level. Default [`Acks::All`].
    pub acks: Acks,
    /// Idempotent delivery: the producer takes a producer id and numbers its batches per
    /// partition, so a retried batch is written once. Default on; requires [`Acks::All`].
    /// Off, a retry after an unknown outcome may write a batch twice.
    pub idempotence: bool,
    /// A partition's batch is sent once it holds this many bytes (a record larger than this
    /// travels alone). Default 256 KiB.
    pub batch_bytes: usize,
    /// Batches of one partition in flight at once (Kafka's
    /// `max.in.flight.requests.per.connection`), with idempotence: their sequence numbers keep
    /// them in order, whatever order they reach the leader in. Without idempotence one.
    /// 1..=5 (the leader remembers a producer's last 5 batches for duplicates). Default 5.
    pub max_in_flight: usize,
    /// How long a partition's first record waits for others to join its batch. Zero sends as
    /// soon as a batch may be sent (fewer than `max_in_flight` in flight). Default 5 ms.
    pub linger: Duration,
    /// Most bytes of records held by the producer (buffered or in flight): `send` waits while
    /// the buffer is full. Bounds the producer's memory. Default 32 MiB.
    pub buffer_bytes: usize,
    /// Deadline of one Produce request (one attempt; a request to a node that stopped
    /// answering ends sooner, see [`ClientConfig::keepalive_timeout`] and
    /// [`ClientConfig::leader_probe_interval`]). Default 30 s.
    pub request_timeout: Duration,
    /// Longest time from a batch's first record until its outcome, retries included; past it
    /// the batch fails. Default 120 s.
    pub delivery_timeout: Duration,
    /// First wait before a retry; doubles after each failure. Default 10 ms.
    pub retry_backoff: Duration,
    /// Longest wait between retries. Default 1 s.
    pub retry_backoff_max: Duration,
    /// Codec of each batch's records (Kafka's `compression.type`): gzip, snappy, lz4 or zstd
    /// (pure-Rust codecs, readable by every Kafka client). A batch that would not shrink is
    /// sent uncompressed. The leader stores batches as they come; consumers decompress.
    /// Default none.
    pub compression: strata_record::Compression,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        ProducerConfig {
            acks: Acks::All,
            idempotence: true,
            batch_bytes: 256 << 10,
            max_in_flight: 5,
            linger: Duration::from_millis(5),
            buffer_bytes: 32 << 20,
            request_timeout: Duration::from_secs(30),
            delivery_timeout: Duration::from_secs(120),
            retry_backoff: Duration::from_millis(10),
            retry_backoff_max: Duration::from_secs(1),
            compression: strata_record::Compression::None,
        }
    }
}

impl ProducerConfig {
    /// Largest `buffer_bytes`: the buffer is a semaphore counted in `u32` units per record.
    pub const BUFFER_BYTES_MAX: usize = u32::MAX as usize;

    /// Checks the settings against each other and against the client's.
    pub fn validate(&self, client: &ClientConfig) -> Result<(), Error> {
        if self.idempotence && self.acks != Acks::All {
            return Err(invalid(
                "idempotence",
                "requires acks = All (turn idempotence off for Leader or None)",
            ));
        }
        if self.batch_bytes == 0 || self.batch_bytes >= client.message_bytes_max {
            return Err(invalid(
                "batch_bytes",
                &format!(
                    "must be in 1..{} (the client's message_bytes_max)",
                    client.message_bytes_max
                ),
            ));
        }
        if self.buffer_bytes < self.batch_bytes || self.buffer_bytes > Self::BUFFER_BYTES_MAX {
            return Err(invalid(
                "buffer_bytes",
                &format!(
                    "must be in {}..={} (at least batch_bytes)",
                    self.batch_bytes,
                    Self::BUFFER_BYTES_MAX
                ),
            ));
        }
        if !(1..=5).contains(&self.max_in_flight) {
            return Err(invalid("max_in_flight", "must be in 1..=5"));
        }
        positive("request_timeout", self.request_timeout)?;
        positive("delivery_timeout", self.delivery_timeout)?;
        positive("retry_backoff", self.retry_backoff)?;
        if self.retry_backoff_max < self.retry_backoff {
            return Err(invalid(
                "retry_backoff_max",
                "must be at least retry_backoff",
            ));
        }
        Ok(())
    }
}

/// Settings of a [`crate::Consumer`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerConfig {
    /// Longest time a fetch waits at the server for new records. Default 500 ms.
    pub fetch_wait: Duration,
    /// Most bytes one fetch of one partition returns (at least one batch is returned whatever
    /// its size). Each assigned partition has one fetch in flight, so the consumer holds up to
    /// partitions × this. Default 4 MiB.
    pub fetch_bytes: u32,
    /// Where to restart when the position is out of range (records deleted by retention, or
    /// an offset past the end). `None` (the default) reports
    /// [`Error::OffsetOutOfRange`] from `poll` and lets the caller decide.
    pub auto_reset: Option<Offset>,
    /// First wait before retrying a failed fetch; doubles after each failure. Default 10 ms.
    pub retry_backoff: Duration,
    /// Longest wait between fetch retries. Default 1 s.
    pub retry_backoff_max: Duration,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        ConsumerConfig {
            fetch_wait: Duration::from_millis(500),
            fetch_bytes: 4 << 20,
            auto_reset: None,
            retry_backoff: Duration::from_millis(10),
            retry_backoff_max: Duration::from_secs(1),
        }
    }
}

impl ConsumerConfig {
    /// Checks the settings against each other and against the client's.
    pub fn validate(&self, client: &ClientConfig) -> Result<(), Error> {
        if self.fetch_bytes == 0 || self.fetch_bytes as usize >= client.message_bytes_max {
            return Err(invalid(
                "fetch_bytes",
                &format!(
                    "must be in 1..{} (the client's message_bytes_max)",
                    client.message_bytes_max
                ),
            ));
        }
        if self.fetch_wait.as_millis() > u128::from(u32::MAX) {
            return Err(invalid("fetch_wait", "must fit u32 milliseconds"));
        }
        positive("retry_backoff", self.retry_backoff)?;
        if self.retry_backoff_max < self.retry_backoff {
            return Err(invalid(
                "retry_backoff_max",
                "must be at least retry_backoff",
            ));
        }
        Ok(())
    }
}

fn invalid(field: &str, reason: &str) -> Error {
    Error::InvalidArgument {
        field: field.to_string(),
        reason: reason.to_string(),
    }
}

fn positive(field: &str, value: Duration) -> Result<(), Error> {
    if value.is_zero() {
        return Err(invalid(field, "must be greater than zero"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        let client = ClientConfig::default();
        assert_eq!(client.validate(), Ok(()));
        assert_eq!(ProducerConfig::default().validate(&client), Ok(()));
        assert_eq!(ConsumerConfig::default().validate(&client), Ok(()));
    }

    #[test]
    fn idempotence_needs_acks_all() {
        let client = ClientConfig::default();
        let config = ProducerConfig {
            acks: Acks::Leader,
            ..ProducerConfig::default()
        };
        assert!(matches!(
            config.validate(&client),
            Err(Error::InvalidArgument { field, .. }) if field == "idempotence"
        ));
        let config = ProducerConfig {
            idempotence: false,
            ..config
        };
        assert_eq!(config.validate(&client), Ok(()));
    }

    #[test]
    fn sizes_are_bounded() {
        let client = ClientConfig::default();
        let config = ProducerConfig {
            buffer_bytes: 1,
            ..ProducerConfig::default()
        };
        assert!(config.validate(&client).is_err());
        let config = ConsumerConfig {
            fetch_bytes: u32::MAX,
            ..ConsumerConfig::default()
        };
        assert!(config.validate(&client).is_err());
    }
}
