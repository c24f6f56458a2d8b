//! The record types of the public API: what a producer sends ([`ProducerRecord`]), what it
//! gets back ([`RecordMetadata`]), what a consumer reads ([`ConsumedRecord`]), and where a
//! consumer starts ([`Offset`]).

use std::fmt;

use bytes::Bytes;
use serde::Serialize;

/// One partition of one topic.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct TopicPartition {
    /// The topic.
    pub topic: String,
    /// The partition (0-based).
    pub partition: u32,
}

impl TopicPartition {
    /// `topic`'s partition `partition`.
    pub fn new(topic: impl Into<String>, partition: u32) -> TopicPartition {
        TopicPartition {
            topic: topic.into(),
            partition,
        }
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.topic, self.partition)
    }
}

/// A record to produce.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProducerRecord {
    /// The topic.
    pub topic: String,
    /// The partition; `None` lets the producer choose (by key hash, else round-robin per
    /// batch).
    pub partition: Option<u32>,
    /// The key (`None` for a null key).
    pub key: Option<Bytes>,
    /// The value (`None` for a null value, a tombstone).
    pub value: Option<Bytes>,
    /// Headers, in order; a `None` value is a null header value.
    pub headers: Vec<(String, Option<Bytes>)>,
    /// Create time in milliseconds since the Unix epoch; `None` means now.
    pub timestamp_ms: Option<i64>,
}

impl ProducerRecord {
    /// A record with `value` for `topic`, no key, no headers, timestamped when sent.
    pub fn new(topic: impl Into<String>, value: impl Into<Bytes>) -> ProducerRecord {
        ProducerRecord {
            topic: topic.into(),
            value: Some(value.into()),
            ..ProducerRecord::default()
        }
    }

    /// Sets the key.
    pub fn with_key(mut self, key: impl Into<Bytes>) -> ProducerRecord {
        self.key = Some(key.into());
        self
    }

    /// Sets the partition.
    pub fn with_partition(mut self, partition: u32) -> ProducerRecord {
        self.partition = Some(partition);
        self
    }

    /// Appends a header.
    pub fn with_header(mut self, key: impl Into<String>, value: Option<Bytes>) -> ProducerRecord {
        self.headers.push((key.into(), value));
        self
    }

    /// Sets the create time (ms since the Unix epoch).
    pub fn with_timestamp_ms(mut self, timestamp_ms: i64) -> ProducerRecord {
        self.timestamp_ms = Some(timestamp_ms);
        self
    }

    /// Bytes this record is counted for in the producer's buffer: its key, value and headers
    /// plus a fixed overhead for lengths and deltas (within a few bytes of its encoded size).
    pub(crate) fn buffered_size(&self) -> usize {
        const RECORD_OVERHEAD: usize = 24;
        const HEADER_OVERHEAD: usize = 10;
        let len = |b: &Option<Bytes>| b.as_ref().map_or(0, Bytes::len);
        RECORD_OVERHEAD
            + len(&self.key)
            + len(&self.value)
            + self
                .headers
                .iter()
                .map(|(k, v)| HEADER_OVERHEAD + k.len() + len(v))
                .sum::<usize>()
    }
}

/// Where an acknowledged record was written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordMetadata {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: u32,
    /// The record's offset; -1 with [`crate::Acks::None`] (no offset is returned).
    pub offset: i64,
    /// The record's create time (ms since the Unix epoch), as sent.
    pub timestamp_ms: i64,
}

/// A record read by a consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumedRecord {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: u32,
    /// The offset.
    pub offset: i64,
    /// Timestamp in ms since the Unix epoch (create time, or the append time for a topic that
    /// stamps it).
    pub timestamp_ms: i64,
    /// The key (`None` for a null key).
    pub key: Option<Bytes>,
    /// The value (`None` for a null value).
    pub value: Option<Bytes>,
    /// Headers, in order.
    pub headers: Vec<(String, Option<Bytes>)>,
}

/// Where a consumer starts reading a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offset {
    /// The first offset still stored (the log start offset).
    Earliest,
    /// The high watermark: only records produced from now on.
    Latest,
    /// This offset.
    At(i64),
    /// The first record whose timestamp is at or after this time (ms since the Unix epoch);
    /// the high watermark if there is none.
    Timestamp(i64),
}
