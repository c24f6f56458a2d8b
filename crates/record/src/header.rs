//! The fixed 61-byte header of a Kafka RecordBatch v2, its field positions, and the
//! functions that stamp the two fields outside the CRC (base offset, leader epoch).

use crate::RecordError;

/// Length of the fixed batch header in bytes (everything before the first record).
pub const BATCH_HEADER_LEN: usize = 61;
/// The only batch format version Strata accepts.
pub const MAGIC_V2: i8 = 2;

/// Byte position of `baseOffset` (i64, big endian).
pub const BASE_OFFSET_POS: usize = 0;
/// Byte position of `batchLength` (i32): the number of bytes after this field.
pub const BATCH_LENGTH_POS: usize = 8;
/// Byte position of `partitionLeaderEpoch` (i32).
pub const LEADER_EPOCH_POS: usize = 12;
/// Byte position of `magic` (i8).
pub const MAGIC_POS: usize = 16;
/// Byte position of `crc` (u32, CRC32C over `attributes` to the end of the batch).
pub const CRC_POS: usize = 17;
/// Byte position of `attributes` (i16); the CRC covers from here to the end.
pub const ATTRIBUTES_POS: usize = 21;
/// Byte position of `lastOffsetDelta` (i32).
pub const LAST_OFFSET_DELTA_POS: usize = 23;
/// Byte position of `baseTimestamp` (i64).
pub const BASE_TIMESTAMP_POS: usize = 27;
/// Byte position of `maxTimestamp` (i64).
pub const MAX_TIMESTAMP_POS: usize = 35;
/// Byte position of `producerId` (i64).
pub const PRODUCER_ID_POS: usize = 43;
/// Byte position of `producerEpoch` (i16).
pub const PRODUCER_EPOCH_POS: usize = 51;
/// Byte position of `baseSequence` (i32).
pub const BASE_SEQUENCE_POS: usize = 53;
/// Byte position of the record count (i32).
pub const RECORD_COUNT_POS: usize = 57;

/// Bytes before `batchLength`'s coverage starts: base offset and the length itself.
pub const LOG_OVERHEAD: usize = 12;

/// Attribute bits 0..=2: compression codec.
pub const ATTR_COMPRESSION_MASK: i16 = 0x07;
/// Attribute bit 3: timestamps are log-append time rather than create time.
pub const ATTR_TIMESTAMP_TYPE: i16 = 0x08;
/// Attribute bit 4: the batch is part of a transaction.
pub const ATTR_TRANSACTIONAL: i16 = 0x10;
/// Attribute bit 5: the batch is a control batch (transaction markers).
pub const ATTR_CONTROL: i16 = 0x20;
/// Attribute bit 6: the batch carries a delete horizon (compaction).
pub const ATTR_DELETE_HORIZON: i16 = 0x40;

/// The decoded fixed header of a record batch.
///
/// Produced by [`BatchHeader::parse`] (structure only) or [`BatchHeader::parse_verified`]
/// (structure and CRC32C); neither looks at the records themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    /// Offset of the first record (stamped by the log; outside the CRC).
    pub base_offset: i64,
    /// Bytes after the `batchLength` field; the whole batch is `12 + batch_length` bytes.
    pub batch_length: i32,
    /// Leader epoch (Raft term) of the leader that appended the batch (outside the CRC).
    pub partition_leader_epoch: i32,
    /// Format version; always [`MAGIC_V2`] once parsed.
    pub magic: i8,
    /// Stored CRC32C over `attributes` to the end.
    pub crc: u32,
    /// Attribute bits (compression, timestamp type, transactional, control).
    pub attributes: i16,
    /// Offset delta of the last record (= record count - 1).
    pub last_offset_delta: i32,
    /// Timestamp of the first record, in milliseconds since the Unix epoch.
    pub base_timestamp: i64,
    /// Largest record timestamp in the batch.
    pub max_timestamp: i64,
    /// Idempotent producer id, or -1.
    pub producer_id: i64,
    /// Idempotent producer epoch, or -1.
    pub producer_epoch: i16,
    /// Sequence number of the first record, or -1.
    pub base_sequence: i32,
    /// Number of records in the batch.
    pub record_count: i32,
}

fn be_i64(buf: &[u8], pos: usize) -> i64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&buf[pos..pos + 8]);
    i64::from_be_bytes(b)
}

fn be_i32(buf: &[u8], pos: usize) -> i32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&buf[pos..pos + 4]);
    i32::from_be_bytes(b)
}

fn be_i16(buf: &[u8], pos: usize) -> i16 {
    i16::from_be_bytes([buf[pos], buf[pos + 1]])
}

