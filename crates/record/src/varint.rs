//! Zigzag varints (i32, at most 5 bytes) and varlongs (i64, at most 10 bytes), as Kafka's
//! `ByteUtils.readVarint` / `writeVarint` and protobuf's `sint32` / `sint64` encode them.
//!
//! Decoding is checked: a value that runs past the buffer is [`RecordError::Truncated`], and one
//! with too many continuation bytes, or whose last byte carries bits beyond the type's width, is
//! [`RecordError::VarintOverflow`]. Nothing here panics on input bytes. Non-minimal encodings
//! (such as `0x80 0x00` for 0) are accepted, as Kafka accepts them.

use bytes::BufMut;

use crate::RecordError;

/// Most bytes a varint (i32) takes.
pub const MAX_VARINT_LEN: usize = 5;
/// Most bytes a varlong (i64) takes.
pub const MAX_VARLONG_LEN: usize = 10;

/// Maps a signed i32 to an unsigned one so that small magnitudes get small codes.
fn zigzag_encode_32(value: i32) -> u32 {
    ((value << 1) ^ (value >> 31)) as u32
}

fn zigzag_decode_32(raw: u32) -> i32 {
    ((raw >> 1) as i32) ^ -((raw & 1) as i32)
}

fn zigzag_encode_64(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

fn zigzag_decode_64(raw: u64) -> i64 {
    ((raw >> 1) as i64) ^ -((raw & 1) as i64)
}

/// Reads an unsigned base-128 number of at most `max_bytes` bytes whose last byte may be at
/// most `last_byte_max` (so the value fits the type's width).
fn decode_unsigned(
    buf: &[u8],
    max_bytes: usize,
    last_byte_max: u8,
) -> Result<(u64, usize), RecordError> {
    let mut value: u64 = 0;
    for index in 0..max_bytes {
        let Some(&byte) = buf.get(index) else {
            return Err(RecordError::Truncated {
                needed: index + 1,
                available: buf.len(),
            });
        };
        if index == max_bytes - 1 && byte > last_byte_max {
            return Err(RecordError::VarintOverflow { max_bytes });
        }
        value |= u64::from(byte & 0x7f) << (7 * index);
        if byte & 0x80 == 0 {
            return Ok((value, index + 1));
        }
    }
    // The last allowed byte either ended the number or failed the `last_byte_max` check above.
    Err(RecordError::VarintOverflow { max_bytes })
}

/// Decodes a zigzag varint (i32) from the start of `buf`; returns the value and the bytes used.
pub fn decode_varint(buf: &[u8]) -> Result<(i32, usize), RecordError> {
    // The fifth byte holds bits 28..=31, so only its low four bits may be set.
    let (raw, used) = decode_unsigned(buf, MAX_VARINT_LEN, 0x0f)?;
    Ok((zigzag_decode_32(raw as u32), used))
}

/// Decodes a zigzag varlong (i64) from the start of `buf`; returns the value and the bytes used.
pub fn decode_varlong(buf: &[u8]) -> Result<(i64, usize), RecordError> {
    // The tenth byte holds bit 63 only.
    let (raw, used) = decode_unsigned(buf, MAX_VARLONG_LEN, 0x01)?;
    Ok((zigzag_decode_64(raw), used))
}

fn encode_unsigned(mut raw: u64, out: &mut impl BufMut) {
    while raw >= 0x80 {
        out.put_u8((raw as u8 & 0x7f) | 0x80);
        raw >>= 7;
    }
    out.put_u8(raw as u8);
}

fn unsigned_len(raw: u64) -> usize {
    // Bits needed (at least one), seven per byte.
    let bits = 64 - (raw | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

/// Appends `value` as a zigzag varint (1 to 5 bytes).
pub fn encode_varint(value: i32, out: &mut impl BufMut) {
    encode_unsigned(u64::from(zigzag_encode_32(value)), out);
}

/// Appends `value` as a zigzag varlong (1 to 10 bytes).
pub fn encode_varlong(value: i64, out: &mut impl BufMut) {
    encode_unsigned(zigzag_encode_64(value), out);
}

/// Bytes [`encode_varint`] writes for `value`.
pub fn varint_len(value: i32) -> usize {
    unsigned_len(u64::from(zigzag_encode_32(value)))
}

/// Bytes [`encode_varlong`] writes for `value`.
pub fn varlong_len(value: i64) -> usize {
    unsigned_len(zigzag_encode_64(value))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn varint_bytes(value: i32) -> Vec<u8> {
        let mut out = Vec::new();
        encode_varint(value, &mut out);
        out
    }

    fn varlong_bytes(value: i64) -> Vec<u8> {
        let mut out = Vec::new();
        encode_varlong(value, &mut out);
        out
    }

    #[test]
    fn known_encodings_match_kafka() {
        // Expected bytes checked against kafka-python's `kafka.record.util.encode_varint`.
        assert_eq!(varint_bytes(0), [0x00]);
        assert_eq!(varint_bytes(-1), [0x01]);
        assert_eq!(varint_bytes(1), [0x02]);
        assert_eq!(varint_bytes(63), [0x7e]);
        assert_eq!(varint_bytes(-64), [0x7f]);
        assert_eq!(varint_bytes(64), [0x80, 0x01]);
        assert_eq!(varint_bytes(-65), [0x81, 0x01]);
        assert_eq!(varint_bytes(8191), [0xfe, 0x7f]);
        assert_eq!(varint_bytes(-8192), [0xff, 0x7f]);
        assert_eq!(varint_bytes(8192), [0x80, 0x80, 0x01]);
        assert_eq!(varint_bytes(i32::MAX), [0xfe, 0xff, 0xff, 0xff, 0x0f]);
        assert_eq!(varint_bytes(i32::MIN), [0xff, 0xff, 0xff, 0xff, 0x0f]);
        assert_eq!(
            varlong_bytes(i64::MAX),
            [0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]
        );
        assert_eq!(
            varlong_bytes(i64::MIN),
            [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]
        );
    }

    #[test]
    fn extremes_round_trip() {
        for value in [0, 1, -1, 63, -64, 64, i32::MAX, i32::MIN] {
            let bytes = varint_bytes(value);
            assert_eq!(bytes.len(), varint_len(value));
            assert_eq!(decode_varint(&bytes).unwrap(), (value, bytes.len()));
        }
        for value in [0, 1, -1, i64::from(i32::MAX) + 1, i64::MAX, i64::MIN] {
            let bytes = varlong_bytes(value);
            assert_eq!(bytes.len(), varlong_len(value));
            assert_eq!(decode_varlong(&bytes).unwrap(), (value, bytes.len()));
        }
    }

    #[test]
    fn empty_and_truncated_are_errors() {
        assert_eq!(
            decode_varint(&[]),
            Err(RecordError::Truncated {
                needed: 1,
                available: 0
            })
        );
        assert_eq!(
            decode_varint(&[0x80, 0x80]),
            Err(RecordError::Truncated {
                needed: 3,
                available: 2
            })
        );
        assert!(matches!(
            decode_varlong(&[0xff; 9]),
            Err(RecordError::Truncated { needed: 10, .. })
        ));
    }

    #[test]
    fn too_many_continuation_bytes_overflow() {
        assert_eq!(
            decode_varint(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x00]),
            Err(RecordError::VarintOverflow { max_bytes: 5 })
        );
        assert_eq!(
            decode_varlong(&[0x80; 11]),
            Err(RecordError::VarintOverflow { max_bytes: 10 })
        );
        assert_eq!(
            decode_varlong(&[0xff; 20]),
            Err(RecordError::VarintOverflow { max_bytes: 10 })
        );
    }

    #[test]
    fn bits_beyond_the_width_overflow() {
        // A fifth byte of 0x10 would set bit 32.
        assert_eq!(
            decode_varint(&[0x80, 0x80, 0x80, 0x80, 0x10]),
            Err(RecordError::VarintOverflow { max_bytes: 5 })
        );
        // A tenth byte of 0x02 would set bit 64.
        let mut long = [0x80u8; 10];
        long[9] = 0x02;
        assert_eq!(
            decode_varlong(&long),
            Err(RecordError::VarintOverflow { max_bytes: 10 })
        );
    }

    #[test]
    fn non_minimal_encodings_are_accepted() {
        assert_eq!(decode_varint(&[0x80, 0x00]).unwrap(), (0, 2));
        assert_eq!(decode_varlong(&[0x82, 0x80, 0x00]).unwrap(), (1, 3));
    }

    proptest! {
        #[test]
        fn varint_round_trips(value: i32, tail: Vec<u8>) {
            let mut bytes = varint_bytes(value);
            let len = bytes.len();
            prop_assert_eq!(len, varint_len(value));
            bytes.extend_from_slice(&tail);
            prop_assert_eq!(decode_varint(&bytes).unwrap(), (value, len));
        }

        #[test]
        fn varlong_round_trips(value: i64, tail: Vec<u8>) {
            let mut bytes = varlong_bytes(value);
            let len = bytes.len();
            prop_assert_eq!(len, varlong_len(value));
            bytes.extend_from_slice(&tail);
            prop_assert_eq!(decode_varlong(&bytes).unwrap(), (value, len));
        }

        #[test]
        fn varint_in_i32_range_is_the_same_as_varlong(value: i32) {
            prop_assert_eq!(varint_bytes(value), varlong_bytes(i64::from(value)));
        }

        #[test]
        fn garbage_never_panics(bytes: Vec<u8>) {
            if let Ok((_, used)) = decode_varint(&bytes) {
                prop_assert!((1..=MAX_VARINT_LEN).contains(&used));
            }
            if let Ok((_, used)) = decode_varlong(&bytes) {
                prop_assert!((1..=MAX_VARLONG_LEN).contains(&used));
            }
        }
    }
}
