//! The meaning of the batch `attributes` field: compression codec, timestamp type, and the bits
//! Strata refuses (transactional, control, delete horizon, unknown).

use std::fmt;

use crate::RecordError;
use crate::header::{ATTR_COMPRESSION_MASK, ATTR_CONTROL, ATTR_TIMESTAMP_TYPE, ATTR_TRANSACTIONAL};

/// A compression codec, with Kafka's codes (attribute bits 0..=2).
///
/// Every codec Kafka defines is read and written (see [`crate::compression`]); codes 5 to 7 are
/// [`RecordError::UnsupportedCompression`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Compression {
    /// Code 0: records are stored as they are.
    #[default]
    None,
    /// Code 1: gzip.
    Gzip,
    /// Code 2: snappy (xerial framing in Kafka).
    Snappy,
    /// Code 3: lz4 (frame format).
    Lz4,
    /// Code 4: zstd.
    Zstd,
}

impl Compression {
    /// Kafka's code for the codec, as stored in attribute bits 0..=2.
    pub fn code(self) -> i16 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
        }
    }

    /// The codec with Kafka code `code`, or `None` for codes Kafka does not define (5..=7 and
    /// anything outside 0..=7).
    pub fn from_code(code: i16) -> Option<Compression> {
        match code {
            0 => Some(Compression::None),
            1 => Some(Compression::Gzip),
            2 => Some(Compression::Snappy),
            3 => Some(Compression::Lz4),
            4 => Some(Compression::Zstd),
            _ => None,
        }
    }

    /// Kafka's name for the codec (`compression.type`): `none`, `gzip`, `snappy`, `lz4`, `zstd`.
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What the record timestamps of a batch mean (attribute bit 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TimestampType {
    /// Bit 3 clear: each record carries the time the producer created it
    /// (`baseTimestamp + timestampDelta`).
    #[default]
    CreateTime,
    /// Bit 3 set: every record's timestamp is the batch's `maxTimestamp`, the time the broker
    /// appended it; the per-record deltas are ignored.
    LogAppendTime,
}

/// Attribute bits Strata understands: codec and timestamp type. Transactional and control are
/// known but refused; everything else (delete horizon, bits 7..=15) is refused as unknown.
const KNOWN_BITS: i16 = ATTR_COMPRESSION_MASK | ATTR_TIMESTAMP_TYPE;

/// Checks a batch's `attributes`, and returns its timestamp type if Strata accepts it.
///
/// Refused, in this order: control batches (brokers write them, never clients), transactional
/// batches (Strata has no transactions), unknown bits (the delete horizon bit changes what
/// `baseTimestamp` means; others have no meaning yet), and any codec but none.
pub(crate) fn check_attributes(
    attributes: i16,
) -> Result<(TimestampType, Compression), RecordError> {
    if attributes & ATTR_CONTROL != 0 {
        return Err(RecordError::ControlBatch);
    }
    if attributes & ATTR_TRANSACTIONAL != 0 {
        return Err(RecordError::Transactional);
    }
    if attributes & !KNOWN_BITS != 0 {
        return Err(RecordError::UnsupportedAttributes { attributes });
    }
    let code = attributes & ATTR_COMPRESSION_MASK;
    let codec = Compression::from_code(code).ok_or(RecordError::UnsupportedCompression {
        code,
        name: "unknown",
    })?;
    let timestamps = if attributes & ATTR_TIMESTAMP_TYPE != 0 {
        TimestampType::LogAppendTime
    } else {
        TimestampType::CreateTime
    };
    Ok((timestamps, codec))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::header::ATTR_DELETE_HORIZON;

    #[test]
    fn codes_round_trip() {
        for code in 0..=4 {
            let codec = Compression::from_code(code);
            assert_eq!(codec.map(Compression::code), Some(code));
        }
        for code in [5, 6, 7, -1, 8] {
            assert_eq!(Compression::from_code(code), None);
        }
        assert_eq!(Compression::Zstd.to_string(), "zstd");
    }

    #[test]
    fn accepts_plain_and_log_append_time() {
        assert_eq!(
            check_attributes(0),
            Ok((TimestampType::CreateTime, Compression::None))
        );
        assert_eq!(
            check_attributes(ATTR_TIMESTAMP_TYPE),
            Ok((TimestampType::LogAppendTime, Compression::None))
        );
    }

    #[test]
    fn takes_kafkas_codecs_and_refuses_the_other_codes() {
        for code in 1..=4 {
            assert_eq!(
                check_attributes(code).map(|(_, c)| c.code()),
                Ok(code),
                "code {code}"
            );
        }
        for code in 5..=7 {
            assert_eq!(
                check_attributes(code),
                Err(RecordError::UnsupportedCompression {
                    code,
                    name: "unknown"
                })
            );
        }
    }

    #[test]
    fn refuses_transactional_control_and_unknown_bits() {
        assert_eq!(
            check_attributes(ATTR_TRANSACTIONAL),
            Err(RecordError::Transactional)
        );
        assert_eq!(
            check_attributes(ATTR_CONTROL),
            Err(RecordError::ControlBatch)
        );
        assert_eq!(
            check_attributes(ATTR_CONTROL | ATTR_TRANSACTIONAL),
            Err(RecordError::ControlBatch)
        );
        for attributes in [ATTR_DELETE_HORIZON, 0x80, 0x100, i16::MIN] {
            assert_eq!(
                check_attributes(attributes),
                Err(RecordError::UnsupportedAttributes { attributes })
            );
        }
    }
}