impl BatchHeader {
    /// Decodes and checks the fixed header of the batch that starts at `buf[0]`.
    ///
    /// Checks: `buf` holds at least the header, magic is 2, `batchLength` covers at least the
    /// header and fits inside `buf`, record count is positive, and `lastOffsetDelta` equals
    /// count - 1. It does not check the CRC (see [`BatchHeader::parse_verified`]) nor the
    /// records. `buf` may extend past the batch; [`BatchHeader::total_len`] tells where it ends.
    pub fn parse(buf: &[u8]) -> Result<BatchHeader, RecordError> {
        if buf.len() < BATCH_HEADER_LEN {
            return Err(RecordError::Truncated {
                needed: BATCH_HEADER_LEN,
                available: buf.len(),
            });
        }
        let header = BatchHeader {
            base_offset: be_i64(buf, BASE_OFFSET_POS),
            batch_length: be_i32(buf, BATCH_LENGTH_POS),
            partition_leader_epoch: be_i32(buf, LEADER_EPOCH_POS),
            magic: buf[MAGIC_POS] as i8,
            crc: be_i32(buf, CRC_POS) as u32,
            attributes: be_i16(buf, ATTRIBUTES_POS),
            last_offset_delta: be_i32(buf, LAST_OFFSET_DELTA_POS),
            base_timestamp: be_i64(buf, BASE_TIMESTAMP_POS),
            max_timestamp: be_i64(buf, MAX_TIMESTAMP_POS),
            producer_id: be_i64(buf, PRODUCER_ID_POS),
            producer_epoch: be_i16(buf, PRODUCER_EPOCH_POS),
            base_sequence: be_i32(buf, BASE_SEQUENCE_POS),
            record_count: be_i32(buf, RECORD_COUNT_POS),
        };
        if header.magic != MAGIC_V2 {
            return Err(RecordError::UnsupportedMagic(header.magic));
        }
        let min_length = (BATCH_HEADER_LEN - LOG_OVERHEAD) as i32;
        if header.batch_length < min_length {
            return Err(RecordError::BadBatchLength {
                batch_length: header.batch_length,
                reason: "shorter than the fixed header",
            });
        }
        let total = header.batch_length as usize + LOG_OVERHEAD;
        if total > buf.len() {
            return Err(RecordError::Truncated {
                needed: total,
                available: buf.len(),
            });
        }
        if header.record_count <= 0 {
            return Err(RecordError::BadRecordCount {
                count: header.record_count,
                reason: "a batch holds at least one record",
            });
        }
        if header.last_offset_delta != header.record_count - 1 {
            return Err(RecordError::BadLastOffsetDelta {
                last_offset_delta: header.last_offset_delta,
                record_count: header.record_count,
            });
        }
        Ok(header)
    }

    /// [`BatchHeader::parse`], then checks the CRC32C over `attributes` to the batch's end.
    pub fn parse_verified(buf: &[u8]) -> Result<BatchHeader, RecordError> {
        let header = BatchHeader::parse(buf)?;
        let computed = crc32c::crc32c(&buf[ATTRIBUTES_POS..header.total_len()]);
        if computed != header.crc {
            return Err(RecordError::CrcMismatch {
                stored: header.crc,
                computed,
            });
        }
        Ok(header)
    }

    /// Total bytes of the batch, header included (`12 + batch_length`).
    pub fn total_len(&self) -> usize {
        self.batch_length as usize + LOG_OVERHEAD
    }

    /// The compression codec bits of `attributes`.
    pub fn compression_bits(&self) -> i16 {
        self.attributes & ATTR_COMPRESSION_MASK
    }

    /// Whether the transactional bit is set.
    pub fn is_transactional(&self) -> bool {
        self.attributes & ATTR_TRANSACTIONAL != 0
    }

    /// Whether the control bit is set.
    pub fn is_control(&self) -> bool {
        self.attributes & ATTR_CONTROL != 0
    }
}

/// Writes `base_offset` into the batch header at `buf[0..8]` (outside the CRC).
///
/// # Panics
/// If `buf` is shorter than the batch header: callers stamp only batches they have parsed.
pub fn stamp_base_offset(buf: &mut [u8], base_offset: i64) {
    assert!(
        buf.len() >= BATCH_HEADER_LEN,
        "stamping a buffer shorter than a batch header"
    );
    buf[BASE_OFFSET_POS..BASE_OFFSET_POS + 8].copy_from_slice(&base_offset.to_be_bytes());
}

/// Writes the partition leader epoch into the batch header at `buf[12..16]` (outside the CRC).
///
/// # Panics
/// If `buf` is shorter than the batch header.
pub fn stamp_leader_epoch(buf: &mut [u8], epoch: i32) {
    assert!(
        buf.len() >= BATCH_HEADER_LEN,
        "stamping a buffer shorter than a batch header"
    );
    buf[LEADER_EPOCH_POS..LEADER_EPOCH_POS + 4].copy_from_slice(&epoch.to_be_bytes());
}
