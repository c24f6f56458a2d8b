//! The errors of this crate: every way a batch can be malformed, or a batch cannot be built.

/// Why a byte sequence is not an acceptable record batch.
///
/// Every malformed input maps to one of these; nothing in this crate panics on client or disk
/// bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// The buffer ends before a field or the batch does.
    #[error("batch truncated: needed {needed} bytes, {available} available")]
    Truncated {
        /// Bytes the structure needs.
        needed: usize,
        /// Bytes present.
        available: usize,
    },
    /// The magic byte is not 2.
    #[error("unsupported record batch magic {0} (only v2 is supported)")]
    UnsupportedMagic(i8),
    /// `batchLength` is impossible.
    #[error("bad batch length {batch_length}: {reason}")]
    BadBatchLength {
        /// The stored length.
        batch_length: i32,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The record count is impossible or disagrees with the records.
    #[error("bad record count {count}: {reason}")]
    BadRecordCount {
        /// The stored count.
        count: i32,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// `lastOffsetDelta` is not count - 1.
    #[error("last offset delta {last_offset_delta} does not match record count {record_count}")]
    BadLastOffsetDelta {
        /// The stored delta.
        last_offset_delta: i32,
        /// The stored count.
        record_count: i32,
    },
    /// The CRC32C does not match the bytes.
    #[error("batch CRC32C mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    CrcMismatch {
        /// CRC in the header.
        stored: u32,
        /// CRC of the bytes.
        computed: u32,
    },
    /// A varint or varlong has more continuation bytes than its width allows, or its last byte
    /// carries bits beyond 32 (varint) or 64 (varlong) bits.
    #[error("varint overflows {max_bytes} bytes")]
    VarintOverflow {
        /// 5 for a varint (i32), 10 for a varlong (i64).
        max_bytes: usize,
    },
    /// The codec bits name no codec Kafka defines (5 to 7).
    #[error("unsupported compression codec {code} ({name}): Kafka defines codes 0 to 4")]
    UnsupportedCompression {
        /// The codec bits of `attributes` (0..=7).
        code: i16,
        /// The codec's Kafka name (`gzip`, `snappy`, `lz4`, `zstd`) or `unknown`.
        name: &'static str,
    },
    /// The records region does not decompress with the batch's codec, or decompresses to more
    /// than [`crate::compression::DECOMPRESSED_BYTES_MAX`].
    #[error("{codec} records do not decompress: {reason}")]
    Decompression {
        /// The codec's Kafka name.
        codec: &'static str,
        /// What went wrong (names the limit when it was hit).
        reason: String,
    },
    /// The transactional attribute bit is set; Strata has no transactions.
    #[error("transactional batches are not supported")]
    Transactional,
    /// The control attribute bit is set; control batches are written by brokers, never by clients.
    #[error("control batches are not accepted")]
    ControlBatch,
    /// Attribute bits Strata does not know (delete horizon, bits 7..=15) are set.
    #[error("unsupported batch attributes {attributes:#06x}")]
    UnsupportedAttributes {
        /// The whole `attributes` field.
        attributes: i16,
    },
    /// For a create-time batch, `maxTimestamp` is not the largest record timestamp.
    ///
    /// The time index trusts `maxTimestamp`, so a lying value is refused.
    #[error("max timestamp {stored} is not the largest record timestamp {computed}")]
    BadMaxTimestamp {
        /// `maxTimestamp` in the header.
        stored: i64,
        /// Largest timestamp of the records.
        computed: i64,
    },
    /// A record inside the batch is malformed.
    #[error("record {index} at byte {position} of the batch: {fault}")]
    BadRecord {
        /// Index of the record in the batch (0 for the first).
        index: i32,
        /// Byte position of the record's length varint, from the start of the batch.
        position: usize,
        /// What is wrong with it.
        fault: RecordFault,
    },
    /// `baseOffset + lastOffsetDelta` overflows i64 (the base offset lies outside the CRC).
    #[error("base offset {base_offset} + last offset delta {last_offset_delta} overflows i64")]
    OffsetOverflow {
        /// The stored base offset.
        base_offset: i64,
        /// The stored last offset delta.
        last_offset_delta: i32,
    },
    /// The buffer holds bytes after the batch where exactly one batch was expected.
    #[error("{trailing} bytes after the end of the batch ({batch_len} bytes)")]
    TrailingBytes {
        /// Length of the batch.
        batch_len: usize,
        /// Bytes left after it.
        trailing: usize,
    },
    /// The builder was asked for something this crate does not produce, or the batch would not
    /// be representable (timestamp delta or length beyond their field's range).
    #[error("cannot build batch: {reason}")]
    Unbuildable {
        /// Why.
        reason: &'static str,
    },
}

/// What is wrong with one record of a batch (see [`RecordError::BadRecord`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RecordFault {
    /// The record's declared length is negative or reaches past the end of the batch.
    #[error("declared length {length} does not fit in the {available} bytes left in the batch")]
    LengthOutOfBounds {
        /// The declared length (bytes after the length varint).
        length: i32,
        /// Bytes left in the batch after the length varint.
        available: usize,
    },
    /// A field runs past the record's declared length.
    #[error("a field runs past the record's declared length")]
    Truncated,
    /// The fields end before the record's declared length.
    #[error("fields use {used} of the {declared} declared bytes")]
    LengthMismatch {
        /// The declared length.
        declared: i32,
        /// Bytes the fields used.
        used: usize,
    },
    /// A varint or varlong inside the record overflows its width.
    #[error("varint overflows {max_bytes} bytes")]
    VarintOverflow {
        /// 5 for a varint, 10 for a varlong.
        max_bytes: usize,
    },
    /// The record attributes byte is not 0 (no record attribute is defined).
    #[error("record attributes {0:#04x} are not 0")]
    Attributes(u8),
    /// The offset delta is not the record's index.
    #[error("offset delta {found}, expected {expected}")]
    OffsetDelta {
        /// The record's index.
        expected: i32,
        /// The stored delta.
        found: i32,
    },
    /// A length or count is negative where that is not allowed (or below -1 where -1 is null).
    #[error("invalid {field} {length}")]
    BadLength {
        /// Which field: `key length`, `value length`, `header count`, `header key length`,
        /// `header value length`.
        field: &'static str,
        /// The stored value.
        length: i32,
    },
    /// A header key is not valid UTF-8.
    #[error("header key is not valid UTF-8")]
    HeaderKeyNotUtf8,
    /// `baseTimestamp + timestampDelta` overflows i64.
    #[error("timestamp delta {delta} overflows the base timestamp")]
    TimestampOverflow {
        /// The stored delta.
        delta: i64,
    },
}
