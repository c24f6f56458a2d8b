//! [`BatchBuilder`]: assembles records into a RecordBatch v2 with exactly the bytes Kafka's
//! clients write (checked against kafka-python's `DefaultRecordBatchBuilder` by the vectors in
//! `tests/vectors/record-batch`).

use bytes::{BufMut, Bytes, BytesMut};

use crate::RecordError;
use crate::attributes::{Compression, TimestampType};
use crate::header::{
    ATTR_TIMESTAMP_TYPE, ATTRIBUTES_POS, BATCH_HEADER_LEN, CRC_POS, LOG_OVERHEAD, MAGIC_V2,
};
use crate::record::{self, NewRecord};

/// Value of the producer id, epoch and base sequence when the producer is not idempotent.
pub const NO_PRODUCER: i64 = -1;

/// Largest batch the format can describe: `batchLength` is an i32 that excludes the first
/// [`LOG_OVERHEAD`] bytes.
pub const BATCH_LEN_MAX: usize = i32::MAX as usize + LOG_OVERHEAD;

/// Builds one uncompressed RecordBatch v2.
///
/// The header is written as a Kafka producer writes it: base offset 0 and partition leader
/// epoch 0 (the broker stamps both later with [`crate::stamp_base_offset`] and
/// [`crate::stamp_leader_epoch`]; they lie outside the CRC). Kafka's Java client writes -1 as the
/// leader epoch of a produce request; kafka-python writes 0, and Strata matches kafka-python so
/// its interoperability vectors compare byte for byte. A broker overwrites the field either way.
///
/// `baseTimestamp` is the first record's timestamp and `maxTimestamp` the largest record
/// timestamp (or the append time, see [`BatchBuilder::with_log_append_time`]).
///
/// ```
/// use bytes::Bytes;
/// use strata_record::{Batch, BatchBuilder, NewRecord};
///
/// let mut builder = BatchBuilder::new();
/// builder.append(&NewRecord::new(1_700_000_000_000, None, Some(Bytes::from("hello"))))?;
/// let batch = Batch::parse(builder.build())?;
/// assert_eq!(batch.record_count(), 1);
/// # Ok::<(), strata_record::RecordError>(())
/// ```
#[derive(Debug, Clone)]
pub struct BatchBuilder {
    /// Header placeholder followed by the encoded records.
    buf: BytesMut,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    timestamp_type: TimestampType,
    /// `maxTimestamp` to write when the timestamp type is log-append time.
    log_append_time: i64,
    /// First record's timestamp, once a record was appended.
    base_timestamp: Option<i64>,
    /// Largest record timestamp so far.
    max_timestamp: i64,
    record_count: i32,
    compression: Compression,
}

impl Default for BatchBuilder {
    fn default() -> Self {
        BatchBuilder::new()
    }
}

impl BatchBuilder {
    /// An empty builder: no producer id (-1/-1/-1), create-time timestamps, no compression.
    pub fn new() -> BatchBuilder {
        let mut buf = BytesMut::with_capacity(BATCH_HEADER_LEN + 256);
        buf.put_bytes(0, BATCH_HEADER_LEN);
        BatchBuilder {
            buf,
            producer_id: NO_PRODUCER,
            producer_epoch: NO_PRODUCER as i16,
            base_sequence: NO_PRODUCER as i32,
            timestamp_type: TimestampType::CreateTime,
            log_append_time: 0,
            base_timestamp: None,
            max_timestamp: i64::MIN,
            record_count: 0,
            compression: Compression::None,
        }
    }

    /// Sets the idempotent producer fields: id, epoch, and the sequence number of the first
    /// record (the batch's records take consecutive sequence numbers from it).
    pub fn with_producer(
        mut self,
        producer_id: i64,
        producer_epoch: i16,
        base_sequence: i32,
    ) -> BatchBuilder {
        self.producer_id = producer_id;
        self.producer_epoch = producer_epoch;
        self.base_sequence = base_sequence;
        self
    }

    /// Sets the compression codec of the records region. [`BatchBuilder::build`] compresses
    /// when it makes the batch smaller, and writes the records uncompressed otherwise (as
    /// librdkafka does), so a batch never outgrows [`BatchBuilder::estimated_size`].
    pub fn with_compression(mut self, compression: Compression) -> BatchBuilder {
        self.compression = compression;
        self
    }

    /// Marks the batch as log-append time (attribute bit 3) and sets `maxTimestamp` to
    /// `append_time_ms`, as a Kafka broker does for a topic with
    /// `message.timestamp.type=LogAppendTime`. Records keep their create-time deltas in the
    /// bytes, but readers report `append_time_ms` as every record's timestamp.
    ///
    /// This is the only way to set `maxTimestamp`: for a create-time batch it must be the
    /// largest record timestamp, which the builder computes and the reader checks.
    pub fn with_log_append_time(mut self, append_time_ms: i64) -> BatchBuilder {
        self.timestamp_type = TimestampType::LogAppendTime;
        self.log_append_time = append_time_ms;
        self
    }

