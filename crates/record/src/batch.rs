//! [`Batch`]: a checked, zero-copy reader over the bytes of one RecordBatch v2.
//!
//! [`Batch::parse`] checks everything before anything trusts the batch; afterwards iteration
//! cannot fail and hands out slices of the input [`Bytes`] (of the decompressed records, for a
//! compressed batch: a batch is stored and sent as it came, compressed or not, and decompressed
//! only to be checked and read).

use std::iter::FusedIterator;

use bytes::Bytes;

use crate::RecordError;
use crate::attributes::{Compression, TimestampType, check_attributes};
use crate::header::{BATCH_HEADER_LEN, BatchHeader};
use crate::record::{self, Record, RecordLayout};

/// Fewest bytes a record takes: a one-byte varint for each of length, timestamp delta, offset
/// delta, key length, value length and header count, plus the attributes byte.
pub const RECORD_LEN_MIN: usize = 7;

/// One record batch whose every byte was checked by [`Batch::parse`] or [`Batch::parse_prefix`].
///
/// Cloning is cheap (the bytes are reference counted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// Exactly the batch's bytes.
    bytes: Bytes,
    header: BatchHeader,
    timestamp_type: TimestampType,
    compression: Compression,
    /// The records region: `bytes` itself when uncompressed (records from `start`), else its
    /// decompressed form (records from 0).
    records: Bytes,
    start: usize,
}

impl Batch {
    /// Checks that `bytes` is exactly one acceptable batch (no bytes after it).
    ///
    /// See [`Batch::parse_prefix`] for what is checked; in addition, bytes after the batch are
    /// [`RecordError::TrailingBytes`].
    pub fn parse(bytes: Bytes) -> Result<Batch, RecordError> {
        let (batch, rest) = Batch::parse_prefix(bytes)?;
        if !rest.is_empty() {
            return Err(RecordError::TrailingBytes {
                batch_len: batch.len(),
                trailing: rest.len(),
            });
        }
        Ok(batch)
    }

    /// Checks the batch at the start of `bytes` and returns it with the bytes after it.
    ///
    /// Checked, in order:
    /// - the header ([`BatchHeader::parse_verified`]): length, magic 2, CRC32C, record count
    ///   positive, `lastOffsetDelta = count - 1`;
    /// - attributes: no control or transactional bit, no unknown bit, a codec Kafka defines
    ///   (others are [`RecordError::UnsupportedCompression`]); a compressed records region
    ///   decompresses within [`crate::compression::DECOMPRESSED_BYTES_MAX`];
    /// - `baseOffset + lastOffsetDelta` does not overflow;
    /// - the records: exactly `count` of them fill the batch to its last byte, each within its
    ///   declared length, attributes 0, offset delta = index, valid lengths, UTF-8 header keys,
    ///   `baseTimestamp + timestampDelta` does not overflow;
    /// - for create time, `maxTimestamp` is the largest record timestamp.
    pub fn parse_prefix(bytes: Bytes) -> Result<(Batch, Bytes), RecordError> {
        let header = BatchHeader::parse_verified(&bytes)?;
        let (timestamp_type, compression) = check_attributes(header.attributes)?;
        if header
            .base_offset
            .checked_add(i64::from(header.last_offset_delta))
            .is_none()
        {
            return Err(RecordError::OffsetOverflow {
                base_offset: header.base_offset,
                last_offset_delta: header.last_offset_delta,
            });
        }
        let rest = bytes.slice(header.total_len()..);
        let mut bytes = bytes;
        bytes.truncate(header.total_len());
        let (records, start) = match compression {
            Compression::None => (bytes.clone(), BATCH_HEADER_LEN),
            codec => (
                Bytes::from(crate::compression::decompress(
                    codec,
                    &bytes[BATCH_HEADER_LEN..],
                    crate::compression::DECOMPRESSED_BYTES_MAX,
                )?),
                0,
            ),
        };
        check_records(&records, start, &header, timestamp_type)?;
        let batch = Batch {
            bytes,
            header,
            timestamp_type,
            compression,
            records,
            start,
        };
        Ok((batch, rest))
    }

    /// The decoded fixed header.
    pub fn header(&self) -> &BatchHeader {
        &self.header
    }

    /// The codec of the records region.
    pub fn compression(&self) -> Compression {
        self.compression
    }

    /// The batch's bytes, exactly (header and records, compressed as they came).
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// The batch's bytes, giving up the reader.
    pub fn into_bytes(self) -> Bytes {
        self.bytes
    }

    /// Length of the batch in bytes.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Always false: a batch holds at least its header and one record.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Number of records (at least 1).
    pub fn record_count(&self) -> i32 {
        self.header.record_count
    }

    /// Offset of the first record.
    pub fn base_offset(&self) -> i64 {
        self.header.base_offset
    }

    /// Offset of the last record (`base_offset + record_count - 1`).
    pub fn last_offset(&self) -> i64 {
        // `parse_prefix` checked this does not overflow.
        self.header.base_offset + i64::from(self.header.last_offset_delta)
    }

    /// Offset after the last record: the next batch's base offset.
    pub fn next_offset(&self) -> i64 {
        self.last_offset().saturating_add(1)
    }

    /// Partition leader epoch stamped by the log (0 before stamping).
    pub fn partition_leader_epoch(&self) -> i32 {
        self.header.partition_leader_epoch
    }

    /// Whether record timestamps are create time or log-append time.
    pub fn timestamp_type(&self) -> TimestampType {
        self.timestamp_type
    }

    /// `baseTimestamp`: the first record's create time.
    pub fn base_timestamp(&self) -> i64 {
        self.header.base_timestamp
    }

    /// `maxTimestamp`: the largest record timestamp (checked for create time), or the append
    /// time for log-append time.
    pub fn max_timestamp(&self) -> i64 {
        self.header.max_timestamp
    }

