//! The on-disk frame around every Raft entry: a 48-byte little-endian header, then the payload.
//!
//! ```text
//! 0  u32 frame_len      header + payload bytes
//! 4  u32 crc32          crc32fast over bytes 8..frame_len
//! 8  u64 term
//! 16 u64 index          log index (openraft's index + 1)
//! 24 u8  kind           EntryKind
//! 25 u8  version        1
//! 26 u16 reserved       0
//! 28 u32 record_count   records in the batch (0 for non-data entries)
//! 32 i64 base_offset    offset of the first record (next offset for non-data entries)
//! 40 i64 max_timestamp  largest record timestamp (-1 for non-data entries)
//! 48 payload
//! ```
//!
//! The index is a [`LogIndex`] and the base offset an [`Offset`] in memory; `encode` and
//! `decode` are where they become the stored integers and back.

use crate::numbers::{LogIndex, Offset};

/// Bytes in a frame header.
pub const FRAME_HEADER_LEN: usize = 48;
/// Position of the CRC field in the header.
const CRC_POS: usize = 4;
/// The CRC covers the frame from this byte (the first after `frame_len` and the CRC itself) to
/// its end: the rest of the header, then the payload.
pub const CRC_FROM: usize = CRC_POS + 4;
/// The frame format version written by this code.
pub const FRAME_VERSION: u8 = 1;

/// What a Raft entry carries. Only `Data` entries hold records and take offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntryKind {
    /// A record batch (Kafka RecordBatch v2 bytes).
    Data,
    /// A Raft blank entry (a new leader's first entry).
    Blank,
    /// A Raft membership change.
    Membership,
    /// A control entry of a higher layer (retention, producer state, ...); opaque here.
    Control,
}

impl EntryKind {
    /// The byte stored in the frame.
    pub fn to_byte(self) -> u8 {
        match self {
            EntryKind::Data => 1,
            EntryKind::Blank => 2,
            EntryKind::Membership => 3,
            EntryKind::Control => 4,
        }
    }

    /// Decodes the stored byte.
    pub fn from_byte(b: u8) -> Option<EntryKind> {
        Some(match b {
            1 => EntryKind::Data,
            2 => EntryKind::Blank,
            3 => EntryKind::Membership,
            4 => EntryKind::Control,
            _ => return None,
        })
    }
}

/// The decoded header of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Header plus payload bytes.
    pub frame_len: u32,
    /// Stored CRC32 over bytes 8..frame_len.
    pub crc: u32,
    /// Raft term.
    pub term: u64,
    /// Log index.
    pub index: LogIndex,
    /// Entry kind.
    pub kind: EntryKind,
    /// Records in the payload.
    pub record_count: u32,
    /// Offset of the first record.
    pub base_offset: Offset,
    /// Largest record timestamp, -1 when none.
    pub max_timestamp: i64,
}

/// Why bytes are not a valid frame. Recovery stops at the first one of these in a log tail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The frame length is zero: preallocated space never written.
    #[error("zeroed frame")]
    Zeroed,
    /// The buffer ends inside the frame.
    #[error("torn frame: {needed} bytes needed, {available} available")]
    Torn {
        /// Bytes the frame claims.
        needed: usize,
        /// Bytes present.
        available: usize,
    },
    /// A header field is impossible.
    #[error("bad frame header: {0}")]
    BadHeader(&'static str),
    /// The CRC does not match.
    #[error("frame CRC mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    Crc {
        /// Stored CRC.
        stored: u32,
        /// Computed CRC.
        computed: u32,
    },
}

fn le_u32(b: &[u8], pos: usize) -> u32 {
    u32::from_le_bytes([b[pos], b[pos + 1], b[pos + 2], b[pos + 3]])
}

fn le_u64(b: &[u8], pos: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[pos..pos + 8]);
    u64::from_le_bytes(a)
}

impl FrameHeader {
    /// Encodes the header as it is, `crc` field included (see [`FrameHeader::encode_with_crc`]
    /// to compute it).
    pub fn encode(&self) -> [u8; FRAME_HEADER_LEN] {
        let mut h = [0u8; FRAME_HEADER_LEN];
        h[0..CRC_POS].copy_from_slice(&self.frame_len.to_le_bytes());
        h[CRC_POS..CRC_FROM].copy_from_slice(&self.crc.to_le_bytes());
        h[8..16].copy_from_slice(&self.term.to_le_bytes());
        h[16..24].copy_from_slice(&self.index.get().to_le_bytes());
        h[24] = self.kind.to_byte();
        h[25] = FRAME_VERSION;
        h[28..32].copy_from_slice(&self.record_count.to_le_bytes());
        h[32..40].copy_from_slice(&self.base_offset.get().to_le_bytes());
        h[40..48].copy_from_slice(&self.max_timestamp.to_le_bytes());
        h
    }