    /// Number of records appended so far.
    pub fn record_count(&self) -> i32 {
        self.record_count
    }

    /// Whether no record was appended yet.
    pub fn is_empty(&self) -> bool {
        self.record_count == 0
    }

    /// Bytes [`BatchBuilder::build`] would return now (exact, since only uncompressed batches
    /// are built). A producer batching by size compares this, or
    /// [`BatchBuilder::estimated_size_with`], with its batch size limit.
    pub fn estimated_size(&self) -> usize {
        self.buf.len()
    }

    /// Bytes [`BatchBuilder::build`] would return after appending `record`; if `record` could
    /// not be appended (a length or the timestamp delta does not fit), `usize::MAX`.
    pub fn estimated_size_with(&self, record: &NewRecord) -> usize {
        self.encoded_len(record)
            .map_or(usize::MAX, |(_, _, framed)| self.buf.len() + framed)
    }

    /// Timestamp delta, body length and framed length of `record` as the next record.
    fn encoded_len(&self, record: &NewRecord) -> Result<(i64, usize, usize), RecordError> {
        let base = self.base_timestamp.unwrap_or(record.timestamp);
        let timestamp_delta =
            record
                .timestamp
                .checked_sub(base)
                .ok_or(RecordError::Unbuildable {
                    reason: "timestamp delta from the first record overflows i64",
                })?;
        let body_len = record::body_len(record, timestamp_delta, self.record_count)?;
        let framed_len = record::framed_len(body_len)?;
        Ok((timestamp_delta, body_len, framed_len))
    }

    /// Appends `record` with the next offset delta.
    ///
    /// Errors (and leaves the builder unchanged) if the timestamp delta from the first record
    /// overflows i64, if a length does not fit an i32, or if the batch would exceed
    /// [`BATCH_LEN_MAX`] bytes.
    pub fn append(&mut self, record: &NewRecord) -> Result<(), RecordError> {
        let (timestamp_delta, body_len, framed_len) = self.encoded_len(record)?;
        if self.buf.len() + framed_len > BATCH_LEN_MAX {
            return Err(RecordError::Unbuildable {
                reason: "batch longer than i32::MAX bytes",
            });
        }
        if self.record_count == i32::MAX {
            return Err(RecordError::Unbuildable {
                reason: "more than i32::MAX records",
            });
        }
        self.buf.reserve(framed_len);
        record::encode(
            &mut self.buf,
            record,
            timestamp_delta,
            self.record_count,
            body_len,
        );
        self.base_timestamp.get_or_insert(record.timestamp);
        self.max_timestamp = self.max_timestamp.max(record.timestamp);
        self.record_count += 1;
        Ok(())
    }

