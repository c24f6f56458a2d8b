//! The error of this crate: every way a batch can be malformed.

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
}