    /// Encodes the header of a frame whose payload is `payload`, given as the parts it is
    /// written in (in order), with the CRC computed over header bytes from [`CRC_FROM`] and
    /// then the payload. Returns the header bytes and the header with that `crc` (the `crc`
    /// of `self` is ignored). `frame_len` must already count the whole payload.
    pub fn encode_with_crc(&self, payload: &[&[u8]]) -> ([u8; FRAME_HEADER_LEN], FrameHeader) {
        debug_assert_eq!(
            self.payload_len(),
            payload.iter().map(|p| p.len()).sum::<usize>(),
            "frame_len counts the payload"
        );
        let mut h = self.encode();
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&h[CRC_FROM..]);
        for part in payload {
            hasher.update(part);
        }
        let crc = hasher.finalize();
        h[CRC_POS..CRC_FROM].copy_from_slice(&crc.to_le_bytes());
        (h, FrameHeader { crc, ..*self })
    }

    /// Decodes the header at the start of `buf` and checks its fields and that the whole frame
    /// lies inside `buf`, without checking the CRC. `entry_bytes_max` bounds the payload.
    pub fn decode(buf: &[u8], entry_bytes_max: u32) -> Result<FrameHeader, FrameError> {
        if buf.len() < 4 {
            return Err(FrameError::Torn {
                needed: FRAME_HEADER_LEN,
                available: buf.len(),
            });
        }
        let frame_len = le_u32(buf, 0);
        if frame_len == 0 {
            return Err(FrameError::Zeroed);
        }
        if buf.len() < FRAME_HEADER_LEN {
            return Err(FrameError::Torn {
                needed: FRAME_HEADER_LEN,
                available: buf.len(),
            });
        }
        if (frame_len as usize) < FRAME_HEADER_LEN {
            return Err(FrameError::BadHeader(
                "frame length shorter than its header",
            ));
        }
        if frame_len as u64 > FRAME_HEADER_LEN as u64 + entry_bytes_max as u64 {
            return Err(FrameError::BadHeader(
                "frame length above the entry size limit",
            ));
        }
        if buf[25] != FRAME_VERSION {
            return Err(FrameError::BadHeader("unknown frame version"));
        }
        if buf[26] != 0 || buf[27] != 0 {
            return Err(FrameError::BadHeader("reserved bytes are not zero"));
        }
        let kind =
            EntryKind::from_byte(buf[24]).ok_or(FrameError::BadHeader("unknown entry kind"))?;
        let header = FrameHeader {
            frame_len,
            crc: le_u32(buf, CRC_POS),
            term: le_u64(buf, 8),
            index: LogIndex::new(le_u64(buf, 16)),
            kind,
            record_count: le_u32(buf, 28),
            base_offset: Offset::new(le_u64(buf, 32) as i64),
            max_timestamp: le_u64(buf, 40) as i64,
        };
        if header.index == LogIndex::new(0) {
            return Err(FrameError::BadHeader("log index 0 is never stored"));
        }
        if header.base_offset < Offset::new(0) {
            return Err(FrameError::BadHeader("negative base offset"));
        }
        if (kind == EntryKind::Data) != (header.record_count > 0) {
            return Err(FrameError::BadHeader(
                "record count does not match the entry kind",
            ));
        }
        if buf.len() < frame_len as usize {
            return Err(FrameError::Torn {
                needed: frame_len as usize,
                available: buf.len(),
            });
        }
        Ok(header)
    }

    /// [`FrameHeader::decode`] plus the CRC check over the whole frame.
    pub fn decode_verified(buf: &[u8], entry_bytes_max: u32) -> Result<FrameHeader, FrameError> {
        let header = FrameHeader::decode(buf, entry_bytes_max)?;
        let computed = crc32fast::hash(&buf[CRC_FROM..header.frame_len as usize]);
        if computed != header.crc {
            return Err(FrameError::Crc {
                stored: header.crc,
                computed,
            });
        }
        Ok(header)
    }

    /// Payload bytes of the frame.
    pub fn payload_len(&self) -> usize {
        self.frame_len as usize - FRAME_HEADER_LEN
    }

    /// The offset after this frame's records.
    pub fn next_offset(&self) -> Offset {
        self.base_offset.plus_records(self.record_count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_with_crc_decodes_verified_whatever_the_payload_split() {
        let payload: Vec<u8> = (0..100u8).collect();
        let header = FrameHeader {
            frame_len: (FRAME_HEADER_LEN + payload.len()) as u32,
            crc: 0,
            term: 3,
            index: LogIndex::new(7),
            kind: EntryKind::Control,
            record_count: 0,
            base_offset: Offset::new(12),
            max_timestamp: -1,
        };
        let (whole, sealed) = header.encode_with_crc(&[&payload]);
        let (split, sealed_split) = header.encode_with_crc(&[&payload[..16], &payload[16..]]);
        assert_eq!((whole, sealed), (split, sealed_split));
        assert_eq!(
            sealed.crc,
            crc32fast::hash(&[&whole[CRC_FROM..], &payload[..]].concat())
        );
        let mut frame = whole.to_vec();
        frame.extend_from_slice(&payload);
        assert_eq!(FrameHeader::decode_verified(&frame, 1024), Ok(sealed));
        frame[FRAME_HEADER_LEN] ^= 1;
        assert!(matches!(
            FrameHeader::decode_verified(&frame, 1024),
            Err(FrameError::Crc { .. })
        ));
    }
}