    /// Compresses the records region (when asked and smaller), writes the header and CRC32C,
    /// and returns the batch.
    ///
    /// # Panics
    /// If no record was appended: a batch holds at least one record, and building an empty one
    /// is a bug in the caller (check [`BatchBuilder::is_empty`]).
    pub fn build(mut self) -> Bytes {
        assert!(!self.is_empty(), "building a record batch with no records");
        let mut codec = Compression::None;
        if self.compression != Compression::None
            && let Ok(packed) =
                crate::compression::compress(self.compression, &self.buf[BATCH_HEADER_LEN..])
            && packed.len() < self.buf.len() - BATCH_HEADER_LEN
        {
            self.buf.truncate(BATCH_HEADER_LEN);
            self.buf.extend_from_slice(&packed);
            codec = self.compression;
        }
        let batch_length = (self.buf.len() - LOG_OVERHEAD) as i32;
        let (attributes, max_timestamp) = match self.timestamp_type {
            TimestampType::CreateTime => (codec.code(), self.max_timestamp),
            TimestampType::LogAppendTime => {
                (codec.code() | ATTR_TIMESTAMP_TYPE, self.log_append_time)
            }
        };
        let mut header = &mut self.buf[..BATCH_HEADER_LEN];
        header.put_i64(0); // base offset: stamped by the log
        header.put_i32(batch_length);
        header.put_i32(0); // partition leader epoch: stamped by the log
        header.put_i8(MAGIC_V2);
        header.put_u32(0); // CRC, computed below
        header.put_i16(attributes);
        header.put_i32(self.record_count - 1); // last offset delta
        header.put_i64(self.base_timestamp.unwrap_or_default());
        header.put_i64(max_timestamp);
        header.put_i64(self.producer_id);
        header.put_i16(self.producer_epoch);
        header.put_i32(self.base_sequence);
        header.put_i32(self.record_count);
        let crc = crc32c::crc32c(&self.buf[ATTRIBUTES_POS..]);
        self.buf[CRC_POS..CRC_POS + 4].copy_from_slice(&crc.to_be_bytes());
        self.buf.freeze()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::header::BatchHeader;

    fn record(timestamp: i64, value: &'static str) -> NewRecord {
        NewRecord::new(timestamp, None, Some(Bytes::from_static(value.as_bytes())))
    }

    #[test]
    fn one_record_has_known_bytes() {
        let mut builder = BatchBuilder::new();
        builder.append(&record(5, "v")).unwrap();
        let bytes = builder.build();
        // Record: length 7 (zigzag 14), attributes 0, timestamp delta 0, offset delta 0,
        // key length -1 (zigzag 1), value length 1 (zigzag 2), 'v', header count 0.
        assert_eq!(
            &bytes[BATCH_HEADER_LEN..],
            [0x0e, 0, 0, 0, 0x01, 0x02, b'v', 0]
        );
        let header = BatchHeader::parse_verified(&bytes).unwrap();
        assert_eq!(header.batch_length as usize, bytes.len() - LOG_OVERHEAD);
        assert_eq!(header.partition_leader_epoch, 0);
        assert_eq!(header.base_offset, 0);
        assert_eq!(header.base_timestamp, 5);
        assert_eq!(header.max_timestamp, 5);
        assert_eq!(header.producer_id, -1);
        assert_eq!(header.producer_epoch, -1);
        assert_eq!(header.base_sequence, -1);
        assert_eq!(header.record_count, 1);
        assert_eq!(header.attributes, 0);
    }

    #[test]
    fn timestamps_and_producer_fields() {
        let mut builder = BatchBuilder::new().with_producer(77, 3, 1000);
        for timestamp in [100, 50, 300, 200] {
            builder.append(&record(timestamp, "x")).unwrap();
        }
        let header = BatchHeader::parse_verified(&builder.build()).unwrap();
        assert_eq!(header.base_timestamp, 100);
        assert_eq!(header.max_timestamp, 300);
        assert_eq!(
            (
                header.producer_id,
                header.producer_epoch,
                header.base_sequence
            ),
            (77, 3, 1000)
        );
        assert_eq!((header.record_count, header.last_offset_delta), (4, 3));
    }

    #[test]
    fn log_append_time_sets_bit_and_max_timestamp() {
        let mut builder = BatchBuilder::new().with_log_append_time(9_999);
        builder.append(&record(100, "x")).unwrap();
        let header = BatchHeader::parse_verified(&builder.build()).unwrap();
        assert_eq!(header.attributes, ATTR_TIMESTAMP_TYPE);
        assert_eq!(header.base_timestamp, 100);
        assert_eq!(header.max_timestamp, 9_999);
    }

    #[test]
    fn refuses_compression() {
        for codec in [
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            // Compressible records are compressed and read back; one tiny record is not
            // worth it and stays uncompressed.
            let mut b = BatchBuilder::new().with_compression(codec);
            for i in 0..50 {
                b.append(&record(
                    i,
                    "a fairly repetitive value, a fairly repetitive value",
                ))
                .unwrap();
            }
            let estimated = b.estimated_size();
            let bytes = b.build();
            assert!(bytes.len() < estimated, "{codec}");
            let batch = crate::Batch::parse(bytes).unwrap();
            assert_eq!(batch.compression(), codec);
            assert_eq!(batch.records().count(), 50);
            assert_eq!(
                batch.records().nth(7).unwrap().value.unwrap(),
                Bytes::from_static(b"a fairly repetitive value, a fairly repetitive value")
            );
            let mut tiny = BatchBuilder::new().with_compression(codec);
            tiny.append(&record(1, "v")).unwrap();
            let tiny = crate::Batch::parse(tiny.build()).unwrap();
            assert_eq!(tiny.compression(), Compression::None);
        }
    }

    #[test]
    fn refuses_overflowing_timestamp_delta_and_stays_unchanged() {
        let mut builder = BatchBuilder::new();
        builder.append(&record(i64::MIN, "a")).unwrap();
        let size = builder.estimated_size();
        assert!(matches!(
            builder.append(&record(1, "b")),
            Err(RecordError::Unbuildable { .. })
        ));
        assert_eq!(builder.estimated_size_with(&record(1, "b")), usize::MAX);
        assert_eq!(builder.estimated_size(), size);
        assert_eq!(builder.record_count(), 1);
        builder.append(&record(i64::MAX - 1, "c")).unwrap_err();
        builder.append(&record(-1, "c")).unwrap();
    }

    #[test]
    fn estimated_size_is_exact() {
        let mut builder = BatchBuilder::new();
        assert_eq!(builder.estimated_size(), BATCH_HEADER_LEN);
        let records = [
            record(1, ""),
            record(1_000_000, "hello"),
            NewRecord::new(-5, Some(Bytes::from(vec![7; 300])), None)
                .with_header("h", None)
                .with_header("é", Some(Bytes::new())),
        ];
        for new in &records {
            let expected = builder.estimated_size_with(new);
            builder.append(new).unwrap();
            assert_eq!(builder.estimated_size(), expected);
        }
        let expected = builder.estimated_size();
        assert_eq!(builder.build().len(), expected);
    }

    #[test]
    #[should_panic(expected = "no records")]
    fn building_empty_is_a_bug() {
        let _ = BatchBuilder::new().build();
    }
}