    /// Idempotent producer id, or -1.
    pub fn producer_id(&self) -> i64 {
        self.header.producer_id
    }

    /// Idempotent producer epoch, or -1.
    pub fn producer_epoch(&self) -> i16 {
        self.header.producer_epoch
    }

    /// Sequence number of the first record, or -1.
    pub fn base_sequence(&self) -> i32 {
        self.header.base_sequence
    }

    /// The records, in offset order; keys, values and header values are slices of
    /// [`Batch::bytes`] (of the decompressed records for a compressed batch).
    pub fn records(&self) -> Records<'_> {
        Records {
            batch: self,
            pos: self.start,
            index: 0,
        }
    }

    /// Offset of the first record (in offset order) whose timestamp is `timestamp` or later, or
    /// `None` if there is none. This answers a time-index lookup ("replay from a timestamp").
    ///
    /// For log-append time every record has timestamp [`Batch::max_timestamp`].
    pub fn first_offset_at_or_after_timestamp(&self, timestamp: i64) -> Option<i64> {
        if self.header.max_timestamp < timestamp {
            // Checked by `parse_prefix`: no record is later than `maxTimestamp`.
            return None;
        }
        if self.timestamp_type == TimestampType::LogAppendTime {
            return Some(self.header.base_offset);
        }
        let mut pos = self.start;
        for index in 0..self.header.record_count {
            let layout = checked(record::scan(&self.records, pos, index).ok())?;
            if self.record_timestamp(&layout) >= timestamp {
                return Some(self.header.base_offset + i64::from(index));
            }
            pos = layout.next;
        }
        None
    }

    /// The create time of a record; `parse_prefix` checked the sum does not overflow.
    fn record_timestamp(&self, layout: &RecordLayout) -> i64 {
        self.header
            .base_timestamp
            .wrapping_add(layout.timestamp_delta)
    }
}

/// Marks a result that `parse_prefix` already proved to be `Some`; a `None` would be a bug in
/// this crate, reported in debug builds and ending the iteration in release builds.
fn checked<T>(value: Option<T>) -> Option<T> {
    debug_assert!(
        value.is_some(),
        "a record that Batch::parse accepted failed to decode"
    );
    value
}

/// Walks the records (in `batch` from `start`) of a batch whose header was verified; see
/// [`Batch::parse_prefix`].
fn check_records(
    batch: &[u8],
    start: usize,
    header: &BatchHeader,
    timestamp_type: TimestampType,
) -> Result<(), RecordError> {
    let count = header.record_count;
    // Cheap rejection of a lying count before walking anything.
    if count as usize > batch.len().saturating_sub(start) / RECORD_LEN_MIN {
        return Err(RecordError::BadRecordCount {
            count,
            reason: "more records than the batch has bytes for",
        });
    }
    let mut pos = start;
    let mut max_timestamp = i64::MIN;
    for index in 0..count {
        if pos == batch.len() {
            return Err(RecordError::BadRecordCount {
                count,
                reason: "the batch ends before the last record",
            });
        }
        let bad_record = |fault| RecordError::BadRecord {
            index,
            position: pos,
            fault,
        };
        let layout = record::scan(batch, pos, index).map_err(bad_record)?;
        let delta = layout.timestamp_delta;
        let timestamp = header
            .base_timestamp
            .checked_add(delta)
            .ok_or_else(|| bad_record(crate::RecordFault::TimestampOverflow { delta }))?;
        max_timestamp = max_timestamp.max(timestamp);
        pos = layout.next;
    }
    if pos != batch.len() {
        return Err(RecordError::BadRecordCount {
            count,
            reason: "bytes remain after the last record",
        });
    }
    if timestamp_type == TimestampType::CreateTime && max_timestamp != header.max_timestamp {
        return Err(RecordError::BadMaxTimestamp {
            stored: header.max_timestamp,
            computed: max_timestamp,
        });
    }
    Ok(())
}

/// Iterator over the records of a [`Batch`] (see [`Batch::records`]).
#[derive(Debug, Clone)]
pub struct Records<'a> {
    batch: &'a Batch,
    /// Position of the next record's length varint.
    pos: usize,
    /// Index of the next record.
    index: i32,
}

impl Iterator for Records<'_> {
    type Item = Record;

    fn next(&mut self) -> Option<Record> {
        let batch = self.batch;
        if self.index >= batch.header.record_count {
            return None;
        }
        let bytes = &batch.records;
        let decoded = record::scan(bytes, self.pos, self.index)
            .ok()
            .and_then(|layout| Some((record::headers(bytes, &layout)?, layout)));
        let Some((headers, layout)) = checked(decoded) else {
            self.index = batch.header.record_count;
            return None;
        };
        let timestamp = match batch.timestamp_type {
            TimestampType::CreateTime => batch.record_timestamp(&layout),
            TimestampType::LogAppendTime => batch.header.max_timestamp,
        };
        let record = Record {
            offset: batch.header.base_offset + i64::from(self.index),
            timestamp,
            key: layout.key.map(|range| bytes.slice(range)),
            value: layout.value.map(|range| bytes.slice(range)),
            headers,
        };
        self.pos = layout.next;
        self.index += 1;
        Some(record)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = (self.batch.header.record_count - self.index) as usize;
        (left, Some(left))
    }
}

impl ExactSizeIterator for Records<'_> {}

impl FusedIterator for Records<'_> {}

impl<'a> IntoIterator for &'a Batch {
    type Item = Record;
    type IntoIter = Records<'a>;

    fn into_iter(self) -> Records<'a> {
        self.records()
    }
}

#[cfg(test)]
#[path = "batch_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "batch_proptests.rs"]
mod proptests;
